//! Sign-in with an OpenID Connect provider: the authorization code flow with PKCE (S256), a
//! `state` bound to the browser and a `nonce` bound to the ID token.
//!
//! The provider is found by discovery (`<issuer>/.well-known/openid-configuration`), once, at
//! the first sign-in (again after a failure). Its ID tokens are verified with its published
//! keys (the same key-set cache as `JWT_JWKS_URL`): signature, `iss`, `aud` (this client),
//! `exp`, `nonce`. The user is `sub`; teams come from a configurable claim of the ID token,
//! or of the userinfo endpoint when the ID token does not carry it.

use crate::auth::{Jwks, JwksError, http_client, teams_of};
use crate::config::SessionArgs;
use crate::error::ApiError;
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use jsonwebtoken::{Algorithm, Validation, decode, decode_header};
use serde::Deserialize;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use std::time::Duration;

/// How long a provider's keys are trusted before being fetched again.
const KEY_REFRESH: Duration = Duration::from_secs(300);

pub struct Oidc {
    issuer: String,
    client_id: String,
    client_secret: Option<String>,
    scopes: String,
    teams_claim: String,
    redirect_uri: String,
    client: reqwest::Client,
    provider: tokio::sync::OnceCell<Provider>,
}

struct Provider {
    authorization_endpoint: String,
    token_endpoint: String,
    userinfo_endpoint: Option<String>,
    keys: Jwks,
}

#[derive(Deserialize)]
struct Discovery {
    issuer: String,
    authorization_endpoint: String,
    token_endpoint: String,
    jwks_uri: String,
    userinfo_endpoint: Option<String>,
}

#[derive(Deserialize)]
struct TokenResponse {
    id_token: Option<String>,
    access_token: Option<String>,
}

/// Who signed in.
pub struct SignedIn {
    pub user_id: String,
    pub teams: Vec<String>,
}

