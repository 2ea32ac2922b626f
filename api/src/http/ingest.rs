//! `POST /api/v1/bugs` and `GET /api/v1/widget/info`: the public, API-key side (seed 002).
//!
//! Order of checks, cheapest first: the key (401), the origin (403), the rate limit (429), the
//! content type (415), the size (413, nothing more is read), the JSON and every field (400).
//! Blocked and over-cap reports get a 201 like any other, with nothing stored.

use crate::auth::{Reporter, still_valid};
use crate::error::ApiError;
use crate::http::extract::require_json;
use crate::http::openapi::{IngestErrors, KeyReadErrors};
use crate::metrics::ReportOutcome;
use crate::report;
use crate::report::ReportBody;
use crate::state::AppState;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bichito_core::blocklist;
use bichito_core::clock::truncate_to_millis;
use bichito_core::model::{ApiKeyRecord, Bichito, Honeycomb, NewBichito};
use bichito_core::spec::Plan;
use bichito_core::store::{IdempotencyClaim, Inserted, StoredResponse};
use chrono::{DateTime, TimeDelta, Utc};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use sha2::{Digest, Sha256};
use utoipa::ToSchema;

const IDEMPOTENCY_HEADER: &str = "idempotency-key";
const REPLAYED_HEADER: &str = "idempotent-replayed";
const IDEMPOTENCY_KEY_MAX_LEN: usize = 255;
const IDEMPOTENCY_WINDOW: TimeDelta = TimeDelta::hours(24);

/// `POST /api/v1/bugs`.
#[utoipa::path(
    post,
    path = "/api/v1/bugs",
    tag = "ingest",
    operation_id = "createBug",
    summary = "Report a bichito",
    description = "Stores a report and announces it on its team's stream (`bug.created`). A report \
        that matches the honeycomb's blocklist, or that is over a free plan's monthly cap, gets \
        the same 201 and is not stored: the reporter cannot tell. Checks, cheapest first: the \
        key (401), the `Origin` (403), the rate limit (429), the content type (415), the size \
        (413), the JSON and each field (400, every rejected field named).",
    request_body(content = ReportBody, content_type = "application/json"),
    params(
        ("Idempotency-Key" = Option<String>, Header, max_length = 255, nullable = false,
            description = "Makes retries safe for 24 hours: the same key with the same body \
                answers the first answer again (with `Idempotent-Replayed: true`) and stores \
                nothing new; with another body, 422."),
    ),
    responses(
        (status = 201, description = "Stored, or silently dropped: the canonical payload, the \
            same shape `GET /api/v1/bugs/{id}` returns.", body = Bichito,
            headers(("Idempotent-Replayed" = String,
                description = "`true` when this is the answer to an earlier request with the same `Idempotency-Key`.")),
            links(
                ("AttachScreenshot" = (operation_id = "createAttachment", parameters(("id" = "$response.body#/id")), description = "Start its screenshot's upload.")),
                ("CompleteScreenshot" = (operation_id = "completeAttachment", parameters(("id" = "$response.body#/id")), description = "Finish its screenshot's upload.")),
                ("ReadIt" = (operation_id = "getBug", parameters(("id" = "$response.body#/id")), description = "Read it from a dashboard.")),
                ("TriageIt" = (operation_id = "patchBug", parameters(("id" = "$response.body#/id")), description = "Triage it.")),
                ("CommentOnIt" = (operation_id = "createComment", parameters(("id" = "$response.body#/id")), description = "Comment on it.")),
                ("ReadItsComments" = (operation_id = "listComments", parameters(("id" = "$response.body#/id")), description = "Read its comments.")),
                ("DeleteIt" = (operation_id = "deleteBug", parameters(("id" = "$response.body#/id")), description = "Delete it.")),
            )),
        IngestErrors,
    ),
    security(("api_key" = [])),
)]
pub async fn create_bug(
    State(state): State<AppState>,
    reporter: Reporter,
    headers: HeaderMap,
    body: Body,
) -> Response {
    match ingest(&state, reporter, &headers, body).await {
        Ok(response) => response,
        Err(err) => {
            if err.is_invalid_report() {
                state.metrics.report(ReportOutcome::Invalid);
            } else if matches!(err, ApiError::RateLimited { .. }) {
                state.metrics.report(ReportOutcome::RateLimited);
            }
            err.into_response()
        }
    }
}

