//! Sessions: opened with a token, carried by an HttpOnly SameSite=Strict cookie that
//! authenticates the dashboard API and the stream, guarded against cross-site changes, and
//! ended by sign-out on every process. Stream tickets: single use, a minute at most, on any
//! stream process. Streams end, with `stream.expired`, when what authorized them does; the
//! client renews and resumes from that event's id without losing anything.

mod common;

use bichito::config::{SessionArgs, StreamArgs, UrlTokens};
use bichito_core::clock::Clock;
use bichito_core::session::secret_hash;
use common::*;
use eventsource_stream::Event;
use futures_util::StreamExt;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

on_every_bus!(
    a_session_cookie_authenticates_the_dashboard_api_until_sign_out,
    a_cookie_change_from_another_origin_is_refused,
    a_ticket_opens_its_team_stream_once,
    an_expired_ticket_is_refused,
    a_stream_ends_when_its_token_expires_and_resumes_losing_nothing,
    sign_out_ends_the_session_stream_and_a_new_session_resumes_it,
    a_stream_ends_when_its_session_expires,
    a_ticket_stream_ends_with_the_session_it_was_issued_in,
    a_sign_in_link_signs_in_once,
    a_stream_ends_when_its_team_is_removed,
);

#[tokio::test]
async fn a_ticket_is_redeemed_once_across_processes_even_concurrently() {
    // On NATS the api and two stream servers share nothing but NATS: a ticket issued by the
    // api, used at once on both stream servers, opens exactly one stream.
    let mut app = TestApp::start_on(Backend::Postgres, BusKind::Nats).await;
    let second = app.another_stream_server().await;
    let token = app.token(&["payments"]);
    for _ in 0..5 {
        let ticket = ticket(&app, Auth::Bearer(&token), "payments").await;
        let path = format!("/api/v1/teams/payments/stream?ticket={ticket}");
        let (one, two) = tokio::join!(
            app.client.get(app.stream_url(&path)).send(),
            app.client.get(format!("{second}{path}")).send()
        );
        let mut statuses = [
            one.expect("sent").status().as_u16(),
            two.expect("sent").status().as_u16(),
        ];
        statuses.sort_unstable();
        assert_eq!(statuses, [200, 401], "exactly one of two concurrent uses");
    }
    // And one used on the second server works there once.
    let ticket = ticket(&app, Auth::Bearer(&token), "payments").await;
    let path = format!("/api/v1/teams/payments/stream?ticket={ticket}");
    let first = app
        .client
        .get(format!("{second}{path}"))
        .send()
        .await
        .expect("sent");
    assert_eq!(first.status(), 200);
    let again = app
        .client
        .get(app.stream_url(&path))
        .send()
        .await
        .expect("sent");
    expect_error(again, 401).await;
}

#[tokio::test]
async fn tokens_in_stream_urls_can_be_refused() {
    let setup = Setup {
        stream: Some(StreamArgs {
            stream_url_tokens: UrlTokens::Refuse,
            ..test_stream_args()
        }),
        ..Setup::default()
    };
    let app = TestApp::start_setup(Backend::Sqlite, BusKind::Memory, setup).await;
    let token = app.token(&["payments"]);
    let refused = app
        .client
        .get(app.stream_url(&format!("/api/v1/teams/payments/stream?token={token}")))
        .send()
        .await
        .expect("sent");
    let body = expect_error(refused, 401).await;
    let message = body["error"].as_str().expect("message");
    for alternative in ["cookie", "Authorization", "ticket"] {
        assert!(message.contains(alternative), "{message}");
    }
    // The header still works, and so does a ticket.
    let by_header = app
        .client
        .get(app.stream_url("/api/v1/teams/payments/stream"))
        .bearer_auth(&token)
        .send()
        .await
        .expect("sent");
    assert_eq!(by_header.status(), 200);
    let ticket = ticket(&app, Auth::Bearer(&token), "payments").await;
    let mut events = open_stream(&app, &format!("?ticket={ticket}"), None, None).await;
    assert_eq!(next(&mut events).await.event, "hello");
}

