//! Extractors whose rejections use the API's error shape (axum's own answer in plain text).

use crate::error::ApiError;
use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Path, Query, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use std::collections::HashMap;

/// Largest dashboard request body (edits and comments).
pub const DASHBOARD_BODY_LIMIT: usize = 64 * 1024;

/// A JSON request body, read whole: 415 for another content type, 413 past the route's limit.
pub struct JsonBytes(pub Bytes);

impl<S: Send + Sync> FromRequest<S> for JsonBytes {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        require_json(request.headers())?;
        Bytes::from_request(request, state)
            .await
            .map(JsonBytes)
            .map_err(|rejection| {
                if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                    ApiError::PayloadTooLarge {
                        limit: DASHBOARD_BODY_LIMIT,
                    }
                } else {
                    ApiError::BadRequest(rejection.body_text())
                }
            })
    }
}

/// The one parameter of a route's path (a team, an id, an object key), percent-decoded; a
/// segment that does not decode to UTF-8 is a JSON 400, like every other error.
pub struct PathParam(pub String);

impl<S: Send + Sync> FromRequestParts<S> for PathParam {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        Path::<String>::from_request_parts(parts, state)
            .await
            .map(|Path(param)| PathParam(param))
            .map_err(|rejection| ApiError::BadRequest(rejection.body_text()))
    }
}

/// The query string as name → value (the last value of a repeated name wins).
pub struct QueryParams(pub HashMap<String, String>);

impl<S: Send + Sync> FromRequestParts<S> for QueryParams {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        Query::<HashMap<String, String>>::from_request_parts(parts, state)
            .await
            .map(|Query(params)| QueryParams(params))
            .map_err(|rejection| ApiError::BadRequest(rejection.body_text()))
    }
}

/// `application/json`, parameters (such as `charset`) allowed.
pub fn require_json(headers: &HeaderMap) -> Result<(), ApiError> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default();
    let essence = content_type.split(';').next().unwrap_or_default().trim();
    if essence.eq_ignore_ascii_case("application/json") {
        Ok(())
    } else {
        Err(ApiError::UnsupportedMediaType)
    }
}
