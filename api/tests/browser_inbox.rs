//! The inbox in a real browser (headless Chromium via playwright-core): signed in by a
//! one-time link, it lists the team's reports and follows, live, what happens to them from
//! outside (created, triaged, commented, deleted); it pages, searches and triages by keyboard
//! and mouse; two people in one team see each other's work; in split mode it rides out the
//! sse processes dying behind nginx. Nothing is fetched from anywhere but bichito. One test
//! writes the README's screenshots (`docs/inbox-*.png`).

mod common;

use bichito_core::clock::Clock;
use bichito_core::spec::HoneycombSpec;
use common::browser::Browser;
use common::process;
use common::proxy::{self, free_port};
use common::*;
use serde_json::{Value, json};
use std::time::Duration;

fn open_inbox(link: &str, shots: &std::path::Path) -> Browser {
    Browser::start(
        "inbox.cjs",
        &[link.as_ref(), shots.as_os_str()],
        &["playwright-core", "axe-core"],
    )
}

/// Where the test run leaves the inbox's screenshots (`docs/inbox-*.png`, shown in the README).
fn screenshots() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/inbox")
}

/// A change made through the API, as another dashboard would: `method` on `path` with an
/// optional JSON body; fails unless it answers `status`.
async fn elsewhere(
    app: &TestApp,
    token: &str,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
    status: u16,
) {
    let mut request = app.client.request(method, app.url(path)).bearer_auth(token);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let answered = request.send().await.expect("sent");
    assert_eq!(answered.status(), status, "{path}");
}

/// Comments on a report through the API, as another dashboard would.
async fn comment(app: &TestApp, token: &str, id: i64, body: &str) {
    let path = format!("/api/v1/bugs/{id}/comments");
    elsewhere(
        app,
        token,
        reqwest::Method::POST,
        &path,
        Some(json!({ "body": body })),
        201,
    )
    .await;
}

/// Changes a report through the API, as another dashboard would.
async fn patch(app: &TestApp, token: &str, id: i64, changes: Value) {
    let path = format!("/api/v1/bugs/{id}");
    elsewhere(
        app,
        token,
        reqwest::Method::PATCH,
        &path,
        Some(changes),
        200,
    )
    .await;
}

/// Changes a report's status through the API, as another dashboard would.
async fn set_status(app: &TestApp, token: &str, id: i64, status: &str) {
    patch(app, token, id, json!({ "status": status })).await;
}

/// Deletes a report through the API, as another dashboard would.
async fn delete(app: &TestApp, token: &str, id: i64) {
    let path = format!("/api/v1/bugs/{id}");
    elsewhere(app, token, reqwest::Method::DELETE, &path, None, 204).await;
}

