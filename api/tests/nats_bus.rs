//! The NATS JetStream bus against the real NATS server: each test owns its stream and subjects.

mod common;

use bichito::bus::hub::TeamSubscription;
use bichito::bus::nats::NatsBus;
use bichito::bus::{Bus, Replay};
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
        (got.id, got.team_id.as_str(), got.event_type, &*got.payload),
        (3, "payments", EventType::BugUpdated, "{\"bug_id\":3}")
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
