//! The attachment flow's two calls, with the bichito's honeycomb key (seed 002):
//! `POST /api/v1/bugs/{id}/attachments` `{filename, content_type, content_length}` → a signed
//! upload URL; `POST /api/v1/bugs/{id}/attachments/complete` → the bichito with its attachment,
//! once the upload passed its checks. A bichito of another honeycomb is 404, like one that does
//! not exist.

use crate::attachments::Settled;
use crate::auth::Reporter;
use crate::error::{ApiError, FieldError};
use crate::http::extract::{PathParam, require_json};
use crate::http::ingest::read_limited;
use crate::http::openapi::{AttachmentCompleteErrors, AttachmentStartErrors};
use crate::metrics::AttachmentOutcome;
use crate::state::AppState;
use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use bichito_core::attachment::{ImageType, MAX_BYTES, upload_object};
use bichito_core::clock::rfc3339_millis;
use bichito_core::clock::truncate_to_millis;
use bichito_core::model::{Bichito, Honeycomb};
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{Map, Value};
use utoipa::ToSchema;

const BODY_LIMIT: usize = 4096;
pub(crate) const FILENAME_MAX_CHARS: usize = 255;

/// What the client uploads with: `PUT url` with exactly `headers`, before `expires_at`, then
/// `POST complete_url`.
#[derive(Serialize, ToSchema)]
#[schema(example = json!({
    "method": "PUT",
    "url": "https://storage.example.com/bichito/uploads/3kq9…?X-Amz-Signature=…",
    "headers": {"content-type": "image/png", "content-length": "183204"},
    "expires_at": "2026-05-07T11:52:00.000Z",
    "complete_url": "/api/v1/bugs/12345/attachments/complete"
}))]
pub struct UploadTicket {
    /// Always `PUT`.
    #[schema(value_type = String, example = "PUT")]
    method: &'static str,
    /// Where to send the bytes: the storage's presigned URL, or this server's own signed URL.
    url: String,
    /// The headers the upload must carry, exactly (the signature covers them).
    #[schema(value_type = HashMap<String, String>)]
    headers: Map<String, Value>,
    #[serde(serialize_with = "rfc3339_millis")]
    expires_at: DateTime<Utc>,
    complete_url: String,
}

// The OpenAPI document's view of what `parse_upload` reads.
/// The image about to be uploaded.
#[derive(ToSchema)]
#[allow(dead_code)] // Documentation only.
pub struct UploadRequest {
    /// No control characters.
    #[schema(min_length = 1, max_length = 255)]
    filename: String,
    content_type: ImageType,
    /// The exact size of the upload, in bytes (at most 2 MiB).
    #[schema(minimum = 1, maximum = 2097152)]
    content_length: i64,
}

#[utoipa::path(
    post,
    path = "/api/v1/bugs/{id}/attachments",
    tag = "ingest",
    operation_id = "createAttachment",
    summary = "Start a screenshot's upload",
    description = "One image per bichito (PNG, JPEG or WebP, at most 2 MiB). Answers a signed \
        upload URL, valid for 10 minutes; an earlier upload that did not arrive gives way. The \
        bichito must belong to the key's honeycomb.",
    params(("id" = i64, Path, description = "The bichito's id, from `POST /api/v1/bugs`.")),
    request_body(content = UploadRequest, content_type = "application/json"),
    responses(
        (status = 201, body = UploadTicket, description = "Upload with `PUT url` and exactly `headers`, then `POST complete_url`.",
            links(("Complete" = (operation_id = "completeAttachment", parameters(("id" = "$request.path.id")), description = "Finish the upload.")))),
        AttachmentStartErrors,
    ),
    security(("api_key" = [])),
)]
pub async fn create_attachment(
    State(state): State<AppState>,
    Reporter { honeycomb, .. }: Reporter,
    headers: HeaderMap,
    PathParam(id): PathParam,
    body: Body,
) -> Result<Response, ApiError> {
    let storage = state.attachments.storage()?;
    let bichito = own_bichito(&state, &honeycomb, &id).await?;
    require_json(&headers)?;
    let spec = parse_upload(&read_limited(&headers, body, BODY_LIMIT).await?)?;
    let now = truncate_to_millis(state.clock.now());

    // One attachment per bichito: an earlier upload that did not (or not yet) arrive gives way.
    let replacing = match state.store.attachment(bichito.id).await? {
        None => None,
        Some(current) => match state.settling().settle(&current).await? {
            Settled::Uploaded => {
                return Err(ApiError::Conflict(
                    "this bichito already has an attachment; only one is allowed".into(),
                ));
            }
            Settled::NotYet | Settled::Rejected(_) => Some(current.key),
        },
    };
    let record = state.attachments.pending_record(
        bichito.id,
        spec.filename,
        spec.content_type,
        spec.content_length,
        now,
    );
    let upload = storage
        .upload_request(
            &upload_object(&record.key),
            record.content_type,
            record.content_length,
            now,
            record.upload_expires_at,
        )
        .await?;
    if !state
        .store
        .start_attachment(&record, replacing.as_deref(), now)
        .await?
    {
        return Err(ApiError::Conflict(
            "another attachment upload for this bichito started at the same time".into(),
        ));
    }
    if replacing.is_some() {
        state.attachments.wake_sweeper();
    }
    state.metrics.attachment(AttachmentOutcome::Requested);
    let ticket = UploadTicket {
        method: "PUT",
        url: upload.url,
        headers: upload
            .headers
            .into_iter()
            .map(|(name, value)| (name, Value::String(value)))
            .collect(),
        expires_at: record.upload_expires_at,
        complete_url: format!("/api/v1/bugs/{}/attachments/complete", bichito.id),
    };
    Ok((StatusCode::CREATED, Json(ticket)).into_response())
}

