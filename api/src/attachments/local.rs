//! The local backend of the embedded mode: objects are files under one folder, and the upload
//! and download URLs point at this process, signed with HMAC-SHA256 like a presigned URL: the
//! signature covers the method, the object, the expiry and, for an upload, the content type
//! and exact length, which the request's headers must repeat.

use super::objects::{DownloadTarget, ObjectInfo, Result, UploadRequest};
use aws_lc_rs::hmac;
use bichito_core::attachment::ImageType;
use chrono::{DateTime, Utc};
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use std::path::PathBuf;
use tokio::io::AsyncReadExt;

/// Where the api serves the objects: `<public url>/api/v1/storage/<object>`.
pub const ROUTE_PREFIX: &str = "/api/v1/storage";

pub struct LocalStorage {
    root: PathBuf,
    public_url: String,
    /// Boxed: the key schedule is over a kilobyte, and `Storage` is moved around.
    key: Box<hmac::Key>,
}

/// Why a signed URL was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    Expired,
    BadSignature,
}

impl LocalStorage {
    pub fn new(root: PathBuf, public_url: &str, signing_key: &[u8]) -> std::io::Result<Self> {
        for folder in ["uploads", "attachments"] {
            std::fs::create_dir_all(root.join(folder))?;
        }
        Ok(Self {
            root,
            public_url: public_url.trim_end_matches('/').to_owned(),
            key: Box::new(hmac::Key::new(hmac::HMAC_SHA256, signing_key)),
        })
    }

    pub fn upload_request(
        &self,
        object: &str,
        content_type: ImageType,
        content_length: i64,
        expires_at: DateTime<Utc>,
    ) -> UploadRequest {
        let expires = expires_at.timestamp();
        let length = content_length.to_string();
        let signature = self.sign(&upload_message(
            object,
            content_type.mime(),
            &length,
            expires,
        ));
        UploadRequest {
            url: format!(
                "{}{ROUTE_PREFIX}/{object}?expires={expires}&signature={signature}",
                self.public_url
            ),
            headers: vec![
                ("content-type".into(), content_type.mime().into()),
                ("content-length".into(), length),
            ],
        }
    }

    pub fn download_url(&self, target: DownloadTarget<'_>, expires_at: DateTime<Utc>) -> String {
        let expires = expires_at.timestamp();
        let mime = target.content_type.mime();
        let signature = self.sign(&download_message(
            target.object,
            mime,
            target.filename,
            expires,
        ));
        format!(
            "{}{ROUTE_PREFIX}/{}?expires={expires}&type={}&filename={}&signature={signature}",
            self.public_url,
            target.object,
            utf8_percent_encode(mime, NON_ALPHANUMERIC),
            utf8_percent_encode(target.filename, NON_ALPHANUMERIC),
        )
    }

    /// Checks an upload's signature against the headers it came with, then its expiry.
    pub fn check_upload(
        &self,
        object: &str,
        content_type: &str,
        content_length: &str,
        expires: i64,
        signature: &str,
        now: DateTime<Utc>,
    ) -> std::result::Result<(), Refusal> {
        let message = upload_message(object, content_type, content_length, expires);
        self.check(&message, signature, expires, now)
    }

    pub fn check_download(
        &self,
        object: &str,
        content_type: &str,
        filename: &str,
        expires: i64,
        signature: &str,
        now: DateTime<Utc>,
    ) -> std::result::Result<(), Refusal> {
        let message = download_message(object, content_type, filename, expires);
        self.check(&message, signature, expires, now)
    }

    fn check(
        &self,
        message: &str,
        signature: &str,
        expires: i64,
        now: DateTime<Utc>,
    ) -> std::result::Result<(), Refusal> {
        let tag = hex::decode(signature).map_err(|_| Refusal::BadSignature)?;
        hmac::verify(&self.key, message.as_bytes(), &tag).map_err(|_| Refusal::BadSignature)?;
        if now.timestamp() >= expires {
            return Err(Refusal::Expired);
        }
        Ok(())
    }

    fn sign(&self, message: &str) -> String {
        hex::encode(hmac::sign(&self.key, message.as_bytes()))
    }

