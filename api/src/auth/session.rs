//! Dashboard sessions in HTTP: the cookie that names one, and the [`Caller`] extractor that
//! accepts either a bearer token or that cookie.
//!
//! The cookie is HttpOnly and SameSite=Strict, and Secure (with the `__Host-` prefix, which
//! pins it to this host and path `/`) wherever the browser keeps Secure cookies: over HTTPS,
//! and on loopback hosts in development. A state-changing request authenticated by the cookie
//! must also come from this server's own pages or an allowed origin: SameSite already stops
//! cross-site requests in current browsers, and this check stops the rest (other origins of
//! the same site, older browsers). Own pages are told by the browser itself
//! (`Sec-Fetch-Site: same-origin`, which no page can forge), or by an `Origin` equal to the
//! host the request was sent to (`Host`, or a proxy's `X-Forwarded-Host`: headers no
//! cross-site form or fetch can set) or to `BICHITO_PUBLIC_URL`.

use super::jwt::{Caller, JwtVerifier};
use crate::error::ApiError;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, header};
use bichito_core::session::secret_hash;
use bichito_core::store::Store;
use chrono::{DateTime, Utc};

/// The cookie's name where it is Secure.
pub const SECURE_COOKIE: &str = "__Host-bichito_session";
/// The cookie's name over plain HTTP to a non-loopback host (no Secure flag possible).
pub const PLAIN_COOKIE: &str = "bichito_session";

/// What authenticating a dashboard caller needs of a process (the api's state provides it).
pub trait SessionCheck: Send + Sync {
    fn jwt(&self) -> &JwtVerifier;
    fn store(&self) -> &dyn Store;
    fn now(&self) -> DateTime<Utc>;
    /// Whether `origin` may make cookie-authenticated changes: this server's own origin (as
    /// the request reached it) or an allowed dashboard origin.
    fn allowed_origin(&self, origin: &str, headers: &HeaderMap) -> bool;
}

/// The dashboard API's caller: `Authorization: Bearer …`, else the session cookie (401 with
/// neither; 403 for a cookie-authenticated change from another site).
impl<S: SessionCheck> FromRequestParts<S> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        if parts.headers.contains_key(header::AUTHORIZATION) {
            return state.jwt().caller(&parts.headers).await;
        }
        let Some(secret) = session_secret(&parts.headers) else {
            return Err(ApiError::Unauthorized(
                "missing bearer token or session cookie",
            ));
        };
        check_same_origin(state, &parts.method, &parts.headers)?;
        session_caller(state.store(), secret, state.now()).await
    }
}

/// The caller a session secret names, while the session lives.
pub async fn session_caller(
    store: &dyn Store,
    secret: &str,
    now: DateTime<Utc>,
) -> Result<Caller, ApiError> {
    let id_hash = secret_hash(secret);
    let session = store
        .session(&id_hash)
        .await?
        .filter(|session| session.is_live_at(now))
        .ok_or(ApiError::Unauthorized("session expired or signed out"))?;
    Ok(Caller {
        user_id: session.user_id,
        teams: session.teams,
        expires_at: session.expires_at,
        session: Some(id_hash),
    })
}

/// Refuses a cookie-authenticated change that does not come from an allowed origin.
pub fn check_same_origin(
    state: &impl SessionCheck,
    method: &Method,
    headers: &HeaderMap,
) -> Result<(), ApiError> {
    if matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS) {
        return Ok(());
    }
    let same_origin_fetch = headers
        .get("sec-fetch-site")
        .is_some_and(|site| site.as_bytes().eq_ignore_ascii_case(b"same-origin"));
    if same_origin_fetch {
        return Ok(());
    }
    let origin = headers
        .get(header::ORIGIN)
        .and_then(|origin| origin.to_str().ok());
    match origin {
        Some(origin) if state.allowed_origin(origin, headers) => Ok(()),
        _ => Err(ApiError::Forbidden(
            "cross-site request refused: a change made with the session cookie must come from this server's pages or an allowed dashboard origin",
        )),
    }
}

/// Whether `origin` is the origin the request was sent to (its `Host` or a proxy's
/// `X-Forwarded-Host`, any scheme) or the configured public URL's.
pub fn is_own_origin(origin: &str, headers: &HeaderMap, public_url: Option<&str>) -> bool {
    let origin = origin.trim_end_matches('/');
    if let Some(public) = public_url
        && public.trim_end_matches('/').eq_ignore_ascii_case(origin)
    {
        return true;
    }
    let authority = origin
        .strip_prefix("https://")
        .or_else(|| origin.strip_prefix("http://"));
    let Some(authority) = authority else {
        return false;
    };
    [header::HOST.as_str(), "x-forwarded-host"]
        .into_iter()
        .filter_map(|name| headers.get(name)?.to_str().ok())
        .any(|host| host.trim().eq_ignore_ascii_case(authority))
}

/// The session secret of the request's cookie, if any (either name).
pub fn session_secret(headers: &HeaderMap) -> Option<&str> {
    cookie(headers, &[SECURE_COOKIE, PLAIN_COOKIE])
}

/// The value of the first cookie of the request named one of `names` (none when empty).
pub fn cookie<'a>(headers: &'a HeaderMap, names: &[&str]) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| names.contains(name))
        .map(|(_, value)| value.trim())
        .filter(|value| !value.is_empty())
}