/// What the widget needs at boot: the plan and its badge (seed 002), and whether this server
/// takes screenshots (the widget offers none when it does not).
#[utoipa::path(
    get,
    path = "/api/v1/widget/info",
    tag = "ingest",
    operation_id = "getWidgetInfo",
    summary = "What the widget needs at boot",
    responses(
        (status = 200, body = WidgetInfo, description = "The honeycomb's plan, its badge, and whether screenshots can be sent."),
        KeyReadErrors,
    ),
    security(("api_key" = [])),
)]
pub async fn widget_info(
    State(state): State<AppState>,
    Reporter { honeycomb, .. }: Reporter,
) -> Response {
    axum::Json(WidgetInfo {
        plan: honeycomb.plan,
        powered_by_visible: honeycomb.plan == Plan::Free,
        attachments: state.attachments.storage().is_ok(),
    })
    .into_response()
}

/// What the widget needs at boot.
#[derive(serde::Serialize, ToSchema)]
#[schema(example = json!({"plan": "free", "powered_by_visible": true, "attachments": true}))]
pub struct WidgetInfo {
    plan: Plan,
    /// Whether the widget shows "Powered by bichito" (the free plan).
    powered_by_visible: bool,
    /// Whether this server stores screenshots (`ATTACHMENTS_BACKEND` is not `disabled`).
    attachments: bool,
}

async fn ingest(
    state: &AppState,
    Reporter { key, honeycomb }: Reporter,
    headers: &HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let now = truncate_to_millis(state.clock.now());
    check_rate(state, &key, &honeycomb, now).await?;
    require_json(headers)?;
    let bytes = read_limited(headers, body, state.limits.body_limit_bytes).await?;
    let idempotency_key = idempotency_key(headers)?;
    let envelope = report::Envelope {
        honeycomb_id: honeycomb.id,
        api_key_id: key.id,
        team_id: honeycomb.team_id.clone(),
        created_at: now,
    };
    let report = report::parse(&bytes, envelope)?;
    let claim =
        idempotency_key.map(|idempotency| idempotency_claim(&honeycomb, idempotency, &bytes, now));
    Ok(accept(state, &key, &honeycomb, report, claim)
        .await?
        .response)
}

/// The rate limit of `key` (429 with `Retry-After` when spent).
pub(crate) async fn check_rate(
    state: &AppState,
    key: &ApiKeyRecord,
    honeycomb: &Honeycomb,
    now: DateTime<Utc>,
) -> Result<(), ApiError> {
    let per_minute = honeycomb
        .reports_per_minute
        .unwrap_or(state.limits.default_reports_per_minute);
    state
        .rate_limiter
        .check(&*state.store, key.id, per_minute, now.timestamp_millis())
        .await
}

/// A claim on `key` for this request body: the same key with another body is a 422.
pub(crate) fn idempotency_claim(
    honeycomb: &Honeycomb,
    key: String,
    body: &[u8],
    now: DateTime<Utc>,
) -> IdempotencyClaim {
    IdempotencyClaim {
        honeycomb_id: honeycomb.id,
        key,
        request_hash: hex::encode(Sha256::digest(body)),
        created_at: now,
        not_before: now - IDEMPOTENCY_WINDOW,
    }
}

/// What became of a valid report: the answer, and the id it was stored under, now or by an
/// earlier request with the same idempotency key (none when it was dropped; a replayed drop
/// names a phantom id that no bichito has).
pub(crate) struct Accepted {
    pub response: Response,
    pub stored_id: Option<i64>,
}

