//! The OpenAPI document: served at `/api/v1/openapi.json`, the same as the committed
//! `docs/openapi.json`, valid by an independent validator (PyPI `openapi-spec-validator`); and
//! Schemathesis (PyPI) against a live `bichito serve` on each backend, stateful links included:
//! no server error, and no answer that the document does not describe.

mod common;

use bichito_core::provision::{Provisioned, provision};
use bichito_core::spec::Plan;
use common::process::start;
use common::*;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};
use tokio::process::Command;

const COMMITTED: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/openapi.json");
const SCHEMATHESIS_CONFIG: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/schemathesis/schemathesis.toml"
);

/// Runs `command` for at most `limit`: its output. Past the limit the command is killed (by its
/// pid, as the future that owns it is dropped) and the test fails.
async fn run_bounded(mut command: Command, limit: Duration) -> Output {
    let output = command.stdin(Stdio::null()).kill_on_drop(true).output();
    tokio::time::timeout(limit, output)
        .await
        .unwrap_or_else(|_| panic!("{command:?} did not finish within {limit:?}"))
        .unwrap_or_else(|err| panic!("run {command:?} (scripts/test.sh installs it): {err}"))
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[tokio::test]
async fn the_served_and_printed_document_is_the_committed_one_and_valid() {
    let app = TestApp::start(Backend::Sqlite).await;
    let response = reqwest::get(app.url("/api/v1/openapi.json"))
        .await
        .expect("GET the document");
    assert_eq!(response.status(), 200);
    assert_eq!(
        response
            .headers()
            .get("content-type")
            .and_then(|value| value.to_str().ok()),
        Some("application/json")
    );
    let served = response.text().await.expect("the document");
    let committed = std::fs::read_to_string(COMMITTED).expect("docs/openapi.json is committed");
    assert!(
        served == committed,
        "docs/openapi.json differs from what the server serves: regenerate it with \
         `cargo run -p bichito -- openapi > docs/openapi.json` and commit it"
    );

    let mut print = Command::new(env!("CARGO_BIN_EXE_bichito"));
    print.arg("openapi");
    let printed = run_bounded(print, Duration::from_secs(60)).await;
    assert!(printed.status.success(), "{}", text(&printed.stderr));
    assert!(
        text(&printed.stdout) == committed,
        "`bichito openapi` prints the committed document"
    );

    let document: Value = serde_json::from_str(&served).expect("JSON");
    assert_eq!(document["openapi"], "3.1.0");
    let validator = run_bounded(
        {
            let mut command = Command::new("openapi-spec-validator");
            command.arg(COMMITTED);
            command
        },
        Duration::from_secs(120),
    )
    .await;
    assert!(
        validator.status.success(),
        "openapi-spec-validator refuses the document:\n{}\n{}",
        text(&validator.stdout),
        text(&validator.stderr)
    );
}

/// What the document says of the routes a client needs, checked against the seeds.
#[test]
fn the_document_names_every_route_status_and_header_of_the_contract() {
    let document: Value = serde_json::from_str(bichito::http::openapi::json()).expect("JSON");
    let operation = |path: &str, method: &str| -> Value {
        let found = document["paths"][path][method].clone();
        assert!(found.is_object(), "{method} {path} is documented");
        found
    };
    let statuses = |path: &str, method: &str| -> Vec<String> {
        let responses = operation(path, method)["responses"].clone();
        responses
            .as_object()
            .map(|responses| responses.keys().cloned().collect())
            .unwrap_or_default()
    };
    for (path, method, expected) in [
        (
            "/api/v1/bugs",
            "post",
            &[
                "201", "400", "401", "403", "413", "415", "422", "429", "503",
            ][..],
        ),
        ("/api/v1/widget/info", "get", &["200", "401", "403", "503"]),
        (
            "/api/{project_id}/envelope/",
            "post",
            &["200", "400", "401", "403", "413", "429", "503"],
        ),
        (
            "/api/v1/bugs/{id}/attachments",
            "post",
            &["201", "404", "409", "501"],
        ),
        (
            "/api/v1/bugs/{id}/attachments/complete",
            "post",
            &["200", "409", "422"],
        ),
        (
            "/api/v1/teams/{team_id}/bugs",
            "get",
            &["200", "400", "401", "404"],
        ),
        ("/api/v1/bugs/{id}", "get", &["200", "401", "404"]),
        ("/api/v1/bugs/{id}", "patch", &["200", "400", "404", "415"]),
        ("/api/v1/bugs/{id}", "delete", &["204", "404"]),
        ("/api/v1/bugs/{id}/comments", "get", &["200", "404"]),
        ("/api/v1/bugs/{id}/comments", "post", &["201", "400", "404"]),
        ("/api/v1/session", "post", &["201", "401"]),
        ("/api/v1/session", "get", &["200", "401"]),
        ("/api/v1/session", "delete", &["204"]),
        (
            "/api/v1/teams/{team_id}/stream/tickets",
            "post",
            &["201", "401", "404"],
        ),
        (
            "/api/v1/teams/{team_id}/stream",
            "get",
            &["200", "401", "404"],
        ),
    ] {
        let answered = statuses(path, method);
        for status in expected {
            assert!(
                answered.iter().any(|known| known == status),
                "{method} {path} documents {status}: {answered:?}"
            );
        }
    }

    let stream = operation("/api/v1/teams/{team_id}/stream", "get");
    assert!(stream["responses"]["200"]["content"]["text/event-stream"].is_object());
    let described = stream["description"].as_str().unwrap_or_default();
    for event in [
        "hello",
        "bug.created",
        "bug.updated",
        "bug.commented",
        "bug.deleted",
        "stream.gap",
        "stream.reset",
        "stream.expired",
    ] {
        assert!(described.contains(event), "the stream documents {event}");
    }
    let header_params = |path: &str, method: &str| -> Vec<String> {
        operation(path, method)["parameters"]
            .as_array()
            .map(|parameters| {
                parameters
                    .iter()
                    .filter(|parameter| parameter["in"] == "header")
                    .filter_map(|parameter| parameter["name"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    };
    assert_eq!(header_params("/api/v1/bugs", "post"), ["Idempotency-Key"]);
    assert_eq!(
        header_params("/api/v1/teams/{team_id}/stream", "get"),
        ["Last-Event-ID"]
    );
    assert!(
        operation("/api/v1/bugs", "post")["responses"]["201"]["headers"]["Idempotent-Replayed"]
            .is_object()
    );
    let responses = &document["components"]["responses"];
    assert!(responses["TooManyRequests"]["headers"]["Retry-After"].is_object());
    assert!(responses["ServiceUnavailable"]["headers"]["Retry-After"].is_object());
    assert_eq!(
        document["components"]["securitySchemes"]["api_key"]["name"],
        "x-api-key"
    );

    // The seed's report, as the document's example of the body.
    let report = &document["components"]["schemas"]["ReportBody"];
    assert_eq!(
        report["example"]["title"],
        "Login button broken on Safari 17"
    );
    assert_eq!(
        report["required"],
        serde_json::json!(["title", "description"])
    );

    // Every reference names something the document has.
    let mut references = Vec::new();
    collect_references(&document, &mut references);
    assert!(references.len() > 20, "{references:?}");
    for reference in references {
        let pointer = reference.trim_start_matches('#');
        assert!(
            document.pointer(pointer).is_some(),
            "{reference} does not resolve"
        );
    }
}

fn collect_references(value: &Value, into: &mut Vec<String>) {
    match value {
        Value::Object(fields) => {
            for (name, field) in fields {
                match (name.as_str(), field) {
                    ("$ref", Value::String(reference)) => into.push(reference.clone()),
                    _ => collect_references(field, into),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|item| collect_references(item, into)),
        _ => {}
    }
}

/// A fresh database whose honeycomb lets Schemathesis through: the pro plan (no monthly cap),
/// no blocklist, and a rate limit it cannot reach. The API key.
async fn honeycomb_for_fuzzing(db: &TestDatabase) -> Provisioned {
    let store = db.store().await;
    let mut spec = example_spec();
    spec.plan = Plan::Pro;
    spec.quotas.reports_per_minute = Some(1_000_000);
    spec.blocklist.clear();
    provision(
        &*store,
        "payments",
        "checkout-web",
        &spec,
        None,
        chrono::Utc::now(),
    )
    .await
    .expect("provision")
}

async fn schemathesis(base: &str, honeycomb: &Provisioned, token: &str, work: &Path) -> Output {
    let mut command = Command::new("schemathesis");
    command
        .current_dir(work)
        .args(["--config-file", SCHEMATHESIS_CONFIG, "--no-color", "run"])
        .arg(format!("{base}/api/v1/openapi.json"))
        .env("BICHITO_TEST_API_KEY", &honeycomb.api_key)
        .env(
            "BICHITO_TEST_PROJECT_ID",
            honeycomb.honeycomb_id.to_string(),
        )
        .env("BICHITO_TEST_JWT", token)
        .arg("--report-dir")
        .arg(work.join("report"));
    run_bounded(command, Duration::from_secs(600)).await
}

async fn schemathesis_finds_no_failure(backend: Backend) {
    let db = match backend {
        Backend::Postgres => TestDatabase::postgres().await,
        Backend::Sqlite => TestDatabase::sqlite(),
    };
    let honeycomb = honeycomb_for_fuzzing(&db).await;
    let work: PathBuf = std::env::temp_dir().join(format!(
        "bichito-schemathesis-{}-{:?}",
        std::process::id(),
        backend
    ));
    std::fs::create_dir_all(&work).expect("a work folder");
    let data = work.join("data");
    let process = start(
        &["serve", "--listen", "127.0.0.1:0"],
        &[
            ("DATABASE_URL", &db.url),
            ("JWT_SECRET", JWT_SECRET),
            ("BICHITO_DATA_DIR", data.to_str().expect("UTF-8 path")),
            ("ATTACHMENTS_BACKEND", "local"),
            ("RUST_LOG", "warn"),
        ],
    );
    let token = team_token(&["payments"]);
    let started = Instant::now();
    let output = schemathesis(&process.base, &honeycomb, &token, &work).await;
    let took = started.elapsed();
    let (_, logs) = process.terminate();
    let report = text(&output.stdout);
    println!("{report}\n(took {took:?})");
    assert!(
        output.status.success(),
        "Schemathesis found failures on {backend:?}:\n{report}\n{}\n--- server log ---\n{logs}",
        text(&output.stderr)
    );
    // It did test: every operation of the document, and the stateful phase along its links.
    let document: Value = serde_json::from_str(bichito::http::openapi::json()).expect("JSON");
    let operations: usize = document["paths"]
        .as_object()
        .map(|paths| {
            paths
                .values()
                .filter_map(Value::as_object)
                .flat_map(|item| item.keys())
                .filter(|key| ["get", "put", "post", "delete", "patch"].contains(&key.as_str()))
                .count()
        })
        .unwrap_or_default();
    assert!(operations >= 19, "{operations} operations");
    for needle in [
        // All but `GET /api/v1/openapi.json`, which Schemathesis leaves out as the document's own.
        format!("Tested: {}", operations - 1),
        "✅ Stateful".to_owned(),
        "No issues found".to_owned(),
    ] {
        assert!(
            report.contains(&needle),
            "the report says {needle:?}:\n{report}"
        );
    }
    assert!(
        !logs.contains("panicked"),
        "the server panicked on {backend:?}:\n{logs}"
    );
    let _ = std::fs::remove_dir_all(&work);
}

on_both_backends!(schemathesis_finds_no_failure);
