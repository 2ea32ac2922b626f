//! Hostile input from outside: NUL characters in every string, `extra` nested without end, and
//! heads no server should read. Every answer is a JSON error; nothing is stored; never a 5xx.

mod common;

use common::*;
use serde_json::{Value, json};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

on_both_backends!(
    nul_characters_are_refused_in_every_report_field,
    nul_characters_are_refused_in_dashboard_edits_comments_and_filters,
    extra_nested_deeper_than_32_levels_is_refused,
    heads_too_large_or_malformed_get_json_errors_on_any_request_of_a_connection,
    an_oversized_body_is_413_and_closes_the_connection,
    unknown_routes_and_methods_get_json_errors,
);

const NUL: &str = "a\u{0}b";

async fn nul_characters_are_refused_in_every_report_field(backend: Backend) {
    let app = TestApp::start(backend).await;
    let fields = [
        "title",
        "description",
        "environment",
        "app_version",
        "stack_trace",
        "url",
        "user_agent",
        "reporter_email",
        "reporter_identifier",
    ];
    for field in fields {
        let mut body = minimal_report();
        body[field] = json!(NUL);
        let response = app.post_report(&body).await;
        let error = expect_error(response, 400).await;
        assert_eq!(sorted_fields(&error), [field], "{field}: {error}");
    }
    for extra in [
        json!({"note": NUL}),
        json!({NUL: 1}),
        json!({"deep": [{"deeper": {"k": NUL}}]}),
    ] {
        let mut body = minimal_report();
        body["extra"] = extra.clone();
        let error = expect_error(app.post_report(&body).await, 400).await;
        assert_eq!(sorted_fields(&error), ["extra"], "{extra}");
    }
    assert_eq!(app.stored_count().await, 0, "nothing was stored");
    let mut fine = minimal_report();
    fine["extra"] = json!({"path": "C:\\u0000", "nul": "\\u0000"});
    assert_eq!(
        app.post_report(&fine).await.status(),
        201,
        "backslashes followed by u0000 are text, not NUL"
    );
}

async fn nul_characters_are_refused_in_dashboard_edits_comments_and_filters(backend: Backend) {
    let app = TestApp::start(backend).await;
    let created = app.created_report().await;
    let id = created["id"].as_i64().expect("id");
    let token = app.token(&["payments"]);
    let bug = app.url(&format!("/api/v1/bugs/{id}"));
    for (edit, field) in [
        (json!({"assignee": NUL}), "assignee"),
        (json!({"labels": ["ok", NUL]}), "labels"),
    ] {
        let response = app
            .client
            .patch(&bug)
            .bearer_auth(&token)
            .json(&edit)
            .send()
            .await
            .expect("sent");
        let error = expect_error(response, 400).await;
        assert_eq!(sorted_fields(&error), [field]);
    }
    let comment = app
        .client
        .post(format!("{bug}/comments"))
        .bearer_auth(&token)
        .json(&json!({"body": NUL}))
        .send()
        .await
        .expect("sent");
    assert_eq!(sorted_fields(&expect_error(comment, 400).await), ["body"]);
    for filter in ["assignee", "label"] {
        let list = app
            .client
            .get(app.url(&format!("/api/v1/teams/payments/bugs?{filter}=a%00b")))
            .bearer_auth(&token)
            .send()
            .await
            .expect("sent");
        assert_eq!(sorted_fields(&expect_error(list, 400).await), [filter]);
    }
    let unchanged: Value = app.get_bug(id, &token).await.json().await.expect("json");
    assert_eq!(unchanged["assignee"], Value::Null);
    assert_eq!(unchanged["labels"], json!([]));
    let comments: Value = app
        .client
        .get(format!("{bug}/comments"))
        .bearer_auth(&token)
        .send()
        .await
        .expect("sent")
        .json()
        .await
        .expect("json");
    assert_eq!(comments["items"], json!([]));
}

/// `extra` objects and arrays alternating, `levels` deep.
fn nested_extra(levels: usize) -> String {
    let mut extra = "1".to_owned();
    for level in (0..levels).rev() {
        extra = if level % 2 == 0 {
            format!(r#"{{"k":{extra}}}"#)
        } else {
            format!("[{extra}]")
        };
    }
    extra
}

async fn extra_nested_deeper_than_32_levels_is_refused(backend: Backend) {
    let app = TestApp::start(backend).await;
    let post = |extra: String| {
        app.client
            .post(app.url("/api/v1/bugs"))
            .header("x-api-key", &app.api_key)
            .header("content-type", "application/json")
            .body(format!(
                r#"{{"title": "t", "description": "d", "extra": {extra}}}"#
            ))
            .send()
    };
    for levels in [33, 10_000] {
        let error = expect_error(post(nested_extra(levels)).await.expect("sent"), 400).await;
        assert_eq!(sorted_fields(&error), ["extra"], "{levels} levels");
    }
    assert_eq!(app.stored_count().await, 0);
    assert_eq!(
        post(nested_extra(32)).await.expect("sent").status(),
        201,
        "32 levels are fine"
    );
}

/// A response read off a raw socket: status, lowercase headers, body.
struct RawResponse {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl RawResponse {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(header, _)| header == name)
            .map(|(_, value)| value.as_str())
    }

    fn json(&self) -> Value {
        assert_eq!(
            self.header("content-type"),
            Some("application/json"),
            "a JSON error ({})",
            self.status
        );
        serde_json::from_str(&self.body).unwrap_or_else(|err| panic!("{err}: {:?}", self.body))
    }
}

