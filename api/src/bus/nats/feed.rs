//! The feed: every team's events, in stream order, handed to this process's hub while any of
//! its connections streams a team.
//!
//! Once the stream has acknowledged an event, the relay also publishes a notice of it on
//! `<prefix>.live.team.<team_id>.<event type>`: the event with its stream sequence in the
//! `Bichito-Sequence` header, on core NATS. The feed subscribes to the notices and hands the
//! events over strictly in sequence order. What the notices miss it reads from the stream by
//! sequence, from the stream's leader: notices lost while this process reconnected, notices of
//! several api processes that arrive out of order (each waits [`GAP_GRACE`] for those before
//! it), an api process gone between the acknowledgement and its notice (a quiet feed asks the
//! stream for anything newer every [`IDLE_CHECK`]).
//!
//! Why not a JetStream consumer: an ordered consumer lives on one node. When that node goes,
//! the consumer is noticed gone only by missed heartbeats and made anew only through the
//! cluster's metadata leader; stopping one node of a cluster paused every stream for seconds.
//! A core subscription lives on whichever node the client is connected to, and a client moves
//! to another node within half a second. It also costs nats-server no consumer per process.

use super::{BusError, NatsSettings, unavailable};
use crate::stream::event::BusEvent;
use crate::stream::hub::TeamHub;
use async_nats::jetstream::{self, stream};
use bichito_core::events::{EventType, OutboxEvent};
use futures_util::StreamExt;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// The header of a notice that carries its event's stream sequence.
pub const SEQUENCE_HEADER: &str = "Bichito-Sequence";
/// How long a notice that came before those it follows waits for them.
const GAP_GRACE: Duration = Duration::from_millis(50);
/// How often a feed that heard no notice asks the stream whether it missed an event.
const IDLE_CHECK: Duration = Duration::from_secs(2);
/// Reads of missed events in flight at once.
const FETCH_CONCURRENCY: usize = 16;
/// A notice this far ahead of the feed is not believed: the feed reads the stream instead
/// (a bad publisher must not make it skip or fetch millions of sequences).
const MAX_AHEAD: u64 = 100_000;
/// Waits before following again after a failure: the first, doubled up to the last.
const RETRY_FIRST: Duration = Duration::from_millis(100);
const RETRY_MAX: Duration = Duration::from_secs(1);

/// `<prefix>.live.team.<team_id>.<event type>`: where the notice of `event` goes.
pub fn notice_subject(settings: &NatsSettings, event: &OutboxEvent) -> String {
    format!(
        "{}.live.team.{}.{}",
        settings.subject_prefix,
        event.team_id,
        event.event_type.as_str()
    )
}

/// The team and event type of `<team_id>.<event type>`.
pub fn team_and_type(rest: &str) -> Option<(&str, EventType)> {
    // Event types hold dots (`bug.created`); team slugs do not.
    let (team_id, event_type) = rest.split_once('.')?;
    Some((team_id, EventType::parse(event_type)?))
}

/// Everything the feed needs; `position` is the stream sequence of the newest event handed
/// to the hub (or skipped), stored before it is handed over, so that a subscription made
/// before reading it gets every later event.
pub struct Feed {
    client: async_nats::Client,
    /// With a short request timeout: a request lost with a node is asked again soon.
    jetstream: jetstream::Context,
    settings: NatsSettings,
    hub: Arc<TeamHub>,
    position: Arc<AtomicU64>,
    /// `<prefix>.live.team.` and `<prefix>.team.`: what precedes `<team_id>.<event type>` in
    /// a notice's subject and in a stored event's, made once rather than per event.
    notice_prefix: String,
    stream_prefix: String,
}

impl Feed {
    pub fn new(
        client: async_nats::Client,
        jetstream: jetstream::Context,
        settings: NatsSettings,
        hub: Arc<TeamHub>,
        position: Arc<AtomicU64>,
    ) -> Self {
        Self {
            notice_prefix: format!("{}.live.team.", settings.subject_prefix),
            stream_prefix: format!("{}.team.", settings.subject_prefix),
            client,
            jetstream,
            settings,
            hub,
            position,
        }
    }

    /// Follows the notices for as long as the task runs: again at once after a reconnect,
    /// and after a short wait after a failure.
    pub async fn run(self, mut connections: tokio::sync::watch::Receiver<u64>) {
        let mut retry = RETRY_FIRST;
        loop {
            connections.mark_unchanged();
            match self.follow(&mut connections).await {
                Ok(()) => {
                    tracing::info!("NATS reconnected: catching the event feed up");
                    retry = RETRY_FIRST;
                    continue;
                }
                Err(err) => tracing::warn!(error = %err, "event feed interrupted"),
            }
            tokio::select! {
                () = tokio::time::sleep(retry) => {}
                _ = connections.changed() => retry = RETRY_FIRST,
            }
            retry = (retry * 2).min(RETRY_MAX);
        }
    }