/// Whether the browser will keep a Secure cookie from this request: HTTPS (behind a proxy that
/// says so, or by the public URL), or a loopback host, which browsers treat as secure.
///
/// The host is the public URL's when there is one (`serve` and `dev` always have one: the
/// listen address by default), as a proxy in front may have rewritten `Host`; the request's
/// `Host` otherwise.
pub fn secure_context(headers: &HeaderMap, public_url: Option<&str>) -> bool {
    let forwarded_https = headers
        .get("x-forwarded-proto")
        .and_then(|value| value.to_str().ok())
        .is_some_and(|proto| proto.trim().eq_ignore_ascii_case("https"));
    if forwarded_https {
        return true;
    }
    let host = match public_url {
        Some(url) if url.starts_with("https://") => return true,
        Some(url) => url
            .strip_prefix("http://")
            .unwrap_or(url)
            .split('/')
            .next()
            .unwrap_or_default(),
        None => headers
            .get(header::HOST)
            .and_then(|host| host.to_str().ok())
            .unwrap_or_default(),
    };
    is_loopback(host)
}

/// `localhost`, `*.localhost`, `127.x.y.z` or `[::1]`, with or without a port.
fn is_loopback(host: &str) -> bool {
    let name = match host.rsplit_once(':') {
        Some((name, port)) if port.bytes().all(|byte| byte.is_ascii_digit()) => name,
        _ => host,
    };
    name.eq_ignore_ascii_case("localhost")
        || name.to_ascii_lowercase().ends_with(".localhost")
        || name.starts_with("127.")
        || name == "[::1]"
}

/// `Set-Cookie` for a new session of `max_age` seconds.
pub fn session_cookie(secret: &str, max_age: i64, secure: bool) -> HeaderValue {
    let value = if secure {
        format!(
            "{SECURE_COOKIE}={secret}; Path=/; Max-Age={max_age}; HttpOnly; Secure; SameSite=Strict"
        )
    } else {
        format!("{PLAIN_COOKIE}={secret}; Path=/; Max-Age={max_age}; HttpOnly; SameSite=Strict")
    };
    HeaderValue::from_str(&value).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// `Set-Cookie`s that remove the session cookie, under either name.
pub fn cleared_cookies() -> [HeaderValue; 2] {
    [
        HeaderValue::from_static(
            "__Host-bichito_session=; Path=/; Max-Age=0; HttpOnly; Secure; SameSite=Strict",
        ),
        HeaderValue::from_static("bichito_session=; Path=/; Max-Age=0; HttpOnly; SameSite=Strict"),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (name, value) in pairs {
            headers.append(*name, HeaderValue::from_str(value).expect("header"));
        }
        headers
    }

    #[test]
    fn the_session_is_read_from_either_cookie_name_among_others() {
        let one = headers(&[("cookie", "a=1; __Host-bichito_session=bs_1; b=2")]);
        assert_eq!(session_secret(&one), Some("bs_1"));
        let plain = headers(&[("cookie", "x=y"), ("cookie", "bichito_session=bs_2")]);
        assert_eq!(session_secret(&plain), Some("bs_2"));
        assert_eq!(
            session_secret(&headers(&[("cookie", "bichito_session=")])),
            None
        );
        assert_eq!(
            session_secret(&headers(&[("cookie", "xbichito_session=1")])),
            None
        );
    }

    #[test]
    fn secure_cookies_go_to_https_and_loopback_hosts() {
        assert!(secure_context(
            &headers(&[("host", "127.0.0.1:8080")]),
            None
        ));
        assert!(secure_context(
            &headers(&[("host", "localhost:3000")]),
            None
        ));
        assert!(secure_context(&headers(&[("host", "[::1]:80")]), None));
        assert!(!secure_context(
            &headers(&[("host", "bugs.lan:8080")]),
            None
        ));
        assert!(secure_context(
            &headers(&[("host", "bugs.lan"), ("x-forwarded-proto", "https")]),
            None
        ));
        assert!(secure_context(
            &headers(&[("host", "bugs.lan")]),
            Some("https://bugs.example.com")
        ));
        // The public URL's host decides, not a `Host` a proxy rewrote to its upstream.
        assert!(!secure_context(
            &headers(&[("host", "127.0.0.1:8080")]),
            Some("http://bugs.lan")
        ));
        assert!(secure_context(
            &headers(&[("host", "bugs.lan")]),
            Some("http://127.0.0.1:8080")
        ));
        let secure = session_cookie("bs_1", 60, true);
        let secure = secure.to_str().expect("ascii");
        assert!(secure.starts_with("__Host-bichito_session=bs_1; Path=/;"));
        for attribute in ["HttpOnly", "Secure", "SameSite=Strict", "Max-Age=60"] {
            assert!(secure.contains(attribute), "{secure}");
        }
        assert!(!secure.contains("Domain"), "{secure}");
    }

    #[test]
    fn the_own_origin_is_the_host_the_request_was_sent_to() {
        let sent = headers(&[("host", "127.0.0.1:8080")]);
        assert!(is_own_origin("http://127.0.0.1:8080", &sent, None));
        assert!(!is_own_origin("http://127.0.0.1:9999", &sent, None));
        assert!(!is_own_origin("https://evil.example", &sent, None));
        assert!(is_own_origin(
            "https://bugs.example.com",
            &sent,
            Some("https://bugs.example.com/")
        ));
        assert!(!is_own_origin("null", &sent, None));
        // Behind a proxy that rewrites Host but says where the request was sent.
        let proxied = headers(&[
            ("host", "127.0.0.1:8080"),
            ("x-forwarded-host", "bugs.example.com"),
        ]);
        assert!(is_own_origin("https://bugs.example.com", &proxied, None));
        assert!(!is_own_origin("https://evil.example", &proxied, None));
    }
}
