//! The operator's listener: `/healthz`, `/readyz` (the database answers) and `/metrics`
//! (clean for `promtool check metrics`), on a real port and a real Postgres.

use bichito_core::testing::{TestDatabase, assert_promtool_clean};
use bichito_operator::metrics::{Metrics, router};
use std::sync::Arc;

async fn serve(metrics: Arc<Metrics>, db: &TestDatabase) -> String {
    let store = db.store().await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind a loopback port");
    let address = listener.local_addr().expect("local address");
    tokio::spawn(async move { axum::serve(listener, router(metrics, store)).await });
    format!("http://{address}")
}

async fn get(url: String) -> (u16, String) {
    let response = reqwest::get(url).await.expect("the listener answers");
    let status = response.status().as_u16();
    (status, response.text().await.expect("a body"))
}

#[tokio::test]
async fn health_readiness_and_metrics_answer() {
    let db = TestDatabase::postgres().await;
    let metrics = Arc::new(Metrics::new());
    let base = serve(metrics.clone(), &db).await;
    drop(metrics.reconcile_started());
    metrics.reconcile_failed("database");
    metrics.set_leader(true);

    assert_eq!(get(format!("{base}/healthz")).await.0, 200);
    assert_eq!(
        get(format!("{base}/readyz")).await,
        (200, "ready".to_owned())
    );
    let (status, exposition) = get(format!("{base}/metrics")).await;
    assert_eq!(status, 200);
    for line in [
        "bichito_operator_reconciliations_total 1",
        "bichito_operator_reconcile_failures_total{reason=\"database\"} 1",
        "bichito_operator_reconcile_failures_total{reason=\"kube_api\"} 0",
        "bichito_operator_reconcile_duration_seconds_count 1",
        "bichito_operator_leader 1",
    ] {
        assert!(
            exposition.contains(line),
            "missing {line:?} in\n{exposition}"
        );
    }
    assert_promtool_clean(&exposition);
}

#[tokio::test]
async fn readiness_fails_while_the_database_is_gone() {
    let db = TestDatabase::postgres().await;
    let base = serve(Arc::new(Metrics::new()), &db).await;
    assert_eq!(get(format!("{base}/readyz")).await.0, 200);
    drop(db); // drops the database, terminating its connections
    let (status, body) = get(format!("{base}/readyz")).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(
        get(format!("{base}/healthz")).await.0,
        200,
        "alive all the same"
    );
}
