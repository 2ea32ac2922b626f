//! The team stream (seed 000 plus resume) on the in-process bus, read with a real SSE client
//! library (eventsource-stream over reqwest).

mod common;

use common::*;
use eventsource_stream::{Event, Eventsource};
use futures_util::StreamExt;
use serde_json::{Value, json};
use std::time::Duration;

// Each stream test runs on the in-process bus (with either database) and on NATS JetStream.
on_every_bus!(
    each_event_type_arrives_once_with_the_seed_payload,
    hello_comes_first_with_the_server_time,
    token_errors_are_401_and_a_foreign_team_is_404,
    the_types_filter_keeps_only_those_types,
    teams_never_see_each_others_events,
    a_reconnect_with_last_event_id_gets_exactly_the_missed_events,
    an_id_outside_the_window_gets_stream_reset,
    heartbeats_arrive_as_comments,
    a_stalled_subscriber_loses_its_oldest_events_and_gets_stream_gap,
);

async fn connect(
    app: &TestApp,
    team: &str,
    query: &str,
    last_event_id: Option<&str>,
) -> reqwest::Response {
    let mut request = app
        .client
        .get(app.stream_url(&format!("/api/v1/teams/{team}/stream{query}")));
    if let Some(id) = last_event_id {
        request = request.header("last-event-id", id);
    }
    request.send().await.expect("stream request")
}

async fn open(
    app: &TestApp,
    teams: &[&str],
    team: &str,
    extra_query: &str,
    last_event_id: Option<&str>,
) -> Events {
    let query = format!("?token={}{extra_query}", app.token(teams));
    let response = connect(app, team, &query, last_event_id).await;
    assert_eq!(response.status(), 200);
    let headers = response.headers();
    assert_eq!(headers["content-type"], "text/event-stream");
    assert_eq!(headers["cache-control"], "no-cache");
    assert_eq!(headers["x-accel-buffering"], "no");
    assert!(headers.get("content-encoding").is_none());
    events_of(response)
}

/// Asserts that nothing but heartbeats arrives for a short while.
async fn nothing_more(events: &mut Events) {
    if let Ok(Some(event)) = tokio::time::timeout(Duration::from_millis(700), events.next()).await {
        panic!("unexpected event {} {}", event.event, event.data);
    }
}

fn data(event: &Event) -> Value {
    serde_json::from_str(&event.data).expect("data is JSON")
}

async fn report(app: &TestApp, title: &str) -> Value {
    app.post_report(&json!({"title": title, "description": "d"}))
        .await
        .json()
        .await
        .expect("json")
}

async fn each_event_type_arrives_once_with_the_seed_payload(backend: Backend, bus: BusKind) {
    let app = TestApp::start_on(backend, bus).await;
    let mut events = open(&app, &["payments"], "payments", "", None).await;
    assert_eq!(next(&mut events).await.event, "hello");

    let created = report(&app, "Login").await;
    let id = created["id"].as_i64().expect("id");
    let event = next(&mut events).await;
    assert_eq!(event.event, "bug.created");
    assert_eq!(data(&event), created, "the canonical payload");
    assert!(!event.data.contains('\n'), "one data line");
    let first_id: u64 = event.id.parse().expect("numeric id");

    let token = app.token(&["payments"]);
    app.client
        .patch(app.url(&format!("/api/v1/bugs/{id}")))
        .bearer_auth(&token)
        .json(&json!({"status": "resolved", "labels": ["a"]}))
        .send()
        .await
        .expect("patch");
    let updated = next(&mut events).await;
    assert_eq!(updated.event, "bug.updated");
    assert_eq!(
        data(&updated),
        json!({"bug_id": id, "project_id": app.honeycomb_id, "changes": {"status": "resolved", "labels": ["a"]}})
    );

    let comment: Value = app
        .client
        .post(app.url(&format!("/api/v1/bugs/{id}/comments")))
        .bearer_auth(&token)
        .json(&json!({"body": "ok"}))
        .send()
        .await
        .expect("comment")
        .json()
        .await
        .expect("json");
    let commented = next(&mut events).await;
    assert_eq!(commented.event, "bug.commented");
    assert_eq!(
        data(&commented),
        json!({"bug_id": id, "project_id": app.honeycomb_id, "comment_id": comment["id"], "author_id": "user-1"})
    );

    app.client
        .delete(app.url(&format!("/api/v1/bugs/{id}")))
        .bearer_auth(&token)
        .send()
        .await
        .expect("delete");
    let deleted = next(&mut events).await;
    assert_eq!(deleted.event, "bug.deleted");
    assert_eq!(
        data(&deleted),
        json!({"bug_id": id, "project_id": app.honeycomb_id})
    );

    let ids: Vec<u64> = [&updated, &commented, &deleted]
        .iter()
        .map(|event| event.id.parse().expect("id"))
        .collect();
    assert_eq!(
        ids,
        [first_id + 1, first_id + 2, first_id + 3],
        "increasing ids"
    );
    nothing_more(&mut events).await;

    let metrics = app.stream_metrics();
    for line in [
        "bichito_sse_connections 1",
        "bichito_bus_team_subscriptions 1",
        "bichito_sse_events_sent_total 5",
    ] {
        assert!(
            metrics.lines().any(|metric| metric == line),
            "{line} in {metrics}"
        );
    }
    let api_metrics = app.state.metrics.render();
    assert!(
        api_metrics
            .lines()
            .any(|metric| metric == "bichito_outbox_publish_seconds_count 4"),
        "the api measured four publications: {api_metrics}"
    );
    drop(events);
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while !app
        .stream_metrics()
        .lines()
        .any(|metric| metric == "bichito_bus_team_subscriptions 0")
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the team subscription closes with its last stream"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn hello_comes_first_with_the_server_time(backend: Backend, bus: BusKind) {
    let app = TestApp::start_on(backend, bus).await;
    let mut events = open(&app, &["payments"], "payments", "", None).await;
    let hello = next(&mut events).await;
    assert_eq!(hello.event, "hello");
    assert!(!hello.id.is_empty(), "every event has an id");
    let server_time = data(&hello)["serverTime"]
        .as_str()
        .expect("serverTime")
        .to_owned();
    assert!(
        chrono::DateTime::parse_from_rfc3339(&server_time).is_ok(),
        "{server_time}"
    );
}

