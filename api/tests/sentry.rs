//! Sentry-compatible feedback (`POST /api/{project_id}/envelope/`), tested with Sentry's own
//! Python SDK (PyPI `sentry-sdk`, installed by scripts/test.sh): feedback and user_report items
//! become bichitos on the team stream; the error event beside them is dropped; a retried
//! envelope is one bichito. And what the endpoint refuses, over plain HTTP.

mod common;

use common::*;
use serde_json::{Value, json};

fn dsn(app: &TestApp, key: &str, project: i64) -> String {
    format!(
        "http://{key}@{}/{project}",
        app.base.trim_start_matches("http://")
    )
}

const SCREENSHOT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/cart-screenshot.png"
);

fn send_with_python_sdk(dsn: &str, message: &str, email: &str) -> String {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/sentry/send_feedback.py");
    let output = std::process::Command::new("python3")
        .args([script, dsn, message, email, SCREENSHOT])
        .output()
        .expect("python3 runs (scripts/test.sh installs sentry-sdk)");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout)
        .expect("utf-8")
        .trim()
        .to_owned()
}

async fn stored(app: &TestApp) -> Vec<Value> {
    let page = json_of(
        app.client
            .get(app.url("/api/v1/teams/payments/bugs?limit=200"))
            .bearer_auth(app.token(&["payments"])),
    )
    .await;
    page["items"].as_array().expect("items").clone()
}

#[tokio::test]
async fn the_python_sdk_s_feedback_becomes_bichitos_on_the_stream() {
    // Screenshots on the S3-compatible server, checked like any upload.
    let app = TestApp::start_with_storage(Backend::Postgres, StorageKind::S3).await;
    let mut events = app.team_events().await;
    let dsn = dsn(&app, &app.api_key, app.honeycomb_id);
    let event_id = tokio::task::spawn_blocking(move || {
        send_with_python_sdk(
            &dsn,
            "Coupon ignored\nThe total stays at 40.",
            "ana@example.com",
        )
    })
    .await
    .expect("the script ran");
    let mut titles = Vec::new();
    for _ in 0..2 {
        let event = next(&mut events).await;
        assert_eq!(event.event, "bug.created");
        let created: Value = serde_json::from_str(&event.data).expect("json");
        titles.push(created["title"].as_str().expect("title").to_owned());
    }
    titles.sort();
    assert_eq!(
        titles,
        ["Coupon ignored", "The old report dialog still works"]
    );
    // Then the screenshot, stamped and announced like a widget's.
    let attached = next(&mut events).await;
    assert_eq!(attached.event, "bug.updated", "{attached:?}");
    let changes: Value = serde_json::from_str(&attached.data).expect("json");
    assert_eq!(
        changes["changes"]["attachment"]["content_type"], "image/png",
        "{changes}"
    );
    let bugs = stored(&app).await;
    assert_eq!(
        bugs.len(),
        2,
        "the error was dropped and the retry was one: {bugs:?}"
    );
    let feedback = bugs
        .iter()
        .find(|bug| bug["title"] == "Coupon ignored")
        .expect("the feedback");
    assert_eq!(
        feedback["description"],
        "Coupon ignored\nThe total stays at 40."
    );
    assert_eq!(feedback["reporter_email"], "ana@example.com");
    assert_eq!(feedback["reporter_identifier"], "Ana");
    assert_eq!(feedback["url"], "https://shop.example/cart");
    assert_eq!(feedback["environment"], "production");
    assert_eq!(feedback["app_version"], "shop@1.4.2");
    assert_eq!(feedback["extra"]["sentry"]["event_id"], event_id);
    assert_eq!(feedback["extra"]["sentry"]["source"], "python-script");
    assert_eq!(feedback["attachment"]["filename"], "screenshot.png");
    assert_eq!(feedback["attachment"]["content_length"], 1089, "{feedback}");
    // One attachment, though the envelope came twice: its stored object (and the upload it
    // was checked from, which the sweeper removes later).
    let stored_objects: Vec<String> = app
        .objects
        .names()
        .await
        .into_iter()
        .filter(|name| name.starts_with("attachments/"))
        .collect();
    assert_eq!(stored_objects.len(), 1, "{stored_objects:?}");
    let report = bugs
        .iter()
        .find(|bug| bug["title"] == "The old report dialog still works")
        .expect("the user_report");
    assert_eq!(report["reporter_email"], "bea@example.com");
    assert_eq!(report["reporter_identifier"], "Bea");
}

