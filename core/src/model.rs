//! The canonical bichito payload and the runtime view of a honeycomb.

use crate::attachment::Attachment;
use crate::clock::rfc3339_millis;
use crate::spec::{DeletionPolicy, Plan};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use utoipa::ToSchema;

/// How bad a bichito is: `medium` unless the reporter says otherwise.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Low,
    #[default]
    Medium,
    High,
    Critical,
}

impl Severity {
    pub const ALL: [Severity; 4] = [
        Severity::Low,
        Severity::Medium,
        Severity::High,
        Severity::Critical,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }

    pub fn parse(value: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|severity| severity.as_str() == value)
    }
}

/// Where a bichito is in triage: every new one is `open`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    #[default]
    Open,
    InProgress,
    Resolved,
    Closed,
}

impl Status {
    pub const ALL: [Status; 4] = [
        Status::Open,
        Status::InProgress,
        Status::Resolved,
        Status::Closed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Status::Open => "open",
            Status::InProgress => "in_progress",
            Status::Resolved => "resolved",
            Status::Closed => "closed",
        }
    }

    pub fn parse(value: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|status| status.as_str() == value)
    }
}

/// The canonical bichito payload: what `POST /api/v1/bugs` returns with 201, what
/// `GET /api/v1/bugs/{id}` returns, and what `bug.created` carries (field order is the
/// contract's).
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(example = json!({
    "id": 12345, "project_id": 42, "team_id": "team-acme",
    "title": "Login button broken on Safari 17",
    "description": "Steps: visit /login, click Sign in. Nothing happens. No console errors.",
    "status": "open", "severity": "high", "environment": "production", "app_version": "1.4.2",
    "stack_trace": null, "url": "https://example.com/login", "user_agent": "Mozilla/5.0 ...",
    "reporter_email": "user@example.com", "reporter_identifier": "user_42",
    "extra": {"viewport": "1440x900", "billing_plan": "pro"},
    "assignee": null, "labels": [], "duplicate_of": null, "attachment": null, "comment_count": 0,
    "created_at": "2026-05-07T11:42:00.000Z", "updated_at": "2026-05-07T11:42:00.000Z"
}))]
pub struct Bichito {
    pub id: i64,
    /// The honeycomb it was reported to; the seeds' payloads call it `project_id`.
    #[serde(rename = "project_id")]
    pub honeycomb_id: i64,
    pub team_id: String,
    pub title: String,
    pub description: String,
    pub status: Status,
    pub severity: Severity,
    #[schema(required = true)]
    pub environment: Option<String>,
    #[schema(required = true)]
    pub app_version: Option<String>,
    #[schema(required = true)]
    pub stack_trace: Option<String>,
    #[schema(required = true)]
    pub url: Option<String>,
    #[schema(required = true)]
    pub user_agent: Option<String>,
    #[schema(required = true)]
    pub reporter_email: Option<String>,
    #[schema(required = true)]
    pub reporter_identifier: Option<String>,
    /// The reporter's JSON object, byte for byte as sent.
    #[schema(value_type = Option<Object>, required = true)]
    pub extra: Option<Box<RawValue>>,
    #[schema(required = true)]
    pub assignee: Option<String>,
    pub labels: Vec<String>,
    #[schema(required = true)]
    pub duplicate_of: Option<i64>,
    /// Set once an uploaded image was verified (see [`crate::attachment`]).
    #[schema(required = true)]
    pub attachment: Option<Attachment>,
    /// How many comments it has: 0 in a new report's payload (the 201 and `bug.created`),
    /// counted on every read; `None` only between a row's decoding and its completion.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub comment_count: Option<i64>,
    #[serde(serialize_with = "rfc3339_millis")]
    pub created_at: DateTime<Utc>,
    #[serde(serialize_with = "rfc3339_millis")]
    pub updated_at: DateTime<Utc>,
}

/// A validated report, ready to be stored.
#[derive(Debug, Clone)]
pub struct NewBichito {
    pub honeycomb_id: i64,
    /// The API key it came with: the store writes the report only while that key is valid, in
    /// the same statement, so a revoked or retired key can never store one. `None` for
    /// reports that come from no key (demo data).
    pub api_key_id: Option<i64>,
    pub team_id: String,
    pub title: String,
    pub description: String,
    pub severity: Severity,
    pub environment: Option<String>,
    pub app_version: Option<String>,
    pub stack_trace: Option<String>,
    pub url: Option<String>,
    pub user_agent: Option<String>,
    pub reporter_email: Option<String>,
    pub reporter_identifier: Option<String>,
    pub extra: Option<Box<RawValue>>,
    pub created_at: DateTime<Utc>,
}

