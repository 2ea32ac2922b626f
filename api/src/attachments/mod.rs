//! Attachments: the seed's two-step flow. `POST /api/v1/bugs/{id}/attachments` hands out a
//! signed upload URL and records a pending attachment; the reporter PUTs the image straight to
//! storage; then the record is *settled*: the upload is copied to the object downloads read
//! (which no URL can write), and that copy must have the declared length, content type and an
//! image signature (magic bytes) of the declared type. Only then is the record stamped as
//! uploaded, with its `bug.updated` event; otherwise it is rejected, with the reason.
//!
//! Settling happens, whichever comes first:
//! - on the completion call `POST /api/v1/bugs/{id}/attachments/complete` (what the widget does
//!   right after its PUT);
//! - right after the PUT, for the local backend, whose URLs this process serves;
//! - when a dashboard reads the bichito (`GET /api/v1/bugs/{id}`);
//! - in the [`sweeper`], for every pending attachment whose upload URL has expired: what is
//!   there then is final, so nothing uploaded becomes a rejection.

mod local;
mod objects;
mod s3;
mod storage;
pub mod sweeper;

pub use local::{LocalStorage, ROUTE_PREFIX, Refusal, is_object_name};
pub use objects::{DownloadTarget, ObjectInfo, StorageError, UploadRequest};
pub use s3::{S3Settings, S3Storage};
pub use storage::Storage;

use crate::metrics::{AttachmentOutcome, Metrics};
use bichito_core::attachment::{
    Attachment, AttachmentRecord, AttachmentState, Download, ImageType, SIGNATURE_LEN,
    stored_object, upload_object,
};
use bichito_core::clock::{Clock, truncate_to_millis};
use bichito_core::store::Store;
use chrono::{DateTime, TimeDelta, Utc};
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use std::sync::Arc;
use tokio::sync::Notify;

/// What can go wrong with an attachment (the api's error module maps it to HTTP).
#[derive(Debug, thiserror::Error)]
pub enum AttachmentError {
    #[error("attachments are not enabled on this server (ATTACHMENTS_BACKEND=disabled)")]
    Disabled,
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error(transparent)]
    Store(#[from] bichito_core::Error),
}

/// The attachment storage of a process and its settings.
pub struct Attachments {
    /// `None` when attachments are disabled.
    pub storage: Option<Storage>,
    pub upload_expiry: TimeDelta,
    pub download_expiry: TimeDelta,
    /// Wakes the sweeper: objects are waiting to be deleted.
    wake: Notify,
}

impl Attachments {
    pub fn new(
        storage: Option<Storage>,
        upload_expiry: TimeDelta,
        download_expiry: TimeDelta,
    ) -> Self {
        Self {
            storage,
            upload_expiry,
            download_expiry,
            wake: Notify::new(),
        }
    }

    pub fn disabled() -> Self {
        Self::new(None, TimeDelta::minutes(15), TimeDelta::minutes(5))
    }

    pub fn storage(&self) -> Result<&Storage, AttachmentError> {
        self.storage.as_ref().ok_or(AttachmentError::Disabled)
    }

    pub fn local(&self) -> Option<&LocalStorage> {
        match &self.storage {
            Some(Storage::Local(local)) => Some(local),
            _ => None,
        }
    }

    /// The record of an upload about to start: a fresh key, waiting for its bytes until the
    /// upload expiry.
    pub fn pending_record(
        &self,
        bichito_id: i64,
        filename: String,
        content_type: ImageType,
        content_length: i64,
        now: DateTime<Utc>,
    ) -> AttachmentRecord {
        AttachmentRecord {
            bichito_id,
            key: new_key(bichito_id),
            filename,
            content_type,
            content_length,
            created_at: now,
            upload_expires_at: now + self.upload_expiry,
            uploaded_at: None,
            rejection: None,
        }
    }

    /// Asks the sweeper for a round now.
    pub fn wake_sweeper(&self) {
        self.wake.notify_one();
    }

    pub(crate) async fn woken(&self) {
        self.wake.notified().await;
    }
}

/// What became of a settled attachment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Settled {
    Uploaded,
    /// Nothing has arrived yet and the upload URL still works.
    NotYet,
    Rejected(String),
}

enum Verdict {
    Missing,
    Valid,
    Invalid(String),
}

/// Settling attachments and signing their downloads: what it needs of a process, shared by
/// the handlers and the sweeper.
#[derive(Clone)]
pub struct Settling {
    pub store: Arc<dyn Store>,
    pub attachments: Arc<Attachments>,
    pub clock: Arc<dyn Clock>,
    pub metrics: Arc<Metrics>,
}

