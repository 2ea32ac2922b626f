//! The OpenAPI 3.1 document, served at `GET /api/v1/openapi.json` and committed as
//! `docs/openapi.json`.
//!
//! Its paths come from the routers themselves: every route is registered from its handler's
//! `#[utoipa::path]` (utoipa-axum's `routes!`), so the document cannot name a route the server
//! lacks or miss one it serves. What is common to many routes is here: the security schemes,
//! the error shape and one response per error status, and the groups of statuses each kind of
//! route can answer with.

use crate::error::{ErrorBody, FieldError};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use std::collections::BTreeMap;
use std::sync::LazyLock;
use utoipa::openapi::schema::{KnownFormat, ObjectBuilder, Schema, SchemaFormat};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{
    ContentBuilder, HeaderBuilder, Ref, RefOr, ResponseBuilder, Type, response::Response as Doc,
};
use utoipa::{IntoResponses, Modify, OpenApi, PartialSchema, ToSchema};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "bichito",
        description = "Bug reports in, live team streams out.\n\n\
            - **Ingest** (`x-api-key`): reports from the widget, servers, CLIs and CI hooks; \
              their screenshot; Sentry SDKs' feedback.\n\
            - **Dashboard** (`Authorization: Bearer <JWT>` or the session cookie): a team's \
              reports, triage, comments, sessions and stream tickets.\n\
            - **Stream**: every change to a team's reports, as Server-Sent Events.\n\n\
            Every error is `application/json`: `{\"error\": \"...\", \"fields\": [...]}`, \
            `fields` naming each rejected field of a 400.",
        license(name = "Apache-2.0", identifier = "Apache-2.0"),
    ),
    tags(
        (name = "ingest", description = "Reports and their screenshot, with a honeycomb's API key (seed 002)."),
        (name = "sentry", description = "Sentry SDKs' user feedback, by their DSN `http(s)://<API key>@<host>/<honeycomb id>`."),
        (name = "storage", description = "The signed upload and download URLs of the local attachment backend (`ATTACHMENTS_BACKEND=local`); 404 with another backend."),
        (name = "dashboard", description = "A team's reports: list, read, triage, comment, delete."),
        (name = "session", description = "Dashboard sign-in: a session cookie for a JWT, and single-use stream tickets."),
        (name = "stream", description = "A team's live events (Server-Sent Events, seed 000)."),
        (name = "meta", description = "This document."),
    ),
    components(schemas(ErrorBody, FieldError)),
    modifiers(&Common),
)]
struct ApiDoc;

/// The complete document: the common parts and every documented route.
pub fn document() -> utoipa::openapi::OpenApi {
    let mut document = ApiDoc::openapi();
    document.merge(super::documented_routes());
    document
}

/// The document as served, pretty-printed (as committed) and built once.
pub fn json() -> &'static str {
    static JSON: LazyLock<String> = LazyLock::new(|| {
        let mut text = document().to_pretty_json().unwrap_or_else(|err| {
            format!(r#"{{"error":"the document did not serialize: {err}"}}"#)
        });
        text.push('\n');
        text
    });
    &JSON
}

/// The document itself.
#[utoipa::path(
    get,
    path = "/api/v1/openapi.json",
    tag = "meta",
    operation_id = "getOpenApi",
    summary = "This OpenAPI document",
    responses((status = 200, description = "The OpenAPI 3.1 document.", content_type = "application/json", body = Object)),
)]
pub async fn serve() -> Response {
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            ),
            (
                header::CACHE_CONTROL,
                HeaderValue::from_static("public, max-age=300"),
            ),
        ],
        json(),
    )
        .into_response()
}

/// Raw bytes, for a request or response body that is not JSON (an image).
pub struct Binary;

impl PartialSchema for Binary {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::Binary)))
            .into()
    }
}

impl ToSchema for Binary {}

