//! [`Store`] for this backend: each method is the one of the same name in the files beside
//! this one, except `insert_bichito`, which the backend decides (`write_report`).

use super::{Dialect, SqlStore};
use crate::Result;
use crate::attachment::{AttachmentRecord, ObjectDeletion};
use crate::events::OutboxEvent;
use crate::model::{ApiKeyRecord, Bichito, BugPatch, BugQuery, Comment, Honeycomb, NewBichito};
use crate::spec::DeletionPolicy;
use crate::store::{
    HoneycombApply, HoneycombKeyState, IdempotencyClaim, Inserted, RateGrant, Retired, Store,
    StoredResponse,
};
use chrono::{DateTime, Utc};

#[async_trait::async_trait]
impl Store for SqlStore {
    fn backend(&self) -> &'static str {
        Self::BACKEND
    }

    async fn migrate(&self) -> Result<()> {
        Self::migrator().run(self.pool()).await?;
        Ok(())
    }

    async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(self.pool()).await?;
        Ok(())
    }

    async fn settings_version(&self) -> Result<u64> {
        self.current_settings_version().await
    }

    async fn honeycomb_key_state(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<Option<HoneycombKeyState>> {
        SqlStore::honeycomb_key_state(self, namespace, name).await
    }

    async fn apply_honeycomb(&self, apply: &HoneycombApply) -> Result<i64> {
        SqlStore::apply_honeycomb(self, apply).await
    }

    async fn retire_honeycomb(
        &self,
        namespace: &str,
        name: &str,
        policy: DeletionPolicy,
        now: DateTime<Utc>,
    ) -> Result<Option<Retired>> {
        SqlStore::retire_honeycomb(self, namespace, name, policy, now).await
    }

    async fn honeycomb(&self, id: i64) -> Result<Option<Honeycomb>> {
        SqlStore::honeycomb(self, id).await
    }

    async fn api_key_by_prefix(&self, prefix: &str) -> Result<Option<ApiKeyRecord>> {
        SqlStore::api_key_by_prefix(self, prefix).await
    }

    async fn all_allowed_origins(&self) -> Result<Vec<String>> {
        SqlStore::all_allowed_origins(self).await
    }

    async fn take_rate(
        &self,
        bucket: &str,
        want: i64,
        limit: i64,
        now_ms: i64,
        window_ms: i64,
    ) -> Result<RateGrant> {
        SqlStore::take_rate(self, bucket, want, limit, now_ms, window_ms).await
    }

    async fn return_rate(&self, bucket: &str, started_ms: i64, unused: i64) -> Result<()> {
        SqlStore::return_rate(self, bucket, started_ms, unused).await
    }

    async fn insert_bichito(
        &self,
        report: &NewBichito,
        monthly_cap: Option<u32>,
        idempotency: Option<&IdempotencyClaim>,
    ) -> Result<Inserted> {
        self.write_report(report, monthly_cap, idempotency).await
    }

    async fn reserve_phantom_id(&self) -> Result<i64> {
        SqlStore::reserve_phantom_id(self).await
    }

    async fn remember_response(
        &self,
        claim: &IdempotencyClaim,
        response: &StoredResponse,
    ) -> Result<Option<StoredResponse>> {
        SqlStore::remember_response(self, claim, response).await
    }

    async fn idempotent_response(
        &self,
        honeycomb_id: i64,
        key: &str,
        not_before: DateTime<Utc>,
    ) -> Result<Option<StoredResponse>> {
        SqlStore::idempotent_response(self, honeycomb_id, key, not_before).await
    }

    async fn purge_idempotency(&self, before: DateTime<Utc>) -> Result<u64> {
        SqlStore::purge_idempotency(self, before).await
    }

    async fn bichito(&self, id: i64) -> Result<Option<Bichito>> {
        SqlStore::bichito(self, id).await
    }

    async fn list_bichitos(&self, query: &BugQuery) -> Result<Vec<Bichito>> {
        SqlStore::list_bichitos(self, query).await
    }

    async fn update_bichito(
        &self,
        id: i64,
        patch: &BugPatch,
        now: DateTime<Utc>,
    ) -> Result<Option<Bichito>> {
        SqlStore::update_bichito(self, id, patch, now).await
    }

    async fn add_comment(
        &self,
        bichito: &Bichito,
        author_id: &str,
        body: &str,
        now: DateTime<Utc>,
    ) -> Result<Comment> {
        SqlStore::add_comment(self, bichito, author_id, body, now).await
    }

    async fn comments(&self, bug_id: i64) -> Result<Vec<Comment>> {
        SqlStore::comments(self, bug_id).await
    }

    async fn delete_bichito(&self, bichito: &Bichito, now: DateTime<Utc>) -> Result<bool> {
        SqlStore::delete_bichito(self, bichito, now).await
    }

    async fn attachment(&self, bichito_id: i64) -> Result<Option<AttachmentRecord>> {
        SqlStore::attachment(self, bichito_id).await
    }

    async fn attachment_by_key(&self, key: &str) -> Result<Option<AttachmentRecord>> {
        SqlStore::attachment_by_key(self, key).await
    }

    async fn start_attachment(
        &self,
        record: &AttachmentRecord,
        replacing: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        SqlStore::start_attachment(self, record, replacing, now).await
    }

    async fn stamp_attachment(
        &self,
        bichito_id: i64,
        key: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<Bichito>> {
        SqlStore::stamp_attachment(self, bichito_id, key, now).await
    }

    async fn reject_attachment(
        &self,
        bichito_id: i64,
        key: &str,
        reason: &str,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        SqlStore::reject_attachment(self, bichito_id, key, reason, now).await
    }

    async fn expired_uploads(
        &self,
        before: DateTime<Utc>,
        limit: i64,
    ) -> Result<Vec<AttachmentRecord>> {
        SqlStore::expired_uploads(self, before, limit).await
    }

    async fn due_object_deletions(
        &self,
        now: DateTime<Utc>,
        limit: i64,
    ) -> Result<Vec<ObjectDeletion>> {
        SqlStore::due_object_deletions(self, now, limit).await
    }

    async fn forget_object_deletions(&self, ids: &[i64]) -> Result<()> {
        SqlStore::forget_object_deletions(self, ids).await
    }

    async fn unpublished_events(&self, limit: i64) -> Result<Vec<OutboxEvent>> {
        SqlStore::unpublished_events(self, limit).await
    }

    async fn mark_published(&self, ids: &[i64], now: DateTime<Utc>) -> Result<()> {
        SqlStore::mark_published(self, ids, now).await
    }

    async fn outbox_backlog(&self) -> Result<i64> {
        SqlStore::outbox_backlog(self).await
    }

    async fn purge_published_events(&self, before: DateTime<Utc>) -> Result<u64> {
        SqlStore::purge_published_events(self, before).await
    }

    async fn count_bichitos(&self, honeycomb_id: i64) -> Result<i64> {
        SqlStore::count_bichitos(self, honeycomb_id).await
    }

    async fn monthly_usage(&self, honeycomb_id: i64, period: &str) -> Result<i64> {
        SqlStore::monthly_usage(self, honeycomb_id, period).await
    }
}
