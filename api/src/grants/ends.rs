//! The sessions this process's streams depend on, each with a token cancelled when the session
//! ends: a stream holds a [`SessionWatch`] and ends when it fires.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};

#[derive(Default)]
pub struct SessionEnds {
    watched: Mutex<HashMap<String, Watched>>,
}

struct Watched {
    ended: CancellationToken,
    watchers: usize,
}

impl SessionEnds {
    fn lock(&self) -> MutexGuard<'_, HashMap<String, Watched>> {
        self.watched
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub fn watch(self: &Arc<Self>, id_hash: &str) -> SessionWatch {
        let mut watched = self.lock();
        let entry = watched
            .entry(id_hash.to_owned())
            .or_insert_with(|| Watched {
                ended: CancellationToken::new(),
                watchers: 0,
            });
        entry.watchers += 1;
        SessionWatch {
            waiting: Box::pin(entry.ended.clone().cancelled_owned()),
            ended: entry.ended.clone(),
            id_hash: id_hash.to_owned(),
            ends: self.clone(),
        }
    }

    /// The session ended: every stream watching it ends.
    pub fn ended(&self, id_hash: &str) {
        if let Some(watched) = self.lock().remove(id_hash) {
            tracing::info!(
                streams = watched.watchers,
                "session ended; ending its streams"
            );
            watched.ended.cancel();
        }
    }

    /// The sessions watched now.
    pub fn watched(&self) -> Vec<String> {
        self.lock().keys().cloned().collect()
    }
}

/// A stream's watch on its session; dropping it stops watching.
pub struct SessionWatch {
    /// The wait for the end, made once: a stream polls it among its other waits.
    waiting: Pin<Box<WaitForCancellationFutureOwned>>,
    ended: CancellationToken,
    id_hash: String,
    ends: Arc<SessionEnds>,
}

impl SessionWatch {
    /// Ready once the session ended.
    pub fn poll_ended(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        self.waiting.as_mut().poll(cx)
    }

    pub fn is_ended(&self) -> bool {
        self.ended.is_cancelled()
    }
}

impl Drop for SessionWatch {
    fn drop(&mut self) {
        let mut watched = self.ends.lock();
        if let Some(entry) = watched.get_mut(&self.id_hash)
            && entry.ended == self.ended
        {
            entry.watchers -= 1;
            if entry.watchers == 0 {
                watched.remove(&self.id_hash);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_ended_session_ends_every_watch_and_is_forgotten_when_unwatched() {
        let ends = Arc::new(SessionEnds::default());
        let one = ends.watch("a");
        let two = ends.watch("a");
        let other = ends.watch("b");
        assert_eq!(ends.watched().len(), 2);
        ends.ended("a");
        assert!(one.is_ended() && two.is_ended());
        assert!(!other.is_ended());
        // A new watch of an ended session is a new entry, which old watches leave alone.
        let again = ends.watch("a");
        drop(one);
        drop(two);
        assert!(!again.is_ended());
        assert_eq!(ends.watched().len(), 2);
        drop(again);
        drop(other);
        assert!(ends.watched().is_empty());
    }
}
