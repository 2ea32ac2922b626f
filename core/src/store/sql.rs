//! The store's SQL, written once for both backends.
//!
//! Postgres and SQLite accept the same `$N` placeholders, `RETURNING` and `ON CONFLICT`, so
//! every statement below runs unchanged on both; only the pool type, the row type and the
//! statement that opens a write transaction differ. A macro instantiates this implementation
//! for each backend (sqlx's generic bounds over `Database` would be longer than the code).

use crate::attachment::ImageType;
use crate::model::{ApiKeyRecord, BlockMatch, BlockRule, Severity, Status};
use crate::{Error, Result};
use serde_json::value::RawValue;

pub(super) const BICHITO_COLUMNS: &str = "id, honeycomb_id, team_id, title, description, status, severity, \
     environment, app_version, stack_trace, url, user_agent, reporter_email, reporter_identifier, \
     extra, assignee, duplicate_of, created_at, updated_at";

pub(super) const ATTACHMENT_COLUMNS: &str = "bichito_id, object_key, filename, content_type, content_length, \
     created_at, upload_expires_at, uploaded_at, rejection";

pub(super) fn image_type(value: &str) -> Result<ImageType> {
    ImageType::parse(value)
        .ok_or_else(|| Error::Corrupt(format!("attachment content type {value:?}")))
}

/// The later of two instants: an upload object may be written until its URL expires, so it is
/// deleted no earlier than that.
pub(super) fn not_before_expiry(
    now: chrono::DateTime<chrono::Utc>,
    expires: chrono::DateTime<chrono::Utc>,
) -> chrono::DateTime<chrono::Utc> {
    now.max(expires)
}

pub(super) fn severity(value: &str) -> Result<Severity> {
    Severity::parse(value).ok_or_else(|| Error::Corrupt(format!("severity {value:?}")))
}

pub(super) fn status(value: &str) -> Result<Status> {
    Status::parse(value).ok_or_else(|| Error::Corrupt(format!("status {value:?}")))
}

pub(super) fn raw_json(value: Option<String>) -> Result<Option<Box<RawValue>>> {
    value
        .map(|text| {
            RawValue::from_string(text).map_err(|err| Error::Corrupt(format!("stored JSON: {err}")))
        })
        .transpose()
}

pub(super) fn block_rule(field: String, kind: &str, value: String) -> Result<BlockRule> {
    let matcher = match kind {
        "pattern" => BlockMatch::Pattern(value),
        "contains" => BlockMatch::Contains(value),
        other => return Err(Error::Corrupt(format!("blocklist rule kind {other:?}"))),
    };
    Ok(BlockRule { field, matcher })
}

pub(super) fn block_rule_parts(rule: &BlockRule) -> (&'static str, &str) {
    match &rule.matcher {
        BlockMatch::Pattern(value) => ("pattern", value),
        BlockMatch::Contains(value) => ("contains", value),
    }
}

pub(super) fn origins(json: &str) -> Result<Vec<String>> {
    serde_json::from_str(json).map_err(|err| Error::Corrupt(format!("allowed origins: {err}")))
}

pub(super) fn key_from_parts(
    id: i64,
    honeycomb_id: i64,
    prefix: String,
    hash: String,
    created_at: chrono::DateTime<chrono::Utc>,
    expires_at: Option<chrono::DateTime<chrono::Utc>>,
) -> ApiKeyRecord {
    ApiKeyRecord {
        id,
        honeycomb_id,
        prefix,
        hash,
        created_at,
        expires_at,
    }
}

/// The migrator of one backend, from its embedded `(version, description, sql)` files.
pub(super) fn migrator<const N: usize>(
    files: [(i64, &'static str, &'static str); N],
) -> sqlx::migrate::Migrator {
    use sqlx::SqlSafeStr as _;
    use sqlx::migrate::{Migration, MigrationType, Migrator};
    Migrator::with_migrations(
        files
            .into_iter()
            .map(|(version, description, sql)| {
                Migration::new(
                    version,
                    description.into(),
                    MigrationType::Simple,
                    sqlx::AssertSqlSafe(sql).into_sql_str(),
                    false,
                )
            })
            .collect(),
    )
}

pub(super) fn u32_column(value: Option<i64>) -> Option<u32> {
    value.and_then(|value| u32::try_from(value).ok())
}

