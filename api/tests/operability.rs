//! `/healthz`, `/readyz`, `/metrics`, unknown routes and methods, and secrets kept out of logs.

mod common;

use common::*;
use serde_json::Value;

on_both_backends!(
    metrics_pass_promtool_check,
    health_and_readiness_answer,
    metrics_use_route_templates_and_outcomes,
    unknown_routes_and_methods_are_json_errors
);

async fn health_and_readiness_answer(backend: Backend) {
    let app = TestApp::start(backend).await;
    let health = app
        .client
        .get(app.url("/healthz"))
        .send()
        .await
        .expect("sent");
    assert_eq!(health.status(), 200);
    let ready: Value = app
        .client
        .get(app.url("/readyz"))
        .send()
        .await
        .expect("sent")
        .json()
        .await
        .expect("json");
    assert_eq!(ready["status"], "ready");
    assert_eq!(
        ready["database"],
        match backend {
            Backend::Postgres => "postgres",
            Backend::Sqlite => "sqlite",
        }
    );
}

async fn metrics_use_route_templates_and_outcomes(backend: Backend) {
    let app = TestApp::start(backend).await;
    let id = app
        .post_report(&minimal_report())
        .await
        .json::<Value>()
        .await
        .expect("json")["id"]
        .as_i64()
        .expect("id");
    app.get_bug(id, &app.token(&["payments"])).await;
    let response = app
        .client
        .get(app.url("/metrics"))
        .send()
        .await
        .expect("sent");
    assert!(
        response.headers()["content-type"]
            .to_str()
            .expect("ascii")
            .starts_with("text/plain")
    );
    let text = response.text().await.expect("text");
    assert!(
        text.contains(r#"http_requests_total{method="POST",route="/api/v1/bugs",status="201"} 1"#),
        "{text}"
    );
    assert!(
        text.contains(
            r#"http_requests_total{method="GET",route="/api/v1/bugs/{id}",status="200"} 1"#
        )
    );
    assert!(text.contains(
        r#"http_request_duration_seconds_bucket{method="POST",route="/api/v1/bugs",le="#
    ));
    assert!(text.contains(r#"bichito_reports_total{outcome="accepted"} 1"#));
    for outcome in ["invalid", "rate_limited", "blocked", "over_cap"] {
        assert!(
            text.contains(&format!("bichito_reports_total{{outcome=\"{outcome}\"}} 0")),
            "{outcome}"
        );
    }
    assert!(
        !text.contains(&format!("/api/v1/bugs/{id}\"")),
        "no raw paths as labels"
    );
}

async fn unknown_routes_and_methods_are_json_errors(backend: Backend) {
    let app = TestApp::start(backend).await;
    expect_error(
        app.client.get(app.url("/nope")).send().await.expect("sent"),
        404,
    )
    .await;
    expect_error(
        app.client
            .delete(app.url("/api/v1/widget/info"))
            .send()
            .await
            .expect("sent"),
        405,
    )
    .await;
}

async fn metrics_pass_promtool_check(backend: Backend) {
    let app = TestApp::start(backend).await;
    app.post_report(&minimal_report()).await;
    app.post_report(&serde_json::json!({"title": ""})).await;
    let text = app
        .client
        .get(app.url("/metrics"))
        .send()
        .await
        .expect("sent")
        .text()
        .await
        .expect("text");
    bichito_core::testing::assert_promtool_clean(&text);
}
