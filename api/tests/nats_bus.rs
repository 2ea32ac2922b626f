//! The NATS JetStream bus against the real NATS server: each test owns its stream and subjects.

mod common;

use bichito::bus::nats::NatsBus;
use bichito::bus::{Publish, Replay, Subscribe};
use bichito::stream::hub::TeamSubscription;
use bichito_core::events::{EventType, OutboxEvent};
use std::time::Duration;

/// A bus on a stream of its own, deleted when the test ends.
struct TestBus(NatsBus, String);

impl std::ops::Deref for TestBus {
    type Target = NatsBus;
    fn deref(&self) -> &NatsBus {
        &self.0
    }
}

impl Drop for TestBus {
    fn drop(&mut self) {
        common::delete_nats_stream(self.1.clone());
    }
}

/// How many consumers the test's stream has on the NATS server.
async fn consumer_count(bus: &TestBus) -> usize {
    let client = async_nats::connect(common::nats_url()).await.expect("NATS");
    let mut stream = async_nats::jetstream::new(client)
        .get_stream(&bus.1)
        .await
        .expect("the test's stream");
    stream
        .info()
        .await
        .expect("stream info")
        .state
        .consumer_count
}

/// Waits for the stream to have no consumer left: bichito deletes those it stops reading,
/// which nats-server would otherwise keep for 30 s.
async fn consumers_go_away(bus: &TestBus, what: &str) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let mut count = consumer_count(bus).await;
    while count > 0 {
        assert!(std::time::Instant::now() < deadline, "{what}: {count} left");
        tokio::time::sleep(Duration::from_millis(50)).await;
        count = consumer_count(bus).await;
    }
}

async fn bus() -> TestBus {
    let settings = common::unique_nats_settings();
    let name = settings.stream_name.clone();
    TestBus(
        NatsBus::connect(settings)
            .await
            .expect("NATS with JetStream must be reachable for tests"),
        name,
    )
}

fn event(id: i64, team: &str, event_type: EventType) -> OutboxEvent {
    OutboxEvent {
        id,
        team_id: team.into(),
        event_type,
        payload: format!("{{\"bug_id\":{id}}}"),
        created_at: chrono::Utc::now(),
    }
}

async fn recv(subscription: &mut TeamSubscription) -> std::sync::Arc<bichito::bus::BusEvent> {
    tokio::time::timeout(Duration::from_secs(10), subscription.receiver.recv())
        .await
        .expect("an event within 10 s")
        .expect("open")
}

/// Events whose notice never came (an api process gone between the stream's ack and its
/// notice, a notice lost while reconnecting) still reach subscribers, in stream order: read
/// from the stream when a later notice shows the gap, or when a quiet feed checks.
#[tokio::test]
async fn events_without_a_notice_are_read_from_the_stream_in_order() {
    let bus = bus().await;
    let prefix = format!("test_{}", bus.1.trim_start_matches("BICHITO_"));
    let raw =
        async_nats::jetstream::new(async_nats::connect(common::nats_url()).await.expect("NATS"));
    let mut payments = bus.subscribe("payments").await.expect("subscribe");
    let store_only = |id: i64| {
        let raw = raw.clone();
        let subject = format!("{prefix}.team.payments.bug.created");
        async move {
            raw.publish(subject, format!("{{\"bug_id\":{id}}}").into())
                .await
                .expect("publish")
                .await
                .expect("stored");
        }
    };

    store_only(1).await;
    bus.publish(&event(2, "payments", EventType::BugCreated))
        .await
        .expect("publish");
    assert_eq!(recv(&mut payments).await.id, 1, "the gap is read first");
    assert_eq!(recv(&mut payments).await.id, 2);

    store_only(3).await;
    let quiet = std::time::Instant::now();
    assert_eq!(
        recv(&mut payments).await.id,
        3,
        "found by the quiet feed's check"
    );
    assert!(
        quiet.elapsed() < Duration::from_secs(5),
        "{:?}",
        quiet.elapsed()
    );
    assert!(payments.receiver.try_recv().is_err(), "nothing twice");
}