#[tokio::test]
async fn the_session_lasts_as_long_as_its_token_within_the_setting() {
    let setup = Setup {
        sessions: SessionArgs {
            session_max_age: Duration::from_secs(600),
            ..SessionArgs::default()
        },
        ..Setup::default()
    };
    let app = TestApp::start_setup(Backend::Sqlite, BusKind::Memory, setup).await;
    let long = app.token(&["payments"]);
    let (_, body) = open_session(&app, &long).await;
    let expires = expires_in(&app, &body);
    assert!(
        (590..=600).contains(&expires),
        "capped by SESSION_MAX_AGE: {expires} s"
    );
    let short = short_token(&["payments"], 120);
    let (_, body) = open_session(&app, &short).await;
    let expires = expires_in(&app, &body);
    assert!((110..=120).contains(&expires), "the token's: {expires} s");
    // No bearer token, no session; a cookie cannot open another.
    let refused = app
        .client
        .post(app.url("/api/v1/session"))
        .send()
        .await
        .expect("sent");
    expect_error(refused, 401).await;
}

#[tokio::test]
async fn allowed_dashboard_origins_get_cors_with_credentials() {
    let origin = "https://bugs.example.com";
    let app =
        TestApp::start_for_dashboards(Backend::Sqlite, BusKind::Memory, vec![origin.into()]).await;
    let preflight = app
        .client
        .request(reqwest::Method::OPTIONS, app.url("/api/v1/session"))
        .header("origin", origin)
        .header("access-control-request-method", "DELETE")
        .send()
        .await
        .expect("sent");
    assert_eq!(preflight.status(), 204);
    assert_eq!(
        preflight.headers()["access-control-allow-credentials"],
        "true"
    );
    let (cookie, _) = open_session(&app, &app.token(&["payments"])).await;
    let read = app
        .client
        .get(app.url("/api/v1/session"))
        .header("cookie", &cookie)
        .header("origin", origin)
        .send()
        .await
        .expect("sent");
    assert_eq!(read.status(), 200);
    assert_eq!(read.headers()["access-control-allow-origin"], origin);
    assert_eq!(read.headers()["access-control-allow-credentials"], "true");
    let other = app
        .client
        .get(app.url("/api/v1/session"))
        .header("cookie", &cookie)
        .header("origin", "https://evil.example")
        .send()
        .await
        .expect("sent");
    assert!(other.headers().get("access-control-allow-origin").is_none());
    // A stream from the allowed origin, by cookie.
    let stream = app
        .client
        .get(app.stream_url("/api/v1/teams/payments/stream"))
        .header("cookie", &cookie)
        .header("origin", origin)
        .send()
        .await
        .expect("sent");
    assert_eq!(stream.status(), 200);
    assert_eq!(stream.headers()["access-control-allow-origin"], origin);
    assert_eq!(stream.headers()["access-control-allow-credentials"], "true");
}

enum Auth<'a> {
    Bearer(&'a str),
    Cookie(&'a str),
}

/// A token for `teams` that expires in `seconds`.
fn short_token(teams: &[&str], seconds: u64) -> String {
    let teams: Vec<String> = teams.iter().map(|team| (*team).to_owned()).collect();
    bichito::auth::mint_token(
        JWT_SECRET,
        "teams",
        "user-1",
        &teams,
        Duration::from_secs(seconds),
    )
    .expect("mint")
}

fn expires_in(app: &TestApp, body: &Value) -> i64 {
    let at = chrono::DateTime::parse_from_rfc3339(body["expires_at"].as_str().expect("expiry"))
        .expect("RFC 3339");
    (at.with_timezone(&chrono::Utc) - app.clock.now()).num_seconds()
}

/// Opens a session with `token`: the `Cookie` header that carries it, and the answer.
async fn open_session(app: &TestApp, token: &str) -> (String, Value) {
    let response = app
        .client
        .post(app.url("/api/v1/session"))
        .bearer_auth(token)
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), 201);
    let set_cookie = response.headers()["set-cookie"]
        .to_str()
        .expect("ascii")
        .to_owned();
    assert_eq!(response.headers()["cache-control"], "no-store");
    let body: Value = response.json().await.expect("json");
    (cookie_of(&set_cookie), body)
}

