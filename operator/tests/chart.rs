//! The Helm chart `charts/bichito`, rendered by Helm's own Go library through
//! `scripts/chart.py` (PyPI helm-python-sdk, which `scripts/test.sh` installs): it lints clean,
//! every rendered object validates against the Kubernetes 1.30 schemas (`kubernetes-validate`),
//! and what matters holds for the minimal values and for every option on: restricted containers
//! with probes, Secrets only by reference, least-privilege RBAC, the generated CRD, traffic
//! routed by path (Ingress, HTTPRoute), alerts that `promtool` checks and unit-tests, a
//! dashboard whose queries parse, NetworkPolicies that open only what each component uses.
//! Custom resources, which kubernetes-validate has no schema for, are validated against their
//! CRDs' schemas by `scripts/validate_custom_resources.mjs` (npm `@kubernetes-models/*`).

use bichito_core::spec::Honeycomb;
use kube::CustomResourceExt;
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};

const MINIMAL: &str = "ci/minimal-values.yaml";
const ALL_OPTIONS: &str = "ci/all-options-values.yaml";
/// The release namespace `scripts/chart.py render` uses.
const NAMESPACE: &str = "bichito";

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn chart() -> PathBuf {
    repo().join("charts/bichito")
}

/// A directory of its own under the system temp dir, removed on drop: tests run in parallel.
struct Scratch(PathBuf);

impl Scratch {
    fn new(label: &str) -> Self {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "bichito-chart-{}-{}-{label}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).expect("create a scratch directory");
        Self(dir)
    }

    /// Writes a values file into the scratch directory.
    fn values(&self, name: &str, yaml: &str) -> PathBuf {
        let path = self.0.join(name);
        std::fs::write(&path, yaml).expect("write a values file");
        path
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// `python3 scripts/chart.py ARGS`. Exit status 2 means it could not run at all (no
/// helm-python-sdk): that fails the test, it never skips it.
fn chart_py(args: &[&str], values: &[PathBuf]) -> Output {
    let mut command = Command::new("python3");
    command.arg(repo().join("scripts/chart.py")).args(args);
    for file in values {
        command.arg("--values").arg(file);
    }
    let output = command
        .output()
        .expect("python3 must be installed to render the chart (scripts/test.sh runs the suite)");
    assert_ne!(
        output.status.code(),
        Some(2),
        "scripts/chart.py cannot run; `bash scripts/test.sh` installs helm-python-sdk:\n{}",
        text(&output)
    );
    output
}

/// One `helm template` of the chart: the files Helm wrote and every object in them.
struct Rendered {
    dir: Scratch,
    /// `{"template": "deployments.yaml", "object": {...}}` per object.
    manifests: Vec<Value>,
}

impl Rendered {
    /// Renders with one of the chart's `ci/` values files.
    fn ci(file: &str) -> Self {
        Self::try_with("render", &[chart().join(file)])
            .unwrap_or_else(|refusal| panic!("{refusal}"))
    }

    /// Renders the minimal values with `yaml` merged on top (as a second `helm -f`).
    fn minimal_with(label: &str, yaml: &str) -> Self {
        let scratch = Scratch::new(label);
        let extra = scratch.values("extra.yaml", yaml);
        Self::try_with(label, &[chart().join(MINIMAL), extra])
            .unwrap_or_else(|refusal| panic!("{refusal}"))
    }

    /// Renders with values files merged in order (as `helm -f`), or returns Helm's refusal
    /// (schema violation, template `fail`).
    fn try_with(label: &str, values: &[PathBuf]) -> Result<Self, String> {
        let dir = Scratch::new(label);
        let out = dir.0.to_str().expect("temp dir paths are UTF-8").to_owned();
        let output = chart_py(&["render", "--out", &out], values);
        if !output.status.success() {
            return Err(text(&output));
        }
        let manifests = std::fs::read_to_string(dir.0.join("manifests.json"))
            .expect("scripts/chart.py writes manifests.json");
        let manifests = serde_json::from_str::<Vec<Value>>(&manifests).expect("manifests.json");
        Ok(Self { dir, manifests })
    }

    fn objects(&self) -> impl Iterator<Item = &Value> {
        self.manifests.iter().map(|manifest| &manifest["object"])
    }

    fn of_kind(&self, kind: &str) -> Vec<&Value> {
        self.objects()
            .filter(|object| object["kind"] == kind)
            .collect()
    }

    fn one(&self, kind: &str, name: &str) -> &Value {
        let found: Vec<&Value> = self
            .of_kind(kind)
            .into_iter()
            .filter(|object| object["metadata"]["name"] == name)
            .collect();
        assert_eq!(
            found.len(),
            1,
            "expected one {kind} {name}, found {found:?}"
        );
        found[0]
    }

    /// `kind/name` of every object, sorted.
    fn inventory(&self) -> BTreeSet<String> {
        self.objects()
            .map(|object| {
                let name = object["metadata"]["name"].as_str().expect("a name");
                format!("{}/{name}", object["kind"].as_str().expect("a kind"))
            })
            .collect()
    }

    /// Exactly these objects, `kind/name`, were rendered.
    fn assert_objects(&self, expected: &[&str]) {
        let expected: BTreeSet<String> = expected.iter().map(|object| object.to_string()).collect();
        assert_eq!(self.inventory(), expected);
    }

    fn file(&self, name: &str) -> String {
        std::fs::read_to_string(self.dir.0.join(name)).expect("a rendered file")
    }

    /// `kubernetes-validate --strict` on every rendered file: every object passes, except the
    /// custom resources, which it has no schema for: those are validated against their CRDs'
    /// schemas (`validate_custom_resources`) and checked kind by kind for what a schema cannot say.
    fn validate(&self) {
        let mut files: Vec<PathBuf> = std::fs::read_dir(&self.dir.0)
            .expect("the rendered directory")
            .map(|entry| entry.expect("a directory entry").path())
            .filter(|path| path.extension().is_some_and(|ext| ext == "yaml"))
            .collect();
        files.sort();
        let output = Command::new("kubernetes-validate")
            .args(["--strict", "-k", "1.30.0"])
            .args(&files)
            .output()
            .expect("kubernetes-validate must be installed (scripts/test.sh installs it)");
        let report = text(&output);
        assert!(output.status.success(), "kubernetes-validate: {report}");
        let mut custom = Vec::new();
        for object in self.objects() {
            let kind = object["kind"].as_str().expect("a kind");
            let name = object["metadata"]["name"].as_str().expect("a name");
            if let Some(&(_, api_version)) = CUSTOM_KINDS.iter().find(|(custom, _)| *custom == kind)
            {
                assert_eq!(object["apiVersion"], api_version, "{kind} {name}");
                let unknown =
                    format!("Couldn't find schema for kind {kind} with api version {api_version}");
                assert!(report.contains(&unknown), "{kind} {name}: {report}");
                match kind {
                    "ServiceMonitor" => a_service_monitor_scrapes_its_service(self, object),
                    "HTTPRoute" => an_http_route_sends_the_stream_to_sse(self, object),
                    _ => a_prometheus_rule_holds_only_alerts_with_runbooks(object),
                }
                custom.push(object.clone());
                continue;
            }
            let passed = format!(
                "passed for resource {}/{name} against version 1.30",
                kind.to_lowercase()
            );
            assert!(report.contains(&passed), "{kind} {name}: {report}");
        }
        let unknown = report
            .lines()
            .filter(|line| line.starts_with("WARN"))
            .count();
        assert_eq!(
            unknown,
            custom.len(),
            "only custom resources may lack a schema: {report}"
        );
        validate_custom_resources(&custom);
    }
}

/// The custom resources the chart may render, and their API versions.
const CUSTOM_KINDS: [(&str, &str); 3] = [
    ("ServiceMonitor", "monitoring.coreos.com/v1"),
    ("PrometheusRule", "monitoring.coreos.com/v1"),
    ("HTTPRoute", "gateway.networking.k8s.io/v1"),
];

/// Where `scripts/test.sh` installs its tools: `BICHITO_TOOLS_DIR`, or ~/.cache/bichito-tools.
fn tools_dir() -> PathBuf {
    match std::env::var_os("BICHITO_TOOLS_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache/bichito-tools")
        }
    }
}

/// Custom resources against their CRDs' schemas (types, enums, patterns, bounds), by
/// `scripts/validate_custom_resources.mjs` with the `@kubernetes-models` npm packages.
fn validate_custom_resources(objects: &[Value]) {
    if objects.is_empty() {
        return;
    }
    use std::io::Write;
    let modules = tools_dir().join("kubernetes-models/node_modules");
    let mut child = Command::new("node")
        .arg(repo().join("scripts/validate_custom_resources.mjs"))
        .arg(&modules)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect(
            "node must be installed to validate custom resources (scripts/test.sh installs it)",
        );
    child
        .stdin
        .take()
        .expect("node's stdin")
        .write_all(&serde_json::to_vec(objects).expect("JSON"))
        .expect("write the objects to node");
    let output = child.wait_with_output().expect("node ran");
    let report = text(&output);
    assert_ne!(
        output.status.code(),
        Some(2),
        "the @kubernetes-models packages are missing from {}; `bash scripts/test.sh` installs them:\n{report}",
        modules.display()
    );
    assert!(output.status.success(), "custom resources: {report}");
    for object in objects {
        let valid = format!(
            "valid {}/{}",
            object["kind"].as_str().expect("a kind"),
            object["metadata"]["name"].as_str().expect("a name")
        );
        assert!(
            report.lines().any(|line| line == valid),
            "{valid}: {report}"
        );
    }
}

