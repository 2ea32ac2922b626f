//! Attachment records, and the storage objects scheduled for deletion as records come and go.

use super::outbox::push_event;
use super::reports::{bichito_for_update, in_ids};
use super::rows::ATTACHMENT_COLUMNS;
use super::{Connection, Dialect, SqlStore};
use crate::Result;
use crate::attachment::{self, AttachmentRecord, ObjectDeletion};
use crate::events::{self, EventType};
use crate::model::Bichito;
use crate::store::AttachmentStore;
use chrono::{DateTime, Utc};
use sqlx::AssertSqlSafe;

#[async_trait::async_trait]
impl AttachmentStore for SqlStore {
    async fn attachment(&self, bichito_id: i64) -> Result<Option<AttachmentRecord>> {
        let select = format!("SELECT {ATTACHMENT_COLUMNS} FROM attachments WHERE bichito_id = $1");
        Ok(sqlx::query_as(AssertSqlSafe(select))
            .bind(bichito_id)
            .fetch_optional(self.pool())
            .await?)
    }

    async fn attachment_by_key(&self, key: &str) -> Result<Option<AttachmentRecord>> {
        let select = format!("SELECT {ATTACHMENT_COLUMNS} FROM attachments WHERE object_key = $1");
        Ok(sqlx::query_as(AssertSqlSafe(select))
            .bind(key)
            .fetch_optional(self.pool())
            .await?)
    }

    async fn start_attachment(
        &self,
        record: &AttachmentRecord,
        replacing: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        let mut tx = self.pool().begin_with(Self::BEGIN_WRITE).await?;
        if let Some(old_key) = replacing {
            let removed: Option<DateTime<Utc>> = sqlx::query_scalar(
                "DELETE FROM attachments \
                 WHERE bichito_id = $1 AND object_key = $2 AND uploaded_at IS NULL \
                 RETURNING upload_expires_at",
            )
            .bind(record.bichito_id)
            .bind(old_key)
            .fetch_optional(&mut *tx)
            .await?;
            let Some(expires) = removed else {
                tx.rollback().await?;
                return Ok(false);
            };
            let not_before = now.max(expires);
            schedule_deletion(&mut tx, &attachment::upload_object(old_key), not_before).await?;
            schedule_deletion(&mut tx, &attachment::stored_object(old_key), not_before).await?;
        }
        let inserted = sqlx::query(
            "INSERT INTO attachments (bichito_id, object_key, filename, content_type, \
                 content_length, created_at, upload_expires_at) \
             SELECT $1, $2, $3, $4, $5, $6, $7 WHERE EXISTS (SELECT 1 FROM bichitos WHERE id = $1) \
             ON CONFLICT (bichito_id) DO NOTHING RETURNING bichito_id",
        )
        .bind(record.bichito_id)
        .bind(&record.key)
        .bind(&record.filename)
        .bind(record.content_type.mime())
        .bind(record.content_length)
        .bind(record.created_at)
        .bind(record.upload_expires_at)
        .fetch_optional(&mut *tx)
        .await?;
        if inserted.is_none() {
            tx.rollback().await?;
            return Ok(false);
        }
        tx.commit().await?;
        Ok(true)
    }