/// The `Cookie` header a browser sends back for a `Set-Cookie`, after checking its attributes.
fn cookie_of(set_cookie: &str) -> String {
    // The server is reached on 127.0.0.1: a loopback host, where browsers keep Secure cookies.
    assert!(
        set_cookie.starts_with("__Host-bichito_session=bs_"),
        "{set_cookie}"
    );
    for attribute in [
        "Path=/",
        "HttpOnly",
        "Secure",
        "SameSite=Strict",
        "Max-Age=",
    ] {
        assert!(set_cookie.contains(attribute), "{attribute}: {set_cookie}");
    }
    assert!(!set_cookie.contains("Domain"), "{set_cookie}");
    set_cookie.split(';').next().expect("name=value").to_owned()
}

/// Signs out from this server's own origin.
async fn sign_out(app: &TestApp, cookie: &str) -> reqwest::Response {
    app.client
        .delete(app.url("/api/v1/session"))
        .header("cookie", cookie)
        .header("origin", app.base.clone())
        .send()
        .await
        .expect("sent")
}

async fn ticket(app: &TestApp, auth: Auth<'_>, team: &str) -> String {
    let request = app
        .client
        .post(app.url(&format!("/api/v1/teams/{team}/stream/tickets")));
    let request = match auth {
        Auth::Bearer(token) => request.bearer_auth(token),
        Auth::Cookie(cookie) => request
            .header("cookie", cookie)
            .header("origin", app.base.clone()),
    };
    let response = request.send().await.expect("sent");
    assert_eq!(response.status(), 201);
    assert_eq!(response.headers()["cache-control"], "no-store");
    let body: Value = response.json().await.expect("json");
    let expires_in = expires_in(app, &body);
    assert!((0..=60).contains(&expires_in), "{expires_in} s");
    let ticket = body["ticket"].as_str().expect("ticket").to_owned();
    assert!(ticket.starts_with("tk_") && ticket.len() > 60, "{ticket}");
    ticket
}

async fn open_stream(
    app: &TestApp,
    query: &str,
    cookie: Option<&str>,
    last_event_id: Option<&str>,
) -> Events {
    let mut request = app
        .client
        .get(app.stream_url(&format!("/api/v1/teams/payments/stream{query}")));
    if let Some(cookie) = cookie {
        request = request.header("cookie", cookie);
    }
    if let Some(id) = last_event_id {
        request = request.header("last-event-id", id);
    }
    let response = request.send().await.expect("stream request");
    assert_eq!(response.status(), 200, "the stream opens");
    events_of(response)
}

/// The next event that is not `hello`.
async fn next_event(events: &mut Events) -> Event {
    loop {
        let event = next(events).await;
        if event.event != "hello" {
            return event;
        }
    }
}

/// Waits (at most `within`) for `stream.expired`, then for the stream to close; the event.
async fn expires(events: &mut Events, within: Duration) -> Event {
    let deadline = Instant::now() + within;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let event = tokio::time::timeout(left, events.next())
            .await
            .expect("stream.expired in time")
            .expect("open until stream.expired");
        if event.event == "stream.expired" {
            let closed = tokio::time::timeout(Duration::from_secs(5), events.next())
                .await
                .expect("the stream closes after stream.expired");
            assert!(closed.is_none(), "nothing after stream.expired");
            return event;
        }
    }
}