    /// Subscribes to the notices, catches up from the stream, then hands events over as they
    /// come, until a reconnect (`Ok`) or a failure.
    async fn follow(
        &self,
        connections: &mut tokio::sync::watch::Receiver<u64>,
    ) -> Result<(), BusError> {
        let subjects = format!("{}>", self.notice_prefix);
        let mut notices = self.client.subscribe(subjects).await.map_err(unavailable)?;
        let mut stream = self
            .jetstream
            .get_stream(&self.settings.stream_name)
            .await
            .map_err(unavailable)?;
        self.catch_up(&mut stream).await?;
        let mut waiting: BTreeMap<u64, async_nats::Message> = BTreeMap::new();
        let mut gap_since: Option<tokio::time::Instant> = None;
        let mut idle = tokio::time::interval(IDLE_CHECK);
        idle.tick().await;
        let mut heard = false;
        loop {
            let gap_deadline = gap_since.map(|since| since + GAP_GRACE);
            tokio::select! {
                notice = notices.next() => {
                    let notice = notice.ok_or_else(|| unavailable("the notice subscription ended"))?;
                    heard = true;
                    self.take_notice(notice, &mut waiting, &mut stream).await?;
                }
                () = tokio::time::sleep_until(gap_deadline.unwrap_or_else(tokio::time::Instant::now)), if gap_deadline.is_some() => {
                    // The notices before the first one waiting did not come: read them.
                    if let Some(&first) = waiting.keys().next() {
                        let from = self.position.load(Ordering::SeqCst) + 1;
                        self.fetch(&stream, from, first.saturating_sub(1)).await?;
                    }
                    gap_since = None;
                }
                _ = idle.tick() => {
                    if !heard {
                        self.catch_up(&mut stream).await?;
                    }
                    heard = false;
                }
                _ = connections.changed() => return Ok(()),
            }
            self.hand_over_in_order(&mut waiting);
            gap_since = if waiting.is_empty() {
                None
            } else {
                gap_since.or_else(|| Some(tokio::time::Instant::now()))
            };
        }
    }

    /// Keeps a notice until the events before it are handed over; one far ahead sends the
    /// feed to the stream instead.
    async fn take_notice(
        &self,
        notice: async_nats::Message,
        waiting: &mut BTreeMap<u64, async_nats::Message>,
        stream: &mut stream::Stream,
    ) -> Result<(), BusError> {
        let Some(sequence) = notice
            .headers
            .as_ref()
            .and_then(|headers| headers.get(SEQUENCE_HEADER))
            .and_then(|value| value.as_str().parse::<u64>().ok())
        else {
            return Ok(());
        };
        let position = self.position.load(Ordering::SeqCst);
        if sequence <= position {
            return Ok(());
        }
        if sequence - position > MAX_AHEAD {
            return self.catch_up(stream).await;
        }
        waiting.insert(sequence, notice);
        Ok(())
    }

    /// Hands over the waiting events that follow the position without a gap.
    fn hand_over_in_order(&self, waiting: &mut BTreeMap<u64, async_nats::Message>) {
        while let Some(entry) = waiting.first_entry() {
            let sequence = *entry.key();
            let position = self.position.load(Ordering::SeqCst);
            if sequence <= position {
                entry.remove();
            } else if sequence == position + 1 {
                let notice = entry.remove();
                let rest = notice
                    .subject
                    .as_str()
                    .strip_prefix(self.notice_prefix.as_str())
                    .unwrap_or_default();
                self.hand_over(sequence, rest, &notice.payload);
            } else {
                return;
            }
        }
    }

    /// Reads from the stream every event after the position, up to the stream's newest.
    async fn catch_up(&self, stream: &mut stream::Stream) -> Result<(), BusError> {
        let newest = stream
            .info()
            .await
            .map_err(unavailable)?
            .state
            .last_sequence;
        let from = self.position.load(Ordering::SeqCst) + 1;
        self.fetch(stream, from, newest).await
    }

    /// Reads the events `from..=to` from the stream's leader and hands them over in order.
    async fn fetch(&self, stream: &stream::Stream, from: u64, to: u64) -> Result<(), BusError> {
        if from > to {
            return Ok(());
        }
        let mut reads = futures_util::stream::iter(from..=to)
            .map(|sequence| async move { (sequence, stream.get_raw_message(sequence).await) })
            .buffered(FETCH_CONCURRENCY);
        while let Some((sequence, read)) = reads.next().await {
            match read {
                Ok(message) => {
                    let rest = message
                        .subject
                        .as_str()
                        .strip_prefix(self.stream_prefix.as_str())
                        .unwrap_or_default();
                    self.hand_over(sequence, rest, &message.payload);
                }
                // Removed (older than the replay window): nothing to hand over.
                Err(err)
                    if err.kind()
                        == async_nats::jetstream::stream::RawMessageErrorKind::NoMessageFound =>
                {
                    self.position.store(sequence, Ordering::SeqCst);
                }
                Err(err) => return Err(unavailable(err)),
            }
        }
        Ok(())
    }

    /// Moves the position to `sequence` and hands the event to the hub, which builds it only
    /// for a team streamed here.
    fn hand_over(&self, sequence: u64, team_and_type_text: &str, payload: &[u8]) {
        self.position.store(sequence, Ordering::SeqCst);
        let Some((team_id, event_type)) = team_and_type(team_and_type_text) else {
            return;
        };
        let Ok(payload) = std::str::from_utf8(payload) else {
            return;
        };
        self.hub.deliver_with(team_id, || {
            Arc::new(BusEvent::new(
                sequence,
                team_id.to_owned(),
                event_type,
                payload,
            ))
        });
    }
}
