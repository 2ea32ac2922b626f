//! The inbox in a real browser (headless Chromium via playwright-core): signed in by a
//! one-time link, it lists the team's reports and follows, live, what happens to them from
//! outside: a report POSTed with an API key appears on top, a status change patches its row,
//! a deletion removes it. Nothing is fetched from anywhere but bichito.

mod common;

use bichito_core::clock::Clock;
use bichito_core::spec::HoneycombSpec;
use common::*;
use serde_json::{Value, json};
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{ChildStdin, ChildStdout};

struct Browser {
    stdin: ChildStdin,
    answers: Lines<BufReader<ChildStdout>>,
    _child: tokio::process::Child,
}

impl Browser {
    async fn answer(&mut self) -> Value {
        let line = tokio::time::timeout(Duration::from_secs(30), self.answers.next_line())
            .await
            .expect("the browser answers within 30 s")
            .expect("read")
            .expect("the browser is still there (see its stderr)");
        serde_json::from_str(&line).expect("one JSON line")
    }

    async fn ask(&mut self, command: Value) -> Value {
        let line = format!("{command}\n");
        self.stdin.write_all(line.as_bytes()).await.expect("write");
        self.answer().await
    }
}

async fn open_inbox(link: &str, shots: &std::path::Path) -> Browser {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/browser/inbox.cjs");
    let mut child = tokio::process::Command::new("node")
        .arg(script)
        .arg(link)
        .arg(shots)
        .env(
            "NODE_PATH",
            browser_node_path(&["playwright-core", "axe-core"]),
        )
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("node runs (scripts/test.sh installs Node.js)");
    let stdin = child.stdin.take().expect("stdin");
    let answers = BufReader::new(child.stdout.take().expect("stdout")).lines();
    Browser {
        stdin,
        answers,
        _child: child,
    }
}

/// Comments on a report through the API, as another dashboard would.
async fn comment(app: &TestApp, token: &str, id: i64, body: &str) {
    let posted = app
        .client
        .post(app.url(&format!("/api/v1/bugs/{id}/comments")))
        .bearer_auth(token)
        .json(&json!({ "body": body }))
        .send()
        .await
        .expect("sent");
    assert_eq!(posted.status(), 201);
}

/// Changes a report's status through the API, as another dashboard would.
async fn set_status(app: &TestApp, token: &str, id: i64, status: &str) {
    let patched = app
        .client
        .patch(app.url(&format!("/api/v1/bugs/{id}")))
        .bearer_auth(token)
        .json(&json!({ "status": status }))
        .send()
        .await
        .expect("sent");
    assert_eq!(patched.status(), 200);
}

