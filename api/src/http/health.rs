//! `/healthz` (the process is up), `/readyz` (the database, or for `sse` the bus, answers),
//! `/metrics`.

use crate::error::ApiError;
use crate::metrics::Metrics;
use crate::state::{AppState, StreamState};
use axum::Json;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use serde_json::{Value, json};
use std::sync::Arc;

pub async fn healthz() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

pub async fn readyz(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    state.store.ping().await.map_err(|err| {
        tracing::warn!(error = %err, "not ready: database unreachable");
        ApiError::Unavailable
    })?;
    Ok(Json(
        json!({"status": "ready", "database": state.store.backend()}),
    ))
}

pub async fn metrics(State(metrics): State<Arc<Metrics>>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        metrics.render(),
    )
}

pub async fn stream_readyz(State(state): State<StreamState>) -> Result<Json<Value>, ApiError> {
    state.bus.head().await.map_err(|err| {
        tracing::warn!(error = %err, "not ready: bus unreachable");
        ApiError::Unavailable
    })?;
    Ok(Json(json!({"status": "ready"})))
}