impl Settling {
    /// Settles a pending record (others are reported as they are). A record whose upload URL has
    /// expired with nothing uploaded is rejected.
    pub async fn settle(&self, record: &AttachmentRecord) -> Result<Settled, AttachmentError> {
        match record.state() {
            AttachmentState::Uploaded => return Ok(Settled::Uploaded),
            AttachmentState::Rejected => {
                return Ok(Settled::Rejected(
                    record.rejection.clone().unwrap_or_default(),
                ));
            }
            AttachmentState::Pending => {}
        }
        let storage = self.attachments.storage()?;
        let now = truncate_to_millis(self.clock.now());
        let reason = match verify(storage, record).await? {
            Verdict::Valid => {
                if self
                    .store
                    .stamp_attachment(record.bichito_id, &record.key, now)
                    .await?
                    .is_none()
                {
                    return self.current(record).await;
                }
                self.metrics.attachment(AttachmentOutcome::Uploaded);
                tracing::info!(bichito_id = record.bichito_id, "attachment uploaded");
                return Ok(Settled::Uploaded);
            }
            Verdict::Missing if now < record.upload_expires_at => return Ok(Settled::NotYet),
            Verdict::Missing => "no upload arrived before the upload URL expired".to_owned(),
            Verdict::Invalid(reason) => reason,
        };
        if !self
            .store
            .reject_attachment(record.bichito_id, &record.key, &reason, now)
            .await?
        {
            return self.current(record).await;
        }
        self.attachments.wake_sweeper();
        self.metrics.attachment(AttachmentOutcome::Rejected);
        tracing::info!(bichito_id = record.bichito_id, %reason, "attachment rejected");
        Ok(Settled::Rejected(reason))
    }

    /// The state a concurrent settle (or a replacement, or a deletion) reached first, when ours
    /// found the record no longer pending.
    async fn current(&self, record: &AttachmentRecord) -> Result<Settled, AttachmentError> {
        match self.store.attachment(record.bichito_id).await? {
            Some(now) if now.key == record.key => match now.state() {
                AttachmentState::Uploaded => Ok(Settled::Uploaded),
                AttachmentState::Rejected => {
                    Ok(Settled::Rejected(now.rejection.unwrap_or_default()))
                }
                AttachmentState::Pending => Ok(Settled::NotYet),
            },
            // Replaced or deleted meanwhile: this upload is no longer wanted.
            _ => Ok(Settled::Rejected(
                "the upload was replaced or its bichito deleted".into(),
            )),
        }
    }

    /// Adds a fresh download URL to an attachment, for a dashboard. A storage failure leaves the
    /// attachment without one rather than failing the read.
    pub async fn add_download(&self, attachment: &mut Attachment) {
        let Some(storage) = &self.attachments.storage else {
            return;
        };
        let now = truncate_to_millis(self.clock.now());
        let expires_at = now + self.attachments.download_expiry;
        let object = stored_object(&attachment.key);
        let target = DownloadTarget {
            object: &object,
            filename: &attachment.filename,
            content_type: attachment.content_type,
        };
        match storage.download_url(target, now, expires_at).await {
            Ok(url) => attachment.download = Some(Download { url, expires_at }),
            Err(err) => tracing::warn!(error = %err, "cannot sign a download URL"),
        }
    }
}

/// Copies the upload to the stored object, then checks the copy: what passes is exactly what
/// downloads will serve, whatever the upload URL writes afterwards.
async fn verify(storage: &Storage, record: &AttachmentRecord) -> Result<Verdict, StorageError> {
    let stored = stored_object(&record.key);
    if !storage.copy(&upload_object(&record.key), &stored).await? {
        return Ok(Verdict::Missing);
    }
    let Some(info) = storage.head(&stored).await? else {
        return Ok(Verdict::Missing);
    };
    let declared = record.content_type;
    if info.size != record.content_length {
        return Ok(Verdict::Invalid(format!(
            "the upload is {} bytes, not the {} declared",
            info.size, record.content_length
        )));
    }
    if let Some(content_type) = info.content_type
        && !content_type.eq_ignore_ascii_case(declared.mime())
    {
        return Ok(Verdict::Invalid(format!(
            "the upload's content type is {content_type}, not the {} declared",
            declared.mime()
        )));
    }
    let head = storage.read_prefix(&stored, SIGNATURE_LEN).await?;
    if !declared.matches_signature(&head) {
        return Ok(Verdict::Invalid(format!(
            "the uploaded bytes are not a {} image",
            declared.name()
        )));
    }
    Ok(Verdict::Valid)
}

/// A new record's key: the bichito id and 128 random bits, so that no two uploads share
/// objects and a key cannot be guessed from another.
pub fn new_key(bichito_id: i64) -> String {
    format!("{bichito_id}-{}", hex::encode(rand::random::<[u8; 16]>()))
}

/// `Content-Disposition` for a download: shown inline, saved under the reporter's file name.
pub fn content_disposition(filename: &str) -> String {
    let fallback: String = filename
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | ' ') {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!(
        "inline; filename=\"{fallback}\"; filename*=UTF-8''{}",
        utf8_percent_encode(filename, NON_ALPHANUMERIC)
    )
}