fn data(event: &Event) -> Value {
    serde_json::from_str(&event.data).expect("JSON data")
}

async fn created(app: &TestApp, title: &str) -> i64 {
    let response = app
        .post_report(&json!({"title": title, "description": "d"}))
        .await;
    assert_eq!(response.status(), 201);
    let body: Value = response.json().await.expect("json");
    body["id"].as_i64().expect("id")
}

async fn a_session_cookie_authenticates_the_dashboard_api_until_sign_out(
    backend: Backend,
    bus: BusKind,
) {
    let app = TestApp::start_on(backend, bus).await;
    let id = created(&app, "Login broken").await;
    let (cookie, body) = open_session(&app, &app.token(&["payments"])).await;
    assert_eq!(body["sub"], "user-1");
    assert_eq!(body["teams"], json!(["payments"]));
    // The database keeps only the secret's hash.
    let secret = cookie.split_once('=').expect("pair").1;
    let stored = app
        .store
        .session(&secret_hash(secret))
        .await
        .expect("read")
        .expect("stored by hash");
    assert_eq!(stored.user_id, "user-1");

    let who = app
        .client
        .get(app.url("/api/v1/session"))
        .header("cookie", &cookie)
        .send()
        .await
        .expect("sent");
    assert_eq!(who.status(), 200);
    let who: Value = who.json().await.expect("json");
    assert_eq!(who["sub"], "user-1");
    assert_eq!(who["expires_at"], body["expires_at"]);
    let list = app
        .client
        .get(app.url("/api/v1/teams/payments/bugs"))
        .header("cookie", &cookie)
        .send()
        .await
        .expect("sent");
    assert_eq!(list.status(), 200);
    let edit = app
        .client
        .patch(app.url(&format!("/api/v1/bugs/{id}")))
        .header("cookie", &cookie)
        .header("origin", app.base.clone())
        .json(&json!({"status": "resolved"}))
        .send()
        .await
        .expect("sent");
    assert_eq!(edit.status(), 200, "a change from this server's own page");

    let signed_out_answer = sign_out(&app, &cookie).await;
    assert_eq!(signed_out_answer.status(), 204);
    let cleared: Vec<_> = signed_out_answer
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|value| value.to_str().expect("ascii").to_owned())
        .collect();
    assert!(
        cleared
            .iter()
            .any(|value| value.starts_with("__Host-bichito_session=;")
                && value.contains("Max-Age=0")),
        "{cleared:?}"
    );
    for path in ["/api/v1/session", "/api/v1/teams/payments/bugs"] {
        let after = app
            .client
            .get(app.url(path))
            .header("cookie", &cookie)
            .send()
            .await
            .expect("sent");
        let body = expect_error(after, 401).await;
        assert!(
            body["error"]
                .as_str()
                .is_some_and(|error| error.contains("signed out")),
            "{body}"
        );
    }
    // Signing out twice is harmless.
    let again = sign_out(&app, &cookie).await;
    assert_eq!(again.status(), 204);
}

