//! Reports: storing them (in a transaction, the path every backend can take) and reading
//! bichitos back with their labels and attachments.

use super::outbox::push_event;
use super::rows::{ATTACHMENT_COLUMNS, BICHITO_COLUMNS};
use super::{Connection, Db, Dialect, SqlStore};
use crate::attachment::{Attachment, AttachmentRecord};
use crate::events::{self, EventType};
use crate::model::{Bichito, BichitoQuery, NewBichito, Status};
use crate::store::{IdempotencyClaim, IdempotencyStore, Inserted, ReportStore, StoredResponse};
use crate::{Error, Result};
use sqlx::AssertSqlSafe;
use std::collections::HashMap;
use std::sync::LazyLock;

/// Stores a report (`$1`–`$15`, see [`bind_report`]) only while its key (`$16`) is valid,
/// checked (and the key share-locked) by the statement that stores it. Built once per backend:
/// it runs for every report SQLite stores.
static INSERT_REPORT: LazyLock<String> = LazyLock::new(|| {
    format!(
        "INSERT INTO bichitos (honeycomb_id, team_id, title, description, status, severity, \
             environment, app_version, stack_trace, url, user_agent, reporter_email, \
             reporter_identifier, extra, created_at, updated_at) \
         SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $15 \
         WHERE $16 IS NULL OR EXISTS (SELECT 1 FROM api_keys WHERE id = $16 \
             AND (expires_at IS NULL OR expires_at > $15){}) \
         RETURNING id",
        SqlStore::FOR_KEY_SHARE
    )
});

/// A query with a report's columns bound as `$1`–`$15`, in the order of the insert statements.
pub(super) fn bind_report<'q>(
    query: sqlx::query::Query<'q, Db, <Db as sqlx::Database>::Arguments>,
    report: &'q NewBichito,
) -> sqlx::query::Query<'q, Db, <Db as sqlx::Database>::Arguments> {
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

#[async_trait::async_trait]
impl ReportStore for SqlStore {
    async fn insert_bichito(
        &self,
        report: &NewBichito,
        monthly_cap: Option<u32>,
        idempotency: Option<&IdempotencyClaim>,
    ) -> Result<Inserted> {
        // How, is the backend's to say.
        self.write_report(report, monthly_cap, idempotency).await
    }

    /// Takes an id from the bichito sequence without storing anything.
    async fn reserve_phantom_id(&self) -> Result<i64> {
        let next: Option<i64> = sqlx::query_scalar(Self::NEXT_ID)
            .fetch_optional(self.pool())
            .await?;
        match next {
            Some(id) => Ok(id),
            None => Ok(sqlx::query_scalar(Self::FIRST_ID)
                .fetch_one(self.pool())
                .await?),
        }
    }

    async fn bichito(&self, id: i64) -> Result<Option<Bichito>> {
        let select = format!("SELECT {BICHITO_COLUMNS} FROM bichitos WHERE id = $1");
        let found: Option<Bichito> = sqlx::query_as(AssertSqlSafe(select))
            .bind(id)
            .fetch_optional(self.pool())
            .await?;
        let Some(mut bichito) = found else {
            return Ok(None);
        };
        self.complete(std::slice::from_mut(&mut bichito)).await?;
        Ok(Some(bichito))
    }

    async fn list_bichitos(&self, query: &BichitoQuery) -> Result<Vec<Bichito>> {
        let mut sql = sqlx::QueryBuilder::<Db>::new(format!(
            "SELECT {BICHITO_COLUMNS} FROM bichitos WHERE team_id = "
        ));
        sql.push_bind(query.team_id.clone());
        if let Some(status) = query.status {
            sql.push(" AND status = ").push_bind(status.as_str());
        }
        if let Some(severity) = query.severity {
            sql.push(" AND severity = ").push_bind(severity.as_str());
        }
        if let Some(honeycomb_id) = query.honeycomb_id {
            sql.push(" AND honeycomb_id = ").push_bind(honeycomb_id);
        }
        if let Some(assignee) = &query.assignee {
            sql.push(" AND assignee = ").push_bind(assignee.clone());
        }
        if let Some(label) = &query.label {
            sql.push(" AND id IN (SELECT bichito_id FROM bichito_labels WHERE label = ")
                .push_bind(label.clone())
                .push(")");
        }
        if let Some(text) = &query.title_contains {
            sql.push(Self::TITLE_LIKE)
                .push_bind(like_pattern(text))
                .push(" ESCAPE '\\'");
        }
        if let Some(before_id) = query.before_id {
            sql.push(" AND id < ").push_bind(before_id);
        }
        sql.push(" ORDER BY id DESC LIMIT ")
            .push_bind(i64::from(query.limit));
        let mut page: Vec<Bichito> = sql.build_query_as().fetch_all(self.pool()).await?;
        self.complete(&mut page).await?;
        Ok(page)
    }
}

