//! Every database operation bounded in time: a database that stops answering (a network black
//! hole rather than a refusal) must not hang requests, the relay or the operator. An operation
//! past its bound fails with [`Error::Timeout`], which callers treat as "unavailable" (503 and
//! `Retry-After`); its connection is dropped with it, and the pool opens new ones.
//!
//! It also notifies [`Store::outbox_written`] after each write that added an outbox event, so
//! the relay publishes at once without any caller having to wake it.
//!
//! Operations whose work grows with the data (retiring a honeycomb under `Delete`, the hourly
//! purges) get [`BULK_TIMEOUT`] instead: bounded still, but never cut short by their size.

use super::*;
use crate::attachment::{AttachmentRecord, ObjectDeletion};
use crate::events::OutboxEvent;
use crate::model::{
    ApiKeyRecord, Bichito, BichitoPatch, BichitoQuery, Comment, Honeycomb, NewBichito,
};
use crate::session::{SessionRecord, SignIn};
use crate::spec::DeletionPolicy;
use std::future::Future;
use std::time::Duration;

/// The bound of operations whose work grows with the data.
pub const BULK_TIMEOUT: Duration = Duration::from_secs(600);

pub struct Timed<S> {
    inner: S,
    timeout: Duration,
    outbox: Arc<tokio::sync::Notify>,
}

impl<S: Store> Timed<S> {
    pub fn new(inner: S, timeout: Duration) -> Self {
        Self {
            inner,
            timeout,
            outbox: Arc::default(),
        }
    }

    /// Passes `written` on, first waking the relay when `wrote_events` says it added events.
    fn events<T>(&self, written: Result<T>, wrote_events: impl Fn(&T) -> bool) -> Result<T> {
        if written.as_ref().is_ok_and(&wrote_events) {
            self.outbox.notify_one();
        }
        written
    }

    async fn bounded<T>(&self, operation: impl Future<Output = Result<T>>) -> Result<T> {
        Self::within(self.timeout, operation).await
    }

    async fn bulk<T>(&self, operation: impl Future<Output = Result<T>>) -> Result<T> {
        Self::within(BULK_TIMEOUT.max(self.timeout), operation).await
    }

    async fn within<T>(limit: Duration, operation: impl Future<Output = Result<T>>) -> Result<T> {
        tokio::time::timeout(limit, operation)
            .await
            .unwrap_or(Err(Error::Timeout(limit)))
    }
}

#[async_trait]
impl<S: Store> Store for Timed<S> {
    fn outbox_written(&self) -> Option<Arc<tokio::sync::Notify>> {
        Some(self.outbox.clone())
    }

    fn backend(&self) -> &'static str {
        self.inner.backend()
    }

    // Migrations may rightly take long: not bounded.
    async fn migrate(&self) -> Result<()> {
        self.inner.migrate().await
    }

    async fn ping(&self) -> Result<()> {
        self.bounded(self.inner.ping()).await
    }

    async fn settings_version(&self) -> Result<u64> {
        self.bounded(self.inner.settings_version()).await
    }
}

