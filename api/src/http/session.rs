//! Signing in and out, and stream tickets.
//!
//! - `POST /api/v1/session` (Bearer JWT): opens a session → cookie; `GET` says whose it is;
//!   `DELETE` signs out (on every process: its streams end).
//! - `GET /login?code=…`: a one-time development link (`bichito dev`, `bichito token --link`);
//!   `GET /login`: sign-in with the OpenID Connect provider; `GET /login/callback`: its return.
//!   Both end on a page that moves on to the dashboard by itself: the session cookie is
//!   SameSite=Strict, so the browser sends it only to a navigation that starts on this site,
//!   not to a redirect at the end of the provider's.
//! - `POST /api/v1/teams/{team_id}/stream/tickets`: a single-use ticket that opens the team's
//!   stream once within a minute, for clients that cannot send a header or a cookie.

use crate::auth::Caller;
use crate::auth::session::{
    check_same_origin, cleared_cookies, cookie, secure_context, session_cookie, session_secret,
};
use crate::error::ApiError;
use crate::grants::{SessionGrant, TICKET_LIFETIME, Ticket};
use crate::http::extract::{PathParam, QueryParams};
use crate::http::openapi::{ChangeErrors, ReadErrors, SessionErrors, SignOutErrors};
use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bichito_core::session::{SessionRecord, SignIn, new_secret, secret_hash};
use chrono::{DateTime, SecondsFormat, TimeDelta, Utc};
use utoipa::ToSchema;

/// The cookie that binds an OpenID Connect login to the browser that started it (Lax: the
/// provider's redirect back is a cross-site navigation).
const LOGIN_COOKIE: &str = "bichito_login";
/// How long a sign-in may take at the provider, and how long a development link lives.
pub const SIGN_IN_LIFETIME: TimeDelta = TimeDelta::minutes(10);

fn timestamp(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn no_store(response: &mut Response) {
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
}

/// Who a session is for, and until when.
#[derive(serde::Serialize, ToSchema)]
#[schema(example = json!({"sub": "user-ana", "teams": ["team-acme"], "expires_at": "2026-05-07T19:42:00Z"}))]
pub struct SessionInfo {
    /// The user (the token's `sub`).
    sub: String,
    /// The teams whose reports it reads.
    teams: Vec<String>,
    #[schema(value_type = String, format = DateTime)]
    expires_at: String,
}

impl SessionInfo {
    fn new(sub: String, teams: Vec<String>, expires_at: DateTime<Utc>) -> Self {
        Self {
            sub,
            teams,
            expires_at: timestamp(expires_at),
        }
    }
}

/// A stream ticket: pass it as `?ticket=` once, before it expires.
#[derive(serde::Serialize, ToSchema)]
#[schema(example = json!({"ticket": "tk_5w0Y…", "expires_at": "2026-05-07T11:43:00Z"}))]
pub struct StreamTicket {
    ticket: String,
    #[schema(value_type = String, format = DateTime)]
    expires_at: String,
}

/// `POST /api/v1/session`: a session for the bearer of a valid JWT, until the token expires
/// (or `SESSION_MAX_AGE`, when that comes first).
#[utoipa::path(
    post,
    path = "/api/v1/session",
    tag = "session",
    operation_id = "createSession",
    summary = "Sign in with a JWT",
    description = "Opens a session for the bearer of a valid JWT, until the token expires (or \
        `SESSION_MAX_AGE`, if sooner): its HttpOnly, SameSite=Strict cookie is set.",
    responses(
        (status = 201, body = SessionInfo, description = "Signed in.",
            headers(("Set-Cookie" = String, description = "The session cookie."))),
        SessionErrors,
    ),
    security(("bearer" = [])),
)]
pub async fn create_session(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    if !headers.contains_key(header::AUTHORIZATION) {
        return Err(ApiError::Unauthorized(
            "a session is opened with Authorization: Bearer <token>",
        ));
    }
    let caller = state.jwt.caller(&headers).await?;
    let (cookie, session) = open_session(
        &state,
        &headers,
        caller.user_id,
        caller.teams,
        Some(caller.expires_at),
    )
    .await?;
    let body = SessionInfo::new(session.user_id, session.teams, session.expires_at);
    let mut response = (StatusCode::CREATED, Json(body)).into_response();
    response.headers_mut().insert(header::SET_COOKIE, cookie);
    no_store(&mut response);
    Ok(response)
}

