//! `GET /api/v1/teams/{team_id}/stream`: the team's events over Server-Sent Events (seed 000).
//!
//! First `hello` (server time), then, when resuming with `Last-Event-ID` (header, or the
//! `last_event_id` query for hand-rolled clients), the missed events or a `stream.reset` when
//! they are out of the window, then live events. Every event has an `id:`. A subscriber that
//! falls more than its queue behind loses its oldest events and gets `stream.gap`, whose id is
//! the last event it did get: resuming from it replays what was dropped.
//!
//! A stream lasts as long as what authorized it: at the JWT's `exp`, the session's expiry or
//! its sign-out, or when its team is removed, it sends `stream.expired {reason}` and ends. The
//! client renews its authorization and resumes from that event's id, losing nothing.

use super::event::BusEvent;
use super::hub::TeamSubscription;
use super::sse;
use crate::auth::session::session_secret;
use crate::bus::Replay;
use crate::config::UrlTokens;
use crate::error::{ApiError, FieldError};
use crate::grants::SessionWatch;
use crate::http::extract::{PathParam, QueryParams};
use crate::http::openapi::ReadErrors;
use crate::state::StreamState;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::Response;
use bichito_core::events::EventType;
use bichito_core::session::secret_hash;
use chrono::{DateTime, SecondsFormat, Utc};
use futures_util::{Stream, StreamExt};
use serde_json::json;
use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::sync::broadcast::error::{RecvError, TryRecvError};
use tokio::time::{Instant, Sleep};

/// One event of a team's stream, as an SSE client reads it.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)] // Documentation only: `sse::frame` writes the real ones.
pub struct StreamEvent {
    /// Resume after this event with `Last-Event-ID`.
    #[schema(pattern = "^[0-9]+$")]
    id: String,
    event: StreamEventType,
    /// One JSON object: its fields depend on `event` (see the operation).
    data: String,
}

/// The stream's own events, besides the bus's.
const HELLO: &str = "hello";
const GAP: &str = "stream.gap";
const RESET: &str = "stream.reset";
const EXPIRED: &str = "stream.expired";

/// The `event:` names a client reads: the bus's event types (not `team.removed`, which never
/// reaches a client) and the stream's own.
struct StreamEventType;

impl utoipa::PartialSchema for StreamEventType {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        let bus = EventType::ALL
            .into_iter()
            .filter(|event_type| *event_type != EventType::TeamRemoved)
            .map(EventType::as_str);
        let names = [HELLO].into_iter().chain(bus).chain([GAP, RESET, EXPIRED]);
        utoipa::openapi::schema::ObjectBuilder::new()
            .schema_type(utoipa::openapi::Type::String)
            .enum_values(Some(names))
            .into()
    }
}

impl utoipa::ToSchema for StreamEventType {}

#[utoipa::path(
    get,
    path = super::ROUTE,
    tag = "stream",
    operation_id = "streamTeamEvents",
    summary = "A team's live events",
    description = "A long-lived `text/event-stream`. Every event has an `id:`, and its `data:` \
        is one JSON object:\n\n\
        - `hello` `{serverTime}`: first, once;\n\
        - `bug.created`: the canonical bichito payload (as `GET /api/v1/bugs/{id}`);\n\
        - `bug.updated` `{bug_id, project_id, changes}`: only the fields that changed (`labels` \
          whole);\n\
        - `bug.commented` `{bug_id, project_id, comment_id, author_id}`;\n\
        - `bug.deleted` `{bug_id, project_id}`;\n\
        - `stream.gap` `{missed, reason}`: this client fell behind and lost events; resume from \
          this id;\n\
        - `stream.reset` `{reason, last_event_id}`: the resume point is out of the replay \
          window: refetch, then follow;\n\
        - `stream.expired` `{reason, message}`: the authorization ended (`token_expired`, \
          `session_expired`, `signed_out`, `team_removed`); the stream closes.\n\n\
        A `: heartbeat` comment comes every 30 s. Resume with `Last-Event-ID` (or \
        `?last_event_id=`): the missed events are replayed. Authorize with a bearer token, the \
        session cookie, a ticket (`?ticket=`) or the JWT in `?token=`. A team the caller is not \
        a member of is 404.",
    params(
        ("team_id" = String, Path, description = "The team."),
        ("types" = Option<String>, Query, nullable = false, description = "Only these event types, comma-separated: bug.created, bug.updated, bug.commented, bug.deleted."),
        ("last_event_id" = Option<String>, Query, nullable = false, description = "Resume after this event id (for clients that cannot send `Last-Event-ID`)."),
        ("Last-Event-ID" = Option<String>, Header, nullable = false, description = "Resume after this event id (what `EventSource` sends when it reconnects)."),
    ),
    responses(
        (status = 200, description = "The event stream: each event as below.", content_type = "text/event-stream", body = StreamEvent,
            example = json!("id: 41\nevent: hello\ndata: {\"serverTime\":\"2026-05-07T11:42:00.000Z\"}\n\nid: 42\nevent: bug.updated\ndata: {\"bug_id\":42,\"project_id\":7,\"changes\":{\"status\":\"resolved\"}}\n\n")),
        ReadErrors,
    ),
    security(("bearer" = []), ("session" = []), ("stream_ticket" = []), ("stream_token" = [])),
)]
pub async fn team_stream(
    State(state): State<StreamState>,
    headers: HeaderMap,
    PathParam(team_id): PathParam,
    QueryParams(params): QueryParams,
) -> Result<Response, ApiError> {
    let stream = open(&state, &team_id, &headers, &params).await?;
    let mut response = Response::new(Body::from_stream(stream.frames().map(Ok::<_, Infallible>)));
    for (name, value) in sse::RESPONSE_HEADERS {
        response
            .headers_mut()
            .insert(name, HeaderValue::from_static(value));
    }
    Ok(response)
}