#[async_trait]
impl<S: Store> HoneycombStore for Timed<S> {
    async fn honeycomb_key_state(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<Option<HoneycombKeyState>> {
        self.bounded(self.inner.honeycomb_key_state(namespace, name))
            .await
    }

    async fn apply_honeycomb(&self, apply: &HoneycombApply) -> Result<i64> {
        self.bounded(self.inner.apply_honeycomb(apply)).await
    }

    async fn retire_honeycomb(
        &self,
        namespace: &str,
        name: &str,
        policy: DeletionPolicy,
        now: DateTime<Utc>,
    ) -> Result<Option<Retired>> {
        let written = self
            .bulk(self.inner.retire_honeycomb(namespace, name, policy, now))
            .await;
        self.events(written, |retired| {
            retired.is_some_and(|retired| retired.deleted_bichitos > 0 || retired.team_removed)
        })
    }

    async fn honeycomb(&self, id: i64) -> Result<Option<Honeycomb>> {
        self.bounded(self.inner.honeycomb(id)).await
    }

    async fn api_key_by_prefix(&self, prefix: &str) -> Result<Option<ApiKeyRecord>> {
        self.bounded(self.inner.api_key_by_prefix(prefix)).await
    }

    async fn all_allowed_origins(&self) -> Result<Vec<String>> {
        self.bounded(self.inner.all_allowed_origins()).await
    }
}

#[async_trait]
impl<S: Store> ReportStore for Timed<S> {
    async fn insert_bichito(
        &self,
        report: &NewBichito,
        monthly_cap: Option<u32>,
        idempotency: Option<&IdempotencyClaim>,
    ) -> Result<Inserted> {
        let written = self
            .bounded(self.inner.insert_bichito(report, monthly_cap, idempotency))
            .await;
        self.events(written, |inserted| matches!(inserted, Inserted::Stored(_)))
    }

    async fn reserve_phantom_id(&self) -> Result<i64> {
        self.bounded(self.inner.reserve_phantom_id()).await
    }

    async fn bichito(&self, id: i64) -> Result<Option<Bichito>> {
        self.bounded(self.inner.bichito(id)).await
    }

    async fn list_bichitos(&self, query: &BichitoQuery) -> Result<Vec<Bichito>> {
        self.bounded(self.inner.list_bichitos(query)).await
    }
}

#[async_trait]
impl<S: Store> EditStore for Timed<S> {
    async fn update_bichito(
        &self,
        id: i64,
        patch: &BichitoPatch,
        now: DateTime<Utc>,
    ) -> Result<Option<Bichito>> {
        let written = self
            .bounded(self.inner.update_bichito(id, patch, now))
            .await;
        self.events(written, Option::is_some)
    }

    async fn add_comment(
        &self,
        bichito: &Bichito,
        author_id: &str,
        body: &str,
        now: DateTime<Utc>,
    ) -> Result<Comment> {
        let written = self
            .bounded(self.inner.add_comment(bichito, author_id, body, now))
            .await;
        self.events(written, |_| true)
    }

    async fn comments(&self, bichito_id: i64) -> Result<Vec<Comment>> {
        self.bounded(self.inner.comments(bichito_id)).await
    }

    async fn delete_bichito(&self, bichito: &Bichito, now: DateTime<Utc>) -> Result<bool> {
        let written = self.bounded(self.inner.delete_bichito(bichito, now)).await;
        self.events(written, |deleted| *deleted)
    }
}

#[async_trait]
impl<S: Store> AttachmentStore for Timed<S> {
    async fn attachment(&self, bichito_id: i64) -> Result<Option<AttachmentRecord>> {
        self.bounded(self.inner.attachment(bichito_id)).await
    }

    async fn attachment_by_key(&self, key: &str) -> Result<Option<AttachmentRecord>> {
        self.bounded(self.inner.attachment_by_key(key)).await
    }

    async fn start_attachment(
        &self,
        record: &AttachmentRecord,
        replacing: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        self.bounded(self.inner.start_attachment(record, replacing, now))
            .await
    }

    async fn stamp_attachment(
        &self,
        bichito_id: i64,
        key: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<Bichito>> {
        let written = self
            .bounded(self.inner.stamp_attachment(bichito_id, key, now))
            .await;
        self.events(written, Option::is_some)
    }

    async fn reject_attachment(
        &self,
        bichito_id: i64,
        key: &str,
        reason: &str,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        self.bounded(self.inner.reject_attachment(bichito_id, key, reason, now))
            .await
    }

    async fn expired_uploads(
        &self,
        before: DateTime<Utc>,
        limit: i64,
    ) -> Result<Vec<AttachmentRecord>> {
        self.bounded(self.inner.expired_uploads(before, limit))
            .await
    }

    async fn due_object_deletions(
        &self,
        now: DateTime<Utc>,
        limit: i64,
    ) -> Result<Vec<ObjectDeletion>> {
        self.bounded(self.inner.due_object_deletions(now, limit))
            .await
    }

    async fn forget_object_deletions(&self, ids: &[i64]) -> Result<()> {
        self.bounded(self.inner.forget_object_deletions(ids)).await
    }
}

#[async_trait]
impl<S: Store> OutboxStore for Timed<S> {
    async fn unpublished_events(&self, limit: i64) -> Result<Vec<OutboxEvent>> {
        self.bounded(self.inner.unpublished_events(limit)).await
    }

