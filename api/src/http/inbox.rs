//! The inbox (`/inbox`): the team's bug reports, live, in the browser. Its files are built
//! into the binary (hand-written ES modules and CSS: nothing to build, no Node.js) and served
//! with a Content-Security-Policy that lets them reach only this origin.

use crate::auth::session::session_secret;
use crate::error::ApiError;
use crate::state::AppState;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use std::collections::HashMap;
use std::sync::LazyLock;

use super::extract::PathParam;

const JS: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";

/// A file of `api/inbox/`, built in: `(name, content type, contents)`.
macro_rules! asset {
    ($name:literal, $content_type:expr) => {
        (
            $name,
            $content_type,
            include_str!(concat!("../../inbox/", $name)),
        )
    };
}

/// Every file under `/inbox/`.
const FILES: &[(&str, &str, &str)] = &[
    asset!("inbox.css", CSS),
    asset!("inbox.js", JS),
    asset!("api.js", JS),
    asset!("rows.js", JS),
    asset!("stream.js", JS),
    asset!("detail.js", JS),
    asset!("keys.js", JS),
    asset!("filters.js", JS),
    asset!("triage.js", JS),
];

const PAGE: &str = include_str!("../../inbox/index.html");

/// Scripts, styles, fetches and the stream: this origin only. Images may also come from
/// attachment download URLs: another host with S3 (`https:`, or the custom endpoint's origin).
fn content_security_policy(state: &AppState) -> HeaderValue {
    let downloads = state
        .attachments
        .storage
        .as_ref()
        .and_then(|storage| storage.download_origin())
        .map(|origin| format!(" {origin}"))
        .unwrap_or_default();
    HeaderValue::from_str(&format!(
        "default-src 'self'; img-src 'self' https: data:{downloads}; object-src 'none'; \
         base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    ))
    .unwrap_or_else(|_| {
        HeaderValue::from_static(
            "default-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'",
        )
    })
}

/// A strong validator of a file's contents: a reload asks `If-None-Match` and gets a 304.
fn etag(body: &str) -> HeaderValue {
    use sha2::Digest as _;
    let digest = sha2::Sha256::digest(body.as_bytes());
    HeaderValue::from_str(&format!("\"{}\"", hex::encode(&digest[..12])))
        .unwrap_or_else(|_| HeaderValue::from_static("\"\""))
}

/// Every file's ETag by name (the page's under `""`), hashed once.
static ETAGS: LazyLock<HashMap<&'static str, HeaderValue>> = LazyLock::new(|| {
    FILES
        .iter()
        .map(|(name, _, body)| (*name, etag(body)))
        .chain([("", etag(PAGE))])
        .collect()
});

fn served(
    policy: HeaderValue,
    headers: &HeaderMap,
    name: &str,
    content_type: &'static str,
    body: &'static str,
) -> Response {
    let tag = ETAGS
        .get(name)
        .cloned()
        .unwrap_or_else(|| HeaderValue::from_static("\"\""));
    let status = if headers.get(header::IF_NONE_MATCH) == Some(&tag) {
        StatusCode::NOT_MODIFIED
    } else {
        StatusCode::OK
    };
    let body = if status == StatusCode::OK { body } else { "" };
    (
        status,
        [
            (header::ETAG, tag),
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            // Files change with the binary: revalidated on each load.
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
            (header::CONTENT_SECURITY_POLICY, policy),
            (
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            ),
            (
                header::REFERRER_POLICY,
                HeaderValue::from_static("same-origin"),
            ),
        ],
        body,
    )
        .into_response()
}

/// `GET /inbox`.
pub async fn page(State(state): State<AppState>, headers: HeaderMap) -> Response {
    served(
        content_security_policy(&state),
        &headers,
        "",
        "text/html; charset=utf-8",
        PAGE,
    )
}

/// `GET /inbox/{file}`.
pub async fn file(
    State(state): State<AppState>,
    headers: HeaderMap,
    PathParam(name): PathParam,
) -> Result<Response, ApiError> {
    FILES
        .iter()
        .find(|(file, _, _)| *file == name)
        .map(|(file, content_type, body)| {
            served(
                content_security_policy(&state),
                &headers,
                file,
                content_type,
                body,
            )
        })
        .ok_or(ApiError::NotFound)
}

/// `GET /`: the inbox for someone signed in; otherwise sign-in, when a provider is set up.
pub async fn home(State(state): State<AppState>, headers: HeaderMap) -> Redirect {
    if session_secret(&headers).is_none() && state.oidc.is_some() {
        return Redirect::to("/login?return_to=/inbox");
    }
    Redirect::to("/inbox")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every module a file imports is built in, and the page preloads it, so the browser
    /// fetches them all at once instead of one import level after another.
    #[test]
    fn every_imported_module_is_built_in_and_preloaded() {
        for (file, _, body) in FILES {
            for line in body.lines().filter(|line| line.starts_with("import ")) {
                let Some(name) = line
                    .rsplit("\"./")
                    .next()
                    .and_then(|rest| rest.split('"').next())
                else {
                    panic!("{file}: an import without a path: {line}");
                };
                assert!(
                    FILES.iter().any(|(built, _, _)| *built == name),
                    "{file} imports {name}, which is not built in"
                );
                let preload = format!("<link rel=\"modulepreload\" href=\"/inbox/{name}\">");
                assert!(PAGE.contains(&preload), "the page does not preload {name}");
            }
        }
    }
}
