//! The HTTP surface: `app(state)` builds the router; one module per resource.

mod attachments;
mod bugs;
pub(crate) mod cors;
pub mod extract;
mod health;
mod inbox;
pub(crate) mod ingest;
pub mod openapi;
mod session;
mod storage;
pub mod widget;

pub use session::SIGN_IN_LIFETIME;

use crate::error::ApiError;
use crate::metrics;
use crate::metrics::Metrics;
use crate::state::{AppState, StreamState};
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::handler::Handler;
use axum::http::Method;
use axum::middleware;
use axum::routing::get;
use std::sync::Arc;
use tower_http::compression::CompressionLayer;
use utoipa_axum::router::{OpenApiRouter, UtoipaMethodRouter};
use utoipa_axum::routes;

/// Everything in one process (`serve`, `dev`): the api and the team stream.
pub fn app(state: AppState) -> Router {
    let streams = state.streams.clone();
    finish(
        api_routes(state.clone()).merge(stream_app_routes(streams)),
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
        stream_app_routes(state.clone()).merge(operability),
        state.metrics.clone(),
    )
}

/// The routes an API key opens: the widget's, servers', CLIs', Sentry SDKs'.
fn key_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(with_options(routes!(ingest::create_bug), cors::preflight))
        .routes(with_options(routes!(ingest::widget_info), cors::preflight))
        // Sentry SDKs' feedback, by their DSN (see `crate::sentry`).
        .routes(with_options(
            routes!(crate::sentry::envelope),
            cors::preflight,
        ))
        .routes(with_options(
            routes!(attachments::create_attachment),
            cors::preflight,
        ))
        .routes(with_options(
            routes!(attachments::complete_attachment),
            cors::preflight,
        ))
        // The local backend's signed URLs (404 with another backend).
        .routes(with_options(routes!(storage::put_upload), cors::preflight))
        .routes(routes!(storage::get_attachment))
}

/// The routes a dashboard's token or session opens.
fn dashboard_routes() -> OpenApiRouter<AppState> {
    let options = cors::dashboard_preflight;
    OpenApiRouter::new()
        .routes(with_options(routes!(bugs::list_team_bugs), options))
        .routes(with_options(
            routes!(bugs::get_bug, bugs::patch_bug, bugs::delete_bug),
            options,
        ))
        .routes(with_options(
            routes!(bugs::list_comments, bugs::create_comment),
            options,
        ))
        .routes(with_options(
            routes!(
                session::create_session,
                session::get_session,
                session::delete_session
            ),
            options,
        ))
        .routes(with_options(routes!(session::create_ticket), options))
}

fn stream_routes() -> OpenApiRouter<StreamState> {
    OpenApiRouter::new().routes(with_options(
        routes!(crate::stream::handler::team_stream),
        cors::dashboard_preflight,
    ))
}

/// The document itself.
fn meta_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(openapi::serve))
}

/// The documented routes' part of the OpenAPI document (see [`openapi::document`]).
fn documented_routes() -> utoipa::openapi::OpenApi {
    let mut document = key_routes().into_openapi();
    document.merge(dashboard_routes().into_openapi());
    document.merge(stream_routes().into_openapi());
    document.merge(meta_routes().into_openapi());
    document
}

/// A documented route that also answers CORS preflights (`OPTIONS`, not in the document).
fn with_options<S, H, T>(routes: UtoipaMethodRouter<S>, preflight: H) -> UtoipaMethodRouter<S>
where
    S: Clone + Send + Sync + 'static,
    H: Handler<T, S>,
    T: 'static,
{
    let (schemas, paths, router) = routes;
    (schemas, paths, router.options(preflight))
}

fn api_routes(state: AppState) -> Router {
    let (key_routes, _) = key_routes().split_for_parts();
    let widget_routes = key_routes.route_layer(middleware::from_fn_with_state(
        state.clone(),
        cors::allow_known_origins,
    ));
    let (dashboard_routes, _) = dashboard_routes().split_for_parts();
    let dashboard_routes = dashboard_routes
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
        .merge(meta_routes().split_for_parts().0)
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

fn stream_app_routes(state: StreamState) -> Router {
    let (routes, _) = stream_routes().split_for_parts();
    routes
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