/// Stores a new session and makes it known to the stream processes; its cookie.
async fn open_session(
    state: &AppState,
    headers: &HeaderMap,
    user_id: String,
    teams: Vec<String>,
    token_expiry: Option<DateTime<Utc>>,
) -> Result<(HeaderValue, SessionRecord), ApiError> {
    let now = state.clock.now();
    let longest = now + TimeDelta::from_std(state.sessions.session_max_age).unwrap_or_default();
    let expires_at = token_expiry.map_or(longest, |expiry| expiry.min(longest));
    if expires_at <= now {
        return Err(ApiError::Unauthorized("invalid or expired token"));
    }
    let secret = new_secret("bs_");
    let session = SessionRecord {
        id_hash: secret_hash(&secret),
        user_id,
        teams,
        created_at: now,
        expires_at,
        revoked_at: None,
    };
    state.store.insert_session(&session).await?;
    state
        .streams
        .grants
        .session_opened(
            &session.id_hash,
            &SessionGrant {
                user_id: session.user_id.clone(),
                teams: session.teams.clone(),
                expires_at,
            },
        )
        .await?;
    tracing::info!(user = %session.user_id, teams = session.teams.len(), "session opened");
    let secure = secure_context(headers, state.public_url.as_deref());
    let cookie = session_cookie(&secret, (expires_at - now).num_seconds(), secure);
    Ok((cookie, session))
}

/// `GET /api/v1/session`: who is signed in.
#[utoipa::path(
    get,
    path = "/api/v1/session",
    tag = "session",
    operation_id = "getSession",
    summary = "Who is signed in",
    responses((status = 200, body = SessionInfo, description = "The caller."), ReadErrors),
    security(("bearer" = []), ("session" = [])),
)]
pub async fn get_session(caller: Caller) -> Response {
    let body = SessionInfo::new(caller.user_id, caller.teams, caller.expires_at);
    let mut response = Json(body).into_response();
    no_store(&mut response);
    response
}

/// `DELETE /api/v1/session`: signs out. The session ends on every process (its streams with
/// it) before the answer; the cookie is removed either way.
#[utoipa::path(
    delete,
    path = "/api/v1/session",
    tag = "session",
    operation_id = "deleteSession",
    summary = "Sign out",
    description = "Ends the cookie's session on every process, its streams with it, and \
        removes the cookie. Without a session cookie it only removes the cookie.",
    responses((status = 204, description = "Signed out."), SignOutErrors),
    security((), ("session" = [])),
)]
pub async fn delete_session(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    if let Some(secret) = session_secret(&headers) {
        check_same_origin(&state, &axum::http::Method::DELETE, &headers)?;
        let id_hash = secret_hash(secret);
        // The streams first: if NATS cannot be told, nothing changed and the client retries.
        state.streams.grants.session_ended(&id_hash).await?;
        if state
            .store
            .revoke_session(&id_hash, state.clock.now())
            .await?
        {
            tracing::info!("session ended by sign-out");
        }
    }
    let mut response = StatusCode::NO_CONTENT.into_response();
    for cookie in cleared_cookies() {
        response.headers_mut().append(header::SET_COOKIE, cookie);
    }
    no_store(&mut response);
    Ok(response)
}

