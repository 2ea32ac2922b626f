//! The real `bichito-operator run` processes against a small fake Kubernetes API server (HTTP
//! on loopback, reached through a kubeconfig; one port per process, so every request is known
//! by its sender) and real Postgres: the Controller lists and watches, reconciles the example
//! into a Secret, a database row and a Ready status, only while holding the leader Lease, and
//! stops cleanly on SIGTERM, releasing the Lease to the standby, which takes it at once.
//! Operators of two installations sharing the cluster each touch only their own Honeycombs.

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use bichito_core::testing::TestDatabase;
use serde_json::{Map, Value, json};
use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::AsyncReadExt as _;
use tokio::sync::Notify;

const SECRET_PATH: &str = "/api/v1/namespaces/payments/secrets/checkout-web-api-key";
const STATUS_PATH: &str =
    "/apis/bichito.dev/v1alpha1/namespaces/payments/honeycombs/checkout-web/status";
const LEASE_PATH: &str = "/apis/coordination.k8s.io/v1/namespaces/bichito/leases/bichito-operator";

/// The cluster's state, shared by every port of the fake API server.
#[derive(Default)]
struct Cluster {
    /// Every Honeycomb, as the API server lists them.
    honeycombs: Vec<Value>,
    /// Secrets by path.
    secrets: HashMap<String, Value>,
    /// Leases by path.
    leases: HashMap<String, Value>,
    /// What happened, in order: `<who> <METHOD> <path>` for writes, and Lease transitions.
    log: Vec<String>,
    /// Lease transitions with their time: `acquired by <holder>` or `released by <who>`.
    lease_times: Vec<(String, Instant)>,
    statuses: Vec<Value>,
    /// When each status was written.
    status_times: Vec<Instant>,
    /// Every request any process sent, as `<who> <METHOD> <path>`.
    requests: Vec<String>,
}

#[derive(Clone)]
struct FakeApi {
    /// Which operator process this port serves.
    who: &'static str,
    cluster: Arc<Mutex<Cluster>>,
    changed: Arc<Notify>,
}