/// What kubernetes-validate cannot check for a ServiceMonitor (a Prometheus Operator CRD): its
/// shape, and that it selects exactly one Service of the release by a port that Service has.
fn a_service_monitor_scrapes_its_service(rendered: &Rendered, monitor: &Value) {
    let name = &monitor["metadata"]["name"];
    assert_eq!(monitor["apiVersion"], "monitoring.coreos.com/v1");
    assert_eq!(monitor["metadata"]["namespace"], NAMESPACE, "{name}");
    let spec = monitor["spec"].as_object().expect("a ServiceMonitor spec");
    let keys: BTreeSet<&str> = spec.keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        BTreeSet::from(["selector", "namespaceSelector", "endpoints"])
    );
    assert_eq!(
        spec["namespaceSelector"],
        json!({"matchNames": [NAMESPACE]})
    );
    let selector = spec["selector"]["matchLabels"]
        .as_object()
        .expect("matchLabels");
    let services: Vec<&Value> = rendered
        .of_kind("Service")
        .into_iter()
        .filter(|service| {
            selector
                .iter()
                .all(|(key, value)| &service["metadata"]["labels"][key] == value)
        })
        .collect();
    assert_eq!(services.len(), 1, "{name} must select one Service");
    let endpoints = spec["endpoints"].as_array().expect("endpoints");
    assert_eq!(endpoints.len(), 1, "{name}");
    let endpoint = endpoints[0].as_object().expect("an endpoint");
    let keys: BTreeSet<&str> = endpoint.keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        BTreeSet::from(["port", "path", "interval", "scrapeTimeout"])
    );
    assert_eq!(endpoint["path"], "/metrics");
    let ports = services[0]["spec"]["ports"].as_array().expect("ports");
    assert!(
        ports.iter().any(|port| port["name"] == endpoint["port"]),
        "{name} scrapes port {} that its Service lacks",
        endpoint["port"]
    );
    for duration in ["interval", "scrapeTimeout"] {
        let value = endpoint[duration].as_str().expect("a duration string");
        assert!(
            value.ends_with('s') || value.ends_with('m'),
            "{name}: {duration} {value}"
        );
    }
}

fn env_var<'a>(container: &'a Value, name: &str) -> Option<&'a Value> {
    container["env"]
        .as_array()
        .expect("env")
        .iter()
        .find(|var| var["name"] == name)
}

fn env_names(container: &Value) -> Vec<&str> {
    container["env"]
        .as_array()
        .expect("env")
        .iter()
        .map(|var| var["name"].as_str().expect("an env name"))
        .collect()
}

fn env_value<'a>(container: &'a Value, name: &str) -> Option<&'a str> {
    container["env"]
        .as_array()
        .expect("env")
        .iter()
        .find(|var| var["name"] == name)
        .and_then(|var| var["value"].as_str())
}

#[test]
fn attachments_are_on_s3_with_a_bucket_and_off_without() {
    let minimal = Rendered::ci(MINIMAL);
    let api = container(&minimal, "bichito-api");
    assert_eq!(env_value(api, "ATTACHMENTS_BACKEND"), Some("disabled"));
    assert_eq!(env_value(api, "S3_BUCKET"), None);

    let all = Rendered::ci(ALL_OPTIONS);
    let api = container(&all, "bugs-api");
    for (name, value) in [
        ("ATTACHMENTS_BACKEND", "s3"),
        ("S3_BUCKET", "bugs-attachments"),
        ("S3_REGION", "eu-west-1"),
        ("S3_FORCE_PATH_STYLE", "true"),
        ("ATTACHMENT_UPLOAD_EXPIRY", "10m"),
        ("ATTACHMENT_DOWNLOAD_EXPIRY", "2m"),
    ] {
        assert_eq!(env_value(api, name), Some(value), "{name}");
    }
    let sse = container(&all, "bugs-sse");
    assert_eq!(
        env_value(sse, "ATTACHMENTS_BACKEND"),
        None,
        "sse pods keep no attachments"
    );
}

#[test]
fn a_nats_cluster_and_its_replicas_reach_the_api_and_sse_pods() {
    let minimal = Rendered::ci(MINIMAL);
    let api = container(&minimal, "bichito-api");
    assert_eq!(env_value(api, "NATS_URL"), Some("nats://nats:4222"));
    assert_eq!(env_value(api, "NATS_STREAM_REPLICAS"), Some("1"));

    let cluster = Rendered::minimal_with(
        "nats-cluster",
        "nats:\n  servers: [nats://nats-0.nats:4222, nats://nats-1.nats:4222, nats://nats-2.nats:4222]\n  streamReplicas: 3\n",
    );
    for name in ["bichito-api", "bichito-sse"] {
        let pod = container(&cluster, name);
        assert_eq!(
            env_value(pod, "NATS_URL"),
            Some("nats://nats-0.nats:4222,nats://nats-1.nats:4222,nats://nats-2.nats:4222"),
            "{name}: the servers, comma-separated"
        );
        assert_eq!(env_value(pod, "NATS_STREAM_REPLICAS"), Some("3"), "{name}");
    }
}

#[test]
fn sign_in_sessions_and_jwks_reach_the_pods_that_use_them() {
    let all = Rendered::ci(ALL_OPTIONS);
    let api = container(&all, "bugs-api");
    for (name, value) in [
        ("BICHITO_PUBLIC_URL", "https://bugs.example.com"),
        ("SESSION_MAX_AGE", "8h"),
        ("DASHBOARD_PATH", "/inbox"),
        ("OIDC_ISSUER", "https://sso.example.com"),
        ("OIDC_CLIENT_ID", "bichito"),
        ("OIDC_SCOPES", "openid email groups"),
        ("OIDC_TEAMS_CLAIM", "groups"),
    ] {
        assert_eq!(env_value(api, name), Some(value), "api {name}");
    }
    let sse = container(&all, "bugs-sse");
    assert_eq!(env_value(sse, "STREAM_URL_TOKENS"), Some("refuse"));
    for name in ["OIDC_ISSUER", "OIDC_CLIENT_SECRET", "SESSION_MAX_AGE"] {
        assert!(
            env_var(sse, name).is_none(),
            "sse pods sign no one in: {name}"
        );
    }
    // Sign-in is off by default; URL tokens are allowed (seed 000).
    let minimal = Rendered::ci(MINIMAL);
    assert!(env_var(container(&minimal, "bichito-api"), "OIDC_ISSUER").is_none());
    assert_eq!(
        env_value(container(&minimal, "bichito-sse"), "STREAM_URL_TOKENS"),
        Some("allow")
    );

    // A provider's key set instead of a secret or a key file, on both token-checking pods.
    let rendered = Rendered::minimal_with(
        "jwks",
        "jwt:\n  secret:\n    existingSecret: \"\"\n  jwksUrl: https://sso.example.com/jwks\n  jwksRefresh: 2m\n",
    );
    for component in ["bichito-api", "bichito-sse"] {
        let container = container(&rendered, component);
        assert_eq!(
            env_value(container, "JWT_JWKS_URL"),
            Some("https://sso.example.com/jwks"),
            "{component}"
        );
        assert_eq!(env_value(container, "JWT_JWKS_REFRESH"), Some("2m"));
        assert!(env_var(container, "JWT_SECRET").is_none(), "{component}");
    }
}

/// The one container of a component's Deployment.
fn container<'a>(rendered: &'a Rendered, deployment: &str) -> &'a Value {
    let containers =
        &rendered.one("Deployment", deployment)["spec"]["template"]["spec"]["containers"];
    assert_eq!(containers.as_array().map(Vec::len), Some(1), "{deployment}");
    &containers[0]
}

#[test]
fn the_chart_lints_clean_with_every_ci_values_file() {
    let output = chart_py(&["lint"], &[]);
    let report = text(&output);
    assert!(output.status.success(), "helm lint --strict: {report}");
    for file in ["minimal-values.yaml", "all-options-values.yaml"] {
        assert!(
            report.contains(&format!("lint passed with {file}")),
            "{report}"
        );
    }
}

#[test]
fn the_minimal_render_validates_against_the_kubernetes_schemas() {
    let rendered = Rendered::ci(MINIMAL);
    rendered.validate();
    rendered.assert_objects(&[
        "CustomResourceDefinition/honeycombs.bichito.dev",
        "Deployment/bichito-api",
        "Deployment/bichito-sse",
        "Deployment/bichito-operator",
        "Service/bichito-api",
        "Service/bichito-sse",
        "Service/bichito-operator",
        "ServiceAccount/bichito-api",
        "ServiceAccount/bichito-sse",
        "ServiceAccount/bichito-operator",
        "ClusterRole/bichito-operator",
        "ClusterRoleBinding/bichito-operator",
        "Role/bichito-operator-leader-election",
        "RoleBinding/bichito-operator-leader-election",
        "PodDisruptionBudget/bichito-api",
        "PodDisruptionBudget/bichito-sse",
    ]);
    for (component, replicas) in [("api", 2), ("sse", 2), ("operator", 2)] {
        let deployment = rendered.one("Deployment", &format!("bichito-{component}"));
        assert_eq!(deployment["spec"]["replicas"], replicas, "{component}");
        // The image tag defaults to the chart's appVersion, which follows the crates' version.
        assert_eq!(
            deployment["spec"]["template"]["spec"]["containers"][0]["image"],
            format!("bichito:{}", env!("CARGO_PKG_VERSION")),
            "{component}: bump appVersion in charts/bichito/Chart.yaml with the workspace version"
        );
    }
    for (service, port, target) in [
        ("bichito-api", 80, "http"),
        ("bichito-sse", 80, "http"),
        ("bichito-operator", 8082, "metrics"),
    ] {
        let ports = &rendered.one("Service", service)["spec"]["ports"];
        assert_eq!(ports[0]["port"], port, "{service}");
        assert_eq!(ports[0]["targetPort"], target, "{service}");
    }
    let notes = rendered.file("NOTES.txt");
    for line in [
        "get secret checkout-web-api-key -o jsonpath='{.data.api-key}' | base64 -d",
        "kubectl -n bichito port-forward svc/bichito-api 8080:80",
        "curl -i -X POST http://127.0.0.1:8080/api/v1/bugs",
    ] {
        assert!(notes.contains(line), "NOTES.txt lacks {line:?}:\n{notes}");
    }
}

