//! The operator's Prometheus metrics and its small HTTP listener: `/metrics`, `/healthz` (the
//! process runs) and `/readyz` (the database answers).

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use bichito_core::store::Store;
use prometheus::{Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, Opts, Registry};
use std::sync::Arc;
use std::time::Duration;

pub struct Metrics {
    registry: Registry,
    reconciliations: IntCounter,
    failures: IntCounterVec,
    duration: Histogram,
    leader: IntGauge,
}

/// Every reason a reconciliation can fail with, so that each series exists (at zero) from the
/// start. (Leader election and I/O errors stop the process; they are not reconciliations.)
const FAILURE_REASONS: [&str; 5] = [
    "kube_api",
    "kube_conflict",
    "database",
    "finalizer",
    "incomplete_object",
];

impl Metrics {
    pub fn new() -> Self {
        let registry = Registry::new();
        let reconciliations = IntCounter::with_opts(Opts::new(
            "bichito_operator_reconciliations_total",
            "Honeycomb reconciliations started.",
        ))
        .expect("valid metric definition");
        let failures = IntCounterVec::new(
            Opts::new(
                "bichito_operator_reconcile_failures_total",
                "Honeycomb reconciliations that failed, by reason.",
            ),
            &["reason"],
        )
        .expect("valid metric definition");
        let duration = Histogram::with_opts(
            HistogramOpts::new(
                "bichito_operator_reconcile_duration_seconds",
                "Time one Honeycomb reconciliation takes, Kubernetes and database calls included.",
            )
            .buckets(vec![
                0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
            ]),
        )
        .expect("valid metric definition");
        let leader = IntGauge::with_opts(Opts::new(
            "bichito_operator_leader",
            "1 while this replica holds the leader Lease and reconciles, 0 while it stands by.",
        ))
        .expect("valid metric definition");
        for reason in FAILURE_REASONS {
            failures.with_label_values(&[reason]);
        }
        for collector in [
            Box::new(reconciliations.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(failures.clone()),
            Box::new(duration.clone()),
            Box::new(leader.clone()),
        ] {
            registry
                .register(collector)
                .expect("metric names are unique");
        }
        Self {
            registry,
            reconciliations,
            failures,
            duration,
            leader,
        }
    }

    /// Counts a reconciliation; the returned timer records its duration when dropped.
    pub fn reconcile_started(&self) -> prometheus::HistogramTimer {
        self.reconciliations.inc();
        self.duration.start_timer()
    }

    pub fn reconcile_failed(&self, reason: &str) {
        self.failures.with_label_values(&[reason]).inc();
    }

    pub fn failures(&self, reason: &str) -> u64 {
        self.failures.with_label_values(&[reason]).get()
    }

    pub fn reconciliations(&self) -> u64 {
        self.reconciliations.get()
    }

    pub fn set_leader(&self, leading: bool) {
        self.leader.set(i64::from(leading));
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        bichito_core::telemetry::encode_metrics(&self.registry)
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

#[derive(Clone)]
struct Probe {
    metrics: Arc<Metrics>,
    store: Arc<dyn Store>,
}

/// `/metrics`, `/healthz` and `/readyz`.
pub fn router(metrics: Arc<Metrics>, store: Arc<dyn Store>) -> Router {
    Router::new()
        .route("/metrics", get(render))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(ready))
        .with_state(Probe { metrics, store })
}

async fn render(State(probe): State<Probe>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        probe.metrics.render(),
    )
}

async fn ready(State(probe): State<Probe>) -> (StatusCode, &'static str) {
    match tokio::time::timeout(Duration::from_secs(2), probe.store.ping()).await {
        Ok(Ok(())) => (StatusCode::OK, "ready"),
        Ok(Err(err)) => {
            tracing::warn!(error = %err, "not ready: database unreachable");
            (StatusCode::SERVICE_UNAVAILABLE, "database unreachable")
        }
        Err(_) => (StatusCode::SERVICE_UNAVAILABLE, "database timed out"),
    }
}
