//! Rate limits, blocklist and monthly-cap silence, idempotent retries, key rotation, and CORS.

mod common;

use chrono::TimeDelta;
use common::*;
use serde_json::{Value, json};

on_both_backends!(
    the_61st_report_within_a_minute_is_429_with_retry_after,
    the_honeycomb_quota_overrides_the_default_rate,
    the_limit_holds_across_two_api_servers,
    a_flood_of_rejected_reports_costs_no_database_write_each,
    a_blocklisted_report_gets_201_and_is_not_stored,
    a_free_honeycomb_over_its_monthly_cap_gets_201_and_nothing_is_stored,
    a_retry_with_the_same_idempotency_key_replays_the_first_response,
    an_idempotency_key_reused_with_another_body_is_422,
    an_idempotency_key_expires_after_24_hours,
    a_rotated_key_works_for_its_grace_period_then_is_401,
    a_quota_change_applies_at_once_both_ways,
    preflight_is_answered_for_allowed_origins_only,
    a_report_from_a_foreign_origin_is_403,
    a_limit_is_granted_a_tenth_of_the_headroom_at_a_time_and_exactly,
);

async fn send_many(app: &TestApp, count: usize) -> Vec<u16> {
    let mut statuses = Vec::with_capacity(count);
    for _ in 0..count {
        statuses.push(app.post_report(&minimal_report()).await.status().as_u16());
    }
    statuses
}

async fn the_61st_report_within_a_minute_is_429_with_retry_after(backend: Backend) {
    let app = TestApp::start(backend).await;
    assert!(
        send_many(&app, 60)
            .await
            .iter()
            .all(|status| *status == 201)
    );
    app.clock.advance(TimeDelta::seconds(50));
    let limited = app.post_report(&minimal_report()).await;
    assert_eq!(limited.status(), 429);
    let retry_after: u64 = limited.headers()["retry-after"]
        .to_str()
        .expect("ascii")
        .parse()
        .expect("seconds");
    assert!(
        (1..=10).contains(&retry_after),
        "about 10 s left in the window, got {retry_after}"
    );
    expect_error(limited, 429).await;
    assert_eq!(app.stored_count().await, 60);

    app.clock.advance(TimeDelta::seconds(11));
    assert_eq!(
        app.post_report(&minimal_report()).await.status(),
        201,
        "a new window opens"
    );
    let metrics = app.state.metrics.render();
    assert!(
        metrics.contains("bichito_reports_total{outcome=\"rate_limited\"} 1"),
        "{metrics}"
    );
    assert!(metrics.contains("bichito_reports_total{outcome=\"accepted\"} 61"));
}

async fn the_honeycomb_quota_overrides_the_default_rate(backend: Backend) {
    let mut spec = example_spec();
    spec.quotas.reports_per_minute = Some(3);
    let app = TestApp::start_with(backend, spec).await;
    assert_eq!(send_many(&app, 4).await, [201, 201, 201, 429]);
}

async fn the_limit_holds_across_two_api_servers(backend: Backend) {
    let first = TestApp::start(backend).await;
    let second = first.another_server().await;
    let mut statuses = Vec::new();
    for turn in 0..60 {
        let app = if turn % 2 == 0 { &first } else { &second };
        statuses.push(app.post_report(&minimal_report()).await.status().as_u16());
    }
    assert!(statuses.iter().all(|status| *status == 201), "{statuses:?}");
    assert_eq!(first.post_report(&minimal_report()).await.status(), 429);
    assert_eq!(second.post_report(&minimal_report()).await.status(), 429);
    assert_eq!(first.stored_count().await, 60);
}

async fn a_flood_of_rejected_reports_costs_no_database_write_each(backend: Backend) {
    let mut spec = example_spec();
    spec.quotas.reports_per_minute = Some(5);
    let app = TestApp::start_with(backend, spec).await;
    assert_eq!(send_many(&app, 6).await.last(), Some(&429));
    let asked_after_first_rejection = app.state.rate_limiter.database_requests();
    let flood = send_many(&app, 200).await;
    assert!(flood.iter().all(|status| *status == 429));
    assert_eq!(
        app.state.rate_limiter.database_requests(),
        asked_after_first_rejection,
        "rejections were answered from memory (the test's clock stands still, so the \
         exhausted window is not asked again)"
    );
}

