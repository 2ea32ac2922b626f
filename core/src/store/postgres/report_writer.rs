//! How Postgres writes a report. The one place that chooses:
//!
//! - with an idempotency key: a transaction (the claim and the report commit together);
//! - under a monthly cap: one statement (key check, charge, report and event), the counter row
//!   locked for that statement only;
//! - otherwise: with whatever other reports are waiting, in one batch ([`super::insert_batch`]),
//!   and alone in one statement if the database refuses the batch.

use super::PostgresStore;
use super::insert_batch::BatchError;
use super::reports::bind_report;
use crate::events::{self, EventType};
use crate::model::NewBichito;
use crate::store::{IdempotencyClaim, Inserted};
use crate::{Error, Result};
use sqlx::{AssertSqlSafe, Row};
use std::sync::LazyLock;

impl PostgresStore {
    pub(super) async fn write_report(
        &self,
        report: &NewBichito,
        monthly_cap: Option<u32>,
        idempotency: Option<&IdempotencyClaim>,
    ) -> Result<Inserted> {
        if idempotency.is_some() {
            return self
                .insert_in_transaction(report, monthly_cap, idempotency)
                .await;
        }
        if monthly_cap.is_none() {
            let bichito = report.clone().into_bichito(0);
            let tail = events::created_payload_tail(&bichito)?;
            match self.inserts.insert(bichito, tail, report.api_key_id).await {
                Ok(Some(bichito)) => return Ok(Inserted::Stored(Box::new(bichito))),
                Ok(None) => return Ok(Inserted::KeyRevoked),
                Err(BatchError::Refused) => {}
                Err(BatchError::Full) => return Err(Error::Overloaded),
                Err(BatchError::Unavailable(reason)) => {
                    return Err(Error::WriteOutcomeUnknown(reason));
                }
            }
        }
        self.insert_in_one_statement(report, monthly_cap).await
    }

    /// A report without an idempotency claim as one statement (one round trip, no explicit
    /// transaction): the key check, the usage charge, the bichito and its `bug.created` event.
    /// The key's row is share-locked, so a revocation committing meanwhile either waits for
    /// this report or is seen by it.
    async fn insert_in_one_statement(
        &self,
        report: &NewBichito,
        monthly_cap: Option<u32>,
    ) -> Result<Inserted> {
        let mut bichito = report.clone().into_bichito(0);
        let tail = events::created_payload_tail(&bichito)?;
        let row = bind_report(sqlx::query(AssertSqlSafe(ONE_STATEMENT.as_str())), report)
            .bind(crate::clock::usage_period(report.created_at))
            .bind(monthly_cap.is_some())
            .bind(monthly_cap.map_or(i64::MAX, i64::from))
            .bind(EventType::BugCreated.as_str())
            .bind(&tail)
            .bind(report.api_key_id)
            .fetch_one(&self.pool)
            .await?;
        if !row.try_get::<bool, _>("key_valid")? {
            return Ok(Inserted::KeyRevoked);
        }
        match row.try_get::<Option<i64>, _>("id")? {
            Some(id) => {
                bichito.id = id;
                Ok(Inserted::Stored(Box::new(bichito)))
            }
            None => Ok(Inserted::OverCap),
        }
    }
}

/// `$1`–`$15` the report (`bind_report`), `$16` its month, `$17` whether it is capped, `$18`
/// the cap, `$19` the event type, `$20` the payload's tail, `$21` the API key's id.
static ONE_STATEMENT: LazyLock<String> = LazyLock::new(|| {
    format!(
        "WITH valid_key AS MATERIALIZED ( \
             SELECT 1 FROM api_keys WHERE id = $21 \
                 AND (expires_at IS NULL OR expires_at > $15) FOR KEY SHARE), \
         keyed AS MATERIALIZED ( \
             SELECT $21::bigint IS NULL OR EXISTS (SELECT 1 FROM valid_key) AS ok), \
         charged AS ( \
             INSERT INTO usage_counters (honeycomb_id, period, reports) \
             SELECT $1, $16, 1 WHERE $17 AND (SELECT ok FROM keyed) \
             ON CONFLICT (honeycomb_id, period) DO UPDATE \
                 SET reports = usage_counters.reports + 1 \
             WHERE usage_counters.reports < $18 RETURNING 1), \
         stored AS ( \
             INSERT INTO bichitos (honeycomb_id, team_id, title, description, status, severity, \
                 environment, app_version, stack_trace, url, user_agent, reporter_email, \
                 reporter_identifier, extra, created_at, updated_at) \
             SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $15 \
             WHERE (SELECT ok FROM keyed) AND (NOT $17 OR EXISTS (SELECT 1 FROM charged)) \
             RETURNING id), \
         event AS ( \
             INSERT INTO outbox (team_id, event_type, payload, created_at) \
             SELECT $2, $19, {}, $15 FROM stored) \
         SELECT (SELECT id FROM stored) AS id, (SELECT ok FROM keyed) AS key_valid",
        events::created_payload_sql("id", "$20")
    )
});