/// One reusable response per error status, named by its reason.
const ERRORS: &[(u16, &str, &str)] = &[
    (
        400,
        "BadRequest",
        "Malformed input: not JSON, not an object, a field of the wrong type or out of its limits (each one named in `fields`), or a path segment that is not UTF-8.",
    ),
    (
        401,
        "Unauthorized",
        "Missing, unknown, revoked or expired credentials: the API key, the bearer token, the session cookie or the stream ticket.",
    ),
    (
        403,
        "Forbidden",
        "The request's `Origin` is not allowed for this key, a change made with the session cookie came from another site, or a signed URL is expired or altered.",
    ),
    (
        404,
        "NotFound",
        "No such resource, or one the caller may not see (another team's or another honeycomb's: the same answer).",
    ),
    (
        409,
        "Conflict",
        "The request clashes with the resource's state (a second attachment, or no upload started).",
    ),
    (
        413,
        "PayloadTooLarge",
        "The body is larger than this route reads; nothing was stored.",
    ),
    (
        415,
        "UnsupportedMediaType",
        "The body is not `application/json`.",
    ),
    (
        422,
        "UnprocessableEntity",
        "The `Idempotency-Key` was used with another body, or the uploaded file failed its checks.",
    ),
    (
        429,
        "TooManyRequests",
        "The key's rate limit is spent: retry after `Retry-After` seconds.",
    ),
    (
        501,
        "NotImplemented",
        "Attachments are not enabled on this server (`ATTACHMENTS_BACKEND=disabled`).",
    ),
    (
        503,
        "ServiceUnavailable",
        "The database (or the bus) is unreachable or overloaded: nothing was stored; retry after `Retry-After` seconds.",
    ),
];

fn response_name(status: u16) -> &'static str {
    ERRORS
        .iter()
        .find(|(code, _, _)| *code == status)
        .map_or("Error", |(_, name, _)| name)
}

fn error_response(status: u16, description: &str) -> Doc {
    let mut response = ResponseBuilder::new().description(description).content(
        "application/json",
        ContentBuilder::new()
            .schema(Some(Ref::from_schema_name("Error")))
            .build(),
    );
    let integer = || {
        ObjectBuilder::new()
            .schema_type(Type::Integer)
            .minimum(Some(0))
    };
    match status {
        429 | 503 => {
            response = response.header(
                "Retry-After",
                HeaderBuilder::new()
                    .schema(Some(integer()))
                    .description(Some("Seconds to wait before trying again."))
                    .build(),
            );
        }
        401 => {
            response = response.header(
                "WWW-Authenticate",
                HeaderBuilder::new()
                    .schema(Some(ObjectBuilder::new().schema_type(Type::String)))
                    .description(Some("`Bearer`, where a bearer token is what is missing."))
                    .build(),
            );
        }
        _ => {}
    }
    response.build()
}

/// The statuses a route can answer with besides its successes, as `$ref`s to the responses.
fn errors(statuses: &[u16]) -> BTreeMap<String, RefOr<Doc>> {
    statuses
        .iter()
        .map(|status| {
            (
                status.to_string(),
                RefOr::Ref(Ref::from_response_name(response_name(*status))),
            )
        })
        .collect()
}