async fn a_blocklisted_report_gets_201_and_is_not_stored(backend: Backend) {
    let app = TestApp::start(backend).await;
    let spam = [
        json!({"title": "Free casino chips", "description": "click here"}),
        json!({"title": "Hello", "description": "d", "reporter_email": "bot@SPAM.example"}),
    ];
    let honest = app
        .post_report(&minimal_report())
        .await
        .json::<Value>()
        .await
        .expect("json");
    for report in spam {
        let response = app.post_report(&report).await;
        assert_eq!(response.status(), 201);
        let body: Value = response.json().await.expect("json");
        let keys: Vec<&String> = body.as_object().expect("object").keys().collect();
        let honest_keys: Vec<&String> = honest.as_object().expect("object").keys().collect();
        assert_eq!(keys, honest_keys, "same shape as a stored report");
        assert!(body["id"].as_i64().expect("id") > honest["id"].as_i64().expect("id"));
        let fetched = app
            .get_bug(body["id"].as_i64().expect("id"), &app.token(&["payments"]))
            .await;
        assert_eq!(fetched.status(), 404, "nothing was stored");
    }
    assert_eq!(app.stored_count().await, 1);
    assert!(
        app.state
            .metrics
            .render()
            .contains("bichito_reports_total{outcome=\"blocked\"} 2")
    );
}

async fn a_free_honeycomb_over_its_monthly_cap_gets_201_and_nothing_is_stored(backend: Backend) {
    let mut spec = example_spec();
    spec.quotas.monthly_reports = Some(3);
    let app = TestApp::start_with(backend, spec).await;
    assert_eq!(send_many(&app, 5).await, [201; 5]);
    assert_eq!(app.stored_count().await, 3);
    assert!(
        app.state
            .metrics
            .render()
            .contains("bichito_reports_total{outcome=\"over_cap\"} 2")
    );

    let mut pro = example_spec();
    pro.plan = bichito_core::spec::Plan::Pro;
    pro.quotas.monthly_reports = Some(3);
    let uncapped = TestApp::start_with(backend, pro).await;
    send_many(&uncapped, 5).await;
    assert_eq!(
        uncapped.stored_count().await,
        5,
        "the pro plan has no monthly cap"
    );
}

async fn post_idempotent(app: &TestApp, key: &str, body: &Value) -> reqwest::Response {
    app.client
        .post(app.url("/api/v1/bugs"))
        .header("x-api-key", &app.api_key)
        .header("idempotency-key", key)
        .json(body)
        .send()
        .await
        .expect("sent")
}

async fn a_retry_with_the_same_idempotency_key_replays_the_first_response(backend: Backend) {
    let app = TestApp::start(backend).await;
    let first = post_idempotent(&app, "retry-abc", &minimal_report()).await;
    assert_eq!(first.status(), 201);
    let first_body = first.text().await.expect("body");
    app.clock.advance(TimeDelta::hours(23));
    let retry = post_idempotent(&app, "retry-abc", &minimal_report()).await;
    assert_eq!(retry.status(), 201);
    assert_eq!(retry.headers()["idempotent-replayed"], "true");
    assert_eq!(retry.text().await.expect("body"), first_body);
    assert_eq!(app.stored_count().await, 1);

    // Dropped (blocklisted) reports replay their phantom response too.
    let spam = json!({"title": "casino", "description": "d"});
    let dropped = post_idempotent(&app, "spam-1", &spam)
        .await
        .text()
        .await
        .expect("body");
    assert_eq!(
        post_idempotent(&app, "spam-1", &spam)
            .await
            .text()
            .await
            .expect("body"),
        dropped
    );
    assert_eq!(app.stored_count().await, 1);

    expect_error(
        post_idempotent(&app, &"k".repeat(256), &minimal_report()).await,
        400,
    )
    .await;
}

