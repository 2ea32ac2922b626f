//! The store: one trait, [`Store`], implemented for two sqlx backends, Postgres ([`postgres`])
//! and SQLite ([`sqlite`]), chosen by the `DATABASE_URL` scheme, and bounded in time by
//! [`timed`].
//!
//! The SQL is written once, in `sql/`, one file per concern, each implementing that concern's
//! trait: honeycombs and keys, reports, edits and comments, attachments, the outbox, limits
//! and usage, idempotency; and the rows (`sqlx::FromRow`). Each backend mounts those files (`#[path]`) over its own concrete types
//! (`Db`, `Row`, `Connection`, `SqlStore`), so the shared code is plain Rust with no generic
//! bounds and no macro; what differs between the backends is the small [`dialect::Dialect`]
//! and how each writes a report (`write_report`).

mod dialect;
// Both backends mount the files of `sql/`: on purpose, once each, over their own types.
#[allow(clippy::duplicate_mod)]
mod postgres;
#[allow(clippy::duplicate_mod)]
mod sqlite;
mod timed;

use crate::attachment::{AttachmentRecord, ObjectDeletion};
use crate::events::OutboxEvent;
use crate::model::{
    ApiKeyRecord, Bichito, BichitoPatch, BichitoQuery, Comment, Honeycomb, NewBichito,
};
use crate::session::{SessionRecord, SignIn};
use crate::spec::{DeletionPolicy, Plan};
use crate::{Error, Result};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use std::sync::Arc;

pub use postgres::PostgresStore;
pub use sqlite::SqliteStore;

/// Everything the api, the operator and the relay ask of the database: one trait per concern
/// (the files of `sql/`), and this one for the database itself.
#[async_trait]
pub trait Store:
    HoneycombStore
    + ReportStore
    + EditStore
    + AttachmentStore
    + OutboxStore
    + LimitStore
    + IdempotencyStore
    + SessionStore
    + Send
    + Sync
    + 'static
{
    /// `postgres` or `sqlite`.
    fn backend(&self) -> &'static str;

    /// Applies pending schema migrations (safe to run from several processes at once).
    async fn migrate(&self) -> Result<()>;

    /// A round trip to the database, for readiness.
    async fn ping(&self) -> Result<()>;

    /// Notified after every committed write that added an outbox event (a report, an edit, a
    /// comment, a deletion, a stamped attachment, a retirement): whoever publishes the outbox
    /// waits on it. Only the store `connect` returns notifies; the backends alone do not.
    fn outbox_written(&self) -> Option<Arc<tokio::sync::Notify>> {
        None
    }

    /// Changes whenever honeycomb settings or keys change (provisioning, rotation, retirement),
    /// in this process or any other, from the moment the change commits: cached settings read
    /// before a change no longer match. Where that cannot be known (Postgres notifications not
    /// being received), every call answers a new value, so nothing cached is trusted.
    async fn settings_version(&self) -> Result<u64>;
}

/// Honeycombs, their blocklists and keys: what the operator writes and reports read.
#[async_trait]
pub trait HoneycombStore: Send + Sync {
    /// What provisioning needs to decide about keys, or `None` for a new honeycomb.
    async fn honeycomb_key_state(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<Option<HoneycombKeyState>>;
    /// Creates or updates a honeycomb, its blocklist and its keys in one transaction.
    async fn apply_honeycomb(&self, apply: &HoneycombApply) -> Result<i64>;
    /// Retires honeycomb `namespace/name` when its resource is deleted: every key is revoked
    /// at `now`; under [`DeletionPolicy::Delete`] its bichitos are deleted too, each with a
    /// `bug.deleted` event, and the honeycomb with them. `None` when there is no such honeycomb.
    async fn retire_honeycomb(
        &self,
        namespace: &str,
        name: &str,
        policy: DeletionPolicy,
        now: DateTime<Utc>,
    ) -> Result<Option<Retired>>;
    async fn honeycomb(&self, id: i64) -> Result<Option<Honeycomb>>;
    async fn api_key_by_prefix(&self, prefix: &str) -> Result<Option<ApiKeyRecord>>;
    /// Every origin any honeycomb allows, to answer CORS preflights (which carry no API key).
    async fn all_allowed_origins(&self) -> Result<Vec<String>>;
}

/// Reports: stored, and read back as bichitos.
#[async_trait]
pub trait ReportStore: Send + Sync {
    /// Stores a report, charges the monthly usage under a `monthly_cap` (refusing past it;
    /// uncapped honeycombs are not counted) and, with an idempotency claim, records the
    /// response, all in one transaction.
    async fn insert_bichito(
        &self,
        report: &NewBichito,
        monthly_cap: Option<u32>,
        idempotency: Option<&IdempotencyClaim>,
    ) -> Result<Inserted>;
    /// Takes an id from the bichito sequence without storing anything, for silently dropped
    /// reports, so that their 201 looks like any other.
    async fn reserve_phantom_id(&self) -> Result<i64>;