/// Authorizes a subscription to `team_id`'s stream and opens it: subscribed to the bus, with
/// `hello` and any replay queued.
pub async fn open(
    state: &StreamState,
    team_id: &str,
    headers: &HeaderMap,
    params: &HashMap<String, String>,
) -> Result<TeamStream, ApiError> {
    let auth = authorize(state, team_id, headers, params).await?;
    let types = parse_types(params.get("types"))?;
    let resume_from = headers
        .get("last-event-id")
        .and_then(|value| value.to_str().ok())
        .or(params.get("last_event_id").map(String::as_str))
        .map(str::to_owned);

    // The subscription gets every event after `head`; a replay reads up to the newest event, so
    // nothing falls in between, and events seen twice are skipped by id.
    let subscription = state
        .bus
        .subscribe(team_id)
        .await
        .map_err(|err| unavailable(&err))?;
    let head = subscription.after;
    let mut initial = VecDeque::new();
    let mut last_sent = head;
    let mut hello_id = head;
    if let Some(text) = resume_from {
        let replay = match text.trim().parse::<u64>() {
            Ok(after) => match state
                .bus
                .replay(team_id, after)
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
                        initial.push_back(event.frame.clone());
                    }
                }
            }
            None => {
                state.metrics.stream_reset();
                let reset = json!({"reason": "Last-Event-ID is outside the replay window: refetch, then follow the stream", "last_event_id": text});
                initial.push_back(sse::frame(head, RESET, &reset.to_string()));
            }
        }
    }
    let hello =
        json!({"serverTime": state.clock.now().to_rfc3339_opts(SecondsFormat::Millis, true)});
    initial.push_front(sse::frame(hello_id, HELLO, &hello.to_string()));

    let now = Instant::now();
    let ends = now
        + (auth.ends_at - state.clock.now())
            .to_std()
            .unwrap_or_default();
    let first_timer = (now + state.settings.sse_heartbeat_interval).min(ends);
    let StreamAuth {
        expiry, session, ..
    } = auth;
    Ok(TeamStream(Connection {
        state: state.clone(),
        initial,
        subscription,
        last_sent,
        types,
        heartbeat: Box::pin(tokio::time::sleep_until(first_timer)),
        last_frame: now,
        ends,
        expiry,
        // Boxed: most streams have none, and this stays one pointer for them.
        session: session.map(Box::new),
        ended: false,
        _open: OpenStream::new(state),
    }))
}

const URL_TOKENS_REFUSED: &str = "tokens in stream URLs are refused here (STREAM_URL_TOKENS=refuse): sign in for a session cookie, send Authorization: Bearer, or open the stream with ?ticket= from POST /api/v1/teams/{team_id}/stream/tickets";

/// Why a stream ended (`stream.expired`'s reason).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expiry {
    TokenExpired,
    SessionExpired,
    SignedOut,
    TeamRemoved,
}

impl Expiry {
    fn reason(self) -> &'static str {
        match self {
            Expiry::TokenExpired => "token_expired",
            Expiry::SessionExpired => "session_expired",
            Expiry::SignedOut => "signed_out",
            Expiry::TeamRemoved => "team_removed",
        }
    }

    fn message(self) -> &'static str {
        match self {
            Expiry::TokenExpired => "the token expired: renew it, then resume from this id",
            Expiry::SessionExpired => {
                "the session expired: sign in again, then resume from this id"
            }
            Expiry::SignedOut => {
                "the session was signed out: sign in again, then resume from this id"
            }
            Expiry::TeamRemoved => "the team's last honeycomb was deleted: the team is gone",
        }
    }
}