#[tokio::test]
async fn what_the_envelope_endpoint_refuses() {
    let app = TestApp::start(Backend::Sqlite).await;
    let envelope =
        "{}\n{\"type\":\"feedback\"}\n{\"contexts\":{\"feedback\":{\"message\":\"hi\"}}}\n";
    let post = |path: String, body: Vec<u8>, headers: Vec<(&'static str, String)>| {
        let mut request = app.client.post(app.url(&path)).body(body);
        for (name, value) in headers {
            request = request.header(name, value);
        }
        request.send()
    };
    let key = app.api_key.clone();
    let project = app.honeycomb_id;
    // No key, a wrong key, the key of another project.
    for (path, status) in [
        (format!("/api/{project}/envelope/"), 401),
        (
            format!("/api/{project}/envelope/?sentry_key=sk_live_nope"),
            401,
        ),
        (
            format!("/api/{}/envelope/?sentry_key={key}", project + 1),
            401,
        ),
    ] {
        let response = post(path.clone(), envelope.into(), vec![])
            .await
            .expect("sent");
        expect_error(response, status).await;
    }
    // A project that is not even text: a JSON 400 like every other refusal.
    expect_error(
        post(
            format!("/api/%FF/envelope/?sentry_key={key}"),
            envelope.into(),
            vec![],
        )
        .await
        .expect("sent"),
        400,
    )
    .await;
    // Not an envelope; an encoding it does not know; a gzip bomb.
    let at = format!("/api/{project}/envelope/?sentry_key={key}");
    expect_error(
        post(at.clone(), b"no".to_vec(), vec![])
            .await
            .expect("sent"),
        400,
    )
    .await;
    expect_error(
        post(
            at.clone(),
            envelope.into(),
            vec![("content-encoding", "br".into())],
        )
        .await
        .expect("sent"),
        400,
    )
    .await;
    let bomb = {
        use std::io::Write;
        let mut gzip = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        gzip.write_all(&vec![b' '; 20 * 1024 * 1024])
            .expect("write");
        gzip.finish().expect("gzip")
    };
    expect_error(
        post(at.clone(), bomb, vec![("content-encoding", "gzip".into())])
            .await
            .expect("sent"),
        413,
    )
    .await;
    // X-Sentry-Auth works as well as ?sentry_key=, and an item of another kind is acknowledged.
    let accepted = post(
        format!("/api/{project}/envelope/"),
        b"{\"event_id\":\"e1\"}\n{\"type\":\"event\"}\n{\"message\":\"boom\"}\n".to_vec(),
        vec![(
            "x-sentry-auth",
            format!("Sentry sentry_version=7, sentry_key={key}, sentry_client=raw/1.0"),
        )],
    )
    .await
    .expect("sent");
    assert_eq!(accepted.status(), 200);
    assert_eq!(
        accepted.json::<Value>().await.expect("json"),
        json!({"id": "e1"})
    );
    assert!(
        stored(&app).await.is_empty(),
        "nothing stored from an error event"
    );
    // From a browser on an origin the honeycomb does not list: 403.
    let foreign = post(
        at,
        envelope.into(),
        vec![("origin", "https://evil.example".into())],
    )
    .await
    .expect("sent");
    expect_error(foreign, 403).await;
}

#[tokio::test]
async fn the_browser_sdk_s_feedback_and_its_widget_become_bichitos() {
    let app = TestApp::start_with_storage(Backend::Postgres, StorageKind::Local).await;
    let port = common::proxy::free_port();
    let mut spec = example_spec();
    spec.allowed_origins
        .push(format!("http://127.0.0.1:{port}"));
    let key = app.reapply(&spec).await;
    let mut events = app.team_events().await;
    let dsn = dsn(&app, &key, app.honeycomb_id);
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/browser/sentry.cjs");
    let output = tokio::process::Command::new("node")
        .args([script, &dsn, SCREENSHOT, &port.to_string()])
        .env(
            "NODE_PATH",
            browser_node_path(&["playwright-core", "@sentry/browser"]),
        )
        .output()
        .await
        .expect("node runs (scripts/test.sh installs Node.js and @sentry/browser)");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let answer: Value = serde_json::from_slice(&output.stdout).expect("one JSON line");
    assert_eq!(answer["errors"], json!([]), "{answer}");
    // sendFeedback with its screenshot, then the widget's form.
    let mut seen = Vec::new();
    for _ in 0..3 {
        let event = next(&mut events).await;
        let data: Value = serde_json::from_str(&event.data).expect("json");
        seen.push((
            event.event,
            data["title"].clone(),
            data["changes"]["attachment"]["filename"].clone(),
        ));
    }
    assert_eq!(
        seen,
        [
            (
                "bug.created".to_owned(),
                json!("Coupon ignored"),
                Value::Null
            ),
            (
                "bug.updated".to_owned(),
                Value::Null,
                json!("screenshot.png")
            ),
            (
                "bug.created".to_owned(),
                json!("Search finds nothing for café"),
                Value::Null
            ),
        ]
    );
    let bugs = stored(&app).await;
    let widget = bugs
        .iter()
        .find(|bug| bug["title"] == "Search finds nothing for café")
        .expect("the widget's feedback");
    assert_eq!(widget["reporter_email"], "bea@example.com");
    assert_eq!(widget["reporter_identifier"], "Bea");
    assert_eq!(widget["app_version"], "shop@2.0.0");
    assert_eq!(widget["url"], format!("http://127.0.0.1:{port}/"));
    assert_eq!(
        widget["extra"]["sentry"]["sdk"]["name"],
        "sentry.javascript.browser"
    );
}

#[tokio::test]
async fn many_feedback_items_in_one_envelope_are_held_to_the_rate_limit() {
    let mut spec = example_spec();
    spec.quotas.reports_per_minute = Some(3);
    let app = TestApp::start_with(Backend::Sqlite, spec).await;
    let mut envelope = String::from("{\"event_id\":\"packed\"}\n");
    for n in 0..5 {
        envelope.push_str(&format!(
            "{{\"type\":\"feedback\"}}\n{{\"event_id\":\"f{n}\",\"contexts\":{{\"feedback\":{{\"message\":\"packed {n}\"}}}}}}\n"
        ));
    }
    let response = app
        .client
        .post(app.url(&format!(
            "/api/{}/envelope/?sentry_key={}",
            app.honeycomb_id, app.api_key
        )))
        .body(envelope)
        .send()
        .await
        .expect("sent");
    let refused = expect_error(response, 429).await;
    assert!(refused["error"].is_string(), "{refused}");
    assert_eq!(
        stored(&app).await.len(),
        3,
        "three of five: the rate, not the envelope, decides"
    );
}