#[utoipa::path(
    post,
    path = "/api/v1/bugs/{id}/attachments/complete",
    tag = "ingest",
    operation_id = "completeAttachment",
    summary = "Finish a screenshot's upload",
    description = "Checks the uploaded bytes (their size, and their type read from the bytes \
        themselves); once they pass, the bichito carries its attachment and its team's stream \
        says `bug.updated`. 409 while nothing has arrived; 422 when the upload was refused \
        (start again).",
    params(("id" = i64, Path, description = "The bichito's id.")),
    responses(
        (status = 200, body = Bichito, description = "The bichito with its `attachment`."),
        AttachmentCompleteErrors,
    ),
    security(("api_key" = [])),
)]
pub async fn complete_attachment(
    State(state): State<AppState>,
    Reporter { honeycomb, .. }: Reporter,
    PathParam(id): PathParam,
) -> Result<Json<Bichito>, ApiError> {
    state.attachments.storage()?;
    let bichito = own_bichito(&state, &honeycomb, &id).await?;
    let record = state.store.attachment(bichito.id).await?.ok_or_else(|| {
        ApiError::Conflict(
            "no attachment upload was started for this bichito: POST …/attachments first".into(),
        )
    })?;
    match state.settling().settle(&record).await? {
        Settled::Uploaded => Ok(Json(
            state
                .store
                .bichito(bichito.id)
                .await?
                .ok_or(ApiError::NotFound)?,
        )),
        Settled::NotYet => Err(ApiError::Conflict(
            "nothing has been uploaded yet: PUT the image to the upload URL, then call this again"
                .into(),
        )),
        Settled::Rejected(reason) => Err(ApiError::UploadRefused(reason)),
    }
}

/// The bichito `id` if it belongs to the key's honeycomb; 404 otherwise.
async fn own_bichito(
    state: &AppState,
    honeycomb: &Honeycomb,
    id: &str,
) -> Result<Bichito, ApiError> {
    let id: i64 = id.parse().map_err(|_| ApiError::NotFound)?;
    match state.store.bichito(id).await? {
        Some(bichito) if bichito.honeycomb_id == honeycomb.id => Ok(bichito),
        _ => Err(ApiError::NotFound),
    }
}

#[derive(Debug, PartialEq)]
struct UploadSpec {
    filename: String,
    content_type: ImageType,
    content_length: i64,
}

/// `{filename, content_type, content_length}`, every bad field named at once.
fn parse_upload(body: &[u8]) -> Result<UploadSpec, ApiError> {
    let fields = match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(fields)) => fields,
        Ok(_) => {
            return Err(ApiError::BadRequest(
                "the body must be a JSON object".into(),
            ));
        }
        Err(err) => return Err(ApiError::BadRequest(format!("malformed JSON: {err}"))),
    };
    let mut errors = Vec::new();
    let filename = match fields.get("filename").and_then(Value::as_str) {
        Some(name)
            if !name.trim().is_empty()
                && name.chars().count() <= FILENAME_MAX_CHARS
                && !name.chars().any(char::is_control) =>
        {
            Some(name.to_owned())
        }
        _ => {
            errors.push(FieldError::new(
                "filename",
                format!("is required: 1 to {FILENAME_MAX_CHARS} characters, no control characters"),
            ));
            None
        }
    };
    let content_type = fields
        .get("content_type")
        .and_then(Value::as_str)
        .and_then(ImageType::parse);
    if content_type.is_none() {
        errors.push(FieldError::new(
            "content_type",
            "must be one of image/png, image/jpeg, image/webp",
        ));
    }
    let content_length = fields
        .get("content_length")
        .and_then(Value::as_i64)
        .filter(|length| (1..=MAX_BYTES).contains(length));
    if content_length.is_none() {
        errors.push(FieldError::new(
            "content_length",
            format!("must be the image's size in bytes: 1 to {MAX_BYTES} (2 MB)"),
        ));
    }
    match (filename, content_type, content_length) {
        (Some(filename), Some(content_type), Some(content_length)) => Ok(UploadSpec {
            filename,
            content_type,
            content_length,
        }),
        _ => Err(ApiError::Validation(errors)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rejected_fields(body: &str) -> Vec<String> {
        match parse_upload(body.as_bytes()) {
            Err(ApiError::Validation(fields)) => fields.into_iter().map(|f| f.field).collect(),
            other => panic!("expected a validation error, got {other:?}"),
        }
    }

    #[test]
    fn a_valid_upload_parses() {
        let spec = parse_upload(
            br#"{"filename": "shot.png", "content_type": "image/png", "content_length": 2097152}"#,
        )
        .expect("valid");
        assert_eq!(
            spec,
            UploadSpec {
                filename: "shot.png".into(),
                content_type: ImageType::Png,
                content_length: MAX_BYTES,
            }
        );
    }

    #[test]
    fn every_bad_field_is_named() {
        assert_eq!(
            rejected_fields(
                r#"{"filename": "", "content_type": "image/gif", "content_length": 2097153}"#
            ),
            ["filename", "content_type", "content_length"]
        );
        assert_eq!(
            rejected_fields(
                r#"{"filename": "a\nb", "content_type": "image/png", "content_length": 0}"#
            ),
            ["filename", "content_length"]
        );
        assert_eq!(
            rejected_fields(r#"{"content_type": "image/png", "content_length": "12"}"#),
            ["filename", "content_length"]
        );
    }

    #[test]
    fn non_objects_are_bad_requests() {
        for body in ["[]", "nope", "\"x\""] {
            assert!(matches!(
                parse_upload(body.as_bytes()),
                Err(ApiError::BadRequest(_))
            ));
        }
    }
}