/// The PKCE challenge of a verifier (RFC 7636, S256).
pub fn pkce_challenge(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

fn provider_failed(what: &str, err: impl std::fmt::Display) -> ApiError {
    tracing::warn!(error = %err, "OpenID Connect provider: {what}");
    ApiError::Unavailable
}

fn refused(reason: &'static str) -> ApiError {
    tracing::info!(reason, "sign-in refused");
    ApiError::Unauthorized(reason)
}

impl Oidc {
    /// The sign-in configured by `args` (none without `OIDC_ISSUER` and `OIDC_CLIENT_ID`); the
    /// provider sends people back to `<public URL>/login/callback`.
    pub fn from_args(args: &SessionArgs, public_url: &str) -> Option<Self> {
        let issuer = args.oidc_issuer.clone()?;
        let client_id = args.oidc_client_id.clone()?;
        Some(Self {
            issuer: issuer.trim_end_matches('/').to_owned(),
            client_id,
            client_secret: args.oidc_client_secret.clone(),
            scopes: args.oidc_scopes.clone(),
            teams_claim: args.oidc_teams_claim.clone(),
            redirect_uri: format!("{}/login/callback", public_url.trim_end_matches('/')),
            client: http_client(),
            provider: tokio::sync::OnceCell::new(),
        })
    }

    async fn provider(&self) -> Result<&Provider, ApiError> {
        self.provider
            .get_or_try_init(|| async {
                let url = format!("{}/.well-known/openid-configuration", self.issuer);
                let discovery: Discovery = self
                    .client
                    .get(&url)
                    .send()
                    .await
                    .and_then(reqwest::Response::error_for_status)
                    .map_err(|err| provider_failed("discovery", err))?
                    .json()
                    .await
                    .map_err(|err| provider_failed("discovery", err))?;
                if discovery.issuer.trim_end_matches('/') != self.issuer {
                    return Err(provider_failed(
                        "discovery",
                        format!(
                            "the document names issuer {:?}, not {:?}",
                            discovery.issuer, self.issuer
                        ),
                    ));
                }
                Ok(Provider {
                    authorization_endpoint: discovery.authorization_endpoint,
                    token_endpoint: discovery.token_endpoint,
                    userinfo_endpoint: discovery.userinfo_endpoint,
                    keys: Jwks::new(discovery.jwks_uri, self.client.clone(), KEY_REFRESH),
                })
            })
            .await
    }

    /// Where to send the browser to sign in.
    pub async fn authorization_url(
        &self,
        state: &str,
        nonce: &str,
        verifier: &str,
    ) -> Result<String, ApiError> {
        let provider = self.provider().await?;
        let query = form_urlencoded::Serializer::new(String::new())
            .append_pair("response_type", "code")
            .append_pair("client_id", &self.client_id)
            .append_pair("redirect_uri", &self.redirect_uri)
            .append_pair("scope", &self.scopes)
            .append_pair("state", state)
            .append_pair("nonce", nonce)
            .append_pair("code_challenge", &pkce_challenge(verifier))
            .append_pair("code_challenge_method", "S256")
            .finish();
        let separator = if provider.authorization_endpoint.contains('?') {
            '&'
        } else {
            '?'
        };
        Ok(format!(
            "{}{separator}{query}",
            provider.authorization_endpoint
        ))
    }

    /// Trades the callback's code for an ID token, verifies it, and says who signed in.
    pub async fn finish(
        &self,
        code: &str,
        verifier: &str,
        nonce: &str,
    ) -> Result<SignedIn, ApiError> {
        let provider = self.provider().await?;
        // The serializer is not `Send`: the body is finished before anything is awaited.
        let body = {
            let mut form = form_urlencoded::Serializer::new(String::new());
            form.append_pair("grant_type", "authorization_code")
                .append_pair("code", code)
                .append_pair("redirect_uri", &self.redirect_uri)
                .append_pair("code_verifier", verifier);
            if self.client_secret.is_none() {
                form.append_pair("client_id", &self.client_id);
            }
            form.finish()
        };
        let mut request = self.client.post(&provider.token_endpoint).header(
            reqwest::header::CONTENT_TYPE,
            "application/x-www-form-urlencoded",
        );
        // client_secret_basic (RFC 6749 2.3.1: both parts form-encoded first).
        if let Some(secret) = &self.client_secret {
            let encode =
                |text: &str| form_urlencoded::byte_serialize(text.as_bytes()).collect::<String>();
            let credentials =
                STANDARD.encode(format!("{}:{}", encode(&self.client_id), encode(secret)));
            request = request.header(
                reqwest::header::AUTHORIZATION,
                format!("Basic {credentials}"),
            );
        }
        let response = request
            .body(body)
            .send()
            .await
            .map_err(|err| provider_failed("token request", err))?;
        if response.status().is_client_error() {
            let body = response.text().await.unwrap_or_default();
            tracing::info!(body = %body.chars().take(300).collect::<String>(), "the provider refused the code");
            return Err(refused("the identity provider refused the sign-in"));
        }
        let tokens: TokenResponse = response
            .error_for_status()
            .map_err(|err| provider_failed("token request", err))?
            .json()
            .await
            .map_err(|err| provider_failed("token response", err))?;
        let id_token = tokens
            .id_token
            .ok_or_else(|| provider_failed("token response", "no id_token"))?;
        let claims = self.verify_id_token(provider, &id_token).await?;
        if claims.get("nonce").and_then(Value::as_str) != Some(nonce) {
            return Err(refused("the ID token's nonce does not match this sign-in"));
        }
        let user_id = match claims.get("sub") {
            Some(Value::String(sub)) if !sub.is_empty() && !sub.chars().any(char::is_control) => {
                sub.clone()
            }
            _ => return Err(refused("the ID token names no user")),
        };
        let teams = match claims.get(&self.teams_claim) {
            Some(claim) => teams_of(Some(claim)),
            None => {
                self.userinfo_teams(provider, tokens.access_token.as_deref(), &user_id)
                    .await?
            }
        };
        Ok(SignedIn { user_id, teams })
    }

    async fn verify_id_token(
        &self,
        provider: &Provider,
        token: &str,
    ) -> Result<Map<String, Value>, ApiError> {
        let invalid = |err: jsonwebtoken::errors::Error| {
            tracing::info!(error = %err, "ID token refused");
            ApiError::Unauthorized("the identity provider's ID token does not verify")
        };
        let header = decode_header(token).map_err(invalid)?;
        let (key, key_algorithm) =
            provider
                .keys
                .key(header.kid.as_deref())
                .await
                .map_err(|err| match err {
                    JwksError::UnknownKey => {
                        ApiError::Unauthorized("the identity provider's ID token does not verify")
                    }
                    JwksError::Unreachable { .. } => provider_failed("keys", err),
                })?;
        let algorithm = key_algorithm.unwrap_or(header.alg);
        if matches!(
            algorithm,
            Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512
        ) {
            return Err(ApiError::Unauthorized(
                "the identity provider's ID token does not verify",
            ));
        }
        let mut validation = Validation::new(algorithm);
        validation.set_required_spec_claims(&["exp", "sub", "iss", "aud"]);
        validation.set_audience(&[&self.client_id]);
        validation.set_issuer(&[&self.issuer]);
        validation.leeway = 30;
        Ok(decode::<Map<String, Value>>(token, &key, &validation)
            .map_err(invalid)?
            .claims)
    }

    async fn userinfo_teams(
        &self,
        provider: &Provider,
        access_token: Option<&str>,
        user_id: &str,
    ) -> Result<Vec<String>, ApiError> {
        let (Some(endpoint), Some(access_token)) = (&provider.userinfo_endpoint, access_token)
        else {
            return Ok(Vec::new());
        };
        let info: Map<String, Value> = self
            .client
            .get(endpoint)
            .bearer_auth(access_token)
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .map_err(|err| provider_failed("userinfo", err))?
            .json()
            .await
            .map_err(|err| provider_failed("userinfo", err))?;
        // Userinfo must be about the same user as the ID token (OpenID Connect Core 5.3.2).
        if info.get("sub").and_then(Value::as_str) != Some(user_id) {
            return Err(refused("the provider's userinfo names another user"));
        }
        Ok(teams_of(info.get(&self.teams_claim)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pkce_challenge_is_rfc_7636s() {
        // RFC 7636, appendix B.
        assert_eq!(
            pkce_challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
    }
}
