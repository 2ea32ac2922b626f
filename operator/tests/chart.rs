//! The Helm chart `charts/bichito`, rendered by Helm's own Go library through
//! `scripts/chart.py` (PyPI helm-python-sdk, which `scripts/test.sh` installs): it lints clean,
//! every rendered object validates against the Kubernetes 1.30 schemas (`kubernetes-validate`),
//! and what matters holds for the minimal values and for every option on: restricted containers
//! with probes, Secrets only by reference, least-privilege RBAC, the generated CRD.

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

    /// `kubernetes-validate --strict` on every rendered file: every object passes, except
    /// ServiceMonitors, which it has no schema for (see `a_service_monitor_scrapes_its_service`).
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
        let mut monitors = 0;
        for object in self.objects() {
            let kind = object["kind"].as_str().expect("a kind");
            let name = object["metadata"]["name"].as_str().expect("a name");
            if kind == "ServiceMonitor" {
                monitors += 1;
                a_service_monitor_scrapes_its_service(self, object);
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
        let unknown_monitors = report
            .matches("Couldn't find schema for kind ServiceMonitor with api version monitoring.coreos.com/v1")
            .count();
        assert_eq!(
            (unknown, unknown_monitors),
            (monitors, monitors),
            "only ServiceMonitors may lack a schema: {report}"
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
    let scratch = Scratch::new("jwks");
    let jwks = scratch.values(
        "jwks.yaml",
        "jwt:\n  secret:\n    existingSecret: \"\"\n  jwksUrl: https://sso.example.com/jwks\n  jwksRefresh: 2m\n",
    );
    let rendered = Rendered::try_with("jwks", &[chart().join(MINIMAL), jwks])
        .unwrap_or_else(|refusal| panic!("{refusal}"));
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
        assert_eq!(
            rendered.of_kind("ConfigMap").len(),
            0,
            "{values}: no ConfigMaps"
        );
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
    let scratch = Scratch::new("no-leader-election");
    let single = scratch.values(
        "single.yaml",
        "operator:\n  replicas: 1\n  leaderElection:\n    enabled: false\n",
    );
    let rendered = Rendered::try_with("single", &[chart().join(MINIMAL), single])
        .unwrap_or_else(|refusal| panic!("{refusal}"));
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

    let scratch = Scratch::new("no-crd");
    let off = scratch.values("off.yaml", "crds:\n  install: false\n");
    let rendered = Rendered::try_with("no-crd", &[chart().join(MINIMAL), off])
        .unwrap_or_else(|refusal| panic!("{refusal}"));
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
