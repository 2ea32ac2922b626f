//! `bichito-operator` over many Honeycombs: time to all-Ready and peak resident memory, first
//! on a fresh cluster (every Honeycomb provisioned: a key, a Secret, a status) and then after a
//! restart over that state (every Honeycomb reconciled again, nothing to write), with the
//! reconciliations bounded (`MAX_CONCURRENT_RECONCILES`, the default) and, as the reference,
//! unbounded (`0`: every Honeycomb at once, as the operator did before the bound).
//!
//! No Kubernetes API server runs here: a fake one on loopback serves the Honeycombs (listed in
//! pages, with the managed fields and last-applied annotation `kubectl apply` leaves on real
//! objects), keeps the Secrets and statuses the operator writes, and counts what it is asked.
//! Postgres is real, a database of the run's own.

use crate::Result;
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use bichito_core::testing::TestDatabase;
use clap::Args;
use serde_json::{Value, json};
use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Args)]
pub struct OperatorArgs {
    /// Honeycomb counts to measure, each on a fresh cluster and database.
    #[arg(long, value_delimiter = ',', default_values_t = [10_000, 50_000])]
    pub counts: Vec<usize>,
    /// Namespaces the Honeycombs are spread over.
    #[arg(long, default_value_t = 100)]
    pub namespaces: usize,
    /// Reconciliations at once on the bounded side (the operator's default).
    #[arg(long, default_value_t = 8)]
    pub concurrency: u16,
    /// Database connections of the operator (the chart's default).
    #[arg(long, default_value_t = 4)]
    pub database_connections: u32,
    /// Measure the bounded side only.
    #[arg(long)]
    pub bounded_only: bool,
    /// Give up on a phase after this long (its row then says so, with the memory reached).
    #[arg(long, default_value = "10m", value_parser = humantime::parse_duration)]
    pub timeout: Duration,
    /// The `bichito-operator` binary (default: next to this one).
    #[arg(long)]
    pub operator: Option<PathBuf>,
}

/// The fake cluster: Honeycombs, and what the operator wrote and asked.
#[derive(Default)]
struct Cluster {
    honeycombs: Vec<Value>,
    /// Index of each Honeycomb by `namespace/name`.
    index: HashMap<String, usize>,
    secrets: HashMap<String, Value>,
    /// Honeycombs whose last status said Ready.
    ready: HashSet<String>,
    /// Honeycombs whose Secret was read since the last `reset_reads`.
    secrets_read: HashSet<String>,
}

type Shared = Arc<Mutex<Cluster>>;

fn lock(cluster: &Shared) -> std::sync::MutexGuard<'_, Cluster> {
    cluster
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// `count` Honeycombs over `namespaces` namespaces, as `kubectl apply` leaves them (with the
/// finalizer already on, so the first reconciliation provisions).
fn honeycombs(count: usize, namespaces: usize) -> Cluster {
    let mut cluster = Cluster::default();
    for n in 0..count {
        let namespace = format!("team-{}", n % namespaces.max(1));
        let name = format!("hc-{n}");
        let spec = json!({
            "team": namespace,
            "displayName": format!("Honeycomb number {n}"),
            "plan": "free",
            "quotas": {"reportsPerMinute": 60, "monthlyReports": 1000},
            "blocklist": [{"field": "title", "contains": "casino"}],
            "allowedOrigins": [format!("https://{name}.example.com")],
            "apiKey": {"secretName": format!("{name}-api-key")},
            "deletionPolicy": "Retain"
        });
        let applied = json!({
            "apiVersion": "bichito.dev/v1alpha1", "kind": "Honeycomb",
            "metadata": {"name": name, "namespace": namespace}, "spec": spec
        });
        let honeycomb = json!({
            "apiVersion": "bichito.dev/v1alpha1",
            "kind": "Honeycomb",
            "metadata": {
                "name": name,
                "namespace": namespace,
                "uid": format!("00000000-0000-4000-8000-{n:012}"),
                "generation": 1,
                "resourceVersion": "1",
                "creationTimestamp": "2026-11-30T09:00:00Z",
                "finalizers": ["bichito.dev/cleanup"],
                "annotations": {
                    "kubectl.kubernetes.io/last-applied-configuration": applied.to_string()
                },
                "managedFields": [{
                    "manager": "kubectl-client-side-apply",
                    "operation": "Update",
                    "apiVersion": "bichito.dev/v1alpha1",
                    "time": "2026-11-30T09:00:00Z",
                    "fieldsType": "FieldsV1",
                    "fieldsV1": {"f:metadata": {"f:annotations": {".": {}, "f:kubectl.kubernetes.io/last-applied-configuration": {}}},
                                 "f:spec": {".": {}, "f:allowedOrigins": {}, "f:apiKey": {".": {}, "f:secretName": {}},
                                            "f:blocklist": {}, "f:deletionPolicy": {}, "f:displayName": {}, "f:plan": {},
                                            "f:quotas": {".": {}, "f:monthlyReports": {}, "f:reportsPerMinute": {}}, "f:team": {}}}
                }]
            },
            "spec": spec
        });
        cluster
            .index
            .insert(format!("{namespace}/{name}"), cluster.honeycombs.len());
        cluster.honeycombs.push(honeycomb);
    }
    cluster
}

