//! The HTTP surface: `app(state)` builds the router; one module per resource.

mod bugs;
mod cors;
pub mod extract;
mod health;
mod ingest;
mod stream;

use crate::error::ApiError;
use crate::metrics;
use crate::state::AppState;
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::middleware;
use axum::routing::{get, post};

pub fn app(state: AppState) -> Router {
    let widget_routes = Router::new()
        .route(
            "/api/v1/bugs",
            post(ingest::create_bug).options(cors::preflight),
        )
        .route(
            "/api/v1/widget/info",
            get(ingest::widget_info).options(cors::preflight),
        )
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            cors::allow_known_origins,
        ));
    let dashboard_routes = Router::new()
        .route("/api/v1/teams/{team_id}/bugs", get(bugs::list_team_bugs))
        .route(
            "/api/v1/bugs/{id}",
            get(bugs::get_bug)
                .patch(bugs::patch_bug)
                .delete(bugs::delete_bug),
        )
        .route(
            "/api/v1/bugs/{id}/comments",
            get(bugs::list_comments).post(bugs::create_comment),
        )
        .route("/api/v1/teams/{team_id}/stream", get(stream::team_stream))
        .layer(DefaultBodyLimit::max(extract::DASHBOARD_BODY_LIMIT));
    let operability_routes = Router::new()
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(health::metrics));
    Router::new()
        .merge(widget_routes)
        .merge(dashboard_routes)
        .merge(operability_routes)
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            metrics::track,
        ))
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .fallback(not_found)
        .with_state(state)
}

async fn not_found(
    axum::extract::State(state): axum::extract::State<AppState>,
    method: axum::http::Method,
) -> ApiError {
    state
        .metrics
        .observe_request(method.as_str(), "unmatched", 404, 0.0);
    ApiError::NotFound
}