/// Implements [`super::Store`] for `$store`, a struct with a `pool: sqlx::Pool<$db>` field.
macro_rules! impl_sql_store {
    (
        $store:ty,
        $db:ty,
        $row:ty,
        begin_write = $begin_write:expr,
        for_update = $for_update:expr,
        for_key_share = $for_key_share:expr,
        notify_settings = $notify_settings:literal,
        phantom_id = $phantom_id:expr,
        phantom_seed = $phantom_seed:expr,
        one_statement_insert = $one_statement_insert:expr,
        ids_in_json_array = $ids_in_json_array:literal
    ) => {
        use $crate::attachment::{self, Attachment, AttachmentRecord, ObjectDeletion};
        use $crate::events::{self, EventType, OutboxEvent};
        use $crate::model::{ApiKeyRecord, Bichito, BugPatch, BugQuery, Comment, Honeycomb, NewBichito, Status};
        use $crate::spec::{DeletionPolicy, Plan};
        use $crate::store::insert_batch::BatchError;
        use $crate::store::sql::*;
        use $crate::store::{
            HoneycombApply, HoneycombKeyState, IdempotencyClaim, Inserted, RateGrant, Retired, StoredResponse,
        };
        use $crate::{Error, Result};
        use chrono::{DateTime, Utc};
        use sqlx::{AssertSqlSafe, Row};

        impl $store {
            fn bichito_from_row(row: &$row, labels: Vec<String>, attachment: Option<Attachment>) -> Result<Bichito> {
                Ok(Bichito {
                    id: row.try_get("id")?,
                    project_id: row.try_get("honeycomb_id")?,
                    team_id: row.try_get("team_id")?,
                    title: row.try_get("title")?,
                    description: row.try_get("description")?,
                    status: status(row.try_get("status")?)?,
                    severity: severity(row.try_get("severity")?)?,
                    environment: row.try_get("environment")?,
                    app_version: row.try_get("app_version")?,
                    stack_trace: row.try_get("stack_trace")?,
                    url: row.try_get("url")?,
                    user_agent: row.try_get("user_agent")?,
                    reporter_email: row.try_get("reporter_email")?,
                    reporter_identifier: row.try_get("reporter_identifier")?,
                    extra: raw_json(row.try_get("extra")?)?,
                    assignee: row.try_get("assignee")?,
                    labels,
                    duplicate_of: row.try_get("duplicate_of")?,
                    attachment,
                    created_at: row.try_get("created_at")?,
                    updated_at: row.try_get("updated_at")?,
                })
            }

            fn key_from_row(row: &$row) -> Result<ApiKeyRecord> {
                Ok(key_from_parts(
                    row.try_get("id")?,
                    row.try_get("honeycomb_id")?,
                    row.try_get("prefix")?,
                    row.try_get("hash")?,
                    row.try_get("created_at")?,
                    row.try_get("expires_at")?,
                ))
            }

            fn attachment_from_row(row: &$row) -> Result<AttachmentRecord> {
                Ok(AttachmentRecord {
                    bichito_id: row.try_get("bichito_id")?,
                    key: row.try_get("object_key")?,
                    filename: row.try_get("filename")?,
                    content_type: image_type(row.try_get("content_type")?)?,
                    content_length: row.try_get("content_length")?,
                    created_at: row.try_get("created_at")?,
                    upload_expires_at: row.try_get("upload_expires_at")?,
                    uploaded_at: row.try_get("uploaded_at")?,
                    rejection: row.try_get("rejection")?,
                })
            }

            /// Uploaded attachments of several bichitos at once.
            async fn attachments_of(&self, ids: &[i64]) -> Result<std::collections::HashMap<i64, Attachment>> {
                let mut attachments = std::collections::HashMap::new();
                if ids.is_empty() {
                    return Ok(attachments);
                }
                let mut sql = sqlx::QueryBuilder::<$db>::new(format!(
                    "SELECT {ATTACHMENT_COLUMNS} FROM attachments WHERE uploaded_at IS NOT NULL AND bichito_id IN ("
                ));
                let mut list = sql.separated(", ");
                for id in ids {
                    list.push_bind(*id);
                }
                sql.push(")");
                for row in sql.build().fetch_all(&self.pool).await? {
                    let record = Self::attachment_from_row(&row)?;
                    if let Some(public) = record.public() {
                        attachments.insert(record.bichito_id, public);
                    }
                }
                Ok(attachments)
            }

            /// A bichito read inside a write transaction (locked on Postgres).
            async fn bichito_for_update(conn: &mut <$db as sqlx::Database>::Connection, id: i64) -> Result<Option<Bichito>> {
                let select = format!("SELECT {BICHITO_COLUMNS} FROM bichitos WHERE id = $1{}", $for_update);
                let Some(row) = sqlx::query(AssertSqlSafe(select)).bind(id).fetch_optional(&mut *conn).await? else {
                    return Ok(None);
                };
                let labels = sqlx::query("SELECT label FROM bichito_labels WHERE bichito_id = $1 ORDER BY position")
                    .bind(id)
                    .fetch_all(&mut *conn)
                    .await?
                    .iter()
                    .map(|row| row.try_get("label"))
                    .collect::<std::result::Result<Vec<String>, _>>()?;
                let attachment = match sqlx::query(AssertSqlSafe(format!("SELECT {ATTACHMENT_COLUMNS} FROM attachments WHERE bichito_id = $1")))
                    .bind(id)
                    .fetch_optional(&mut *conn)
                    .await?
                {
                    Some(row) => Self::attachment_from_row(&row)?.public(),
                    None => None,
                };
                Self::bichito_from_row(&row, labels, attachment).map(Some)
            }

            /// `insert_bichito` without an idempotency claim, as one statement (so one round trip
            /// and no explicit transaction): the key check, the usage charge, the bichito and its
            /// `bug.created` event, whose payload is the canonical JSON with the new id spliced in
            /// front. The key's row is share-locked, so a revocation committing meanwhile either
            /// waits for this report or is seen by it.
            async fn insert_in_one_statement(&self, report: &NewBichito, monthly_cap: Option<u32>) -> Result<Inserted> {
                let rest = payload_tail(&report.clone().into_bichito(0))?;
                let query = sqlx::query(
                    "WITH valid_key AS MATERIALIZED ( \
                         SELECT 1 FROM api_keys WHERE id = $21 AND (expires_at IS NULL OR expires_at > $15) FOR KEY SHARE), \
                     keyed AS MATERIALIZED (SELECT $21::bigint IS NULL OR EXISTS (SELECT 1 FROM valid_key) AS ok), \
                     charged AS ( \
                         INSERT INTO usage_counters (honeycomb_id, period, reports) \
                         SELECT $1, $16, 1 WHERE $17 AND (SELECT ok FROM keyed) \
                         ON CONFLICT (honeycomb_id, period) DO UPDATE SET reports = usage_counters.reports + 1 \
                         WHERE usage_counters.reports < $18 RETURNING 1), \
                     stored AS ( \
                         INSERT INTO bichitos (honeycomb_id, team_id, title, description, status, severity, environment, \
                             app_version, stack_trace, url, user_agent, reporter_email, reporter_identifier, extra, \
                             created_at, updated_at) \
                         SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $15 \
                         WHERE (SELECT ok FROM keyed) AND (NOT $17 OR EXISTS (SELECT 1 FROM charged)) RETURNING id), \
                     event AS ( \
                         INSERT INTO outbox (team_id, event_type, payload, created_at) \
                         SELECT $2, $19, '{\"id\":' || id || $20, $15 FROM stored) \
                     SELECT (SELECT id FROM stored) AS id, (SELECT ok FROM keyed) AS key_valid",
                );
                let row = bind_report(query, report)
                .bind(report.created_at.format("%Y-%m").to_string())
                .bind(monthly_cap.is_some())
                .bind(monthly_cap.map_or(i64::MAX, i64::from))
                .bind(EventType::BugCreated.as_str())
                .bind(&rest)
                .bind(report.api_key_id)
                .fetch_one(&self.pool)
                .await?;
                if !row.try_get::<bool, _>("key_valid")? {
                    return Ok(Inserted::KeyRevoked);
                }
                match row.try_get::<Option<i64>, _>("id")? {
                    Some(id) => Ok(Inserted::Stored(Box::new(report.clone().into_bichito(id)))),
                    None => Ok(Inserted::OverCap),
                }
            }

            /// Inside a write transaction: locks `honeycomb_id`'s key rows, so that reports still
            /// storing under one of them finish first and later ones see the change.
            async fn lock_keys(conn: &mut <$db as sqlx::Database>::Connection, honeycomb_id: i64) -> Result<()> {
                let select = format!("SELECT id FROM api_keys WHERE honeycomb_id = $1{}", $for_update);
                sqlx::query(AssertSqlSafe(select)).bind(honeycomb_id).fetch_all(&mut *conn).await?;
                Ok(())
            }

            fn stored_response(row: &$row) -> Result<StoredResponse> {
                let status: i64 = row.try_get("status")?;
                Ok(StoredResponse {
                    request_hash: row.try_get("request_hash")?,
                    status: u16::try_from(status).map_err(|_| Error::Corrupt(format!("status {status}")))?,
                    body: row.try_get("response")?,
                })
            }

            /// Labels of several bichitos at once, in their stored order.
            async fn labels_of(&self, ids: Vec<i64>) -> Result<std::collections::HashMap<i64, Vec<String>>> {
                let mut labels: std::collections::HashMap<i64, Vec<String>> = std::collections::HashMap::new();
                if ids.is_empty() {
                    return Ok(labels);
                }
                let mut sql = sqlx::QueryBuilder::<$db>::new("SELECT bichito_id, label FROM bichito_labels WHERE bichito_id IN (");
                let mut list = sql.separated(", ");
                for id in ids {
                    list.push_bind(id);
                }
                sql.push(") ORDER BY bichito_id, position");
                for row in sql.build().fetch_all(&self.pool).await? {
                    labels.entry(row.try_get("bichito_id")?).or_default().push(row.try_get("label")?);
                }
                Ok(labels)
            }

            async fn fetch_stored_response(
                &self,
                honeycomb_id: i64,
                key: &str,
                not_before: DateTime<Utc>,
            ) -> Result<Option<StoredResponse>> {
                let row = sqlx::query(
                    "SELECT request_hash, status, response FROM idempotency_keys \
                     WHERE honeycomb_id = $1 AND key = $2 AND created_at >= $3",
                )
                .bind(honeycomb_id)
                .bind(key)
                .bind(not_before)
                .fetch_optional(&self.pool)
                .await?;
                row.as_ref().map(Self::stored_response).transpose()
            }
        }

        #[async_trait::async_trait]
        impl $crate::store::Store for $store {
            fn backend(&self) -> &'static str {
                Self::BACKEND
            }

            async fn migrate(&self) -> Result<()> {
                Self::migrator().run(&self.pool).await?;
                Ok(())
            }

            async fn settings_version(&self) -> Result<u64> {
                self.current_settings_version().await
            }

            async fn ping(&self) -> Result<()> {
                sqlx::query("SELECT 1").execute(&self.pool).await?;
                Ok(())
            }

            async fn honeycomb_key_state(&self, namespace: &str, name: &str) -> Result<Option<HoneycombKeyState>> {
                let Some(row) = sqlx::query("SELECT id, key_rotation FROM honeycombs WHERE namespace = $1 AND name = $2")
                    .bind(namespace)
                    .bind(name)
                    .fetch_optional(&self.pool)
                    .await?
                else {
                    return Ok(None);
                };
                let id: i64 = row.try_get("id")?;
                let rows = sqlx::query(
                    "SELECT id, honeycomb_id, prefix, hash, created_at, expires_at FROM api_keys \
                     WHERE honeycomb_id = $1 ORDER BY id DESC",
                )
                .bind(id)
                .fetch_all(&self.pool)
                .await?;
                Ok(Some(HoneycombKeyState {
                    id,
                    key_rotation: row.try_get("key_rotation")?,
                    keys: rows.iter().map(Self::key_from_row).collect::<Result<_>>()?,
                }))
            }

            async fn apply_honeycomb(&self, apply: &HoneycombApply) -> Result<i64> {
                let origins = serde_json::to_string(&apply.allowed_origins)
                    .map_err(|err| Error::Corrupt(err.to_string()))?;
                let mut tx = self.pool.begin_with($begin_write).await?;
                sqlx::query("INSERT INTO teams (id, created_at) VALUES ($1, $2) ON CONFLICT (id) DO NOTHING")
                    .bind(&apply.team_id)
                    .bind(apply.now)
                    .execute(&mut *tx)
                    .await?;
                let id: i64 = sqlx::query(
                    "INSERT INTO honeycombs (namespace, name, team_id, display_name, plan, reports_per_minute, \
                         monthly_reports, allowed_origins, deletion_policy, key_rotation, created_at, updated_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $11) \
                     ON CONFLICT (namespace, name) DO UPDATE SET team_id = excluded.team_id, \
                         display_name = excluded.display_name, plan = excluded.plan, \
                         reports_per_minute = excluded.reports_per_minute, monthly_reports = excluded.monthly_reports, \
                         allowed_origins = excluded.allowed_origins, deletion_policy = excluded.deletion_policy, \
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
                .await?
                .try_get("id")?;
                sqlx::query("DELETE FROM blocklist_rules WHERE honeycomb_id = $1")
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
                for (position, rule) in apply.blocklist.iter().enumerate() {
                    let (kind, value) = block_rule_parts(rule);
                    sqlx::query(
                        "INSERT INTO blocklist_rules (honeycomb_id, position, field, kind, value) VALUES ($1, $2, $3, $4, $5)",
                    )
                    .bind(id)
                    .bind(i64::try_from(position).unwrap_or(i64::MAX))
                    .bind(&rule.field)
                    .bind(kind)
                    .bind(value)
                    .execute(&mut *tx)
                    .await?;
                }
                if let Some(expires_at) = apply.expire_other_keys_at {
                    Self::lock_keys(&mut *tx, id).await?;
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
                    sqlx::query("INSERT INTO api_keys (honeycomb_id, prefix, hash, created_at) VALUES ($1, $2, $3, $4)")
                        .bind(id)
                        .bind(&key.prefix)
                        .bind(&key.hash)
                        .bind(apply.now)
                        .execute(&mut *tx)
                        .await?;
                }
                // Every api process drops its cached settings as this commits.
                sqlx::query($notify_settings).execute(&mut *tx).await?;
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
                let mut tx = self.pool.begin_with($begin_write).await?;
                let Some(row) = sqlx::query("SELECT id FROM honeycombs WHERE namespace = $1 AND name = $2")
                    .bind(namespace)
                    .bind(name)
                    .fetch_optional(&mut *tx)
                    .await?
                else {
                    tx.rollback().await?;
                    return Ok(None);
                };
                let id: i64 = row.try_get("id")?;
                Self::lock_keys(&mut *tx, id).await?;
                let revoked_keys = sqlx::query(
                    "UPDATE api_keys SET expires_at = $3 \
                     WHERE honeycomb_id = $1 AND (expires_at IS NULL OR expires_at > $2)",
                )
                .bind(id)
                .bind(now)
                .bind($crate::keys::revoked())
                .execute(&mut *tx)
                .await?
                .rows_affected();
                let mut deleted_bichitos = 0;
                if policy == DeletionPolicy::Delete {
                    // One `bug.deleted` per bichito, shaped exactly like `events::deleted_payload`,
                    // written by the database so that a large honeycomb costs one statement.
                    deleted_bichitos = sqlx::query(
                        "INSERT INTO outbox (team_id, event_type, payload, created_at) \
                         SELECT team_id, $2, '{\"bug_id\":' || id || ',\"project_id\":' || honeycomb_id || '}', $3 \
                         FROM bichitos WHERE honeycomb_id = $1 ORDER BY id",
                    )
                    .bind(id)
                    .bind(EventType::BugDeleted.as_str())
                    .bind(now)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                    schedule_attachment_deletions(&mut *tx, "a.bichito_id IN (SELECT id FROM bichitos WHERE honeycomb_id = $1)", id, now).await?;
                    // Bichitos, labels, comments, attachments, keys, blocklist and counters go by cascade.
                    sqlx::query("DELETE FROM honeycombs WHERE id = $1")
                        .bind(id)
                        .execute(&mut *tx)
                        .await?;
                }
                sqlx::query($notify_settings).execute(&mut *tx).await?;
                tx.commit().await?;
                self.settings_changed_here();
                Ok(Some(Retired {
                    honeycomb_id: id,
                    revoked_keys,
                    deleted_bichitos,
                }))
            }

            async fn honeycomb(&self, id: i64) -> Result<Option<Honeycomb>> {
                let Some(row) = sqlx::query(
                    "SELECT id, namespace, name, team_id, display_name, plan, reports_per_minute, monthly_reports, \
                         allowed_origins, deletion_policy FROM honeycombs WHERE id = $1",
                )
                .bind(id)
                .fetch_optional(&self.pool)
                .await?
                else {
                    return Ok(None);
                };
                let rules = sqlx::query("SELECT field, kind, value FROM blocklist_rules WHERE honeycomb_id = $1 ORDER BY position")
                    .bind(id)
                    .fetch_all(&self.pool)
                    .await?
                    .iter()
                    .map(|rule| block_rule(rule.try_get("field")?, rule.try_get::<String, _>("kind")?.as_str(), rule.try_get("value")?))
                    .collect::<Result<Vec<_>>>()?;
                let plan: String = row.try_get("plan")?;
                let policy: String = row.try_get("deletion_policy")?;
                Ok(Some(Honeycomb {
                    id: row.try_get("id")?,
                    namespace: row.try_get("namespace")?,
                    name: row.try_get("name")?,
                    team_id: row.try_get("team_id")?,
                    display_name: row.try_get("display_name")?,
                    plan: Plan::parse(&plan).ok_or_else(|| Error::Corrupt(format!("plan {plan:?}")))?,
                    reports_per_minute: u32_column(row.try_get("reports_per_minute")?),
                    monthly_reports: u32_column(row.try_get("monthly_reports")?),
                    allowed_origins: origins(row.try_get::<String, _>("allowed_origins")?.as_str())?,
                    blocklist: rules,
                    deletion_policy: if policy == "Delete" { DeletionPolicy::Delete } else { DeletionPolicy::Retain },
                }))
            }

            async fn api_key_by_prefix(&self, prefix: &str) -> Result<Option<ApiKeyRecord>> {
                let row = sqlx::query(
                    "SELECT id, honeycomb_id, prefix, hash, created_at, expires_at FROM api_keys WHERE prefix = $1",
                )
                .bind(prefix)
                .fetch_optional(&self.pool)
                .await?;
                row.as_ref().map(Self::key_from_row).transpose()
            }

            async fn all_allowed_origins(&self) -> Result<Vec<String>> {
                let rows = sqlx::query("SELECT allowed_origins FROM honeycombs").fetch_all(&self.pool).await?;
                let mut all = Vec::new();
                for row in rows {
                    all.extend(origins(row.try_get::<String, _>("allowed_origins")?.as_str())?);
                }
                all.sort();
                all.dedup();
                Ok(all)
            }

            async fn take_rate(&self, bucket: &str, want: i64, limit: i64, now_ms: i64, window_ms: i64) -> Result<RateGrant> {
                // `last_grant` carries what this statement took out to RETURNING, which sees only
                // the new row; the row is locked for the statement, so it is this one's.
                let row = sqlx::query(
                    "INSERT INTO rate_limits (bucket, window_started_ms, hits, last_grant) \
                     VALUES ($1, $2, CASE WHEN $4 < $5 THEN $4 ELSE $5 END, CASE WHEN $4 < $5 THEN $4 ELSE $5 END) \
                     ON CONFLICT (bucket) DO UPDATE SET \
                         window_started_ms = CASE WHEN rate_limits.window_started_ms + $3 <= $2 \
                             THEN $2 ELSE rate_limits.window_started_ms END, \
                         last_grant = CASE \
                             WHEN rate_limits.window_started_ms + $3 <= $2 THEN CASE WHEN $4 < $5 THEN $4 ELSE $5 END \
                             WHEN rate_limits.hits >= $5 THEN 0 \
                             WHEN $5 - rate_limits.hits < $4 THEN $5 - rate_limits.hits \
                             ELSE $4 END, \
                         hits = CASE \
                             WHEN rate_limits.window_started_ms + $3 <= $2 THEN CASE WHEN $4 < $5 THEN $4 ELSE $5 END \
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
                .fetch_one(&self.pool)
                .await?;
                Ok(RateGrant {
                    started_ms: row.try_get("window_started_ms")?,
                    granted: row.try_get("last_grant")?,
                    hits: row.try_get("hits")?,
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
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            async fn insert_bichito(
                &self,
                report: &NewBichito,
                monthly_cap: Option<u32>,
                idempotency: Option<&IdempotencyClaim>,
            ) -> Result<Inserted> {
                if $one_statement_insert && idempotency.is_none() {
                    // Uncapped reports go with whatever else is being stored; capped ones are
                    // charged one by one against their honeycomb's counter.
                    if let (Some(batcher), None) = (self.insert_batcher(), monthly_cap) {
                        let bichito = report.clone().into_bichito(0);
                        let tail = payload_tail(&bichito)?;
                        match batcher.insert(bichito, tail, report.api_key_id).await {
                            Ok(Some(bichito)) => return Ok(Inserted::Stored(Box::new(bichito))),
                            Ok(None) => return Ok(Inserted::KeyRevoked),
                            Err(BatchError::Refused) => {}
                            Err(BatchError::Unavailable(reason)) => {
                                return Err(Error::WriteOutcomeUnknown(reason));
                            }
                        }
                    }
                    return self.insert_in_one_statement(report, monthly_cap).await;
                }
                let mut tx = self.pool.begin_with($begin_write).await?;
                // Stored only while its key is valid, checked (and the key share-locked) by the
                // statement that stores it.
                let insert = format!(
                    "INSERT INTO bichitos (honeycomb_id, team_id, title, description, status, severity, environment, \
                         app_version, stack_trace, url, user_agent, reporter_email, reporter_identifier, extra, \
                         created_at, updated_at) \
                     SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $15 \
                     WHERE $16 IS NULL OR EXISTS (SELECT 1 FROM api_keys WHERE id = $16 \
                         AND (expires_at IS NULL OR expires_at > $15){}) \
                     RETURNING id",
                    $for_key_share
                );
                let stored = bind_report(sqlx::query(AssertSqlSafe(insert)), report)
                    .bind(report.api_key_id)
                    .fetch_optional(&mut *tx)
                    .await?;
                let Some(stored) = stored else {
                    tx.rollback().await?;
                    return Ok(Inserted::KeyRevoked);
                };
                let id: i64 = stored.try_get("id")?;
                let bichito = report.clone().into_bichito(id);
                let body = serde_json::to_string(&bichito).map_err(|err| Error::Corrupt(err.to_string()))?;
                push_event(&mut *tx, &report.team_id, EventType::BugCreated, &body, report.created_at).await?;
                if let Some(claim) = idempotency {
                    let response = StoredResponse { request_hash: claim.request_hash.clone(), status: 201, body };
                    if !claim_key(&mut *tx, claim, &response).await? {
                        tx.rollback().await?;
                        return match self.fetch_stored_response(claim.honeycomb_id, &claim.key, claim.not_before).await? {
                            Some(existing) => Ok(Inserted::Replay(existing)),
                            None => Err(Error::Corrupt("idempotency key conflict without a record".into())),
                        };
                    }
                }
                // The usage row is one per honeycomb and month: every report of the honeycomb
                // waits for its lock. So it is counted only under a cap, and last, to hold the
                // lock for one statement and the commit.
                if let Some(cap) = monthly_cap {
                    let period = report.created_at.format("%Y-%m").to_string();
                    let charged = sqlx::query(
                        "INSERT INTO usage_counters (honeycomb_id, period, reports) VALUES ($1, $2, 1) \
                         ON CONFLICT (honeycomb_id, period) DO UPDATE SET reports = usage_counters.reports + 1 \
                         WHERE usage_counters.reports < $3 RETURNING reports",
                    )
                    .bind(report.honeycomb_id)
                    .bind(&period)
                    .bind(i64::from(cap))
                    .fetch_optional(&mut *tx)
                    .await?;
                    if charged.is_none() {
                        tx.rollback().await?;
                        return Ok(Inserted::OverCap);
                    }
                }
                tx.commit().await?;
                Ok(Inserted::Stored(Box::new(bichito)))
            }

            async fn reserve_phantom_id(&self) -> Result<i64> {
                let row = match sqlx::query($phantom_id).fetch_optional(&self.pool).await? {
                    Some(row) => row,
                    None => sqlx::query($phantom_seed).fetch_one(&self.pool).await?,
                };
                Ok(row.try_get(0)?)
            }

            async fn remember_response(
                &self,
                claim: &IdempotencyClaim,
                response: &StoredResponse,
            ) -> Result<Option<StoredResponse>> {
                let mut tx = self.pool.begin_with($begin_write).await?;
                if claim_key(&mut *tx, claim, response).await? {
                    tx.commit().await?;
                    return Ok(None);
                }
                tx.rollback().await?;
                self.fetch_stored_response(claim.honeycomb_id, &claim.key, claim.not_before).await
            }

            async fn idempotent_response(
                &self,
                honeycomb_id: i64,
                key: &str,
                not_before: DateTime<Utc>,
            ) -> Result<Option<StoredResponse>> {
                self.fetch_stored_response(honeycomb_id, key, not_before).await
            }

            async fn purge_idempotency(&self, before: DateTime<Utc>) -> Result<u64> {
                let done = sqlx::query("DELETE FROM idempotency_keys WHERE created_at < $1")
                    .bind(before)
                    .execute(&self.pool)
                    .await?;
                Ok(done.rows_affected())
            }

            async fn bichito(&self, id: i64) -> Result<Option<Bichito>> {
                let sql = format!("SELECT {BICHITO_COLUMNS} FROM bichitos WHERE id = $1");
                let Some(row) = sqlx::query(AssertSqlSafe(sql)).bind(id).fetch_optional(&self.pool).await? else {
                    return Ok(None);
                };
                let labels = self.labels_of(vec![id]).await?.remove(&id).unwrap_or_default();
                let attachment = self.attachments_of(&[id]).await?.remove(&id);
                Self::bichito_from_row(&row, labels, attachment).map(Some)
            }

            async fn list_bichitos(&self, query: &BugQuery) -> Result<Vec<Bichito>> {
                let mut sql = sqlx::QueryBuilder::<$db>::new(format!("SELECT {BICHITO_COLUMNS} FROM bichitos WHERE team_id = "));
                sql.push_bind(query.team_id.clone());
                if let Some(status) = query.status {
                    sql.push(" AND status = ").push_bind(status.as_str());
                }
                if let Some(severity) = query.severity {
                    sql.push(" AND severity = ").push_bind(severity.as_str());
                }
                if let Some(project_id) = query.project_id {
                    sql.push(" AND honeycomb_id = ").push_bind(project_id);
                }
                if let Some(assignee) = &query.assignee {
                    sql.push(" AND assignee = ").push_bind(assignee.clone());
                }
                if let Some(label) = &query.label {
                    sql.push(" AND id IN (SELECT bichito_id FROM bichito_labels WHERE label = ").push_bind(label.clone()).push(")");
                }
                if let Some(before_id) = query.before_id {
                    sql.push(" AND id < ").push_bind(before_id);
                }
                sql.push(" ORDER BY id DESC LIMIT ").push_bind(i64::from(query.limit));
                let rows = sql.build().fetch_all(&self.pool).await?;
                let ids: Vec<i64> = rows.iter().map(|row| row.try_get::<i64, _>("id")).collect::<std::result::Result<_, _>>()?;
                let mut labels = self.labels_of(ids.clone()).await?;
                let mut attachments = self.attachments_of(&ids).await?;
                rows.iter()
                    .map(|row| {
                        let id: i64 = row.try_get("id")?;
                        Self::bichito_from_row(row, labels.remove(&id).unwrap_or_default(), attachments.remove(&id))
                    })
                    .collect()
            }

            async fn update_bichito(&self, id: i64, patch: &BugPatch, now: DateTime<Utc>) -> Result<Option<Bichito>> {
                let mut tx = self.pool.begin_with($begin_write).await?;
                let Some(mut bichito) = Self::bichito_for_update(&mut *tx, id).await? else {
                    return Ok(None);
                };
                let changes = events::changes(&bichito, patch);
                if changes.is_empty() {
                    tx.rollback().await?;
                    return Ok(Some(bichito));
                }
                if let Some(status) = patch.status { bichito.status = status; }
                if let Some(severity) = patch.severity { bichito.severity = severity; }
                if let Some(assignee) = &patch.assignee { bichito.assignee = assignee.clone(); }
                if let Some(duplicate_of) = patch.duplicate_of { bichito.duplicate_of = duplicate_of; }
                bichito.updated_at = now;
                sqlx::query("UPDATE bichitos SET status = $2, severity = $3, assignee = $4, duplicate_of = $5, updated_at = $6 WHERE id = $1")
                    .bind(id)
                    .bind(bichito.status.as_str())
                    .bind(bichito.severity.as_str())
                    .bind(&bichito.assignee)
                    .bind(bichito.duplicate_of)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                if let Some(labels) = patch.labels.as_ref().filter(|_| changes.contains_key("labels")) {
                    sqlx::query("DELETE FROM bichito_labels WHERE bichito_id = $1").bind(id).execute(&mut *tx).await?;
                    for (position, label) in labels.iter().enumerate() {
                        sqlx::query("INSERT INTO bichito_labels (bichito_id, position, label) VALUES ($1, $2, $3)")
                            .bind(id)
                            .bind(i64::try_from(position).unwrap_or(i64::MAX))
                            .bind(label)
                            .execute(&mut *tx)
                            .await?;
                    }
                    bichito.labels = labels.clone();
                }
                push_event(&mut *tx, &bichito.team_id, EventType::BugUpdated, &events::updated_payload(&bichito, &changes), now).await?;
                tx.commit().await?;
                Ok(Some(bichito))
            }

            async fn add_comment(&self, bichito: &Bichito, author_id: &str, body: &str, now: DateTime<Utc>) -> Result<Comment> {
                let mut tx = self.pool.begin_with($begin_write).await?;
                let id: i64 = sqlx::query("INSERT INTO comments (bichito_id, author_id, body, created_at) VALUES ($1, $2, $3, $4) RETURNING id")
                    .bind(bichito.id)
                    .bind(author_id)
                    .bind(body)
                    .bind(now)
                    .fetch_one(&mut *tx)
                    .await?
                    .try_get("id")?;
                push_event(&mut *tx, &bichito.team_id, EventType::BugCommented, &events::commented_payload(bichito, id, author_id), now).await?;
                tx.commit().await?;
                Ok(Comment { id, bug_id: bichito.id, author_id: author_id.to_owned(), body: body.to_owned(), created_at: now })
            }

            async fn comments(&self, bug_id: i64) -> Result<Vec<Comment>> {
                sqlx::query("SELECT id, bichito_id, author_id, body, created_at FROM comments WHERE bichito_id = $1 ORDER BY id")
                    .bind(bug_id)
                    .fetch_all(&self.pool)
                    .await?
                    .iter()
                    .map(|row| {
                        Ok(Comment {
                            id: row.try_get("id")?,
                            bug_id: row.try_get("bichito_id")?,
                            author_id: row.try_get("author_id")?,
                            body: row.try_get("body")?,
                            created_at: row.try_get("created_at")?,
                        })
                    })
                    .collect()
            }

            async fn delete_bichito(&self, bichito: &Bichito, now: DateTime<Utc>) -> Result<bool> {
                let mut tx = self.pool.begin_with($begin_write).await?;
                schedule_attachment_deletions(&mut *tx, "a.bichito_id = $1", bichito.id, now).await?;
                let deleted = sqlx::query("DELETE FROM bichitos WHERE id = $1").bind(bichito.id).execute(&mut *tx).await?;
                if deleted.rows_affected() == 0 {
                    tx.rollback().await?;
                    return Ok(false);
                }
                push_event(&mut *tx, &bichito.team_id, EventType::BugDeleted, &events::deleted_payload(bichito), now).await?;
                tx.commit().await?;
                Ok(true)
            }

            async fn attachment(&self, bichito_id: i64) -> Result<Option<AttachmentRecord>> {
                let sql = format!("SELECT {ATTACHMENT_COLUMNS} FROM attachments WHERE bichito_id = $1");
                let row = sqlx::query(AssertSqlSafe(sql)).bind(bichito_id).fetch_optional(&self.pool).await?;
                row.as_ref().map(Self::attachment_from_row).transpose()
            }

            async fn attachment_by_key(&self, key: &str) -> Result<Option<AttachmentRecord>> {
                let sql = format!("SELECT {ATTACHMENT_COLUMNS} FROM attachments WHERE object_key = $1");
                let row = sqlx::query(AssertSqlSafe(sql)).bind(key).fetch_optional(&self.pool).await?;
                row.as_ref().map(Self::attachment_from_row).transpose()
            }

            async fn start_attachment(&self, record: &AttachmentRecord, replacing: Option<&str>, now: DateTime<Utc>) -> Result<bool> {
                let mut tx = self.pool.begin_with($begin_write).await?;
                if let Some(old_key) = replacing {
                    let Some(old) = sqlx::query(
                        "DELETE FROM attachments WHERE bichito_id = $1 AND object_key = $2 AND uploaded_at IS NULL \
                         RETURNING upload_expires_at",
                    )
                    .bind(record.bichito_id)
                    .bind(old_key)
                    .fetch_optional(&mut *tx)
                    .await?
                    else {
                        tx.rollback().await?;
                        return Ok(false);
                    };
                    let not_before = not_before_expiry(now, old.try_get("upload_expires_at")?);
                    schedule_deletion(&mut *tx, &attachment::upload_object(old_key), not_before).await?;
                    schedule_deletion(&mut *tx, &attachment::stored_object(old_key), not_before).await?;
                }
                let inserted = sqlx::query(
                    "INSERT INTO attachments (bichito_id, object_key, filename, content_type, content_length, created_at, upload_expires_at) \
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

            async fn stamp_attachment(&self, bichito_id: i64, key: &str, now: DateTime<Utc>) -> Result<Option<Bichito>> {
                let mut tx = self.pool.begin_with($begin_write).await?;
                let stamped = sqlx::query(
                    "UPDATE attachments SET uploaded_at = $3 \
                     WHERE bichito_id = $1 AND object_key = $2 AND uploaded_at IS NULL AND rejected_at IS NULL \
                     RETURNING upload_expires_at",
                )
                .bind(bichito_id)
                .bind(key)
                .bind(now)
                .fetch_optional(&mut *tx)
                .await?;
                let Some(stamped) = stamped else {
                    tx.rollback().await?;
                    return Ok(None);
                };
                sqlx::query("UPDATE bichitos SET updated_at = $2 WHERE id = $1")
                    .bind(bichito_id)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                let Some(bichito) = Self::bichito_for_update(&mut *tx, bichito_id).await? else {
                    tx.rollback().await?;
                    return Ok(None);
                };
                // The verified copy is all that is kept; the upload object goes once its URL is dead.
                let not_before = not_before_expiry(now, stamped.try_get("upload_expires_at")?);
                schedule_deletion(&mut *tx, &attachment::upload_object(key), not_before).await?;
                push_event(&mut *tx, &bichito.team_id, EventType::BugUpdated, &events::attached_payload(&bichito), now).await?;
                tx.commit().await?;
                Ok(Some(bichito))
            }

            async fn reject_attachment(&self, bichito_id: i64, key: &str, reason: &str, now: DateTime<Utc>) -> Result<bool> {
                let mut tx = self.pool.begin_with($begin_write).await?;
                let rejected = sqlx::query(
                    "UPDATE attachments SET rejected_at = $3, rejection = $4 \
                     WHERE bichito_id = $1 AND object_key = $2 AND uploaded_at IS NULL AND rejected_at IS NULL \
                     RETURNING upload_expires_at",
                )
                .bind(bichito_id)
                .bind(key)
                .bind(now)
                .bind(reason)
                .fetch_optional(&mut *tx)
                .await?;
                let Some(rejected) = rejected else {
                    tx.rollback().await?;
                    return Ok(false);
                };
                let not_before = not_before_expiry(now, rejected.try_get("upload_expires_at")?);
                schedule_deletion(&mut *tx, &attachment::upload_object(key), not_before).await?;
                schedule_deletion(&mut *tx, &attachment::stored_object(key), now).await?;
                tx.commit().await?;
                Ok(true)
            }

            async fn expired_uploads(&self, before: DateTime<Utc>, limit: i64) -> Result<Vec<AttachmentRecord>> {
                let sql = format!(
                    "SELECT {ATTACHMENT_COLUMNS} FROM attachments \
                     WHERE uploaded_at IS NULL AND rejected_at IS NULL AND upload_expires_at < $1 \
                     ORDER BY upload_expires_at LIMIT $2"
                );
                sqlx::query(AssertSqlSafe(sql))
                    .bind(before)
                    .bind(limit)
                    .fetch_all(&self.pool)
                    .await?
                    .iter()
                    .map(Self::attachment_from_row)
                    .collect()
            }

            async fn due_object_deletions(&self, now: DateTime<Utc>, limit: i64) -> Result<Vec<ObjectDeletion>> {
                sqlx::query("SELECT id, object FROM object_deletions WHERE not_before <= $1 ORDER BY id LIMIT $2")
                    .bind(now)
                    .bind(limit)
                    .fetch_all(&self.pool)
                    .await?
                    .iter()
                    .map(|row| Ok(ObjectDeletion { id: row.try_get("id")?, object: row.try_get("object")? }))
                    .collect()
            }

            async fn forget_object_deletions(&self, ids: &[i64]) -> Result<()> {
                if ids.is_empty() {
                    return Ok(());
                }
                let mut sql = sqlx::QueryBuilder::<$db>::new("DELETE FROM object_deletions WHERE id IN (");
                let mut list = sql.separated(", ");
                for id in ids {
                    list.push_bind(*id);
                }
                sql.push(")");
                sql.build().execute(&self.pool).await?;
                Ok(())
            }

            async fn unpublished_events(&self, limit: i64) -> Result<Vec<OutboxEvent>> {
                // The outbox queries are planned at each run (not prepared once): a plan made
                // while the table was small (a seq scan) would stay cached as it grows.
                sqlx::query("SELECT id, team_id, event_type, payload, created_at FROM outbox WHERE published_at IS NULL ORDER BY id LIMIT $1")
                    .persistent(false)
                    .bind(limit)
                    .fetch_all(&self.pool)
                    .await?
                    .iter()
                    .map(|row| {
                        let event_type: String = row.try_get("event_type")?;
                        Ok(OutboxEvent {
                            id: row.try_get("id")?,
                            team_id: row.try_get("team_id")?,
                            event_type: EventType::parse(&event_type).ok_or_else(|| Error::Corrupt(format!("event type {event_type:?}")))?,
                            payload: row.try_get("payload")?,
                            created_at: row.try_get("created_at")?,
                        })
                    })
                    .collect()
            }

            async fn mark_published(&self, ids: &[i64], now: DateTime<Utc>) -> Result<()> {
                if ids.is_empty() {
                    return Ok(());
                }
                // The ids go as one JSON array: one statement text whatever the batch's size,
                // instead of a new text (and a new parse) per list length.
                let ids = serde_json::to_string(ids).map_err(|err| Error::Corrupt(err.to_string()))?;
                sqlx::query(concat!("UPDATE outbox SET published_at = $1 WHERE id IN (", $ids_in_json_array, ")"))
                    .persistent(false)
                    .bind(now)
                    .bind(ids)
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }

            async fn purge_published_events(&self, before: DateTime<Utc>) -> Result<u64> {
                let done = sqlx::query("DELETE FROM outbox WHERE published_at IS NOT NULL AND published_at < $1")
                    .bind(before)
                    .execute(&self.pool)
                    .await?;
                Ok(done.rows_affected())
            }

            async fn outbox_backlog(&self) -> Result<i64> {
                let row = sqlx::query("SELECT COUNT(*) AS n FROM outbox WHERE published_at IS NULL")
                    .persistent(false)
                    .fetch_one(&self.pool)
                    .await?;
                Ok(row.try_get("n")?)
            }

            async fn count_bichitos(&self, honeycomb_id: i64) -> Result<i64> {
                let row = sqlx::query("SELECT COUNT(*) AS n FROM bichitos WHERE honeycomb_id = $1")
                    .bind(honeycomb_id)
                    .fetch_one(&self.pool)
                    .await?;
                Ok(row.try_get("n")?)
            }

            async fn monthly_usage(&self, honeycomb_id: i64, period: &str) -> Result<i64> {
                let row = sqlx::query("SELECT reports FROM usage_counters WHERE honeycomb_id = $1 AND period = $2")
                    .bind(honeycomb_id)
                    .bind(period)
                    .fetch_optional(&self.pool)
                    .await?;
                Ok(match row {
                    Some(row) => row.try_get("reports")?,
                    None => 0,
                })
            }
        }

        /// Writes an event to the outbox, inside the caller's transaction.
        async fn push_event(
            conn: &mut <$db as sqlx::Database>::Connection,
            team_id: &str,
            event: EventType,
            payload: &str,
            now: DateTime<Utc>,
        ) -> Result<()> {
            sqlx::query("INSERT INTO outbox (team_id, event_type, payload, created_at) VALUES ($1, $2, $3, $4)")
                .bind(team_id)
                .bind(event.as_str())
                .bind(payload)
                .bind(now)
                .execute(&mut *conn)
                .await?;
            Ok(())
        }

        /// A new report's `bug.created` payload without its opening `{"id":0`: the store splices
        /// the new id in front, so the payload is serialized before the id is known.
        fn payload_tail(template: &Bichito) -> Result<String> {
            const ID_ZERO: &str = "{\"id\":0";
            let template = serde_json::to_string(template)
                .map_err(|err| Error::Corrupt(err.to_string()))?;
            template
                .strip_prefix(ID_ZERO)
                .map(str::to_owned)
                .ok_or_else(|| Error::Corrupt("the payload does not start with its id".into()))
        }

        /// Binds a report's columns as `$1`–`$15`, in the order of `bichitos`' insert statements.
        fn bind_report<'q>(
            query: sqlx::query::Query<'q, $db, <$db as sqlx::Database>::Arguments>,
            report: &'q NewBichito,
        ) -> sqlx::query::Query<'q, $db, <$db as sqlx::Database>::Arguments> {
            query
                .bind(report.honeycomb_id)
                .bind(&report.team_id)
                .bind(&report.title)
                .bind(&report.description)
                .bind(Status::Open.as_str())
                .bind(report.severity.as_str())
                .bind(&report.environment)
                .bind(&report.app_version)
                .bind(&report.stack_trace)
                .bind(&report.url)
                .bind(&report.user_agent)
                .bind(&report.reporter_email)
                .bind(&report.reporter_identifier)
                .bind(report.extra.as_ref().map(|extra| extra.get()))
                .bind(report.created_at)
        }

        /// Schedules a storage object for deletion, inside the caller's transaction.
        async fn schedule_deletion(
            conn: &mut <$db as sqlx::Database>::Connection,
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

        /// Schedules the objects of the attachments about to be deleted with their bichitos
        /// (`filter` over `attachments a`, with `$1` bound to `id`): a verified copy at once, an
        /// upload object still writable when its URL expires. Rejected records had theirs
        /// scheduled when they were refused, an uploaded one its upload object when stamped.
        async fn schedule_attachment_deletions(
            conn: &mut <$db as sqlx::Database>::Connection,
            filter: &str,
            id: i64,
            now: DateTime<Utc>,
        ) -> Result<()> {
            let sql = format!(
                "INSERT INTO object_deletions (object, not_before) \
                 SELECT 'attachments/' || a.object_key, $2 FROM attachments a WHERE {filter} AND a.rejected_at IS NULL \
                 UNION ALL \
                 SELECT 'uploads/' || a.object_key, CASE WHEN a.upload_expires_at > $2 THEN a.upload_expires_at ELSE $2 END \
                 FROM attachments a WHERE {filter} AND a.uploaded_at IS NULL AND a.rejected_at IS NULL"
            );
            sqlx::query(AssertSqlSafe(sql)).bind(id).bind(now).execute(&mut *conn).await?;
            Ok(())
        }

        /// Claims an idempotency key inside a transaction; false when a live record holds it.
        async fn claim_key(
            conn: &mut <$db as sqlx::Database>::Connection,
            claim: &IdempotencyClaim,
            response: &StoredResponse,
        ) -> Result<bool> {
            let claimed = sqlx::query(
                "INSERT INTO idempotency_keys (honeycomb_id, key, request_hash, status, response, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6) \
                 ON CONFLICT (honeycomb_id, key) DO UPDATE SET request_hash = excluded.request_hash, \
                     status = excluded.status, response = excluded.response, created_at = excluded.created_at \
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
    };
}

pub(super) use impl_sql_store;