fn reply(status: StatusCode, body: &Value) -> Response {
    (
        status,
        [("content-type", "application/json")],
        body.to_string(),
    )
        .into_response()
}

fn not_found() -> Response {
    reply(
        StatusCode::NOT_FOUND,
        &json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "NotFound", "code": 404}),
    )
}

/// A page of `items` as the API server lists them: `limit` from the `continue` offset.
fn page(
    kind: &str,
    api_version: &str,
    items: &[Value],
    query: &HashMap<String, String>,
) -> Response {
    let start: usize = query
        .get("continue")
        .and_then(|offset| offset.parse().ok())
        .unwrap_or(0);
    let limit: usize = query
        .get("limit")
        .and_then(|limit| limit.parse().ok())
        .unwrap_or(usize::MAX);
    let end = start.saturating_add(limit).min(items.len());
    let mut metadata = json!({"resourceVersion": "1"});
    if end < items.len() {
        metadata["continue"] = json!(end.to_string());
    }
    reply(
        StatusCode::OK,
        &json!({"kind": kind, "apiVersion": api_version, "metadata": metadata,
                "items": items.get(start..end).unwrap_or_default()}),
    )
}

async fn handle(State(cluster): State<Shared>, request: Request) -> Response {
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let query: HashMap<String, String> = request
        .uri()
        .query()
        .map(|query| {
            query
                .split('&')
                .filter_map(|pair| pair.split_once('='))
                .map(|(name, value)| (name.to_owned(), value.to_owned()))
                .collect()
        })
        .unwrap_or_default();
    if query.get("watch").is_some_and(|watch| watch == "true") {
        // Nothing changes in this cluster but what the operator writes.
        return Response::new(Body::from_stream(futures_util::stream::pending::<
            std::result::Result<Bytes, std::io::Error>,
        >()));
    }
    let body = axum::body::to_bytes(request.into_body(), 1 << 20)
        .await
        .unwrap_or_default();
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let mut cluster = lock(&cluster);
    match (method, segments.as_slice()) {
        (Method::GET, ["apis", "bichito.dev", "v1alpha1", "honeycombs"]) => page(
            "HoneycombList",
            "bichito.dev/v1alpha1",
            &cluster.honeycombs,
            &query,
        ),
        (Method::GET, ["api", "v1", "secrets"]) => {
            let items: Vec<Value> = cluster
                .secrets
                .values()
                .map(|secret| {
                    json!({"apiVersion": "meta.k8s.io/v1", "kind": "PartialObjectMetadata",
                           "metadata": secret["metadata"]})
                })
                .collect();
            page(
                "PartialObjectMetadataList",
                "meta.k8s.io/v1",
                &items,
                &query,
            )
        }
        (Method::GET, ["api", "v1", "namespaces", namespace, "secrets", name]) => {
            let key = format!("{namespace}/{name}");
            let owner = key.trim_end_matches("-api-key").to_owned();
            cluster.secrets_read.insert(owner);
            match cluster.secrets.get(&key) {
                Some(secret) => reply(StatusCode::OK, secret),
                None => not_found(),
            }
        }
        (Method::POST, ["api", "v1", "namespaces", namespace, "secrets"]) => {
            let name = body["metadata"]["name"].as_str().unwrap_or_default();
            let mut secret = body.clone();
            secret["metadata"]["namespace"] = json!(namespace);
            secret["metadata"]["resourceVersion"] = json!("1");
            cluster
                .secrets
                .insert(format!("{namespace}/{name}"), secret.clone());
            reply(StatusCode::CREATED, &secret)
        }
        (
            Method::PATCH,
            [
                "apis",
                "bichito.dev",
                "v1alpha1",
                "namespaces",
                namespace,
                "honeycombs",
                name,
                "status",
            ],
        ) => {
            let key = format!("{namespace}/{name}");
            let Some(&at) = cluster.index.get(&key) else {
                return not_found();
            };
            let ready = body["status"]["conditions"]
                .as_array()
                .is_some_and(|conditions| {
                    conditions
                        .iter()
                        .any(|c| c["type"] == "Ready" && c["status"] == "True")
                });
            if ready {
                cluster.ready.insert(key);
            }
            cluster.honeycombs[at]["status"] = body["status"].clone();
            reply(StatusCode::OK, &cluster.honeycombs[at])
        }
        (Method::POST, ["apis", "events.k8s.io", "v1", "namespaces", _, "events"]) => {
            reply(StatusCode::CREATED, &body)
        }
        _ => not_found(),
    }
}