async fn an_idempotency_key_reused_with_another_body_is_422(backend: Backend) {
    let app = TestApp::start(backend).await;
    assert_eq!(
        post_idempotent(&app, "same", &minimal_report())
            .await
            .status(),
        201
    );
    let other = json!({"title": "Another", "description": "report"});
    expect_error(post_idempotent(&app, "same", &other).await, 422).await;
    assert_eq!(app.stored_count().await, 1);
}

async fn an_idempotency_key_expires_after_24_hours(backend: Backend) {
    let app = TestApp::start(backend).await;
    let first: Value = post_idempotent(&app, "daily", &minimal_report())
        .await
        .json()
        .await
        .expect("json");
    app.clock
        .advance(TimeDelta::hours(24) + TimeDelta::seconds(1));
    let second: Value = post_idempotent(&app, "daily", &minimal_report())
        .await
        .json()
        .await
        .expect("json");
    assert_ne!(first["id"], second["id"]);
    assert_eq!(app.stored_count().await, 2);
}

async fn a_rotated_key_works_for_its_grace_period_then_is_401(backend: Backend) {
    let mut app = TestApp::start(backend).await;
    let old_key = app.api_key.clone();
    let mut spec = example_spec();
    spec.api_key.rotate = Some("2026-12-01".into());
    spec.api_key.grace_period = Some("2h".into());
    let new_key = app.reapply(&spec).await;
    assert_ne!(new_key, old_key);
    assert_eq!(
        app.post_report_with_key(&old_key, &minimal_report())
            .await
            .status(),
        201,
        "old key in grace"
    );
    assert_eq!(
        app.post_report_with_key(&new_key, &minimal_report())
            .await
            .status(),
        201
    );

    app.clock
        .advance(TimeDelta::hours(2) + TimeDelta::seconds(1));
    let revoked = app.post_report_with_key(&old_key, &minimal_report()).await;
    let body = expect_error(revoked, 401).await;
    assert_eq!(body["error"], "revoked API key");
    app.api_key = new_key;
    assert_eq!(app.post_report(&minimal_report()).await.status(), 201);
    assert_eq!(app.stored_count().await, 3);
}

/// Re-applies the honeycomb through `apps[0]` and waits until every server has heard of it.
async fn reapply_everywhere(apps: &[&TestApp], spec: &bichito_core::spec::HoneycombSpec) {
    let before = settings_versions(apps).await;
    apps[0].reapply(spec).await;
    settings_changed(apps, &before).await;
}

/// A quota change applies at once in every server, both ways, within the running window:
/// raising it lifts a 429, lowering it refuses what the new quota no longer allows.
async fn a_quota_change_applies_at_once_both_ways(backend: Backend) {
    let quota = |per_minute: u32| {
        let mut spec = example_spec();
        spec.quotas.reports_per_minute = Some(per_minute);
        spec
    };
    let first = TestApp::start_with(backend, quota(2)).await;
    let second = first.another_server().await;
    assert_eq!(send_many(&first, 3).await, [201, 201, 429]);
    assert_eq!(
        send_many(&second, 1).await,
        [429],
        "one window for both servers"
    );

    reapply_everywhere(&[&first, &second], &quota(1000)).await;
    assert_eq!(
        send_many(&first, 2).await,
        [201, 201],
        "raised: the 429 is lifted"
    );
    assert_eq!(
        send_many(&second, 2).await,
        [201, 201],
        "in the other server too"
    );

    // 6 stored in this window. Each server holds hits granted under 1000: seeing the new
    // quota, it gives them back instead of spending them, and asks again under 7.
    reapply_everywhere(&[&first, &second], &quota(7)).await;
    assert_eq!(
        send_many(&first, 1).await,
        [429],
        "lowered: the other server's hits under the old quota are not back yet"
    );
    assert_eq!(send_many(&second, 2).await, [201, 429], "exactly one more");
    assert_eq!(send_many(&first, 1).await, [429]);
    assert_eq!(first.stored_count().await, 7);
}

