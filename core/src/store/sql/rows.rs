//! How each table's rows become the model's types (`sqlx::FromRow`, used with `query_as`).
//! Columns that hold a model enum are checked: a value the code does not know is corrupt data.

use super::Row;
use crate::attachment::{AttachmentRecord, ImageType, ObjectDeletion};
use crate::events::{EventType, OutboxEvent};
use crate::model::{
    ApiKeyRecord, Bichito, BlockMatch, BlockRule, Comment, Honeycomb, Severity, Status,
};
use crate::spec::{DeletionPolicy, Plan};
use crate::store::StoredResponse;
use serde_json::value::RawValue;
use sqlx::{FromRow, Row as _};

/// The columns [`Bichito`]'s rows are read from.
pub(super) const BICHITO_COLUMNS: &str = "id, honeycomb_id, team_id, title, description, status, \
     severity, environment, app_version, stack_trace, url, user_agent, reporter_email, \
     reporter_identifier, extra, assignee, duplicate_of, created_at, updated_at";

/// The columns [`AttachmentRecord`]'s rows are read from.
pub(super) const ATTACHMENT_COLUMNS: &str = "bichito_id, object_key, filename, content_type, \
     content_length, created_at, upload_expires_at, uploaded_at, rejection";

/// A stored value that no longer decodes (a bug or a manual edit of the database).
fn corrupt(what: String) -> sqlx::Error {
    sqlx::Error::Decode(crate::Error::Corrupt(what).into())
}

fn parsed<T>(value: &str, parse: fn(&str) -> Option<T>, what: &str) -> sqlx::Result<T> {
    parse(value).ok_or_else(|| corrupt(format!("{what} {value:?}")))
}

/// Without its labels and attachment, which live in tables of their own.
impl FromRow<'_, Row> for Bichito {
    fn from_row(row: &Row) -> sqlx::Result<Self> {
        let extra: Option<String> = row.try_get("extra")?;
        Ok(Bichito {
            id: row.try_get("id")?,
            honeycomb_id: row.try_get("honeycomb_id")?,
            team_id: row.try_get("team_id")?,
            title: row.try_get("title")?,
            description: row.try_get("description")?,
            status: parsed(row.try_get("status")?, Status::parse, "status")?,
            severity: parsed(row.try_get("severity")?, Severity::parse, "severity")?,
            environment: row.try_get("environment")?,
            app_version: row.try_get("app_version")?,
            stack_trace: row.try_get("stack_trace")?,
            url: row.try_get("url")?,
            user_agent: row.try_get("user_agent")?,
            reporter_email: row.try_get("reporter_email")?,
            reporter_identifier: row.try_get("reporter_identifier")?,
            extra: extra
                .map(RawValue::from_string)
                .transpose()
                .map_err(|err| corrupt(format!("stored JSON: {err}")))?,
            assignee: row.try_get("assignee")?,
            labels: Vec::new(),
            duplicate_of: row.try_get("duplicate_of")?,
            attachment: None,
            comment_count: None,
            created_at: row.try_get("created_at")?,
            updated_at: row.try_get("updated_at")?,
        })
    }
}

impl FromRow<'_, Row> for AttachmentRecord {
    fn from_row(row: &Row) -> sqlx::Result<Self> {
        Ok(AttachmentRecord {
            bichito_id: row.try_get("bichito_id")?,
            key: row.try_get("object_key")?,
            filename: row.try_get("filename")?,
            content_type: parsed(
                row.try_get("content_type")?,
                ImageType::parse,
                "attachment content type",
            )?,
            content_length: row.try_get("content_length")?,
            created_at: row.try_get("created_at")?,
            upload_expires_at: row.try_get("upload_expires_at")?,
            uploaded_at: row.try_get("uploaded_at")?,
            rejection: row.try_get("rejection")?,
        })
    }
}

/// Without its blocklist, which lives in a table of its own.
impl FromRow<'_, Row> for Honeycomb {
    fn from_row(row: &Row) -> sqlx::Result<Self> {
        let origins: String = row.try_get("allowed_origins")?;
        let policy: &str = row.try_get("deletion_policy")?;
        Ok(Honeycomb {
            id: row.try_get("id")?,
            namespace: row.try_get("namespace")?,
            name: row.try_get("name")?,
            team_id: row.try_get("team_id")?,
            display_name: row.try_get("display_name")?,
            plan: parsed(row.try_get("plan")?, Plan::parse, "plan")?,
            reports_per_minute: u32_column(row.try_get("reports_per_minute")?),
            monthly_reports: u32_column(row.try_get("monthly_reports")?),
            allowed_origins: origins_column(&origins)?,
            blocklist: Vec::new(),
            deletion_policy: if policy == "Delete" {
                DeletionPolicy::Delete
            } else {
                DeletionPolicy::Retain
            },
        })
    }
}

