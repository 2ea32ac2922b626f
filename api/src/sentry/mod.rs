//! Sentry-compatible feedback: `POST /api/{project_id}/envelope/`, where an unmodified Sentry
//! SDK sends what its DSN `http(s)://<bichito API key>@<host>/<project_id>` points it at.
//! `feedback` and `user_report` items become bichitos through the same checks as
//! `POST /api/v1/bugs` (key, origin, rate limit, validation, blocklist, monthly cap, events);
//! every other item (errors, transactions, sessions, client reports...) is acknowledged and
//! dropped, so an SDK that sends those too never sees a failure.

pub mod envelope;
pub mod feedback;
pub mod screenshot;

use crate::auth::{KeyCheck, check_origin};
use crate::error::ApiError;
use crate::http::extract::PathParam;
use crate::http::extract::QueryParams;
use crate::http::ingest::{accept, check_rate, idempotency_claim};
use crate::http::openapi::EnvelopeErrors;
use crate::report;
use crate::state::AppState;
use axum::body::{Body, to_bytes};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bichito_core::clock::truncate_to_millis;
use envelope::EnvelopeError;

/// An envelope as sent (compressed or not): feedback with a screenshot fits well within.
pub const ENVELOPE_LIMIT: usize = 4 * 1024 * 1024;
/// The most an envelope may inflate to.
pub const DECODED_LIMIT: usize = 8 * 1024 * 1024;

/// The DSN's public key: `X-Sentry-Auth: Sentry sentry_key=…, sentry_version=7` or
/// `?sentry_key=…` (what browser SDKs send).
fn sentry_key(
    headers: &HeaderMap,
    query: &std::collections::HashMap<String, String>,
) -> Option<String> {
    let from_header = headers
        .get("x-sentry-auth")
        .and_then(|value| value.to_str().ok())
        .and_then(|value| {
            value
                .trim_start_matches("Sentry")
                .split(',')
                .filter_map(|pair| pair.trim().split_once('='))
                .find(|(name, _)| *name == "sentry_key")
                .map(|(_, key)| key.trim().to_owned())
        });
    from_header.or_else(|| query.get("sentry_key").cloned())
}

impl From<EnvelopeError> for ApiError {
    fn from(err: EnvelopeError) -> Self {
        match err {
            EnvelopeError::TooLarge { limit } => ApiError::PayloadTooLarge { limit },
            other => ApiError::BadRequest(other.to_string()),
        }
    }
}

/// What an envelope is answered with: the envelope's `event_id`, as Sentry's own server answers.
#[derive(serde::Serialize, utoipa::ToSchema)]
#[schema(example = json!({"id": "9ec79c33ec9942ab8353589fcb2e04dc"}))]
pub struct EnvelopeAccepted {
    id: Option<String>,
}

#[utoipa::path(
    post,
    path = "/api/{project_id}/envelope/",
    tag = "sentry",
    operation_id = "sendSentryEnvelope",
    summary = "Sentry SDKs' feedback",
    description = "Takes a Sentry envelope (gzip or deflate with `Content-Encoding`; at most \
        4 MiB sent and 8 MiB inflated). Each `feedback` item (and each deprecated `user_report` \
        item) becomes one bichito through the same checks and events as `POST /api/v1/bugs`, \
        idempotent by the SDK's event id; an `attachment` item next to a feedback becomes its \
        screenshot. Every other item type (errors, transactions, sessions, client reports, \
        replays...) is acknowledged and dropped. Each report past the first in one envelope \
        counts against the rate limit too.",
    params(("project_id" = String, Path, description = "The DSN's project: the id of the key's honeycomb.")),
    request_body(
        description = "The envelope: a JSON header line, then items (a JSON item header line and its payload).",
        content(
            (String = "application/x-sentry-envelope"),
            (String = "text/plain"),
        ),
    ),
    responses(
        (status = 200, body = EnvelopeAccepted, description = "Accepted (feedback stored or silently dropped; other items dropped)."),
        EnvelopeErrors,
    ),
    security(("sentry_auth" = []), ("sentry_key" = [])),
)]
pub async fn envelope(
    State(state): State<AppState>,
    PathParam(project_id): PathParam,
    QueryParams(query): QueryParams,
    headers: HeaderMap,
    body: Body,
) -> Response {
    match receive(&state, &project_id, &query, &headers, body).await {
        Ok(event_id) => (
            StatusCode::OK,
            axum::Json(EnvelopeAccepted { id: event_id }),
        )
            .into_response(),
        Err(err) => err.into_response(),
    }
}