    /// The file of an object, for names this store hands out only (`<folder>/<key>`).
    fn path(&self, object: &str) -> Result<PathBuf> {
        if is_object_name(object) {
            Ok(self.root.join(object))
        } else {
            Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("not an object name: {object:?}"),
            )
            .into())
        }
    }

    /// Writes a whole object: to a temporary file first, so a reader never sees half of it.
    pub async fn write(&self, object: &str, bytes: &[u8]) -> Result<()> {
        let path = self.path(object)?;
        let temporary = self.root.join(format!(
            ".incoming-{}",
            hex::encode(rand::random::<[u8; 16]>())
        ));
        tokio::fs::write(&temporary, bytes).await?;
        if let Err(err) = tokio::fs::rename(&temporary, &path).await {
            let _ = tokio::fs::remove_file(&temporary).await;
            return Err(err.into());
        }
        Ok(())
    }

    pub async fn read(&self, object: &str) -> Result<Option<Vec<u8>>> {
        match tokio::fs::read(self.path(object)?).await {
            Ok(bytes) => Ok(Some(bytes)),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(err) => Err(err.into()),
        }
    }

    pub async fn copy(&self, from: &str, to: &str) -> Result<bool> {
        match self.read(from).await? {
            Some(bytes) => {
                self.write(to, &bytes).await?;
                Ok(true)
            }
            None => Ok(false),
        }
    }

    pub async fn head(&self, object: &str) -> Result<Option<ObjectInfo>> {
        match tokio::fs::metadata(self.path(object)?).await {
            Ok(metadata) => Ok(Some(ObjectInfo {
                size: i64::try_from(metadata.len()).unwrap_or(i64::MAX),
                content_type: None,
            })),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(err) => Err(err.into()),
        }
    }

    pub async fn read_prefix(&self, object: &str, len: usize) -> Result<Vec<u8>> {
        let file = match tokio::fs::File::open(self.path(object)?).await {
            Ok(file) => file,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(err) => return Err(err.into()),
        };
        let mut head = Vec::with_capacity(len);
        file.take(len as u64).read_to_end(&mut head).await?;
        Ok(head)
    }

    pub async fn delete(&self, object: &str) -> Result<()> {
        match tokio::fs::remove_file(self.path(object)?).await {
            Err(err) if err.kind() != std::io::ErrorKind::NotFound => Err(err.into()),
            _ => Ok(()),
        }
    }
}

/// `uploads/<key>` or `attachments/<key>`, the key of digits, lowercase letters and dashes:
/// nothing that could step out of the folder.
pub fn is_object_name(object: &str) -> bool {
    let Some((folder, key)) = object.split_once('/') else {
        return false;
    };
    matches!(folder, "uploads" | "attachments")
        && (1..=100).contains(&key.len())
        && key
            .bytes()
            .all(|b| b.is_ascii_digit() || b.is_ascii_lowercase() || b == b'-')
}

fn upload_message(object: &str, content_type: &str, content_length: &str, expires: i64) -> String {
    format!("PUT\n{object}\n{content_type}\n{content_length}\n{expires}")
}

fn download_message(object: &str, content_type: &str, filename: &str, expires: i64) -> String {
    format!("GET\n{object}\n{content_type}\n{filename}\n{expires}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeDelta;

    fn storage() -> (LocalStorage, PathBuf) {
        let dir = std::env::temp_dir().join(format!(
            "bichito-local-{}",
            hex::encode(rand::random::<[u8; 8]>())
        ));
        let storage = LocalStorage::new(dir.clone(), "http://127.0.0.1:9/", b"key").expect("dir");
        (storage, dir)
    }

    #[test]
    fn an_upload_signature_binds_object_type_length_and_expiry() {
        let (storage, dir) = storage();
        let now = Utc::now();
        let expires_at = now + TimeDelta::minutes(5);
        let request = storage.upload_request("uploads/1-ab", ImageType::Png, 100, expires_at);
        let query = request.url.split_once('?').expect("query").1;
        let signature = query.split("signature=").nth(1).expect("signature");
        let expires = expires_at.timestamp();
        let check = |object, content_type, length, expires, now| {
            storage.check_upload(object, content_type, length, expires, signature, now)
        };
        assert_eq!(
            check("uploads/1-ab", "image/png", "100", expires, now),
            Ok(())
        );
        for (object, content_type, length, expires) in [
            ("uploads/1-ac", "image/png", "100", expires),
            ("uploads/1-ab", "image/jpeg", "100", expires),
            ("uploads/1-ab", "image/png", "101", expires),
            ("uploads/1-ab", "image/png", "100", expires + 1),
        ] {
            assert_eq!(
                check(object, content_type, length, expires, now),
                Err(Refusal::BadSignature)
            );
        }
        let later = expires_at + TimeDelta::seconds(1);
        assert_eq!(
            check("uploads/1-ab", "image/png", "100", expires, later),
            Err(Refusal::Expired)
        );
        assert!(
            request
                .url
                .starts_with("http://127.0.0.1:9/api/v1/storage/uploads/1-ab?")
        );
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn only_names_it_hands_out_are_objects() {
        for good in ["uploads/12-abc", "attachments/1-0f"] {
            assert!(is_object_name(good), "{good}");
        }
        for bad in [
            "uploads/../x",
            "other/1",
            "uploads/",
            "uploads/A",
            "attachments/1/2",
            "../uploads/1",
        ] {
            assert!(!is_object_name(bad), "{bad}");
        }
    }
}
