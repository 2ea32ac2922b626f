//! CORS for the widget routes. A preflight carries no API key, so it is answered for any origin
//! that some honeycomb allows; the actual request is then checked against its own honeycomb's
//! `allowedOrigins` (403 when not listed). Server-side callers send no `Origin` and are unaffected.

use crate::error::ApiError;
use crate::state::AppState;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

const ALLOWED_METHODS: &str = "GET, POST, PUT, OPTIONS";
const ALLOWED_HEADERS: &str = "content-type, x-api-key, idempotency-key";
const EXPOSED_HEADERS: &str = "retry-after, idempotent-replayed";

pub async fn allow_known_origins(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let origin = request.headers().get(header::ORIGIN).cloned();
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    headers.append(header::VARY, HeaderValue::from_static("origin"));
    if let Some(origin) = origin
        && is_known(&state, &origin).await
    {
        headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
        headers.insert(
            header::ACCESS_CONTROL_EXPOSE_HEADERS,
            HeaderValue::from_static(EXPOSED_HEADERS),
        );
    }
    response
}

pub async fn preflight(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let known = match headers.get(header::ORIGIN) {
        Some(origin) => is_known(&state, origin).await,
        None => false,
    };
    if !known {
        return ApiError::Forbidden("origin not allowed").into_response();
    }
    let max_age = state.limits.cors_max_age.as_secs();
    (
        StatusCode::NO_CONTENT,
        [
            (
                header::ACCESS_CONTROL_ALLOW_METHODS,
                HeaderValue::from_static(ALLOWED_METHODS),
            ),
            (
                header::ACCESS_CONTROL_ALLOW_HEADERS,
                HeaderValue::from_static(ALLOWED_HEADERS),
            ),
            (header::ACCESS_CONTROL_MAX_AGE, HeaderValue::from(max_age)),
        ],
    )
        .into_response()
}

async fn is_known(state: &AppState, origin: &HeaderValue) -> bool {
    let Ok(origin) = origin.to_str() else {
        return false;
    };
    match state.settings.known_origins(&*state.store).await {
        Ok(known) => known.contains("*") || known.contains(origin),
        Err(err) => {
            tracing::warn!(error = %err, "cannot load allowed origins");
            false
        }
    }
}
