//! Fan-out to this process's stream connections, one broadcast channel per team.
//!
//! A team's channel exists while some connection holds a [`TeamSubscription`]: the first
//! subscriber opens it (and, on NATS, the team's subscription), the last one closes it. Each
//! channel keeps the newest `queue_size` events; a subscriber that falls further behind skips
//! its oldest events and learns how many it lost. Publishing never waits for anyone.

use super::BusEvent;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use tokio::sync::broadcast;

pub struct TeamHub {
    queue_size: usize,
    teams: Mutex<HashMap<String, Weak<TeamChannel>>>,
}

/// One team's channel; dropping the last handle runs `on_close` (e.g. unsubscribe from NATS).
pub struct TeamChannel {
    sender: broadcast::Sender<Arc<BusEvent>>,
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
        }
    }

    pub fn subscribe(&self, team_id: &str) -> (TeamSubscription, Joined) {
        let mut teams = self
            .teams
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(channel) = teams.get(team_id).and_then(Weak::upgrade) {
            let receiver = channel.sender.subscribe();
            return (
                TeamSubscription {
                    receiver,
                    _channel: channel,
                },
                Joined::Existing,
            );
        }
        teams.retain(|_, channel| channel.strong_count() > 0);
        let (sender, receiver) = broadcast::channel(self.queue_size);
        let channel = Arc::new(TeamChannel {
            sender,
            on_close: Mutex::new(None),
        });
        teams.insert(team_id.to_owned(), Arc::downgrade(&channel));
        (
            TeamSubscription {
                receiver,
                _channel: channel.clone(),
            },
            Joined::Opened(channel),
        )
    }

    /// Hands `event` to the team's subscribers in this process, if there are any.
    pub fn deliver(&self, event: Arc<BusEvent>) {
        let channel = {
            let teams = self
                .teams
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            teams.get(&event.team_id).and_then(Weak::upgrade)
        };
        if let Some(channel) = channel {
            let _ = channel.sender.send(event);
        }
    }

    /// Teams with at least one open subscription.
    pub fn open_teams(&self) -> usize {
        let teams = self
            .teams
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        teams
            .values()
            .filter(|channel| channel.strong_count() > 0)
            .count()
    }
}

impl TeamChannel {
    pub fn on_close(&self, action: impl FnOnce() + Send + 'static) {
        *self
            .on_close
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(Box::new(action));
    }
}
