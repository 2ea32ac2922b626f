//! `GET /api/v1/teams/{team_id}/stream`: the team's events over Server-Sent Events (seed 000).
//!
//! First `hello` (server time), then, when resuming with `Last-Event-ID` (header, or the
//! `last_event_id` query for hand-rolled clients), the missed events or a `stream.reset` when
//! they are out of the window, then live events. Every event has an `id:`. A subscriber that
//! falls more than its queue behind loses its oldest events and gets `stream.gap`, whose id is
//! the last event it did get: resuming from it replays what was dropped.

use crate::bus::hub::TeamSubscription;
use crate::bus::{BusEvent, Replay};
use crate::error::{ApiError, FieldError};
use crate::http::extract::QueryParams;
use crate::state::StreamState;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use bichito_core::events::EventType;
use chrono::SecondsFormat;
use serde_json::json;
use std::collections::VecDeque;
use std::convert::Infallible;
use tokio::sync::broadcast::error::RecvError;

pub async fn team_stream(
    State(state): State<StreamState>,
    headers: HeaderMap,
    Path(team_id): Path<String>,
    QueryParams(params): QueryParams,
) -> Result<Response, ApiError> {
    let caller = match params.get("token") {
        Some(token) => state.jwt.verify(token)?,
        None => state.jwt.caller(&headers)?,
    };
    if !caller.is_member_of(&team_id) {
        return Err(ApiError::NotFound);
    }
    let types = parse_types(params.get("types"))?;
    let resume_from = headers
        .get("last-event-id")
        .and_then(|value| value.to_str().ok())
        .or(params.get("last_event_id").map(String::as_str))
        .map(str::to_owned);

    // Subscribe before reading the head or the replay, so that nothing falls in between;
    // events seen twice are skipped by id.
    let subscription = state
        .bus
        .subscribe(&team_id)
        .await
        .map_err(|err| unavailable(&err))?;
    let head = state.bus.head().await.map_err(|err| unavailable(&err))?;
    let mut initial = VecDeque::new();
    let mut last_sent = head;
    let mut hello_id = head;
    if let Some(text) = resume_from {
        let replay = match text.trim().parse::<u64>() {
            Ok(after) => match state
                .bus
                .replay(&team_id, after)
                .await
                .map_err(|err| unavailable(&err))?
            {
                Replay::Events(events) => Some((after, events)),
                Replay::TooOld => None,
            },
            Err(_) => None,
        };
        match replay {
            Some((after, events)) => {
                state.metrics.stream_resumed();
                hello_id = after;
                last_sent = after;
                for event in events {
                    last_sent = last_sent.max(event.id);
                    if wanted(types.as_deref(), &event) {
                        initial.push_back(event_frame(&event));
                    }
                }
            }
            None => {
                state.metrics.stream_reset();
                let reset = json!({"reason": "Last-Event-ID is outside the replay window: refetch, then follow the stream", "last_event_id": text});
                initial.push_back(
                    Event::default()
                        .id(head.to_string())
                        .event("stream.reset")
                        .data(reset.to_string()),
                );
            }
        }
    }
    let hello =
        json!({"serverTime": state.clock.now().to_rfc3339_opts(SecondsFormat::Millis, true)});
    initial.push_front(
        Event::default()
            .id(hello_id.to_string())
            .event("hello")
            .data(hello.to_string()),
    );

    let connection = Connection {
        state: state.clone(),
        initial,
        subscription,
        last_sent,
        types,
        _open: OpenStream::new(&state),
    };
    let events = futures_util::stream::unfold(connection, next_frame);
    let keep_alive = KeepAlive::new()
        .interval(state.settings.sse_heartbeat_interval)
        .text("heartbeat");
    let mut response = Sse::new(events).keep_alive(keep_alive).into_response();
    let response_headers = response.headers_mut();
    response_headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response_headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
    Ok(response)
}

fn unavailable(err: &crate::bus::BusError) -> ApiError {
    tracing::warn!(error = %err, "stream: bus unavailable");
    ApiError::Unavailable
}

/// `types=bug.created,bug.deleted`: only those event types (`hello` and `stream.*` always come).
fn parse_types(value: Option<&String>) -> Result<Option<Vec<EventType>>, ApiError> {
    let Some(value) = value else {
        return Ok(None);
    };
    let mut types = Vec::new();
    for name in value
        .split(',')
        .map(str::trim)
        .filter(|name| !name.is_empty())
    {
        match EventType::parse(name) {
            Some(event_type) => types.push(event_type),
            None => {
                return Err(ApiError::Validation(vec![FieldError::new(
                    "types",
                    format!(
                        "unknown event type {name:?}: use bug.created, bug.updated, bug.commented, bug.deleted"
                    ),
                )]));
            }
        }
    }
    Ok(Some(types))
}

fn wanted(types: Option<&[EventType]>, event: &BusEvent) -> bool {
    types.is_none_or(|types| types.contains(&event.event_type))
}

fn event_frame(event: &BusEvent) -> Event {
    Event::default()
        .id(event.id.to_string())
        .event(event.event_type.as_str())
        .data(&*event.payload)
}

struct Connection {
    state: StreamState,
    initial: VecDeque<Event>,
    subscription: TeamSubscription,
    last_sent: u64,
    types: Option<Vec<EventType>>,
    _open: OpenStream,
}

async fn next_frame(mut connection: Connection) -> Option<(Result<Event, Infallible>, Connection)> {
    if let Some(frame) = connection.initial.pop_front() {
        connection.state.metrics.stream_event_sent();
        return Some((Ok(frame), connection));
    }
    loop {
        let received = tokio::select! {
            () = connection.state.shutdown.cancelled() => return None,
            received = connection.subscription.receiver.recv() => received,
        };
        match received {
            Ok(event) => {
                if event.id <= connection.last_sent {
                    continue;
                }
                connection.last_sent = event.id;
                if !wanted(connection.types.as_deref(), &event) {
                    continue;
                }
                connection.state.metrics.stream_event_sent();
                return Some((Ok(event_frame(&event)), connection));
            }
            Err(RecvError::Lagged(missed)) => {
                connection.state.metrics.stream_events_dropped(missed);
                let gap = json!({"missed": missed, "reason": "this client fell behind; resume from this id or refetch"});
                let frame = Event::default()
                    .id(connection.last_sent.to_string())
                    .event("stream.gap")
                    .data(gap.to_string());
                return Some((Ok(frame), connection));
            }
            Err(RecvError::Closed) => return None,
        }
    }
}

/// Counts an open stream for as long as it lives.
struct OpenStream(StreamState);

impl OpenStream {
    fn new(state: &StreamState) -> Self {
        state.metrics.stream_opened(state.bus.subscribed_teams());
        Self(state.clone())
    }
}

impl Drop for OpenStream {
    // Runs after the connection's subscription was dropped (field order), so the team count
    // is already up to date.
    fn drop(&mut self) {
        self.0.metrics.stream_closed(self.0.bus.subscribed_teams());
    }
}
