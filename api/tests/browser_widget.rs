//! The widget on websites, in headless Chromium: host pages on other origins (a private axum
//! server on loopback) embed bichito's one line; a report sent from the form is stored with
//! the page's context and appears on the team stream; a screenshot is attached by file input
//! and by paste, with a box drawn over it that is solid in the stored image; an origin the
//! honeycomb does not allow gets an error and stores nothing; a strict Content-Security-Policy,
//! a host page's own errors and hostile styles do not stop it; offline reports are delivered
//! once, even after the page is gone. Also: the size budgets, and the cache headers.

mod common;

use axum::response::{Html, IntoResponse};
use common::browser::Browser;
use common::*;
use serde_json::{Value, json};

/// A host page embedding the widget from `bichito` with `key`; `policy`, when given, is its
/// Content-Security-Policy; `hostile` adds a script that throws and styles that hit everything.
fn host_page(bichito: &str, key: &str, hostile: bool, attributes: &str) -> String {
    let hostile = if hostile {
        "<style>* { font-size: 40px !important; color: red !important; display: block !important; }\
         button { display: none !important; }</style><script src=\"/throws.js\"></script>"
    } else {
        ""
    };
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Shop</title>{hostile}\
         <script src=\"{bichito}/widget.js\" data-key=\"{key}\" data-app-version=\"1.4.2\" \
         data-environment=\"staging\" {attributes} async></script></head>\
         <body><h1>Cart</h1><p>Two items.</p></body></html>"
    )
}

/// A host site on a loopback port of its own: `/` plain, `/strict` under a strict
/// Content-Security-Policy, `/hostile` with its own errors and styles, `/es` in Spanish on
/// the left in green, `/own` with the site's own button.
struct HostSite {
    listener: tokio::net::TcpListener,
    origin: String,
}

impl HostSite {
    async fn bind() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a port");
        let origin = format!("http://{}", listener.local_addr().expect("address"));
        HostSite { listener, origin }
    }

    /// Serves the pages, embedding the widget from `bichito` with `key`; the site's origin.
    fn serve(self, bichito: &str, key: &str) -> String {
        let plain = host_page(bichito, key, false, "");
        let hostile = host_page(bichito, key, true, "");
        let spanish = host_page(
            bichito,
            key,
            false,
            "data-locale=\"es\" data-position=\"bottom-left\" data-color=\"#116329\"",
        );
        // The site's own button instead of the floating one.
        let own = host_page(bichito, key, false, "data-button=\"false\"").replace(
            "<body>",
            "<body><button id=\"mine\">Feedback</button><script src=\"/own.js\" defer></script>",
        );
        let policy = format!(
            "default-src 'none'; script-src {bichito}; connect-src {bichito}; img-src {bichito}; \
             style-src 'none'"
        );
        let strict = plain.clone();
        let app = axum::Router::new()
            .route("/", axum::routing::get(move || async move { Html(plain) }))
            .route(
                "/strict",
                axum::routing::get(move || async move {
                    ([("content-security-policy", policy)], Html(strict)).into_response()
                }),
            )
            .route(
                "/hostile",
                axum::routing::get(move || async move { Html(hostile) }),
            )
            .route(
                "/es",
                axum::routing::get(move || async move { Html(spanish) }),
            )
            .route("/own", axum::routing::get(move || async move { Html(own) }))
            .route(
                "/own.js",
                axum::routing::get(|| async {
                    (
                        [("content-type", "text/javascript")],
                        "document.getElementById('mine').addEventListener('click', () => Bichito.open());",
                    )
                }),
            )
            .route(
                "/throws.js",
                axum::routing::get(|| async {
                    (
                        [("content-type", "text/javascript")],
                        "document.title = 'broken'; undefinedHostFunction();",
                    )
                }),
            );
        let listener = self.listener;
        tokio::spawn(async move { axum::serve(listener, app).await });
        self.origin
    }
}

/// A host site whose origin the example honeycomb allows; its origin.
async fn allowed_site(app: &TestApp) -> String {
    let site = HostSite::bind().await;
    let key = allowing(app, &[&site.origin]).await;
    site.serve(&app.base, &key)
}

/// The widget's browser script; its screenshots go to a temporary file named after `test`.
fn widget_browser(test: &str) -> Browser {
    let shot =
        std::env::temp_dir().join(format!("bichito-widget-{test}-{}.png", std::process::id()));
    Browser::start("widget.cjs", &[shot.as_os_str()], &["playwright-core"])
}