/// A named group of error statuses, for `responses(...)` of `#[utoipa::path]`.
macro_rules! error_groups {
    ($($(#[$doc:meta])* $name:ident: [$($status:literal),*];)*) => {$(
        $(#[$doc])*
        pub struct $name;

        impl IntoResponses for $name {
            fn responses() -> BTreeMap<String, RefOr<Doc>> {
                errors(&[$($status),*])
            }
        }
    )*};
}

error_groups! {
    /// `POST /api/v1/bugs`: the checks in their order (see `http::ingest`).
    IngestErrors: [400, 401, 403, 413, 415, 422, 429, 503];
    /// A read with the API key.
    KeyReadErrors: [401, 403, 503];
    /// A Sentry envelope.
    EnvelopeErrors: [400, 401, 403, 413, 429, 503];
    /// Starting an attachment upload.
    AttachmentStartErrors: [400, 401, 403, 404, 409, 413, 415, 501, 503];
    /// Completing one.
    AttachmentCompleteErrors: [400, 401, 403, 404, 409, 422, 501, 503];
    /// The local backend's signed URLs.
    SignedUrlErrors: [400, 403, 404, 503];
    /// A dashboard read.
    ReadErrors: [400, 401, 404, 503];
    /// A dashboard change with a JSON body.
    WriteErrors: [400, 401, 403, 404, 413, 415, 503];
    /// A dashboard change without a body.
    ChangeErrors: [400, 401, 403, 404, 503];
    /// Opening a session.
    SessionErrors: [401, 403, 503];
    /// Signing out.
    SignOutErrors: [403, 503];
}

/// The security schemes and the reusable error responses.
struct Common;

impl Modify for Common {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        let key = |place: fn(ApiKeyValue) -> ApiKey, name: &str, description: &str| {
            SecurityScheme::ApiKey(place(ApiKeyValue::with_description(name, description)))
        };
        let schemes = [
            (
                "api_key",
                key(ApiKey::Header, "x-api-key", "A honeycomb's API key (`sk_…`), from its Secret."),
            ),
            (
                "bearer",
                SecurityScheme::Http(
                    HttpBuilder::new()
                        .scheme(HttpAuthScheme::Bearer)
                        .bearer_format("JWT")
                        .description(Some(
                            "A JWT from the configured issuer; its `teams` claim lists the teams it may read.",
                        ))
                        .build(),
                ),
            ),
            (
                "session",
                key(ApiKey::Cookie, "bichito_session", "The session cookie (`__Host-bichito_session` over HTTPS). A change made with it must come from this server's pages or an allowed dashboard origin."),
            ),
            (
                "stream_token",
                key(ApiKey::Query, "token", "The JWT in the URL, for `EventSource` (refused when `STREAM_URL_TOKENS=refuse`)."),
            ),
            (
                "stream_ticket",
                key(ApiKey::Query, "ticket", "A single-use ticket from `POST /api/v1/teams/{team_id}/stream/tickets`."),
            ),
            (
                "sentry_auth",
                key(ApiKey::Header, "X-Sentry-Auth", "`Sentry sentry_key=<API key>, …`, as Sentry SDKs send it."),
            ),
            (
                "sentry_key",
                key(ApiKey::Query, "sentry_key", "The API key in the URL, as browser SDKs send it."),
            ),
        ];
        for (name, scheme) in schemes {
            components.add_security_scheme(name, scheme);
        }
        for (status, name, description) in ERRORS {
            components.responses.insert(
                (*name).to_owned(),
                RefOr::T(error_response(*status, description)),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::edits::{ASSIGNEE_MAX_CHARS, COMMENT_MAX_CHARS, LABELS_MAX, PAGE_MAX, SEARCH_MAX};
    use crate::report::*;
    use serde_json::Value;

    /// The bodies and filters the API reads by hand are documented by types of their own: their
    /// limits in the document must be the parsers' constants.
    #[test]
    fn the_documented_limits_are_the_parsers() {
        let document: Value = serde_json::from_str(json()).expect("JSON");
        let schemas = &document["components"]["schemas"];
        let property = |schema: &str, field: &str, rule: &str| {
            schemas[schema]["properties"][field][rule].as_u64()
        };
        let as_u64 = |limit: usize| u64::try_from(limit).ok();
        for (schema, field, rule, limit) in [
            ("ReportBody", "title", "maxLength", as_u64(TITLE_MAX_CHARS)),
            (
                "ReportBody",
                "description",
                "maxLength",
                as_u64(DESCRIPTION_MAX_CHARS),
            ),
            (
                "ReportBody",
                "environment",
                "maxLength",
                as_u64(ENVIRONMENT_MAX_CHARS),
            ),
            (
                "ReportBody",
                "app_version",
                "maxLength",
                as_u64(APP_VERSION_MAX_CHARS),
            ),
            ("ReportBody", "url", "maxLength", as_u64(URL_MAX_CHARS)),
            (
                "ReportBody",
                "user_agent",
                "maxLength",
                as_u64(USER_AGENT_MAX_CHARS),
            ),
            (
                "ReportBody",
                "reporter_email",
                "maxLength",
                as_u64(REPORTER_EMAIL_MAX_CHARS),
            ),
            (
                "ReportBody",
                "reporter_identifier",
                "maxLength",
                as_u64(REPORTER_IDENTIFIER_MAX_CHARS),
            ),
            (
                "BichitoChange",
                "assignee",
                "maxLength",
                as_u64(ASSIGNEE_MAX_CHARS),
            ),
            ("BichitoChange", "labels", "maxItems", as_u64(LABELS_MAX)),
            ("NewComment", "body", "maxLength", as_u64(COMMENT_MAX_CHARS)),
            (
                "UploadRequest",
                "filename",
                "maxLength",
                as_u64(crate::http::attachments::FILENAME_MAX_CHARS),
            ),
            (
                "UploadRequest",
                "content_length",
                "maximum",
                u64::try_from(bichito_core::attachment::MAX_BYTES).ok(),
            ),
        ] {
            assert_eq!(
                property(schema, field, rule),
                limit,
                "{schema}.{field} {rule}"
            );
        }
        assert_eq!(
            schemas["ReportBody"]["required"],
            serde_json::json!(["title", "description"])
        );

        let list = document["paths"]["/api/v1/teams/{team_id}/bugs"]["get"]["parameters"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let parameter = |name: &str, rule: &str| {
            list.iter()
                .find(|parameter| parameter["name"] == name)
                .and_then(|parameter| parameter["schema"][rule].as_u64())
        };
        assert_eq!(parameter("q", "maxLength"), as_u64(SEARCH_MAX));
        assert_eq!(parameter("limit", "maximum"), Some(u64::from(PAGE_MAX)));
    }
}
