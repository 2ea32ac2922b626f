//! API-key authentication: the `x-api-key` of the ingest API, widget info and attachments,
//! checked against its stored hash and expiry, with its honeycomb, and the browser's `Origin`
//! against the honeycomb's `allowedOrigins`.

use crate::error::ApiError;
use crate::settings::SettingsCache;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, header};
use bichito_core::keys;
use bichito_core::model::{ApiKeyRecord, Honeycomb};
use bichito_core::store::Store;
use chrono::{DateTime, Utc};
use std::sync::Arc;

const API_KEY_HEADER: &str = "x-api-key";

/// Who reports: a valid API key (401 otherwise) and its honeycomb, called from no browser or
/// from one of the honeycomb's origins (403 otherwise).
pub struct Reporter {
    pub key: ApiKeyRecord,
    pub honeycomb: Arc<Honeycomb>,
}

/// What checking an API key needs of a process (the api's shared state provides it).
pub trait KeyCheck: Send + Sync {
    fn store(&self) -> &dyn Store;
    fn settings(&self) -> &SettingsCache;
    fn now(&self) -> DateTime<Utc>;
}

impl<S: KeyCheck> FromRequestParts<S> for Reporter {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let (key, honeycomb) = authenticate_key(state, &parts.headers).await?;
        check_origin(&honeycomb, &parts.headers)?;
        Ok(Self { key, honeycomb })
    }
}

/// The key from `x-api-key`, checked against its stored hash and expiry, and its honeycomb.
pub async fn authenticate_key(
    state: &impl KeyCheck,
    headers: &HeaderMap,
) -> Result<(ApiKeyRecord, Arc<Honeycomb>), ApiError> {
    let presented = headers
        .get(API_KEY_HEADER)
        .ok_or(ApiError::InvalidApiKey("missing x-api-key header"))?
        .to_str()
        .map_err(|_| ApiError::InvalidApiKey("unknown API key"))?;
    authenticate_presented(state, presented).await
}

/// A key however it came (`x-api-key`, a Sentry DSN's public key), checked the same way.
pub async fn authenticate_presented(
    state: &impl KeyCheck,
    presented: &str,
) -> Result<(ApiKeyRecord, Arc<Honeycomb>), ApiError> {
    let presented = presented.trim();
    let prefix = keys::prefix_of(presented).ok_or(ApiError::InvalidApiKey("unknown API key"))?;
    // Read before the lookups: a change committed in between makes what they cache stale,
    // never fresh.
    let version = state.store().settings_version().await?;
    let record = state
        .settings()
        .api_key(state.store(), version, prefix)
        .await?
        .filter(|record| keys::verify(presented, &record.hash))
        .ok_or(ApiError::InvalidApiKey("unknown API key"))?;
    if !record.is_valid_at(state.now()) {
        return Err(ApiError::InvalidApiKey("revoked API key"));
    }
    let honeycomb = state
        .settings()
        .honeycomb(state.store(), version, record.honeycomb_id)
        .await?
        .ok_or(ApiError::InvalidApiKey("unknown API key"))?;
    Ok((record, honeycomb))
}

/// Refuses `key` if it was revoked since it was cached (silent drops write nothing that would
/// check it).
pub async fn still_valid(state: &impl KeyCheck, key: &ApiKeyRecord) -> Result<(), ApiError> {
    let current = state.store().api_key_by_prefix(&key.prefix).await?;
    match current {
        Some(current) if current.id == key.id && current.is_valid_at(state.now()) => Ok(()),
        _ => {
            state.settings().forget_key(&key.prefix);
            Err(ApiError::InvalidApiKey("revoked API key"))
        }
    }
}

/// A browser request (one with `Origin`) must come from one of the honeycomb's origins.
pub fn check_origin(honeycomb: &Honeycomb, headers: &HeaderMap) -> Result<(), ApiError> {
    match headers.get(header::ORIGIN).map(HeaderValue::to_str) {
        None => Ok(()),
        Some(Ok(origin)) if honeycomb.allows_origin(origin) => Ok(()),
        Some(_) => Err(ApiError::Forbidden("origin not allowed for this API key")),
    }
}