/// `POST /api/v1/teams/{team_id}/stream/tickets`.
#[utoipa::path(
    post,
    path = "/api/v1/teams/{team_id}/stream/tickets",
    tag = "session",
    operation_id = "createStreamTicket",
    summary = "A single-use stream ticket",
    description = "For clients that can send neither a header nor a cookie: opens the team's \
        stream once, within a minute.",
    params(("team_id" = String, Path, description = "The team.")),
    responses((status = 201, body = StreamTicket, description = "The ticket."), ChangeErrors),
    security(("bearer" = []), ("session" = [])),
)]
pub async fn create_ticket(
    State(state): State<AppState>,
    caller: Caller,
    PathParam(team_id): PathParam,
) -> Result<Response, ApiError> {
    if !caller.is_member_of(&team_id) {
        return Err(ApiError::NotFound);
    }
    let now = state.clock.now();
    let lifetime = TimeDelta::from_std(TICKET_LIFETIME).unwrap_or_default();
    let expires_at = (now + lifetime).min(caller.expires_at);
    let secret = new_secret("tk_");
    let ticket = Ticket {
        user_id: caller.user_id,
        team_id,
        expires_at,
        grant_expires_at: caller.expires_at,
        session: caller.session,
    };
    state
        .streams
        .grants
        .issue_ticket(&secret_hash(&secret), &ticket)
        .await?;
    let mut response = (
        StatusCode::CREATED,
        Json(StreamTicket {
            ticket: secret,
            expires_at: timestamp(expires_at),
        }),
    )
        .into_response();
    no_store(&mut response);
    Ok(response)
}

/// `GET /login`: with `code`, a development link; without, sign-in with the provider.
pub async fn login(
    State(state): State<AppState>,
    headers: HeaderMap,
    QueryParams(params): QueryParams,
) -> Result<Response, ApiError> {
    if let Some(code) = params.get("code") {
        return login_with_link(&state, &headers, code).await;
    }
    let oidc = state.oidc.clone().ok_or(ApiError::NotConfigured(
        "sign-in with an identity provider is not configured (OIDC_ISSUER, OIDC_CLIENT_ID); a development link comes from `bichito token --link`",
    ))?;
    let return_to = local_path(params.get("return_to").map(String::as_str))
        .unwrap_or(&state.sessions.dashboard_path)
        .to_owned();
    let login_state = new_secret("");
    let verifier = new_secret("");
    let nonce = new_secret("");
    let url = oidc
        .authorization_url(&login_state, &nonce, &verifier)
        .await?;
    state
        .store
        .insert_sign_in(
            &secret_hash(&login_state),
            &SignIn::Oidc {
                verifier,
                nonce,
                return_to,
                expires_at: state.clock.now() + SIGN_IN_LIFETIME,
            },
        )
        .await?;
    let secure = if secure_context(&headers, state.public_url.as_deref()) {
        "; Secure"
    } else {
        ""
    };
    let cookie = format!(
        "{LOGIN_COOKIE}={login_state}; Path=/login; Max-Age={}; HttpOnly; SameSite=Lax{secure}",
        SIGN_IN_LIFETIME.num_seconds()
    );
    let mut response = StatusCode::SEE_OTHER.into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::LOCATION,
        HeaderValue::from_str(&url).map_err(|err| ApiError::Internal(Box::new(err)))?,
    );
    headers.insert(
        header::SET_COOKIE,
        HeaderValue::from_str(&cookie).map_err(|err| ApiError::Internal(Box::new(err)))?,
    );
    no_store(&mut response);
    Ok(response)
}

async fn login_with_link(
    state: &AppState,
    headers: &HeaderMap,
    code: &str,
) -> Result<Response, ApiError> {
    let expired = "this sign-in link was used already or has expired: ask for a new one (`bichito token --link`)";
    let sign_in = state
        .store
        .take_sign_in(&secret_hash(code))
        .await?
        .ok_or(ApiError::Unauthorized(expired))?;
    let SignIn::Link {
        user_id,
        teams,
        return_to,
        expires_at,
    } = sign_in
    else {
        return Err(ApiError::Unauthorized(expired));
    };
    if expires_at <= state.clock.now() {
        return Err(ApiError::Unauthorized(expired));
    }
    let (cookie, _) = open_session(state, headers, user_id, teams, None).await?;
    Ok(signed_in_page(cookie, &return_to))
}

