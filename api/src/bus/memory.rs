//! The in-process bus: sequence numbers, a retention ring for replays, and the team hub.

use super::{BusError, BusEvent, Publish, Replay, Subscribe};
use crate::stream::hub::{TeamHub, TeamSubscription};
use bichito_core::events::OutboxEvent;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub struct MemoryBus {
    hub: TeamHub,
    retention: Duration,
    capacity: usize,
    state: Mutex<State>,
}

struct State {
    next_id: u64,
    /// The newest outbox id published: the relay publishes in order, so anything at or below
    /// it is a duplicate.
    last_outbox_id: i64,
    ring: VecDeque<(Instant, Arc<BusEvent>)>,
    /// The id of the newest event evicted from the ring (0 while none was).
    evicted_up_to: u64,
}

impl MemoryBus {
    fn newest_id(&self) -> u64 {
        self.lock().next_id - 1
    }

    /// `capacity` events are kept for replay, none older than `retention`.
    pub fn new(queue_size: usize, capacity: usize, retention: Duration) -> Self {
        Self {
            hub: TeamHub::new(queue_size),
            retention,
            capacity: capacity.max(1),
            state: Mutex::new(State {
                next_id: 1,
                last_outbox_id: 0,
                ring: VecDeque::new(),
                evicted_up_to: 0,
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn evict(&self, state: &mut State) {
        while let Some((at, event)) = state.ring.front() {
            if state.ring.len() <= self.capacity && at.elapsed() <= self.retention {
                break;
            }
            state.evicted_up_to = event.id;
            state.ring.pop_front();
        }
    }
}

#[async_trait::async_trait]
impl Publish for MemoryBus {
    async fn publish(&self, event: &OutboxEvent) -> Result<(), BusError> {
        let published = {
            let mut state = self.lock();
            if event.id <= state.last_outbox_id {
                return Ok(());
            }
            state.last_outbox_id = event.id;
            let published = Arc::new(BusEvent::new(
                state.next_id,
                event.team_id.clone(),
                event.event_type,
                &event.payload,
            ));
            state.next_id += 1;
            state.ring.push_back((Instant::now(), published.clone()));
            self.evict(&mut state);
            published
        };
        self.hub.deliver(published);
        Ok(())
    }
}

#[async_trait::async_trait]
impl Subscribe for MemoryBus {
    async fn subscribe(&self, team_id: &str) -> Result<TeamSubscription, BusError> {
        let (mut subscription, _) = self.hub.subscribe(team_id);
        subscription.after = self.newest_id();
        Ok(subscription)
    }

    async fn replay(&self, team_id: &str, after: u64) -> Result<Replay, BusError> {
        let mut state = self.lock();
        self.evict(&mut state);
        let head = state.next_id - 1;
        if after > head || after < state.evicted_up_to {
            return Ok(Replay::TooOld);
        }
        let events = state
            .ring
            .iter()
            .map(|(_, event)| event)
            .filter(|event| event.id > after && event.team_id == team_id)
            .cloned()
            .collect();
        Ok(Replay::Events(events))
    }

    async fn head(&self) -> Result<u64, BusError> {
        Ok(self.newest_id())
    }

    fn subscribed_teams(&self) -> usize {
        self.hub.open_teams()
    }

    fn close_streams(&self) {
        self.hub.close();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bichito_core::events::EventType;

    fn outbox(id: i64, team: &str) -> OutboxEvent {
        OutboxEvent {
            id,
            team_id: team.into(),
            event_type: EventType::BugDeleted,
            payload: format!("{{\"n\":{id}}}"),
            created_at: chrono::Utc::now(),
        }
    }

    fn ids(replay: Replay) -> Vec<u64> {
        match replay {
            Replay::Events(events) => events.iter().map(|event| event.id).collect(),
            Replay::TooOld => panic!("expected events"),
        }
    }

    #[tokio::test]
    async fn replays_a_teams_events_after_an_id_and_resets_beyond_the_window() {
        let bus = MemoryBus::new(64, 3, Duration::from_secs(3600));
        for (id, team) in [(1, "a"), (2, "b"), (3, "a"), (3, "a"), (4, "a")] {
            bus.publish(&outbox(id, team)).await.expect("publish");
        }
        assert_eq!(
            bus.head().await.expect("head"),
            4,
            "the duplicate outbox id was dropped"
        );
        assert_eq!(ids(bus.replay("a", 2).await.expect("replay")), [3, 4]);
        assert_eq!(
            ids(bus.replay("a", 4).await.expect("replay")),
            Vec::<u64>::new()
        );
        assert!(
            matches!(bus.replay("a", 0).await.expect("replay"), Replay::TooOld),
            "event 1 was evicted"
        );
        assert!(
            matches!(bus.replay("a", 9).await.expect("replay"), Replay::TooOld),
            "an id from the future"
        );
    }

    #[tokio::test]
    async fn subscribers_get_only_their_teams_events() {
        let bus = MemoryBus::new(64, 100, Duration::from_secs(3600));
        let mut a = bus.subscribe("a").await.expect("subscribe");
        let mut b = bus.subscribe("b").await.expect("subscribe");
        bus.publish(&outbox(1, "a")).await.expect("publish");
        bus.publish(&outbox(2, "b")).await.expect("publish");
        assert_eq!(a.receiver.recv().await.expect("event").team_id, "a");
        assert_eq!(b.receiver.recv().await.expect("event").team_id, "b");
        assert!(a.receiver.try_recv().is_err() && b.receiver.try_recv().is_err());
    }

    #[tokio::test]
    async fn a_lagging_subscriber_loses_its_oldest_events_and_is_told_how_many() {
        let bus = MemoryBus::new(4, 100, Duration::from_secs(3600));
        let mut slow = bus.subscribe("a").await.expect("subscribe");
        for id in 1..=10 {
            bus.publish(&outbox(id, "a"))
                .await
                .expect("publish never waits");
        }
        assert!(matches!(
            slow.receiver.recv().await,
            Err(tokio::sync::broadcast::error::RecvError::Lagged(6))
        ));
        assert_eq!(
            slow.receiver.recv().await.expect("event").id,
            7,
            "the newest 4 are kept"
        );
    }

    #[tokio::test]
    async fn a_teams_channel_closes_with_its_last_subscriber() {
        let bus = MemoryBus::new(4, 100, Duration::from_secs(3600));
        let first = bus.subscribe("a").await.expect("subscribe");
        let second = bus.subscribe("a").await.expect("subscribe");
        assert_eq!(bus.hub.open_teams(), 1);
        drop(first);
        assert_eq!(bus.hub.open_teams(), 1);
        drop(second);
        assert_eq!(bus.hub.open_teams(), 0);
    }
}
