//! The embeddable widget's files (`api/widget/`), built into the binary. `/widget.js` is the
//! one line a site adds; it moves with each release, so it is cached for minutes. Every file
//! is also at `/widget/{version}/…`, where `version` is a hash of their contents: immutable,
//! cached for a year, and where the loader takes the form from. Any origin may load them (the
//! form is an ES module imported across origins).

use crate::error::ApiError;
use axum::body::Bytes;
use axum::extract::Path;
use axum::extract::rejection::PathRejection;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use std::sync::LazyLock;

macro_rules! file {
    ($name:literal) => {
        ($name, include_str!(concat!("../../widget/", $name)))
    };
}

/// The loader first; the form's modules after it.
const FILES: &[(&str, &str)] = &[
    file!("widget.js"),
    file!("form.js"),
    file!("send.js"),
    file!("shot.js"),
    file!("strings.js"),
];

/// A shop page that embeds the widget with the key in its address (`#key=…`): what `bichito
/// dev` prints, to try the widget at once.
const DEMO_PAGE: &str = include_str!("../../widget/demo.html");
const DEMO_SCRIPT: &str = include_str!("../../widget/demo.js");

/// Where the loader is told its version is (see `widget.js`).
const VERSION_MARK: &str = "__VERSION__";

/// The hash of every file, as written: a new release with any change gets a new URL.
pub static VERSION: LazyLock<String> = LazyLock::new(|| {
    use sha2::Digest as _;
    let mut digest = sha2::Sha256::new();
    for (name, body) in FILES {
        digest.update(name.as_bytes());
        digest.update(body.as_bytes());
    }
    hex::encode(&digest.finalize()[..6])
});

/// The files as served: the loader with its version written in (shared, not copied, by
/// each answer).
static SERVED: LazyLock<Vec<(&'static str, Bytes)>> = LazyLock::new(|| {
    FILES
        .iter()
        .map(|(name, body)| (*name, Bytes::from(body.replace(VERSION_MARK, &VERSION))))
        .collect()
});

const MINUTES: &str = "public, max-age=300";
const FOREVER: &str = "public, max-age=31536000, immutable";

fn served(body: Bytes, cache: &'static str) -> Response {
    (
        StatusCode::OK,
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/javascript; charset=utf-8"),
            ),
            (header::CACHE_CONTROL, HeaderValue::from_static(cache)),
            (
                header::ACCESS_CONTROL_ALLOW_ORIGIN,
                HeaderValue::from_static("*"),
            ),
            (
                header::HeaderName::from_static("cross-origin-resource-policy"),
                HeaderValue::from_static("cross-origin"),
            ),
            (
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            ),
        ],
        body,
    )
        .into_response()
}

fn find(name: &str) -> Option<Bytes> {
    SERVED
        .iter()
        .find(|(file, _)| *file == name)
        .map(|(_, body)| body.clone())
}

/// `GET /widget.js`: the loader of this release.
pub async fn loader() -> Response {
    served(find("widget.js").unwrap_or_default(), MINUTES)
}

/// `GET /widget/demo` and `GET /widget/demo.js`.
pub async fn demo_page() -> Response {
    demo(DEMO_PAGE, "text/html; charset=utf-8")
}

pub async fn demo_script() -> Response {
    demo(DEMO_SCRIPT, "text/javascript; charset=utf-8")
}

fn demo(body: &'static str, content_type: &'static str) -> Response {
    (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (header::CACHE_CONTROL, HeaderValue::from_static(MINUTES)),
            (
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static(
                    "default-src 'self'; img-src 'self' data:; object-src 'none'; \
                     base-uri 'none'; frame-ancestors 'none'",
                ),
            ),
            (
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            ),
        ],
        body,
    )
        .into_response()
}

/// `GET /widget/{version}/{file}`: any file of this release; another release's is 404.
pub async fn versioned(
    path: Result<Path<(String, String)>, PathRejection>,
) -> Result<Response, ApiError> {
    let Path((version, name)) =
        path.map_err(|rejection| ApiError::BadRequest(rejection.body_text()))?;
    if version != *VERSION {
        return Err(ApiError::NotFound);
    }
    find(&name)
        .map(|body| served(body, FOREVER))
        .ok_or(ApiError::NotFound)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every module a widget file imports is served, and the loader is told its version.
    #[test]
    fn imports_resolve_and_the_loader_knows_its_version() {
        for (file, body) in FILES {
            for line in body.lines().filter(|line| line.starts_with("import ")) {
                let name = line
                    .rsplit("\"./")
                    .next()
                    .and_then(|rest| rest.split('"').next())
                    .unwrap_or_else(|| panic!("{file}: an import without a path: {line}"));
                assert!(find(name).is_some(), "{file} imports {name}, not served");
            }
        }
        let loader = find("widget.js").expect("the loader");
        let loader = std::str::from_utf8(&loader).expect("utf-8");
        assert!(!loader.contains(VERSION_MARK));
        assert!(loader.contains(&format!("/widget/{}/", *VERSION)));
        assert_eq!(VERSION.len(), 12);
    }
}