/// Allows `origins` on the example honeycomb; the key to embed.
async fn allowing(app: &TestApp, origins: &[&str]) -> String {
    let mut spec = example_spec();
    spec.allowed_origins
        .extend(origins.iter().map(|origin| (*origin).to_owned()));
    app.reapply(&spec).await
}

/// The team's reports titled `title`.
async fn stored_titled(app: &TestApp, title: &str) -> Vec<Value> {
    let page = json_of(
        app.client
            .get(app.url("/api/v1/teams/payments/bugs?limit=200"))
            .bearer_auth(app.token(&["payments"])),
    )
    .await;
    page["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter(|bug| bug["title"] == title)
        .cloned()
        .collect()
}

const SCREENSHOT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/cart-screenshot.png"
);

#[tokio::test]
async fn a_report_from_a_website_is_stored_with_its_context_screenshot_and_stream_event() {
    let app = TestApp::start_with_storage(Backend::Postgres, StorageKind::Local).await;
    let site = allowed_site(&app).await;
    let mut events = app.team_events().await;
    // The README's picture: the form filled in, a box drawn over the screenshot.
    let shots = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/widget.png");
    let mut browser = Browser::start(
        "widget.cjs",
        &[shots.as_os_str()],
        &["playwright-core", "axe-core"],
    );
    assert_eq!(
        browser.ask(json!({"goto": format!("{site}/")})).await["ok"],
        true
    );

    // Filled and sent, with a screenshot by file input and a box over the error banner.
    let sent = browser
        .ask(json!({
            "report": {"title": "Coupon ignored", "description": "The total stays at 40 €.", "severity": "high", "email": "maria@example.com"},
            "image": SCREENSHOT,
            "redact": [24, 60, 432, 40],
            "shot": true,
        }))
        .await;
    assert_eq!(sent["ok"], true, "{sent}");
    assert_eq!(
        sent["focused"], "title",
        "the form opens on its first field"
    );
    let event = next(&mut events).await;
    assert_eq!(event.event, "bug.created", "on the team stream");
    let streamed: Value = serde_json::from_str(&event.data).expect("json");
    assert_eq!(streamed["title"], "Coupon ignored");
    let stored = stored_titled(&app, "Coupon ignored").await;
    assert_eq!(stored.len(), 1, "one report: {stored:?}");
    let bug = json_of(
        app.client
            .get(app.url(&format!("/api/v1/bugs/{}", stored[0]["id"])))
            .bearer_auth(app.token(&["payments"])),
    )
    .await;
    assert_eq!(bug["url"], format!("{site}/"));
    assert_eq!(bug["severity"], "high");
    assert_eq!(bug["app_version"], "1.4.2");
    assert_eq!(bug["environment"], "staging");
    assert_eq!(bug["reporter_email"], "maria@example.com");
    assert!(
        bug["user_agent"]
            .as_str()
            .is_some_and(|agent| agent.contains("Chrome")),
        "{bug}"
    );
    assert_eq!(bug["extra"]["viewport"], "1000x760", "{bug}");
    assert_eq!(bug["extra"]["widget"], "bichito-widget/1");
    for field in ["language", "timezone"] {
        assert!(bug["extra"][field].is_string(), "{field}: {bug}");
    }
    assert_eq!(bug["attachment"]["content_type"], "image/png", "{bug}");
    // The box is solid black in the stored image; the rest is as it was.
    let download = bug["attachment"]["download"]["url"]
        .as_str()
        .expect("a download URL");
    let pixels = browser
        .ask(json!({"pixels": {"url": download, "points": [[30, 65], [240, 80], [450, 95], [60, 215], [300, 250]]}}))
        .await;
    assert_eq!(pixels["size"], json!([480, 270]), "{pixels}");
    assert_eq!(
        pixels["points"],
        json!([
            [0, 0, 0, 255],
            [0, 0, 0, 255],
            [0, 0, 0, 255],
            [5, 80, 174, 255],
            [255, 255, 255, 255]
        ]),
        "redacted, then the button and the page untouched"
    );

    // By paste this time.
    let pasted = browser
        .ask(json!({
            "report": {"title": "Pasted screenshot", "description": "See the image."},
            "paste": SCREENSHOT,
        }))
        .await;
    assert_eq!(pasted["ok"], true, "{pasted}");
    let stored = stored_titled(&app, "Pasted screenshot").await;
    assert_eq!(stored.len(), 1);
    assert_eq!(
        stored[0]["attachment"]["content_type"], "image/png",
        "{stored:?}"
    );

    // The page's own script: Bichito.report and the `sent` event.
    let programmatic = browser
        .ask(json!({"api": "(async () => { const sent = []; Bichito.on('sent', (bug) => sent.push(bug.id)); const bug = await Bichito.report({title: 'From code', description: 'A handled exception.', extra: {order: 12}}); return {id: bug.id, sent, extra: bug.extra}; })()"}))
        .await;
    assert_eq!(programmatic["ok"], true, "{programmatic}");
    let value = &programmatic["value"];
    assert_eq!(value["sent"], json!([value["id"]]), "{value}");
    assert_eq!(value["extra"]["order"], 12);
    assert_eq!(
        value["extra"]["widget"], "bichito-widget/1",
        "the context is added"
    );

    // "Powered by" on the free plan.
    assert_eq!(browser.ask(json!({"badge": true})).await["shown"], true);
    // Accessible, light and dark, wide and at 360 px (where it fits the screen).
    browser.assert_accessible(1000).await;
    let end = browser.ask(json!({"quit": true})).await;
    assert_eq!(end["errors"], json!([]), "no error on the host page");
    assert_eq!(end["warnings"], json!([]), "the widget logged nothing");
}

