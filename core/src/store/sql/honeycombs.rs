//! Honeycombs, their blocklists and their API keys, as the operator writes them and the api
//! reads them. Every change announces itself ([`Dialect::NOTIFY_SETTINGS`]) in its own
//! transaction, so that no process keeps using settings or keys older than a commit.

use super::rows::{block_rule_columns, origins_column};
use super::{Connection, Dialect, SqlStore};
use crate::events::{self, EventType};
use crate::model::{ApiKeyRecord, BlockRule, Honeycomb};
use crate::spec::DeletionPolicy;
use crate::store::HoneycombStore;
use crate::store::{HoneycombApply, HoneycombKeyState, Retired};
use crate::{Error, Result};
use chrono::{DateTime, Utc};
use sqlx::AssertSqlSafe;

#[async_trait::async_trait]
impl HoneycombStore for SqlStore {
    async fn honeycomb_key_state(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<Option<HoneycombKeyState>> {
        let found: Option<(i64, Option<String>)> = sqlx::query_as(
            "SELECT id, key_rotation FROM honeycombs WHERE namespace = $1 AND name = $2",
        )
        .bind(namespace)
        .bind(name)
        .fetch_optional(self.pool())
        .await?;
        let Some((id, key_rotation)) = found else {
            return Ok(None);
        };
        let keys = sqlx::query_as(
            "SELECT id, honeycomb_id, prefix, hash, created_at, expires_at FROM api_keys \
             WHERE honeycomb_id = $1 ORDER BY id DESC",
        )
        .bind(id)
        .fetch_all(self.pool())
        .await?;
        Ok(Some(HoneycombKeyState {
            id,
            key_rotation,
            keys,
        }))
    }

    async fn apply_honeycomb(&self, apply: &HoneycombApply) -> Result<i64> {
        let origins = serde_json::to_string(&apply.allowed_origins)
            .map_err(|err| Error::Corrupt(err.to_string()))?;
        let mut tx = self.pool().begin_with(Self::BEGIN_WRITE).await?;
        sqlx::query(
            "INSERT INTO teams (id, created_at) VALUES ($1, $2) ON CONFLICT (id) DO NOTHING",
        )
        .bind(&apply.team_id)
        .bind(apply.now)
        .execute(&mut *tx)
        .await?;
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO honeycombs (namespace, name, team_id, display_name, plan, \
                 reports_per_minute, monthly_reports, allowed_origins, deletion_policy, \
                 key_rotation, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $11) \
             ON CONFLICT (namespace, name) DO UPDATE SET team_id = excluded.team_id, \
                 display_name = excluded.display_name, plan = excluded.plan, \
                 reports_per_minute = excluded.reports_per_minute, \
                 monthly_reports = excluded.monthly_reports, \
                 allowed_origins = excluded.allowed_origins, \
                 deletion_policy = excluded.deletion_policy, \
                 key_rotation = excluded.key_rotation, updated_at = excluded.updated_at \
             RETURNING id",
        )
        .bind(&apply.namespace)
        .bind(&apply.name)
        .bind(&apply.team_id)
        .bind(&apply.display_name)
        .bind(apply.plan.as_str())
        .bind(apply.reports_per_minute.map(i64::from))
        .bind(apply.monthly_reports.map(i64::from))
        .bind(origins)
        .bind(apply.deletion_policy.as_str())
        .bind(&apply.key_rotation)
        .bind(apply.now)
        .fetch_one(&mut *tx)
        .await?;
        replace_blocklist(&mut tx, id, &apply.blocklist).await?;
        if let Some(expires_at) = apply.expire_other_keys_at {
            lock_keys(&mut tx, id).await?;
            sqlx::query(
                "UPDATE api_keys SET expires_at = $2 \
                 WHERE honeycomb_id = $1 AND (expires_at IS NULL OR expires_at > $2)",
            )
            .bind(id)
            .bind(expires_at)
            .execute(&mut *tx)
            .await?;
        }
        if let Some(key) = &apply.new_key {
            sqlx::query(
                "INSERT INTO api_keys (honeycomb_id, prefix, hash, created_at) VALUES ($1, $2, $3, $4)",
            )
            .bind(id)
            .bind(&key.prefix)
            .bind(&key.hash)
            .bind(apply.now)
            .execute(&mut *tx)
            .await?;
        }
        // Every api process drops its cached settings as this commits.
        sqlx::query(Self::NOTIFY_SETTINGS).execute(&mut *tx).await?;
        tx.commit().await?;
        self.settings_changed_here();
        Ok(id)
    }