/// What authorized a stream, and so when and why it ends.
struct StreamAuth {
    ends_at: DateTime<Utc>,
    /// Why the stream ends when `ends_at` comes.
    expiry: Expiry,
    /// The session it depends on: its sign-out ends the stream (reason `signed_out`).
    session: Option<SessionWatch>,
}

/// Who may open `team_id`'s stream: a ticket (`?ticket=`, once), a JWT (`?token=`, unless
/// refused, or `Authorization: Bearer`), or the session cookie. Not a member: 404, as for a
/// team that does not exist.
async fn authorize(
    state: &StreamState,
    team_id: &str,
    headers: &HeaderMap,
    params: &HashMap<String, String>,
) -> Result<StreamAuth, ApiError> {
    let now = state.clock.now();
    if let Some(ticket) = params.get("ticket") {
        let ticket = state
            .grants
            .redeem_ticket(&secret_hash(ticket), now)
            .await?
            .filter(|ticket| ticket.team_id == team_id)
            .ok_or(ApiError::Unauthorized(
                "unknown, used or expired stream ticket: ask for a new one",
            ))?;
        let session = match ticket.session {
            Some(id_hash) => Some(live_session(state, &id_hash, now).await?.0),
            None => None,
        };
        return Ok(StreamAuth {
            ends_at: ticket.grant_expires_at,
            expiry: if session.is_some() {
                Expiry::SessionExpired
            } else {
                Expiry::TokenExpired
            },
            session,
        });
    }
    let caller = if let Some(token) = params.get("token") {
        if state.settings.stream_url_tokens == UrlTokens::Refuse {
            return Err(ApiError::Unauthorized(URL_TOKENS_REFUSED));
        }
        state.jwt.verify(token).await?
    } else if headers.contains_key(header::AUTHORIZATION) {
        state.jwt.caller(headers).await?
    } else if let Some(secret) = session_secret(headers) {
        let (watch, session) = live_session(state, &secret_hash(secret), now).await?;
        if !session.teams.iter().any(|team| team == team_id) {
            return Err(ApiError::NotFound);
        }
        return Ok(StreamAuth {
            ends_at: session.expires_at,
            expiry: Expiry::SessionExpired,
            session: Some(watch),
        });
    } else {
        return Err(ApiError::Unauthorized(
            "missing bearer token, session cookie or stream ticket",
        ));
    };
    if !caller.is_member_of(team_id) {
        return Err(ApiError::NotFound);
    }
    Ok(StreamAuth {
        ends_at: caller.expires_at,
        expiry: Expiry::TokenExpired,
        session: None,
    })
}

/// The session `id_hash` names, watched from before it is read: a sign-out after the read
/// still reaches the stream.
async fn live_session(
    state: &StreamState,
    id_hash: &str,
    now: DateTime<Utc>,
) -> Result<(SessionWatch, crate::grants::SessionGrant), ApiError> {
    let watch = state.grants.watch_session(id_hash);
    let session = state
        .grants
        .session(id_hash, now)
        .await?
        .ok_or(ApiError::Unauthorized("session expired or signed out"))?;
    Ok((watch, session))
}

/// An open subscription to a team's stream: its SSE frames, shared with every other
/// subscriber; whoever writes them adds the transport's framing.
pub struct TeamStream(Connection);

impl TeamStream {
    /// The next frame: queued ones first, then live events and heartbeats; `None` once the bus
    /// closed the subscription (the server shuts down).
    pub async fn next_frame(&mut self) -> Option<Bytes> {
        let frame = next_event_frame(&mut self.0).await?;
        // The heartbeat timer is moved only when it fires: resetting it for every frame would
        // cost a timer update per delivery.
        self.0.last_frame = Instant::now();
        Some(frame)
    }

    /// A frame that is ready now, without waiting (none when the next one is not).
    pub fn ready_frame(&mut self) -> Option<Bytes> {
        let connection = &mut self.0;
        if connection.ended {
            return None;
        }
        if let Some(frame) = connection.queued() {
            return Some(frame);
        }
        loop {
            let received = match connection.subscription.receiver.try_recv() {
                Ok(event) => Ok(event),
                Err(TryRecvError::Lagged(missed)) => Err(RecvError::Lagged(missed)),
                // Closed is for `next_frame` to see and end the stream on.
                Err(TryRecvError::Empty | TryRecvError::Closed) => return None,
            };
            if let Some(frame) = connection.accept(received) {
                return Some(frame);
            }
        }
    }