#[tokio::test]
async fn hostile_hosts_strict_policies_and_disallowed_origins() {
    let app = TestApp::start(Backend::Postgres).await;
    let allowed = HostSite::bind().await;
    let key = allowing(&app, &[&allowed.origin]).await;
    let allowed = allowed.serve(&app.base, &key);
    let other = HostSite::bind().await.serve(&app.base, &key);
    let mut browser = widget_browser("hosts");

    // Under default-src 'none' (scripts and fetches from bichito only, no inline style).
    browser
        .ask(json!({"goto": format!("{allowed}/strict")}))
        .await;
    let strict = browser
        .ask(json!({"report": {"title": "From a strict page", "description": "CSP on."}}))
        .await;
    assert_eq!(strict["ok"], true, "{strict}");
    assert_eq!(stored_titled(&app, "From a strict page").await.len(), 1);
    browser.ask(json!({"close": true})).await;

    // A page whose own script throws and whose styles hit every element and hide buttons.
    browser
        .ask(json!({"goto": format!("{allowed}/hostile")}))
        .await;
    let hostile = browser
        .ask(json!({"report": {"title": "From a hostile page", "description": "Its JS throws."}}))
        .await;
    assert_eq!(hostile["ok"], true, "{hostile}");
    assert_eq!(stored_titled(&app, "From a hostile page").await.len(), 1);
    // This server stores no attachments: the form offers no screenshot.
    let offered = browser
        .ask(json!({"api": "document.querySelector('bichito-widget-form').shadowRoot.querySelector('fieldset.screenshot').hidden"}))
        .await;
    assert_eq!(offered["value"], true, "{offered}");
    let title = browser.ask(json!({"api": "document.title"})).await;
    assert_eq!(
        title["value"], "broken",
        "the host's own script ran, untouched"
    );
    browser.ask(json!({"close": true})).await;

    // On the pro plan, no "Powered by".
    assert_eq!(
        browser.ask(json!({"goto": format!("{allowed}/")})).await["ok"],
        true
    );
    assert_eq!(
        browser.ask(json!({"badge": true})).await["shown"],
        true,
        "free"
    );
    browser.ask(json!({"close": true})).await;
    let mut pro = example_spec();
    pro.allowed_origins.push(allowed.clone());
    pro.plan = bichito_core::spec::Plan::Pro;
    assert_eq!(app.reapply(&pro).await, key, "the same key");
    browser.ask(json!({"goto": format!("{allowed}/")})).await;
    assert_eq!(
        browser.ask(json!({"badge": true})).await["shown"],
        false,
        "pro"
    );
    browser.ask(json!({"close": true})).await;

    // An origin the honeycomb does not list: a plain error, and nothing stored.
    browser.ask(json!({"goto": format!("{other}/")})).await;
    let refused = browser
        .ask(json!({"report": {"title": "From elsewhere", "description": "Not allowed."}, "wait": "error"}))
        .await;
    assert_eq!(refused["ok"], true, "{refused}");
    assert!(
        refused["status"]
            .as_str()
            .is_some_and(|status| status.contains("could not reach bichito")),
        "{refused}"
    );
    assert!(stored_titled(&app, "From elsewhere").await.is_empty());
    // Nor is the badge shown there (the API did not answer this origin).
    assert_eq!(browser.ask(json!({"badge": true})).await["shown"], false);
    let end = browser.ask(json!({"quit": true})).await;
    assert_eq!(
        end["errors"],
        json!(["undefinedHostFunction is not defined"]),
        "only the host page's own error"
    );
    assert_eq!(end["warnings"], json!([]), "the widget logged nothing");
}

