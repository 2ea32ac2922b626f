//! The dashboard API (JWT): a team's list, one bichito, edits, comments, deletion. A bichito or
//! team the caller does not belong to is 404, exactly like one that does not exist. Every
//! bichito a dashboard reads carries, with its attachment, a fresh short-lived download URL.

use crate::attachments::Settled;
use crate::auth::Caller;
use crate::edits;
use crate::error::{ApiError, FieldError};
use crate::http::extract::{JsonBytes, PathParam, QueryParams};
use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use bichito_core::attachment::AttachmentState;
use bichito_core::clock::truncate_to_millis;
use bichito_core::model::{Bichito, Comment};
use serde_json::json;

#[derive(serde::Serialize)]
pub struct Page {
    items: Vec<Bichito>,
    /// Pass as `cursor` for the next (older) page; `null` on the last page.
    next_cursor: Option<String>,
}

pub async fn list_team_bugs(
    State(state): State<AppState>,
    caller: Caller,
    PathParam(team_id): PathParam,
    QueryParams(params): QueryParams,
) -> Result<Json<Page>, ApiError> {
    if !caller.is_member_of(&team_id) {
        return Err(ApiError::NotFound);
    }
    let query = edits::parse_query(&team_id, &params)?;
    let mut items = state.store.list_bichitos(&query).await?;
    for bichito in &mut items {
        with_download(&state, bichito).await;
    }
    let full_page = items.len() == usize::try_from(query.limit).unwrap_or(usize::MAX);
    let next_cursor = items
        .last()
        .filter(|_| full_page)
        .map(|last| last.id.to_string());
    Ok(Json(Page { items, next_cursor }))
}

pub async fn get_bug(
    State(state): State<AppState>,
    caller: Caller,
    PathParam(id): PathParam,
) -> Result<Json<Bichito>, ApiError> {
    let mut bichito = visible_bichito(&state, &caller, &id).await?;
    if bichito.attachment.is_none() && settled_now(&state, bichito.id).await {
        bichito = state
            .store
            .bichito(bichito.id)
            .await?
            .ok_or(ApiError::NotFound)?;
    }
    with_download(&state, &mut bichito).await;
    Ok(Json(bichito))
}

/// Reading a bichito settles its pending upload, if one has arrived: true when it was stamped.
/// A storage failure here only leaves it pending.
async fn settled_now(state: &AppState, id: i64) -> bool {
    if state.attachments.storage.is_none() {
        return false;
    }
    let pending = match state.store.attachment(id).await {
        Ok(Some(record)) if record.state() == AttachmentState::Pending => record,
        _ => return false,
    };
    match state.settling().settle(&pending).await {
        Ok(settled) => settled == Settled::Uploaded,
        Err(err) => {
            tracing::warn!(error = %err, "settling an attachment on read failed");
            false
        }
    }
}

async fn with_download(state: &AppState, bichito: &mut Bichito) {
    if let Some(attachment) = &mut bichito.attachment {
        state.settling().add_download(attachment).await;
    }
}

pub async fn patch_bug(
    State(state): State<AppState>,
    caller: Caller,
    PathParam(id): PathParam,
    JsonBytes(body): JsonBytes,
) -> Result<Json<Bichito>, ApiError> {
    let bichito = visible_bichito(&state, &caller, &id).await?;
    let patch = edits::parse_patch(&body)?;
    if let Some(Some(duplicate_of)) = patch.duplicate_of {
        let original = state.store.bichito(duplicate_of).await?;
        if duplicate_of == bichito.id
            || original.is_none_or(|original| original.team_id != bichito.team_id)
        {
            return Err(ApiError::Validation(vec![FieldError::new(
                "duplicate_of",
                "must be the id of another bichito of the same team",
            )]));
        }
    }
    let now = truncate_to_millis(state.clock.now());
    let mut updated = state
        .store
        .update_bichito(bichito.id, &patch, now)
        .await?
        .ok_or(ApiError::NotFound)?;
    with_download(&state, &mut updated).await;
    Ok(Json(updated))
}

pub async fn delete_bug(
    State(state): State<AppState>,
    caller: Caller,
    PathParam(id): PathParam,
) -> Result<StatusCode, ApiError> {
    let bichito = visible_bichito(&state, &caller, &id).await?;
    let now = truncate_to_millis(state.clock.now());
    if !state.store.delete_bichito(&bichito, now).await? {
        return Err(ApiError::NotFound);
    }
    state.attachments.wake_sweeper();
    Ok(StatusCode::NO_CONTENT)
}

pub async fn create_comment(
    State(state): State<AppState>,
    caller: Caller,
    PathParam(id): PathParam,
    JsonBytes(body): JsonBytes,
) -> Result<Response, ApiError> {
    let bichito = visible_bichito(&state, &caller, &id).await?;
    let text = edits::parse_comment(&body)?;
    let now = truncate_to_millis(state.clock.now());
    let comment = state
        .store
        .add_comment(&bichito, &caller.user_id, &text, now)
        .await?;
    Ok((StatusCode::CREATED, Json(comment)).into_response())
}

pub async fn list_comments(
    State(state): State<AppState>,
    caller: Caller,
    PathParam(id): PathParam,
) -> Result<Response, ApiError> {
    let bichito = visible_bichito(&state, &caller, &id).await?;
    let comments: Vec<Comment> = state.store.comments(bichito.id).await?;
    Ok(Json(json!({ "items": comments })).into_response())
}

/// The bichito `id` if the caller's token lists its team; 404 otherwise.
async fn visible_bichito(state: &AppState, caller: &Caller, id: &str) -> Result<Bichito, ApiError> {
    let id: i64 = id.parse().map_err(|_| ApiError::NotFound)?;
    match state.store.bichito(id).await? {
        Some(bichito) if caller.is_member_of(&bichito.team_id) => Ok(bichito),
        _ => Err(ApiError::NotFound),
    }
}
