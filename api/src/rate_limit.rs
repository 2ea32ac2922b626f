//! Reports per minute per API key, held across every api process that shares the database.
//!
//! The count lives in the database (one fixed one-minute window per key, opened by the key's
//! first report). Once a process has seen a key over its limit, it refuses that key from memory
//! until the window ends, so a flood of rejected requests costs no database write each.

use crate::error::ApiError;
use bichito_core::store::Store;
use std::collections::HashMap;
use std::sync::Mutex;

pub const WINDOW_MS: i64 = 60_000;

#[derive(Default)]
pub struct RateLimiter {
    /// API key id → end of its exhausted window (ms since the epoch).
    exhausted_until: Mutex<HashMap<i64, i64>>,
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
        if let Some(until) = self.exhausted(key_id, now_ms) {
            return Err(retry_after(until, now_ms));
        }
        let window = store
            .hit_rate_window(&format!("key:{key_id}"), now_ms, WINDOW_MS)
            .await?;
        if window.hits <= i64::from(per_minute) {
            return Ok(());
        }
        let until = window.started_ms + WINDOW_MS;
        let mut exhausted = self
            .exhausted_until
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        exhausted.retain(|_, end| *end > now_ms);
        exhausted.insert(key_id, until);
        Err(retry_after(until, now_ms))
    }

    fn exhausted(&self, key_id: i64, now_ms: i64) -> Option<i64> {
        let exhausted = self
            .exhausted_until
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        exhausted
            .get(&key_id)
            .copied()
            .filter(|until| *until > now_ms)
    }
}

fn retry_after(until_ms: i64, now_ms: i64) -> ApiError {
    let wait_ms = (until_ms - now_ms).max(0);
    let seconds = u64::try_from((wait_ms + 999) / 1000).unwrap_or(1).max(1);
    ApiError::RateLimited {
        retry_after_secs: seconds,
    }
}
