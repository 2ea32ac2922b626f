//! A feedback's screenshot: an envelope's `attachment` item, stored like a widget's upload. The
//! bytes go where a presigned upload would have put them, and the same settling checks them
//! (size, the image's own signature) before the attachment is stamped and announced.

use crate::error::ApiError;
use crate::state::AppState;
use bichito_core::attachment::{ImageType, MAX_BYTES, upload_object};
use bichito_core::clock::truncate_to_millis;
use bichito_core::model::Bichito;

use super::envelope::Item;

/// Why a screenshot was not attached (the report stands without it).
#[derive(Debug, PartialEq, Eq)]
pub enum Skipped {
    Disabled,
    NotAnImage,
    TooLarge,
    AlreadyAttached,
}

/// The type an attachment item's bytes carry, when they are an image bichito takes.
pub fn image_type(item: &Item) -> Option<ImageType> {
    ImageType::ALL
        .into_iter()
        .find(|kind| kind.matches_signature(&item.payload))
}

/// The item's file name, or one that says what it is.
fn filename(item: &Item, kind: ImageType) -> String {
    item.header
        .get("filename")
        .and_then(|name| name.as_str())
        .map(str::trim)
        .filter(|name| !name.is_empty() && name.chars().count() <= 255)
        .map(str::to_owned)
        .unwrap_or_else(|| format!("screenshot.{}", kind.name().to_ascii_lowercase()))
}

/// Attaches `item`'s image to `bichito`.
pub async fn attach(
    state: &AppState,
    bichito: &Bichito,
    item: &Item,
) -> Result<Result<(), Skipped>, ApiError> {
    let Ok(storage) = state.attachments.storage() else {
        return Ok(Err(Skipped::Disabled));
    };
    let Some(kind) = image_type(item) else {
        return Ok(Err(Skipped::NotAnImage));
    };
    let content_length = i64::try_from(item.payload.len()).unwrap_or(i64::MAX);
    if content_length > MAX_BYTES {
        return Ok(Err(Skipped::TooLarge));
    }
    // An envelope sent again: its screenshot is there already.
    if state.store.attachment(bichito.id).await?.is_some() {
        return Ok(Err(Skipped::AlreadyAttached));
    }
    let now = truncate_to_millis(state.clock.now());
    let record = state.attachments.pending_record(
        bichito.id,
        filename(item, kind),
        kind,
        content_length,
        now,
    );
    if !state.store.start_attachment(&record, None, now).await? {
        return Ok(Err(Skipped::AlreadyAttached));
    }
    storage
        .put(&upload_object(&record.key), &item.payload, kind.mime())
        .await
        .map_err(|err| ApiError::Internal(err.into()))?;
    state.settling().settle(&record).await?;
    Ok(Ok(()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Map, json};

    fn item(header: serde_json::Value, payload: &[u8]) -> Item {
        let header: Map<String, serde_json::Value> = serde_json::from_value(header).expect("map");
        Item {
            header,
            payload: payload.to_vec(),
        }
    }

    #[test]
    fn the_type_is_read_from_the_bytes_not_the_header() {
        let png = item(
            json!({"content_type": "image/jpeg"}),
            b"\x89PNG\r\n\x1a\nrest",
        );
        assert_eq!(image_type(&png), Some(ImageType::Png));
        let text = item(json!({"content_type": "image/png"}), b"hello, not an image");
        assert_eq!(image_type(&text), None);
        assert_eq!(filename(&png, ImageType::Png), "screenshot.png");
        let named = item(json!({"filename": " cart.png "}), b"");
        assert_eq!(filename(&named, ImageType::Png), "cart.png");
    }
}