async fn token_errors_are_401_and_a_foreign_team_is_404(backend: Backend, bus: BusKind) {
    let app = TestApp::start_on(backend, bus).await;
    expect_error(connect(&app, "payments", "", None).await, 401).await;
    expect_error(
        connect(&app, "payments", "?token=not-a-jwt", None).await,
        401,
    )
    .await;
    let foreign = format!("?token={}", app.token(&["marketing"]));
    expect_error(connect(&app, "payments", &foreign, None).await, 404).await;
    let now = chrono::Utc::now().timestamp();
    let not_yet_valid = jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &json!({"sub": "user-1", "teams": ["payments"], "nbf": now + 120, "exp": now + 600}),
        &jsonwebtoken::EncodingKey::from_secret(JWT_SECRET.as_bytes()),
    )
    .expect("sign");
    let early = format!("?token={not_yet_valid}");
    expect_error(connect(&app, "payments", &early, None).await, 401).await;
    let bearer = app
        .client
        .get(app.stream_url("/api/v1/teams/payments/stream"))
        .bearer_auth(app.token(&["payments"]))
        .send()
        .await
        .expect("sent");
    assert_eq!(bearer.status(), 200, "Authorization: Bearer works too");
    let bad_types = format!("?token={}&types=bug.exploded", app.token(&["payments"]));
    assert_eq!(
        rejected_fields(connect(&app, "payments", &bad_types, None).await).await,
        ["types"]
    );
}

async fn the_types_filter_keeps_only_those_types(backend: Backend, bus: BusKind) {
    let app = TestApp::start_on(backend, bus).await;
    let mut events = open(
        &app,
        &["payments"],
        "payments",
        "&types=bug.deleted,bug.commented",
        None,
    )
    .await;
    assert_eq!(next(&mut events).await.event, "hello");
    let id = report(&app, "x").await["id"].as_i64().expect("id");
    app.client
        .delete(app.url(&format!("/api/v1/bugs/{id}")))
        .bearer_auth(app.token(&["payments"]))
        .send()
        .await
        .expect("delete");
    assert_eq!(
        next(&mut events).await.event,
        "bug.deleted",
        "bug.created was filtered out"
    );
    nothing_more(&mut events).await;
}

async fn teams_never_see_each_others_events(backend: Backend, bus: BusKind) {
    let app = TestApp::start_on(backend, bus).await;
    let teams: Vec<String> = (0..6).map(|n| format!("team-{n}")).collect();
    let mut keys = Vec::new();
    for team in &teams {
        let mut spec = example_spec();
        spec.team = team.clone();
        let done = bichito_core::provision::provision(
            &*app.store,
            team,
            "app",
            &spec,
            None,
            chrono::Utc::now(),
        )
        .await
        .expect("provision");
        keys.push(done.api_key);
    }
    let mut streams = Vec::new();
    for team in &teams {
        let mut events = open(&app, &[team.as_str()], team, "", None).await;
        assert_eq!(next(&mut events).await.event, "hello");
        streams.push(events);
    }
    for round in 0..3 {
        for (team, key) in teams.iter().zip(&keys) {
            let report = json!({"title": format!("{team} #{round}"), "description": "d"});
            assert_eq!(app.post_report_with_key(key, &report).await.status(), 201);
        }
    }
    for (team, events) in teams.iter().zip(streams.iter_mut()) {
        for round in 0..3 {
            let event = next(events).await;
            let payload = data(&event);
            assert_eq!(
                (&payload["team_id"], &payload["title"]),
                (&json!(team), &json!(format!("{team} #{round}")))
            );
        }
        nothing_more(events).await;
    }
}