async fn preflight_is_answered_for_allowed_origins_only(backend: Backend) {
    let app = TestApp::start(backend).await;
    let preflight = |origin: &'static str| {
        app.client
            .request(reqwest::Method::OPTIONS, app.url("/api/v1/bugs"))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header("access-control-request-headers", "content-type, x-api-key")
            .send()
    };
    let allowed = preflight("https://checkout.example.com")
        .await
        .expect("sent");
    assert_eq!(allowed.status(), 204);
    let headers = allowed.headers();
    assert_eq!(
        headers["access-control-allow-origin"],
        "https://checkout.example.com"
    );
    assert!(
        headers["access-control-allow-headers"]
            .to_str()
            .expect("ascii")
            .contains("x-api-key")
    );
    assert!(
        headers["access-control-allow-methods"]
            .to_str()
            .expect("ascii")
            .contains("POST")
    );
    assert_eq!(headers["access-control-max-age"], "7200");

    let denied = preflight("https://evil.example").await.expect("sent");
    assert!(
        denied
            .headers()
            .get("access-control-allow-origin")
            .is_none()
    );
    expect_error(denied, 403).await;
}

async fn a_report_from_a_foreign_origin_is_403(backend: Backend) {
    let app = TestApp::start(backend).await;
    let from = |origin: &'static str| {
        app.client
            .post(app.url("/api/v1/bugs"))
            .header("x-api-key", &app.api_key)
            .header("origin", origin)
            .json(&minimal_report())
            .send()
    };
    let allowed = from("https://checkout.example.com").await.expect("sent");
    assert_eq!(allowed.status(), 201);
    assert_eq!(
        allowed.headers()["access-control-allow-origin"],
        "https://checkout.example.com"
    );
    assert!(
        allowed.headers()["access-control-expose-headers"]
            .to_str()
            .expect("ascii")
            .contains("retry-after")
    );
    expect_error(from("https://evil.example").await.expect("sent"), 403).await;
    assert_eq!(app.stored_count().await, 1);
}

/// The limiter takes a tenth of the headroom it last saw at a time and spends it from memory;
/// near the limit it asks for one hit at a time; the 101st of 100 is refused, exactly; what it
/// holds and does not use goes back to the window.
async fn a_limit_is_granted_a_tenth_of_the_headroom_at_a_time_and_exactly(backend: Backend) {
    use bichito::rate_limit::{RETURN_AFTER, RateLimiter, WINDOW_MS};
    let db = TestDatabase::new(backend).await;
    let store = db.store().await;
    let limiter = RateLimiter::default();
    let now = 5_000_000;
    let taken = || async {
        store
            .take_rate("key:7", 0, 100, now, WINDOW_MS)
            .await
            .expect("read the window")
            .hits
    };
    for _ in 0..10 {
        limiter.check(&*store, 7, 100, now).await.expect("admitted");
    }
    assert_eq!(taken().await, 10, "one grant of ten");
    assert_eq!(limiter.database_requests(), 1, "nine spent from memory");
    limiter.check(&*store, 7, 100, now).await.expect("admitted");
    assert_eq!(taken().await, 19, "then a tenth of the 90 left");
    for _ in 11..100 {
        limiter.check(&*store, 7, 100, now).await.expect("admitted");
    }
    assert_eq!(taken().await, 100);
    assert!(
        limiter.check(&*store, 7, 100, now).await.is_err(),
        "the 101st is refused"
    );
    assert!(
        limiter
            .check(&*store, 7, 100, now + WINDOW_MS)
            .await
            .is_ok(),
        "a new window"
    );
    let next_window = now + WINDOW_MS;
    assert_eq!(
        store
            .take_rate("key:7", 0, 100, next_window, WINDOW_MS)
            .await
            .expect("read")
            .hits,
        10,
        "a grant of ten, one used"
    );
    let idle = next_window + i64::try_from(RETURN_AFTER.as_millis()).expect("ms");
    limiter.flush(&*store, idle).await.expect("flush");
    assert_eq!(
        store
            .take_rate("key:7", 0, 100, idle, WINDOW_MS)
            .await
            .expect("read")
            .hits,
        1,
        "the nine unused went back"
    );
}