/// A valid report from then on, whatever way it came: replayed, dropped by the blocklist or the
/// monthly cap (a 201 all the same), or stored with its `bug.created` event.
pub(crate) async fn accept(
    state: &AppState,
    key: &ApiKeyRecord,
    honeycomb: &Honeycomb,
    report: NewBichito,
    claim: Option<IdempotencyClaim>,
) -> Result<Accepted, ApiError> {
    let answered = |response| Accepted {
        response,
        stored_id: None,
    };
    if let Some(claim) = &claim
        && let Some(previous) = state
            .store
            .idempotent_response(claim.honeycomb_id, &claim.key, claim.not_before)
            .await?
    {
        return replayed(claim, previous);
    }

    if let Some(rule) = blocklist::first_match(&honeycomb.blocklist, &report) {
        // Nothing is written that would check the key: check it now, as a stored report would.
        still_valid(state, key).await?;
        tracing::info!(honeycomb_id = honeycomb.id, field = %rule.field, "report matched the blocklist; dropped");
        state.metrics.report(ReportOutcome::Blocked);
        return silently_dropped(state, report, claim.as_ref())
            .await
            .map(answered);
    }
    match state
        .store
        .insert_bichito(&report, honeycomb.monthly_cap(), claim.as_ref())
        .await?
    {
        Inserted::Stored(bichito) => {
            state.metrics.report(ReportOutcome::Accepted);
            tracing::info!(
                honeycomb_id = honeycomb.id,
                bichito_id = bichito.id,
                "report accepted"
            );
            Ok(Accepted {
                stored_id: Some(bichito.id),
                response: (StatusCode::CREATED, axum::Json(bichito)).into_response(),
            })
        }
        Inserted::KeyRevoked => {
            state.settings.forget_key(&key.prefix);
            Err(ApiError::InvalidApiKey("revoked API key"))
        }
        Inserted::OverCap => {
            tracing::info!(
                honeycomb_id = honeycomb.id,
                "honeycomb over its monthly cap; report dropped"
            );
            state.metrics.report(ReportOutcome::OverCap);
            silently_dropped(state, report, claim.as_ref())
                .await
                .map(answered)
        }
        Inserted::Replay(previous) => match &claim {
            Some(claim) => replayed(claim, previous),
            None => Err(ApiError::Internal(
                "replay without an idempotency key".into(),
            )),
        },
    }
}

/// Reads at most `limit` bytes: a declared or actual larger body is refused without reading on.
pub(crate) async fn read_limited(
    headers: &HeaderMap,
    body: Body,
    limit: usize,
) -> Result<axum::body::Bytes, ApiError> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<u64>().ok());
    if declared.is_some_and(|length| length > limit as u64) {
        return Err(ApiError::PayloadTooLarge { limit });
    }
    match Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(err) if err.downcast_ref::<LengthLimitError>().is_some() => {
            Err(ApiError::PayloadTooLarge { limit })
        }
        Err(err) => Err(ApiError::BadRequest(format!(
            "could not read the request body: {err}"
        ))),
    }
}

fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(value) = headers.get(IDEMPOTENCY_HEADER) else {
        return Ok(None);
    };
    match value.to_str() {
        Ok(key)
            if !key.is_empty()
                && key.len() <= IDEMPOTENCY_KEY_MAX_LEN
                && key.bytes().all(|b| b.is_ascii_graphic()) =>
        {
            Ok(Some(key.to_owned()))
        }
        _ => Err(ApiError::BadRequest(format!(
            "Idempotency-Key must be 1 to {IDEMPOTENCY_KEY_MAX_LEN} visible ASCII characters"
        ))),
    }
}

/// A dropped report answers exactly like a stored one: 201, a fresh id, the canonical payload.
async fn silently_dropped(
    state: &AppState,
    report: NewBichito,
    claim: Option<&IdempotencyClaim>,
) -> Result<Response, ApiError> {
    let id = state.store.reserve_phantom_id().await?;
    let body = serde_json::to_string(&report.into_bichito(id))
        .map_err(|err| ApiError::Internal(Box::new(err)))?;
    if let Some(claim) = claim {
        let response = StoredResponse {
            request_hash: claim.request_hash.clone(),
            status: 201,
            body: body.clone(),
        };
        if let Some(previous) = state.store.remember_response(claim, &response).await? {
            return replay(claim, previous);
        }
    }
    Ok(json_response(StatusCode::CREATED, body))
}

/// A replay, with the id its stored answer names.
fn replayed(claim: &IdempotencyClaim, previous: StoredResponse) -> Result<Accepted, ApiError> {
    let stored_id = serde_json::from_str::<serde_json::Value>(&previous.body)
        .ok()
        .and_then(|answer| answer.get("id").and_then(serde_json::Value::as_i64));
    Ok(Accepted {
        response: replay(claim, previous)?,
        stored_id,
    })
}

fn replay(claim: &IdempotencyClaim, previous: StoredResponse) -> Result<Response, ApiError> {
    if previous.request_hash != claim.request_hash {
        return Err(ApiError::IdempotencyMismatch);
    }
    let status = StatusCode::from_u16(previous.status).unwrap_or(StatusCode::CREATED);
    let mut response = json_response(status, previous.body);
    response
        .headers_mut()
        .insert(REPLAYED_HEADER, HeaderValue::from_static("true"));
    Ok(response)
}

fn json_response(status: StatusCode, body: String) -> Response {
    (
        status,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        body,
    )
        .into_response()
}