#[test]
fn the_all_options_render_validates_against_the_kubernetes_schemas() {
    let rendered = Rendered::ci(ALL_OPTIONS);
    rendered.validate();
    rendered.assert_objects(&[
        "CustomResourceDefinition/honeycombs.bichito.dev",
        "Deployment/bugs-api",
        "Deployment/bugs-sse",
        "Deployment/bugs-operator",
        "Service/bugs-api",
        "Service/bugs-sse",
        "Service/bugs-operator",
        "ServiceAccount/bugs-ingest",
        "ServiceAccount/bugs-sse",
        "ServiceAccount/bugs-operator",
        "Role/bugs-operator",
        "RoleBinding/bugs-operator",
        "Role/bugs-operator-leader-election",
        "RoleBinding/bugs-operator-leader-election",
        "PodDisruptionBudget/bugs-api",
        "PodDisruptionBudget/bugs-sse",
        "PodDisruptionBudget/bugs-operator",
        "HorizontalPodAutoscaler/bugs-api",
        "HorizontalPodAutoscaler/bugs-sse",
        "ServiceMonitor/bugs-api",
        "ServiceMonitor/bugs-sse",
        "ServiceMonitor/bugs-operator",
        "Ingress/bugs-api",
        "Ingress/bugs-sse",
        "HTTPRoute/bugs",
        "PrometheusRule/bugs",
        "ConfigMap/bugs-dashboard",
        "NetworkPolicy/bugs-api",
        "NetworkPolicy/bugs-sse",
        "NetworkPolicy/bugs-operator",
    ]);
    // The autoscaler owns the replica count of what it scales, and only of that.
    for (component, min, max) in [("api", 3, 12), ("sse", 2, 20)] {
        let name = format!("bugs-{component}");
        let hpa = &rendered.one("HorizontalPodAutoscaler", &name)["spec"];
        assert_eq!(
            hpa["scaleTargetRef"],
            json!({"apiVersion": "apps/v1", "kind": "Deployment", "name": name})
        );
        assert_eq!(
            (&hpa["minReplicas"], &hpa["maxReplicas"]),
            (&json!(min), &json!(max))
        );
        assert!(rendered.one("Deployment", &name)["spec"]["replicas"].is_null());
    }
    assert_eq!(
        rendered.one("Deployment", "bugs-operator")["spec"]["replicas"],
        2
    );
    assert_eq!(
        rendered.one("PodDisruptionBudget", "bugs-api")["spec"]["minAvailable"],
        "50%"
    );
    let monitor = rendered.one("ServiceMonitor", "bugs-api");
    assert_eq!(monitor["metadata"]["labels"]["release"], "prometheus");
    // Pass-through values land where they belong.
    let pod = &rendered.one("Deployment", "bugs-api")["spec"]["template"];
    assert_eq!(
        pod["metadata"]["annotations"]["example.com/team"],
        "platform"
    );
    assert_eq!(pod["metadata"]["labels"]["example.com/cost-center"], "bugs");
    assert_eq!(
        pod["spec"]["imagePullSecrets"],
        json!([{"name": "registry-credentials"}])
    );
    assert_eq!(
        pod["spec"]["nodeSelector"],
        json!({"kubernetes.io/os": "linux"})
    );
    for key in ["tolerations", "affinity", "topologySpreadConstraints"] {
        assert!(
            pod["spec"][key].is_array() || pod["spec"][key].is_object(),
            "{key}"
        );
    }
    assert_eq!(
        pod["spec"]["containers"][0]["image"],
        "registry.example.com/platform/bichito:0.1.0-rc1"
    );
    assert_eq!(
        rendered.one("ServiceAccount", "bugs-ingest")["metadata"]["annotations"]["eks.amazonaws.com/role-arn"],
        "arn:aws:iam::123456789012:role/bugs-attachments"
    );
    // Timeouts, origins and the installation reach the pods that use them.
    for component in ["api", "sse"] {
        let deployment = rendered.one("Deployment", &format!("bugs-{component}"));
        let container = &deployment["spec"]["template"]["spec"]["containers"][0];
        assert_eq!(env_value(container, "HTTP_HEADER_READ_TIMEOUT"), Some("5s"));
        assert_eq!(env_value(container, "HTTP_IDLE_TIMEOUT"), Some("120s"));
        assert_eq!(env_value(container, "SHUTDOWN_TIMEOUT"), Some("40s"));
        assert_eq!(
            env_value(container, "DASHBOARD_ORIGINS"),
            Some("https://bugs.example.com,https://triage.example.com:8443")
        );
        assert_eq!(
            deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"], 50,
            "the shutdown timeout and a margin"
        );
    }
    let operator = container(&rendered, "bugs-operator");
    assert_eq!(
        env_value(operator, "BICHITO_INSTALLATION"),
        Some("production")
    );
    assert_eq!(env_value(operator, "MAX_CONCURRENT_RECONCILES"), Some("4"));
    assert_eq!(env_value(operator, "DATABASE_TIMEOUT"), Some("3s"));
    assert_eq!(
        env_value(container(&rendered, "bugs-api"), "DATABASE_TIMEOUT"),
        Some("3s")
    );
    assert_eq!(
        env_value(container(&rendered, "bugs-api"), "DATABASE_INSERT_QUEUE"),
        Some("1024")
    );
}

