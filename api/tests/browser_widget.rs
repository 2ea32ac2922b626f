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
fn host_page(bichito: &str, key: &str, hostile: bool) -> String {
    let hostile = if hostile {
        "<style>* { font-size: 40px !important; color: red !important; display: block !important; }\
         button { display: none !important; }</style><script src=\"/throws.js\"></script>"
    } else {
        ""
    };
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Shop</title>{hostile}\
         <script src=\"{bichito}/widget.js\" data-key=\"{key}\" data-app-version=\"1.4.2\" \
         data-environment=\"staging\" async></script></head>\
         <body><h1>Cart</h1><p>Two items.</p></body></html>"
    )
}

/// A host site on a loopback port of its own: `/` plain, `/strict` under a strict
/// Content-Security-Policy, `/hostile` with its own errors and styles.
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
        let plain = host_page(bichito, key, false);
        let hostile = host_page(bichito, key, true);
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
    let site = HostSite::bind().await;
    let key = allowing(&app, &[&site.origin]).await;
    let site = site.serve(&app.base, &key);
    let mut events = events_of(
        app.client
            .get(app.stream_url("/api/v1/teams/payments/stream"))
            .bearer_auth(app.token(&["payments"]))
            .send()
            .await
            .expect("stream"),
    );
    assert_eq!(next(&mut events).await.event, "hello");
    let shots = std::env::temp_dir().join(format!("bichito-widget-{}.png", std::process::id()));
    let mut browser = Browser::start("widget.cjs", &[shots.as_os_str()], &["playwright-core"]);
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
    let end = browser.ask(json!({"quit": true})).await;
    assert_eq!(end["errors"], json!([]), "no error on the host page");
    assert_eq!(end["warnings"], json!([]), "the widget logged nothing");
}
