//! What both storages speak: how a client uploads, what an object is, where a download goes,
//! and what can fail.

use bichito_core::attachment::ImageType;

/// How a client uploads: `PUT url` with exactly these headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadRequest {
    pub url: String,
    pub headers: Vec<(String, String)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectInfo {
    pub size: i64,
    /// As the store recorded it; the local folder records none (its upload URL already
    /// refused any other type).
    pub content_type: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("object storage: {0}")]
    Backend(String),
    #[error("object storage: {0}")]
    Io(#[from] std::io::Error),
    #[error("cannot sign a storage URL: {0}")]
    Signing(String),
}

pub type Result<T> = std::result::Result<T, StorageError>;

/// What a download URL serves.
pub struct DownloadTarget<'a> {
    pub object: &'a str,
    pub filename: &'a str,
    pub content_type: ImageType,
}