#[tokio::test]
async fn publishing_an_outbox_id_twice_stores_it_once() {
    let bus = bus().await;
    assert_eq!(bus.head().await.expect("head"), 0);
    bus.publish(&event(1, "payments", EventType::BugCreated))
        .await
        .expect("publish");
    bus.publish(&event(1, "payments", EventType::BugCreated))
        .await
        .expect("republish");
    bus.publish(&event(2, "payments", EventType::BugDeleted))
        .await
        .expect("publish");
    assert_eq!(bus.head().await.expect("head"), 2);
}

/// `NATS_URL` as a cluster's comma-separated servers: with the first one down (a port nothing
/// listens on), the bus connects to the next and carries events.
#[tokio::test]
async fn a_comma_separated_nats_url_connects_past_a_server_that_is_down() {
    let mut settings = common::unique_nats_settings();
    let down = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port();
    settings.url = format!("nats://127.0.0.1:{down}, {}", settings.url);
    let name = settings.stream_name.clone();
    let bus = TestBus(
        tokio::time::timeout(Duration::from_secs(20), NatsBus::connect(settings))
            .await
            .expect("connects within 20 s")
            .expect("connects to the server that is up"),
        name,
    );
    let mut subscription = bus.subscribe("payments").await.expect("subscribe");
    bus.publish(&event(1, "payments", EventType::BugCreated))
        .await
        .expect("publish");
    assert_eq!(recv(&mut subscription).await.id, 1);
}

#[tokio::test]
async fn subscribers_get_their_teams_events_with_stream_sequence_ids() {
    let bus = bus().await;
    bus.publish(&event(1, "payments", EventType::BugCreated))
        .await
        .expect("publish before subscribing");
    let mut payments = bus.subscribe("payments").await.expect("subscribe");
    let mut marketing = bus.subscribe("marketing").await.expect("subscribe");
    assert_eq!(bus.subscribed_teams(), 2);
    bus.publish(&event(2, "marketing", EventType::BugCreated))
        .await
        .expect("publish");
    bus.publish(&event(3, "payments", EventType::BugUpdated))
        .await
        .expect("publish");
    let got = recv(&mut payments).await;
    assert_eq!(
        (got.id, got.team_id.as_str(), got.event_type),
        (3, "payments", EventType::BugUpdated)
    );
    assert_eq!(
        got.frame(),
        "id: 3\nevent: bug.updated\ndata: {\"bug_id\":3}\n\n",
        "the SSE event, with the published JSON as its data"
    );
    let got = recv(&mut marketing).await;
    assert_eq!((got.id, got.team_id.as_str()), (2, "marketing"));
    assert!(
        payments.receiver.try_recv().is_err(),
        "no event of another team, none from before subscribing"
    );
    drop(payments);
    drop(marketing);
    assert_eq!(
        bus.subscribed_teams(),
        0,
        "the last subscriber closes the team's consumer"
    );
}

/// The feed follows core NATS notices, not a JetStream consumer: streaming costs nats-server
/// no consumer, however many teams a process streams.
#[tokio::test]
async fn a_process_reads_all_its_teams_through_one_feed_and_no_consumer() {
    let bus = bus().await;
    let mut subscriptions = Vec::new();
    for team in ["a", "b", "c", "d"] {
        subscriptions.push(bus.subscribe(team).await.expect("subscribe"));
    }
    subscriptions.push(bus.subscribe("a").await.expect("a second subscriber"));
    assert_eq!(bus.subscribed_teams(), 4);
    assert_eq!(consumer_count(&bus).await, 0, "no consumer for four teams");

    for (id, team) in [(1, "d"), (2, "unwatched"), (3, "a")] {
        bus.publish(&event(id, team, EventType::BugCreated))
            .await
            .expect("publish");
    }
    let [a, _, _, d, a_again] = &mut subscriptions[..] else {
        unreachable!("five subscriptions")
    };
    assert_eq!(recv(d).await.id, 1);
    assert_eq!(recv(a).await.id, 3);
    assert_eq!(recv(a_again).await.id, 3);

    drop(subscriptions);
    assert_eq!(bus.subscribed_teams(), 0, "the last stream stops the feed");
    let mut again = bus.subscribe("b").await.expect("subscribe again");
    bus.publish(&event(4, "b", EventType::BugCreated))
        .await
        .expect("publish");
    assert_eq!(recv(&mut again).await.id, 4, "a new feed starts");
}