#[tokio::test]
async fn the_inbox_lists_the_team_and_follows_it_live() {
    let app = TestApp::start(Backend::Postgres).await;
    let first = app.created_report().await["id"].as_i64().expect("id");
    let link = app
        .sign_in_link("ana", &["payments"], chrono::TimeDelta::minutes(10))
        .await;
    let shots = std::env::temp_dir().join(format!("bichito-inbox-{}", std::process::id()));
    let mut browser = open_inbox(&link, &shots);

    let ready = browser.answer().await;
    assert_eq!(ready["ready"], true, "{ready}");
    assert_eq!(ready["who"], "ana");
    assert_eq!(ready["listed"], json!([first]), "the team's reports");

    // A report from the widget's side shows on top within a second.
    let created = app.created_report().await["id"].as_i64().expect("id");
    let shown = browser.ask(json!({"wait": "row", "id": created})).await;
    assert_eq!(shown["first"], created, "newest first: {shown}");
    assert!(shown["ms"].as_u64().is_some_and(|ms| ms < 1000), "{shown}");
    // Said to screen readers too (a polite live region).
    let said = browser
        .ask(json!({"waitFor": "document.getElementById('announce').textContent === 'New report: Login button broken'"}))
        .await;
    assert_eq!(said["ok"], true, "{said}");
    // A triage change from elsewhere patches the row.
    let token = app.token(&["payments"]);
    set_status(&app, &token, created, "resolved").await;
    let updated = browser
        .ask(json!({"wait": "row", "id": created, "status": "resolved"}))
        .await;
    assert_eq!(updated["ok"], true, "{updated}");
    // Keyboard: j selects the newest row, j the next, Enter opens it in full with comments.
    comment(&app, &token, first, "Reproduced on Safari 17.1").await;
    let counted = browser
        .ask(json!({"waitFor": format!("document.querySelector('#bugs tr[data-id=\"{first}\"] .comments').textContent === '1'")}))
        .await;
    assert_eq!(counted["ok"], true, "the comment count moves: {counted}");
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
    browser.assert_accessible(1100).await;
    let closed = browser.ask(json!({"keys": ["Escape"]})).await;
    let shortcuts = browser.ask(json!({"shortcuts": true})).await;
    assert_eq!(shortcuts["listed"][0], "j / k", "{shortcuts}");
    assert_eq!(shortcuts["focused"], "q", "/ goes to the filters");
    assert_eq!(closed["ok"], true, "{closed}");
    // A deletion removes it.
    delete(&app, &token, first).await;
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
    stored_when(&app, &token, fresh, |bug| bug["status"] == "resolved").await;
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
    assert_eq!(
        refused["error"],
        format!("Not saved (#{ours}): temporarily unavailable")
    );
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
        // Revalidated by its ETag: a reload of an unchanged file is a 304 without a body.
        let tag = response.headers()["etag"].clone();
        let again = app
            .client
            .get(app.url(path))
            .header("if-none-match", tag)
            .send()
            .await
            .expect("sent");
        assert_eq!(again.status(), 304, "{path}");
        assert!(again.bytes().await.expect("body").is_empty());
        // Gzipped for a browser that takes it.
        let gzipped = app
            .client
            .get(app.url(path))
            .header("accept-encoding", "gzip")
            .send()
            .await
            .expect("sent");
        assert_eq!(gzipped.headers()["content-encoding"], "gzip", "{path}");
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

/// A report with `title`, from the widget's side; its id.
async fn report_titled(app: &TestApp, title: &str) -> i64 {
    let response = app
        .post_report(&json!({"title": title, "description": "Seen in production."}))
        .await;
    assert_eq!(response.status(), 201, "{title}");
    let created: Value = response.json().await.expect("json");
    created["id"].as_i64().expect("id")
}

/// Report `id` as the API has it once `done` holds (the page shows a change before the API
/// answers it); fails after 5 s.
async fn stored_when(app: &TestApp, token: &str, id: i64, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let stored: Value = app.get_bug(id, token).await.json().await.expect("json");
        if done(&stored) {
            return stored;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "#{id} never got there: {stored}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits (at most 5 s) for the API to answer 404 for report `id`: the page takes a deletion
/// off the list before the API has answered it.
async fn deleted_from_api(app: &TestApp, token: &str, id: i64) {
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while app.get_bug(id, token).await.status() != 404 {
        assert!(std::time::Instant::now() < deadline, "#{id} is still there");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The example honeycomb with room for a hundred reports a minute.
fn roomy_spec() -> HoneycombSpec {
    let mut spec = example_spec();
    spec.quotas.reports_per_minute = Some(10_000);
    spec.quotas.monthly_reports = Some(100_000);
    spec
}

/// The JavaScript that reads one cell of row `id` on the page.
fn cell(id: i64, class: &str) -> String {
    format!("document.querySelector('#bugs tr[data-id=\"{id}\"] .{class}').textContent")
}

#[tokio::test]
async fn the_inbox_pages_searches_and_triages_by_keyboard_and_mouse() {
    let app = TestApp::start_with(Backend::Postgres, roomy_spec()).await;
    let token = app.token(&["payments"]);
    let mut older = Vec::new();
    for n in 0..101 {
        older.push(report_titled(&app, &format!("Checkout fails, case {n}")).await);
    }
    let login = report_titled(&app, "Login button broken").await;
    let link = app
        .sign_in_link("ana", &["payments"], chrono::TimeDelta::minutes(10))
        .await;
    let shots = std::env::temp_dir().join(format!("bichito-triage-{}", std::process::id()));
    let mut browser = open_inbox(&link, &shots);
    let ready = browser.answer().await;
    let listed = ready["listed"].as_array().expect("listed");
    assert_eq!(listed.len(), 100, "one page");
    assert_eq!(listed[0], login, "newest first");

    // Paging by the API's cursor: the older reports below, once asked for.
    assert_eq!(browser.ask(json!({"click": "#older"})).await["ok"], true);
    let all = browser
        .ask(json!({"waitFor": "document.querySelectorAll('#bugs tbody tr').length === 102 && document.getElementById('older').hidden"}))
        .await;
    assert_eq!(all["ok"], true, "{all}");

    // Scrolled down, a new report does not move the row in view: the bar counts it.
    let anchored = browser
        .ask(json!({"eval": "(scrollTo(0, 1500), Array.from(document.querySelectorAll('#bugs tbody tr')).find((tr) => tr.getBoundingClientRect().top >= 0).dataset.id)"}))
        .await["value"]
        .as_str()
        .expect("a row in view")
        .parse::<i64>()
        .expect("id");
    let top = format!(
        "document.querySelector('#bugs tr[data-id=\"{anchored}\"]').getBoundingClientRect().top"
    );
    let before = browser.ask(json!({"eval": top})).await["value"].clone();
    let fresh = report_titled(&app, "Search box empty").await;
    browser.ask(json!({"wait": "row", "id": fresh})).await;
    let after = browser.ask(json!({"eval": top})).await["value"].clone();
    let moved = (before.as_f64().expect("px") - after.as_f64().expect("px")).abs();
    // Scrolling goes by whole pixels; the row is 38.4 px high.
    assert!(
        moved < 1.0,
        "the row in view stayed where it was: {before} → {after}"
    );
    let bar = browser
        .ask(json!({"eval": "document.getElementById('new-bar').hidden ? null : document.getElementById('new-bar').textContent"}))
        .await;
    assert_eq!(bar["value"], "↑ 1 new report", "{bar}");
    browser.ask(json!({"click": "#new-bar"})).await;
    let seen = browser
        .ask(json!({"waitFor": "document.getElementById('new-bar').hidden && scrollY === 0"}))
        .await;
    assert_eq!(seen["ok"], true, "{seen}");

    // Text in the title, in the URL, from the server (not only the rows loaded).
    let found = browser.ask(json!({"filter": {"q": "LOGIN"}})).await;
    assert_eq!(found["listed"], json!([login]), "{found}");
    assert_eq!(found["search"], "?q=LOGIN");
    let found = browser.ask(json!({"filter": {"q": "case 0"}})).await;
    assert_eq!(found["listed"], json!([older[0]]), "{found}");
    let cleared = browser.ask(json!({"filter": {"q": ""}})).await;
    assert_eq!(cleared["listed"][1], login, "{cleared}");

    // Keyboard: a assigns, l labels, Shift+D marks a duplicate; Escape leaves each field.
    let assign = browser
        .ask(json!({"press_keys": ["j", "j", "a"], "focus": "assignee"}))
        .await;
    assert_eq!(assign["focused"], "assignee", "{assign}");
    browser.ask(json!({"type": "ana"})).await;
    let labels = browser
        .ask(json!({"press_keys": ["Escape", "l"], "focus": "labels"}))
        .await;
    assert_eq!(labels["focused"], "labels", "{labels}");
    browser.ask(json!({"type": "safari, login"})).await;
    let duplicate = browser
        .ask(json!({"press_keys": ["Escape", "Shift+D"], "focus": "duplicate_of"}))
        .await;
    assert_eq!(duplicate["focused"], "duplicate_of", "{duplicate}");
    browser
        .ask(
            json!({"choose": "#detail select[name=duplicate_of]", "value": older[100].to_string()}),
        )
        .await;
    // And by mouse: the severity.
    browser
        .ask(json!({"choose": "#detail select[name=severity]", "value": "critical"}))
        .await;
    let shown = browser
        .ask(json!({"waitFor": format!("{} === 'ana' && {} === 'critical'", cell(login, "assignee"), cell(login, "severity"))}))
        .await;
    assert_eq!(shown["ok"], true, "{shown}");
    // Two PATCHes in flight (duplicate-of, then severity): wait for both.
    let stored = stored_when(&app, &token, login, |bug| {
        bug["severity"] == "critical" && bug["duplicate_of"] == older[100]
    })
    .await;
    assert_eq!(
        (
            &stored["assignee"],
            &stored["labels"],
            &stored["duplicate_of"],
            &stored["severity"]
        ),
        (
            &json!("ana"),
            &json!(["safari", "login"]),
            &json!(older[100]),
            &json!("critical")
        ),
        "{stored}"
    );
    // A change from elsewhere shows in the open detail.
    patch(&app, &token, login, json!({"severity": "low"})).await;
    let live = browser
        .ask(json!({"waitFor": "document.querySelector('#detail select[name=severity]').value === 'low'"}))
        .await;
    assert_eq!(live["ok"], true, "{live}");
    // A refused change is taken back, and the API's reason shown: the report picked as the
    // original was deleted elsewhere a moment before.
    delete(&app, &token, older[50]).await;
    browser.ask(json!({"wait": "gone", "id": older[50]})).await;
    browser
        .ask(json!({"choose": "#detail select[name=duplicate_of]", "value": older[50].to_string()}))
        .await;
    let refused = browser
        .ask(json!({"waitFor": "!document.getElementById('error').hidden"}))
        .await;
    assert_eq!(refused["ok"], true, "{refused}");
    let error = browser
        .ask(json!({"eval": "document.getElementById('error').textContent"}))
        .await;
    assert!(
        error["value"]
            .as_str()
            .is_some_and(|text| text.starts_with(&format!("Not saved (#{login}): duplicate_of"))),
        "{error}"
    );
    let kept = browser
        .ask(json!({"waitFor": format!("document.querySelector('#detail select[name=duplicate_of]').value === '{}'", older[100])}))
        .await;
    assert_eq!(
        kept["ok"], true,
        "the picker shows the stored original again: {kept}"
    );

    // Bulk: x ticks the selected row, then the next; Resolve resolves both.
    let ticked = browser
        .ask(json!({"press_keys": ["Escape", "Escape", "x", "j", "x"]}))
        .await;
    assert_eq!(ticked["ok"], true);
    let count = browser
        .ask(json!({"eval": "document.getElementById('bulk').hidden ? null : document.getElementById('bulk-count').textContent"}))
        .await;
    assert_eq!(count["value"], "2 selected", "{count}");
    browser
        .ask(json!({"click": "#bulk button[data-status=resolved]"}))
        .await;
    let resolved = browser
        .ask(json!({"waitFor": format!("{} === 'resolved' && {} === 'resolved' && document.getElementById('bulk').hidden", cell(login, "status"), cell(older[100], "status"))}))
        .await;
    assert_eq!(resolved["ok"], true, "{resolved}");
    for id in [login, older[100]] {
        stored_when(&app, &token, id, |bug| bug["status"] == "resolved").await;
    }

    // Delete asks first: kept when told no, gone when told yes.
    browser.ask(json!({"press_keys": ["#"]})).await;
    browser
        .ask(json!({"click": "#confirm-delete button[value=cancel]"}))
        .await;
    let kept = browser
        .ask(json!({"eval": format!("{} !== ''", cell(older[100], "status"))}))
        .await;
    assert_eq!(kept["value"], true, "{kept}");
    browser.ask(json!({"press_keys": ["#"]})).await;
    browser
        .ask(json!({"click": "#confirm-delete button[value=delete]"}))
        .await;
    let gone = browser.ask(json!({"wait": "gone", "id": older[100]})).await;
    assert_eq!(gone["ok"], true, "{gone}");
    deleted_from_api(&app, &token, older[100]).await;

    // A flood at the top of the page: at most 200 rows stay drawn, the oldest give way, and
    // Older brings them back, in order.
    browser.ask(json!({"press_keys": ["Escape"]})).await;
    browser.ask(json!({"eval": "scrollTo(0, 0)"})).await;
    let mut flood = 0;
    for n in 0..110 {
        flood = report_titled(&app, &format!("Flood {n}")).await;
    }
    browser.ask(json!({"wait": "row", "id": flood})).await;
    let trimmed = browser
        .ask(json!({"waitFor": "document.querySelectorAll('#bugs tbody tr').length === 200 && !document.getElementById('older').hidden"}))
        .await;
    assert_eq!(trimmed["ok"], true, "{trimmed}");
    browser.ask(json!({"click": "#older"})).await;
    let back = browser
        .ask(json!({"waitFor": "document.querySelectorAll('#bugs tbody tr').length > 200"}))
        .await;
    assert_eq!(back["ok"], true, "{back}");
    let order = browser
        .ask(json!({"eval": "Array.from(document.querySelectorAll('#bugs tbody tr'), (tr) => Number(tr.dataset.id)).every((id, at, ids) => at === 0 || id < ids[at - 1])"}))
        .await;
    assert_eq!(order["value"], true, "newest first, none twice: {order}");

    let end = browser.ask(json!({"quit": true})).await;
    assert_eq!(end["errors"], json!([]), "no script error on the page");
    assert_eq!(end["outside"], json!([]), "nothing fetched from elsewhere");
}

#[tokio::test]
async fn two_people_in_one_team_see_each_other_within_a_second() {
    let app = TestApp::start(Backend::Postgres).await;
    let first = report_titled(&app, "Cart total wrong").await;
    let shots = std::env::temp_dir().join(format!("bichito-two-{}", std::process::id()));
    let mut ana = open_inbox(
        &app.sign_in_link("ana", &["payments"], chrono::TimeDelta::minutes(10))
            .await,
        &shots,
    );
    let mut bea = open_inbox(
        &app.sign_in_link("bea", &["payments", "web"], chrono::TimeDelta::minutes(10))
            .await,
        &shots,
    );
    for browser in [&mut ana, &mut bea] {
        let ready = browser.answer().await;
        assert_eq!(ready["listed"], json!([first]), "{ready}");
    }

    // A report from the widget's side: in both within a second.
    let created = report_titled(&app, "Coupon field ignored").await;
    for browser in [&mut ana, &mut bea] {
        let shown = browser.ask(json!({"wait": "row", "id": created})).await;
        assert!(shown["ms"].as_u64().is_some_and(|ms| ms < 1000), "{shown}");
    }
    // Ana resolves it by keyboard; Bea sees it.
    let resolved = ana
        .ask(json!({"press": "e", "id": created, "status": "resolved"}))
        .await;
    assert_eq!(resolved["error"], Value::Null, "{resolved}");
    let seen = bea
        .ask(json!({"wait": "row", "id": created, "status": "resolved"}))
        .await;
    assert!(seen["ms"].as_u64().is_some_and(|ms| ms < 1000), "{seen}");
    // Both open it; Ana's comment shows in Bea's detail, and its count in her list.
    for (browser, keys) in [
        (&mut ana, json!(["Enter"])),
        (&mut bea, json!(["j", "Enter"])),
    ] {
        let opened = browser.ask(json!({ "keys": keys })).await;
        assert_eq!(opened["selected"], created, "{opened}");
    }
    ana.ask(json!({"comment": "Fixed by the 1.4.3 release"}))
        .await;
    let live = bea
        .ask(json!({"wait": "comment", "text": "ana: Fixed by the 1.4.3 release"}))
        .await;
    assert!(live["ms"].as_u64().is_some_and(|ms| ms < 1000), "{live}");
    let counted = bea
        .ask(json!({"waitFor": format!("{} === '1'", cell(created, "comments"))}))
        .await;
    assert_eq!(counted["ok"], true, "{counted}");
    // Bea filters: her URL says so, Ana's list is her own.
    let open_only = bea.ask(json!({"filter": {"status": "open"}})).await;
    assert_eq!(open_only["listed"], json!([first]), "{open_only}");
    assert_eq!(open_only["search"], "?status=open");
    let unfiltered = ana.ask(json!({"list": true})).await;
    assert_eq!(unfiltered["listed"], json!([created, first]));
    // Ana deletes the first, after saying yes; it leaves Bea's list too.
    ana.ask(json!({"press_keys": ["Escape", "j", "#"]})).await;
    ana.ask(json!({"click": "#confirm-delete button[value=delete]"}))
        .await;
    for browser in [&mut ana, &mut bea] {
        let gone = browser.ask(json!({"wait": "gone", "id": first})).await;
        assert!(gone["ms"].as_u64().is_some_and(|ms| ms < 1000), "{gone}");
    }
    for browser in [&mut ana, &mut bea] {
        let end = browser.ask(json!({"quit": true})).await;
        assert_eq!(end["errors"], json!([]), "no script error on the page");
        assert_eq!(end["outside"], json!([]), "nothing fetched from elsewhere");
    }
}

/// `bichito sse` on `port` (a fixed one: the proxy names it, and a restart takes it again).
fn stream_server(port: u16, env: &[(&str, &str)]) -> process::Process {
    process::start(&["sse", "--listen", &format!("127.0.0.1:{port}")], env)
}

#[tokio::test]
async fn split_mode_the_inbox_rides_out_stream_servers_dying_and_catches_up_exactly_once() {
    let (db, _store, key) = process::provisioned_postgres().await;
    let nats = unique_nats_settings();
    let _cleanup = process::StreamCleanup(nats.stream_name.clone());
    let (proxy_port, first_port, second_port) = (free_port(), free_port(), free_port());
    let public_url = format!("http://127.0.0.1:{proxy_port}");
    let mut bus_env = process::bus_env(&nats);
    bus_env.push(("BICHITO_PUBLIC_URL", public_url.as_str()));
    let mut api_env = bus_env.clone();
    api_env.push(("DATABASE_URL", db.url.as_str()));
    let api = process::start(&["api", "--listen", "127.0.0.1:0"], &api_env);
    let mut first = Some(stream_server(first_port, &bus_env));
    let mut second = Some(stream_server(second_port, &bus_env));
    // One origin: the page from the api, its stream from either sse process (nginx tries the
    // next when one refuses; with both down it answers 502).
    let (_log, _proxy) = proxy::start_with(
        proxy_port,
        &format!(
            "upstream streams {{ server 127.0.0.1:{first_port} max_fails=0; \
             server 127.0.0.1:{second_port} max_fails=0; }}"
        ),
        &format!(
            "location ~ ^/api/v1/teams/[^/]+/stream$ {{ proxy_pass http://streams; {unbuffered} }}
             {rest}",
            unbuffered = proxy::UNBUFFERED,
            rest = proxy::everything_to(api.address()),
        ),
    )
    .await;
    let minted = std::process::Command::new(env!("CARGO_BIN_EXE_bichito"))
        .args(["token", "--sub", "ana", "--team", "payments", "--link"])
        .args(["--public-url", &public_url])
        .env("DATABASE_URL", &db.url)
        .output()
        .expect("run bichito token --link");
    assert!(minted.status.success(), "{minted:?}");
    let link = String::from_utf8(minted.stdout).expect("utf-8");
    let shots = std::env::temp_dir().join(format!("bichito-split-{}", std::process::id()));
    let mut browser = open_inbox(link.trim(), &shots);
    let ready = browser.answer().await;
    assert_eq!(ready["listed"], json!([]), "{ready}");

    let client = reqwest::Client::new();
    let mut reported = Vec::new();
    let mut report = async |title: &str| {
        let response = client
            .post(format!("{}/api/v1/bugs", api.base))
            .header("x-api-key", &key)
            .json(&json!({"title": title, "description": "d"}))
            .send()
            .await
            .expect("sent");
        assert_eq!(response.status(), 201);
        let created: Value = response.json().await.expect("json");
        let id = created["id"].as_i64().expect("id");
        reported.insert(0, id);
        id
    };
    let id = report("both up").await;
    browser.ask(json!({"wait": "row", "id": id})).await;

    // One stream server dies: the page goes on through the other.
    drop(first.take());
    for n in 0..2 {
        let id = report(&format!("one down {n}")).await;
        let shown = browser.ask(json!({"wait": "row", "id": id})).await;
        assert_eq!(shown["ok"], true, "{shown}");
    }

    // Both die: the page says so, and reports keep coming meanwhile.
    drop(second.take());
    let state = "document.getElementById('connection').dataset.state";
    let down = browser
        .ask(json!({"waitFor": format!("{state} === 'reconnecting' || {state} === 'offline'")}))
        .await;
    assert_eq!(down["ok"], true, "{down}");
    for n in 0..3 {
        report(&format!("both down {n}")).await;
    }
    let offline = browser
        .ask(json!({"waitFor": format!("{state} === 'offline'")}))
        .await;
    assert_eq!(
        offline["ok"], true,
        "EventSource gave up on the 502s: {offline}"
    );

    // Back: the page reopens by itself and catches up, every report exactly once.
    first = Some(stream_server(first_port, &bus_env));
    second = Some(stream_server(second_port, &bus_env));
    let live = browser
        .ask(json!({"waitFor": format!("{state} === 'live' && document.querySelectorAll('#bugs tbody tr').length >= {}", reported.len())}))
        .await;
    assert_eq!(live["ok"], true, "{live}");
    let listed = browser.ask(json!({"list": true})).await;
    assert_eq!(
        listed["listed"],
        json!(reported),
        "nothing lost, nothing twice"
    );

    let end = browser.ask(json!({"quit": true})).await;
    assert_eq!(end["errors"], json!([]), "no script error on the page");
    assert_eq!(end["outside"], json!([]), "nothing fetched from elsewhere");
    drop((first, second));
}

#[tokio::test]
async fn a_triaged_inbox_shows_every_column_and_is_photographed_for_the_readme() {
    // Attachments on the S3-compatible server: the page shows the image from its origin.
    let app = TestApp::start_with_storage(Backend::Postgres, StorageKind::S3).await;
    let token = app.token(&["payments"]);
    let reports = [
        (
            "Checkout total ignores the SPRING10 coupon",
            "critical",
            Some("ana"),
            vec!["checkout", "coupons"],
            2,
        ),
        (
            "Login button does nothing on Safari 17",
            "high",
            Some("bea"),
            vec!["safari"],
            1,
        ),
        (
            "Order confirmation e-mail arrives twice",
            "medium",
            None,
            vec![],
            0,
        ),
        (
            "Dark mode: the price is unreadable on the cart page",
            "low",
            None,
            vec!["ui"],
            0,
        ),
        (
            "Search returns nothing for accented words (café)",
            "medium",
            Some("ana"),
            vec![],
            3,
        ),
    ];
    let mut ids = Vec::new();
    for (title, severity, assignee, labels, comments) in &reports {
        let response = app
            .post_report(&json!({
                "title": title,
                "description": "Steps: add two items to the cart, apply the coupon, open the cart.\nExpected: 10 % off. Actual: the full price.",
                "severity": severity,
                "environment": "production",
                "app_version": "1.4.2",
                "url": "https://shop.example.com/cart",
                "user_agent": "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_4) AppleWebKit/605.1.15 Safari/17.4",
                "reporter_email": "maria@example.com",
                "stack_trace": "TypeError: Cannot read properties of undefined (reading 'rate')\n    at applyCoupon (cart.js:88:21)\n    at HTMLButtonElement.onclick (cart.js:12:5)",
                "extra": {"viewport": "1440x900", "cart_items": 2, "coupon": "SPRING10"}
            }))
            .await;
        assert_eq!(response.status(), 201);
        let id = response.json::<Value>().await.expect("json")["id"]
            .as_i64()
            .expect("id");
        patch(
            &app,
            &token,
            id,
            json!({"assignee": assignee, "labels": labels}),
        )
        .await;
        for n in 0..*comments {
            comment(&app, &token, id, &format!("Seen again ({n})")).await;
        }
        ids.insert(0, id);
    }
    set_status(&app, &token, ids[3], "in_progress").await;
    let screenshot = include_bytes!("fixtures/cart-screenshot.png").to_vec();
    let attached = attach_image(
        &app.client,
        &app.base,
        &app.api_key,
        ids[0],
        "cart.png",
        screenshot,
    )
    .await;
    assert_eq!(attached["attachment"]["filename"], "cart.png", "{attached}");
    let link = app
        .sign_in_link("ana", &["payments"], chrono::TimeDelta::minutes(10))
        .await;
    let mut browser = open_inbox(&link, &screenshots());
    let ready = browser.answer().await;
    assert_eq!(ready["listed"], json!(ids), "{ready}");
    // Each row shows what triage set: assignee, labels, comment count, severity, status.
    let first = ids[4];
    let shown = browser
        .ask(json!({"eval": format!(
            "[{}, {}, {}, {}, Array.from(document.querySelectorAll('#bugs tr[data-id=\"{first}\"] .label')).map((chip) => chip.textContent)]",
            cell(first, "assignee"), cell(first, "comments"), cell(first, "severity"), cell(ids[3], "status")
        )}))
        .await;
    assert_eq!(
        shown["value"],
        json!([
            "ana",
            "2",
            "critical",
            "in_progress",
            ["checkout", "coupons"]
        ]),
        "{shown}"
    );
    for (shot, dark) in [("list-light", false), ("list-dark", true)] {
        assert_eq!(
            browser.ask(json!({"shot": shot, "dark": dark})).await["ok"],
            true
        );
    }
    let opened = browser.ask(json!({"keys": ["k", "Enter"]})).await;
    assert_eq!(opened["selected"], ids[0], "{opened}");
    let text = opened["text"].as_str().expect("text");
    for field in [
        "production",
        "1.4.2",
        "maria@example.com",
        "applyCoupon (cart.js:88:21)",
        "\"coupon\": \"SPRING10\"",
    ] {
        assert!(text.contains(field), "the detail shows {field}: {text}");
    }
    // The attachment, through its short-lived download URL on the storage's own origin.
    let image = browser
        .ask(json!({"waitFor": "(document.querySelector('#detail img') || {}).naturalWidth === 480"}))
        .await;
    assert_eq!(image["ok"], true, "the image loads: {image}");
    let source = browser
        .ask(json!({"eval": "document.querySelector('#detail img').src"}))
        .await;
    assert!(
        source["value"]
            .as_str()
            .is_some_and(|url| url.starts_with(&s3_url())),
        "{source}"
    );
    for (shot, dark) in [("detail-light", false), ("detail-dark", true)] {
        assert_eq!(
            browser.ask(json!({"shot": shot, "dark": dark})).await["ok"],
            true
        );
    }
    let end = browser.ask(json!({"quit": true})).await;
    assert_eq!(end["errors"], json!([]), "no script error on the page");
}
