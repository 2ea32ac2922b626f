//! Fan-out to this process's stream connections, one broadcast channel per team.
//!
//! A team's channel exists while some connection holds a [`TeamSubscription`]: the first
//! subscriber opens it (and, on NATS, holds the process's feed), the last one closes it. Each
//! channel keeps the newest `queue_size` events; a subscriber that falls further behind skips
//! its oldest events and learns how many it lost. Publishing never waits for anyone.

use super::event::BusEvent;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use tokio::sync::broadcast;

pub struct TeamHub {
    queue_size: usize,
    teams: Mutex<HashMap<String, Weak<TeamChannel>>>,
    closed: AtomicBool,
}

/// One team's channel; dropping the last handle runs `on_close` (e.g. unsubscribe from NATS).
pub struct TeamChannel {
    /// `None` once the hub is closed: receivers then see `Closed` after what is queued.
    sender: Mutex<Option<broadcast::Sender<Arc<BusEvent>>>>,
    on_close: Mutex<Option<Box<dyn FnOnce() + Send>>>,
}

impl Drop for TeamChannel {
    fn drop(&mut self) {
        let on_close = self
            .on_close
            .get_mut()
            .map(Option::take)
            .unwrap_or_else(|poisoned| poisoned.into_inner().take());
        if let Some(on_close) = on_close {
            on_close();
        }
    }
}

pub struct TeamSubscription {
    pub receiver: broadcast::Receiver<Arc<BusEvent>>,
    /// The newest event id the subscription may miss: every later event of the team reaches
    /// `receiver` (set by the bus; the hub does not know ids).
    pub after: u64,
    _channel: Arc<TeamChannel>,
}

/// Whether [`TeamHub::subscribe`] opened the team's channel (and the caller should start
/// feeding it) or joined an open one.
pub enum Joined {
    Opened(Arc<TeamChannel>),
    Existing,
}

impl TeamHub {
    pub fn new(queue_size: usize) -> Self {
        Self {
            queue_size: queue_size.max(1),
            teams: Mutex::new(HashMap::new()),
            closed: AtomicBool::new(false),
        }
    }

    /// Ends every subscription (after what is queued for it) and any made from now on: how
    /// streams end when the server shuts down, without each of them watching for it.
    pub fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
        let channels: Vec<Arc<TeamChannel>> = self
            .lock_teams()
            .values()
            .filter_map(Weak::upgrade)
            .collect();
        for channel in channels {
            channel.lock_sender().take();
        }
    }

    fn lock_teams(&self) -> MutexGuard<'_, HashMap<String, Weak<TeamChannel>>> {
        self.teams
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub fn subscribe(&self, team_id: &str) -> (TeamSubscription, Joined) {
        let mut teams = self.lock_teams();
        if let Some(channel) = teams.get(team_id).and_then(Weak::upgrade) {
            let receiver = channel.receiver();
            return (
                TeamSubscription {
                    receiver,
                    after: 0,
                    _channel: channel,
                },
                Joined::Existing,
            );
        }
        teams.retain(|_, channel| channel.strong_count() > 0);
        let (sender, receiver) = broadcast::channel(self.queue_size);
        // Closed between the check and here is caught by `close` seeing this channel; closed
        // before it, the channel starts closed.
        let open = !self.closed.load(Ordering::SeqCst);
        let channel = Arc::new(TeamChannel {
            sender: Mutex::new(open.then_some(sender)),
            on_close: Mutex::new(None),
        });
        teams.insert(team_id.to_owned(), Arc::downgrade(&channel));
        (
            TeamSubscription {
                receiver,
                after: 0,
                _channel: channel.clone(),
            },
            Joined::Opened(channel),
        )
    }

    /// Hands `event` to the team's subscribers in this process, if there are any.
    pub fn deliver(&self, event: Arc<BusEvent>) {
        if let Some(sender) = self.sender(&event.team_id) {
            let _ = sender.send(event);
        }
    }

    /// Hands the event `make` builds to `team_id`'s subscribers in this process; builds
    /// nothing when there are none.
    pub fn deliver_with(&self, team_id: &str, make: impl FnOnce() -> Arc<BusEvent>) {
        if let Some(sender) = self.sender(team_id) {
            let _ = sender.send(make());
        }
    }

    fn sender(&self, team_id: &str) -> Option<broadcast::Sender<Arc<BusEvent>>> {
        let channel = self.lock_teams().get(team_id).and_then(Weak::upgrade)?;
        channel.lock_sender().clone()
    }

    /// Teams with at least one open subscription.
    pub fn open_teams(&self) -> usize {
        self.lock_teams()
            .values()
            .filter(|channel| channel.strong_count() > 0)
            .count()
    }
}

impl TeamChannel {
    fn lock_sender(&self) -> MutexGuard<'_, Option<broadcast::Sender<Arc<BusEvent>>>> {
        self.sender
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// A receiver of what is sent from now on; already closed when the channel is.
    fn receiver(&self) -> broadcast::Receiver<Arc<BusEvent>> {
        match &*self.lock_sender() {
            Some(sender) => sender.subscribe(),
            None => broadcast::channel(1).1,
        }
    }

    pub fn on_close(&self, action: impl FnOnce() + Send + 'static) {
        *self
            .on_close
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(Box::new(action));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bichito_core::events::EventType;
    use tokio::sync::broadcast::error::TryRecvError;

    fn event(id: u64) -> Arc<BusEvent> {
        Arc::new(BusEvent::new(
            id,
            "payments".into(),
            EventType::BugCreated,
            "{}",
        ))
    }

    #[test]
    fn closing_ends_subscriptions_after_what_is_queued_and_new_ones_at_once() {
        let hub = TeamHub::new(8);
        let (mut open, _) = hub.subscribe("payments");
        hub.deliver(event(1));
        hub.close();
        hub.deliver(event(2));
        assert_eq!(open.receiver.try_recv().map(|event| event.id), Ok(1));
        assert_eq!(open.receiver.try_recv().err(), Some(TryRecvError::Closed));

        let (mut joined, _) = hub.subscribe("payments");
        assert_eq!(joined.receiver.try_recv().err(), Some(TryRecvError::Closed));
        let (mut opened, _) = hub.subscribe("marketing");
        assert_eq!(opened.receiver.try_recv().err(), Some(TryRecvError::Closed));
    }

    #[test]
    fn an_event_is_built_only_for_a_team_streamed_here() {
        let hub = TeamHub::new(8);
        let built = &std::cell::Cell::new(0);
        let make = |id| {
            move || {
                built.set(built.get() + 1);
                event(id)
            }
        };
        hub.deliver_with("payments", make(1));
        assert_eq!(built.get(), 0, "nobody streams the team yet");

        let (mut subscription, _) = hub.subscribe("payments");
        hub.deliver_with("payments", make(2));
        hub.deliver_with("marketing", make(3));
        assert_eq!(built.get(), 1, "built for the streamed team only");
        assert_eq!(
            subscription.receiver.try_recv().map(|event| event.id),
            Ok(2)
        );

        drop(subscription);
        hub.deliver_with("payments", make(4));
        assert_eq!(built.get(), 1, "not after its last stream closed");
    }
}