async fn a_cookie_change_from_another_origin_is_refused(backend: Backend, bus: BusKind) {
    let app = TestApp::start_on(backend, bus).await;
    let id = created(&app, "Login broken").await;
    let (cookie, _) = open_session(&app, &app.token(&["payments"])).await;
    let comment = |origin: Option<&str>| {
        let mut request = app
            .client
            .post(app.url(&format!("/api/v1/bugs/{id}/comments")))
            .header("cookie", &cookie)
            .header("content-type", "application/json")
            .body(r#"{"body": "from somewhere"}"#);
        if let Some(origin) = origin {
            request = request.header("origin", origin);
        }
        request.send()
    };
    for origin in [
        Some("https://evil.example"),
        Some("null"),
        Some("http://127.0.0.1:1"),
        None,
    ] {
        let refused = comment(origin).await.expect("sent");
        let body = expect_error(refused, 403).await;
        assert!(
            body["error"]
                .as_str()
                .is_some_and(|error| error.contains("cross-site")),
            "{origin:?}: {body}"
        );
    }
    // Sign-out by a forged request does not sign anyone out.
    let forged = app
        .client
        .delete(app.url("/api/v1/session"))
        .header("cookie", &cookie)
        .header("origin", "https://evil.example")
        .send()
        .await
        .expect("sent");
    expect_error(forged, 403).await;
    let comments = app
        .client
        .get(app.url(&format!("/api/v1/bugs/{id}/comments")))
        .header("cookie", &cookie)
        .send()
        .await
        .expect("sent");
    assert_eq!(comments.status(), 200, "still signed in");
    let comments: Value = comments.json().await.expect("json");
    assert_eq!(comments["items"], json!([]), "nothing was written");
    // The browser saying "same site" (another port, a sibling subdomain) is not enough.
    let same_site = app
        .client
        .post(app.url(&format!("/api/v1/bugs/{id}/comments")))
        .header("cookie", &cookie)
        .header("origin", "http://127.0.0.1:1")
        .header("sec-fetch-site", "same-site")
        .json(&json!({"body": "from next door"}))
        .send()
        .await
        .expect("sent");
    expect_error(same_site, 403).await;
    // From this server's own origin, the same request works: by `Origin`, or by the browser's
    // `Sec-Fetch-Site: same-origin` behind a proxy that rewrote `Host`. A bearer token needs
    // no origin.
    let own = comment(Some(&app.base)).await.expect("sent");
    assert_eq!(own.status(), 201);
    let proxied = app
        .client
        .post(app.url(&format!("/api/v1/bugs/{id}/comments")))
        .header("cookie", &cookie)
        .header("origin", "https://bugs.example.com")
        .header("sec-fetch-site", "same-origin")
        .json(&json!({"body": "through the proxy"}))
        .send()
        .await
        .expect("sent");
    assert_eq!(proxied.status(), 201);
    let by_token = app
        .client
        .post(app.url(&format!("/api/v1/bugs/{id}/comments")))
        .bearer_auth(app.token(&["payments"]))
        .json(&json!({"body": "from a script"}))
        .send()
        .await
        .expect("sent");
    assert_eq!(by_token.status(), 201);
}

async fn a_ticket_opens_its_team_stream_once(backend: Backend, bus: BusKind) {
    let app = TestApp::start_on(backend, bus).await;
    let token = app.token(&["payments", "web"]);
    // Not a member: 404, as for any team the caller cannot see.
    let foreign = app
        .client
        .post(app.url("/api/v1/teams/other/stream/tickets"))
        .bearer_auth(&token)
        .send()
        .await
        .expect("sent");
    expect_error(foreign, 404).await;
    let ticket = ticket(&app, Auth::Bearer(&token), "payments").await;
    // A ticket for one team opens no other team's stream (and is spent by trying).
    let web = app
        .client
        .get(app.stream_url(&format!("/api/v1/teams/web/stream?ticket={ticket}")))
        .send()
        .await
        .expect("sent");
    expect_error(web, 401).await;

    let ticket = self::ticket(&app, Auth::Bearer(&token), "payments").await;
    let mut events = open_stream(&app, &format!("?ticket={ticket}"), None, None).await;
    assert_eq!(next(&mut events).await.event, "hello");
    let id = created(&app, "Checkout broken").await;
    let event = next_event(&mut events).await;
    assert_eq!(event.event, "bug.created");
    assert_eq!(data(&event)["id"], id);
    let again = app
        .client
        .get(app.stream_url(&format!("/api/v1/teams/payments/stream?ticket={ticket}")))
        .send()
        .await
        .expect("sent");
    let body = expect_error(again, 401).await;
    assert!(
        body["error"]
            .as_str()
            .is_some_and(|error| error.contains("ticket")),
        "{body}"
    );
    // A session can ask for tickets too.
    let (cookie, _) = open_session(&app, &token).await;
    let by_session = self::ticket(&app, Auth::Cookie(&cookie), "payments").await;
    let mut events = open_stream(&app, &format!("?ticket={by_session}"), None, None).await;
    assert_eq!(next(&mut events).await.event, "hello");
}

async fn an_expired_ticket_is_refused(backend: Backend, bus: BusKind) {
    let app = TestApp::start_on(backend, bus).await;
    let ticket = ticket(&app, Auth::Bearer(&app.token(&["payments"])), "payments").await;
    app.clock.advance(chrono::TimeDelta::seconds(61));
    let expired = app
        .client
        .get(app.stream_url(&format!("/api/v1/teams/payments/stream?ticket={ticket}")))
        .send()
        .await
        .expect("sent");
    expect_error(expired, 401).await;
}

async fn a_stream_ends_when_its_token_expires_and_resumes_losing_nothing(
    backend: Backend,
    bus: BusKind,
) {
    let app = TestApp::start_on(backend, bus).await;
    let token = short_token(&["payments"], 2);
    let mut events = open_stream(&app, &format!("?token={token}"), None, None).await;
    assert_eq!(next(&mut events).await.event, "hello");
    let first = created(&app, "before the end").await;
    assert_eq!(data(&next_event(&mut events).await)["id"], first);
    let expired = expires(&mut events, Duration::from_secs(5)).await;
    assert_eq!(data(&expired)["reason"], "token_expired");
    // Reports keep coming while the client renews its token.
    let missed = created(&app, "while renewing").await;
    let renewed = app.token(&["payments"]);
    let mut events = open_stream(&app, &format!("?token={renewed}"), None, Some(&expired.id)).await;
    let event = next_event(&mut events).await;
    assert_eq!(event.event, "bug.created");
    assert_eq!(
        data(&event)["id"],
        missed,
        "resumed from stream.expired's id"
    );
}

async fn sign_out_ends_the_session_stream_and_a_new_session_resumes_it(
    backend: Backend,
    bus: BusKind,
) {
    let app = TestApp::start_on(backend, bus).await;
    let (cookie, _) = open_session(&app, &app.token(&["payments"])).await;
    let mut events = open_stream(&app, "", Some(&cookie), None).await;
    assert_eq!(next(&mut events).await.event, "hello");
    let first = created(&app, "seen live").await;
    assert_eq!(data(&next_event(&mut events).await)["id"], first);

    let signed_out = Instant::now();
    let signed_out_answer = sign_out(&app, &cookie).await;
    assert_eq!(signed_out_answer.status(), 204);
    // On NATS the stream runs on another server: the sign-out reaches it through NATS.
    let expired = expires(&mut events, Duration::from_secs(5)).await;
    assert_eq!(data(&expired)["reason"], "signed_out");
    assert!(signed_out.elapsed() < Duration::from_secs(5));
    let refused = app
        .client
        .get(app.stream_url("/api/v1/teams/payments/stream"))
        .header("cookie", &cookie)
        .send()
        .await
        .expect("sent");
    expect_error(refused, 401).await;

    let missed = created(&app, "while signed out").await;
    let (cookie, _) = open_session(&app, &app.token(&["payments"])).await;
    let mut events = open_stream(&app, "", Some(&cookie), Some(&expired.id)).await;
    let event = next_event(&mut events).await;
    assert_eq!(
        data(&event)["id"],
        missed,
        "nothing lost across the sign-out"
    );
}

async fn a_stream_ends_when_its_session_expires(backend: Backend, bus: BusKind) {
    let setup = Setup {
        sessions: SessionArgs {
            session_max_age: Duration::from_secs(2),
            ..SessionArgs::default()
        },
        ..Setup::default()
    };
    let app = TestApp::start_setup(backend, bus, setup).await;
    let (cookie, _) = open_session(&app, &app.token(&["payments"])).await;
    let mut events = open_stream(&app, "", Some(&cookie), None).await;
    assert_eq!(next(&mut events).await.event, "hello");
    let expired = expires(&mut events, Duration::from_secs(6)).await;
    assert_eq!(data(&expired)["reason"], "session_expired");
}

async fn a_ticket_stream_ends_with_the_session_it_was_issued_in(backend: Backend, bus: BusKind) {
    let app = TestApp::start_on(backend, bus).await;
    let (cookie, _) = open_session(&app, &app.token(&["payments"])).await;
    let ticket = ticket(&app, Auth::Cookie(&cookie), "payments").await;
    let mut events = open_stream(&app, &format!("?ticket={ticket}"), None, None).await;
    assert_eq!(next(&mut events).await.event, "hello");
    let signed_out_answer = sign_out(&app, &cookie).await;
    assert_eq!(signed_out_answer.status(), 204);
    let expired = expires(&mut events, Duration::from_secs(5)).await;
    assert_eq!(data(&expired)["reason"], "signed_out");
}

async fn a_sign_in_link_signs_in_once(backend: Backend, bus: BusKind) {
    let app = TestApp::start_on(backend, bus).await;
    let url = app
        .sign_in_link("dev", &["payments"], chrono::TimeDelta::minutes(10))
        .await;
    let page = app.client.get(&url).send().await.expect("sent");
    assert_eq!(page.status(), 200);
    let cookie = cookie_of(page.headers()["set-cookie"].to_str().expect("ascii"));
    assert_eq!(page.headers()["referrer-policy"], "no-referrer");
    let html = page.text().await.expect("text");
    assert!(html.contains(r#"content="0;url=/inbox""#), "{html}");
    let who: Value = json_of(
        app.client
            .get(app.url("/api/v1/session"))
            .header("cookie", &cookie),
    )
    .await;
    assert_eq!(who["sub"], "dev");
    assert_eq!(who["teams"], json!(["payments"]));
    let again = app.client.get(&url).send().await.expect("sent");
    let body = expect_error(again, 401).await;
    assert!(
        body["error"]
            .as_str()
            .is_some_and(|error| error.contains("used")),
        "{body}"
    );
    // A link that expired is refused too.
    let late = app
        .sign_in_link("dev", &["payments"], chrono::TimeDelta::seconds(-1))
        .await;
    let refused = app.client.get(&late).send().await.expect("sent");
    expect_error(refused, 401).await;
}

async fn a_stream_ends_when_its_team_is_removed(backend: Backend, bus: BusKind) {
    let app = TestApp::start_on(backend, bus).await;
    let token = app.token(&["payments"]);
    let mut events = open_stream(&app, &format!("?token={token}"), None, None).await;
    assert_eq!(next(&mut events).await.event, "hello");
    let id = created(&app, "the last report").await;
    // The team's only honeycomb is deleted (what the operator does when its Honeycomb goes).
    let removed = Instant::now();
    let retired = app
        .store
        .retire_honeycomb(
            "payments",
            "checkout-web",
            bichito_core::spec::DeletionPolicy::Delete,
            app.clock.now(),
        )
        .await
        .expect("retire")
        .expect("existed");
    assert!(retired.team_removed);
    let mut deleted = Vec::new();
    let expired = loop {
        let event = next_event(&mut events).await;
        match event.event.as_str() {
            "bug.created" => {}
            "bug.deleted" => deleted.push(data(&event)["bug_id"].clone()),
            "stream.expired" => break event,
            other => panic!("unexpected {other}"),
        }
    };
    assert_eq!(deleted, [json!(id)], "its reports' deletions came first");
    assert_eq!(data(&expired)["reason"], "team_removed");
    assert!(removed.elapsed() < Duration::from_secs(5));
    let closed = tokio::time::timeout(Duration::from_secs(5), events.next())
        .await
        .expect("closed after stream.expired");
    assert!(closed.is_none());
}