    async fn retire_honeycomb(
        &self,
        namespace: &str,
        name: &str,
        policy: DeletionPolicy,
        now: DateTime<Utc>,
    ) -> Result<Option<Retired>> {
        let mut tx = self.pool().begin_with(Self::BEGIN_WRITE).await?;
        let found: Option<(i64, String)> =
            sqlx::query_as("SELECT id, team_id FROM honeycombs WHERE namespace = $1 AND name = $2")
                .bind(namespace)
                .bind(name)
                .fetch_optional(&mut *tx)
                .await?;
        let Some((id, team_id)) = found else {
            tx.rollback().await?;
            return Ok(None);
        };
        lock_keys(&mut tx, id).await?;
        let revoked_keys = sqlx::query(
            "UPDATE api_keys SET expires_at = $3 \
             WHERE honeycomb_id = $1 AND (expires_at IS NULL OR expires_at > $2)",
        )
        .bind(id)
        .bind(now)
        .bind(crate::keys::revoked())
        .execute(&mut *tx)
        .await?
        .rows_affected();
        let mut deleted_bichitos = 0;
        let mut team_removed = false;
        if policy == DeletionPolicy::Delete {
            // One `bug.deleted` per bichito, written by the database so that a large
            // honeycomb costs one statement.
            let insert = format!(
                "INSERT INTO outbox (team_id, event_type, payload, created_at) \
                 SELECT team_id, $2, {}, $3 FROM bichitos WHERE honeycomb_id = $1 ORDER BY id",
                events::deleted_payload_sql("id", "honeycomb_id")
            );
            deleted_bichitos = sqlx::query(AssertSqlSafe(insert))
                .bind(id)
                .bind(EventType::BugDeleted.as_str())
                .bind(now)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            super::attachments::schedule_deletions_with_bichitos(
                &mut tx,
                "a.bichito_id IN (SELECT id FROM bichitos WHERE honeycomb_id = $1)",
                id,
                now,
            )
            .await?;
            // Bichitos, labels, comments, attachments, keys, blocklist and counters go by cascade.
            sqlx::query("DELETE FROM honeycombs WHERE id = $1")
                .bind(id)
                .execute(&mut *tx)
                .await?;
            team_removed = remove_team_if_empty(&mut tx, &team_id, now).await?;
        }
        sqlx::query(Self::NOTIFY_SETTINGS).execute(&mut *tx).await?;
        tx.commit().await?;
        self.settings_changed_here();
        Ok(Some(Retired {
            honeycomb_id: id,
            revoked_keys,
            deleted_bichitos,
            team_removed,
        }))
    }

    async fn honeycomb(&self, id: i64) -> Result<Option<Honeycomb>> {
        let found: Option<Honeycomb> = sqlx::query_as(
            "SELECT id, namespace, name, team_id, display_name, plan, reports_per_minute, \
                 monthly_reports, allowed_origins, deletion_policy FROM honeycombs WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(self.pool())
        .await?;
        let Some(mut honeycomb) = found else {
            return Ok(None);
        };
        honeycomb.blocklist = sqlx::query_as(
            "SELECT field, kind, value FROM blocklist_rules WHERE honeycomb_id = $1 ORDER BY position",
        )
        .bind(id)
        .fetch_all(self.pool())
        .await?;
        Ok(Some(honeycomb))
    }

    async fn api_key_by_prefix(&self, prefix: &str) -> Result<Option<ApiKeyRecord>> {
        Ok(sqlx::query_as(
            "SELECT id, honeycomb_id, prefix, hash, created_at, expires_at FROM api_keys \
             WHERE prefix = $1",
        )
        .bind(prefix)
        .fetch_optional(self.pool())
        .await?)
    }

    async fn all_allowed_origins(&self) -> Result<Vec<String>> {
        let lists: Vec<String> = sqlx::query_scalar("SELECT allowed_origins FROM honeycombs")
            .fetch_all(self.pool())
            .await?;
        let mut all = Vec::new();
        for list in lists {
            all.extend(origins_column(&list)?);
        }
        all.sort();
        all.dedup();
        Ok(all)
    }
}

async fn replace_blocklist(conn: &mut Connection, id: i64, rules: &[BlockRule]) -> Result<()> {
    sqlx::query("DELETE FROM blocklist_rules WHERE honeycomb_id = $1")
        .bind(id)
        .execute(&mut *conn)
        .await?;
    for (position, rule) in rules.iter().enumerate() {
        let (kind, value) = block_rule_columns(rule);
        sqlx::query(
            "INSERT INTO blocklist_rules (honeycomb_id, position, field, kind, value) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(id)
        .bind(i64::try_from(position).unwrap_or(i64::MAX))
        .bind(&rule.field)
        .bind(kind)
        .bind(value)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

/// Inside a write transaction: locks `honeycomb_id`'s key rows, so that reports still storing
/// under one of them finish first and later ones see the change.
async fn lock_keys(conn: &mut Connection, honeycomb_id: i64) -> Result<()> {
    let select = format!(
        "SELECT id FROM api_keys WHERE honeycomb_id = $1{}",
        SqlStore::FOR_UPDATE
    );
    sqlx::query(AssertSqlSafe(select))
        .bind(honeycomb_id)
        .fetch_all(&mut *conn)
        .await?;
    Ok(())
}

/// Removes a team that has no honeycomb left, with its `team.removed` event; false when some
/// honeycomb still names it.
async fn remove_team_if_empty(
    tx: &mut Connection,
    team_id: &str,
    now: DateTime<Utc>,
) -> Result<bool> {
    let removed = sqlx::query(
        "DELETE FROM teams WHERE id = $1 \
         AND NOT EXISTS (SELECT 1 FROM honeycombs WHERE team_id = $1)",
    )
    .bind(team_id)
    .execute(&mut *tx)
    .await?
    .rows_affected()
        > 0;
    if removed {
        sqlx::query(
            "INSERT INTO outbox (team_id, event_type, payload, created_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(team_id)
        .bind(EventType::TeamRemoved.as_str())
        .bind(events::team_removed_payload(team_id))
        .bind(now)
        .execute(&mut *tx)
        .await?;
    }
    Ok(removed)
}