async fn a_reconnect_with_last_event_id_gets_exactly_the_missed_events(
    backend: Backend,
    bus: BusKind,
) {
    let app = TestApp::start_on(backend, bus).await;
    let mut events = open(&app, &["payments"], "payments", "", None).await;
    next(&mut events).await;
    report(&app, "seen").await;
    let seen = next(&mut events).await;
    drop(events);

    for title in ["missed 1", "missed 2", "missed 3"] {
        report(&app, title).await;
    }
    let mut resumed = open(&app, &["payments"], "payments", "", Some(&seen.id)).await;
    assert_eq!(next(&mut resumed).await.event, "hello");
    let mut titles = Vec::new();
    for _ in 0..3 {
        let event = next(&mut resumed).await;
        assert_eq!(event.event, "bug.created");
        titles.push(data(&event)["title"].as_str().expect("title").to_owned());
    }
    assert_eq!(titles, ["missed 1", "missed 2", "missed 3"]);
    report(&app, "live").await;
    assert_eq!(
        data(&next(&mut resumed).await)["title"],
        "live",
        "then live, no duplicates"
    );
    nothing_more(&mut resumed).await;

    // The query form, for hand-rolled clients.
    let mut by_query = open(
        &app,
        &["payments"],
        "payments",
        &format!("&last_event_id={}", seen.id),
        None,
    )
    .await;
    next(&mut by_query).await;
    assert_eq!(data(&next(&mut by_query).await)["title"], "missed 1");
    assert!(app.stream_metrics().contains("bichito_sse_resumes_total 2"));
}

async fn an_id_outside_the_window_gets_stream_reset(backend: Backend, bus: BusKind) {
    let app = TestApp::start_on(backend, bus).await;
    report(&app, "one").await;
    for stale in ["999999", "yesterday"] {
        let mut events = open(&app, &["payments"], "payments", "", Some(stale)).await;
        assert_eq!(next(&mut events).await.event, "hello");
        let reset = next(&mut events).await;
        assert_eq!(reset.event, "stream.reset");
        assert!(data(&reset)["reason"].is_string());
        report(&app, "after").await;
        assert_eq!(next(&mut events).await.event, "bug.created", "then live");
    }
}

async fn heartbeats_arrive_as_comments(backend: Backend, bus: BusKind) {
    let app = TestApp::start_on(backend, bus).await;
    let query = format!("?token={}", app.token(&["payments"]));
    let mut body = connect(&app, "payments", &query, None).await.bytes_stream();
    let mut seen = String::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !seen.contains(": heartbeat\n") {
        let chunk = tokio::time::timeout_at(deadline, body.next())
            .await
            .expect("heartbeat in time")
            .expect("open")
            .expect("bytes");
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }
}

async fn a_stalled_subscriber_loses_its_oldest_events_and_gets_stream_gap(
    backend: Backend,
    bus: BusKind,
) {
    let app = TestApp::start_on(backend, bus).await;
    let mut reader = open(&app, &["payments"], "payments", "", None).await;
    next(&mut reader).await;
    // A client that never reads: its socket buffers fill, then its queue overflows.
    let stalled = connect(
        &app,
        "payments",
        &format!("?token={}", app.token(&["payments"])),
        None,
    )
    .await;
    let big = "x".repeat(8 * 1024);
    let total = 2_000;
    let started = std::time::Instant::now();
    for id in 1..=total {
        let event = bichito_core::events::OutboxEvent {
            id,
            team_id: "payments".into(),
            event_type: bichito_core::events::EventType::BugDeleted,
            payload: json!({"bug_id": id, "project_id": 1, "pad": big}).to_string(),
            created_at: chrono::Utc::now(),
        };
        app.state.bus.publish(&event).await.expect("publish");
        if id % 64 == 0 {
            // Let the reading subscriber keep up; the stalled one cannot.
            while let Ok(Some(event)) =
                tokio::time::timeout(Duration::from_millis(1), reader.next()).await
            {
                assert_ne!(
                    event.event, "stream.gap",
                    "the reading subscriber loses nothing"
                );
            }
        }
    }
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "publishing was not slowed"
    );
    let mut received = 0;
    while let Ok(Some(event)) =
        tokio::time::timeout(Duration::from_millis(500), reader.next()).await
    {
        assert_ne!(event.event, "stream.gap");
        received += 1;
    }
    let _ = received;

    let mut stalled = stalled.bytes_stream().eventsource();
    let mut gap = None;
    let mut last_id = 0u64;
    while let Ok(Some(event)) = tokio::time::timeout(Duration::from_secs(2), stalled.next()).await {
        let event = event.expect("well-formed");
        if event.event == "stream.gap" {
            gap = Some(event);
            break;
        }
        last_id = event.id.parse().unwrap_or(last_id);
    }
    let gap = gap.expect("the stalled subscriber was told about the gap");
    assert!(
        data(&gap)["missed"]
            .as_u64()
            .is_some_and(|missed| missed > 0)
    );
    assert_eq!(
        gap.id.parse::<u64>().expect("id"),
        last_id,
        "the gap's id is the last event it got"
    );
    assert!(
        app.stream_metrics()
            .lines()
            .any(|line| line.starts_with("bichito_sse_events_dropped_total")
                && !line.ends_with(" 0"))
    );
}