#[tokio::test]
async fn offline_reports_are_delivered_once_even_after_the_page_is_gone() {
    let app = TestApp::start(Backend::Postgres).await;
    let site = allowed_site(&app).await;
    let mut browser = widget_browser("offline");
    browser.ask(json!({"goto": format!("{site}/")})).await;
    // Make sure the form's modules are loaded before the network goes.
    assert_eq!(browser.ask(json!({"badge": true})).await["shown"], true);

    // Offline: kept, said so; back online: sent by itself, once.
    browser.ask(json!({"offline": true})).await;
    let kept = browser
        .ask(json!({"report": {"title": "Sent while offline", "description": "On a train."}, "wait": "queued"}))
        .await;
    assert_eq!(kept["ok"], true, "{kept}");
    assert!(
        kept["status"]
            .as_str()
            .is_some_and(|status| status.contains("offline")),
        "{kept}"
    );
    assert!(stored_titled(&app, "Sent while offline").await.is_empty());
    browser.ask(json!({"offline": false})).await;
    let delivered = eventually_stored(&app, "Sent while offline").await;
    assert_eq!(delivered, 1);

    // Offline again, and the page is closed before the network comes back: the next visit
    // delivers it, once.
    browser.ask(json!({"offline": true})).await;
    browser
        .ask(json!({"report": {"title": "Kept across visits", "description": "Tab closed."}, "wait": "queued"}))
        .await;
    browser.ask(json!({"close": true})).await;
    browser.ask(json!({"offline": false})).await;
    browser.ask(json!({"goto": format!("{site}/")})).await;
    assert_eq!(eventually_stored(&app, "Kept across visits").await, 1);
    // Another visit finds nothing left to send.
    browser.ask(json!({"close": true})).await;
    browser.ask(json!({"goto": format!("{site}/")})).await;
    let settled = browser.ask(json!({"api": "new Promise((resolve) => { const open = indexedDB.open('bichito-widget', 1); open.onsuccess = () => { const count = open.result.transaction('outbox').objectStore('outbox').count(); count.onsuccess = () => resolve(count.result); }; })"})).await;
    assert_eq!(settled["value"], 0, "the outbox is empty");
    assert_eq!(stored_titled(&app, "Sent while offline").await.len(), 1);
    assert_eq!(stored_titled(&app, "Kept across visits").await.len(), 1);
    let end = browser.ask(json!({"quit": true})).await;
    assert_eq!(end["errors"], json!([]));
}

