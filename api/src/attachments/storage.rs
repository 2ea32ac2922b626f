//! Object storage for attachments: an S3-compatible bucket, or a local folder whose signed URLs
//! this process serves. Both offer the same few operations; objects are named by
//! `bichito_core::attachment::{upload_object, stored_object}`.

use super::local::LocalStorage;
use super::objects::{DownloadTarget, ObjectInfo, Result, UploadRequest};
use super::s3::S3Storage;
use bichito_core::attachment::ImageType;
use chrono::{DateTime, Utc};

pub enum Storage {
    S3(S3Storage),
    Local(LocalStorage),
}

impl Storage {
    pub fn backend(&self) -> &'static str {
        match self {
            Storage::S3(_) => "s3",
            Storage::Local(_) => "local",
        }
    }

    /// The origin its download URLs point at when it is not this server's nor an `https:`
    /// one the inbox's policy already allows.
    pub fn download_origin(&self) -> Option<&str> {
        match self {
            Storage::S3(s3) => s3.download_origin(),
            Storage::Local(_) => None,
        }
    }

    /// A URL that lets its holder write `object` once or more until `expires_at`, with this
    /// content type and exactly this length.
    pub async fn upload_request(
        &self,
        object: &str,
        content_type: ImageType,
        content_length: i64,
        now: DateTime<Utc>,
        expires_at: DateTime<Utc>,
    ) -> Result<UploadRequest> {
        match self {
            Storage::S3(s3) => {
                s3.upload_request(object, content_type, content_length, now, expires_at)
                    .await
            }
            Storage::Local(local) => {
                Ok(local.upload_request(object, content_type, content_length, expires_at))
            }
        }
    }

    /// A URL that serves the object as an image until `expires_at`.
    pub async fn download_url(
        &self,
        target: DownloadTarget<'_>,
        now: DateTime<Utc>,
        expires_at: DateTime<Utc>,
    ) -> Result<String> {
        match self {
            Storage::S3(s3) => s3.download_url(target, now, expires_at).await,
            Storage::Local(local) => Ok(local.download_url(target, expires_at)),
        }
    }

    /// Copies `from` to `to`; false when `from` does not exist.
    pub async fn copy(&self, from: &str, to: &str) -> Result<bool> {
        match self {
            Storage::S3(s3) => s3.copy(from, to).await,
            Storage::Local(local) => local.copy(from, to).await,
        }
    }

    pub async fn head(&self, object: &str) -> Result<Option<ObjectInfo>> {
        match self {
            Storage::S3(s3) => s3.head(object).await,
            Storage::Local(local) => local.head(object).await,
        }
    }

    /// At most the first `len` bytes of the object.
    pub async fn read_prefix(&self, object: &str, len: usize) -> Result<Vec<u8>> {
        match self {
            Storage::S3(s3) => s3.read_prefix(object, len).await,
            Storage::Local(local) => local.read_prefix(object, len).await,
        }
    }

    /// Writes `bytes` as `object`: an upload that came through the server (a Sentry envelope's
    /// screenshot), checked afterwards like any other.
    pub async fn put(&self, object: &str, bytes: &[u8], content_type: &str) -> Result<()> {
        match self {
            Storage::S3(s3) => s3.put(object, bytes, content_type).await,
            Storage::Local(local) => local.write(object, bytes).await,
        }
    }

    /// Deletes the object; deleting one that does not exist is not an error.
    pub async fn delete(&self, object: &str) -> Result<()> {
        match self {
            Storage::S3(s3) => s3.delete(object).await,
            Storage::Local(local) => local.delete(object).await,
        }
    }
}
