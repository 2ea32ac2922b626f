//! Running the HTTP server: `serve(listener, state, http, shutdown)`, so tests pass their own
//! listener (port 0) and shutdown; `shutdown_signal()` for SIGTERM and Ctrl-C. Every process
//! accepts connections through [`connections`], which bounds how long a client may take,
//! answers stream subscriptions on a lean path and hands everything else to the router.

mod connections;
mod hyper_errors;

use crate::config::HttpArgs;
use crate::http::{api_app, app, stream_app};
use crate::state::{AppState, StreamState};
use chrono::TimeDelta;
use std::future::Future;
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::time::Instant;

const PURGE_EVERY: Duration = Duration::from_secs(3600);
/// Sign-ins in flight cost a row each to anyone who opens `/login`: their expired rows (and
/// expired sessions) go every minute, so that table holds at most minutes of them.
const SIGN_IN_PURGE_EVERY: Duration = Duration::from_secs(60);

/// What a process serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The api and the team stream (`serve`, `dev`).
    All,
    /// The api alone (`api`).
    Api,
}

/// Serves the api and the team stream.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    http: HttpArgs,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve_role(listener, state, Role::All, http, shutdown).await
}

/// Serves `role` until `shutdown`; then finishes requests in flight and the background work
/// (the relay's last round, the sweeper), all within `http.shutdown_timeout`.
pub async fn serve_role(
    listener: TcpListener,
    state: AppState,
    role: Role,
    http: HttpArgs,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let router = match role {
        Role::All => app(state.clone()),
        Role::Api => api_app(state.clone()),
    };
    let purge = tokio::spawn(purge_expired_rows(state.clone()));
    let purge_sign_ins = tokio::spawn(purge_expired_sign_ins(state.clone()));
    let rate_counts = tokio::spawn(flush_rate_counts(state.clone()));
    let relay = tokio::spawn(state.relay.clone().run(state.shutdown.clone()));
    let sweeper = state.attachments.storage.is_some().then(|| {
        tokio::spawn(crate::attachments::sweeper::run(
            state.settling(),
            state.shutdown.clone(),
        ))
    });
    let streams = (role == Role::All).then(|| state.streams.clone());
    let shutdown_timeout = http.shutdown_timeout;
    let (shutdown, started) = noting_when(shutdown);
    connections::serve(listener, router, streams, http, shutdown).await;
    // The relay and the sweeper stop on this token (on `All`, it is already cancelled).
    state.shutdown.cancel();
    purge.abort();
    purge_sign_ins.abort();
    rate_counts.abort();
    let background = async {
        let _ = relay.await;
        if let Some(sweeper) = sweeper {
            let _ = sweeper.await;
        }
    };
    let deadline = started.get().copied().unwrap_or_else(Instant::now) + shutdown_timeout;
    if tokio::time::timeout_at(deadline, background).await.is_err() {
        tracing::warn!(
            "shutdown timeout: the relay's last round did not finish; the next start publishes what is left"
        );
    }
    Ok(())
}

/// `shutdown`, and the instant it resolved once it has.
fn noting_when(
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> (
    impl Future<Output = ()> + Send + 'static,
    Arc<OnceLock<Instant>>,
) {
    let started = Arc::new(OnceLock::new());
    let noted = started.clone();
    let shutdown = async move {
        shutdown.await;
        let _ = noted.set(Instant::now());
    };
    (shutdown, started)
}

/// Serves the team stream alone (`sse`): no database, only the bus.
pub async fn serve_streams(
    listener: TcpListener,
    state: StreamState,
    http: HttpArgs,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    connections::serve(
        listener,
        stream_app(state.clone()),
        Some(state),
        http,
        shutdown,
    )
    .await;
    Ok(())
}

/// Writes the rate-limit hits counted in memory to the database (see `rate_limit`).
async fn flush_rate_counts(state: AppState) {
    let mut every = tokio::time::interval(crate::rate_limit::FLUSH_EVERY);
    loop {
        every.tick().await;
        let now_ms = state.clock.now().timestamp_millis();
        if let Err(err) = state.rate_limiter.flush(&*state.store, now_ms).await {
            tracing::warn!(error = %err, "writing rate-limit counts failed; retrying");
        }
    }
}

/// Idempotency records are only needed for 24 h, published outbox rows not at all: this keeps
/// both tables small.
async fn purge_expired_rows(state: AppState) {
    let mut every = tokio::time::interval(PURGE_EVERY);
    loop {
        every.tick().await;
        let before = state.clock.now() - TimeDelta::hours(24);
        match state.store.purge_idempotency(before).await {
            Ok(0) => {}
            Ok(purged) => tracing::info!(purged, "expired idempotency keys purged"),
            Err(err) => tracing::warn!(error = %err, "idempotency purge failed"),
        }
        // Published events live on in the bus; a day of them stays here for inspection.
        match state.store.purge_published_events(before).await {
            Ok(0) => {}
            Ok(purged) => tracing::info!(purged, "published outbox events purged"),
            Err(err) => tracing::warn!(error = %err, "outbox purge failed"),
        }
    }
}

/// Expired sessions and sign-ins serve no one: they are deleted.
async fn purge_expired_sign_ins(state: AppState) {
    let mut every = tokio::time::interval(SIGN_IN_PURGE_EVERY);
    loop {
        every.tick().await;
        match state.store.purge_sessions(state.clock.now()).await {
            Ok(0) => {}
            Ok(purged) => tracing::debug!(purged, "expired sessions and sign-ins purged"),
            Err(err) => tracing::warn!(error = %err, "session purge failed"),
        }
    }
}

/// Resolves on SIGTERM (Kubernetes stopping the pod) or Ctrl-C.
pub async fn shutdown_signal() {
    bichito_core::shutdown::signal().await;
    tracing::info!("shutting down: finishing requests in flight");
}