/// Serves `cluster` on a loopback port; the kubeconfig file pointing at it.
async fn serve(cluster: Shared, work: &std::path::Path) -> Result<PathBuf> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let address = listener.local_addr()?;
    let app = Router::new().fallback(handle).with_state(cluster);
    tokio::spawn(async move { axum::serve(listener, app).await });
    let kubeconfig = work.join(format!("kubeconfig-{}", address.port()));
    std::fs::write(
        &kubeconfig,
        format!(
            "apiVersion: v1\nkind: Config\ncurrent-context: fake\n\
             clusters: [{{name: fake, cluster: {{server: \"http://{address}\"}}}}]\n\
             users: [{{name: fake, user: {{}}}}]\n\
             contexts: [{{name: fake, context: {{cluster: fake, user: fake, namespace: default}}}}]\n"
        ),
    )?;
    Ok(kubeconfig)
}

/// One phase's figures.
#[derive(Debug, Clone, Copy)]
struct Phase {
    /// `None`: not done within the timeout.
    seconds: Option<f64>,
    peak_rss: u64,
    failures: u64,
}

impl Phase {
    fn cells(phase: Option<Phase>, timeout: Duration) -> String {
        let Some(phase) = phase else {
            return "– | – | –".to_owned();
        };
        let seconds = match phase.seconds {
            Some(seconds) => format!("{seconds:.1}"),
            None => format!("not done in {}", humantime::format_duration(timeout)),
        };
        format!(
            "{seconds} | {:.0} | {}",
            phase.peak_rss as f64 / (1024.0 * 1024.0),
            phase.failures
        )
    }
}

/// The operator process of one phase.
struct Running {
    child: tokio::process::Child,
    pid: String,
    metrics: String,
}

async fn start_operator(
    binary: &std::path::Path,
    kubeconfig: &std::path::Path,
    database_url: &str,
    args: &OperatorArgs,
    concurrency: u16,
) -> Result<Running> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let child = tokio::process::Command::new(binary)
        .arg("run")
        .env("KUBECONFIG", kubeconfig)
        .env("DATABASE_URL", database_url)
        .env(
            "DATABASE_MAX_CONNECTIONS",
            args.database_connections.to_string(),
        )
        .env("MAX_CONCURRENT_RECONCILES", concurrency.to_string())
        .env("BICHITO_LISTEN", format!("127.0.0.1:{port}"))
        .env("LEADER_ELECTION", "false")
        .env("RUST_LOG", "error")
        .env_remove("KUBERNETES_SERVICE_HOST")
        .env_remove("BICHITO_INSTALLATION")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()?;
    let pid = child.id().ok_or("the operator exited at once")?.to_string();
    Ok(Running {
        child,
        pid,
        metrics: format!("http://127.0.0.1:{port}/metrics"),
    })
}

