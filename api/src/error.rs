//! The api's one error type, and its mapping to HTTP responses: every error, from any route or
//! extractor, is `{"error": "...", "fields": [...]}` with the status chosen here.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// One rejected field of a 400, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: &str, message: impl Into<String>) -> Self {
        Self {
            field: field.to_owned(),
            message: message.into(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// A dashboard token is missing or invalid (answers with a `Bearer` challenge).
    #[error("{0}")]
    Unauthorized(&'static str),
    /// The `x-api-key` is missing, unknown or revoked.
    #[error("{0}")]
    InvalidApiKey(&'static str),
    #[error("{0}")]
    Forbidden(&'static str),
    #[error("not found")]
    NotFound,
    #[error("method not allowed")]
    MethodNotAllowed,
    /// The request head did not arrive within the header-read timeout.
    #[error("the request head did not arrive in time")]
    RequestTimeout,
    /// The request line is longer than the server reads.
    #[error("the request URI is too long")]
    UriTooLong,
    /// The request head (headers included) is larger than the server reads.
    #[error("the request headers are too large")]
    HeadersTooLarge,
    /// A request head that is not HTTP/1.1.
    #[error("malformed HTTP request")]
    MalformedRequest,
    #[error("{0}")]
    BadRequest(String),
    #[error("invalid report")]
    Validation(Vec<FieldError>),
    #[error("content-type must be application/json")]
    UnsupportedMediaType,
    #[error("request body is larger than {limit} bytes")]
    PayloadTooLarge { limit: usize },
    #[error("Idempotency-Key was already used with a different request body")]
    IdempotencyMismatch,
    /// The request clashes with the resource's state (a second attachment, say).
    #[error("{0}")]
    Conflict(String),
    /// An uploaded attachment failed its checks.
    #[error("the upload was refused: {0}; request a new upload URL to try again")]
    UploadRefused(String),
    #[error("attachments are not enabled on this server (ATTACHMENTS_BACKEND=disabled)")]
    AttachmentsDisabled,
    #[error("rate limit exceeded: retry in {retry_after_secs} s")]
    RateLimited { retry_after_secs: u64 },
    /// A feature this server is not configured for.
    #[error("{0}")]
    NotConfigured(&'static str),
    #[error("temporarily unavailable")]
    Unavailable,
    #[error("internal error")]
    Internal(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::Unauthorized(_) | ApiError::InvalidApiKey(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound | ApiError::NotConfigured(_) => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
            ApiError::UriTooLong => StatusCode::URI_TOO_LONG,
            ApiError::HeadersTooLarge => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            ApiError::MalformedRequest => StatusCode::BAD_REQUEST,
            ApiError::BadRequest(_) | ApiError::Validation(_) => StatusCode::BAD_REQUEST,
            ApiError::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::IdempotencyMismatch | ApiError::UploadRefused(_) => {
                StatusCode::UNPROCESSABLE_ENTITY
            }
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::AttachmentsDisabled => StatusCode::NOT_IMPLEMENTED,
            ApiError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The JSON body every error answers with.
    pub fn body(&self) -> String {
        let fields: &[FieldError] = match self {
            ApiError::Validation(fields) => fields,
            _ => &[],
        };
        let body = ErrorBody {
            error: self.to_string(),
            fields,
        };
        serde_json::to_string(&body).unwrap_or_else(|_| r#"{"error":"internal error"}"#.into())
    }

    /// True for the errors that mean "this report was rejected for its content".
    pub fn is_invalid_report(&self) -> bool {
        matches!(
            self,
            ApiError::BadRequest(_)
                | ApiError::Validation(_)
                | ApiError::UnsupportedMediaType
                | ApiError::PayloadTooLarge { .. }
                | ApiError::IdempotencyMismatch
        )
    }
}

impl From<bichito_core::Error> for ApiError {
    fn from(err: bichito_core::Error) -> Self {
        if err.is_unavailable() {
            tracing::warn!(error = %err, "database unavailable");
            ApiError::Unavailable
        } else {
            ApiError::Internal(Box::new(err))
        }
    }
}

impl From<crate::grants::GrantError> for ApiError {
    fn from(err: crate::grants::GrantError) -> Self {
        tracing::warn!(error = %err, "sessions and tickets unavailable");
        ApiError::Unavailable
    }
}

impl From<crate::attachments::StorageError> for ApiError {
    fn from(err: crate::attachments::StorageError) -> Self {
        tracing::warn!(error = %err, "attachment storage unavailable");
        ApiError::Unavailable
    }
}

impl From<crate::attachments::AttachmentError> for ApiError {
    fn from(err: crate::attachments::AttachmentError) -> Self {
        use crate::attachments::AttachmentError;
        match err {
            AttachmentError::Disabled => ApiError::AttachmentsDisabled,
            AttachmentError::Storage(err) => err.into(),
            AttachmentError::Store(err) => err.into(),
        }
    }
}

/// The shape of every error body.
#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = Error, example = json!({"error": "invalid report", "fields": [{"field": "title", "message": "is required"}]}))]
pub(crate) struct ErrorBody<'a> {
    /// What went wrong, for a person to read.
    error: String,
    /// With a 400 for invalid input: each rejected field and why.
    #[serde(skip_serializing_if = "<[FieldError]>::is_empty")]
    fields: &'a [FieldError],
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if let ApiError::Internal(source) = &self {
            // The detail goes to the log; the client gets a generic message.
            tracing::error!(error = %source, "request failed");
        }
        let mut response = (
            self.status(),
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            )],
            self.body(),
        )
            .into_response();
        match &self {
            ApiError::RateLimited { retry_after_secs } => {
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(*retry_after_secs));
            }
            ApiError::Unavailable => {
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
            }
            ApiError::Unauthorized(_) => {
                response
                    .headers_mut()
                    .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            // The rest of the body is not read: the connection cannot carry another request.
            ApiError::PayloadTooLarge { .. } => {
                response
                    .headers_mut()
                    .insert(header::CONNECTION, HeaderValue::from_static("close"));
            }
            _ => {}
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_overloaded_store_answers_503_with_retry_after_and_a_json_error() {
        let response = ApiError::from(bichito_core::Error::Overloaded).into_response();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(
            response.headers().get(header::RETRY_AFTER),
            Some(&HeaderValue::from_static("5"))
        );
        assert_eq!(
            response.headers().get(header::CONTENT_TYPE),
            Some(&HeaderValue::from_static("application/json"))
        );
    }
}