    async fn bichito(&self, id: i64) -> Result<Option<Bichito>>;
    /// A page of a team's bichitos, newest first.
    async fn list_bichitos(&self, query: &BichitoQuery) -> Result<Vec<Bichito>>;
}

/// Dashboard edits, comments and deletions, each with its event.
#[async_trait]
pub trait EditStore: Send + Sync {
    /// Applies a dashboard edit and, when something really changed, its `bug.updated` event,
    /// in one transaction. `None` when the bichito does not exist.
    async fn update_bichito(
        &self,
        id: i64,
        patch: &BichitoPatch,
        now: DateTime<Utc>,
    ) -> Result<Option<Bichito>>;
    /// Adds a comment and its `bug.commented` event.
    async fn add_comment(
        &self,
        bichito: &Bichito,
        author_id: &str,
        body: &str,
        now: DateTime<Utc>,
    ) -> Result<Comment>;
    async fn comments(&self, bichito_id: i64) -> Result<Vec<Comment>>;
    /// Deletes a bichito (its labels, comments and attachment record go with it), writes
    /// `bug.deleted` and schedules the deletion of its attachment's objects.
    /// False when it was already gone.
    async fn delete_bichito(&self, bichito: &Bichito, now: DateTime<Utc>) -> Result<bool>;
}

/// Attachment records and the storage objects due for deletion.
#[async_trait]
pub trait AttachmentStore: Send + Sync {
    /// A bichito's attachment record, whatever its state.
    async fn attachment(&self, bichito_id: i64) -> Result<Option<AttachmentRecord>>;
    async fn attachment_by_key(&self, key: &str) -> Result<Option<AttachmentRecord>>;
    /// Records a pending attachment. `replacing` names the bichito's current record, which must
    /// still be there and not uploaded: it is removed and its objects scheduled for deletion.
    /// False, with nothing written, when the bichito is gone or holds another record.
    async fn start_attachment(
        &self,
        record: &AttachmentRecord,
        replacing: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<bool>;
    /// Stamps a pending attachment as uploaded, writes its `bug.updated` event and schedules the
    /// upload object's deletion, in one transaction. `None` when it was no longer pending.
    async fn stamp_attachment(
        &self,
        bichito_id: i64,
        key: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<Bichito>>;
    /// Marks a pending attachment rejected for `reason` and schedules its objects for deletion.
    /// False when it was no longer pending.
    async fn reject_attachment(
        &self,
        bichito_id: i64,
        key: &str,
        reason: &str,
        now: DateTime<Utc>,
    ) -> Result<bool>;
    /// Pending attachments whose upload URL expired before `before`, oldest first.
    async fn expired_uploads(
        &self,
        before: DateTime<Utc>,
        limit: i64,
    ) -> Result<Vec<AttachmentRecord>>;
    /// Storage objects whose deletion is due at `now`, oldest first.
    async fn due_object_deletions(
        &self,
        now: DateTime<Utc>,
        limit: i64,
    ) -> Result<Vec<ObjectDeletion>>;
    /// Drops deletions that were carried out.
    async fn forget_object_deletions(&self, ids: &[i64]) -> Result<()>;
}

/// The outbox, as the relay reads it.
#[async_trait]
pub trait OutboxStore: Send + Sync {
    /// Outbox events not yet published, oldest first.
    async fn unpublished_events(&self, limit: i64) -> Result<Vec<OutboxEvent>>;
    /// Stamps outbox events as published.
    async fn mark_published(&self, ids: &[i64], now: DateTime<Utc>) -> Result<()>;
    /// Outbox events not yet published (the relay's backlog).
    async fn outbox_backlog(&self) -> Result<i64>;
    /// Deletes outbox events published before `before`; returns how many.
    async fn purge_published_events(&self, before: DateTime<Utc>) -> Result<u64>;
}

/// Rate-limit windows, monthly usage and counts.
#[async_trait]
pub trait LimitStore: Send + Sync {
    /// Takes up to `want` hits from `bucket`'s rate-limit window, never past `limit` hits in
    /// the window (a new window starts when the current one is older than `window_ms`).
    /// Shared by every api process using this database: what one takes, no other can.
    async fn take_rate(
        &self,
        bucket: &str,
        want: i64,
        limit: i64,
        now_ms: i64,
        window_ms: i64,
    ) -> Result<RateGrant>;
    /// Gives back `unused` hits taken from the window of `bucket` that started at `started_ms`
    /// (nothing when that window is over).
    async fn return_rate(&self, bucket: &str, started_ms: i64, unused: i64) -> Result<()>;
    async fn count_bichitos(&self, honeycomb_id: i64) -> Result<i64>;
    /// Reports charged to a honeycomb in a month (`YYYY-MM`, UTC).
    async fn monthly_usage(&self, honeycomb_id: i64, period: &str) -> Result<i64>;
}

/// Responses recorded under idempotency keys.
#[async_trait]
pub trait IdempotencyStore: Send + Sync {
    /// Records a response under an idempotency key; returns the live response already there
    /// instead when another request claimed the key first.
    async fn remember_response(
        &self,
        claim: &IdempotencyClaim,
        response: &StoredResponse,
    ) -> Result<Option<StoredResponse>>;
    /// The response recorded under an idempotency key since `not_before`.
    async fn idempotent_response(
        &self,
        honeycomb_id: i64,
        key: &str,
        not_before: DateTime<Utc>,
    ) -> Result<Option<StoredResponse>>;
    /// Deletes idempotency records older than `before`; returns how many.
    async fn purge_idempotency(&self, before: DateTime<Utc>) -> Result<u64>;
}

/// Dashboard sessions and the one-time sign-ins that open them.
#[async_trait]
pub trait SessionStore: Send + Sync {
    async fn insert_session(&self, session: &SessionRecord) -> Result<()>;
    /// The session whose secret hashes to `id_hash`, revoked and expired ones included.
    async fn session(&self, id_hash: &str) -> Result<Option<SessionRecord>>;
    /// Marks a session revoked at `at`; false when it was not there or already revoked.
    async fn revoke_session(&self, id_hash: &str, at: DateTime<Utc>) -> Result<bool>;
    async fn insert_sign_in(&self, id_hash: &str, sign_in: &SignIn) -> Result<()>;
    /// Takes a sign-in out of the store: of several takes, even concurrent ones, one gets it.
    async fn take_sign_in(&self, id_hash: &str) -> Result<Option<SignIn>>;
    /// Deletes sessions and sign-ins that expired before `before`; returns how many.
    async fn purge_sessions(&self, before: DateTime<Utc>) -> Result<u64>;
}

/// See [`PoolSettings::insert_queue`].
pub const DEFAULT_INSERT_QUEUE: usize = 4096;

/// How a process uses its database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolSettings {
    /// Most connections this process opens.
    pub max_connections: u32,
    /// The longest any database operation may take, waiting for a connection included: past
    /// it the operation fails as unavailable (a database that stopped answering must not hang
    /// requests; see [`timed`]).
    pub timeout: std::time::Duration,
    /// Most reports waiting to be stored together (Postgres): past it a report is refused as
    /// overloaded rather than queued without end.
    pub insert_queue: usize,
}

impl Default for PoolSettings {
    fn default() -> Self {
        Self {
            max_connections: 10,
            timeout: std::time::Duration::from_secs(5),
            insert_queue: DEFAULT_INSERT_QUEUE,
        }
    }
}

/// Connects to `postgres://…` or `sqlite:…` (creating the SQLite file when missing); every
/// operation of the store is bounded by `settings.timeout`.
pub async fn connect(url: &str, settings: PoolSettings) -> Result<Arc<dyn Store>> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        let store = PostgresStore::connect(url, settings).await?;
        Ok(Arc::new(timed::Timed::new(store, settings.timeout)))
    } else if url.starts_with("sqlite:") {
        let store = SqliteStore::connect(url, settings).await?;
        Ok(Arc::new(timed::Timed::new(store, settings.timeout)))
    } else {
        let scheme = url.split(':').next().unwrap_or_default();
        Err(Error::UnsupportedDatabase(format!("{scheme}:…")))
    }
}

