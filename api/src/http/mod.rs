//! The HTTP surface: `app(state)` builds the router; one module per resource.

mod attachments;
mod bugs;
pub(crate) mod cors;
pub mod extract;
mod health;
mod inbox;
pub(crate) mod ingest;
mod session;
mod storage;
pub mod widget;

pub use session::SIGN_IN_LIFETIME;

use crate::attachments::ROUTE_PREFIX;
use crate::error::ApiError;
use crate::metrics;
use crate::metrics::Metrics;
use crate::state::{AppState, StreamState};
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::Method;
use axum::middleware;
use axum::routing::{get, post, put};
use std::sync::Arc;
use tower_http::compression::CompressionLayer;

/// Everything in one process (`serve`, `dev`): the api and the team stream.
pub fn app(state: AppState) -> Router {
    let streams = state.streams.clone();
    finish(
        api_routes(state.clone()).merge(stream_routes(streams)),
        state.metrics.clone(),
    )
}

/// The api alone (`bichito api`).
pub fn api_app(state: AppState) -> Router {
    finish(api_routes(state.clone()), state.metrics.clone())
}

/// The team stream alone (`bichito sse`): no database, only the bus.
pub fn stream_app(state: StreamState) -> Router {
    let operability = Router::new()
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::stream_readyz))
        .route("/metrics", get(health::metrics))
        .route_layer(middleware::from_fn_with_state(
            state.metrics.clone(),
            metrics::track,
        ))
        .with_state(state.clone());
    finish(
        stream_routes(state.clone()).merge(operability),
        state.metrics.clone(),
    )
}

fn api_routes(state: AppState) -> Router {
    let widget_routes = Router::new()
        .route(
            "/api/v1/bugs",
            post(ingest::create_bug).options(cors::preflight),
        )
        .route(
            "/api/v1/widget/info",
            get(ingest::widget_info).options(cors::preflight),
        )
        // Sentry SDKs' feedback, by their DSN (see `crate::sentry`).
        .route(
            "/api/{project_id}/envelope/",
            post(crate::sentry::envelope).options(cors::preflight),
        )
        .route(
            "/api/v1/bugs/{id}/attachments",
            post(attachments::create_attachment).options(cors::preflight),
        )
        .route(
            "/api/v1/bugs/{id}/attachments/complete",
            post(attachments::complete_attachment).options(cors::preflight),
        )
        // The local backend's signed URLs (404 with another backend).
        .route(
            &format!("{ROUTE_PREFIX}/uploads/{{key}}"),
            put(storage::put_upload).options(cors::preflight),
        )
        .route(
            &format!("{ROUTE_PREFIX}/attachments/{{key}}"),
            get(storage::get_attachment),
        )
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            cors::allow_known_origins,
        ));
    let dashboard_routes = Router::new()
        .route(
            "/api/v1/teams/{team_id}/bugs",
            get(bugs::list_team_bugs).options(cors::dashboard_preflight),
        )
        .route(
            "/api/v1/bugs/{id}",
            get(bugs::get_bug)
                .patch(bugs::patch_bug)
                .delete(bugs::delete_bug)
                .options(cors::dashboard_preflight),
        )
        .route(
            "/api/v1/bugs/{id}/comments",
            get(bugs::list_comments)
                .post(bugs::create_comment)
                .options(cors::dashboard_preflight),
        )
        .route(
            "/api/v1/session",
            post(session::create_session)
                .get(session::get_session)
                .delete(session::delete_session)
                .options(cors::dashboard_preflight),
        )
        .route(
            "/api/v1/teams/{team_id}/stream/tickets",
            post(session::create_ticket).options(cors::dashboard_preflight),
        )
        .route_layer(middleware::from_fn_with_state(
            state.streams.clone(),
            cors::allow_dashboard_origins,
        ))
        .layer(DefaultBodyLimit::max(extract::DASHBOARD_BODY_LIMIT))
        // A page of 100 reports is ~60 KB of JSON, ~8 KB gzipped.
        .layer(CompressionLayer::new());
    let login_routes = Router::new()
        .route("/login", get(session::login))
        .route("/login/callback", get(session::login_callback))
        .route("/", get(inbox::home))
        .route("/inbox", get(inbox::page))
        .route("/inbox/{file}", get(inbox::file))
        .route("/widget.js", get(widget::loader))
        .route("/widget/demo", get(widget::demo_page))
        .route("/widget/demo.js", get(widget::demo_script))
        .route("/widget/{version}/{file}", get(widget::versioned))
        .layer(CompressionLayer::new());
    let operability_routes = Router::new()
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(health::metrics));
    Router::new()
        .merge(widget_routes)
        .merge(dashboard_routes)
        .merge(login_routes)
        .merge(operability_routes)
        .route_layer(middleware::from_fn_with_state(
            state.metrics.clone(),
            metrics::track,
        ))
        .with_state(state)
}

fn stream_routes(state: StreamState) -> Router {
    Router::new()
        .route(
            crate::stream::ROUTE,
            get(crate::stream::team_stream).options(cors::dashboard_preflight),
        )
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            cors::allow_dashboard_origins,
        ))
        .route_layer(middleware::from_fn_with_state(
            state.metrics.clone(),
            metrics::track,
        ))
        .with_state(state)
}

/// JSON errors for unknown routes and methods.
fn finish(router: Router, metrics: Arc<Metrics>) -> Router {
    router
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .fallback(move |method: Method| {
            metrics.observe_request(method.as_str(), "unmatched", 404, 0.0);
            async { ApiError::NotFound }
        })
}
