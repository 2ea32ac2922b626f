//! Reports per minute per API key, held across every api process that shares the database.
//!
//! The count lives in the database (one fixed one-minute window per key, opened by the key's
//! first report). Writing it on every report would make each report wait for a second write
//! transaction on one hot row, so a process holds hits in memory and writes them in batches
//! (every [`FLUSH_EVERY`], see [`RateLimiter::flush`]) while they stay below a tenth of the
//! headroom it knows of (the limit minus the window's count at its last write). Far from the
//! limit that is many reports; near it, none: every report is then counted in the database
//! before it is accepted, so the limit is exact where it bites. A process that finds a key
//! over its limit refuses it from memory until the window ends: a flood of rejected requests
//! costs no database write each.
//!
//! Bound: each process holds at most a tenth of the headroom it last saw, so up to ten
//! processes together hold at most the headroom, and cannot pass the limit, as long as what
//! they saw is at most one flush period old.

use crate::error::ApiError;
use bichito_core::store::Store;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

pub const WINDOW_MS: i64 = 60_000;
/// How often hits counted in memory are written to the database.
pub const FLUSH_EVERY: Duration = Duration::from_millis(100);

#[derive(Default)]
pub struct RateLimiter {
    keys: Mutex<HashMap<i64, KeyWindow>>,
}

/// What this process knows of a key's current window.
#[derive(Debug, Clone, Copy)]
struct KeyWindow {
    started_ms: i64,
    /// The window's count in the database at this process's last write.
    known_hits: i64,
    /// Hits admitted here and not yet written.
    pending: i64,
    per_minute: u32,
    exhausted: bool,
}

impl KeyWindow {
    fn is_current(&self, now_ms: i64) -> bool {
        now_ms < self.started_ms + WINDOW_MS
    }
}

/// Hits a process may hold in memory: a tenth of the headroom it knows of.
fn local_budget(per_minute: u32, known_hits: i64) -> i64 {
    (i64::from(per_minute) - known_hits).max(0) / 10
}

impl RateLimiter {
    /// Counts one report for `key_id`, or refuses it with the seconds to wait.
    pub async fn check(
        &self,
        store: &dyn Store,
        key_id: i64,
        per_minute: u32,
        now_ms: i64,
    ) -> Result<(), ApiError> {
        let hits = {
            let mut keys = self.lock();
            match keys.get_mut(&key_id) {
                Some(window) if window.is_current(now_ms) => {
                    if window.exhausted {
                        return Err(retry_after(window.started_ms + WINDOW_MS, now_ms));
                    }
                    window.per_minute = per_minute;
                    if window.pending < local_budget(per_minute, window.known_hits) {
                        window.pending += 1;
                        return Ok(());
                    }
                    // Past the budget: this hit and the held ones go to the database now.
                    std::mem::take(&mut window.pending) + 1
                }
                // No window known here, or it ended (hits not yet written are dropped with it).
                _ => 1,
            }
        };
        let window = store
            .hit_rate_window(&bucket(key_id), hits, now_ms, WINDOW_MS)
            .await?;
        let exhausted = window.hits > i64::from(per_minute);
        let mut keys = self.lock();
        keys.retain(|_, known| known.is_current(now_ms));
        let known = keys.entry(key_id).or_insert(KeyWindow {
            started_ms: window.started_ms,
            known_hits: 0,
            pending: 0,
            per_minute,
            exhausted: false,
        });
        if known.started_ms != window.started_ms {
            known.pending = 0;
        }
        known.started_ms = window.started_ms;
        known.known_hits = window.hits;
        known.per_minute = per_minute;
        known.exhausted |= exhausted;
        if exhausted {
            return Err(retry_after(window.started_ms + WINDOW_MS, now_ms));
        }
        Ok(())
    }

    /// Writes the hits counted in memory to the database.
    pub async fn flush(&self, store: &dyn Store, now_ms: i64) -> bichito_core::Result<()> {
        let batches: Vec<(i64, i64)> = {
            let mut keys = self.lock();
            keys.iter_mut()
                .filter(|(_, window)| window.pending > 0 && window.is_current(now_ms))
                .map(|(key_id, window)| (*key_id, std::mem::take(&mut window.pending)))
                .collect()
        };
        for (key_id, hits) in batches {
            let window = match store
                .hit_rate_window(&bucket(key_id), hits, now_ms, WINDOW_MS)
                .await
            {
                Ok(window) => window,
                Err(err) => {
                    // Counted again on the next flush.
                    if let Some(known) = self.lock().get_mut(&key_id) {
                        known.pending += hits;
                    }
                    return Err(err);
                }
            };
            let mut keys = self.lock();
            if let Some(known) = keys.get_mut(&key_id)
                && known.started_ms == window.started_ms
            {
                known.known_hits = window.hits;
                known.exhausted |= window.hits > i64::from(known.per_minute);
            }
        }
        Ok(())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<i64, KeyWindow>> {
        // Entries are whole values: a panic while holding the lock cannot leave one half-written.
        self.keys
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

fn bucket(key_id: i64) -> String {
    format!("key:{key_id}")
}

fn retry_after(until_ms: i64, now_ms: i64) -> ApiError {
    let wait_ms = (until_ms - now_ms).max(0);
    let seconds = u64::try_from((wait_ms + 999) / 1000).unwrap_or(1).max(1);
    ApiError::RateLimited {
        retry_after_secs: seconds,
    }
}
