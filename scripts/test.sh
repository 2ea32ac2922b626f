#!/usr/bin/env bash
# Run the whole bichito test suite: fmt check, clippy, cargo test.
#
#   bash scripts/test.sh           everything (what CI runs)
#   bash scripts/test.sh --quick   only what needs no external service: unit tests and the
#                                  suites on SQLite, the in-process bus and local storage
#
# Meant for a Debian 12 machine (normally as root). Makes sure PostgreSQL
# (127.0.0.1:5432, trust auth for `postgres`), NATS with JetStream
# (127.0.0.1:4222) and an S3-compatible server (s3s-fs, 127.0.0.1:9100) are
# running, installing/starting them if needed. Services that are already
# running are never stopped or restarted.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

QUICK=0
case "${1:-}" in
    "") ;;
    --quick) QUICK=1 ;;
    *) printf 'usage: bash scripts/test.sh [--quick]\n' >&2; exit 2 ;;
esac

log() { printf '==> %s\n' "$*"; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

SUDO=()
if [[ $(id -u) -ne 0 ]] && command -v sudo >/dev/null 2>&1; then
    SUDO=(sudo)
fi

APT_UPDATED=0
apt_install() {
    if [[ $APT_UPDATED -eq 0 ]]; then
        "${SUDO[@]}" apt-get update
        APT_UPDATED=1
    fi
    "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y "$@"
}

# Polls CHECK every 0.5 s for up to 30 s: logs READY when it passes, dies with FAILURE if not.
wait_until() {
    local check=$1 ready=$2 failure=$3 i
    for ((i = 0; i < 60; i++)); do
        "$check" && { log "$ready"; return; }
        sleep 0.5
    done
    die "$failure"
}

# ---------------------------------------------------------------- PostgreSQL

pg_ready() {
    command -v pg_isready >/dev/null 2>&1 && pg_isready -q -h 127.0.0.1 -p 5432
}

pg_version() {
    # Newest installed cluster version (e.g. "15").
    ls /etc/postgresql 2>/dev/null | sort -V | tail -n 1
}

ensure_postgres() {
    if pg_ready; then
        log "PostgreSQL already running on 127.0.0.1:5432"
        return
    fi

    local installed_now=0
    if [[ -z "$(pg_version)" ]] || ! command -v pg_ctlcluster >/dev/null 2>&1; then
        log "installing PostgreSQL"
        apt_install postgresql
        installed_now=1
    fi

    local ver
    ver=$(pg_version)
    [[ -n $ver ]] || die "no PostgreSQL cluster found under /etc/postgresql"
    local hba="/etc/postgresql/$ver/main/pg_hba.conf"
    [[ -f $hba ]] || die "no cluster config at $hba"

    if [[ $installed_now -eq 1 ]] \
        && ! grep -Eq '^[[:space:]]*host[[:space:]]+all[[:space:]]+all[[:space:]]+127\.0\.0\.1/32[[:space:]]+trust' "$hba"; then
        log "trusting local TCP connections in $hba"
        # Replace the stock 127.0.0.1/32 rule (scram-sha-256/md5) with trust;
        # add one if there was none. pg_hba is first-match, so put it on top.
        "${SUDO[@]}" sed -i -E '/^[[:space:]]*host[[:space:]]+all[[:space:]]+all[[:space:]]+127\.0\.0\.1\/32[[:space:]]/d' "$hba"
        "${SUDO[@]}" sed -i '1i host all all 127.0.0.1/32 trust' "$hba"
        # The package's postinst may have started the cluster already: reload
        # (not restart) so the new rule applies.
        if pg_ready; then
            "${SUDO[@]}" pg_ctlcluster --skip-systemctl-redirect "$ver" main reload
        fi
    fi

    if ! pg_ready; then
        log "starting PostgreSQL $ver/main"
        "${SUDO[@]}" pg_ctlcluster --skip-systemctl-redirect "$ver" main start
    fi

    wait_until pg_ready "PostgreSQL is ready" \
        "PostgreSQL did not become ready on 127.0.0.1:5432 within 30 s"
}

# ---------------------------------------------------------------------- NATS

nats_up() {
    if command -v nc >/dev/null 2>&1; then
        nc -z -w 1 127.0.0.1 4222 >/dev/null 2>&1
    else
        timeout 1 bash -c 'exec 3<>/dev/tcp/127.0.0.1/4222' >/dev/null 2>&1
    fi
}

ensure_nats() {
    if nats_up; then
        log "NATS already running on 127.0.0.1:4222"
        return
    fi
    if [[ ! -x /usr/sbin/nats-server ]]; then
        log "installing nats-server"
        apt_install nats-server
    fi
    log "starting nats-server with JetStream"
    "${SUDO[@]}" mkdir -p /var/lib/nats-server
    "${SUDO[@]}" start-stop-daemon --start --oknodo --background \
        --exec /usr/sbin/nats-server -- \
        -a 127.0.0.1 -p 4222 -js -sd /var/lib/nats-server -l /var/log/nats-server.log
    wait_until nats_up "NATS is ready" \
        "NATS did not come up on 127.0.0.1:4222 within 30 s (see /var/log/nats-server.log)"
}

# ------------------------------------------------------------------ promtool

# Only promtool is needed, not a Prometheus server: take it out of Debian's package without
# installing the package (whose scripts would start a service).
ensure_promtool() {
    if command -v promtool >/dev/null 2>&1; then
        BICHITO_PROMTOOL=$(command -v promtool)
    else
        local tools="${HOME:-/root}/.cache/bichito-tools"
        BICHITO_PROMTOOL="$tools/promtool"
        if [[ ! -x $BICHITO_PROMTOOL ]]; then
            log "fetching promtool from Debian's prometheus package"
            if [[ $APT_UPDATED -eq 0 ]]; then
                "${SUDO[@]}" apt-get update
                APT_UPDATED=1
            fi
            local work
            work=$(mktemp -d)
            (cd "$work" && apt-get download prometheus)
            dpkg-deb -x "$work"/prometheus_*.deb "$work/x"
            mkdir -p "$tools"
            cp "$work/x/usr/bin/promtool" "$BICHITO_PROMTOOL"
            rm -rf "$work"
        fi
    fi
    export BICHITO_PROMTOOL
    log "promtool: $BICHITO_PROMTOOL"
}

# -------------------------------------------------------- kubernetes-validate

# Validates Kubernetes manifests (the CRD) against the API schemas, offline; from PyPI.
ensure_kubernetes_validate() {
    if ! command -v kubernetes-validate >/dev/null 2>&1; then
        log "installing kubernetes-validate (PyPI)"
        python3 -m pip install --quiet kubernetes-validate
        hash -r
    fi
    command -v kubernetes-validate >/dev/null 2>&1 || die "kubernetes-validate is not on PATH after installing it"
    log "kubernetes-validate: $(command -v kubernetes-validate)"
}

# --------------------------------------------------------- @kubernetes-models

# The CRD schemas of the custom resources the chart renders (HTTPRoute, PrometheusRule,
# ServiceMonitor), which kubernetes-validate lacks: npm packages that
# scripts/validate_custom_resources.mjs runs with Node.js, installed into the tools cache.
GATEWAY_API_MODELS_VERSION=2.0.0
PROMETHEUS_OPERATOR_MODELS_VERSION=6.0.0
ensure_kubernetes_models() {
    if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
        log "installing nodejs and npm (Debian)"
        apt_install nodejs npm
    fi
    local dir="$BICHITO_TOOLS_DIR/kubernetes-models"
    if ! npm_package_is "$dir" @kubernetes-models/gateway-api "$GATEWAY_API_MODELS_VERSION" \
        || ! npm_package_is "$dir" @kubernetes-models/prometheus-operator "$PROMETHEUS_OPERATOR_MODELS_VERSION"; then
        log "installing @kubernetes-models/gateway-api $GATEWAY_API_MODELS_VERSION and @kubernetes-models/prometheus-operator $PROMETHEUS_OPERATOR_MODELS_VERSION (npm) into $dir"
        mkdir -p "$dir"
        (cd "$dir" && npm install --no-audit --no-fund --no-save \
            "@kubernetes-models/gateway-api@$GATEWAY_API_MODELS_VERSION" \
            "@kubernetes-models/prometheus-operator@$PROMETHEUS_OPERATOR_MODELS_VERSION" >/dev/null)
    fi
    log "kubernetes-models: $dir"
}

# ---------------------------------------------------------- helm-python-sdk

# Helm's own Go library for Python (PyPI): scripts/chart.py lints and renders the chart with it,
# no helm binary needed. PyYAML splits the rendered documents.
ensure_helm_python_sdk() {
    if ! python3 -c 'import helm_python, yaml' >/dev/null 2>&1; then
        log "installing helm-python-sdk (PyPI)"
        python3 -m pip install --quiet helm-python-sdk pyyaml
    fi
    python3 -c 'import helm_python, yaml' || die "helm_python is not importable after installing helm-python-sdk"
    log "helm-python-sdk: Helm $(python3 -c 'import helm_python; print(helm_python.helm_sdk_version())')"
}

# ------------------------------------------------------------ sentry-sdk

# Sentry's own Python SDK (PyPI): the Sentry-compatible envelope is tested with the real thing.
SENTRY_SDK_VERSION=2.75.0
ensure_sentry_sdk() {
    if ! python3 -c "import sentry_sdk, sys; sys.exit(sentry_sdk.VERSION != '$SENTRY_SDK_VERSION')" >/dev/null 2>&1; then
        log "installing sentry-sdk $SENTRY_SDK_VERSION (PyPI)"
        python3 -m pip install --quiet "sentry-sdk==$SENTRY_SDK_VERSION"
    fi
    python3 -c 'import sentry_sdk' || die "sentry_sdk is not importable after installing it"
    log "sentry-sdk: $(python3 -c 'import sentry_sdk; print(sentry_sdk.VERSION)')"
}

# ------------------------------------------- Schemathesis, openapi-spec-validator

# The OpenAPI document is validated by an independent validator and a live server is fuzzed
# against it by Schemathesis (both PyPI; api/tests/openapi.rs).
SCHEMATHESIS_VERSION=4.32.5
OPENAPI_SPEC_VALIDATOR_VERSION=0.9.0
ensure_openapi_tools() {
    if [[ "$(schemathesis --version 2>/dev/null)" != *"$SCHEMATHESIS_VERSION"* ]] \
        || ! python3 -c "import importlib.metadata as m, sys; sys.exit(m.version('openapi-spec-validator') != '$OPENAPI_SPEC_VALIDATOR_VERSION')" >/dev/null 2>&1; then
        log "installing schemathesis $SCHEMATHESIS_VERSION and openapi-spec-validator $OPENAPI_SPEC_VALIDATOR_VERSION (PyPI)"
        python3 -m pip install --quiet "schemathesis==$SCHEMATHESIS_VERSION" \
            "openapi-spec-validator==$OPENAPI_SPEC_VALIDATOR_VERSION"
        hash -r
    fi
    command -v schemathesis >/dev/null 2>&1 || die "schemathesis is not on PATH after installing it"
    command -v openapi-spec-validator >/dev/null 2>&1 || die "openapi-spec-validator is not on PATH after installing it"
    log "$(schemathesis --version)"
}

# ------------------------------------------------------- S3-compatible server

# s3s-fs (crates.io) serves a folder over the S3 API and checks SigV4 signatures, presigned
# URLs included (expiry, signed content-length and content-type): the attachment tests run
# against it. Installed once into the tools cache; started only when nothing answers.
S3_PORT="${BICHITO_TEST_S3_PORT:-9100}"
export BICHITO_TEST_S3_URL="${BICHITO_TEST_S3_URL:-http://127.0.0.1:$S3_PORT}"
export BICHITO_TEST_S3_ACCESS_KEY="${BICHITO_TEST_S3_ACCESS_KEY:-bichito-test}"
export BICHITO_TEST_S3_SECRET_KEY="${BICHITO_TEST_S3_SECRET_KEY:-bichito-test-secret}"

s3_up() {
    local address=${BICHITO_TEST_S3_URL#http://}
    address=${address%%/*}
    timeout 1 bash -c "exec 3<>/dev/tcp/${address%:*}/${address##*:}" >/dev/null 2>&1
}

ensure_s3() {
    if s3_up; then
        log "S3-compatible server already answering at $BICHITO_TEST_S3_URL"
        return
    fi
    local tools="${HOME:-/root}/.cache/bichito-tools"
    local bin="$tools/bin/s3s-fs"
    if [[ ! -x $bin ]]; then
        log "installing s3s-fs 0.14.1 (crates.io) into $tools"
        cargo install --quiet --locked s3s-fs@0.14.1 --features binary --root "$tools"
    fi
    local root="${HOME:-/root}/.cache/bichito-s3"
    mkdir -p "$root"
    log "starting s3s-fs on 127.0.0.1:$S3_PORT (data in $root)"
    # Started from its data folder: s3s-fs resolves object paths against its working
    # directory, and this checkout may be deleted while the server keeps running.
    (cd "$root" && exec setsid "$bin" --host 127.0.0.1 --port "$S3_PORT" \
        --access-key "$BICHITO_TEST_S3_ACCESS_KEY" --secret-key "$BICHITO_TEST_S3_SECRET_KEY" \
        "$root" >"$root.log" 2>&1 </dev/null) &
    wait_until s3_up "S3-compatible server is ready" \
        "s3s-fs did not come up on 127.0.0.1:$S3_PORT within 30 s (see $root.log)"
}

# ------------------------------------------------------------- nginx + nchan

# The reference of the stream benchmark (its smoke run is a test): Debian's nginx and its nchan
# module. Only the binaries are needed; the bench starts its own nginx on a free port.
ensure_nchan() {
    if [[ -x /usr/sbin/nginx && -f /usr/lib/nginx/modules/ngx_nchan_module.so ]]; then
        log "nginx with nchan: installed"
        return
    fi
    log "installing nginx and libnginx-mod-nchan (Debian)"
    apt_install nginx libnginx-mod-nchan
}

# ---------------------------------------------------------- browser tests

# Browser tests drive Debian's Chromium with playwright-core (npm, run by Node.js), sign in
# through a real OpenID Connect provider, the certified `oidc-provider` package (npm), and
# check pages for accessibility with axe-core (npm), all
# installed into the tools cache: no browser download, nothing needed to build or run bichito
# itself. (oidc-provider 8 is the line that supports Debian's Node.js 20.)
PLAYWRIGHT_VERSION=1.65.1
OIDC_PROVIDER_VERSION=8.8.1
AXE_CORE_VERSION=4.14.1
# Sentry's browser SDK, whose feedback the Sentry-compatible envelope is tested with.
SENTRY_BROWSER_VERSION=11.12.0
npm_package_is() {
    local dir=$1 package=$2 version=$3
    [[ -f $dir/node_modules/$package/package.json ]] \
        && grep -q "\"version\": \"$version\"" "$dir/node_modules/$package/package.json"
}

ensure_browser() {
    if [[ ! -x /usr/bin/chromium ]]; then
        log "installing chromium (Debian)"
        apt_install chromium
    fi
    if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
        log "installing nodejs and npm (Debian)"
        apt_install nodejs npm
    fi
    local dir="$BICHITO_TOOLS_DIR/browser"
    if ! npm_package_is "$dir" playwright-core "$PLAYWRIGHT_VERSION" \
        || ! npm_package_is "$dir" oidc-provider "$OIDC_PROVIDER_VERSION" \
        || ! npm_package_is "$dir" axe-core "$AXE_CORE_VERSION" \
        || ! npm_package_is "$dir" @sentry/browser "$SENTRY_BROWSER_VERSION"; then
        log "installing playwright-core $PLAYWRIGHT_VERSION, oidc-provider $OIDC_PROVIDER_VERSION, axe-core $AXE_CORE_VERSION and @sentry/browser $SENTRY_BROWSER_VERSION (npm) into $dir"
        mkdir -p "$dir"
        (cd "$dir" && npm install --no-audit --no-fund --no-save \
            "playwright-core@$PLAYWRIGHT_VERSION" "oidc-provider@$OIDC_PROVIDER_VERSION" \
            "axe-core@$AXE_CORE_VERSION" "@sentry/browser@$SENTRY_BROWSER_VERSION" >/dev/null)
    fi
    log "browser: $(/usr/bin/chromium --version 2>/dev/null | head -n 1), node $(node --version), playwright-core $PLAYWRIGHT_VERSION, oidc-provider $OIDC_PROVIDER_VERSION"
}

# ---------------------------------------------------- leftover test databases

drop_leftover_test_dbs() {
    # Databases that still have sessions belong to a test run in progress
    # (e.g. another checkout on this machine); leave those alone.
    local dbs db
    dbs=$(psql -h 127.0.0.1 -p 5432 -U postgres -d postgres -Atc \
        "SELECT datname FROM pg_database
         WHERE datname LIKE 'bichito\_t\_%'
           AND datname NOT IN (SELECT datname FROM pg_stat_activity WHERE datname IS NOT NULL)")
    [[ -n $dbs ]] || return 0
    log "dropping leftover test databases"
    while IFS= read -r db; do
        [[ -n $db ]] || continue
        echo "    $db"
        psql -h 127.0.0.1 -p 5432 -U postgres -d postgres -qAtc \
            "DROP DATABASE IF EXISTS \"$db\" WITH (FORCE)"
    done <<<"$dbs"
}

# ---------------------------------------------------------------------- main

export BICHITO_TOOLS_DIR="${BICHITO_TOOLS_DIR:-${HOME:-/root}/.cache/bichito-tools}"
if [[ $QUICK -eq 0 ]]; then
    ensure_postgres
    ensure_nats
    ensure_promtool
    ensure_kubernetes_validate
    ensure_kubernetes_models
    ensure_helm_python_sdk
    ensure_sentry_sdk
    ensure_openapi_tools
    ensure_s3
    ensure_nchan
    ensure_browser
    drop_leftover_test_dbs
else
    ensure_promtool
    # The SQLite half of the OpenAPI suite runs in --quick too: tools, no service.
    ensure_openapi_tools
fi

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-${HOME:-/root}/.cache/bichito-target}"
export BICHITO_TEST_POSTGRES_URL="${BICHITO_TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/postgres}"

run_step() {
    log "$*"
    "$@" || die "step failed: $*"
}

run_step cargo fmt --all -- --check
run_step python3 scripts/import_cycles.py api/src core/src operator/src bench/src
run_step cargo clippy --workspace --all-targets --locked -- -D warnings
# cargo's last "test result" line belongs to a doc-test run that may hold no test; the summary
# below adds up every runner's counts so the suite ends on one line that says what ran.
test_log=$(mktemp)
trap 'rm -f "$test_log"' EXIT
status=0
if [[ $QUICK -eq 0 ]]; then
    log "cargo test --workspace --locked"
    cargo test --workspace --locked 2>&1 | tee "$test_log" || status=$?
else
    # Test names say their backends (`postgres::`, `memory_sqlite::`, `local_sqlite::`, …):
    # unit tests but those on Postgres, the integration suites' SQLite variants, and the
    # suites that use no service at all.
    quick_runs=(
        "cargo test --workspace --locked --lib --bins -- --skip postgres"
        "cargo test --workspace --locked --test * -- sqlite"
        "cargo test --locked -p bichito --test stream_connections"
        "cargo test --locked -p bichito-core --test vendored_sqlx"
        "cargo test --locked -p bichito-operator --test crd"
    )
    for run in "${quick_runs[@]}"; do
        log "$run"
        # Word splitting is wanted; the `*` is cargo's own pattern, not the shell's.
        set -f
        # shellcheck disable=SC2086
        $run 2>&1 | tee -a "$test_log" || status=$?
        set +f
    done
fi
read -r passed failed < <(awk '/^test result:/ { p += $4; f += $6 } END { print p + 0, f + 0 }' "$test_log")
if [[ $status -ne 0 ]]; then
    printf 'tests: %d passed, %d failed\n' "$passed" "$failed"
    die "step failed: cargo test"
fi
[[ $passed -gt 0 ]] || die "cargo test ran no test"
log "all checks passed"
printf 'tests: %d passed, %d failed\n' "$passed" "$failed"
