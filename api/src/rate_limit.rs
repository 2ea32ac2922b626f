//! Reports per minute per API key, exact across every api process that shares the database.
//!
//! The count lives in the database: one fixed one-minute window per key, opened by the key's
//! first report. A process takes hits from the window in grants ([`Store::take_rate`]): the
//! database never grants more than the limit in a window, whatever the number of processes,
//! so no more than the limit is ever accepted. A process spends a grant from memory; while it
//! spends, it asks for nothing. A grant is a tenth of the headroom the process last saw (at
//! least one hit), so far from the limit a key costs one database write per many reports, and
//! near it one per report. Hits a process holds and does not use within [`RETURN_AFTER`] go
//! back to the window for the other processes (each flush, every [`FLUSH_EVERY`]); until then
//! the others may be refused up to that many reports early, never accepted beyond the limit.
//!
//! A process that finds a key's window exhausted answers 429 from memory and asks the
//! database again at most every [`FLUSH_EVERY`]: a flood of refused requests costs no
//! database write each, and hits given back by another process, or a raised quota, are
//! seen within that. A changed quota (read through the settings cache) applies at once: what
//! was taken under the old one is given back and taken again under the new one.

use crate::error::ApiError;
use bichito_core::store::{RateGrant, Store};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub const WINDOW_MS: i64 = 60_000;
/// How often unused hits are given back, and how often an exhausted window is asked again.
pub const FLUSH_EVERY: Duration = Duration::from_millis(100);
/// Hits held this long without being used go back to the window.
pub const RETURN_AFTER: Duration = Duration::from_secs(1);
/// A grant is this fraction of the headroom last seen.
const GRANT_DIVISOR: i64 = 10;

#[derive(Default)]
pub struct RateLimiter {
    keys: Mutex<HashMap<i64, KeyWindow>>,
    /// One grant request at a time per key: concurrent requests of a key wait for the grant in
    /// flight instead of each taking one.
    asking: Mutex<HashMap<i64, Arc<tokio::sync::Mutex<()>>>>,
    /// Grants asked of the database so far.
    asked: AtomicU64,
}

/// What this process holds of a key's current window.
#[derive(Debug, Clone, Copy)]
struct KeyWindow {
    started_ms: i64,
    per_minute: u32,
    /// Hits granted to this process and not yet used.
    held: i64,
    /// The window's count in the database at the last grant.
    seen_hits: i64,
    /// When a hit was last used here (ms), to give back what sits unused.
    last_used_ms: i64,
    /// Exhausted as of the last grant: refused from memory until this instant (ms).
    refused_until_ms: Option<i64>,
}

impl KeyWindow {
    fn is_current(&self, now_ms: i64) -> bool {
        now_ms < self.started_ms + WINDOW_MS
    }

    fn ends_ms(&self) -> i64 {
        self.started_ms + WINDOW_MS
    }
}

/// What memory alone says about one more hit.
enum Local {
    Accepted,
    Refused(i64),
    /// Ask the database; `returning` is what is held under a quota that changed.
    Ask {
        returning: Option<(i64, i64)>,
    },
}

impl RateLimiter {
    /// Counts one report for `key_id` under `per_minute`, or refuses it with the seconds to
    /// wait.
    pub async fn check(
        &self,
        store: &dyn Store,
        key_id: i64,
        per_minute: u32,
        now_ms: i64,
    ) -> Result<(), ApiError> {
        match self.local(key_id, per_minute, now_ms) {
            Local::Accepted => return Ok(()),
            Local::Refused(until_ms) => return Err(retry_after(until_ms, now_ms)),
            Local::Ask { returning } => {
                if let Some((started_ms, unused)) = returning {
                    store
                        .return_rate(&bucket(key_id), started_ms, unused)
                        .await?;
                }
            }
        }
        let gate = self.gate(key_id);
        let _asking = gate.lock().await;
        // A grant that came while this one waited may already cover it.
        match self.local(key_id, per_minute, now_ms) {
            Local::Accepted => return Ok(()),
            Local::Refused(until_ms) => return Err(retry_after(until_ms, now_ms)),
            Local::Ask { .. } => {}
        }
        let want = self.grant_size(key_id, per_minute, now_ms);
        self.asked.fetch_add(1, Ordering::Relaxed);
        let grant = store
            .take_rate(
                &bucket(key_id),
                want,
                i64::from(per_minute),
                now_ms,
                WINDOW_MS,
            )
            .await?;
        self.granted(key_id, per_minute, now_ms, grant)
    }

