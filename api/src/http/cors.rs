//! CORS, two ways.
//!
//! The widget routes: a preflight carries no API key, so it is answered for any origin that
//! some honeycomb allows; the actual request is then checked against its own honeycomb's
//! `allowedOrigins` (403 when not listed). Server-side callers send no `Origin` and are
//! unaffected.
//!
//! The dashboard API and the team stream: allowed from the origins in `DASHBOARD_ORIGINS`
//! only (dashboards hosted elsewhere than bichito), with credentials: such a dashboard signs
//! in with the session cookie (`fetch(…, {credentials: "include"})`,
//! `new EventSource(url, {withCredentials: true})`). The origins are listed one by one, never
//! `*`, so no other site can read what the cookie opens.

use crate::error::ApiError;
use crate::state::{AppState, StreamState};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

const ALLOWED_METHODS: &str = "GET, POST, PUT, OPTIONS";
const ALLOWED_HEADERS: &str = "content-type, x-api-key, idempotency-key";
const EXPOSED_HEADERS: &str = "retry-after, idempotent-replayed";
const DASHBOARD_METHODS: &str = "GET, POST, PATCH, DELETE, OPTIONS";
const DASHBOARD_HEADERS: &str = "authorization, content-type, last-event-id";
const DASHBOARD_EXPOSED_HEADERS: &str = "retry-after, www-authenticate";

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
    preflight_answer(ALLOWED_METHODS, ALLOWED_HEADERS, &state.streams)
}

fn preflight_answer(methods: &'static str, headers: &'static str, state: &StreamState) -> Response {
    let max_age = state.cors.cors_max_age.as_secs();
    (
        StatusCode::NO_CONTENT,
        [
            (
                header::ACCESS_CONTROL_ALLOW_METHODS,
                HeaderValue::from_static(methods),
            ),
            (
                header::ACCESS_CONTROL_ALLOW_HEADERS,
                HeaderValue::from_static(headers),
            ),
            (header::ACCESS_CONTROL_MAX_AGE, HeaderValue::from(max_age)),
        ],
    )
        .into_response()
}

/// Adds the dashboard CORS headers to the responses of the dashboard API and the stream.
pub async fn allow_dashboard_origins(
    State(state): State<StreamState>,
    request: Request,
    next: Next,
) -> Response {
    let origin = state.dashboard_origin(request.headers());
    let mut response = next.run(request).await;
    add_dashboard_headers(response.headers_mut(), origin);
    response
}

/// The dashboard CORS headers for a request from `origin` (when it is allowed).
pub fn add_dashboard_headers(headers: &mut HeaderMap, origin: Option<HeaderValue>) {
    headers.append(header::VARY, HeaderValue::from_static("origin"));
    if let Some(origin) = origin {
        headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
        headers.insert(
            header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
            HeaderValue::from_static("true"),
        );
        headers.insert(
            header::ACCESS_CONTROL_EXPOSE_HEADERS,
            HeaderValue::from_static(DASHBOARD_EXPOSED_HEADERS),
        );
    }
}

/// A preflight of the dashboard API or the stream: 204 for a dashboard origin, else 403.
pub async fn dashboard_preflight(State(state): State<StreamState>, headers: HeaderMap) -> Response {
    if state.dashboard_origin(&headers).is_none() {
        return ApiError::Forbidden("origin not allowed").into_response();
    }
    let mut response = preflight_answer(DASHBOARD_METHODS, DASHBOARD_HEADERS, &state);
    response.headers_mut().insert(
        header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
        HeaderValue::from_static("true"),
    );
    response
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