/// `GET /login/callback`: the provider sends the browser back here with a code.
pub async fn login_callback(
    State(state): State<AppState>,
    headers: HeaderMap,
    QueryParams(params): QueryParams,
) -> Result<Response, ApiError> {
    let oidc = state.oidc.clone().ok_or(ApiError::NotConfigured(
        "sign-in with an identity provider is not configured (OIDC_ISSUER, OIDC_CLIENT_ID)",
    ))?;
    if let Some(error) = params.get("error") {
        tracing::info!(error = %error.chars().take(100).collect::<String>(), "the provider ended the sign-in with an error");
        return Err(ApiError::Unauthorized(
            "the identity provider did not sign you in",
        ));
    }
    let (Some(code), Some(login_state)) = (params.get("code"), params.get("state")) else {
        return Err(ApiError::BadRequest(
            "the callback needs `code` and `state`".into(),
        ));
    };
    // The state must be the one this browser was given: a callback link sent by someone else
    // would sign the victim in as them.
    if cookie(&headers, &[LOGIN_COOKIE]) != Some(login_state.as_str()) {
        return Err(ApiError::Unauthorized(
            "this sign-in was not started in this browser: start again at /login",
        ));
    }
    let stale = "this sign-in expired or was finished already: start again at /login";
    let Some(SignIn::Oidc {
        verifier,
        nonce,
        return_to,
        expires_at,
    }) = state.store.take_sign_in(&secret_hash(login_state)).await?
    else {
        return Err(ApiError::Unauthorized(stale));
    };
    if expires_at <= state.clock.now() {
        return Err(ApiError::Unauthorized(stale));
    }
    let signed_in = oidc.finish(code, &verifier, &nonce).await?;
    let (cookie, _) =
        open_session(&state, &headers, signed_in.user_id, signed_in.teams, None).await?;
    let mut response = signed_in_page(cookie, &return_to);
    response.headers_mut().append(
        header::SET_COOKIE,
        HeaderValue::from_static("bichito_login=; Path=/login; Max-Age=0; HttpOnly; SameSite=Lax"),
    );
    Ok(response)
}

/// A path of this server (`/…`, not `//host…`): where a sign-in may return to.
fn local_path(path: Option<&str>) -> Option<&str> {
    path.filter(|path| {
        path.starts_with('/')
            && !path.starts_with("//")
            && !path.contains('\\')
            && !path.chars().any(char::is_control)
    })
}

/// The page a sign-in ends on: it sets the cookie and moves on to `return_to` by itself (a
/// same-site navigation, which carries the SameSite=Strict cookie).
fn signed_in_page(cookie: HeaderValue, return_to: &str) -> Response {
    let target = local_path(Some(return_to)).unwrap_or("/");
    let escaped = target
        .replace('&', "&amp;")
        .replace('"', "&quot;")
        .replace('<', "&lt;")
        .replace('>', "&gt;");
    let page = format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta http-equiv=\"refresh\" content=\"0;url={escaped}\">\
         <title>Signed in · bichito</title></head>\
         <body><p>Signed in. <a href=\"{escaped}\">Continue</a></p></body></html>\n"
    );
    let mut response = (
        StatusCode::OK,
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/html; charset=utf-8"),
            ),
            (
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static("default-src 'none'"),
            ),
            (
                header::REFERRER_POLICY,
                HeaderValue::from_static("no-referrer"),
            ),
        ],
        page,
    )
        .into_response();
    response.headers_mut().insert(header::SET_COOKIE, cookie);
    no_store(&mut response);
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sign_in_returns_only_to_a_path_of_this_server() {
        assert_eq!(local_path(Some("/inbox?team=a")), Some("/inbox?team=a"));
        for outside in [
            "//evil.example",
            "https://evil.example",
            "/\\evil",
            "inbox",
            "",
        ] {
            assert_eq!(local_path(Some(outside)), None, "{outside}");
        }
    }
}