#[test]
fn every_container_runs_restricted_with_probes_and_resources() {
    for values in [MINIMAL, ALL_OPTIONS] {
        let rendered = Rendered::ci(values);
        let deployments = rendered.of_kind("Deployment");
        assert_eq!(deployments.len(), 3, "{values}");
        for deployment in deployments {
            let name = deployment["metadata"]["name"].as_str().expect("a name");
            let component = deployment["metadata"]["labels"]["app.kubernetes.io/component"]
                .as_str()
                .expect("a component label");
            let pod = &deployment["spec"]["template"]["spec"];
            assert_eq!(
                (
                    &pod["securityContext"]["runAsNonRoot"],
                    &pod["securityContext"]["runAsUser"],
                    &pod["securityContext"]["seccompProfile"],
                ),
                (
                    &json!(true),
                    &json!(65532),
                    &json!({"type": "RuntimeDefault"})
                ),
                "{values}: {name} pod securityContext"
            );
            // The operator alone talks to the Kubernetes API.
            let talks_to_kubernetes = component == "operator";
            assert_eq!(
                pod["automountServiceAccountToken"], talks_to_kubernetes,
                "{name}"
            );
            let account = pod["serviceAccountName"]
                .as_str()
                .expect("a service account");
            assert_eq!(
                rendered.one("ServiceAccount", account)["automountServiceAccountToken"],
                talks_to_kubernetes,
                "{name}"
            );
            let init = pod["initContainers"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            let containers = pod["containers"].as_array().expect("containers");
            for container in containers.iter().chain(&init) {
                let context = &container["securityContext"];
                for (field, expected) in [
                    ("runAsNonRoot", json!(true)),
                    ("runAsUser", json!(65532)),
                    ("readOnlyRootFilesystem", json!(true)),
                    ("allowPrivilegeEscalation", json!(false)),
                    ("seccompProfile", json!({"type": "RuntimeDefault"})),
                    ("capabilities", json!({"drop": ["ALL"]})),
                ] {
                    assert_eq!(context[field], expected, "{values}: {name} {field}");
                }
                for part in ["requests", "limits"] {
                    for resource in ["cpu", "memory"] {
                        assert!(
                            container["resources"][part][resource].is_string(),
                            "{values}: {name} resources.{part}.{resource}"
                        );
                    }
                }
            }
            let container = &containers[0];
            let port = &container["ports"][0];
            for (probe, path) in [("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")] {
                assert_eq!(
                    container[probe]["httpGet"],
                    json!({"path": path, "port": port["name"]}),
                    "{values}: {name} {probe}"
                );
            }
            // The binaries listen on 127.0.0.1 unless told otherwise.
            assert_eq!(
                env_var(container, "BICHITO_LISTEN").map(|var| &var["value"]),
                Some(&json!(format!("0.0.0.0:{}", port["containerPort"]))),
                "{values}: {name}"
            );
            let command = match component {
                "api" => json!(["/usr/local/bin/bichito", "api"]),
                "sse" => json!(["/usr/local/bin/bichito", "sse"]),
                _ => json!(["/usr/local/bin/bichito-operator", "run"]),
            };
            assert_eq!(container["command"], command, "{name}");
        }
    }
}

/// `(component, env var, Secret, key)` the chart must take from Secrets.
type SecretRef = (&'static str, &'static str, &'static str, &'static str);

#[test]
fn secrets_are_referenced_never_inlined() {
    let minimal: &[SecretRef] = &[
        ("api", "DATABASE_URL", "bichito-database", "url"),
        ("operator", "DATABASE_URL", "bichito-database", "url"),
        ("api", "JWT_SECRET", "bichito-jwt", "jwt-secret"),
        ("sse", "JWT_SECRET", "bichito-jwt", "jwt-secret"),
    ];
    let all_options: &[SecretRef] = &[
        ("api", "DATABASE_URL", "bugs-database", "database-url"),
        ("operator", "DATABASE_URL", "bugs-database", "database-url"),
        ("api", "NATS_URL", "bugs-nats", "nats-url"),
        ("sse", "NATS_URL", "bugs-nats", "nats-url"),
        ("api", "AWS_ACCESS_KEY_ID", "bugs-s3", "AWS_ACCESS_KEY_ID"),
        (
            "api",
            "AWS_SECRET_ACCESS_KEY",
            "bugs-s3",
            "AWS_SECRET_ACCESS_KEY",
        ),
        ("api", "OIDC_CLIENT_SECRET", "bugs-oidc", "client-secret"),
    ];
    for (values, prefix, refs) in [
        (MINIMAL, "bichito", minimal),
        (ALL_OPTIONS, "bugs", all_options),
    ] {
        let rendered = Rendered::ci(values);
        assert_eq!(
            rendered.of_kind("Secret").len(),
            0,
            "{values}: no Secret objects"
        );
        // The one ConfigMap is the Grafana dashboard (all options); the leak check below covers it.
        for config_map in rendered.of_kind("ConfigMap") {
            assert_eq!(
                config_map["metadata"]["name"], "bugs-dashboard",
                "{values}: no ConfigMap but the dashboard"
            );
        }
        for &(component, var, secret, key) in refs {
            let container = container(&rendered, &format!("{prefix}-{component}"));
            assert_eq!(
                env_var(container, var),
                Some(
                    &json!({"name": var, "valueFrom": {"secretKeyRef": {"name": secret, "key": key}}})
                ),
                "{values}: {component} {var}"
            );
        }
        // Nothing sensitive is ever a plain value: the variables above, wherever they appear.
        let sensitive = [
            "DATABASE_URL",
            "JWT_SECRET",
            "AWS_ACCESS_KEY_ID",
            "AWS_SECRET_ACCESS_KEY",
            "OIDC_CLIENT_SECRET",
        ];
        for deployment in rendered.of_kind("Deployment") {
            let name = &deployment["metadata"]["name"];
            let container = &deployment["spec"]["template"]["spec"]["containers"][0];
            for var in container["env"].as_array().expect("env") {
                if sensitive.iter().any(|sensitive| var["name"] == *sensitive) {
                    assert!(var.get("value").is_none(), "{values}: {name} {var}");
                    assert!(
                        var["valueFrom"]["secretKeyRef"].is_object(),
                        "{values}: {name} {var}"
                    );
                }
            }
        }
        // The sse pods hold no database credentials: they never open the database.
        assert!(
            env_var(
                container(&rendered, &format!("{prefix}-sse")),
                "DATABASE_URL"
            )
            .is_none()
        );
        let everything = serde_json::to_string(&rendered.manifests).expect("JSON");
        for leak in ["postgres://", "BEGIN PUBLIC KEY", "BEGIN PRIVATE KEY"] {
            assert!(!everything.contains(leak), "{values}: {leak} in the render");
        }
    }
    // The JWT public key is a mounted Secret, read from its file.
    let rendered = Rendered::ci(ALL_OPTIONS);
    for component in ["api", "sse"] {
        let name = format!("bugs-{component}");
        let pod = &rendered.one("Deployment", &name)["spec"]["template"]["spec"];
        let volume = pod["volumes"]
            .as_array()
            .expect("volumes")
            .iter()
            .find(|volume| volume["name"] == "jwt-public-key")
            .expect("the JWT public key volume");
        assert_eq!(
            volume["secret"],
            json!({"secretName": "bugs-jwt-public-key", "items": [{"key": "jwt.pem", "path": "jwt.pem"}]})
        );
        assert_eq!(
            env_var(&pod["containers"][0], "JWT_PUBLIC_KEY_FILE").map(|var| &var["value"]),
            Some(&json!("/etc/bichito/jwt/jwt.pem")),
            "{name}"
        );
    }
}

/// The operator's rules over Honeycombs, their Secrets and Events: nothing more.
fn operator_rules() -> Value {
    json!([
        {"apiGroups": ["bichito.dev"], "resources": ["honeycombs"], "verbs": ["get", "list", "watch", "patch", "update"]},
        {"apiGroups": ["bichito.dev"], "resources": ["honeycombs/status"], "verbs": ["get", "patch", "update"]},
        {"apiGroups": ["bichito.dev"], "resources": ["honeycombs/finalizers"], "verbs": ["update"]},
        {"apiGroups": [""], "resources": ["secrets"], "verbs": ["get", "list", "watch", "create", "patch", "delete"]},
        {"apiGroups": ["events.k8s.io"], "resources": ["events"], "verbs": ["create", "patch"]},
    ])
}

fn operator_subject(account: &str) -> Value {
    json!([{"kind": "ServiceAccount", "name": account, "namespace": NAMESPACE}])
}

/// The leader Lease, in the release namespace.
fn assert_leader_election_rbac(rendered: &Rendered, name: &str, account: &str) {
    let role = rendered.one("Role", name);
    assert_eq!(role["metadata"]["namespace"], NAMESPACE);
    assert_eq!(
        role["rules"],
        json!([{"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["get", "create", "update", "patch"]}])
    );
    let binding = rendered.one("RoleBinding", name);
    assert_eq!(binding["metadata"]["namespace"], NAMESPACE);
    assert_eq!(
        binding["roleRef"],
        json!({"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name})
    );
    assert_eq!(binding["subjects"], operator_subject(account));
}

#[test]
fn operator_rbac_is_exactly_the_least_privilege_set() {
    // Every namespace: a ClusterRole.
    let rendered = Rendered::ci(MINIMAL);
    let role = rendered.one("ClusterRole", "bichito-operator");
    assert_eq!(role["rules"], operator_rules());
    let binding = rendered.one("ClusterRoleBinding", "bichito-operator");
    assert_eq!(
        binding["roleRef"],
        json!({"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "bichito-operator"})
    );
    assert_eq!(binding["subjects"], operator_subject("bichito-operator"));
    assert_leader_election_rbac(
        &rendered,
        "bichito-operator-leader-election",
        "bichito-operator",
    );
    assert_eq!(rendered.of_kind("Role").len(), 1, "only the Lease Role");

    // One namespace: the same rules in a Role there, and no cluster-wide grant.
    let rendered = Rendered::ci(ALL_OPTIONS);
    assert_eq!(rendered.of_kind("ClusterRole").len(), 0);
    assert_eq!(rendered.of_kind("ClusterRoleBinding").len(), 0);
    let role = rendered.one("Role", "bugs-operator");
    assert_eq!(role["metadata"]["namespace"], "payments");
    assert_eq!(role["rules"], operator_rules());
    let binding = rendered.one("RoleBinding", "bugs-operator");
    assert_eq!(binding["metadata"]["namespace"], "payments");
    assert_eq!(
        binding["roleRef"],
        json!({"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "bugs-operator"})
    );
    assert_eq!(binding["subjects"], operator_subject("bugs-operator"));
    assert_leader_election_rbac(&rendered, "bugs-operator-leader-election", "bugs-operator");
    let operator = container(&rendered, "bugs-operator");
    assert_eq!(
        env_var(operator, "WATCH_NAMESPACE").map(|var| &var["value"]),
        Some(&json!("payments"))
    );

    // Without leader election (one replica) there is no Lease to grant.
    let rendered = Rendered::minimal_with(
        "no-leader-election",
        "operator:\n  replicas: 1\n  leaderElection:\n    enabled: false\n",
    );
    assert_eq!(rendered.of_kind("Role").len(), 0);
    assert_eq!(rendered.of_kind("RoleBinding").len(), 0);
}

#[test]
fn the_chart_crd_is_the_generated_crd_kept_on_uninstall() {
    let committed = std::fs::read(repo().join("crds/honeycomb.yaml")).expect("crds/honeycomb.yaml");
    let copy = std::fs::read(chart().join("files/honeycomb-crd.yaml"))
        .expect("charts/bichito/files/honeycomb-crd.yaml");
    assert!(
        committed == copy,
        "the chart's CRD drifted: cp crds/honeycomb.yaml charts/bichito/files/honeycomb-crd.yaml"
    );

    let rendered = Rendered::ci(MINIMAL);
    let mut crd = rendered
        .one("CustomResourceDefinition", "honeycombs.bichito.dev")
        .clone();
    let metadata = crd["metadata"].as_object_mut().expect("metadata");
    assert_eq!(
        metadata.remove("annotations"),
        Some(json!({"helm.sh/resource-policy": "keep"}))
    );
    let labels = metadata.remove("labels").expect("labels");
    assert_eq!(labels["app.kubernetes.io/managed-by"], "Helm");
    // Apart from Helm's labels and annotation, exactly the CRD of the Rust types.
    let generated = serde_json::to_value(Honeycomb::crd()).expect("the CRD as JSON");
    assert!(
        crd == generated,
        "rendered {crd:#}\n\ngenerated {generated:#}"
    );

    let rendered = Rendered::minimal_with("no-crd", "crds:\n  install: false\n");
    assert_eq!(rendered.of_kind("CustomResourceDefinition").len(), 0);
}

#[test]
fn values_the_schema_forbids_are_refused_with_the_key_named() {
    let scratch = Scratch::new("refusals");
    for (name, yaml, reason) in [
        (
            "wrong-type.yaml",
            "api:\n  replicas: \"two\"\n",
            "at '/api/replicas': got string, want integer",
        ),
        (
            "misspelt.yaml",
            "api:\n  replica: 2\n",
            "at '/api': additional properties 'replica' not allowed",
        ),
        ("bad-enum.yaml", "logFormat: yaml\n", "at '/logFormat'"),
        (
            "bad-duration.yaml",
            "sse:\n  heartbeatInterval: soon\n",
            "at '/sse/heartbeatInterval'",
        ),
        (
            "no-database.yaml",
            "database:\n  existingSecret: \"\"\n",
            "at '/database/existingSecret': minLength: got 0, want 1",
        ),
        (
            "two-jwt-keys.yaml",
            "jwt:\n  publicKey:\n    existingSecret: jwt-public-key\n",
            "set exactly one of jwt.secret.existingSecret",
        ),
        (
            "jwks-and-secret.yaml",
            "jwt:\n  jwksUrl: https://sso.example.com/jwks\n",
            "set exactly one of jwt.secret.existingSecret",
        ),
        (
            "oidc-without-client.yaml",
            "signIn:\n  oidc:\n    issuer: https://sso.example.com\n",
            "signIn.oidc.issuer needs signIn.oidc.clientId and signIn.publicUrl",
        ),
        (
            "bad-url-tokens.yaml",
            "sse:\n  urlTokens: sometimes\n",
            "at '/sse/urlTokens'",
        ),
        (
            "ingress-without-hosts.yaml",
            "ingress:\n  enabled: true\n",
            "ingress.enabled needs ingress.hosts",
        ),
        (
            "route-without-parent.yaml",
            "httpRoute:\n  enabled: true\n",
            "httpRoute.enabled needs httpRoute.parentRefs",
        ),
        (
            "unknown-dependency.yaml",
            "networkPolicy:\n  egress:\n    redis:\n      to: []\n      ports: [{port: 6379}]\n",
            "at '/networkPolicy/egress': additional properties 'redis' not allowed",
        ),
        (
            "bad-selector.yaml",
            "prometheusRule:\n  selectors:\n    api: 'job=bugs-api'\n",
            "at '/prometheusRule/selectors/api'",
        ),
        (
            "replicas-without-lease.yaml",
            "operator:\n  leaderElection:\n    enabled: false\n",
            "operator.replicas > 1 needs operator.leaderElection.enabled",
        ),
    ] {
        let bad = scratch.values(name, yaml);
        let refusal = match Rendered::try_with(name, &[chart().join(MINIMAL), bad]) {
            Ok(rendered) => panic!("{name} was accepted: {:?}", rendered.inventory()),
            Err(refusal) => refusal,
        };
        assert!(refusal.contains(reason), "{name}: {refusal}");
    }
}

/// Names in `env = "NAME"` of a clap config file.
fn clap_env_names(config: &Path) -> BTreeSet<String> {
    let source = std::fs::read_to_string(config).expect("a config.rs");
    source
        .split("env = \"")
        .skip(1)
        .filter_map(|rest| rest.split('"').next())
        .map(String::from)
        .collect()
}

#[test]
fn every_env_var_the_chart_sets_is_read_by_its_binary() {
    let api_flags = clap_env_names(&repo().join("api/src/config.rs"));
    // Read by the AWS SDK's credential chain, not by clap.
    let s3 = ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"];
    let operator_help = Command::new(env!("CARGO_BIN_EXE_bichito-operator"))
        .args(["run", "--help"])
        .output()
        .expect("run bichito-operator run --help");
    let operator_help = text(&operator_help);
    for (values, prefix, extra) in [
        (MINIMAL, "bichito", &[][..]),
        (ALL_OPTIONS, "bugs", &["RUST_BACKTRACE"][..]),
    ] {
        let rendered = Rendered::ci(values);
        for component in ["api", "sse"] {
            for name in env_names(container(&rendered, &format!("{prefix}-{component}"))) {
                assert!(
                    api_flags.contains(name) || s3.contains(&name) || extra.contains(&name),
                    "{values}: {component} sets {name}, which api/src/config.rs does not read"
                );
            }
        }
        for name in env_names(container(&rendered, &format!("{prefix}-operator"))) {
            assert!(
                operator_help.contains(&format!("[env: {name}")),
                "{values}: the operator gets {name}, which `bichito-operator run --help` lacks:\n{operator_help}"
            );
        }
    }
}

// ---------------------------------------------------------------- routing: Ingress, HTTPRoute

/// `python3` with PyYAML (which `scripts/chart.py` needs too): a YAML file as JSON.
fn yaml_file(path: &Path) -> Value {
    let output = Command::new("python3")
        .args([
            "-c",
            "import json, sys, yaml; json.dump(yaml.safe_load(open(sys.argv[1])), sys.stdout)",
        ])
        .arg(path)
        .output()
        .expect("python3 runs");
    assert!(
        output.status.success(),
        "{}: {}",
        path.display(),
        text(&output)
    );
    serde_json::from_slice(&output.stdout).expect("JSON from python3")
}

/// How a proxy reads a path pattern: ingress-nginx writes `location ~* "^<path>"` (a
/// case-insensitive regex anchored at the start only); Gateway API implementations match a
/// RegularExpression against the whole path.
#[derive(Clone, Copy)]
enum PathRegex {
    IngressNginx,
    GatewayApi,
}

/// Which of `paths` the regular expression `pattern` matches, read as `dialect` does (with
/// Python's `re`, close to PCRE and RE2 for the syntax used here).
fn regex_matches(pattern: &str, dialect: PathRegex, paths: &[String]) -> Vec<bool> {
    let program = match dialect {
        PathRegex::IngressNginx => "re.search('^' + pattern, path, re.I)",
        PathRegex::GatewayApi => "re.fullmatch(pattern, path)",
    };
    let output = Command::new("python3")
        .args([
            "-c",
            &format!(
                "import json, re, sys\npattern = sys.argv[1]\nprint(json.dumps([bool({program}) for path in sys.argv[2:]]))"
            ),
            pattern,
        ])
        .args(paths)
        .output()
        .expect("python3 runs");
    assert!(output.status.success(), "{pattern}: {}", text(&output));
    serde_json::from_slice(&output.stdout).expect("a JSON list")
}

/// Every route template the api's source declares (utoipa `path = "..."` and the stream's
/// `ROUTE`), with `{team_id}`-like parameters filled in: what the proxies must tell apart.
fn declared_routes() -> (String, Vec<String>) {
    fn walk(dir: &Path, sources: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).expect("a source directory") {
            let path = entry.expect("a directory entry").path();
            if path.is_dir() {
                walk(&path, sources);
            } else if path.extension().is_some_and(|ext| ext == "rs") {
                sources.push(path);
            }
        }
    }
    let fill = |template: &str| {
        template
            .split('/')
            .map(|part| {
                if part.starts_with('{') {
                    "payments"
                } else {
                    part
                }
            })
            .collect::<Vec<_>>()
            .join("/")
    };
    let mut sources = Vec::new();
    walk(&repo().join("api/src"), &mut sources);
    let mut routes = Vec::new();
    for source in sources {
        let code = std::fs::read_to_string(&source).expect("a source file");
        for rest in code.split("path = \"").skip(1) {
            let template = rest.split('"').next().expect("a closing quote");
            if template.starts_with("/api/") {
                routes.push(fill(template));
            }
        }
    }
    let stream = std::fs::read_to_string(repo().join("api/src/stream/mod.rs"))
        .expect("api/src/stream/mod.rs");
    let stream = stream
        .split("pub const ROUTE: &str = \"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("the stream's ROUTE");
    routes.sort();
    routes.dedup();
    (fill(stream), routes)
}

/// `pattern` sends the team stream to sse and no other api route, not even those that share
/// its prefix (`/api/v1/teams/{team}/bugs`, `/api/v1/teams/{team}/stream/tickets`).
fn assert_only_the_stream_matches(pattern: &str, dialect: PathRegex) {
    let (stream, routes) = declared_routes();
    let others: Vec<String> = routes
        .into_iter()
        .filter(|route| *route != stream)
        .collect();
    let under_teams = others
        .iter()
        .filter(|route| route.starts_with("/api/v1/teams/"))
        .count();
    assert!(
        under_teams >= 2,
        "the api serves routes under /api/v1/teams/ besides the stream: {others:?}"
    );
    let mut paths = vec![stream.clone()];
    paths.extend(others.iter().cloned());
    paths.extend(
        [
            "/api/v1/teams//stream",
            "/api/v1/teams/a/b/stream",
            "/api/v1/teams/payments/streams",
            "/inbox",
            "/widget.js",
        ]
        .map(String::from),
    );
    let matched = regex_matches(pattern, dialect, &paths);
    assert!(matched[0], "{pattern} must match the stream {stream}");
    for (path, matched) in paths.iter().zip(&matched).skip(1) {
        assert!(
            !matched,
            "{pattern} sends {path} to sse; it belongs to the api"
        );
    }
}

/// The backend a route names is a Service of the release, on a port that Service has.
fn assert_backend(rendered: &Rendered, name: &Value, port: &Value) {
    let service = rendered.one("Service", name.as_str().expect("a Service name"));
    assert!(
        service["spec"]["ports"]
            .as_array()
            .expect("ports")
            .iter()
            .any(|service_port| &service_port["port"] == port),
        "{name} has no port {port}"
    );
}

/// What the Gateway API schema cannot check for the HTTPRoute: its shape, the stream's rule
/// first to the sse Service with timeouts, then everything else to the api Service.
fn an_http_route_sends_the_stream_to_sse(rendered: &Rendered, route: &Value) {
    let name = route["metadata"]["name"].as_str().expect("a name");
    let prefix = name.to_owned();
    assert_eq!(route["metadata"]["namespace"], NAMESPACE);
    let spec = route["spec"].as_object().expect("an HTTPRoute spec");
    for key in spec.keys() {
        assert!(
            ["parentRefs", "hostnames", "rules"].contains(&key.as_str()),
            "{name}: unexpected spec.{key}"
        );
    }
    assert!(
        !spec["parentRefs"]
            .as_array()
            .expect("parentRefs")
            .is_empty()
    );
    let rules = spec["rules"].as_array().expect("rules");
    assert_eq!(rules.len(), 2, "{name}: the stream's rule and the rest");
    for (rule, component) in rules.iter().zip(["sse", "api"]) {
        let backends = rule["backendRefs"].as_array().expect("backendRefs");
        assert_eq!(backends.len(), 1, "{name}");
        assert_eq!(backends[0]["name"], format!("{prefix}-{component}"));
        assert_backend(rendered, &backends[0]["name"], &backends[0]["port"]);
    }
    assert_eq!(
        rules[1]["matches"],
        json!([{"path": {"type": "PathPrefix", "value": "/"}}])
    );
    assert_eq!(
        rules[1].get("timeouts"),
        None,
        "the api keeps the gateway's timeouts"
    );
    let matches = rules[0]["matches"].as_array().expect("matches");
    for matched in matches {
        if matched["path"]["type"] == "RegularExpression" {
            let pattern = matched["path"]["value"].as_str().expect("a regex");
            assert_only_the_stream_matches(pattern, PathRegex::GatewayApi);
        }
    }
}

#[test]
fn the_stream_goes_to_sse_and_everything_else_to_api() {
    let rendered = Rendered::ci(ALL_OPTIONS);
    let values = yaml_file(&chart().join(ALL_OPTIONS));
    let hosts = &values["ingress"]["hosts"];
    let tls = json!([{"hosts": hosts, "secretName": "bugs-example-com-tls"}]);
    for (component, path_type) in [("api", "Prefix"), ("sse", "ImplementationSpecific")] {
        let name = format!("bugs-{component}");
        let ingress = rendered.one("Ingress", &name);
        assert_eq!(ingress["metadata"]["namespace"], NAMESPACE);
        let spec = &ingress["spec"];
        assert_eq!(spec["ingressClassName"], "nginx", "{name}");
        assert_eq!(spec["tls"], tls, "{name}: one certificate for every host");
        let rules = spec["rules"].as_array().expect("rules");
        assert_eq!(rules.len(), 2, "{name}: one rule per host");
        for (rule, host) in rules.iter().zip(hosts.as_array().expect("hosts")) {
            assert_eq!(&rule["host"], host);
            let paths = rule["http"]["paths"].as_array().expect("paths");
            assert_eq!(paths.len(), 1, "{name}");
            assert_eq!(paths[0]["pathType"], path_type, "{name}");
            let backend = &paths[0]["backend"]["service"];
            assert_eq!(backend["name"], name.as_str());
            assert_backend(&rendered, &backend["name"], &backend["port"]["number"]);
        }
        let annotations = &ingress["metadata"]["annotations"];
        assert_eq!(
            annotations["nginx.ingress.kubernetes.io/proxy-body-size"], "2m",
            "{name}: the common annotations"
        );
    }
    // The api's Ingress: everything, and the certificate request (one Certificate per Secret).
    let api = rendered.one("Ingress", "bugs-api");
    assert_eq!(api["spec"]["rules"][0]["http"]["paths"][0]["path"], "/");
    assert_eq!(
        api["metadata"]["annotations"]["cert-manager.io/cluster-issuer"],
        "letsencrypt-production"
    );
    // The stream's: a regex for ingress-nginx, unbuffered, with long timeouts.
    let sse = rendered.one("Ingress", "bugs-sse");
    let annotations = sse["metadata"]["annotations"]
        .as_object()
        .expect("annotations");
    assert!(!annotations.contains_key("cert-manager.io/cluster-issuer"));
    for (key, value) in [
        ("use-regex", "true"),
        ("proxy-buffering", "off"),
        ("proxy-read-timeout", "7200"),
        ("proxy-send-timeout", "7200"),
    ] {
        assert_eq!(
            annotations[&format!("nginx.ingress.kubernetes.io/{key}")],
            value,
            "{key}"
        );
    }
    let pattern = sse["spec"]["rules"][0]["http"]["paths"][0]["path"]
        .as_str()
        .expect("a path");
    assert_only_the_stream_matches(pattern, PathRegex::IngressNginx);

    let route = rendered.one("HTTPRoute", "bugs");
    assert_eq!(
        route["spec"]["parentRefs"],
        json!([{"name": "public", "namespace": "gateways", "sectionName": "https"}])
    );
    assert_eq!(route["spec"]["hostnames"], json!(["bugs.example.com"]));
    assert_eq!(
        route["spec"]["rules"][0]["timeouts"],
        json!({"request": "0s", "backendRequest": "0s"}),
        "an open stream outlives the gateway's request timeout"
    );
    an_http_route_sends_the_stream_to_sse(&rendered, route);

    // Defaults: the nginx annotations and the regex, no TLS, and a route whose stream rule
    // turns the request timeout off.
    let rendered = Rendered::minimal_with(
        "routing-defaults",
        "ingress:\n  enabled: true\n  hosts: [bugs.example.com]\nhttpRoute:\n  enabled: true\n  parentRefs: [{name: public}]\n",
    );
    rendered.validate();
    let sse = rendered.one("Ingress", "bichito-sse");
    assert_eq!(
        sse["metadata"]["annotations"],
        json!({
            "nginx.ingress.kubernetes.io/use-regex": "true",
            "nginx.ingress.kubernetes.io/proxy-buffering": "off",
            "nginx.ingress.kubernetes.io/proxy-read-timeout": "3600",
            "nginx.ingress.kubernetes.io/proxy-send-timeout": "3600",
        })
    );
    assert_only_the_stream_matches(
        sse["spec"]["rules"][0]["http"]["paths"][0]["path"]
            .as_str()
            .expect("a path"),
        PathRegex::IngressNginx,
    );
    assert!(rendered.one("Ingress", "bichito-api")["spec"]["tls"].is_null());
    assert_eq!(
        rendered.one("HTTPRoute", "bichito")["spec"]["rules"][0]["timeouts"],
        json!({"request": "0s"})
    );
    // cert-manager without a Secret name: it writes `<fullname>-tls`.
    let rendered = Rendered::minimal_with(
        "routing-issuer",
        "ingress:\n  enabled: true\n  hosts: [bugs.example.com]\n  certManager:\n    clusterIssuer: letsencrypt\n",
    );
    for name in ["bichito-api", "bichito-sse"] {
        assert_eq!(
            rendered.one("Ingress", name)["spec"]["tls"],
            json!([{"hosts": ["bugs.example.com"], "secretName": "bichito-tls"}]),
            "{name}"
        );
    }
}

// ------------------------------------------------------------ alerts, runbook, dashboard

/// `promtool` from `BICHITO_PROMTOOL` (set by `scripts/test.sh`) or PATH, with `args`.
fn promtool(args: &[&str], dir: &Path) -> Output {
    let promtool = std::env::var("BICHITO_PROMTOOL").unwrap_or_else(|_| "promtool".to_owned());
    Command::new(&promtool)
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|err| {
            panic!("promtool ({promtool}) must be installed; scripts/test.sh provides it: {err}")
        })
}

/// The rendered PrometheusRule's alerts, each with its group's name.
fn alerts(rule: &Value) -> Vec<&Value> {
    rule["spec"]["groups"]
        .as_array()
        .expect("groups")
        .iter()
        .flat_map(|group| group["rules"].as_array().expect("rules"))
        .collect()
}

/// What the Prometheus Operator's schema cannot check for the PrometheusRule: alerts only, each
/// with a severity, a summary, a description and a runbook entry in the README.
fn a_prometheus_rule_holds_only_alerts_with_runbooks(rule: &Value) {
    assert_eq!(rule["metadata"]["namespace"], NAMESPACE);
    let alerts = alerts(rule);
    assert!(!alerts.is_empty());
    for alert in alerts {
        let name = alert["alert"]
            .as_str()
            .expect("alerts only, no recording rules");
        assert!(
            ["critical", "warning"].contains(&alert["labels"]["severity"].as_str().unwrap_or("")),
            "{name}: severity"
        );
        for annotation in ["summary", "description"] {
            assert!(
                alert["annotations"][annotation]
                    .as_str()
                    .is_some_and(|text| !text.is_empty()),
                "{name}: {annotation}"
            );
        }
        let runbook = alert["annotations"]["runbook_url"]
            .as_str()
            .expect("a runbook_url");
        assert!(
            runbook.ends_with(&format!("README.md#{}", name.to_lowercase())),
            "{name}: {runbook}"
        );
    }
}

/// GitHub's anchor of a Markdown heading: lowercase, spaces to dashes, punctuation dropped.
fn github_anchor(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
            _ => None,
        })
        .collect()
}

/// The README's runbook: the `####` headings of "Alerts and their runbook".
fn runbook_anchors() -> BTreeSet<String> {
    let readme = std::fs::read_to_string(repo().join("README.md")).expect("README.md");
    let section = readme
        .split("\n### Alerts and their runbook\n")
        .nth(1)
        .expect("README.md has a section \"### Alerts and their runbook\"");
    let section = section.split("\n### ").next().expect("the section");
    let section = section.split("\n## ").next().expect("the section");
    section
        .lines()
        .filter_map(|line| line.strip_prefix("#### "))
        .map(github_anchor)
        .collect()
}

#[test]
fn every_alert_has_its_runbook_entry_in_the_readme() {
    let rendered = Rendered::ci(ALL_OPTIONS);
    let rule = rendered.one("PrometheusRule", "bugs");
    assert_eq!(rule["metadata"]["labels"]["release"], "prometheus");
    let base = "https://git.example.com/platform/bichito/-/blob/main/README.md";
    let mut anchors = BTreeSet::new();
    for alert in alerts(rule) {
        let name = alert["alert"].as_str().expect("an alert");
        let anchor = name.to_lowercase();
        assert_eq!(
            alert["annotations"]["runbook_url"],
            format!("{base}#{anchor}"),
            "{name}"
        );
        assert_eq!(alert["labels"]["team"], "platform", "{name}: alertLabels");
        anchors.insert(anchor);
    }
    assert_eq!(
        runbook_anchors(),
        anchors,
        "one runbook entry (#### <AlertName>) per alert, and no other"
    );
}

#[test]
fn the_alerts_pass_promtool_check_and_their_unit_tests() {
    let rendered = Rendered::ci(ALL_OPTIONS);
    let rule = rendered.one("PrometheusRule", "bugs");
    let scratch = Scratch::new("promtool-rules");
    // The groups as rendered, annotations' templates included.
    let groups = json!({"groups": rule["spec"]["groups"]});
    std::fs::write(scratch.0.join("full.yaml"), groups.to_string()).expect("write rules");
    let output = promtool(&["check", "rules", "full.yaml"], &scratch.0);
    let report = text(&output);
    assert!(output.status.success(), "promtool check rules: {report}");
    let count = alerts(rule).len();
    assert!(
        report.contains(&format!("SUCCESS: {count} rules found")),
        "{report}"
    );

    // The unit tests compare labels; annotations are checked above and by their own test.
    let mut bare = groups.clone();
    for group in bare["groups"].as_array_mut().expect("groups") {
        for alert in group["rules"].as_array_mut().expect("rules") {
            alert.as_object_mut().expect("a rule").remove("annotations");
        }
    }
    std::fs::write(scratch.0.join("rules.yaml"), bare.to_string()).expect("write rules");
    let tests = chart().join("tests/alerts.test.yaml");
    std::fs::copy(&tests, scratch.0.join("alerts.test.yaml")).expect("copy the unit tests");
    let output = promtool(&["test", "rules", "alerts.test.yaml"], &scratch.0);
    assert!(
        output.status.success(),
        "promtool test rules: {}",
        text(&output)
    );

    // Every alert is shown to fire at least once, and not to fire on a healthy release.
    let cases = yaml_file(&tests);
    let mut fires = BTreeSet::new();
    let mut quiet = BTreeSet::new();
    for case in cases["tests"].as_array().expect("tests") {
        for check in case["alert_rule_test"].as_array().expect("alert_rule_test") {
            let name = check["alertname"]
                .as_str()
                .expect("an alertname")
                .to_owned();
            if check["exp_alerts"]
                .as_array()
                .is_some_and(|alerts| !alerts.is_empty())
            {
                fires.insert(name);
            } else {
                quiet.insert(name);
            }
        }
    }
    let names: BTreeSet<String> = alerts(rule)
        .iter()
        .map(|alert| alert["alert"].as_str().expect("an alert").to_owned())
        .collect();
    assert_eq!(fires, names, "a test where each alert fires");
    assert_eq!(quiet, names, "a test where each alert stays quiet");
}

/// Metric names that `source` (a `metrics.rs`) registers: the literal that opens
/// `Opts::new(`, `HistogramOpts::new(`, `gauge(` or `counter(`; a histogram's series too.
fn registered_metrics(source: &Path) -> BTreeSet<String> {
    let code = std::fs::read_to_string(source).expect("a metrics.rs");
    let mut names = BTreeSet::new();
    for opener in ["Opts::new(", "gauge(", "counter("] {
        let mut rest = code.as_str();
        while let Some(at) = rest.find(opener) {
            let before = &rest[..at];
            let after = rest[at + opener.len()..].trim_start();
            rest = &rest[at + opener.len()..];
            if opener != "Opts::new("
                && before
                    .chars()
                    .last()
                    .is_some_and(|c| c.is_alphanumeric() || c == '_')
            {
                continue;
            }
            let Some(literal) = after.strip_prefix('"') else {
                continue;
            };
            let name = literal.split('"').next().expect("a closing quote");
            if before.ends_with("Histogram") {
                for suffix in ["_bucket", "_sum", "_count"] {
                    names.insert(format!("{name}{suffix}"));
                }
            } else {
                names.insert(name.to_owned());
            }
        }
    }
    names
}

/// The metric names a PromQL expression selects: what is left once strings, label matchers,
/// ranges, grouping clauses, function names, keywords and numbers are taken out.
fn promql_metric_names(expr: &str) -> BTreeSet<String> {
    // Strings, `{...}` and `[...]` out, each leaving a space.
    let mut plain = String::new();
    let (mut quote, mut depth) = (None, 0);
    for c in expr.chars() {
        match (quote, c) {
            (Some(open), c) if c == open => quote = None,
            (Some(_), _) => {}
            (None, '"' | '\'' | '`') => quote = Some(c),
            (None, '{' | '[') => depth += 1,
            (None, '}' | ']') => {
                depth -= 1;
                plain.push(' ');
            }
            (None, c) if depth == 0 => plain.push(c),
            _ => {}
        }
    }
    const GROUPING: [&str; 6] = [
        "by",
        "without",
        "on",
        "ignoring",
        "group_left",
        "group_right",
    ];
    const KEYWORDS: [&str; 6] = ["and", "or", "unless", "offset", "bool", "inf"];
    let chars: Vec<char> = plain.chars().collect();
    let mut names = BTreeSet::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_ascii_digit() || c == '.' {
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '.') {
                i += 1;
            }
            continue;
        }
        if !(c.is_ascii_alphabetic() || c == '_' || c == ':') {
            i += 1;
            continue;
        }
        let start = i;
        while i < chars.len()
            && (chars[i].is_ascii_alphanumeric() || chars[i] == '_' || chars[i] == ':')
        {
            i += 1;
        }
        let word: String = chars[start..i].iter().collect();
        let mut next = i;
        while next < chars.len() && chars[next].is_whitespace() {
            next += 1;
        }
        let following: String = chars[next..]
            .iter()
            .take_while(|c| c.is_ascii_alphanumeric() || **c == '_')
            .collect();
        // A function, or an aggregation whose grouping comes first: `sum by (job) (...)`.
        let opens = chars.get(next) == Some(&'(') || following == "by" || following == "without";
        if GROUPING.contains(&word.as_str()) {
            if opens {
                i = next
                    + chars[next..]
                        .iter()
                        .position(|&c| c == ')')
                        .expect("a closing )")
                    + 1;
            }
        } else if !opens && !KEYWORDS.contains(&word.to_lowercase().as_str()) {
            names.insert(word);
        }
    }
    names
}

/// The dashboard as the ConfigMap ships it, and every query of its panels with Grafana's
/// variables filled in as for release `bugs` in namespace `bichito`.
fn dashboard_queries(dashboard: &Value) -> Vec<(String, String)> {
    let mut queries = Vec::new();
    for panel in dashboard["panels"].as_array().expect("panels") {
        let Some(targets) = panel["targets"].as_array() else {
            continue;
        };
        for target in targets {
            let expr = target["expr"]
                .as_str()
                .expect("a PromQL expression")
                .replace("$__rate_interval", "5m")
                .replace("$namespace", NAMESPACE)
                .replace("$release", "bugs");
            assert!(!expr.contains('$'), "an unknown variable in {expr}");
            let label = format!("{} {}", panel["title"], target["refId"]);
            queries.push((label, expr));
        }
    }
    queries
}

fn the_dashboard(rendered: &Rendered) -> Value {
    let config_map = rendered.one("ConfigMap", "bugs-dashboard");
    serde_json::from_str(
        config_map["data"]["bichito.json"]
            .as_str()
            .expect("bichito.json"),
    )
    .expect("the dashboard is JSON")
}

#[test]
fn alerts_and_the_dashboard_use_only_metrics_bichito_exports() {
    let api = registered_metrics(&repo().join("api/src/metrics.rs"));
    let operator = registered_metrics(&repo().join("operator/src/metrics.rs"));
    // The parser reads the operator's registrations as its /metrics shows them.
    let metrics = bichito_operator::metrics::Metrics::new();
    drop(metrics.reconcile_started());
    metrics.reconcile_failed("database");
    metrics.set_leader(true);
    let exposed: BTreeSet<String> = metrics
        .render()
        .lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| line.split(['{', ' ']).next())
        .map(String::from)
        .collect();
    assert_eq!(
        operator, exposed,
        "operator/src/metrics.rs as parsed vs /metrics"
    );
    for name in [
        "http_requests_total",
        "http_request_duration_seconds_bucket",
        "bichito_sse_connections",
        "bichito_outbox_backlog",
        "bichito_outbox_publish_seconds_bucket",
    ] {
        assert!(
            api.contains(name),
            "api/src/metrics.rs registers {name}: {api:?}"
        );
    }
    let mut exported: BTreeSet<String> = api.union(&operator).cloned().collect();
    // Prometheus's own series for every scrape target.
    exported.insert("up".to_owned());

    let rendered = Rendered::ci(ALL_OPTIONS);
    let mut used = BTreeSet::new();
    for alert in alerts(rendered.one("PrometheusRule", "bugs")) {
        let expr = alert["expr"].as_str().expect("an expr");
        let names = promql_metric_names(expr);
        assert!(!names.is_empty(), "no metric found in {expr}");
        for name in &names {
            assert!(
                exported.contains(name),
                "{}: {name} is not a metric bichito exports",
                alert["alert"]
            );
        }
        used.extend(names);
    }
    for (panel, expr) in dashboard_queries(&the_dashboard(&rendered)) {
        let names = promql_metric_names(&expr);
        assert!(!names.is_empty(), "no metric found in {expr}");
        for name in &names {
            assert!(
                exported.contains(name),
                "{panel}: {name} is not a metric bichito exports"
            );
        }
        used.extend(names);
    }
    // What the alerts and the dashboard must watch.
    for name in [
        "http_requests_total",
        "http_request_duration_seconds_bucket",
        "bichito_outbox_backlog",
        "bichito_outbox_publish_seconds_bucket",
        "bichito_sse_connections",
        "bichito_sse_events_sent_total",
        "bichito_sse_events_dropped_total",
        "bichito_operator_reconciliations_total",
        "bichito_operator_reconcile_failures_total",
        "bichito_operator_leader",
    ] {
        assert!(
            used.contains(name),
            "{name} is watched by no alert or panel"
        );
    }
}

#[test]
fn the_grafana_dashboard_is_a_labelled_config_map_whose_queries_parse() {
    let rendered = Rendered::ci(ALL_OPTIONS);
    let config_map = rendered.one("ConfigMap", "bugs-dashboard");
    assert_eq!(config_map["metadata"]["namespace"], "monitoring");
    assert_eq!(config_map["metadata"]["labels"]["grafana_dashboard"], "1");
    assert_eq!(
        config_map["metadata"]["annotations"],
        json!({"grafana_folder": "bichito"})
    );
    let dashboard = the_dashboard(&rendered);
    let file: Value = serde_json::from_str(
        &std::fs::read_to_string(chart().join("files/grafana-dashboard.json"))
            .expect("files/grafana-dashboard.json"),
    )
    .expect("the dashboard file is JSON");
    assert_eq!(dashboard, file, "the ConfigMap holds the file as it is");

    // One data source variable, used by every panel and query.
    let variables = dashboard["templating"]["list"]
        .as_array()
        .expect("variables");
    let datasource = variables
        .iter()
        .find(|variable| variable["name"] == "datasource")
        .expect("a ${datasource} variable");
    assert_eq!(
        (&datasource["type"], &datasource["query"]),
        (&json!("datasource"), &json!("prometheus"))
    );
    let reference = json!({"type": "prometheus", "uid": "${datasource}"});
    let mut titles = Vec::new();
    for panel in dashboard["panels"].as_array().expect("panels") {
        if panel["type"] == "row" {
            titles.push(panel["title"].as_str().expect("a row title").to_owned());
            continue;
        }
        assert_eq!(panel["datasource"], reference, "{}", panel["title"]);
        for target in panel["targets"].as_array().expect("targets") {
            assert_eq!(target["datasource"], reference, "{}", panel["title"]);
        }
    }
    assert_eq!(
        titles,
        ["Ingest (api)", "Stream (sse) and the outbox", "Operator"]
    );

    // Every query parses: promtool checks them as recording rules.
    let queries = dashboard_queries(&dashboard);
    let rules: Vec<Value> = queries
        .iter()
        .enumerate()
        .map(|(index, (_, expr))| json!({"record": format!("dashboard:query_{index}"), "expr": expr}))
        .collect();
    let scratch = Scratch::new("dashboard-queries");
    std::fs::write(
        scratch.0.join("queries.yaml"),
        json!({"groups": [{"name": "dashboard", "rules": rules}]}).to_string(),
    )
    .expect("write the queries");
    let output = promtool(&["check", "rules", "queries.yaml"], &scratch.0);
    let report = text(&output);
    assert!(output.status.success(), "promtool check rules: {report}");
    assert!(
        report.contains(&format!("SUCCESS: {} rules found", queries.len())),
        "{report}"
    );

    // The sidecar's defaults: label `grafana_dashboard: "1"` in the release namespace.
    let rendered =
        Rendered::minimal_with("dashboard-defaults", "grafanaDashboard:\n  enabled: true\n");
    let config_map = rendered.one("ConfigMap", "bichito-dashboard");
    assert_eq!(config_map["metadata"]["namespace"], NAMESPACE);
    assert_eq!(config_map["metadata"]["labels"]["grafana_dashboard"], "1");
}

// ------------------------------------------------------------------------ NetworkPolicy

/// A component's NetworkPolicy selects exactly its pods, lets in only its container port.
fn assert_policy_guards(rendered: &Rendered, name: &str, sources: &[&Value]) -> Value {
    let policy = rendered.one("NetworkPolicy", name);
    let pod = &rendered.one("Deployment", name)["spec"];
    assert_eq!(
        policy["spec"]["podSelector"], pod["selector"],
        "{name}: the Deployment's pods"
    );
    assert_eq!(policy["spec"]["policyTypes"], json!(["Ingress", "Egress"]));
    let port = &pod["template"]["spec"]["containers"][0]["ports"][0]["containerPort"];
    let expected: Vec<Value> = sources
        .iter()
        .map(|from| match from.as_array() {
            Some(peers) if !peers.is_empty() => {
                json!({"ports": [{"port": port, "protocol": "TCP"}], "from": from})
            }
            _ => json!({"ports": [{"port": port, "protocol": "TCP"}]}),
        })
        .collect();
    assert_eq!(
        policy["spec"]["ingress"],
        json!(expected),
        "{name}: ingress"
    );
    policy["spec"]["egress"].clone()
}

/// The egress rules for `dependencies`, as `networkPolicy.egress` in `values` defines them.
fn egress_to(values: &Value, dependencies: &[&str]) -> Value {
    let rules: Vec<Value> = dependencies
        .iter()
        .map(|dependency| {
            let rule = &values["networkPolicy"]["egress"][dependency];
            let mut expected = json!({"ports": rule["ports"]});
            if rule["to"].as_array().is_some_and(|to| !to.is_empty()) {
                expected["to"] = rule["to"].clone();
            }
            expected
        })
        .collect();
    json!(rules)
}

#[test]
fn network_policies_open_only_each_components_port_and_dependencies() {
    let rendered = Rendered::ci(ALL_OPTIONS);
    let values = yaml_file(&chart().join(ALL_OPTIONS));
    let policy = &values["networkPolicy"];
    let (ingress_from, metrics_from) = (&policy["ingressFrom"], &policy["metricsFrom"]);
    // api: ingress controller and Prometheus in; DNS, Postgres, NATS, S3 and the OIDC issuer out.
    let egress = assert_policy_guards(&rendered, "bugs-api", &[ingress_from, metrics_from]);
    assert_eq!(
        egress,
        egress_to(
            &values,
            &["dns", "database", "nats", "s3", "identityProvider"]
        )
    );
    // sse: no database, no S3, no sign-in (no JWKS URL in these values).
    let egress = assert_policy_guards(&rendered, "bugs-sse", &[ingress_from, metrics_from]);
    assert_eq!(egress, egress_to(&values, &["dns", "nats"]));
    // operator: only Prometheus in; DNS, the API server and Postgres out.
    let egress = assert_policy_guards(&rendered, "bugs-operator", &[metrics_from]);
    assert_eq!(
        egress,
        egress_to(&values, &["dns", "database", "kubernetesApi"])
    );

    // Defaults: any source on the port; dependencies by port; with a JWKS URL both
    // token-checking components reach the provider, and without a bucket the api no S3.
    let rendered = Rendered::minimal_with(
        "policy-defaults",
        "networkPolicy:\n  enabled: true\njwt:\n  secret:\n    existingSecret: \"\"\n  jwksUrl: https://sso.example.com/jwks\n",
    );
    rendered.validate();
    let defaults = yaml_file(&chart().join("values.yaml"));
    let anywhere = json!([]);
    for (name, dependencies) in [
        (
            "bichito-api",
            &["dns", "database", "nats", "identityProvider"][..],
        ),
        ("bichito-sse", &["dns", "nats", "identityProvider"][..]),
        (
            "bichito-operator",
            &["dns", "database", "kubernetesApi"][..],
        ),
    ] {
        let egress = assert_policy_guards(&rendered, name, &[&anywhere]);
        assert_eq!(egress, egress_to(&defaults, dependencies), "{name}");
    }
    let api = rendered.one("NetworkPolicy", "bichito-operator");
    assert_eq!(
        api["spec"]["egress"][2]["ports"],
        json!([{"port": 443, "protocol": "TCP"}, {"port": 6443, "protocol": "TCP"}]),
        "the API server's Service port and its own"
    );
}
