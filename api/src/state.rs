//! Shared state of the api (the store, the JWT verifier, metrics, the settings cache, the bus
//! and the relay) and of the stream alone (`StreamState`: no database).

use crate::attachments::{Attachments, Settling};
use crate::auth::JwtVerifier;
use crate::bus::Bus;
use crate::config::{CorsArgs, LimitArgs, SessionArgs, StreamArgs};
use crate::grants::Grants;
use crate::metrics::Metrics;
use crate::outbox::Relay;
use crate::rate_limit::RateLimiter;
use crate::settings::SettingsCache;
use axum::extract::FromRef;
use bichito_core::clock::Clock;
use bichito_core::store::Store;
use std::ops::Deref;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

#[derive(Clone)]
pub struct AppState(Arc<Inner>);

pub struct Inner {
    pub store: Arc<dyn Store>,
    pub jwt: Arc<JwtVerifier>,
    pub metrics: Arc<Metrics>,
    pub clock: Arc<dyn Clock>,
    pub limits: LimitArgs,
    pub rate_limiter: RateLimiter,
    pub settings: SettingsCache,
    pub bus: Arc<dyn Bus>,
    pub relay: Arc<Relay>,
    pub attachments: Arc<Attachments>,
    pub sessions: SessionArgs,
    /// The base URL clients reach this server at, when configured (`BICHITO_PUBLIC_URL`).
    pub public_url: Option<String>,
    /// Sign-in with an OpenID Connect provider, when configured.
    pub oidc: Option<Arc<crate::login::Oidc>>,
    /// What the team streams of this process share (also all an `sse` process has).
    pub streams: StreamState,
    /// Cancelled when the server shuts down (streams are ended by the bus: `close_streams`).
    pub shutdown: CancellationToken,
}

impl Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

/// What a server is configured with.
#[derive(Debug, Clone, Default)]
pub struct Settings {
    pub limits: LimitArgs,
    pub stream: StreamArgs,
    pub cors: CorsArgs,
    pub sessions: SessionArgs,
    pub public_url: Option<String>,
}

impl AppState {
    pub fn new(
        store: Arc<dyn Store>,
        (bus, grants): (Arc<dyn Bus>, Arc<dyn Grants>),
        jwt: JwtVerifier,
        clock: Arc<dyn Clock>,
        settings: Settings,
        attachments: Attachments,
    ) -> Self {
        let Settings {
            limits,
            stream,
            cors,
            sessions,
            public_url,
        } = settings;
        let oidc = public_url
            .as_deref()
            .and_then(|url| crate::login::Oidc::from_args(&sessions, url))
            .map(Arc::new);
        let settings = SettingsCache::new(limits.honeycomb_cache_ttl);
        let jwt = Arc::new(jwt);
        let metrics = Arc::new(Metrics::new());
        let relay = Arc::new(Relay::new(
            store.clone(),
            bus.clone(),
            clock.clone(),
            metrics.clone(),
        ));
        let streams = StreamState::new(
            bus.clone(),
            grants,
            jwt.clone(),
            metrics.clone(),
            clock.clone(),
            stream,
            cors,
        );
        Self(Arc::new(Inner {
            store,
            jwt,
            metrics,
            clock,
            limits,
            rate_limiter: RateLimiter::default(),
            settings,
            bus,
            relay,
            attachments: Arc::new(attachments),
            sessions,
            public_url,
            oidc,
            shutdown: streams.shutdown.clone(),
            streams,
        }))
    }
}

impl AppState {
    /// Settling attachments and signing their downloads, with this state's parts.
    pub fn settling(&self) -> Settling {
        Settling {
            store: self.store.clone(),
            attachments: self.attachments.clone(),
            clock: self.clock.clone(),
            metrics: self.metrics.clone(),
        }
    }
}

impl crate::auth::SessionCheck for AppState {
    fn jwt(&self) -> &JwtVerifier {
        &self.jwt
    }

    fn store(&self) -> &dyn Store {
        &*self.store
    }

    fn now(&self) -> chrono::DateTime<chrono::Utc> {
        self.clock.now()
    }

    fn allowed_origin(&self, origin: &str, headers: &axum::http::HeaderMap) -> bool {
        crate::auth::session::is_own_origin(origin, headers, self.public_url.as_deref())
            || self
                .streams
                .cors
                .dashboard_origins
                .iter()
                .any(|allowed| allowed.eq_ignore_ascii_case(origin))
    }
}

impl crate::auth::KeyCheck for AppState {
    fn store(&self) -> &dyn Store {
        &*self.store
    }

    fn settings(&self) -> &SettingsCache {
        &self.settings
    }

    fn now(&self) -> chrono::DateTime<chrono::Utc> {
        self.clock.now()
    }
}

impl FromRef<AppState> for StreamState {
    fn from_ref(state: &AppState) -> StreamState {
        state.streams.clone()
    }
}

impl FromRef<AppState> for Arc<Metrics> {
    fn from_ref(state: &AppState) -> Arc<Metrics> {
        state.metrics.clone()
    }
}

/// The state of the team stream: no database, only the bus.
#[derive(Clone)]
pub struct StreamState(Arc<StreamInner>);

pub struct StreamInner {
    pub bus: Arc<dyn Bus>,
    /// Sessions and stream tickets, as every process that streams shares them.
    pub grants: Arc<dyn Grants>,
    pub jwt: Arc<JwtVerifier>,
    pub metrics: Arc<Metrics>,
    pub clock: Arc<dyn Clock>,
    pub settings: StreamArgs,
    /// Browser origins allowed besides the server's own (dashboards hosted elsewhere).
    pub cors: CorsArgs,
    /// Cancelled when the server shuts down (streams are ended by the bus: `close_streams`).
    pub shutdown: CancellationToken,
}

impl Deref for StreamState {
    type Target = StreamInner;
    fn deref(&self) -> &StreamInner {
        &self.0
    }
}

impl StreamState {
    pub fn new(
        bus: Arc<dyn Bus>,
        grants: Arc<dyn Grants>,
        jwt: Arc<JwtVerifier>,
        metrics: Arc<Metrics>,
        clock: Arc<dyn Clock>,
        settings: StreamArgs,
        cors: CorsArgs,
    ) -> Self {
        Self(Arc::new(StreamInner {
            bus,
            grants,
            jwt,
            metrics,
            clock,
            settings,
            cors,
            shutdown: CancellationToken::new(),
        }))
    }
}

impl StreamState {
    /// The `Origin` of a request, when it is one of the dashboard origins allowed.
    pub fn dashboard_origin(
        &self,
        headers: &axum::http::HeaderMap,
    ) -> Option<axum::http::HeaderValue> {
        let origin = headers.get(axum::http::header::ORIGIN)?;
        let text = origin.to_str().ok()?;
        self.cors
            .dashboard_origins
            .iter()
            .any(|allowed| allowed.eq_ignore_ascii_case(text))
            .then(|| origin.clone())
    }
}

impl FromRef<StreamState> for Arc<Metrics> {
    fn from_ref(state: &StreamState) -> Arc<Metrics> {
        state.metrics.clone()
    }
}