#[tokio::test]
async fn the_inbox_lists_the_team_and_follows_it_live() {
    let app = TestApp::start(Backend::Postgres).await;
    let first = app.created_report().await["id"].as_i64().expect("id");
    let link = app
        .sign_in_link("ana", &["payments"], chrono::TimeDelta::minutes(10))
        .await;
    let shots = std::env::temp_dir().join("bichito-inbox");
    let mut browser = open_inbox(&link, &shots).await;

    let ready = browser.answer().await;
    assert_eq!(ready["ready"], true, "{ready}");
    assert_eq!(ready["who"], "ana");
    assert_eq!(ready["listed"], json!([first]), "the team's reports");

    // A report from the widget's side shows on top within a second.
    let created = app.created_report().await["id"].as_i64().expect("id");
    let shown = browser.ask(json!({"wait": "row", "id": created})).await;
    assert_eq!(shown["first"], created, "newest first: {shown}");
    assert!(shown["ms"].as_u64().is_some_and(|ms| ms < 1000), "{shown}");
    // A triage change from elsewhere patches the row.
    let token = app.token(&["payments"]);
    set_status(&app, &token, created, "resolved").await;
    let updated = browser
        .ask(json!({"wait": "row", "id": created, "status": "resolved"}))
        .await;
    assert_eq!(updated["ok"], true, "{updated}");
    // Keyboard: j selects the newest row, j the next, Enter opens it in full with comments.
    comment(&app, &token, first, "Reproduced on Safari 17.1").await;
    let detail = browser.ask(json!({"keys": ["j", "j", "Enter"]})).await;
    assert_eq!(detail["selected"], first, "{detail}");
    assert_eq!(
        detail["title"],
        format!("#{first} Login button broken"),
        "{detail}"
    );
    assert_eq!(
        detail["focused"], "detail-title",
        "focus moves to the detail"
    );
    assert_eq!(
        detail["comments"],
        json!(["user-1: Reproduced on Safari 17.1"])
    );
    let text = detail["text"].as_str().expect("text");
    assert!(text.contains("Nothing happens on click."), "{text}");
    for (shot, dark) in [("light", false), ("dark", true)] {
        assert_eq!(
            browser.ask(json!({"shot": shot, "dark": dark})).await["ok"],
            true
        );
    }
    // A comment added on the page is stored as the signed-in user's; one added elsewhere
    // shows live.
    let added = browser.ask(json!({"comment": "Fixed in 1.4.3"})).await;
    assert_eq!(
        added["comments"],
        json!(["user-1: Reproduced on Safari 17.1", "ana: Fixed in 1.4.3"]),
        "{added}"
    );
    comment(&app, &token, first, "Confirmed").await;
    let live = browser
        .ask(json!({"wait": "comment", "text": "user-1: Confirmed"}))
        .await;
    assert!(live["ms"].as_u64().is_some_and(|ms| ms < 1000), "{live}");
    // Accessibility: axe-core (WCAG 2.1 A and AA) finds nothing, light and dark, wide and at
    // 360 px, where nothing overflows sideways either.
    for (dark, width) in [(false, 1100), (true, 1100), (false, 360), (true, 360)] {
        let checked = browser
            .ask(json!({"axe": true, "dark": dark, "width": width}))
            .await;
        assert_eq!(
            checked["violations"],
            json!([]),
            "dark {dark}, {width} px: {checked}"
        );
        assert!(
            checked["overflow"]
                .as_i64()
                .is_some_and(|overflow| overflow <= 0),
            "dark {dark}, {width} px: {checked}"
        );
    }
    let closed = browser.ask(json!({"keys": ["Escape"]})).await;
    let shortcuts = browser.ask(json!({"shortcuts": true})).await;
    assert_eq!(shortcuts["listed"][0], "j / k", "{shortcuts}");
    assert_eq!(shortcuts["focused"], "status", "/ goes to the filters");
    assert_eq!(closed["ok"], true, "{closed}");
    // A deletion removes it.
    let deleted = app
        .client
        .delete(app.url(&format!("/api/v1/bugs/{first}")))
        .bearer_auth(&token)
        .send()
        .await
        .expect("sent");
    assert_eq!(deleted.status(), 204);
    let gone = browser.ask(json!({"wait": "gone", "id": first})).await;
    assert_eq!(gone["ok"], true, "{gone}");

    // Filters: the list, the URL, and live events held to them.
    let open_only = browser.ask(json!({"filter": {"status": "open"}})).await;
    assert_eq!(open_only["search"], "?status=open", "{open_only}");
    assert_eq!(open_only["listed"], json!([]), "{open_only}");
    let fresh = app.created_report().await["id"].as_i64().expect("id");
    browser.ask(json!({"wait": "row", "id": fresh})).await;
    set_status(&app, &token, fresh, "resolved").await;
    let left = browser.ask(json!({"wait": "gone", "id": fresh})).await;
    assert_eq!(
        left["ok"], true,
        "a resolved report leaves the open list: {left}"
    );
    let all = browser.ask(json!({"filter": {"status": ""}})).await;
    assert_eq!(all["listed"], json!([fresh, created]), "{all}");

    // Triage by keyboard: `e` resolves the selected report at once, and it stays resolved.
    set_status(&app, &token, fresh, "open").await;
    browser
        .ask(json!({"wait": "row", "id": fresh, "status": "open"}))
        .await;
    let resolved_here = browser
        .ask(json!({"press": "e", "id": fresh, "status": "resolved"}))
        .await;
    assert_eq!(resolved_here["error"], Value::Null, "{resolved_here}");
    assert_eq!(resolved_here["statuses"], json!(["open", "resolved"]));
    let stored: Value = app.get_bug(fresh, &token).await.json().await.expect("json");
    assert_eq!(stored["status"], "resolved", "the API has it");
    // Another team's reports never show, even live.
    let other = bichito_core::provision::provision(
        &*app.store,
        "web",
        "storefront",
        &HoneycombSpec {
            team: "web".into(),
            ..example_spec()
        },
        None,
        app.clock.now(),
    )
    .await
    .expect("another team's honeycomb");
    let foreign = app
        .post_report_with_key(&other.api_key, &minimal_report())
        .await;
    assert_eq!(foreign.status(), 201);
    let foreign: Value = foreign.json().await.expect("json");
    let ours = app.created_report().await["id"].as_i64().expect("id");
    browser.ask(json!({"wait": "row", "id": ours})).await;
    let listed = browser.ask(json!({"list": true})).await;
    assert_eq!(
        listed["listed"],
        json!([ours, fresh, created]),
        "not {}: {listed}",
        foreign["id"]
    );

    // Refused by the API (503 on every PATCH): shown at once, taken back, and said why.
    assert_eq!(
        browser.ask(json!({"refusePatches": true})).await["ok"],
        true
    );
    let refused = browser
        .ask(json!({"press": "e", "id": ours, "status": "open", "expectError": true}))
        .await;
    assert_eq!(
        refused["statuses"],
        json!(["open", "resolved", "open"]),
        "{refused}"
    );
    assert_eq!(refused["error"], "Not saved: temporarily unavailable");
    let stored: Value = app.get_bug(ours, &token).await.json().await.expect("json");
    assert_eq!(stored["status"], "open");

    let end = browser.ask(json!({"quit": true})).await;
    assert_eq!(end["errors"], json!([]), "no script error on the page");
    assert_eq!(end["outside"], json!([]), "nothing fetched from elsewhere");
}