impl NewBichito {
    /// The payload this report has once stored under `id`; also the body of a silently dropped
    /// report, so that the two cannot be told apart.
    pub fn into_bichito(self, id: i64) -> Bichito {
        Bichito {
            id,
            honeycomb_id: self.honeycomb_id,
            team_id: self.team_id,
            title: self.title,
            description: self.description,
            status: Status::Open,
            severity: self.severity,
            environment: self.environment,
            app_version: self.app_version,
            stack_trace: self.stack_trace,
            url: self.url,
            user_agent: self.user_agent,
            reporter_email: self.reporter_email,
            reporter_identifier: self.reporter_identifier,
            extra: self.extra,
            assignee: None,
            labels: Vec::new(),
            duplicate_of: None,
            attachment: None,
            comment_count: Some(0),
            created_at: self.created_at,
            updated_at: self.created_at,
        }
    }
}

/// A honeycomb as the api needs it on every report.
#[derive(Debug, Clone, PartialEq)]
pub struct Honeycomb {
    pub id: i64,
    pub namespace: String,
    pub name: String,
    pub team_id: String,
    pub display_name: String,
    pub plan: Plan,
    pub reports_per_minute: Option<u32>,
    pub monthly_reports: Option<u32>,
    pub allowed_origins: Vec<String>,
    pub blocklist: Vec<BlockRule>,
    pub deletion_policy: DeletionPolicy,
}

impl Honeycomb {
    /// The monthly cap in force: only the free plan is capped, at 1000 unless configured.
    pub fn monthly_cap(&self) -> Option<u32> {
        match self.plan {
            Plan::Free => Some(self.monthly_reports.unwrap_or(DEFAULT_FREE_MONTHLY_REPORTS)),
            Plan::Pro => None,
        }
    }

    pub fn allows_origin(&self, origin: &str) -> bool {
        self.allowed_origins
            .iter()
            .any(|allowed| allowed == "*" || allowed == origin)
    }
}

pub const DEFAULT_FREE_MONTHLY_REPORTS: u32 = 1000;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BlockMatch {
    /// Shell-style glob over the whole value (`*`, `?`), case-insensitive.
    Pattern(String),
    /// Case-insensitive substring.
    Contains(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockRule {
    pub field: String,
    pub matcher: BlockMatch,
}

/// A stored API key: never the key itself, only its prefix and hash.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiKeyRecord {
    pub id: i64,
    pub honeycomb_id: i64,
    pub prefix: String,
    pub hash: String,
    pub created_at: DateTime<Utc>,
    /// Set when the key was rotated out (end of its grace period) or revoked.
    pub expires_at: Option<DateTime<Utc>>,
}

impl ApiKeyRecord {
    pub fn is_valid_at(&self, now: DateTime<Utc>) -> bool {
        self.expires_at.is_none_or(|expires_at| now < expires_at)
    }
}

/// A dashboard edit (`PATCH /api/v1/bugs/{id}`): `None` leaves a field as it is; for the
/// nullable fields, `Some(None)` clears it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BichitoPatch {
    pub status: Option<Status>,
    pub severity: Option<Severity>,
    pub assignee: Option<Option<String>>,
    pub labels: Option<Vec<String>>,
    pub duplicate_of: Option<Option<i64>>,
}

impl BichitoPatch {
    /// Sets on `bichito` every field this edit names.
    pub fn apply_to(&self, bichito: &mut Bichito) {
        if let Some(status) = self.status {
            bichito.status = status;
        }
        if let Some(severity) = self.severity {
            bichito.severity = severity;
        }
        if let Some(assignee) = &self.assignee {
            bichito.assignee = assignee.clone();
        }
        if let Some(labels) = &self.labels {
            bichito.labels = labels.clone();
        }
        if let Some(duplicate_of) = self.duplicate_of {
            bichito.duplicate_of = duplicate_of;
        }
    }
}

/// A comment on a bichito.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
#[schema(example = json!({
    "id": 7, "bug_id": 12345, "author_id": "user-ana",
    "body": "Reproduced on Safari 17.4; looking at it.", "created_at": "2026-05-07T12:03:00.000Z"
}))]
pub struct Comment {
    pub id: i64,
    /// The bichito commented on; the seeds' payloads call it `bug_id`.
    #[serde(rename = "bug_id")]
    pub bichito_id: i64,
    pub author_id: String,
    pub body: String,
    #[serde(serialize_with = "rfc3339_millis")]
    pub created_at: DateTime<Utc>,
}

/// A page request for a team's bichitos, newest first.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BichitoQuery {
    pub team_id: String,
    pub status: Option<Status>,
    pub severity: Option<Severity>,
    pub honeycomb_id: Option<i64>,
    pub assignee: Option<String>,
    pub label: Option<String>,
    /// Text the title contains, ignoring case.
    pub title_contains: Option<String>,
    /// Only bichitos with a smaller id (the previous page's last id).
    pub before_id: Option<i64>,
    pub limit: u32,
}
