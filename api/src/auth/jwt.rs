//! Dashboard authentication: JWTs verified with an HS256 secret (development), a public key
//! (RS/PS/ES/EdDSA, production) or the keys an identity provider publishes (JWKS). `sub` is
//! the user; a configurable claim lists its teams.

use super::jwks::{Jwks, JwksError};
use crate::config::JwtArgs;
use crate::error::ApiError;
use axum::http::{HeaderMap, header};
use chrono::{DateTime, Utc};
use jsonwebtoken::{
    Algorithm, DecodingKey, EncodingKey, Header, Validation, decode, decode_header, encode,
};
use serde_json::{Map, Value};
use std::str::FromStr;
use std::time::Duration;

/// Who is calling, from a verified token or a session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub user_id: String,
    pub teams: Vec<String>,
    /// When this authorization ends: the token's `exp`, or the session's expiry.
    pub expires_at: DateTime<Utc>,
    /// The session (SHA-256 of its secret) when the caller came with a session cookie.
    pub session: Option<String>,
}

impl Caller {
    pub fn is_member_of(&self, team_id: &str) -> bool {
        self.teams.iter().any(|team| team == team_id)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum JwtConfigError {
    #[error("no JWT key: set JWT_SECRET (HS256), JWT_PUBLIC_KEY_FILE or JWT_JWKS_URL")]
    Missing,
    #[error("set one of JWT_PUBLIC_KEY_FILE and JWT_JWKS_URL, not both")]
    TwoKeySources,
    #[error("JWT_JWKS_URL {0:?} is not an http(s) URL")]
    JwksUrl(String),
    #[error("unknown JWT algorithm {0:?}")]
    UnknownAlgorithm(String),
    #[error("JWT algorithm {0:?} does not match the configured key")]
    AlgorithmMismatch(String),
    #[error("cannot read the JWT public key {path}: {source}")]
    ReadKey {
        path: String,
        source: std::io::Error,
    },
    #[error("invalid JWT key: {0}")]
    InvalidKey(jsonwebtoken::errors::Error),
}

pub struct JwtVerifier {
    keys: Keys,
    validation: Validation,
    teams_claim: String,
}

enum Keys {
    /// A secret or a public key, and the one algorithm it verifies.
    Fixed(DecodingKey),
    /// A provider's published keys; the algorithm is the configured one, else the key's.
    Published {
        jwks: Jwks,
        algorithm: Option<Algorithm>,
    },
}

impl JwtVerifier {
    /// Builds the verifier from configuration; `fallback_secret` stands in for `JWT_SECRET` in
    /// development when no key is configured.
    pub fn from_args(
        args: &JwtArgs,
        fallback_secret: Option<&str>,
    ) -> Result<Self, JwtConfigError> {
        let configured = args
            .jwt_algorithm
            .as_deref()
            .map(parse_algorithm)
            .transpose()?;
        if let Some(url) = &args.jwt_jwks_url {
            if args.jwt_public_key_file.is_some() {
                return Err(JwtConfigError::TwoKeySources);
            }
            if !(url.starts_with("https://") || url.starts_with("http://")) {
                return Err(JwtConfigError::JwksUrl(url.clone()));
            }
            if let Some(algorithm) = configured
                && is_shared_secret(algorithm)
            {
                return Err(JwtConfigError::AlgorithmMismatch(format!("{algorithm:?}")));
            }
            let jwks = Jwks::new(url.clone(), http_client(), args.jwt_jwks_refresh);
            return Ok(Self {
                keys: Keys::Published {
                    jwks,
                    algorithm: configured,
                },
                validation: validation(args, configured.unwrap_or(Algorithm::RS256)),
                teams_claim: args.jwt_teams_claim.clone(),
            });
        }
        let (key, algorithm) = match (
            &args.jwt_public_key_file,
            args.jwt_secret.as_deref().or(fallback_secret),
        ) {
            (Some(path), _) => {
                let pem = std::fs::read(path).map_err(|source| JwtConfigError::ReadKey {
                    path: path.display().to_string(),
                    source,
                })?;
                let algorithm = configured.unwrap_or(Algorithm::RS256);
                let key = match algorithm {
                    Algorithm::RS256
                    | Algorithm::RS384
                    | Algorithm::RS512
                    | Algorithm::PS256
                    | Algorithm::PS384
                    | Algorithm::PS512 => DecodingKey::from_rsa_pem(&pem),
                    Algorithm::ES256 | Algorithm::ES384 => DecodingKey::from_ec_pem(&pem),
                    Algorithm::EdDSA => DecodingKey::from_ed_pem(&pem),
                    other => return Err(JwtConfigError::AlgorithmMismatch(format!("{other:?}"))),
                }
                .map_err(JwtConfigError::InvalidKey)?;
                (key, algorithm)
            }
            (None, Some(secret)) => {
                let algorithm = configured.unwrap_or(Algorithm::HS256);
                if !matches!(
                    algorithm,
                    Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512
                ) {
                    return Err(JwtConfigError::AlgorithmMismatch(format!("{algorithm:?}")));
                }
                (DecodingKey::from_secret(secret.as_bytes()), algorithm)
            }
            (None, None) => return Err(JwtConfigError::Missing),
        };
        Ok(Self {
            keys: Keys::Fixed(key),
            validation: validation(args, algorithm),
            teams_claim: args.jwt_teams_claim.clone(),
        })
    }

    /// Fetches a provider's keys ahead of the first token (a start-up check; failures are only
    /// logged, as the provider may come up later).
    pub async fn prefetch(&self) {
        if let Keys::Published { jwks, .. } = &self.keys
            && let Err(err) = jwks.key(None).await
            && !matches!(err, JwksError::UnknownKey)
        {
            tracing::warn!(error = %err, "cannot fetch the JWT key set yet");
        }
    }

    pub async fn verify(&self, token: &str) -> Result<Caller, ApiError> {
        let rejected = |err: jsonwebtoken::errors::Error| {
            tracing::debug!(reason = %err, "token rejected");
            ApiError::Unauthorized("invalid or expired token")
        };
        let claims = match &self.keys {
            Keys::Fixed(key) => decode::<Map<String, Value>>(token, key, &self.validation),
            Keys::Published { jwks, algorithm } => {
                let header = decode_header(token).map_err(rejected)?;
                let (key, key_algorithm) =
                    jwks.key(header.kid.as_deref())
                        .await
                        .map_err(|err| match err {
                            JwksError::UnknownKey => {
                                ApiError::Unauthorized("invalid or expired token")
                            }
                            JwksError::Unreachable { .. } => {
                                tracing::warn!(error = %err, "cannot verify a token");
                                ApiError::Unavailable
                            }
                        })?;
                // The configured algorithm, else the key's; the header's only when neither
                // says, and never a shared-secret one: a public key is no secret.
                let algorithm = algorithm.or(key_algorithm).unwrap_or(header.alg);
                if is_shared_secret(algorithm) {
                    return Err(ApiError::Unauthorized("invalid or expired token"));
                }
                let mut validation = self.validation.clone();
                validation.algorithms = vec![algorithm];
                decode::<Map<String, Value>>(token, &key, &validation)
            }
        }
        .map_err(rejected)?
        .claims;
        let expires_at = claims
            .get("exp")
            .and_then(Value::as_f64)
            .and_then(|exp| DateTime::from_timestamp(exp as i64, 0))
            .ok_or(ApiError::Unauthorized("invalid or expired token"))?;
        // Control characters (NUL above all, which Postgres text refuses) belong in no user or
        // team id: such a `sub` is refused, such a team ignored.
        let user_id = match claims.get("sub") {
            Some(Value::String(sub)) if !sub.is_empty() && !has_control(sub) => sub.clone(),
            _ => return Err(ApiError::Unauthorized("invalid or expired token")),
        };
        let teams = teams_of(claims.get(&self.teams_claim));
        Ok(Caller {
            user_id,
            teams,
            expires_at,
            session: None,
        })
    }

    /// The caller of a dashboard request, from `Authorization: Bearer …`.
    pub async fn caller(&self, headers: &HeaderMap) -> Result<Caller, ApiError> {
        let value = headers
            .get(header::AUTHORIZATION)
            .ok_or(ApiError::Unauthorized("missing bearer token"))?
            .to_str()
            .map_err(|_| ApiError::Unauthorized("invalid or expired token"))?;
        let token = value
            .strip_prefix("Bearer ")
            .or_else(|| value.strip_prefix("bearer "))
            .ok_or(ApiError::Unauthorized("missing bearer token"))?;
        self.verify(token.trim()).await
    }
}

/// The teams a claim lists: an array of strings, or one string of names separated by spaces
/// or commas. Control characters (NUL above all, which Postgres text refuses) belong in no team
/// id: such a team is ignored.
pub fn teams_of(claim: Option<&Value>) -> Vec<String> {
    match claim {
        Some(Value::Array(teams)) => teams
            .iter()
            .filter_map(Value::as_str)
            .filter(|team| !team.is_empty() && !has_control(team))
            .map(str::to_owned)
            .collect(),
        Some(Value::String(teams)) => teams
            .split([' ', ','])
            .filter(|team| !team.is_empty() && !has_control(team))
            .map(str::to_owned)
            .collect(),
        _ => Vec::new(),
    }
}

/// One algorithm only: a token signed with anything else (or `none`) is refused.
fn validation(args: &JwtArgs, algorithm: Algorithm) -> Validation {
    let mut validation = Validation::new(algorithm);
    validation.set_required_spec_claims(&["exp", "sub"]);
    // `exp` and `nbf` get the same leeway for clock skew between issuer and server.
    validation.validate_nbf = true;
    validation.leeway = 30;
    match &args.jwt_audience {
        Some(audience) => validation.set_audience(&[audience]),
        None => validation.validate_aud = false,
    }
    if let Some(issuer) = &args.jwt_issuer {
        validation.set_issuer(&[issuer]);
    }
    validation
}

fn is_shared_secret(algorithm: Algorithm) -> bool {
    matches!(
        algorithm,
        Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512
    )
}

/// The client that asks identity providers (keys, OpenID Connect): bounded in time, and it
/// follows no redirect.
pub fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .connect_timeout(std::time::Duration::from_secs(3))
        .timeout(std::time::Duration::from_secs(10))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap_or_default()
}

fn has_control(text: &str) -> bool {
    text.chars().any(char::is_control)
}

fn parse_algorithm(name: &str) -> Result<Algorithm, JwtConfigError> {
    Algorithm::from_str(name).map_err(|_| JwtConfigError::UnknownAlgorithm(name.to_owned()))
}

/// Mints an HS256 token for `user_id` and `teams`, valid for `ttl`.
pub fn mint_token(
    secret: &str,
    teams_claim: &str,
    user_id: &str,
    teams: &[String],
    ttl: Duration,
) -> Result<String, jsonwebtoken::errors::Error> {
    let now = chrono::Utc::now().timestamp();
    let ttl = i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX / 2);
    let mut claims = Map::new();
    claims.insert("sub".into(), Value::from(user_id));
    claims.insert(teams_claim.into(), Value::from(teams.to_vec()));
    claims.insert("iat".into(), Value::from(now));
    claims.insert("exp".into(), Value::from(now.saturating_add(ttl)));
    encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
}
