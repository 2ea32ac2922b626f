//! `POST /api/v1/bugs` against seed 002: the canonical payload, every validation boundary, and
//! every error status, each with a JSON body and nothing stored.

mod common;

use common::*;
use serde_json::{Value, json};

on_both_backends!(
    a_full_report_returns_201_with_the_canonical_payload,
    the_created_payload_is_what_get_returns,
    title_allows_500_characters_and_rejects_501,
    description_allows_10000_characters_and_rejects_10001,
    every_severity_is_accepted_and_others_rejected,
    a_bad_reporter_email_is_rejected,
    extra_must_be_an_object,
    stack_trace_allows_50_kib_and_rejects_more,
    every_rejected_field_is_named_in_one_error,
    malformed_json_is_400,
    a_wrong_content_type_is_415,
    an_oversized_body_is_413,
    a_missing_unknown_or_malformed_key_is_401,
    hostile_bodies_never_cause_a_server_error,
    widget_info_tells_the_plan,
);

const CANONICAL_FIELDS: [&str; 22] = [
    "id",
    "project_id",
    "team_id",
    "title",
    "description",
    "status",
    "severity",
    "environment",
    "app_version",
    "stack_trace",
    "url",
    "user_agent",
    "reporter_email",
    "reporter_identifier",
    "extra",
    "assignee",
    "labels",
    "duplicate_of",
    "attachment",
    "comment_count",
    "created_at",
    "updated_at",
];

fn full_report() -> Value {
    json!({
        "title": "Login button broken on Safari 17",
        "description": "Steps: visit /login, click Sign in. Nothing happens. No console errors.",
        "severity": "high",
        "environment": "production",
        "app_version": "1.4.2",
        "stack_trace": null,
        "url": "https://example.com/login",
        "user_agent": "Mozilla/5.0 ...",
        "reporter_email": "user@example.com",
        "reporter_identifier": "user_42",
        "extra": { "viewport": "1440x900", "billing_plan": "pro" }
    })
}

fn report_with(field: &str, value: Value) -> Value {
    let mut report = minimal_report();
    report[field] = value;
    report
}

async fn a_full_report_returns_201_with_the_canonical_payload(backend: Backend) {
    let app = TestApp::start(backend).await;
    let response = app.post_report(&full_report()).await;
    assert_eq!(response.status(), 201);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .expect("ascii")
            .starts_with("application/json")
    );
    let text = response.text().await.expect("body");
    let body: Value = serde_json::from_str(&text).expect("JSON");
    let keys: Vec<&str> = body
        .as_object()
        .expect("object")
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(keys, CANONICAL_FIELDS, "every canonical field, in order");
    assert!(body["id"].as_i64().is_some_and(|id| id > 0));
    assert_eq!(body["project_id"], app.honeycomb_id);
    assert_eq!(body["team_id"], "payments");
    assert_eq!(body["status"], "open");
    assert_eq!(body["severity"], "high");
    for field in [
        "title",
        "description",
        "environment",
        "app_version",
        "url",
        "user_agent",
        "reporter_email",
        "reporter_identifier",
        "extra",
    ] {
        assert_eq!(
            body[field],
            full_report()[field],
            "{field} is stored as sent"
        );
    }
    assert_eq!(body["stack_trace"], Value::Null);
    assert_eq!(
        (
            &body["assignee"],
            &body["duplicate_of"],
            &body["attachment"]
        ),
        (&Value::Null, &Value::Null, &Value::Null)
    );
    assert_eq!(body["labels"], json!([]));
    let created_at = body["created_at"].as_str().expect("created_at");
    assert!(
        chrono::DateTime::parse_from_rfc3339(created_at).is_ok() && created_at.ends_with('Z'),
        "RFC 3339 UTC: {created_at}"
    );
    assert_eq!(body["updated_at"], body["created_at"]);
    assert_eq!(app.stored_count().await, 1);
}

