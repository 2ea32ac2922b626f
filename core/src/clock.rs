//! Time as a dependency: the server reads a [`Clock`], tests move a [`ManualClock`].

use chrono::{DateTime, TimeDelta, Utc};
use std::sync::Mutex;

/// The source of "now" for everything time-dependent (key expiry, rate windows, idempotency).
pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> DateTime<Utc>;
}

/// The wall clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// A clock that only moves when told to; for tests.
#[derive(Debug)]
pub struct ManualClock(Mutex<DateTime<Utc>>);

impl ManualClock {
    pub fn new(start: DateTime<Utc>) -> Self {
        Self(Mutex::new(start))
    }

    pub fn advance(&self, by: TimeDelta) {
        let mut now = self
            .0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        *now += by;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *self
            .0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// `now` truncated to whole milliseconds: what we store and print, so that a value read back
/// from either database is identical to the one returned at creation.
pub fn truncate_to_millis(now: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(now.timestamp_millis()).unwrap_or(now)
}

/// RFC 3339 in UTC with milliseconds, e.g. `2026-05-07T11:42:00.000Z`.
pub fn rfc3339_millis<S: serde::Serializer>(
    value: &DateTime<Utc>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&value.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
}

/// The month a report is counted in under a monthly cap: `YYYY-MM`, in UTC.
pub fn usage_period(at: DateTime<Utc>) -> String {
    at.format("%Y-%m").to_string()
}