/// How many reports titled `title` are stored once at least one is (at most 10 s).
async fn eventually_stored(app: &TestApp, title: &str) -> usize {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let stored = stored_titled(app, title).await.len();
        if stored > 0 {
            return stored;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{title} never arrived"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn the_widget_fits_its_size_budgets_and_is_cached_by_version() {
    let app = TestApp::start(Backend::Sqlite).await;
    let gzipped = |path: String| {
        let request = app
            .client
            .get(app.url(&path))
            .header("accept-encoding", "gzip");
        async move {
            let response = request.send().await.expect("sent");
            assert_eq!(response.status(), 200, "{path}");
            assert_eq!(response.headers()["content-encoding"], "gzip", "{path}");
            assert_eq!(
                response.headers()["access-control-allow-origin"],
                "*",
                "{path}"
            );
            let cache = response.headers()["cache-control"]
                .to_str()
                .expect("ascii")
                .to_owned();
            (response.bytes().await.expect("body").len(), cache)
        }
    };
    let (loader, cache) = gzipped("/widget.js".into()).await;
    assert_eq!(
        cache, "public, max-age=300",
        "the one line moves with releases"
    );
    assert!(
        loader <= 10 * 1024,
        "the loader is {loader} bytes gzipped (budget 10 KB)"
    );
    let version = bichito::http::widget::VERSION.as_str();
    let mut total = 0;
    for file in ["widget.js", "form.js", "send.js", "shot.js", "strings.js"] {
        let (size, cache) = gzipped(format!("/widget/{version}/{file}")).await;
        assert_eq!(cache, "public, max-age=31536000, immutable", "{file}");
        total += size;
    }
    assert!(
        total <= 30 * 1024,
        "the widget is {total} bytes gzipped (budget 30 KB)"
    );
    let stale = app
        .client
        .get(app.url("/widget/000000000000/form.js"))
        .send()
        .await
        .expect("sent");
    expect_error(stale, 404).await;
    eprintln!("widget: loader {loader} bytes gzipped, all files {total} bytes");
}

#[tokio::test]
async fn lost_answers_outages_and_rate_limits_still_store_each_report_once() {
    let app = TestApp::start_with_storage(Backend::Postgres, StorageKind::Local).await;
    let site = allowed_site(&app).await;
    let mut browser = widget_browser("faults");
    browser.ask(json!({"goto": format!("{site}/")})).await;

    // Stored, but the 201 lost on the way back, then a 503: sent again with the same
    // Idempotency-Key, answered with the same bichito.
    browser.ask(json!({"flaky": ["lose", "503"]})).await;
    let sent = browser
        .ask(json!({"report": {"title": "Answer lost", "description": "Flaky Wi-Fi."}}))
        .await;
    assert_eq!(sent["ok"], true, "{sent}");
    assert_eq!(
        stored_titled(&app, "Answer lost").await.len(),
        1,
        "one bichito, not two"
    );

    // A 429 is waited out for its Retry-After (1 s), then sent.
    browser.ask(json!({"flaky": ["429"]})).await;
    let limited = browser
        .ask(json!({"report": {"title": "Rate limited", "description": "Busy key."}}))
        .await;
    assert_eq!(limited["ok"], true, "{limited}");
    assert!(
        limited["ms"].as_u64().is_some_and(|ms| ms >= 1000),
        "{limited}"
    );
    assert_eq!(stored_titled(&app, "Rate limited").await.len(), 1);

    // "Capture this tab" (getDisplayMedia; the browser accepts without asking here).
    let captured = browser.ask(json!({"capture": true})).await;
    assert_eq!(captured["ok"], true, "{captured}");
    assert!(
        captured["size"][0].as_u64().is_some_and(|width| width > 0),
        "{captured}"
    );
    let sent = browser
        .ask(json!({"report": {"title": "Captured", "description": "The tab itself."}}))
        .await;
    assert_eq!(sent["ok"], true, "{sent}");
    let stored = stored_titled(&app, "Captured").await;
    assert_eq!(
        stored[0]["attachment"]["content_type"], "image/png",
        "{stored:?}"
    );

    // A dropped image, on a page in Spanish with the button on the left.
    browser.ask(json!({"close": true})).await;
    browser.ask(json!({"goto": format!("{site}/es")})).await;
    let label = browser
        .ask(json!({"api": "document.querySelector('bichito-widget').shadowRoot.querySelector('button').textContent"}))
        .await;
    assert_eq!(label["value"], "Reportar un problema");
    assert_eq!(browser.ask(json!({"drop": SCREENSHOT})).await["ok"], true);
    let sent = browser
        .ask(json!({"report": {"title": "Soltada", "description": "Una imagen arrastrada."}}))
        .await;
    assert_eq!(
        sent["status"], "¡Gracias! Tu reporte fue enviado.",
        "{sent}"
    );
    let stored = stored_titled(&app, "Soltada").await;
    assert_eq!(stored.len(), 1);
    assert_eq!(
        stored[0]["attachment"]["content_type"], "image/png",
        "{stored:?}"
    );
    let end = browser.ask(json!({"quit": true})).await;
    assert_eq!(end["errors"], json!([]));
}

#[tokio::test]
async fn keyboard_users_own_buttons_known_users_and_big_screenshots() {
    let app = TestApp::start_with_storage(Backend::Postgres, StorageKind::Local).await;
    let site = allowed_site(&app).await;
    let mut browser = widget_browser("keys");
    browser.ask(json!({"goto": format!("{site}/")})).await;

    // Keyboard only: Enter opens on the title, Tab and Shift+Tab never leave the form, Escape
    // closes it and gives the focus back to the button.
    let keys = browser.ask(json!({"keyboard": true})).await;
    assert_eq!(keys["ok"], true, "{keys}");
    let visited: Vec<&str> = keys["visited"]
        .as_array()
        .expect("visited")
        .iter()
        .map(|at| at.as_str().expect("text"))
        .collect();
    assert_eq!(visited[0], "bichito-widget-form:title", "{visited:?}");
    assert!(
        visited
            .iter()
            .all(|at| at.starts_with("bichito-widget-form:")),
        "the focus stays in the form: {visited:?}"
    );
    assert!(
        visited.contains(&"bichito-widget-form:Send report"),
        "{visited:?}"
    );
    assert_eq!(keys["after"], "bichito-widget:Report a bug", "{keys}");

    // A known user and the site's own words.
    browser
        .ask(json!({"api": "Bichito.setUser({email: 'ana@example.com', id: 'user_42'}); Bichito.setStrings({send: 'Send it'}); true"}))
        .await;
    // A photo-sized screenshot that PNG cannot bring under 2 MB: sent smaller, as JPEG or WebP.
    let noise = browser.ask(json!({"pasteNoise": [2400, 1600]})).await;
    assert!(
        noise["bytes"]
            .as_u64()
            .is_some_and(|bytes| bytes > 2 * 1024 * 1024),
        "{noise}"
    );
    let label = browser
        .ask(json!({"api": "document.querySelector('bichito-widget-form').shadowRoot.querySelector('button[type=submit]').textContent"}))
        .await;
    assert_eq!(label["value"], "Send it");
    let sent = browser
        .ask(json!({"report": {"title": "Known user", "description": "With a photo."}}))
        .await;
    assert_eq!(sent["ok"], true, "{sent}");
    let stored = stored_titled(&app, "Known user").await;
    assert_eq!(stored[0]["reporter_email"], "ana@example.com");
    assert_eq!(stored[0]["reporter_identifier"], "user_42");
    let attachment = &stored[0]["attachment"];
    assert!(
        ["image/jpeg", "image/webp"].contains(&attachment["content_type"].as_str().unwrap_or("")),
        "{attachment}"
    );
    assert!(
        attachment["content_length"]
            .as_u64()
            .is_some_and(|bytes| bytes <= 2 * 1024 * 1024),
        "{attachment}"
    );

    // data-button="false": no floating button; the site's own opens the form.
    browser.ask(json!({"close": true})).await;
    let own = browser
        .ask(json!({"goto": format!("{site}/own"), "ownButton": true}))
        .await;
    assert_eq!(own["floating"], 0, "{own}");
    let sent = browser
        .ask(json!({"report": {"title": "From my button", "description": "Own button."}, "opener": "#mine"}))
        .await;
    assert_eq!(sent["ok"], true, "{sent}");
    assert_eq!(stored_titled(&app, "From my button").await.len(), 1);
    let end = browser.ask(json!({"quit": true})).await;
    assert_eq!(end["errors"], json!([]));
}

#[tokio::test]
async fn bichito_dev_prints_a_demo_page_where_the_widget_works_at_once() {
    let data = std::env::temp_dir().join(format!("bichito-widget-dev-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&data);
    let data_dir = data.to_str().expect("utf-8");
    let dev = common::process::start(
        &["dev", "--data-dir", data_dir, "--listen", "127.0.0.1:0"],
        &[],
    );
    let printed = |label: &str| {
        dev.stdout_lines
            .iter()
            .find_map(|line| {
                line.trim()
                    .strip_prefix(label)
                    .map(|rest| rest.trim().to_owned())
            })
            .unwrap_or_else(|| panic!("`bichito dev` prints its {label}: {:?}", dev.stdout_lines))
    };
    let demo = printed("widget");
    let token = printed("JWT");
    assert!(
        demo.starts_with(&format!("{}/widget/demo#key=sk_live_", dev.base)),
        "{demo}"
    );
    let mut browser = widget_browser("dev");
    assert_eq!(browser.ask(json!({"goto": demo})).await["ok"], true);
    let sent = browser
        .ask(json!({"report": {"title": "Tried the demo", "description": "It works."}}))
        .await;
    assert_eq!(sent["ok"], true, "{sent}");
    let listed = json_of(
        reqwest::Client::new()
            .get(format!("{}/api/v1/teams/payments/bugs", dev.base))
            .bearer_auth(&token),
    )
    .await;
    let demo_report = listed["items"]
        .as_array()
        .expect("items")
        .iter()
        .find(|bug| bug["title"] == "Tried the demo")
        .cloned()
        .unwrap_or_else(|| panic!("stored: {listed}"));
    assert_eq!(demo_report["environment"], "demo");
    let end = browser.ask(json!({"quit": true})).await;
    assert_eq!(end["errors"], json!([]));
    drop(dev);
    let _ = std::fs::remove_dir_all(&data);
}