#[derive(Debug, Clone)]
pub struct HoneycombKeyState {
    pub id: i64,
    /// The `spec.apiKey.rotate` value last acted on.
    pub key_rotation: Option<String>,
    /// Every key of the honeycomb, expired ones included, newest first.
    pub keys: Vec<ApiKeyRecord>,
}

/// Everything [`Store::apply_honeycomb`] writes.
#[derive(Debug, Clone)]
pub struct HoneycombApply {
    pub namespace: String,
    pub name: String,
    pub team_id: String,
    pub display_name: String,
    pub plan: Plan,
    pub reports_per_minute: Option<u32>,
    pub monthly_reports: Option<u32>,
    pub allowed_origins: Vec<String>,
    pub blocklist: Vec<crate::model::BlockRule>,
    pub deletion_policy: DeletionPolicy,
    pub key_rotation: Option<String>,
    /// A key to add (prefix and hash only).
    pub new_key: Option<NewApiKey>,
    /// When set, every other still-valid key of the honeycomb expires at this instant.
    pub expire_other_keys_at: Option<DateTime<Utc>>,
    pub now: DateTime<Utc>,
}

/// What [`Store::retire_honeycomb`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retired {
    pub honeycomb_id: i64,
    /// Keys that were still valid and no longer are.
    pub revoked_keys: u64,
    /// Bichitos deleted (always 0 under `Retain`).
    pub deleted_bichitos: u64,
    /// The honeycomb was its team's last, and went (under `Delete`): the team went with it,
    /// announced by a `team.removed` event.
    pub team_removed: bool,
}

#[derive(Debug, Clone)]
pub struct NewApiKey {
    pub prefix: String,
    pub hash: String,
}

/// What [`Store::take_rate`] got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateGrant {
    /// The window the hits were taken from.
    pub started_ms: i64,
    /// Hits taken (0 to `want`).
    pub granted: i64,
    /// Hits taken in the window so far, by every process.
    pub hits: i64,
}

#[derive(Debug, Clone)]
pub struct IdempotencyClaim {
    pub honeycomb_id: i64,
    pub key: String,
    /// SHA-256 of the request body: a key reused with another body is an error, not a replay.
    pub request_hash: String,
    pub created_at: DateTime<Utc>,
    /// Records older than this have expired and may be replaced.
    pub not_before: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredResponse {
    pub request_hash: String,
    pub status: u16,
    pub body: String,
}

#[derive(Debug)]
pub enum Inserted {
    Stored(Box<Bichito>),
    /// The report's API key was revoked (or its honeycomb retired) meanwhile: nothing was
    /// written.
    KeyRevoked,
    /// The honeycomb is over its monthly cap: nothing was written.
    OverCap,
    /// The idempotency key was claimed by a concurrent request: nothing was written.
    Replay(StoredResponse),
}

#[cfg(test)]
mod tests;
