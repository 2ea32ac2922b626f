//! Signing in for real: headless Chromium (Debian's) signs in to bichito through a real,
//! independent OpenID Connect provider (the certified `oidc-provider` package from npm, on
//! loopback), with the authorization code flow and PKCE. Then, like a dashboard: the session
//! by cookie, the team stream by cookie (no token or ticket in any URL), forged cross-site and
//! cross-origin form posts refused, and sign-out ending the open stream within 5 s. Once
//! straight to bichito, once through a reverse proxy (Debian's nginx, as configured by most
//! people: `Host` rewritten to the upstream, no forwarded headers), whose access log must hold
//! no credential either.

mod common;

use axum::response::Html;
use bichito::config::SessionArgs;
use common::proxy::{self, free_port};
use common::*;
use serde_json::Value;
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};

const FORGE: &str = include_str!("browser/forge.html");

/// Serves the forging page on `host` (a port of its own); its origin.
async fn forging_site(host: &str) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let origin = format!(
        "http://{host}:{}",
        listener.local_addr().expect("address").port()
    );
    let app =
        axum::Router::new().route("/forge.html", axum::routing::get(|| async { Html(FORGE) }));
    tokio::spawn(async move { axum::serve(listener, app).await });
    origin
}

/// The provider, running until dropped.
async fn start_provider(port: u16, redirect_uri: &str) -> tokio::process::Child {
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/browser/oidc-provider.mjs"
    );
    let mut child = tokio::process::Command::new("node")
        .arg(script)
        .arg(port.to_string())
        .arg(redirect_uri)
        .env(
            "NODE_PATH",
            browser_node_path(&["playwright-core", "oidc-provider"]),
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("node runs (scripts/test.sh installs Node.js)");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    let ready = tokio::time::timeout(Duration::from_secs(20), async {
        while let Ok(Some(line)) = lines.next_line().await {
            if line.trim() == "ready" {
                return true;
            }
        }
        false
    })
    .await;
    assert_eq!(ready, Ok(true), "the OpenID Connect provider started");
    // It logs to stdout: keep reading, or a full pipe would stop it.
    tokio::spawn(async move {
        while let Ok(Some(line)) = lines.next_line().await {
            eprintln!("oidc-provider: {line}");
        }
    });
    child
}

#[tokio::test]
async fn a_person_signs_in_with_openid_connect_streams_by_cookie_and_signs_out() {
    signs_in_streams_and_signs_out(false).await;
}

#[tokio::test]
async fn the_same_through_a_reverse_proxy_that_rewrites_host() {
    signs_in_streams_and_signs_out(true).await;
}

