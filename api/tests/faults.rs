//! Fault tests on a private NATS server (a free port and a store folder of the test's own):
//! stopping it never touches the machine's shared services.

mod common;

use common::nats::PrivateNats;
use common::*;
use eventsource_stream::Eventsource;
use futures_util::StreamExt;
use serde_json::{Value, json};
use std::time::Duration;

#[tokio::test]
async fn reports_accepted_while_nats_is_down_reach_the_stream_after_it_returns() {
    let mut nats = PrivateNats::start();
    let app = TestApp::start_on_nats_at(Backend::Postgres, &nats.url()).await;
    let mut events = followed_stream(&app).await;

    nats.stop();
    for n in 0..3 {
        let response = app
            .post_report(&json!({"title": format!("during {n}"), "description": "d"}))
            .await;
        assert_eq!(response.status(), 201, "ingest does not depend on NATS");
    }
    assert!(
        app.store.outbox_backlog().await.expect("backlog") >= 3,
        "the events wait in the outbox"
    );

    nats.resume();
    let titles = created_titles(&mut events, 3).await;
    assert_eq!(
        titles,
        ["during 0", "during 1", "during 2"],
        "every report accepted meanwhile, once, in order"
    );
}

/// A NATS restart: the stream resumes about a second after the server is back (the client
/// reconnects, the feed is reopened and the relay publishes at once), losing and repeating
/// nothing; meanwhile the stream process's `/readyz` answers 503 at once.
#[tokio::test]
async fn after_a_nats_restart_delivery_resumes_within_seconds_and_readyz_answers_meanwhile() {
    let mut nats = PrivateNats::start();
    let app = TestApp::start_on_nats_at(Backend::Postgres, &nats.url()).await;
    let mut events = followed_stream(&app).await;

    nats.stop();
    let readyz = std::time::Instant::now();
    let ready = app
        .client
        .get(app.stream_url("/readyz"))
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .expect("answered");
    assert_eq!(ready.status(), 503, "not ready without NATS");
    assert!(
        readyz.elapsed() < Duration::from_millis(1500),
        "within a probe's timeout: {:?}",
        readyz.elapsed()
    );
    for n in 0..3 {
        let response = app
            .post_report(&json!({"title": format!("during {n}"), "description": "d"}))
            .await;
        assert_eq!(response.status(), 201);
    }
    // Long enough for the clients to back off, as in a real outage.
    tokio::time::sleep(Duration::from_secs(3)).await;

    nats.resume();
    let back = std::time::Instant::now();
    let titles = created_titles(&mut events, 3).await;
    let resumed = back.elapsed();
    assert_eq!(titles, ["during 0", "during 1", "during 2"]);
    assert!(
        resumed < Duration::from_secs(3),
        "delivery resumed {resumed:?} after NATS was back (the feed's heartbeat alone takes 15 s)"
    );
    app.post_report(&json!({"title": "after", "description": "d"}))
        .await;
    let live = next(&mut events).await;
    assert_eq!(
        serde_json::from_str::<Value>(&live.data).expect("json")["title"],
        "after",
        "nothing repeated"
    );
    let ready = app
        .client
        .get(app.stream_url("/readyz"))
        .send()
        .await
        .expect("answered");
    assert_eq!(ready.status(), 200);
}

type Events = std::pin::Pin<
    Box<
        dyn futures_util::Stream<
                Item = Result<
                    eventsource_stream::Event,
                    eventsource_stream::EventStreamError<reqwest::Error>,
                >,
            > + Send,
    >,
>;

/// The team stream of `app`, past its `hello` and the event of one report (`before`).
async fn followed_stream(app: &TestApp) -> Events {
    let token = app.token(&["payments"]);
    let response = app
        .client
        .get(app.stream_url(&format!("/api/v1/teams/payments/stream?token={token}")))
        .send()
        .await
        .expect("stream");
    let mut events: Events = Box::pin(response.bytes_stream().eventsource());
    assert_eq!(next(&mut events).await.event, "hello");
    app.post_report(&json!({"title": "before", "description": "d"}))
        .await;
    assert_eq!(
        serde_json::from_str::<Value>(&next(&mut events).await.data).expect("json")["title"],
        "before"
    );
    events
}

/// The titles of the next `count` `bug.created` events.
async fn created_titles(events: &mut Events, count: usize) -> Vec<String> {
    let mut titles = Vec::new();
    while titles.len() < count {
        let event = next(events).await;
        if event.event == "bug.created" {
            titles.push(
                serde_json::from_str::<Value>(&event.data).expect("json")["title"]
                    .as_str()
                    .expect("title")
                    .to_owned(),
            );
        }
    }
    titles
}

async fn next(events: &mut Events) -> eventsource_stream::Event {
    tokio::time::timeout(Duration::from_secs(30), events.next())
        .await
        .expect("an event within 30 s")
        .expect("stream open")
        .expect("well-formed SSE")
}
