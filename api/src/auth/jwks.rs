//! Keys published by an identity provider as a JSON Web Key Set (`JWT_JWKS_URL`, or an OpenID
//! Connect provider's `jwks_uri`): fetched when first needed, kept, and fetched again when a
//! token names a key id not in the set or the set is older than its refresh interval. A
//! provider can then rotate keys without a restart: a new key is picked up by the first token
//! signed with it, and a removed key stops verifying at the next fetch.

use jsonwebtoken::jwk::{Jwk, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey};
use serde_json::Value;
use std::collections::HashMap;
use std::time::{Duration, Instant};
use tokio::sync::{Mutex, RwLock};

/// Largest key set read (a provider's holds a few keys of a few hundred bytes).
const MAX_JWKS_BYTES: usize = 256 * 1024;
/// Unknown key ids fetch the set again at most this often: tokens with made-up `kid`s cannot
/// turn into a flood of requests to the provider.
const MIN_REFETCH: Duration = Duration::from_secs(1);
/// The longest a fetch of the set may take.
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum JwksError {
    /// The token names no key of the set (or names none and the set has several).
    #[error("no key of the provider's key set verifies this token")]
    UnknownKey,
    /// The provider could not be asked (and no copy of its keys helps).
    #[error("cannot fetch the key set {url}: {reason}")]
    Unreachable { url: String, reason: String },
}

#[derive(Clone)]
struct Key {
    key: DecodingKey,
    algorithm: Option<Algorithm>,
}

#[derive(Default)]
struct Cached {
    keys: HashMap<String, Key>,
    /// Keys without a `kid`: used only when the set holds exactly one key.
    anonymous: Vec<Key>,
    fetched_at: Option<Instant>,
}

pub struct Jwks {
    url: String,
    client: reqwest::Client,
    refresh: Duration,
    cached: RwLock<Cached>,
    fetching: Mutex<()>,
}

impl Jwks {
    pub fn new(url: String, client: reqwest::Client, refresh: Duration) -> Self {
        Self {
            url,
            client,
            refresh,
            cached: RwLock::default(),
            fetching: Mutex::new(()),
        }
    }

    /// The key `kid` names, and the algorithm the set gives it (if any).
    pub async fn key(
        &self,
        kid: Option<&str>,
    ) -> Result<(DecodingKey, Option<Algorithm>), JwksError> {
        {
            let cached = self.cached.read().await;
            if cached
                .fetched_at
                .is_some_and(|at| at.elapsed() < self.refresh)
                && let Some(key) = find(&cached, kid)
            {
                return Ok((key.key, key.algorithm));
            }
        }
        // One fetch at a time; whoever waited for it uses its result.
        let _fetching = self.fetching.lock().await;
        let recent = {
            let cached = self.cached.read().await;
            if let Some(key) = find(&cached, kid)
                && cached
                    .fetched_at
                    .is_some_and(|at| at.elapsed() < self.refresh)
            {
                return Ok((key.key, key.algorithm));
            }
            cached
                .fetched_at
                .is_some_and(|at| at.elapsed() < MIN_REFETCH)
        };
        if !recent {
            match self.fetch().await {
                Ok(fresh) => *self.cached.write().await = fresh,
                Err(err) => {
                    // A stale copy still verifies the keys it holds: a provider that is down
                    // for a moment does not sign everyone out.
                    let cached = self.cached.read().await;
                    return match find(&cached, kid) {
                        Some(key) => {
                            tracing::warn!(error = %err, "JWKS refresh failed; using the keys fetched before");
                            Ok((key.key, key.algorithm))
                        }
                        None => Err(err),
                    };
                }
            }
        }
        let cached = self.cached.read().await;
        find(&cached, kid)
            .map(|key| (key.key, key.algorithm))
            .ok_or(JwksError::UnknownKey)
    }

    async fn fetch(&self) -> Result<Cached, JwksError> {
        let unreachable = |reason: String| JwksError::Unreachable {
            url: self.url.clone(),
            reason,
        };
        let mut response = tokio::time::timeout(FETCH_TIMEOUT, self.client.get(&self.url).send())
            .await
            .map_err(|_| unreachable("timed out".into()))?
            .map_err(|err| unreachable(err.to_string()))?;
        if !response.status().is_success() {
            return Err(unreachable(format!("answered {}", response.status())));
        }
        let mut body = Vec::new();
        loop {
            let chunk = tokio::time::timeout(FETCH_TIMEOUT, response.chunk())
                .await
                .map_err(|_| unreachable("timed out".into()))?
                .map_err(|err| unreachable(err.to_string()))?;
            let Some(chunk) = chunk else { break };
            if body.len() + chunk.len() > MAX_JWKS_BYTES {
                return Err(unreachable(format!("larger than {MAX_JWKS_BYTES} bytes")));
            }
            body.extend_from_slice(&chunk);
        }
        let set: Value =
            serde_json::from_slice(&body).map_err(|err| unreachable(format!("not JSON: {err}")))?;
        let cached = parse_set(&set);
        tracing::info!(url = %self.url, keys = cached.keys.len() + cached.anonymous.len(), "JWKS fetched");
        Ok(cached)
    }
}

/// The signing keys of a set; keys that do not parse, are for encryption or are symmetric are
/// left out (a set may hold keys for other uses).
fn parse_set(set: &Value) -> Cached {
    let mut cached = Cached {
        fetched_at: Some(Instant::now()),
        ..Cached::default()
    };
    let entries = set["keys"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();
    for entry in entries {
        let Ok(jwk) = serde_json::from_value::<Jwk>(entry.clone()) else {
            continue;
        };
        if matches!(jwk.common.public_key_use, Some(PublicKeyUse::Encryption))
            || matches!(
                jwk.algorithm,
                jsonwebtoken::jwk::AlgorithmParameters::OctetKey(_)
            )
        {
            continue;
        }
        let Ok(key) = DecodingKey::from_jwk(&jwk) else {
            continue;
        };
        let algorithm = jwk
            .common
            .key_algorithm
            .and_then(|algorithm| Algorithm::try_from(algorithm).ok());
        let key = Key { key, algorithm };
        match jwk.common.key_id {
            Some(kid) => {
                cached.keys.insert(kid, key);
            }
            None => cached.anonymous.push(key),
        }
    }
    cached
}

fn find(cached: &Cached, kid: Option<&str>) -> Option<Key> {
    match kid {
        Some(kid) => cached.keys.get(kid).cloned(),
        None if cached.keys.len() + cached.anonymous.len() == 1 => cached
            .keys
            .values()
            .next()
            .or(cached.anonymous.first())
            .cloned(),
        None => None,
    }
}
