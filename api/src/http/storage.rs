//! The local backend's signed URLs, served by the api itself: `PUT` of an upload and `GET` of a
//! verified attachment. They behave like a presigned S3 URL: the signature covers the headers
//! the upload must carry, an expired or altered URL is 403, and a body of another length than
//! the signed one is refused. An upload is settled as soon as it is written.

use crate::attachments::{self, Refusal};
use crate::error::ApiError;
use crate::http::extract::{PathParam, QueryParams};
use crate::http::openapi::{Binary, SignedUrlErrors};
use crate::state::AppState;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bichito_core::attachment::{ImageType, stored_object, upload_object};
use http_body_util::BodyExt;
use std::collections::HashMap;

#[utoipa::path(
    put,
    path = "/api/v1/storage/uploads/{key}",
    tag = "storage",
    operation_id = "putUpload",
    summary = "Upload to a signed URL",
    description = "The `url` of an upload ticket on the local backend: send the image with \
        exactly the ticket's `headers` (its type and length are signed), before it expires.",
    params(
        ("key" = String, Path, description = "The upload's object key."),
        ("expires" = i64, Query, description = "When the URL expires (Unix seconds)."),
        ("signature" = String, Query, description = "The URL's signature."),
    ),
    request_body(
        description = "The image, exactly `content-length` bytes.",
        content(
            (Binary = "image/png"),
            (Binary = "image/jpeg"),
            (Binary = "image/webp"),
        ),
    ),
    responses(
        (status = 200, description = "Stored (checked at completion)."),
        SignedUrlErrors,
    ),
)]
pub async fn put_upload(
    State(state): State<AppState>,
    PathParam(key): PathParam,
    QueryParams(query): QueryParams,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let local = state.attachments.local().ok_or(ApiError::NotFound)?;
    let object = upload_object(&key);
    if !attachments::is_object_name(&object) {
        return Err(ApiError::NotFound);
    }
    let header = |name: header::HeaderName| {
        headers
            .get(name)
            .and_then(|value| value.to_str().ok())
            .unwrap_or_default()
    };
    let content_length = header(header::CONTENT_LENGTH);
    let (expires, signature) = signed(&query)?;
    local
        .check_upload(
            &object,
            header(header::CONTENT_TYPE),
            content_length,
            expires,
            signature,
            state.clock.now(),
        )
        .map_err(refused)?;
    // The signed length is at most 2 MB; the body must be exactly that long.
    let length: usize = content_length
        .parse()
        .map_err(|_| ApiError::Forbidden(BAD_SIGNATURE))?;
    let bytes = http_body_util::Limited::new(body, length)
        .collect()
        .await
        .map_err(|err| ApiError::BadRequest(format!("could not read the upload: {err}")))?
        .to_bytes();
    if bytes.len() != length {
        return Err(ApiError::BadRequest(format!(
            "the body is {} bytes, not the {length} signed",
            bytes.len()
        )));
    }
    local.write(&object, &bytes).await?;
    if let Some(record) = state.store.attachment_by_key(&key).await?
        && let Err(err) = state.settling().settle(&record).await
    {
        // The bytes are stored; the completion call or the sweeper settles them later.
        tracing::warn!(error = %err, "settling a local upload failed");
    }
    Ok(StatusCode::OK.into_response())
}

#[utoipa::path(
    get,
    path = "/api/v1/storage/attachments/{key}",
    tag = "storage",
    operation_id = "getAttachment",
    summary = "Download from a signed URL",
    description = "The `attachment.download.url` of a bichito that dashboards read, on the \
        local backend; it expires after a few minutes.",
    params(
        ("key" = String, Path, description = "The attachment's object key."),
        ("expires" = i64, Query, description = "When the URL expires (Unix seconds)."),
        ("signature" = String, Query, description = "The URL's signature."),
        ("type" = String, Query, description = "The image's type (signed)."),
        ("filename" = String, Query, description = "The name to save it as (signed)."),
    ),
    responses(
        (status = 200, description = "The image.", content(
            (Binary = "image/png"),
            (Binary = "image/jpeg"),
            (Binary = "image/webp"),
        )),
        SignedUrlErrors,
    ),
)]
pub async fn get_attachment(
    State(state): State<AppState>,
    PathParam(key): PathParam,
    QueryParams(query): QueryParams,
) -> Result<Response, ApiError> {
    let local = state.attachments.local().ok_or(ApiError::NotFound)?;
    let object = stored_object(&key);
    if !attachments::is_object_name(&object) {
        return Err(ApiError::NotFound);
    }
    let (expires, signature) = signed(&query)?;
    let mime = query.get("type").map(String::as_str).unwrap_or_default();
    let filename = query
        .get("filename")
        .map(String::as_str)
        .unwrap_or_default();
    local
        .check_download(
            &object,
            mime,
            filename,
            expires,
            signature,
            state.clock.now(),
        )
        .map_err(refused)?;
    let image = ImageType::parse(mime).ok_or(ApiError::Forbidden(BAD_SIGNATURE))?;
    let bytes = local.read(&object).await?.ok_or(ApiError::NotFound)?;
    let disposition = HeaderValue::from_str(&attachments::content_disposition(filename))
        .map_err(|err| ApiError::Internal(Box::new(err)))?;
    Ok((
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(image.mime())),
            (header::CONTENT_DISPOSITION, disposition),
            (
                header::CACHE_CONTROL,
                HeaderValue::from_static("private, max-age=300"),
            ),
            (
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            ),
        ],
        bytes,
    )
        .into_response())
}

const BAD_SIGNATURE: &str = "the URL's signature does not match this request";

fn signed(query: &HashMap<String, String>) -> Result<(i64, &str), ApiError> {
    let expires = query
        .get("expires")
        .and_then(|value| value.parse().ok())
        .ok_or(ApiError::Forbidden(BAD_SIGNATURE))?;
    let signature = query
        .get("signature")
        .ok_or(ApiError::Forbidden(BAD_SIGNATURE))?;
    Ok((expires, signature))
}

fn refused(refusal: Refusal) -> ApiError {
    match refusal {
        Refusal::Expired => ApiError::Forbidden("the URL has expired"),
        Refusal::BadSignature => ApiError::Forbidden(BAD_SIGNATURE),
    }
}
