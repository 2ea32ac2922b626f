//! Dashboard edits, comments and deletions, each with its event in the same transaction.

use super::outbox::push_event;
use super::reports::{bichito_for_update, comment_count};
use super::{Dialect, SqlStore};
use crate::Result;
use crate::events::{self, EventType};
use crate::model::{Bichito, BichitoPatch, Comment};
use crate::store::EditStore;
use chrono::{DateTime, Utc};

#[async_trait::async_trait]
impl EditStore for SqlStore {
    async fn update_bichito(
        &self,
        id: i64,
        patch: &BichitoPatch,
        now: DateTime<Utc>,
    ) -> Result<Option<Bichito>> {
        let mut tx = self.pool().begin_with(Self::BEGIN_WRITE).await?;
        let Some(mut bichito) = bichito_for_update(&mut tx, id).await? else {
            return Ok(None);
        };
        // The answer is the payload GET gives, count included.
        bichito.comment_count = Some(comment_count(&mut tx, id).await?);
        let changes = events::changes(&bichito, patch);
        if changes.is_empty() {
            tx.rollback().await?;
            return Ok(Some(bichito));
        }
        patch.apply_to(&mut bichito);
        bichito.updated_at = now;
        sqlx::query(
            "UPDATE bichitos SET status = $2, severity = $3, assignee = $4, duplicate_of = $5, \
                 updated_at = $6 WHERE id = $1",
        )
        .bind(id)
        .bind(bichito.status.as_str())
        .bind(bichito.severity.as_str())
        .bind(&bichito.assignee)
        .bind(bichito.duplicate_of)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        if changes.contains_key("labels") {
            sqlx::query("DELETE FROM bichito_labels WHERE bichito_id = $1")
                .bind(id)
                .execute(&mut *tx)
                .await?;
            for (position, label) in bichito.labels.iter().enumerate() {
                sqlx::query(
                    "INSERT INTO bichito_labels (bichito_id, position, label) VALUES ($1, $2, $3)",
                )
                .bind(id)
                .bind(i64::try_from(position).unwrap_or(i64::MAX))
                .bind(label)
                .execute(&mut *tx)
                .await?;
            }
        }
        let payload = events::updated_payload(&bichito, &changes);
        push_event(&mut tx, &bichito, EventType::BugUpdated, &payload, now).await?;
        tx.commit().await?;
        Ok(Some(bichito))
    }

    async fn add_comment(
        &self,
        bichito: &Bichito,
        author_id: &str,
        body: &str,
        now: DateTime<Utc>,
    ) -> Result<Comment> {
        let mut tx = self.pool().begin_with(Self::BEGIN_WRITE).await?;
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO comments (bichito_id, author_id, body, created_at) VALUES ($1, $2, $3, $4) \
             RETURNING id",
        )
        .bind(bichito.id)
        .bind(author_id)
        .bind(body)
        .bind(now)
        .fetch_one(&mut *tx)
        .await?;
        let comment = Comment {
            id,
            bichito_id: bichito.id,
            author_id: author_id.to_owned(),
            body: body.to_owned(),
            created_at: now,
        };
        let payload = events::commented_payload(bichito, comment.id, author_id);
        push_event(&mut tx, bichito, EventType::BugCommented, &payload, now).await?;
        tx.commit().await?;
        Ok(comment)
    }

    async fn comments(&self, bichito_id: i64) -> Result<Vec<Comment>> {
        Ok(sqlx::query_as(
            "SELECT id, bichito_id, author_id, body, created_at FROM comments \
             WHERE bichito_id = $1 ORDER BY id",
        )
        .bind(bichito_id)
        .fetch_all(self.pool())
        .await?)
    }

    async fn delete_bichito(&self, bichito: &Bichito, now: DateTime<Utc>) -> Result<bool> {
        let mut tx = self.pool().begin_with(Self::BEGIN_WRITE).await?;
        super::attachments::schedule_deletions_with_bichitos(
            &mut tx,
            "a.bichito_id = $1",
            bichito.id,
            now,
        )
        .await?;
        let deleted = sqlx::query("DELETE FROM bichitos WHERE id = $1")
            .bind(bichito.id)
            .execute(&mut *tx)
            .await?;
        if deleted.rows_affected() == 0 {
            tx.rollback().await?;
            return Ok(false);
        }
        let payload = events::deleted_payload(bichito);
        push_event(&mut tx, bichito, EventType::BugDeleted, &payload, now).await?;
        tx.commit().await?;
        Ok(true)
    }
}