/// `allowed_origins` holds a JSON array of origins.
pub(super) fn origins_column(json: &str) -> sqlx::Result<Vec<String>> {
    serde_json::from_str(json).map_err(|err| corrupt(format!("allowed origins: {err}")))
}

fn u32_column(value: Option<i64>) -> Option<u32> {
    value.and_then(|value| u32::try_from(value).ok())
}

impl FromRow<'_, Row> for BlockRule {
    fn from_row(row: &Row) -> sqlx::Result<Self> {
        let value: String = row.try_get("value")?;
        let matcher = match row.try_get::<&str, _>("kind")? {
            "pattern" => BlockMatch::Pattern(value),
            "contains" => BlockMatch::Contains(value),
            other => return Err(corrupt(format!("blocklist rule kind {other:?}"))),
        };
        Ok(BlockRule {
            field: row.try_get("field")?,
            matcher,
        })
    }
}

/// How a rule is stored: its `kind` column and its `value`.
pub(super) fn block_rule_columns(rule: &BlockRule) -> (&'static str, &str) {
    match &rule.matcher {
        BlockMatch::Pattern(value) => ("pattern", value),
        BlockMatch::Contains(value) => ("contains", value),
    }
}

impl FromRow<'_, Row> for ApiKeyRecord {
    fn from_row(row: &Row) -> sqlx::Result<Self> {
        Ok(ApiKeyRecord {
            id: row.try_get("id")?,
            honeycomb_id: row.try_get("honeycomb_id")?,
            prefix: row.try_get("prefix")?,
            hash: row.try_get("hash")?,
            created_at: row.try_get("created_at")?,
            expires_at: row.try_get("expires_at")?,
        })
    }
}

impl FromRow<'_, Row> for Comment {
    fn from_row(row: &Row) -> sqlx::Result<Self> {
        Ok(Comment {
            id: row.try_get("id")?,
            bichito_id: row.try_get("bichito_id")?,
            author_id: row.try_get("author_id")?,
            body: row.try_get("body")?,
            created_at: row.try_get("created_at")?,
        })
    }
}

impl FromRow<'_, Row> for StoredResponse {
    fn from_row(row: &Row) -> sqlx::Result<Self> {
        let status: i64 = row.try_get("status")?;
        Ok(StoredResponse {
            request_hash: row.try_get("request_hash")?,
            status: u16::try_from(status).map_err(|_| corrupt(format!("status {status}")))?,
            body: row.try_get("response")?,
        })
    }
}

impl FromRow<'_, Row> for OutboxEvent {
    fn from_row(row: &Row) -> sqlx::Result<Self> {
        Ok(OutboxEvent {
            id: row.try_get("id")?,
            team_id: row.try_get("team_id")?,
            event_type: parsed(row.try_get("event_type")?, EventType::parse, "event type")?,
            payload: row.try_get("payload")?,
            created_at: row.try_get("created_at")?,
        })
    }
}

impl FromRow<'_, Row> for ObjectDeletion {
    fn from_row(row: &Row) -> sqlx::Result<Self> {
        Ok(ObjectDeletion {
            id: row.try_get("id")?,
            object: row.try_get("object")?,
        })
    }
}

fn teams(json: &str) -> sqlx::Result<Vec<String>> {
    serde_json::from_str(json).map_err(|_| corrupt(format!("teams {json:?}")))
}

impl FromRow<'_, Row> for crate::session::SessionRecord {
    fn from_row(row: &Row) -> sqlx::Result<Self> {
        Ok(Self {
            id_hash: row.try_get("id_hash")?,
            user_id: row.try_get("user_id")?,
            teams: teams(row.try_get("teams")?)?,
            created_at: row.try_get("created_at")?,
            expires_at: row.try_get("expires_at")?,
            revoked_at: row.try_get("revoked_at")?,
        })
    }
}

/// A link names its user; a login in flight has a PKCE verifier instead.
impl FromRow<'_, Row> for crate::session::SignIn {
    fn from_row(row: &Row) -> sqlx::Result<Self> {
        let return_to: String = row.try_get("return_to")?;
        let expires_at = row.try_get("expires_at")?;
        let verifier: Option<String> = row.try_get("verifier")?;
        let nonce: Option<String> = row.try_get("nonce")?;
        let user_id: Option<String> = row.try_get("user_id")?;
        let team_list: Option<&str> = row.try_get("teams")?;
        match (verifier, nonce, user_id, team_list) {
            (Some(verifier), Some(nonce), None, None) => Ok(Self::Oidc {
                verifier,
                nonce,
                return_to,
                expires_at,
            }),
            (None, None, Some(user_id), Some(team_list)) => Ok(Self::Link {
                user_id,
                teams: teams(team_list)?,
                return_to,
                expires_at,
            }),
            _ => Err(corrupt(
                "a sign-in that is neither a link nor a login".into(),
            )),
        }
    }
}
