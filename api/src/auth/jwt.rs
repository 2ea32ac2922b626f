//! Dashboard authentication: JWTs verified with an HS256 secret (development) or a public key
//! (RS/PS/ES/EdDSA, production). `sub` is the user; a configurable claim lists its teams.

use crate::config::JwtArgs;
use crate::error::ApiError;
use axum::extract::{FromRef, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{HeaderMap, header};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation, decode, encode};
use serde_json::{Map, Value};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

/// Who is calling, from a verified token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub user_id: String,
    pub teams: Vec<String>,
}

impl Caller {
    pub fn is_member_of(&self, team_id: &str) -> bool {
        self.teams.iter().any(|team| team == team_id)
    }
}

/// The dashboard API's caller, from `Authorization: Bearer …` (401 otherwise).
impl<S> FromRequestParts<S> for Caller
where
    S: Send + Sync,
    Arc<JwtVerifier>: FromRef<S>,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        Arc::<JwtVerifier>::from_ref(state).caller(&parts.headers)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum JwtConfigError {
    #[error("no JWT key: set JWT_SECRET (HS256) or JWT_PUBLIC_KEY_FILE")]
    Missing,
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
    key: DecodingKey,
    validation: Validation,
    teams_claim: String,
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
        // One algorithm only: a token signed with anything else (or `none`) is refused.
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
        Ok(Self {
            key,
            validation,
            teams_claim: args.jwt_teams_claim.clone(),
        })
    }

    pub fn verify(&self, token: &str) -> Result<Caller, ApiError> {
        let claims = decode::<Map<String, Value>>(token, &self.key, &self.validation)
            .map_err(|err| {
                tracing::debug!(reason = %err, "token rejected");
                ApiError::Unauthorized("invalid or expired token")
            })?
            .claims;
        // Control characters (NUL above all, which Postgres text refuses) belong in no user or
        // team id: such a `sub` is refused, such a team ignored.
        let user_id = match claims.get("sub") {
            Some(Value::String(sub)) if !sub.is_empty() && !has_control(sub) => sub.clone(),
            _ => return Err(ApiError::Unauthorized("invalid or expired token")),
        };
        let teams = match claims.get(&self.teams_claim) {
            Some(Value::Array(teams)) => teams
                .iter()
                .filter_map(Value::as_str)
                .filter(|team| !has_control(team))
                .map(str::to_owned)
                .collect(),
            Some(Value::String(teams)) => teams
                .split([' ', ','])
                .filter(|team| !team.is_empty() && !has_control(team))
                .map(str::to_owned)
                .collect(),
            _ => Vec::new(),
        };
        Ok(Caller { user_id, teams })
    }

    /// The caller of a dashboard request, from `Authorization: Bearer …`.
    pub fn caller(&self, headers: &HeaderMap) -> Result<Caller, ApiError> {
        let value = headers
            .get(header::AUTHORIZATION)
            .ok_or(ApiError::Unauthorized("missing bearer token"))?
            .to_str()
            .map_err(|_| ApiError::Unauthorized("invalid or expired token"))?;
        let token = value
            .strip_prefix("Bearer ")
            .or_else(|| value.strip_prefix("bearer "))
            .ok_or(ApiError::Unauthorized("missing bearer token"))?;
        self.verify(token.trim())
    }
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
