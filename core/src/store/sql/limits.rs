//! Rate-limit windows shared by every api process, monthly usage under a cap, and counts.

use super::{Connection, SqlStore};
use crate::Result;
use crate::model::NewBichito;
use crate::store::LimitStore;
use crate::store::RateGrant;

#[async_trait::async_trait]
impl LimitStore for SqlStore {
    async fn take_rate(
        &self,
        bucket: &str,
        want: i64,
        limit: i64,
        now_ms: i64,
        window_ms: i64,
    ) -> Result<RateGrant> {
        // `last_grant` carries what this statement took out to RETURNING, which sees only the
        // new row; the row is locked for the statement, so it is this one's.
        let (started_ms, hits, granted): (i64, i64, i64) = sqlx::query_as(
            "INSERT INTO rate_limits (bucket, window_started_ms, hits, last_grant) \
             VALUES ($1, $2, CASE WHEN $4 < $5 THEN $4 ELSE $5 END, \
                 CASE WHEN $4 < $5 THEN $4 ELSE $5 END) \
             ON CONFLICT (bucket) DO UPDATE SET \
                 window_started_ms = CASE WHEN rate_limits.window_started_ms + $3 <= $2 \
                     THEN $2 ELSE rate_limits.window_started_ms END, \
                 last_grant = CASE \
                     WHEN rate_limits.window_started_ms + $3 <= $2 \
                         THEN CASE WHEN $4 < $5 THEN $4 ELSE $5 END \
                     WHEN rate_limits.hits >= $5 THEN 0 \
                     WHEN $5 - rate_limits.hits < $4 THEN $5 - rate_limits.hits \
                     ELSE $4 END, \
                 hits = CASE \
                     WHEN rate_limits.window_started_ms + $3 <= $2 \
                         THEN CASE WHEN $4 < $5 THEN $4 ELSE $5 END \
                     WHEN rate_limits.hits >= $5 THEN rate_limits.hits \
                     WHEN $5 - rate_limits.hits < $4 THEN $5 \
                     ELSE rate_limits.hits + $4 END \
             RETURNING window_started_ms, hits, last_grant",
        )
        .bind(bucket)
        .bind(now_ms)
        .bind(window_ms)
        .bind(want.max(0))
        .bind(limit.max(0))
        .fetch_one(self.pool())
        .await?;
        Ok(RateGrant {
            started_ms,
            granted,
            hits,
        })
    }

    async fn return_rate(&self, bucket: &str, started_ms: i64, unused: i64) -> Result<()> {
        sqlx::query(
            "UPDATE rate_limits SET hits = CASE WHEN hits > $3 THEN hits - $3 ELSE 0 END \
             WHERE bucket = $1 AND window_started_ms = $2",
        )
        .bind(bucket)
        .bind(started_ms)
        .bind(unused.max(0))
        .execute(self.pool())
        .await?;
        Ok(())
    }

    async fn count_bichitos(&self, honeycomb_id: i64) -> Result<i64> {
        Ok(
            sqlx::query_scalar("SELECT COUNT(*) FROM bichitos WHERE honeycomb_id = $1")
                .bind(honeycomb_id)
                .fetch_one(self.pool())
                .await?,
        )
    }

    async fn monthly_usage(&self, honeycomb_id: i64, period: &str) -> Result<i64> {
        let reports: Option<i64> = sqlx::query_scalar(
            "SELECT reports FROM usage_counters WHERE honeycomb_id = $1 AND period = $2",
        )
        .bind(honeycomb_id)
        .bind(period)
        .fetch_optional(self.pool())
        .await?;
        Ok(reports.unwrap_or(0))
    }
}

/// Inside a report's transaction: counts it against its honeycomb's monthly `cap`; false,
/// with nothing counted, when the month is full.
pub(super) async fn charge_report(
    conn: &mut Connection,
    report: &NewBichito,
    cap: u32,
) -> Result<bool> {
    let charged = sqlx::query(
        "INSERT INTO usage_counters (honeycomb_id, period, reports) VALUES ($1, $2, 1) \
         ON CONFLICT (honeycomb_id, period) DO UPDATE SET reports = usage_counters.reports + 1 \
         WHERE usage_counters.reports < $3 RETURNING reports",
    )
    .bind(report.honeycomb_id)
    .bind(crate::clock::usage_period(report.created_at))
    .bind(i64::from(cap))
    .fetch_optional(&mut *conn)
    .await?;
    Ok(charged.is_some())
}