    /// How many grants this limiter asked the database for.
    pub fn database_requests(&self) -> u64 {
        self.asked.load(Ordering::Relaxed)
    }

    /// Takes one hit from memory, or says why the database must be asked.
    fn local(&self, key_id: i64, per_minute: u32, now_ms: i64) -> Local {
        let mut keys = self.lock();
        let Some(window) = keys.get_mut(&key_id) else {
            return Local::Ask { returning: None };
        };
        if !window.is_current(now_ms) {
            keys.remove(&key_id);
            return Local::Ask { returning: None };
        }
        if window.per_minute != per_minute {
            // The quota changed: what is held was granted under the old one.
            let returning = (window.held > 0).then_some((window.started_ms, window.held));
            keys.remove(&key_id);
            return Local::Ask { returning };
        }
        if window.held > 0 {
            window.held -= 1;
            window.last_used_ms = now_ms;
            return Local::Accepted;
        }
        match window.refused_until_ms {
            Some(until_ms) if now_ms < until_ms => Local::Refused(window.ends_ms()),
            _ => Local::Ask { returning: None },
        }
    }

    /// A tenth of the headroom last seen, at least one hit.
    fn grant_size(&self, key_id: i64, per_minute: u32, now_ms: i64) -> i64 {
        let seen = self
            .lock()
            .get(&key_id)
            .filter(|window| window.is_current(now_ms))
            .map_or(0, |window| window.seen_hits);
        ((i64::from(per_minute) - seen) / GRANT_DIVISOR).max(1)
    }

    /// Records a grant; uses one of its hits for the request that asked.
    fn granted(
        &self,
        key_id: i64,
        per_minute: u32,
        now_ms: i64,
        grant: RateGrant,
    ) -> Result<(), ApiError> {
        let mut keys = self.lock();
        keys.retain(|_, window| window.is_current(now_ms));
        let window = keys.entry(key_id).or_insert(KeyWindow {
            started_ms: grant.started_ms,
            per_minute,
            held: 0,
            seen_hits: 0,
            last_used_ms: now_ms,
            refused_until_ms: None,
        });
        if window.started_ms != grant.started_ms {
            // A new window: what was held belonged to the one that ended.
            window.started_ms = grant.started_ms;
            window.held = 0;
        }
        window.per_minute = per_minute;
        window.seen_hits = grant.hits;
        if grant.granted == 0 {
            window.refused_until_ms = Some(now_ms + FLUSH_EVERY.as_millis() as i64);
            return Err(retry_after(window.ends_ms(), now_ms));
        }
        window.refused_until_ms = None;
        window.held += grant.granted - 1;
        window.last_used_ms = now_ms;
        Ok(())
    }

    /// Gives back the hits held and unused for [`RETURN_AFTER`], so other processes may use
    /// them.
    pub async fn flush(&self, store: &dyn Store, now_ms: i64) -> bichito_core::Result<()> {
        let idle_ms = RETURN_AFTER.as_millis() as i64;
        let returning: Vec<(i64, i64, i64)> = {
            let mut keys = self.lock();
            keys.retain(|_, window| window.is_current(now_ms));
            keys.iter_mut()
                .filter(|(_, window)| window.held > 0 && now_ms - window.last_used_ms >= idle_ms)
                .map(|(key_id, window)| {
                    (*key_id, window.started_ms, std::mem::take(&mut window.held))
                })
                .collect()
        };
        for (key_id, started_ms, unused) in returning {
            store
                .return_rate(&bucket(key_id), started_ms, unused)
                .await?;
        }
        self.lock_gates()
            .retain(|key_id, gate| Arc::strong_count(gate) > 1 || self.knows(*key_id));
        Ok(())
    }

    fn knows(&self, key_id: i64) -> bool {
        self.lock().contains_key(&key_id)
    }

    fn gate(&self, key_id: i64) -> Arc<tokio::sync::Mutex<()>> {
        self.lock_gates().entry(key_id).or_default().clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<i64, KeyWindow>> {
        // Entries are whole values: a panic while holding the lock cannot leave one half-written.
        self.keys
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn lock_gates(&self) -> std::sync::MutexGuard<'_, HashMap<i64, Arc<tokio::sync::Mutex<()>>>> {
        self.asking
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
