//! Responses recorded under idempotency keys, so that a retried request is answered the same.

use super::{Connection, Dialect, SqlStore};
use crate::Result;
use crate::store::IdempotencyStore;
use crate::store::{IdempotencyClaim, StoredResponse};
use chrono::{DateTime, Utc};

#[async_trait::async_trait]
impl IdempotencyStore for SqlStore {
    async fn remember_response(
        &self,
        claim: &IdempotencyClaim,
        response: &StoredResponse,
    ) -> Result<Option<StoredResponse>> {
        let mut tx = self.pool().begin_with(Self::BEGIN_WRITE).await?;
        if claim_key(&mut tx, claim, response).await? {
            tx.commit().await?;
            return Ok(None);
        }
        tx.rollback().await?;
        self.idempotent_response(claim.honeycomb_id, &claim.key, claim.not_before)
            .await
    }

    async fn idempotent_response(
        &self,
        honeycomb_id: i64,
        key: &str,
        not_before: DateTime<Utc>,
    ) -> Result<Option<StoredResponse>> {
        Ok(sqlx::query_as(
            "SELECT request_hash, status, response FROM idempotency_keys \
             WHERE honeycomb_id = $1 AND key = $2 AND created_at >= $3",
        )
        .bind(honeycomb_id)
        .bind(key)
        .bind(not_before)
        .fetch_optional(self.pool())
        .await?)
    }

    async fn purge_idempotency(&self, before: DateTime<Utc>) -> Result<u64> {
        let done = sqlx::query("DELETE FROM idempotency_keys WHERE created_at < $1")
            .bind(before)
            .execute(self.pool())
            .await?;
        Ok(done.rows_affected())
    }
}

/// Claims an idempotency key inside a transaction; false when a live record holds it.
pub(super) async fn claim_key(
    conn: &mut Connection,
    claim: &IdempotencyClaim,
    response: &StoredResponse,
) -> Result<bool> {
    let claimed = sqlx::query(
        "INSERT INTO idempotency_keys (honeycomb_id, key, request_hash, status, response, \
             created_at) \
         VALUES ($1, $2, $3, $4, $5, $6) \
         ON CONFLICT (honeycomb_id, key) DO UPDATE SET request_hash = excluded.request_hash, \
             status = excluded.status, response = excluded.response, \
             created_at = excluded.created_at \
         WHERE idempotency_keys.created_at < $7 RETURNING key",
    )
    .bind(claim.honeycomb_id)
    .bind(&claim.key)
    .bind(&claim.request_hash)
    .bind(i64::from(response.status))
    .bind(&response.body)
    .bind(claim.created_at)
    .bind(claim.not_before)
    .fetch_optional(&mut *conn)
    .await?;
    Ok(claimed.is_some())
}
