//! The dashboard API (JWT): a team's list, one bichito, edits, comments, deletion. A bichito or
//! team the caller does not belong to is 404, exactly like one that does not exist. Every
//! bichito a dashboard reads carries, with its attachment, a fresh short-lived download URL.

use crate::attachments::Settled;
use crate::auth::Caller;
use crate::edits;
use crate::edits::{BichitoChange, NewComment};
use crate::error::{ApiError, FieldError};
use crate::http::extract::{JsonBytes, PathParam, QueryParams};
use crate::http::openapi::{ChangeErrors, ReadErrors, WriteErrors};
use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use bichito_core::attachment::AttachmentState;
use bichito_core::clock::truncate_to_millis;
use bichito_core::model::{Bichito, Comment, Severity, Status};
use utoipa::{IntoParams, ToSchema};

/// A page of a team's bichitos, newest first.
#[derive(serde::Serialize, ToSchema)]
pub struct Page {
    items: Vec<Bichito>,
    /// Pass as `cursor` for the next (older) page; `null` on the last page.
    #[schema(required = true)]
    next_cursor: Option<String>,
}

/// The filters of a team's list (read by `edits::parse_query`).
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)] // Documentation only.
pub struct ListParams {
    #[param(nullable = false)]
    status: Option<Status>,
    #[param(nullable = false)]
    severity: Option<Severity>,
    /// Only this honeycomb's reports.
    #[param(nullable = false)]
    project_id: Option<i64>,
    /// Only reports assigned to this person.
    #[param(nullable = false)]
    assignee: Option<String>,
    /// Only reports with this label.
    #[param(nullable = false)]
    label: Option<String>,
    /// Text the title contains, ignoring case.
    #[param(max_length = 200, nullable = false)]
    q: Option<String>,
    /// Page size: 50 unless given.
    #[param(minimum = 1, maximum = 200, nullable = false)]
    limit: Option<u32>,
    /// The previous page's `next_cursor`.
    #[param(nullable = false)]
    cursor: Option<String>,
}

/// A bichito's comments, oldest first.
#[derive(serde::Serialize, ToSchema)]
pub struct Comments {
    items: Vec<Comment>,
}

#[utoipa::path(
    get,
    path = "/api/v1/teams/{team_id}/bugs",
    tag = "dashboard",
    operation_id = "listTeamBugs",
    summary = "A team's bichitos",
    description = "Newest first, filtered; page with `next_cursor`. A team the caller is not a \
        member of is 404, like one that does not exist.",
    params(("team_id" = String, Path, description = "The team, as in the token's `teams`."), ListParams),
    responses((status = 200, body = Page, description = "A page."), ReadErrors),
    security(("bearer" = []), ("session" = [])),
)]
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

#[utoipa::path(
    get,
    path = "/api/v1/bugs/{id}",
    tag = "dashboard",
    operation_id = "getBug",
    summary = "One bichito",
    description = "With its attachment's short-lived download URL, and its comment count.",
    params(("id" = i64, Path, description = "The bichito's id.")),
    responses((status = 200, body = Bichito, description = "The bichito."), ReadErrors),
    security(("bearer" = []), ("session" = [])),
)]
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

#[utoipa::path(
    patch,
    path = "/api/v1/bugs/{id}",
    tag = "dashboard",
    operation_id = "patchBug",
    summary = "Triage a bichito",
    description = "Changes only the fields given; the team's stream says `bug.updated` with \
        what changed.",
    params(("id" = i64, Path, description = "The bichito's id.")),
    request_body(content = BichitoChange, content_type = "application/json"),
    responses(
        (status = 200, body = Bichito, description = "The bichito as changed.", links(
            ("ReadIt" = (operation_id = "getBug", parameters(("id" = "$response.body#/id")), description = "Read it again.")),
            ("DeleteIt" = (operation_id = "deleteBug", parameters(("id" = "$response.body#/id")), description = "Delete it.")),
        )),
        WriteErrors,
    ),
    security(("bearer" = []), ("session" = [])),
)]
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

#[utoipa::path(
    delete,
    path = "/api/v1/bugs/{id}",
    tag = "dashboard",
    operation_id = "deleteBug",
    summary = "Delete a bichito",
    description = "With its comments and attachment; the team's stream says `bug.deleted`.",
    params(("id" = i64, Path, description = "The bichito's id.")),
    responses((status = 204, description = "Deleted."), ChangeErrors),
    security(("bearer" = []), ("session" = [])),
)]
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

#[utoipa::path(
    post,
    path = "/api/v1/bugs/{id}/comments",
    tag = "dashboard",
    operation_id = "createComment",
    summary = "Comment on a bichito",
    description = "The author is the caller; the team's stream says `bug.commented`.",
    params(("id" = i64, Path, description = "The bichito's id.")),
    request_body(content = NewComment, content_type = "application/json"),
    responses(
        (status = 201, body = Comment, description = "The comment.", links(
            ("TriageIt" = (operation_id = "patchBug", parameters(("id" = "$response.body#/bug_id")), description = "Triage the bichito commented on.")),
            ("ReadTheComments" = (operation_id = "listComments", parameters(("id" = "$response.body#/bug_id")), description = "Read its comments.")),
            ("DeleteIt" = (operation_id = "deleteBug", parameters(("id" = "$response.body#/bug_id")), description = "Delete the bichito.")),
        )),
        WriteErrors,
    ),
    security(("bearer" = []), ("session" = [])),
)]
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

#[utoipa::path(
    get,
    path = "/api/v1/bugs/{id}/comments",
    tag = "dashboard",
    operation_id = "listComments",
    summary = "A bichito's comments",
    params(("id" = i64, Path, description = "The bichito's id.")),
    responses((status = 200, body = Comments, description = "Oldest first."), ReadErrors),
    security(("bearer" = []), ("session" = [])),
)]
pub async fn list_comments(
    State(state): State<AppState>,
    caller: Caller,
    PathParam(id): PathParam,
) -> Result<Response, ApiError> {
    let bichito = visible_bichito(&state, &caller, &id).await?;
    let items = state.store.comments(bichito.id).await?;
    Ok(Json(Comments { items }).into_response())
}

/// The bichito `id` if the caller's token lists its team; 404 otherwise.
async fn visible_bichito(state: &AppState, caller: &Caller, id: &str) -> Result<Bichito, ApiError> {
    let id: i64 = id.parse().map_err(|_| ApiError::NotFound)?;
    match state.store.bichito(id).await? {
        Some(bichito) if caller.is_member_of(&bichito.team_id) => Ok(bichito),
        _ => Err(ApiError::NotFound),
    }
}