/// Reads one response whose body has a `content-length`.
async fn read_response(socket: &mut TcpStream) -> RawResponse {
    let mut seen = Vec::new();
    let read = async {
        loop {
            if let Some(end) = seen.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&seen[..end]).into_owned();
                let mut lines = head.split("\r\n");
                let status = lines
                    .next()
                    .and_then(|line| line.split(' ').nth(1))
                    .and_then(|code| code.parse().ok())
                    .expect("a status line");
                let headers: Vec<(String, String)> = lines
                    .filter_map(|line| line.split_once(':'))
                    .map(|(name, value)| (name.trim().to_lowercase(), value.trim().to_owned()))
                    .collect();
                let length: usize = headers
                    .iter()
                    .find(|(name, _)| name == "content-length")
                    .and_then(|(_, value)| value.parse().ok())
                    .expect("content-length");
                if seen.len() >= end + 4 + length {
                    let body =
                        String::from_utf8_lossy(&seen[end + 4..end + 4 + length]).into_owned();
                    return RawResponse {
                        status,
                        headers,
                        body,
                    };
                }
            }
            let mut chunk = [0u8; 4096];
            let n = socket.read(&mut chunk).await.expect("read");
            assert!(n > 0, "closed before a whole response: {seen:?}");
            seen.extend_from_slice(&chunk[..n]);
        }
    };
    tokio::time::timeout(Duration::from_secs(10), read)
        .await
        .expect("a response within 10 s")
}

/// Asserts the server closes `socket` (after what it already sent).
async fn closed(socket: &mut TcpStream) {
    let mut rest = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), socket.read_to_end(&mut rest))
        .await
        .expect("closed within 10 s")
        .expect("read");
}

/// Sends `request` on a fresh connection, or on one that first served a request (so hyper,
/// not the first-request reader, sees it).
async fn send_raw(base: &str, request: &[u8], after_another: bool) -> (RawResponse, TcpStream) {
    let address = base.trim_start_matches("http://");
    let mut socket = TcpStream::connect(address).await.expect("connect");
    if after_another {
        socket
            .write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n")
            .await
            .expect("write");
        assert_eq!(read_response(&mut socket).await.status, 200);
    }
    socket.write_all(request).await.expect("write");
    (read_response(&mut socket).await, socket)
}

async fn heads_too_large_or_malformed_get_json_errors_on_any_request_of_a_connection(
    backend: Backend,
) {
    let app = TestApp::start(backend).await;
    let long_token = "x".repeat(100 * 1024);
    let cases: Vec<(Vec<u8>, u16)> = vec![
        (
            format!(
                "GET /api/v1/teams/payments/stream?token={long_token} HTTP/1.1\r\nhost: x\r\n\r\n"
            )
            .into_bytes(),
            414,
        ),
        (
            format!(
                "GET /api/v1/teams/payments/bugs HTTP/1.1\r\nhost: x\r\nx-big: {}\r\n\r\n",
                "y".repeat(500 * 1024)
            )
            .into_bytes(),
            431,
        ),
        (b"NOT HTTP AT ALL\r\n\r\n".to_vec(), 400),
        (b"GET / HTTP/1.1\r\nbad header\r\n\r\n".to_vec(), 400),
    ];
    for (request, status) in cases {
        for after_another in [false, true] {
            let (response, mut socket) = send_raw(&app.base, &request, after_another).await;
            assert_eq!(response.status, status, "after another: {after_another}");
            assert!(
                response.json()["error"].is_string(),
                "{status}: {}",
                response.body
            );
            assert_eq!(response.header("connection"), Some("close"));
            closed(&mut socket).await;
        }
    }
    assert_eq!(
        app.post_report(&minimal_report()).await.status(),
        201,
        "the server carries on"
    );
}

async fn an_oversized_body_is_413_and_closes_the_connection(backend: Backend) {
    let app = TestApp::start(backend).await;
    let head = format!(
        "POST /api/v1/bugs HTTP/1.1\r\nhost: x\r\nx-api-key: {}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{{",
        app.api_key,
        10 * 1024 * 1024
    );
    for after_another in [false, true] {
        let (response, mut socket) = send_raw(&app.base, head.as_bytes(), after_another).await;
        assert_eq!(response.status, 413);
        assert!(response.json()["error"].is_string());
        assert_eq!(response.header("connection"), Some("close"));
        closed(&mut socket).await;
    }
    assert_eq!(app.stored_count().await, 0);
}

async fn unknown_routes_and_methods_get_json_errors(backend: Backend) {
    let app = TestApp::start(backend).await;
    for (request, status) in [
        (&b"GET /nope HTTP/1.1\r\nhost: x\r\n\r\n"[..], 404),
        (
            &b"PUT /api/v1/bugs HTTP/1.1\r\nhost: x\r\ncontent-length: 0\r\n\r\n"[..],
            405,
        ),
        (
            &b"GET /api/v1/bugs/abc HTTP/1.1\r\nhost: x\r\n\r\n"[..],
            401,
        ),
        (
            &b"GET /api/v1/teams/payments/stream HTTP/1.1\r\nhost: x\r\n\r\n"[..],
            401,
        ),
    ] {
        for after_another in [false, true] {
            let (response, _) = send_raw(&app.base, request, after_another).await;
            assert_eq!(response.status, status);
            assert!(response.json()["error"].is_string());
        }
    }
    // Path segments that are not UTF-8 once decoded, with a valid token.
    let token = app.token(&["payments"]);
    for path in [
        "/api/v1/teams/%FF/bugs",
        "/api/v1/teams/%FF/stream",
        "/api/v1/bugs/%FF",
        "/api/v1/bugs/%FF/comments",
    ] {
        let request =
            format!("GET {path} HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {token}\r\n\r\n");
        let (response, _) = send_raw(&app.base, request.as_bytes(), false).await;
        assert_eq!(response.status, 400, "{path}");
        assert!(response.json()["error"].is_string(), "{path}");
    }
}