#[tokio::test]
async fn a_subscription_made_while_events_flow_gets_every_event_after_its_start() {
    let bus = std::sync::Arc::new(bus().await);
    let _first = bus.subscribe("a").await.expect("subscribe");
    const EVENTS: i64 = 300;
    let publisher = {
        let bus = bus.clone();
        tokio::spawn(async move {
            for id in 1..=EVENTS {
                bus.publish(&event(id, "a", EventType::BugCreated))
                    .await
                    .expect("publish");
            }
        })
    };
    // Each subscription is read as it comes, so that none falls behind its queue.
    let mut joined = Vec::new();
    while !publisher.is_finished() {
        let mut subscription = bus.subscribe("a").await.expect("subscribe");
        joined.push(tokio::spawn(async move {
            let start = subscription.after;
            let mut ids = Vec::new();
            while ids.last().is_none_or(|&id| id < EVENTS as u64) {
                let id = recv(&mut subscription).await.id;
                if id > start {
                    ids.push(id);
                }
            }
            (start, ids)
        }));
        tokio::time::sleep(Duration::from_millis(3)).await;
    }
    assert!(joined.len() > 5, "subscriptions made while publishing");
    for reader in joined {
        let (start, ids) = reader.await.expect("reader");
        let expected: Vec<u64> = ((start + 1)..=EVENTS as u64).collect();
        let missing: Vec<&u64> = expected.iter().filter(|id| !ids.contains(id)).collect();
        assert!(missing.is_empty(), "after {start}, missing {missing:?}");
        assert_eq!(ids, expected, "every event after {start}, once, in order");
    }
}

#[tokio::test]
async fn replay_returns_a_teams_events_after_an_id_and_refuses_unknown_ids() {
    let bus = bus().await;
    for (id, team) in [(1, "a"), (2, "b"), (3, "a"), (4, "b"), (5, "a")] {
        bus.publish(&event(id, team, EventType::BugCreated))
            .await
            .expect("publish");
    }
    let ids = |replay: Replay| match replay {
        Replay::Events(events) => events.iter().map(|event| event.id).collect::<Vec<_>>(),
        Replay::TooOld => panic!("expected events"),
    };
    assert_eq!(ids(bus.replay("a", 1).await.expect("replay")), [3, 5]);
    assert_eq!(ids(bus.replay("b", 0).await.expect("replay")), [2, 4]);
    assert_eq!(
        ids(bus.replay("b", 4).await.expect("replay")),
        Vec::<u64>::new()
    );
    assert_eq!(
        ids(bus.replay("a", 5).await.expect("replay")),
        Vec::<u64>::new()
    );
    assert!(matches!(
        bus.replay("a", 99).await.expect("replay"),
        Replay::TooOld
    ));
    consumers_go_away(&bus, "replay consumers outlived their replay").await;
}

#[tokio::test]
async fn events_past_the_retention_window_make_a_resume_too_old() {
    let mut settings = common::unique_nats_settings();
    settings.retention = Duration::from_secs(1);
    let name = settings.stream_name.clone();
    let bus = TestBus(NatsBus::connect(settings).await.expect("NATS"), name);
    bus.publish(&event(1, "a", EventType::BugCreated))
        .await
        .expect("publish");
    bus.publish(&event(2, "a", EventType::BugCreated))
        .await
        .expect("publish");
    assert!(
        matches!(bus.replay("a", 0).await.expect("replay"), Replay::Events(events) if events.len() == 2)
    );
    // JetStream expires the events after max_age: wait for it, then a resume from before them is too old.
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    while !matches!(bus.replay("a", 0).await.expect("replay"), Replay::TooOld) {
        assert!(
            std::time::Instant::now() < deadline,
            "events were not expired"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        matches!(bus.replay("a", 2).await.expect("replay"), Replay::Events(events) if events.is_empty()),
        "the head is still a valid resume point"
    );
}
