//! Dashboard reads of single bichitos (JWT). A bichito of a team the caller does not belong to
//! is 404, exactly like one that does not exist.

use crate::error::ApiError;
use crate::state::AppState;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use bichito_core::model::Bichito;

pub async fn get_bug(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<Bichito>, ApiError> {
    let caller = state.jwt.caller(&headers)?;
    let id: i64 = id.parse().map_err(|_| ApiError::NotFound)?;
    match state.store.bichito(id).await? {
        Some(bichito) if caller.is_member_of(&bichito.team_id) => Ok(Json(bichito)),
        _ => Err(ApiError::NotFound),
    }
}