    /// The stream's SSE frames, for a response body: hyper chunks them itself.
    pub fn frames(self) -> impl Stream<Item = Bytes> + Send + 'static {
        futures_util::stream::unfold(self, |mut stream| async move {
            let frame = stream.next_frame().await?;
            Some((frame, stream))
        })
    }
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
        match EventType::parse(name).filter(|event_type| *event_type != EventType::TeamRemoved) {
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

/// Whether a client gets `event`: of the types it asked for, and never `team.removed`, which
/// ends a live stream instead (and is skipped in a replay: the team it names may be back).
fn wanted(types: Option<&[EventType]>, event: &BusEvent) -> bool {
    event.event_type != EventType::TeamRemoved
        && types.is_none_or(|types| types.contains(&event.event_type))
}

struct Connection {
    state: StreamState,
    initial: VecDeque<Bytes>,
    subscription: TeamSubscription,
    last_sent: u64,
    types: Option<Vec<EventType>>,
    /// Fires a heartbeat interval after `last_frame` (or earlier, and is then moved), or at
    /// `ends` when that comes first.
    heartbeat: Pin<Box<Sleep>>,
    last_frame: Instant,
    /// When the authorization ends, and why.
    ends: Instant,
    expiry: Expiry,
    /// The session the stream depends on: its end ends the stream.
    session: Option<Box<SessionWatch>>,
    /// `stream.expired` was sent: nothing follows.
    ended: bool,
    _open: OpenStream,
}

/// Ready when the stream's session ended; never for a stream without one. A plain poll of
/// the watch's own wait, so that the state of a waiting stream does not grow by a future.
fn poll_signed_out(session: &mut Option<Box<SessionWatch>>, cx: &mut Context<'_>) -> Poll<()> {
    match session {
        Some(watch) => watch.poll_ended(cx),
        None => Poll::Pending,
    }
}

async fn next_event_frame(connection: &mut Connection) -> Option<Bytes> {
    if connection.ended {
        return None;
    }
    if connection
        .session
        .as_deref()
        .is_some_and(SessionWatch::is_ended)
    {
        return Some(connection.expire(Expiry::SignedOut));
    }
    if let Some(frame) = connection.queued() {
        return Some(frame);
    }
    loop {
        // No shutdown branch: on shutdown the bus closes every subscription (`close_streams`).
        let received = tokio::select! {
            () = connection.heartbeat.as_mut() => {
                let now = Instant::now();
                if now >= connection.ends {
                    let expiry = connection.expiry;
                    return Some(connection.expire(expiry));
                }
                let due = connection.last_frame + connection.state.settings.sse_heartbeat_interval;
                if now < due {
                    connection.heartbeat.as_mut().reset(due.min(connection.ends));
                    continue;
                }
                return Some(sse::HEARTBEAT);
            }
            () = std::future::poll_fn(|cx| poll_signed_out(&mut connection.session, cx)) => {
                return Some(connection.expire(Expiry::SignedOut));
            }
            received = connection.subscription.receiver.recv() => received,
        };
        if let Err(RecvError::Closed) = received {
            return None;
        }
        if let Some(frame) = connection.accept(received) {
            return Some(frame);
        }
    }
}

impl Connection {
    /// The last frame of a stream whose authorization ended: its id is the last event sent,
    /// so resuming from it loses nothing.
    fn expire(&mut self, expiry: Expiry) -> Bytes {
        self.ended = true;
        self.state.metrics.stream_expired(expiry.reason());
        let body = json!({"reason": expiry.reason(), "message": expiry.message()});
        sse::frame(self.last_sent, EXPIRED, &body.to_string())
    }

    /// The next of the frames queued when the stream opened (`hello`, a replay or a reset).
    fn queued(&mut self) -> Option<Bytes> {
        let frame = self.initial.pop_front()?;
        self.state.metrics.stream_event_sent();
        Some(frame)
    }

    /// What to send for what the subscription received: the event's frame, a `stream.gap`
    /// when events were dropped, or nothing (an event already sent, or of a type not wanted).
    fn accept(&mut self, received: Result<Arc<BusEvent>, RecvError>) -> Option<Bytes> {
        match received {
            Ok(event) => {
                if event.id <= self.last_sent {
                    return None;
                }
                self.last_sent = event.id;
                if event.event_type == EventType::TeamRemoved {
                    return Some(self.expire(Expiry::TeamRemoved));
                }
                if !wanted(self.types.as_deref(), &event) {
                    return None;
                }
                self.state.metrics.stream_event_sent();
                Some(event.frame.clone())
            }
            Err(RecvError::Lagged(missed)) => {
                self.state.metrics.stream_events_dropped(missed);
                let gap = json!({"missed": missed, "reason": "this client fell behind; resume from this id or refetch"});
                Some(sse::frame(self.last_sent, GAP, &gap.to_string()))
            }
            Err(RecvError::Closed) => None,
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