impl SqlStore {
    /// Stores a report with its `bug.created` event in one transaction: the key check, the
    /// idempotency claim and the monthly charge each refuse it, leaving nothing written.
    pub(super) async fn insert_in_transaction(
        &self,
        report: &NewBichito,
        monthly_cap: Option<u32>,
        idempotency: Option<&IdempotencyClaim>,
    ) -> Result<Inserted> {
        let mut tx = self.pool().begin_with(Self::BEGIN_WRITE).await?;
        let stored: Option<i64> = bind_report(sqlx::query(INSERT_REPORT.as_str()), report)
            .bind(report.api_key_id)
            .fetch_optional(&mut *tx)
            .await?
            .map(|row| sqlx::Row::try_get(&row, "id"))
            .transpose()?;
        let Some(id) = stored else {
            tx.rollback().await?;
            return Ok(Inserted::KeyRevoked);
        };
        let bichito = report.clone().into_bichito(id);
        let body = events::created_payload(&bichito)?;
        push_event(
            &mut tx,
            &bichito,
            EventType::BugCreated,
            &body,
            report.created_at,
        )
        .await?;
        if let Some(claim) = idempotency {
            let response = StoredResponse {
                request_hash: claim.request_hash.clone(),
                status: 201,
                body,
            };
            if !super::idempotency::claim_key(&mut tx, claim, &response).await? {
                tx.rollback().await?;
                return match self
                    .idempotent_response(claim.honeycomb_id, &claim.key, claim.not_before)
                    .await?
                {
                    Some(existing) => Ok(Inserted::Replay(existing)),
                    None => Err(Error::Corrupt(
                        "idempotency key conflict without a record".into(),
                    )),
                };
            }
        }
        // The usage row is one per honeycomb and month: every report of the honeycomb waits
        // for its lock. So it is counted only under a cap, and last, to hold the lock for one
        // statement and the commit.
        if let Some(cap) = monthly_cap
            && !super::limits::charge_report(&mut tx, report, cap).await?
        {
            tx.rollback().await?;
            return Ok(Inserted::OverCap);
        }
        tx.commit().await?;
        Ok(Inserted::Stored(Box::new(bichito)))
    }

    /// Fills in the labels and the uploaded attachments of bichitos read from their table.
    async fn complete(&self, bichitos: &mut [Bichito]) -> Result<()> {
        if bichitos.is_empty() {
            return Ok(());
        }
        let ids = || bichitos.iter().map(|bichito| bichito.id);
        let mut labels: HashMap<i64, Vec<String>> = HashMap::new();
        let rows: Vec<(i64, String)> = in_ids(
            "SELECT bichito_id, label FROM bichito_labels WHERE bichito_id IN (",
            ids(),
            ") ORDER BY bichito_id, position",
        )
        .build_query_as()
        .fetch_all(self.pool())
        .await?;
        for (id, label) in rows {
            labels.entry(id).or_default().push(label);
        }
        let records: Vec<AttachmentRecord> = in_ids(
            &format!(
                "SELECT {ATTACHMENT_COLUMNS} FROM attachments \
                 WHERE uploaded_at IS NOT NULL AND bichito_id IN ("
            ),
            ids(),
            ")",
        )
        .build_query_as()
        .fetch_all(self.pool())
        .await?;
        let mut attachments: HashMap<i64, Attachment> = records
            .iter()
            .filter_map(|record| Some((record.bichito_id, record.public()?)))
            .collect();
        let counts: HashMap<i64, i64> = in_ids(
            "SELECT bichito_id, COUNT(*) FROM comments WHERE bichito_id IN (",
            ids(),
            ") GROUP BY bichito_id",
        )
        .build_query_as::<(i64, i64)>()
        .fetch_all(self.pool())
        .await?
        .into_iter()
        .collect();
        for bichito in bichitos {
            bichito.labels = labels.remove(&bichito.id).unwrap_or_default();
            bichito.attachment = attachments.remove(&bichito.id);
            bichito.comment_count = Some(counts.get(&bichito.id).copied().unwrap_or(0));
        }
        Ok(())
    }
}

/// A `LIKE` pattern matching titles that contain `text` as typed: its `%`, `_` and `\\` are
/// escaped, so a search for "100%" finds only that.
fn like_pattern(text: &str) -> String {
    let mut pattern = String::with_capacity(text.len() + 2);
    pattern.push('%');
    for character in text.chars() {
        if matches!(character, '%' | '_' | '\\') {
            pattern.push('\\');
        }
        pattern.push(character);
    }
    pattern.push('%');
    pattern
}

/// `head`, the ids as bound parameters separated by commas, then `tail`.
pub(super) fn in_ids(
    head: &str,
    ids: impl IntoIterator<Item = i64>,
    tail: &str,
) -> sqlx::QueryBuilder<Db> {
    let mut sql = sqlx::QueryBuilder::<Db>::new(head);
    let mut list = sql.separated(", ");
    for id in ids {
        list.push_bind(id);
    }
    sql.push(tail);
    sql
}

/// A bichito read inside a write transaction (locked on Postgres), with its labels and its
/// attachment.
pub(super) async fn bichito_for_update(conn: &mut Connection, id: i64) -> Result<Option<Bichito>> {
    let select = format!(
        "SELECT {BICHITO_COLUMNS} FROM bichitos WHERE id = $1{}",
        SqlStore::FOR_UPDATE
    );
    let found: Option<Bichito> = sqlx::query_as(AssertSqlSafe(select))
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?;
    let Some(mut bichito) = found else {
        return Ok(None);
    };
    bichito.labels = sqlx::query_scalar(
        "SELECT label FROM bichito_labels WHERE bichito_id = $1 ORDER BY position",
    )
    .bind(id)
    .fetch_all(&mut *conn)
    .await?;
    let record: Option<AttachmentRecord> = sqlx::query_as(AssertSqlSafe(format!(
        "SELECT {ATTACHMENT_COLUMNS} FROM attachments WHERE bichito_id = $1"
    )))
    .bind(id)
    .fetch_optional(&mut *conn)
    .await?;
    bichito.attachment = record.and_then(|record| record.public());
    Ok(Some(bichito))
}

/// How many comments bichito `id` has, read in the caller's transaction.
pub(super) async fn comment_count(conn: &mut Connection, id: i64) -> Result<i64> {
    Ok(
        sqlx::query_scalar("SELECT COUNT(*) FROM comments WHERE bichito_id = $1")
            .bind(id)
            .fetch_one(&mut *conn)
            .await?,
    )
}