#[tokio::test]
async fn the_inbox_files_are_served_with_a_strict_policy_and_unknown_ones_are_404() {
    let app = TestApp::start(Backend::Sqlite).await;
    for (path, content_type) in [
        ("/inbox", "text/html; charset=utf-8"),
        ("/inbox/inbox.js", "text/javascript; charset=utf-8"),
        ("/inbox/inbox.css", "text/css; charset=utf-8"),
    ] {
        let response = app.client.get(app.url(path)).send().await.expect("sent");
        assert_eq!(response.status(), 200, "{path}");
        assert_eq!(response.headers()["content-type"], content_type);
        let policy = response.headers()["content-security-policy"]
            .to_str()
            .expect("ascii");
        assert!(policy.starts_with("default-src 'self'"), "{policy}");
        assert!(policy.contains("frame-ancestors 'none'"), "{policy}");
    }
    expect_error(
        app.client
            .get(app.url("/inbox/../Cargo.toml"))
            .send()
            .await
            .expect("sent"),
        404,
    )
    .await;
    expect_error(
        app.client
            .get(app.url("/inbox/secrets.js"))
            .send()
            .await
            .expect("sent"),
        404,
    )
    .await;
    // `/` leads to the inbox (no provider is set up for sign-in).
    let home = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
        .get(app.url("/"))
        .send()
        .await
        .expect("sent");
    assert_eq!(home.status(), 303);
    assert_eq!(home.headers()["location"], "/inbox");
}
