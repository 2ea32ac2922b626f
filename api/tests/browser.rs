//! A dashboard hosted on another origin, in a real browser: headless Chromium (Debian's
//! package) driven by playwright-core (npm), both installed by `scripts/test.sh`. The page
//! opens the team stream with `EventSource` and calls the dashboard API with `fetch` (a
//! preflighted GET with `Authorization`, then a `PATCH` whose `bug.updated` comes back on the
//! stream). From an origin in `DASHBOARD_ORIGINS` all of it works; from any other the browser
//! refuses both.

mod common;

use axum::response::Html;
use common::*;
use serde_json::Value;
use std::time::Duration;

const PAGE: &str = include_str!("browser/dashboard.html");

/// Serves the test page on a port of its own; its origin.
async fn page_server() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let origin = format!("http://{}", listener.local_addr().expect("address"));
    let app = axum::Router::new().route(
        "/dashboard.html",
        axum::routing::get(|| async { Html(PAGE) }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await });
    origin
}

/// Loads `url` in headless Chromium; what the page left in `window.__result`.
async fn drive(url: &str, screenshot: &std::path::Path) -> Value {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/browser/drive.cjs");
    let node_path = browser_node_path(&["playwright-core"]);
    let run = tokio::process::Command::new("node")
        .arg(script)
        .arg(url)
        .arg(screenshot)
        .env("NODE_PATH", &node_path)
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(Duration::from_secs(60), run)
        .await
        .expect("the browser finishes within a minute")
        .expect("node runs (scripts/test.sh installs Node.js and Chromium)");
    assert!(
        output.status.success(),
        "the browser run failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report: Value = serde_json::from_slice(&output.stdout).expect("one JSON line");
    report
}

async fn a_dashboard_on_an_allowed_origin_streams_and_edits_and_others_are_refused(bus: BusKind) {
    let allowed = page_server().await;
    let other = page_server().await;
    let app = TestApp::start_for_dashboards(Backend::Postgres, bus, vec![allowed.clone()]).await;
    let created = app.created_report().await;
    let token = app.token(&["payments"]);
    let page = |origin: &str| {
        format!(
            "{origin}/dashboard.html?api={}&stream={}&token={token}",
            app.base, app.stream_base
        )
    };
    let shots = std::env::temp_dir();

    let seen = drive(
        &page(&allowed),
        &shots.join("bichito-dashboard-allowed.png"),
    )
    .await;
    let result = &seen["result"];
    assert_eq!(result["hello"], true, "the stream opened: {seen}");
    assert_eq!(result["listStatus"], 200, "{seen}");
    assert_eq!(result["listed"], 1, "{seen}");
    assert_eq!(result["patchStatus"], 200, "{seen}");
    assert_eq!(result["updated"]["bug_id"], created["id"], "{seen}");
    assert_eq!(result["updated"]["changes"]["status"], "in_progress");
    assert!(
        !result["updatedId"].as_str().unwrap_or_default().is_empty(),
        "events carry their id across origins"
    );

    let refused = drive(&page(&other), &shots.join("bichito-dashboard-refused.png")).await;
    let result = &refused["result"];
    assert_eq!(result["streamError"], true, "{refused}");
    assert!(result["hello"].is_null(), "{refused}");
    assert_eq!(
        result["fetchError"], "TypeError",
        "the browser refuses the API answer: {refused}"
    );
}

#[tokio::test]
async fn a_dashboard_on_another_origin_works_with_serve() {
    a_dashboard_on_an_allowed_origin_streams_and_edits_and_others_are_refused(BusKind::Memory)
        .await;
}

#[tokio::test]
async fn a_dashboard_on_another_origin_works_with_api_and_sse_apart() {
    a_dashboard_on_an_allowed_origin_streams_and_edits_and_others_are_refused(BusKind::Nats).await;
}