async fn signs_in_streams_and_signs_out(through_proxy: bool) {
    let provider_port = free_port();
    let proxy_port = free_port();
    let public_url = through_proxy.then(|| format!("http://127.0.0.1:{proxy_port}"));
    let setup = Setup {
        public_url: public_url.clone(),
        sessions: SessionArgs {
            oidc_issuer: Some(format!("http://127.0.0.1:{provider_port}")),
            oidc_client_id: Some("bichito".into()),
            oidc_client_secret: Some("bichito-test-secret".into()),
            oidc_scopes: "openid email groups".into(),
            oidc_teams_claim: "groups".into(),
            ..SessionArgs::default()
        },
        ..Setup::default()
    };
    let app = TestApp::start_setup(Backend::Postgres, BusKind::Memory, setup).await;
    let proxy = match through_proxy {
        true => Some(
            proxy::start(
                proxy_port,
                &proxy::everything_to(app.base.trim_start_matches("http://")),
            )
            .await,
        ),
        false => None,
    };
    let bichito = public_url.unwrap_or_else(|| app.base.clone());
    let _provider = start_provider(provider_port, &format!("{bichito}/login/callback")).await;
    let bug = app.created_report().await;
    let bug_id = bug["id"].as_i64().expect("id");
    // `localhost` is another site than `127.0.0.1`; another port of 127.0.0.1 is the same site
    // but another origin, where SameSite lets the cookie through and the origin check must not.
    let other_site = forging_site("localhost").await;
    let same_site = forging_site("127.0.0.1").await;

    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/browser/sign_in.cjs");
    let screenshot = std::env::temp_dir().join(format!(
        "bichito-signed-out{}.png",
        if through_proxy { "-proxied" } else { "" }
    ));
    let run = tokio::process::Command::new("node")
        .arg(script)
        .args([&bichito, &other_site, &same_site, &app.api_key])
        .arg(bug_id.to_string())
        .arg(&screenshot)
        .env(
            "NODE_PATH",
            browser_node_path(&["playwright-core", "oidc-provider"]),
        )
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(Duration::from_secs(90), run)
        .await
        .expect("the browser finishes within 90 s")
        .expect("node runs");
    assert!(
        output.status.success(),
        "the browser run failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let seen: Value = serde_json::from_slice(&output.stdout).expect("one JSON line");

    assert_eq!(seen["landedOn"], "/inbox", "{seen}");
    assert_eq!(seen["session"]["status"], 200, "{seen}");
    assert_eq!(seen["session"]["body"]["sub"], "ana");
    assert_eq!(
        seen["session"]["body"]["teams"],
        serde_json::json!(["payments", "web"])
    );
    let cookies = seen["cookies"].as_array().expect("cookies");
    let session = cookies
        .iter()
        .find(|cookie| cookie["name"] == "__Host-bichito_session")
        .unwrap_or_else(|| panic!("the session cookie: {cookies:?}"));
    assert_eq!(session["httpOnly"], true);
    assert_eq!(session["secure"], true);
    assert_eq!(session["sameSite"], "Strict");
    assert_eq!(session["path"], "/");
    let secret = session["value"].as_str().expect("value");

    // After sign-in, no URL carries a token, a ticket or the session.
    let urls = seen["urls"].as_array().expect("urls");
    let signed_in_at = seen["signedInAt"].as_u64().expect("index") as usize;
    for url in &urls[signed_in_at..] {
        let url = url.as_str().expect("url");
        assert!(
            !url.contains("token=") && !url.contains("ticket=") && !url.contains(secret),
            "a credential in a URL: {url}"
        );
    }
    assert!(
        urls.iter()
            .any(|url| url.as_str() == Some(&format!("{bichito}/api/v1/teams/payments/stream"))),
        "the stream was opened by cookie alone: {urls:?}"
    );

    let events = seen["events"].as_array().expect("events");
    let types: Vec<&str> = events
        .iter()
        .filter_map(|event| event["type"].as_str())
        .collect();
    assert_eq!(types, ["hello", "bug.created", "stream.expired"], "{seen}");
    assert_eq!(events[2]["data"]["reason"], "signed_out");
    assert_eq!(seen["signOut"], 204);
    let ended_after = seen["expiredAfterMs"].as_i64().expect("ms");
    assert!(
        ended_after < 5000,
        "the stream ended {ended_after} ms after sign-out"
    );
    assert_eq!(seen["afterSignOut"], 401);

    // The forged posts: no cookie from another site (401), and refused by origin from the
    // same site (403). Nothing was written.
    assert_eq!(seen["forged"]["otherSite"], 401, "{seen}");
    assert_eq!(seen["forged"]["sameSite"], 403, "{seen}");
    let comments = json_of(
        app.client
            .get(app.url(&format!("/api/v1/bugs/{bug_id}/comments")))
            .bearer_auth(app.token(&["payments"])),
    )
    .await;
    assert_eq!(comments["items"], serde_json::json!([]));

    if let Some((access_log, _nginx)) = proxy {
        let log = std::fs::read_to_string(&access_log).expect("the proxy's access log");
        assert!(
            log.contains("GET /api/v1/teams/payments/stream HTTP/1.1"),
            "the stream went through the proxy: {log}"
        );
        for line in log.lines() {
            assert!(
                !line.contains("token=") && !line.contains("ticket=") && !line.contains(secret),
                "a credential in the proxy's access log: {line}"
            );
        }
        let _ = std::fs::remove_dir_all(access_log.parent().expect("folder"));
    }
}