async fn receive(
    state: &AppState,
    project_id: &str,
    query: &std::collections::HashMap<String, String>,
    headers: &HeaderMap,
    body: Body,
) -> Result<Option<String>, ApiError> {
    let presented = sentry_key(headers, query).ok_or(ApiError::InvalidApiKey(
        "missing sentry_key (X-Sentry-Auth or ?sentry_key=)",
    ))?;
    let (key, honeycomb) = crate::auth::authenticate_presented(state, &presented).await?;
    // The DSN's project is the honeycomb of its key: anything else is a DSN for another.
    if project_id != honeycomb.id.to_string() {
        return Err(ApiError::InvalidApiKey(
            "the DSN's project is not this key's honeycomb",
        ));
    }
    check_origin(&honeycomb, headers)?;
    let now = truncate_to_millis(KeyCheck::now(state));
    // Every envelope counts against the key's rate, and so does every report past the first in
    // one: packing many feedback items into one envelope gets no more through.
    check_rate(state, &key, &honeycomb, now).await?;
    let mut reports = 0;
    let sent = to_bytes(body, ENVELOPE_LIMIT)
        .await
        .map_err(|_| ApiError::PayloadTooLarge {
            limit: ENVELOPE_LIMIT,
        })?;
    let encoding = headers
        .get(header::CONTENT_ENCODING)
        .and_then(|value| value.to_str().ok());
    let decoded = envelope::decode(&sent, encoding, DECODED_LIMIT)?;
    let parsed = envelope::parse(&decoded)?;
    let event_id = parsed
        .header
        .get("event_id")
        .and_then(|id| id.as_str())
        .map(str::to_owned);
    let mut stored = Vec::new();
    for (index, item) in parsed.items.iter().enumerate() {
        let Some(fields) = feedback::report_of(item) else {
            tracing::debug!(
                item = item.kind(),
                "sentry envelope item dropped (not feedback)"
            );
            continue;
        };
        reports += 1;
        if reports > 1 {
            check_rate(state, &key, &honeycomb, now).await?;
        }
        let bytes = serde_json::to_vec(&fields).map_err(|err| ApiError::Internal(err.into()))?;
        let report = report::parse(
            &bytes,
            report::Envelope {
                honeycomb_id: honeycomb.id,
                api_key_id: key.id,
                team_id: honeycomb.team_id.clone(),
                created_at: now,
            },
        )?;
        // The SDK's own ids: an envelope sent twice is one bichito per item. A feedback event
        // has its own id; a user_report names the error it is about; else the envelope's id
        // and the item's place in it.
        let item_id = item
            .json()
            .and_then(|payload| {
                payload
                    .get("event_id")
                    .and_then(|id| id.as_str())
                    .map(str::to_owned)
            })
            .or_else(|| event_id.as_ref().map(|id| format!("{id}/{index}")));
        let claim = item_id.map(|id| {
            idempotency_claim(
                &honeycomb,
                format!("sentry:{}:{id}", item.kind()),
                &bytes,
                now,
            )
        });
        let accepted = accept(state, &key, &honeycomb, report, claim).await?;
        stored.extend(accepted.stored_id);
    }
    // A screenshot goes with the feedback it came with (the first one of the envelope), read
    // back only then; a replayed drop's phantom id finds no bichito.
    if let (Some(&id), Some(image)) = (
        stored.first(),
        parsed.items.iter().find(|item| item.kind() == "attachment"),
    ) && let Some(bichito) = state
        .store
        .bichito(id)
        .await?
        .filter(|bichito| bichito.honeycomb_id == honeycomb.id)
        && let Err(skipped) = screenshot::attach(state, &bichito, image).await?
    {
        tracing::info!(bichito_id = bichito.id, reason = ?skipped, "sentry screenshot not attached");
    }
    Ok(event_id)
}