    async fn stamp_attachment(
        &self,
        bichito_id: i64,
        key: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<Bichito>> {
        let mut tx = self.pool().begin_with(Self::BEGIN_WRITE).await?;
        let stamped = settle_pending(&mut tx, bichito_id, key, Settled::Uploaded, now).await?;
        let Some(expires) = stamped else {
            tx.rollback().await?;
            return Ok(None);
        };
        sqlx::query("UPDATE bichitos SET updated_at = $2 WHERE id = $1")
            .bind(bichito_id)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        let Some(bichito) = bichito_for_update(&mut tx, bichito_id).await? else {
            tx.rollback().await?;
            return Ok(None);
        };
        // The verified copy is all that is kept; the upload object goes once its URL is dead.
        schedule_deletion(&mut tx, &attachment::upload_object(key), now.max(expires)).await?;
        let payload = events::attached_payload(&bichito);
        push_event(&mut tx, &bichito, EventType::BugUpdated, &payload, now).await?;
        tx.commit().await?;
        Ok(Some(bichito))
    }

    async fn reject_attachment(
        &self,
        bichito_id: i64,
        key: &str,
        reason: &str,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        let mut tx = self.pool().begin_with(Self::BEGIN_WRITE).await?;
        let settled = Settled::Rejected(reason);
        let rejected = settle_pending(&mut tx, bichito_id, key, settled, now).await?;
        let Some(expires) = rejected else {
            tx.rollback().await?;
            return Ok(false);
        };
        // An upload object may be written until its URL expires: it goes no earlier.
        schedule_deletion(&mut tx, &attachment::upload_object(key), now.max(expires)).await?;
        schedule_deletion(&mut tx, &attachment::stored_object(key), now).await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn expired_uploads(
        &self,
        before: DateTime<Utc>,
        limit: i64,
    ) -> Result<Vec<AttachmentRecord>> {
        let select = format!(
            "SELECT {ATTACHMENT_COLUMNS} FROM attachments \
             WHERE uploaded_at IS NULL AND rejected_at IS NULL AND upload_expires_at < $1 \
             ORDER BY upload_expires_at LIMIT $2"
        );
        Ok(sqlx::query_as(AssertSqlSafe(select))
            .bind(before)
            .bind(limit)
            .fetch_all(self.pool())
            .await?)
    }

    async fn due_object_deletions(
        &self,
        now: DateTime<Utc>,
        limit: i64,
    ) -> Result<Vec<ObjectDeletion>> {
        Ok(sqlx::query_as(
            "SELECT id, object FROM object_deletions WHERE not_before <= $1 ORDER BY id LIMIT $2",
        )
        .bind(now)
        .bind(limit)
        .fetch_all(self.pool())
        .await?)
    }

    async fn forget_object_deletions(&self, ids: &[i64]) -> Result<()> {
        if ids.is_empty() {
            return Ok(());
        }
        in_ids(
            "DELETE FROM object_deletions WHERE id IN (",
            ids.iter().copied(),
            ")",
        )
        .build()
        .execute(self.pool())
        .await?;
        Ok(())
    }
}

/// How a pending attachment ends.
enum Settled<'a> {
    Uploaded,
    Rejected(&'a str),
}

/// Ends a pending attachment (neither uploaded nor rejected yet) at `now`, inside the caller's
/// transaction; answers when its upload URL expires, or `None` when it was no longer pending.
async fn settle_pending(
    conn: &mut Connection,
    bichito_id: i64,
    key: &str,
    settled: Settled<'_>,
    now: DateTime<Utc>,
) -> Result<Option<DateTime<Utc>>> {
    let (column, rejection) = match settled {
        Settled::Uploaded => ("uploaded_at", None),
        Settled::Rejected(reason) => ("rejected_at", Some(reason)),
    };
    let update = format!(
        "UPDATE attachments SET {column} = $3, rejection = $4 \
         WHERE bichito_id = $1 AND object_key = $2 AND uploaded_at IS NULL \
             AND rejected_at IS NULL \
         RETURNING upload_expires_at"
    );
    Ok(sqlx::query_scalar(AssertSqlSafe(update))
        .bind(bichito_id)
        .bind(key)
        .bind(now)
        .bind(rejection)
        .fetch_optional(&mut *conn)
        .await?)
}

/// Schedules a storage object for deletion, inside the caller's transaction.
async fn schedule_deletion(
    conn: &mut Connection,
    object: &str,
    not_before: DateTime<Utc>,
) -> Result<()> {
    sqlx::query("INSERT INTO object_deletions (object, not_before) VALUES ($1, $2)")
        .bind(object)
        .bind(not_before)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Schedules the objects of the attachments about to be deleted with their bichitos (`filter`
/// over `attachments a`, with `$1` bound to `id`): a verified copy at once, an upload object
/// still writable when its URL expires. Rejected records had theirs scheduled when they were
/// refused, an uploaded one its upload object when stamped.
pub(super) async fn schedule_deletions_with_bichitos(
    conn: &mut Connection,
    filter: &str,
    id: i64,
    now: DateTime<Utc>,
) -> Result<()> {
    let insert = format!(
        "INSERT INTO object_deletions (object, not_before) \
         SELECT 'attachments/' || a.object_key, $2 FROM attachments a \
         WHERE {filter} AND a.rejected_at IS NULL \
         UNION ALL \
         SELECT 'uploads/' || a.object_key, \
             CASE WHEN a.upload_expires_at > $2 THEN a.upload_expires_at ELSE $2 END \
         FROM attachments a WHERE {filter} AND a.uploaded_at IS NULL AND a.rejected_at IS NULL"
    );
    sqlx::query(AssertSqlSafe(insert))
        .bind(id)
        .bind(now)
        .execute(&mut *conn)
        .await?;
    Ok(())
}