/// Peak resident memory of a process so far, from `/proc/<pid>/status`.
fn peak_rss(pid: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|status| {
            let line = status.lines().find(|line| line.starts_with("VmHWM:"))?;
            line.split_whitespace().nth(1)?.parse::<u64>().ok()
        })
        .map_or(0, |kib| kib * 1024)
}

/// Failed reconciliations the operator counted (its `/metrics`).
async fn failures(metrics: &str) -> u64 {
    let Ok(response) = reqwest::get(metrics).await else {
        return 0;
    };
    let text = response.text().await.unwrap_or_default();
    text.lines()
        .filter(|line| line.starts_with("bichito_operator_reconcile_failures_total"))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

/// Runs the operator until `done` holds of the cluster; the phase's figures.
async fn phase(
    running: Running,
    cluster: &Shared,
    timeout: Duration,
    done: impl Fn(&Cluster) -> bool,
) -> Result<Phase> {
    let started = Instant::now();
    let mut running = running;
    let finished = loop {
        if done(&lock(cluster)) {
            break true;
        }
        if started.elapsed() > timeout {
            break false;
        }
        if let Some(status) = running.child.try_wait()? {
            return Err(format!("the operator exited: {status}").into());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let seconds = finished.then(|| started.elapsed().as_secs_f64());
    let phase = Phase {
        seconds,
        peak_rss: peak_rss(&running.pid),
        failures: failures(&running.metrics).await,
    };
    // Killed, not stopped: an overwhelmed operator takes long to finish what it started.
    let _ = running.child.kill().await;
    Ok(phase)
}

/// Both phases for `count` Honeycombs at `concurrency` (0: unbounded); no restart when the
/// first phase did not finish.
async fn measure(
    binary: &std::path::Path,
    args: &OperatorArgs,
    count: usize,
    concurrency: u16,
) -> Result<(Phase, Option<Phase>)> {
    let work = std::env::temp_dir().join(format!("bichito-bench-operator-{}", std::process::id()));
    std::fs::create_dir_all(&work)?;
    let db = TestDatabase::postgres().await;
    db.store().await; // migrated before the operator starts, so its start is not timed on it
    let cluster: Shared = Arc::new(Mutex::new(honeycombs(count, args.namespaces)));
    let kubeconfig = serve(cluster.clone(), &work).await?;

    let running = start_operator(binary, &kubeconfig, &db.url, args, concurrency).await?;
    let fresh = phase(running, &cluster, args.timeout, |c| c.ready.len() >= count).await?;
    if fresh.seconds.is_none() {
        return Ok((fresh, None));
    }

    lock(&cluster).secrets_read.clear();
    let running = start_operator(binary, &kubeconfig, &db.url, args, concurrency).await?;
    let restart = phase(running, &cluster, args.timeout, |c| {
        c.secrets_read.len() >= count
    })
    .await?;
    let _ = std::fs::remove_dir_all(&work);
    Ok((fresh, Some(restart)))
}

pub async fn run(args: OperatorArgs) -> Result<()> {
    let binary = crate::server::binary("bichito-operator", args.operator.clone())?;
    println!(
        "bichito-operator over N Honeycombs ({} namespaces, {} database connections): time until \
         every one is Ready on a fresh cluster, and until every one is reconciled again after a \
         restart; peak resident memory of each phase; failed reconciliations",
        args.namespaces, args.database_connections
    );
    println!();
    println!(
        "| reconciliations at once | Honeycombs | fresh: all Ready s | fresh: peak RSS MiB | fresh: failures | restart: all reconciled s | restart: peak RSS MiB | restart: failures |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    let mut sides = vec![(args.concurrency.to_string(), args.concurrency)];
    if !args.bounded_only {
        sides.push(("unbounded (reference)".to_owned(), 0));
    }
    for &count in &args.counts {
        for (label, concurrency) in &sides {
            let (fresh, restart) = measure(&binary, &args, count, *concurrency).await?;
            println!(
                "| {label} | {count} | {} | {} |",
                Phase::cells(Some(fresh), args.timeout),
                Phase::cells(restart, args.timeout)
            );
        }
    }
    Ok(())
}