    async fn mark_published(&self, ids: &[i64], now: DateTime<Utc>) -> Result<()> {
        self.bounded(self.inner.mark_published(ids, now)).await
    }

    async fn outbox_backlog(&self) -> Result<i64> {
        self.bounded(self.inner.outbox_backlog()).await
    }

    async fn purge_published_events(&self, before: DateTime<Utc>) -> Result<u64> {
        self.bulk(self.inner.purge_published_events(before)).await
    }
}

#[async_trait]
impl<S: Store> LimitStore for Timed<S> {
    async fn take_rate(
        &self,
        bucket: &str,
        want: i64,
        limit: i64,
        now_ms: i64,
        window_ms: i64,
    ) -> Result<RateGrant> {
        self.bounded(self.inner.take_rate(bucket, want, limit, now_ms, window_ms))
            .await
    }

    async fn return_rate(&self, bucket: &str, started_ms: i64, unused: i64) -> Result<()> {
        self.bounded(self.inner.return_rate(bucket, started_ms, unused))
            .await
    }

    async fn count_bichitos(&self, honeycomb_id: i64) -> Result<i64> {
        self.bounded(self.inner.count_bichitos(honeycomb_id)).await
    }

    async fn monthly_usage(&self, honeycomb_id: i64, period: &str) -> Result<i64> {
        self.bounded(self.inner.monthly_usage(honeycomb_id, period))
            .await
    }
}

#[async_trait]
impl<S: Store> IdempotencyStore for Timed<S> {
    async fn remember_response(
        &self,
        claim: &IdempotencyClaim,
        response: &StoredResponse,
    ) -> Result<Option<StoredResponse>> {
        self.bounded(self.inner.remember_response(claim, response))
            .await
    }

    async fn idempotent_response(
        &self,
        honeycomb_id: i64,
        key: &str,
        not_before: DateTime<Utc>,
    ) -> Result<Option<StoredResponse>> {
        self.bounded(
            self.inner
                .idempotent_response(honeycomb_id, key, not_before),
        )
        .await
    }

    async fn purge_idempotency(&self, before: DateTime<Utc>) -> Result<u64> {
        self.bulk(self.inner.purge_idempotency(before)).await
    }
}

#[async_trait]
impl<S: Store> SessionStore for Timed<S> {
    async fn insert_session(&self, session: &SessionRecord) -> Result<()> {
        self.bounded(self.inner.insert_session(session)).await
    }

    async fn session(&self, id_hash: &str) -> Result<Option<SessionRecord>> {
        self.bounded(self.inner.session(id_hash)).await
    }

    async fn revoke_session(&self, id_hash: &str, at: DateTime<Utc>) -> Result<bool> {
        self.bounded(self.inner.revoke_session(id_hash, at)).await
    }

    async fn insert_sign_in(&self, id_hash: &str, sign_in: &SignIn) -> Result<()> {
        self.bounded(self.inner.insert_sign_in(id_hash, sign_in))
            .await
    }

    async fn take_sign_in(&self, id_hash: &str) -> Result<Option<SignIn>> {
        self.bounded(self.inner.take_sign_in(id_hash)).await
    }

    async fn purge_sessions(&self, before: DateTime<Utc>) -> Result<u64> {
        self.bulk(self.inner.purge_sessions(before)).await
    }
}