async fn the_created_payload_is_what_get_returns(backend: Backend) {
    let app = TestApp::start(backend).await;
    let mut report = minimal_report();
    report["extra"] =
        serde_json::from_str(r#"{"z": [1, 2.50], "a": {"nested": true}}"#).expect("json");
    let created = app.post_report(&report).await.text().await.expect("body");
    let id = serde_json::from_str::<Value>(&created).expect("json")["id"]
        .as_i64()
        .expect("id");
    let fetched = app.get_bug(id, &app.token(&["payments"])).await;
    assert_eq!(fetched.status(), 200);
    assert_eq!(
        fetched.text().await.expect("body"),
        created,
        "byte-identical payloads"
    );
    let minimal: Value = serde_json::from_str(&created).expect("json");
    assert_eq!(minimal["severity"], "medium", "severity defaults to medium");
}

async fn title_allows_500_characters_and_rejects_501(backend: Backend) {
    let app = TestApp::start(backend).await;
    assert_eq!(
        app.post_report(&report_with("title", json!("é".repeat(500))))
            .await
            .status(),
        201
    );
    let too_long = app
        .post_report(&report_with("title", json!("a".repeat(501))))
        .await;
    assert_eq!(too_long.status(), 400);
    assert_eq!(rejected_fields(too_long).await, ["title"]);
    for empty in [json!(""), json!("   "), Value::Null] {
        let response = app.post_report(&report_with("title", empty)).await;
        assert_eq!(response.status(), 400);
        assert_eq!(rejected_fields(response).await, ["title"]);
    }
    assert_eq!(app.stored_count().await, 1);
}

async fn description_allows_10000_characters_and_rejects_10001(backend: Backend) {
    let app = TestApp::start(backend).await;
    assert_eq!(
        app.post_report(&report_with("description", json!("d".repeat(10_000))))
            .await
            .status(),
        201
    );
    let too_long = app
        .post_report(&report_with("description", json!("d".repeat(10_001))))
        .await;
    assert_eq!(too_long.status(), 400);
    assert_eq!(rejected_fields(too_long).await, ["description"]);
    let mut missing = minimal_report();
    missing
        .as_object_mut()
        .expect("object")
        .remove("description");
    assert_eq!(
        rejected_fields(app.post_report(&missing).await).await,
        ["description"]
    );
    assert_eq!(app.stored_count().await, 1);
}

async fn every_severity_is_accepted_and_others_rejected(backend: Backend) {
    let app = TestApp::start(backend).await;
    for severity in ["low", "medium", "high", "critical"] {
        let response = app
            .post_report(&report_with("severity", json!(severity)))
            .await;
        assert_eq!(response.status(), 201);
        assert_eq!(
            response.json::<Value>().await.expect("json")["severity"],
            severity
        );
    }
    for bad in [json!("urgent"), json!("HIGH"), json!(3)] {
        let response = app.post_report(&report_with("severity", bad)).await;
        assert_eq!(response.status(), 400);
        assert_eq!(rejected_fields(response).await, ["severity"]);
    }
    assert_eq!(app.stored_count().await, 4);
}

async fn a_bad_reporter_email_is_rejected(backend: Backend) {
    let app = TestApp::start(backend).await;
    for bad in ["not-an-email", "a@", "@example.com", "two@@example.com"] {
        let response = app
            .post_report(&report_with("reporter_email", json!(bad)))
            .await;
        assert_eq!(response.status(), 400, "{bad}");
        assert_eq!(rejected_fields(response).await, ["reporter_email"]);
    }
    assert_eq!(
        app.post_report(&report_with(
            "reporter_email",
            json!("ana+bugs@example.co.uk")
        ))
        .await
        .status(),
        201
    );
    assert_eq!(app.stored_count().await, 1);
}

async fn extra_must_be_an_object(backend: Backend) {
    let app = TestApp::start(backend).await;
    for bad in [json!([1, 2]), json!("text"), json!(42), json!(true)] {
        let response = app.post_report(&report_with("extra", bad)).await;
        assert_eq!(response.status(), 400);
        assert_eq!(rejected_fields(response).await, ["extra"]);
    }
    assert_eq!(
        app.post_report(&report_with("extra", json!({})))
            .await
            .status(),
        201
    );
    assert_eq!(app.stored_count().await, 1);
}

async fn stack_trace_allows_50_kib_and_rejects_more(backend: Backend) {
    let app = TestApp::start(backend).await;
    assert_eq!(
        app.post_report(&report_with("stack_trace", json!("s".repeat(51_200))))
            .await
            .status(),
        201
    );
    let too_long = app
        .post_report(&report_with("stack_trace", json!("s".repeat(51_201))))
        .await;
    assert_eq!(too_long.status(), 400);
    assert_eq!(rejected_fields(too_long).await, ["stack_trace"]);
    assert_eq!(app.stored_count().await, 1);
}

async fn every_rejected_field_is_named_in_one_error(backend: Backend) {
    let app = TestApp::start(backend).await;
    let body = json!({
        "title": "t".repeat(501), "severity": "urgent", "reporter_email": "nope", "extra": [1],
        "environment": 7, "stack_trace": "s".repeat(51_201)
    });
    let response = app.post_report(&body).await;
    let error = expect_error(response, 400).await;
    let fields = sorted_fields(&error);
    assert_eq!(
        fields,
        [
            "description",
            "environment",
            "extra",
            "reporter_email",
            "severity",
            "stack_trace",
            "title"
        ]
    );
    assert!(
        error["fields"]
            .as_array()
            .expect("fields")
            .iter()
            .all(|f| f["message"].as_str().is_some_and(|m| !m.is_empty()))
    );
    assert_eq!(app.stored_count().await, 0);
}

async fn malformed_json_is_400(backend: Backend) {
    let app = TestApp::start(backend).await;
    for body in [
        "{\"title\": ",
        "not json",
        "[1, 2]",
        "",
        "{\"title\": \"a\",}",
    ] {
        let response = app
            .client
            .post(app.url("/api/v1/bugs"))
            .header("x-api-key", &app.api_key)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .expect("sent");
        expect_error(response, 400).await;
    }
    assert_eq!(app.stored_count().await, 0);
}

async fn a_wrong_content_type_is_415(backend: Backend) {
    let app = TestApp::start(backend).await;
    let body = minimal_report().to_string();
    for content_type in [
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
        Some("application/jsonx"),
        None,
    ] {
        let mut request = app
            .client
            .post(app.url("/api/v1/bugs"))
            .header("x-api-key", &app.api_key)
            .body(body.clone());
        if let Some(content_type) = content_type {
            request = request.header("content-type", content_type);
        }
        expect_error(request.send().await.expect("sent"), 415).await;
    }
    let with_charset = app
        .client
        .post(app.url("/api/v1/bugs"))
        .header("x-api-key", &app.api_key)
        .header("content-type", "application/json; charset=utf-8")
        .body(body)
        .send()
        .await
        .expect("sent");
    assert_eq!(with_charset.status(), 201);
    assert_eq!(app.stored_count().await, 1);
}

async fn an_oversized_body_is_413(backend: Backend) {
    let app = TestApp::start(backend).await;
    let huge = report_with("description", json!("d".repeat(300 * 1024)));
    expect_error(app.post_report(&huge).await, 413).await;
    // Without a Content-Length (chunked), the limit still holds while reading.
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        (0..300).map(|_| Ok(vec![b' '; 1024])).collect();
    let streamed = app
        .client
        .post(app.url("/api/v1/bugs"))
        .header("x-api-key", &app.api_key)
        .header("content-type", "application/json")
        .body(reqwest::Body::wrap_stream(futures_util::stream::iter(
            chunks,
        )))
        .send()
        .await
        .expect("sent");
    expect_error(streamed, 413).await;
    assert_eq!(app.stored_count().await, 0);
}

async fn a_missing_unknown_or_malformed_key_is_401(backend: Backend) {
    let app = TestApp::start(backend).await;
    let missing = app
        .client
        .post(app.url("/api/v1/bugs"))
        .json(&minimal_report())
        .send()
        .await
        .expect("sent");
    assert!(
        missing.headers().get("www-authenticate").is_none(),
        "an API key is not a bearer token"
    );
    expect_error(missing, 401).await;
    let unknown = format!("sk_live_{}", "A".repeat(40));
    expect_error(
        app.post_report_with_key(&unknown, &minimal_report()).await,
        401,
    )
    .await;
    expect_error(
        app.post_report_with_key("hello", &minimal_report()).await,
        401,
    )
    .await;
    // Right prefix, wrong secret part.
    let forged = format!("{}{}", &app.api_key[..16], "B".repeat(32));
    expect_error(
        app.post_report_with_key(&forged, &minimal_report()).await,
        401,
    )
    .await;
    assert_eq!(app.stored_count().await, 0);
}

async fn hostile_bodies_never_cause_a_server_error(backend: Backend) {
    let app = TestApp::start(backend).await;
    let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    let bodies: Vec<Vec<u8>> = vec![
        vec![0xff, 0xfe, 0x00, 0x7b],
        b"{\"title\": \"\\ud800\", \"description\": \"x\"}".to_vec(),
        format!("{{\"title\": \"t\", \"description\": \"d\", \"extra\": {deep}}}").into_bytes(),
        b"{\"title\": \"t\", \"description\": \"d\", \"extra\": {\"n\": 1e999999}}".to_vec(),
        b"{\"title\": \"t\\u0000\", \"description\": \"d\", \"severity\": {\"low\": 1}}".to_vec(),
        b"null".to_vec(),
        b"{\"title\": [\"t\"], \"description\": {}}".to_vec(),
    ];
    for body in bodies {
        let response = app
            .client
            .post(app.url("/api/v1/bugs"))
            .header("x-api-key", &app.api_key)
            .header("content-type", "application/json")
            .body(body.clone())
            .send()
            .await
            .expect("sent");
        let status = response.status().as_u16();
        assert!(
            (200..500).contains(&status),
            "{status} for {:?}",
            String::from_utf8_lossy(&body[..body.len().min(60)])
        );
    }
}

async fn widget_info_tells_the_plan(backend: Backend) {
    let free = TestApp::start(backend).await;
    let info = |app: &TestApp| {
        app.client
            .get(app.url("/api/v1/widget/info"))
            .header("x-api-key", app.api_key.clone())
            .send()
    };
    let body: Value = info(&free).await.expect("sent").json().await.expect("json");
    assert_eq!(
        body,
        json!({"plan": "free", "powered_by_visible": true, "attachments": false})
    );

    let mut spec = example_spec();
    spec.plan = bichito_core::spec::Plan::Pro;
    let pro = TestApp::start_with(backend, spec).await;
    let body: Value = info(&pro).await.expect("sent").json().await.expect("json");
    assert_eq!(
        body,
        json!({"plan": "pro", "powered_by_visible": false, "attachments": false})
    );
    let with_storage = TestApp::start_with_storage(backend, StorageKind::Local).await;
    let body: Value = info(&with_storage)
        .await
        .expect("sent")
        .json()
        .await
        .expect("json");
    assert_eq!(body["attachments"], true, "screenshots are taken");

    let anonymous = free
        .client
        .get(free.url("/api/v1/widget/info"))
        .send()
        .await
        .expect("sent");
    expect_error(anonymous, 401).await;
}
