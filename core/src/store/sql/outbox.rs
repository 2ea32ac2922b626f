//! The outbox: every change's event, written in the change's transaction, read by the relay
//! that publishes it.

use super::{Connection, Dialect, SqlStore};
use crate::events::{EventType, OutboxEvent};
use crate::model::Bichito;
use crate::store::OutboxStore;
use crate::{Error, Result};
use chrono::{DateTime, Utc};
use std::sync::LazyLock;

/// Writes an event about `bichito` to the outbox (for its team's stream), inside the caller's
/// transaction.
pub(super) async fn push_event(
    conn: &mut Connection,
    bichito: &Bichito,
    event: EventType,
    payload: &str,
    now: DateTime<Utc>,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO outbox (team_id, event_type, payload, created_at) VALUES ($1, $2, $3, $4)",
    )
    .bind(&bichito.team_id)
    .bind(event.as_str())
    .bind(payload)
    .bind(now)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// `$2`, a JSON array of ids, stamped published at `$1`. Built once per backend.
static MARK_PUBLISHED: LazyLock<String> = LazyLock::new(|| {
    format!(
        "UPDATE outbox SET published_at = $1 WHERE id IN ({})",
        SqlStore::IDS_IN_JSON_ARRAY
    )
});

// The outbox queries are planned at each run (not prepared once): a plan made while the table
// was small (a seq scan) would stay cached as it grows.
#[async_trait::async_trait]
impl OutboxStore for SqlStore {
    async fn unpublished_events(&self, limit: i64) -> Result<Vec<OutboxEvent>> {
        Ok(sqlx::query_as(
            "SELECT id, team_id, event_type, payload, created_at FROM outbox \
             WHERE published_at IS NULL ORDER BY id LIMIT $1",
        )
        .persistent(false)
        .bind(limit)
        .fetch_all(self.pool())
        .await?)
    }

    async fn mark_published(&self, ids: &[i64], now: DateTime<Utc>) -> Result<()> {
        if ids.is_empty() {
            return Ok(());
        }
        // The ids go as one JSON array: one statement text whatever the batch's size, instead
        // of a new text (and a new parse) per list length.
        let ids = serde_json::to_string(ids).map_err(|err| Error::Corrupt(err.to_string()))?;
        sqlx::query(MARK_PUBLISHED.as_str())
            .persistent(false)
            .bind(now)
            .bind(ids)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    async fn purge_published_events(&self, before: DateTime<Utc>) -> Result<u64> {
        let done =
            sqlx::query("DELETE FROM outbox WHERE published_at IS NOT NULL AND published_at < $1")
                .bind(before)
                .execute(self.pool())
                .await?;
        Ok(done.rows_affected())
    }

    async fn outbox_backlog(&self) -> Result<i64> {
        Ok(
            sqlx::query_scalar("SELECT COUNT(*) FROM outbox WHERE published_at IS NULL")
                .persistent(false)
                .fetch_one(self.pool())
                .await?,
        )
    }
}