impl FakeApi {
    fn cluster(&self) -> std::sync::MutexGuard<'_, Cluster> {
        self.cluster
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

fn reply(status: StatusCode, body: &Value) -> Response {
    (
        status,
        [("content-type", "application/json")],
        body.to_string(),
    )
        .into_response()
}

fn failure(code: u16, reason: &str) -> Response {
    reply(
        StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        &json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": reason, "code": code}),
    )
}

fn list(kind: &str, api_version: &str, items: Vec<Value>) -> Response {
    reply(
        StatusCode::OK,
        &json!({"apiVersion": api_version, "kind": kind, "metadata": {"resourceVersion": "100"}, "items": items}),
    )
}

/// A Lease patch: fields set to null are removed. Taking a Lease someone else holds is a
/// conflict, as server-side apply makes it for the real API server.
fn patch_lease(cluster: &mut Cluster, path: &str, who: &str, patch: &Value) -> Response {
    let Some(lease) = cluster.leases.get_mut(path) else {
        return failure(404, "NotFound");
    };
    let holder_before = lease["spec"]["holderIdentity"].as_str().map(str::to_owned);
    let wanted = patch["spec"]["holderIdentity"].as_str();
    if let (Some(before), Some(wanted)) = (&holder_before, wanted)
        && before != wanted
    {
        return failure(409, "Conflict");
    }
    let spec = lease["spec"].as_object_mut().map(std::mem::take);
    let mut spec: Map<String, Value> = spec.unwrap_or_default();
    for (field, value) in patch["spec"].as_object().cloned().unwrap_or_default() {
        if value.is_null() {
            spec.remove(&field);
        } else {
            spec.insert(field, value);
        }
    }
    lease["spec"] = Value::Object(spec);
    let version = lease["metadata"]["resourceVersion"]
        .as_str()
        .and_then(|version| version.parse::<u64>().ok())
        .unwrap_or_default();
    lease["metadata"]["resourceVersion"] = json!((version + 1).to_string());
    let holder_after = lease["spec"]["holderIdentity"].as_str().map(str::to_owned);
    let lease = lease.clone();
    match (holder_before, holder_after) {
        (None, Some(holder)) => {
            cluster.log.push(format!("lease acquired by {holder}"));
            cluster
                .lease_times
                .push((format!("acquired by {holder}"), Instant::now()));
        }
        (Some(holder), None) => {
            cluster
                .log
                .push(format!("lease released by {who} for {holder}"));
            cluster
                .lease_times
                .push((format!("released by {who}"), Instant::now()));
        }
        _ => {}
    }
    reply(StatusCode::OK, &lease)
}

async fn handle(State(api): State<FakeApi>, request: Request) -> Response {
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let query = request.uri().query().unwrap_or_default().to_owned();
    let body = axum::body::to_bytes(request.into_body(), 1 << 20)
        .await
        .unwrap_or_default();
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let response = {
        let mut cluster = api.cluster();
        cluster
            .requests
            .push(format!("{} {method} {path}", api.who));
        if query.contains("watch=true") {
            // A watch that stays open and quiet: nothing else changes in this cluster.
            return Response::new(Body::from_stream(futures_util::stream::pending::<
                Result<Bytes, std::io::Error>,
            >()));
        }
        let honeycomb_writes = path.starts_with("/apis/bichito.dev")
            || path.starts_with("/api/v1/namespaces/payments")
            || path.starts_with("/apis/events.k8s.io");
        if method != Method::GET && honeycomb_writes {
            cluster.log.push(format!("{} {method} {path}", api.who));
        }
        let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        match (method, segments.as_slice()) {
            (Method::GET, ["apis", "bichito.dev", "v1alpha1", "honeycombs"]) => list(
                "HoneycombList",
                "bichito.dev/v1alpha1",
                cluster.honeycombs.clone(),
            ),
            (Method::GET, ["api", "v1", "secrets"]) => list("SecretList", "v1", Vec::new()),
            (Method::GET, ["api", "v1", "namespaces", _, "secrets", _]) => {
                match cluster.secrets.get(&path) {
                    Some(secret) => reply(StatusCode::OK, secret),
                    None => failure(404, "NotFound"),
                }
            }
            (Method::POST, ["api", "v1", "namespaces", namespace, "secrets"]) => {
                let name = body["metadata"]["name"].as_str().unwrap_or_default();
                let key = format!("/api/v1/namespaces/{namespace}/secrets/{name}");
                cluster.secrets.insert(key, body.clone());
                reply(StatusCode::CREATED, &body)
            }
            (
                Method::PATCH,
                [
                    "apis",
                    "bichito.dev",
                    "v1alpha1",
                    "namespaces",
                    _,
                    "honeycombs",
                    name,
                    "status",
                ],
            ) => {
                cluster.statuses.push(body);
                cluster.status_times.push(Instant::now());
                let name = (*name).to_owned();
                let honeycomb = cluster
                    .honeycombs
                    .iter()
                    .find(|honeycomb| honeycomb["metadata"]["name"] == name.as_str())
                    .cloned();
                match honeycomb {
                    Some(honeycomb) => reply(StatusCode::OK, &honeycomb),
                    None => failure(404, "NotFound"),
                }
            }
            (Method::POST, ["apis", "events.k8s.io", "v1", "namespaces", _, "events"]) => {
                reply(StatusCode::CREATED, &body)
            }
            (
                Method::GET,
                [
                    "apis",
                    "coordination.k8s.io",
                    "v1",
                    "namespaces",
                    _,
                    "leases",
                    _,
                ],
            ) => match cluster.leases.get(&path) {
                Some(lease) => reply(StatusCode::OK, lease),
                None => failure(404, "NotFound"),
            },
            (
                Method::POST,
                [
                    "apis",
                    "coordination.k8s.io",
                    "v1",
                    "namespaces",
                    namespace,
                    "leases",
                ],
            ) => {
                let name = body["metadata"]["name"].as_str().unwrap_or_default();
                let key =
                    format!("/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases/{name}");
                match cluster.leases.entry(key) {
                    Entry::Occupied(_) => failure(409, "AlreadyExists"),
                    Entry::Vacant(vacant) => {
                        let mut lease = body;
                        lease["metadata"]["namespace"] = json!(namespace);
                        lease["metadata"]["resourceVersion"] = json!("1");
                        if !lease["spec"].is_object() {
                            lease["spec"] = json!({});
                        }
                        vacant.insert(lease.clone());
                        reply(StatusCode::CREATED, &lease)
                    }
                }
            }
            (
                Method::PATCH,
                [
                    "apis",
                    "coordination.k8s.io",
                    "v1",
                    "namespaces",
                    _,
                    "leases",
                    _,
                ],
            ) => patch_lease(&mut cluster, &path, api.who, &body),
            _ => failure(404, "NotFound"),
        }
    };
    api.changed.notify_waiters();
    response
}

fn example() -> Value {
    let mut honeycomb = bichito_core::testing::example_honeycomb();
    honeycomb.metadata.finalizers = Some(vec!["bichito.dev/cleanup".into()]);
    serde_json::to_value(honeycomb).expect("json")
}

/// A Honeycomb of the installation `staging`, beside the example in the same namespace.
fn staging_example() -> Value {
    let mut honeycomb = bichito_core::testing::example_honeycomb();
    honeycomb.metadata.name = Some("staging-app".into());
    honeycomb.metadata.uid = Some("6f1c2a7e-0000-4000-8000-000000000002".into());
    honeycomb.metadata.finalizers = Some(vec!["bichito.dev/cleanup".into()]);
    honeycomb.spec.installation = Some("staging".into());
    honeycomb.spec.api_key.secret_name = "staging-app-api-key".into();
    serde_json::to_value(honeycomb).expect("json")
}

fn cluster_of(honeycombs: Vec<Value>) -> Arc<Mutex<Cluster>> {
    Arc::new(Mutex::new(Cluster {
        honeycombs,
        ..Cluster::default()
    }))
}

/// One port of the fake API server for the process `who`, and a kubeconfig pointing at it.
async fn api_port(
    who: &'static str,
    cluster: &Arc<Mutex<Cluster>>,
    changed: &Arc<Notify>,
) -> PathBuf {
    let api = FakeApi {
        who,
        cluster: cluster.clone(),
        changed: changed.clone(),
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind a loopback port");
    let address: SocketAddr = listener.local_addr().expect("address");
    let app = Router::new().fallback(handle).with_state(api);
    tokio::spawn(async move { axum::serve(listener, app).await });
    let kubeconfig = std::env::temp_dir().join(format!(
        "bichito-kubeconfig-{}-{}.yaml",
        std::process::id(),
        address.port()
    ));
    std::fs::write(
        &kubeconfig,
        format!(
            "apiVersion: v1\nkind: Config\ncurrent-context: fake\n\
             clusters: [{{name: fake, cluster: {{server: \"http://{address}\"}}}}]\n\
             users: [{{name: fake, user: {{}}}}]\n\
             contexts: [{{name: fake, context: {{cluster: fake, user: fake, namespace: default}}}}]\n"
        ),
    )
    .expect("write the kubeconfig");
    kubeconfig
}

struct Operator {
    child: tokio::process::Child,
    logs: tokio::task::JoinHandle<String>,
    kubeconfig: PathBuf,
}

fn start_operator(who: &str, kubeconfig: PathBuf, database_url: &str) -> Operator {
    start_operator_with(who, kubeconfig, database_url, &[])
}

fn start_operator_with(
    who: &str,
    kubeconfig: PathBuf,
    database_url: &str,
    env: &[(&str, &str)],
) -> Operator {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_bichito-operator"));
    command
        .arg("run")
        .env("KUBECONFIG", &kubeconfig)
        .env("DATABASE_URL", database_url)
        .env("BICHITO_LISTEN", "127.0.0.1:0")
        .env("POD_NAME", who)
        .env("POD_NAMESPACE", "bichito")
        .env("LEASE_DURATION_SECONDS", "4")
        .env("LEASE_RENEW_GRACE_SECONDS", "2")
        .env("RUST_LOG", "info")
        .env_remove("KUBERNETES_SERVICE_HOST")
        .env_remove("LEADER_ELECTION")
        .env_remove("BICHITO_INSTALLATION")
        .envs(env.iter().copied());
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("start bichito-operator");
    let mut stderr = child.stderr.take().expect("stderr");
    let logs = tokio::spawn(async move {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text).await;
        text
    });
    Operator {
        child,
        logs,
        kubeconfig,
    }
}

impl Operator {
    /// SIGTERM, then the exit status (within 30 s) and the logs.
    async fn terminate(mut self) -> (std::process::ExitStatus, String) {
        bichito_core::testing::sigterm(self.child.id().expect("a running child"));
        let exit = tokio::time::timeout(Duration::from_secs(30), self.child.wait()).await;
        if exit.is_err() {
            let _ = self.child.kill().await;
        }
        let logs = self.logs.await.unwrap_or_default();
        let _ = std::fs::remove_file(&self.kubeconfig);
        let exit = exit
            .unwrap_or_else(|_| panic!("no exit within 30 s of SIGTERM; logs:\n{logs}"))
            .expect("wait for the operator");
        (exit, logs)
    }
}

/// The `Ready` condition's status of a status patch.
fn ready(status: &Value) -> Option<Value> {
    status["status"]["conditions"]
        .as_array()
        .and_then(|conditions| conditions.iter().find(|c| c["type"] == "Ready"))
        .map(|ready| ready["status"].clone())
}

/// Waits (at most 60 s) until `condition` holds of the cluster; false when it never did.
async fn until(
    cluster: &Arc<Mutex<Cluster>>,
    changed: &Notify,
    condition: impl Fn(&Cluster) -> bool,
) -> bool {
    let wait = async {
        loop {
            let notified = changed.notified();
            if condition(&cluster.lock().unwrap_or_else(|p| p.into_inner())) {
                return;
            }
            notified.await;
        }
    };
    tokio::time::timeout(Duration::from_secs(60), wait)
        .await
        .is_ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_lease_holder_reconciles_and_a_standby_takes_over_on_sigterm() {
    let db = TestDatabase::postgres().await;
    let cluster = cluster_of(vec![example()]);
    let changed = Arc::new(Notify::new());
    let first = start_operator(
        "operator-a",
        api_port("a", &cluster, &changed).await,
        &db.url,
    );
    let reconciled_by_a = until(&cluster, &changed, |c| c.statuses.len() == 1).await;
    let second = start_operator(
        "operator-b",
        api_port("b", &cluster, &changed).await,
        &db.url,
    );
    // b is up and has looked at the Lease that a holds.
    let b_waits = until(&cluster, &changed, |c| {
        c.requests
            .iter()
            .any(|r| r == &format!("b GET {LEASE_PATH}"))
    })
    .await;
    let (a_exit, a_logs) = first.terminate().await;
    assert!(reconciled_by_a, "a never reconciled; logs:\n{a_logs}");
    assert!(b_waits, "b never looked at the Lease");
    assert!(
        a_exit.success(),
        "a exits 0 on SIGTERM: {a_exit:?}\n{a_logs}"
    );
    assert!(a_logs.contains("shutting down"), "{a_logs}");

    let reconciled_by_b = until(&cluster, &changed, |c| c.statuses.len() == 2).await;
    let (b_exit, b_logs) = second.terminate().await;
    assert!(reconciled_by_b, "b never took over; logs:\n{b_logs}");
    assert!(
        b_exit.success(),
        "b exits 0 on SIGTERM: {b_exit:?}\n{b_logs}"
    );

    {
        let cluster = cluster.lock().unwrap_or_else(|p| p.into_inner());
        assert_eq!(
            cluster.log,
            [
                "lease acquired by operator-a",
                "a POST /api/v1/namespaces/payments/secrets",
                &format!("a PATCH {STATUS_PATH}"),
                "a POST /apis/events.k8s.io/v1/namespaces/payments/events",
                "lease released by a for operator-a",
                "lease acquired by operator-b",
                &format!("b PATCH {STATUS_PATH}"),
                "b POST /apis/events.k8s.io/v1/namespaces/payments/events",
                "lease released by b for operator-b",
            ],
            "one reconciler at a time: b writes only once a has released the Lease, and finds the \
             Secret a made (no second key)"
        );
        assert_eq!(ready(&cluster.statuses[0]), Some(json!("True")));
        assert_eq!(ready(&cluster.statuses[1]), Some(json!("True")));
        let secret = cluster
            .secrets
            .get(SECRET_PATH)
            .expect("the Secret was created");
        assert_eq!(secret["metadata"]["name"], "checkout-web-api-key");
        let at = |transition: &str| {
            cluster
                .lease_times
                .iter()
                .find(|(what, _)| what == transition)
                .map(|(_, at)| *at)
                .unwrap_or_else(|| panic!("no {transition}: {:?}", cluster.lease_times))
        };
        let handover = at("acquired by operator-b") - at("released by a");
        assert!(
            handover < Duration::from_millis(1500),
            "the standby takes a released Lease at once, not when it would have expired (4 s): {handover:?}"
        );
    }

    let store = db.store().await;
    let state = store
        .honeycomb_key_state("payments", "checkout-web")
        .await
        .expect("read")
        .expect("the honeycomb row exists");
    assert_eq!(state.keys.len(), 1, "one key, made once");
}

/// Two installations in one cluster (two releases, each with its database and Lease): each
/// operator reconciles the Honeycombs of its own installation and sends not one request about
/// the other's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_never_touches_a_honeycomb_of_another_installation() {
    let production_db = TestDatabase::postgres().await;
    let staging_db = TestDatabase::postgres().await;
    let cluster = cluster_of(vec![example(), staging_example()]);
    let changed = Arc::new(Notify::new());
    let production = start_operator_with(
        "production",
        api_port("p", &cluster, &changed).await,
        &production_db.url,
        &[("LEASE_NAME", "bichito-production-operator")],
    );
    let staging = start_operator_with(
        "staging",
        api_port("s", &cluster, &changed).await,
        &staging_db.url,
        &[
            ("LEASE_NAME", "bichito-staging-operator"),
            ("BICHITO_INSTALLATION", "staging"),
        ],
    );
    let both_reconciled = until(&cluster, &changed, |c| {
        ["checkout-web", "staging-app"].iter().all(|name| {
            c.secrets
                .keys()
                .any(|path| path.ends_with(&format!("/{name}-api-key")))
        }) && c.statuses.len() == 2
    })
    .await;
    let (production_exit, production_logs) = production.terminate().await;
    let (staging_exit, staging_logs) = staging.terminate().await;
    assert!(
        both_reconciled,
        "each installation reconciles its own; logs:\n{production_logs}\n{staging_logs}"
    );
    assert!(production_exit.success() && staging_exit.success());

    let requests = cluster
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .requests
        .clone();
    let by = |who: &str| -> Vec<String> {
        requests
            .iter()
            .filter(|request| request.starts_with(&format!("{who} ")))
            .cloned()
            .collect()
    };
    let touches = |requests: &[String], name: &str| {
        requests
            .iter()
            .filter(|request| request.contains(name))
            .cloned()
            .collect::<Vec<_>>()
    };
    assert!(!touches(&by("p"), "checkout-web").is_empty());
    assert_eq!(
        touches(&by("p"), "staging-app"),
        Vec::<String>::new(),
        "production never touches staging's Honeycomb or Secret"
    );
    assert!(!touches(&by("s"), "staging-app").is_empty());
    assert_eq!(
        touches(&by("s"), "checkout-web"),
        Vec::<String>::new(),
        "staging never touches production's Honeycomb or Secret"
    );

    let production_store = production_db.store().await;
    let staging_store = staging_db.store().await;
    for (store, own, other) in [
        (&production_store, "checkout-web", "staging-app"),
        (&staging_store, "staging-app", "checkout-web"),
    ] {
        assert!(
            store
                .honeycomb_key_state("payments", own)
                .await
                .expect("read")
                .is_some()
        );
        assert!(
            store
                .honeycomb_key_state("payments", other)
                .await
                .expect("read")
                .is_none(),
            "no row, no key for the other installation's Honeycomb"
        );
    }
}

/// `/readyz`'s status code, 0 when it does not answer within 5 s.
async fn readyz(base: &str) -> u16 {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .expect("client");
    match client.get(format!("{base}/readyz")).send().await {
        Ok(response) => response.status().as_u16(),
        Err(_) => 0,
    }
}

/// Postgres fails over under a running operator: the primary crashes, the replica is promoted
/// and the address the operator uses (a TCP proxy standing in for CloudNativePG's `-rw`
/// Service) moves to it. Meanwhile the Honeycomb reads `DatabaseUnavailable` and `/readyz`
/// 503; then the operator reconciles again by itself, without a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_postgres_failover_the_operator_reconciles_again_by_itself() {
    use bichito_core::testing::postgres_pair::{PgPair, ServiceProxy};
    let mut pair = PgPair::start(true);
    pair.wait_until_streaming().await;
    pair.create_database("bichito").await;
    let proxy = ServiceProxy::start(format!("127.0.0.1:{}", pair.primary.port)).await;
    let url = format!("postgres://postgres@{}/bichito", proxy.address);
    let cluster = cluster_of(vec![example()]);
    let changed = Arc::new(Notify::new());
    let listen = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
        listener.local_addr().expect("address").to_string()
    };
    let base = format!("http://{listen}");
    let operator = start_operator_with(
        "operator-a",
        api_port("a", &cluster, &changed).await,
        &url,
        &[
            ("BICHITO_LISTEN", listen.as_str()),
            ("RESYNC_INTERVAL", "1s"),
            ("DATABASE_TIMEOUT", "2s"),
        ],
    );
    let reconciled = until(&cluster, &changed, |c| {
        c.statuses.last().and_then(ready) == Some(json!("True"))
    })
    .await;
    assert!(reconciled, "the operator reconciled before the failover");
    assert_eq!(readyz(&base).await, 200);

    pair.primary.crash();
    let seen = until(&cluster, &changed, |c| {
        c.statuses
            .last()
            .is_some_and(|status| status.to_string().contains("DatabaseUnavailable"))
    })
    .await;
    let not_ready = readyz(&base).await;
    pair.replica.promote();
    proxy.move_to(format!("127.0.0.1:{}", pair.replica.port));
    let moved = Instant::now();
    let before = cluster
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .statuses
        .len();
    let recovered = until(&cluster, &changed, |c| {
        c.statuses.len() > before && c.statuses.last().and_then(ready) == Some(json!("True"))
    })
    .await;
    let recovery = cluster
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .status_times
        .last()
        .map(|at| at.saturating_duration_since(moved))
        .unwrap_or_default();
    let ready_again = readyz(&base).await;
    let (exit, logs) = operator.terminate().await;
    assert!(seen, "the outage shows in the status; logs:\n{logs}");
    assert_eq!(not_ready, 503, "not ready while the database is gone");
    assert!(
        recovered,
        "the operator never reconciled again; logs:\n{logs}"
    );
    eprintln!("operator: Ready again {recovery:?} after the Service moved");
    assert!(
        recovery < Duration::from_secs(10),
        "reconciled again {recovery:?} after the Service moved"
    );
    assert_eq!(ready_again, 200, "ready again");
    assert!(
        exit.success(),
        "ran on, no restart, and exits 0: {exit:?}\n{logs}"
    );
}
