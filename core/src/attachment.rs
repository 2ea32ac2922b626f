//! Attachments (seed 002): one image per bichito, uploaded by the reporter straight to storage
//! with a signed URL, and shown in the canonical payload only once its bytes were checked.
//!
//! An attachment record is *pending* from the moment an upload URL is handed out, then either
//! *uploaded* (the object exists with the declared size, type and image signature) or
//! *rejected* (it did not, or nothing arrived before the URL expired). Each record names two
//! objects: `uploads/<key>`, which the signed URL may write until it expires, and
//! `attachments/<key>`, the copy that was verified and that downloads read, which no URL can
//! write. So an upload URL reused after the check cannot change what dashboards see.

use crate::clock::rfc3339_millis;
use chrono::{DateTime, Utc};
use serde::Serialize;

/// The largest attachment accepted: 2 MB.
pub const MAX_BYTES: i64 = 2 * 1024 * 1024;
/// How many leading bytes identify every accepted image type.
pub const SIGNATURE_LEN: usize = 12;

/// An attachment's image type, read from its bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub enum ImageType {
    #[serde(rename = "image/png")]
    Png,
    #[serde(rename = "image/jpeg")]
    Jpeg,
    #[serde(rename = "image/webp")]
    Webp,
}

impl ImageType {
    pub const ALL: [ImageType; 3] = [ImageType::Png, ImageType::Jpeg, ImageType::Webp];

    pub fn mime(self) -> &'static str {
        match self {
            ImageType::Png => "image/png",
            ImageType::Jpeg => "image/jpeg",
            ImageType::Webp => "image/webp",
        }
    }

    /// Media types compare case-insensitively; parameters are not accepted.
    pub fn parse(mime: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|image| image.mime().eq_ignore_ascii_case(mime.trim()))
    }

    pub fn name(self) -> &'static str {
        match self {
            ImageType::Png => "PNG",
            ImageType::Jpeg => "JPEG",
            ImageType::Webp => "WebP",
        }
    }

    /// Whether `head`, an object's first bytes, carries this type's file signature.
    pub fn matches_signature(self, head: &[u8]) -> bool {
        match self {
            ImageType::Png => head.starts_with(b"\x89PNG\r\n\x1a\n"),
            ImageType::Jpeg => head.starts_with(&[0xFF, 0xD8, 0xFF]),
            ImageType::Webp => {
                head.len() >= SIGNATURE_LEN && head.starts_with(b"RIFF") && &head[8..12] == b"WEBP"
            }
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttachmentState {
    /// An upload URL was handed out; nothing verified yet.
    Pending,
    Uploaded,
    Rejected,
}

/// An attachment record in any state, as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct AttachmentRecord {
    pub bichito_id: i64,
    /// Names the record's two objects (see [`upload_object`] and [`stored_object`]).
    pub key: String,
    pub filename: String,
    pub content_type: ImageType,
    pub content_length: i64,
    pub created_at: DateTime<Utc>,
    /// When the upload URL stops working.
    pub upload_expires_at: DateTime<Utc>,
    pub uploaded_at: Option<DateTime<Utc>>,
    /// Why the upload was refused.
    pub rejection: Option<String>,
}

impl AttachmentRecord {
    pub fn state(&self) -> AttachmentState {
        match (&self.uploaded_at, &self.rejection) {
            (Some(_), _) => AttachmentState::Uploaded,
            (None, Some(_)) => AttachmentState::Rejected,
            (None, None) => AttachmentState::Pending,
        }
    }

    /// What the canonical payload shows: only an uploaded attachment.
    pub fn public(&self) -> Option<Attachment> {
        self.uploaded_at.map(|uploaded_at| Attachment {
            filename: self.filename.clone(),
            content_type: self.content_type,
            content_length: self.content_length,
            uploaded_at,
            download: None,
            key: self.key.clone(),
        })
    }
}

/// The object a signed upload URL writes.
pub fn upload_object(key: &str) -> String {
    format!("uploads/{key}")
}

/// The verified copy that downloads read.
pub fn stored_object(key: &str) -> String {
    format!("attachments/{key}")
}

/// The canonical payload's `attachment`.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Attachment {
    pub filename: String,
    pub content_type: ImageType,
    pub content_length: i64,
    #[serde(serialize_with = "rfc3339_millis")]
    pub uploaded_at: DateTime<Utc>,
    /// A short-lived link to the image; only in what dashboards read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub download: Option<Download>,
    #[serde(skip)]
    pub key: String,
}

/// A short-lived link to an attachment's image.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Download {
    pub url: String,
    #[serde(serialize_with = "rfc3339_millis")]
    pub expires_at: DateTime<Utc>,
}

/// An object to remove from storage once `not_before` has passed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectDeletion {
    pub id: i64,
    pub object: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_tell_the_three_types_apart() {
        let png = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR";
        let jpeg = [
            0xFF, 0xD8, 0xFF, 0xE0, 0, 0x10, b'J', b'F', b'I', b'F', 0, 1,
        ];
        let webp = b"RIFF\x24\0\0\0WEBPVP8 ";
        for (image, head) in [
            (ImageType::Png, &png[..]),
            (ImageType::Jpeg, &jpeg[..]),
            (ImageType::Webp, &webp[..]),
        ] {
            for other in ImageType::ALL {
                assert_eq!(other.matches_signature(head), other == image, "{other:?}");
            }
        }
        assert!(!ImageType::Png.matches_signature(b"GIF89a......"));
        assert!(!ImageType::Webp.matches_signature(b"RIFF\0\0\0\0WAVE"));
        assert!(!ImageType::Webp.matches_signature(b"RIFF"));
    }

    #[test]
    fn only_the_three_image_types_parse() {
        assert_eq!(ImageType::parse("image/PNG"), Some(ImageType::Png));
        assert_eq!(ImageType::parse("image/jpeg"), Some(ImageType::Jpeg));
        assert_eq!(ImageType::parse("image/webp"), Some(ImageType::Webp));
        for refused in [
            "image/gif",
            "image/svg+xml",
            "image/png; q=1",
            "text/plain",
            "",
        ] {
            assert_eq!(ImageType::parse(refused), None, "{refused}");
        }
    }
}
