//! The NATS JetStream bus: events on `<prefix>.team.<team_id>.<event type>`, one stream over
//! `<prefix>.team.>` that keeps them for the replay window. An event's id is its stream
//! sequence; `Nats-Msg-Id` (the outbox id) makes republishing harmless.
//!
//! A process that streams teams reads every team's events through its feed ([`feed`]): core
//! NATS notices the relay sends once the stream has an event, checked against the stream's
//! sequence and completed from the stream. It hands each event to the hub, which drops those
//! of teams nobody here streams; the price of one feed per process is that a streaming process
//! receives every team's events. Replays (`Last-Event-ID`) read the stream with an ordered
//! consumer over the team's subjects.
//!
//! After a lost connection the client reconnects within half a second of a server answering,
//! and the feed catches up from the last event it handed over.

mod feed;

use super::{BusError, BusEvent, Publish, Replay, Subscribe};
use crate::stream::hub::{Joined, TeamHub, TeamSubscription};
use async_nats::ServerAddr;
use async_nats::jetstream::consumer::DeliverPolicy;
use async_nats::jetstream::consumer::pull::OrderedConfig;
use async_nats::jetstream::message::PublishMessage;
use async_nats::jetstream::{self, stream};
use bichito_core::events::{EventType, OutboxEvent};
use futures_util::StreamExt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

/// How long JetStream remembers `Nats-Msg-Id`s for deduplication.
const DUPLICATE_WINDOW: Duration = Duration::from_secs(600);
const REPLAY_TIMEOUT: Duration = Duration::from_secs(10);
/// The longest wait between two reconnection attempts (async-nats's default grows to 4 s).
const MAX_RECONNECT_DELAY: Duration = Duration::from_millis(500);
/// How long a publish waits for the stream's acknowledgement before the relay tries again (a
/// duplicate is dropped by its `Nats-Msg-Id`). An ack lost with a cluster node would
/// otherwise hold the relay for async-nats's 5 s request timeout.
const PUBLISH_ACK_TIMEOUT: Duration = Duration::from_secs(1);
/// The longest a replay's pull request waits; the server's idle heartbeat comes every half of
/// it, and two missed heartbeats recreate the consumer (async-nats's default, 30 s with 15 s
/// heartbeats, would hold a replay whose consumer was lost with a node past its timeout).
const PULL_EXPIRES: Duration = Duration::from_secs(1);
/// How long the feed's requests (read the stream's state, read a missed event) may take.
const FEED_REQUEST_TIMEOUT: Duration = Duration::from_secs(1);
/// How long asking the stream's state may take before the bus counts as unavailable.
const HEAD_TIMEOUT: Duration = Duration::from_secs(1);

#[derive(Debug, Clone)]
pub struct NatsSettings {
    pub url: String,
    pub stream_name: String,
    pub subject_prefix: String,
    /// Copies of the stream JetStream keeps (`NATS_STREAM_REPLICAS`).
    pub replicas: usize,
    pub retention: Duration,
    pub queue_size: usize,
}

pub struct NatsBus {
    client: async_nats::Client,
    jetstream: jetstream::Context,
    /// The same, with a short request timeout, for the feed: a request lost with a node that
    /// went away is asked again after [`FEED_REQUEST_TIMEOUT`], not async-nats's 5 s.
    feed_jetstream: jetstream::Context,
    /// Counts the connections made (the first included): a change means a reconnect.
    connections: tokio::sync::watch::Receiver<u64>,
    settings: NatsSettings,
    hub: Arc<TeamHub>,
    /// The running feed, held by every open team channel: the last one to close stops it.
    feed: tokio::sync::Mutex<Weak<RunningFeed>>,
}

/// The task reading every team's events into the hub; dropping it stops the task.
struct RunningFeed {
    task: tokio::task::JoinHandle<()>,
    /// The stream sequence of the newest event handed to the hub (see [`feed::Feed`]).
    position: Arc<AtomicU64>,
}

impl Drop for RunningFeed {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Deletes a consumer no longer read, in the background: nats-server would keep it (and its
/// memory) for 30 s. Best effort: outside a runtime, or on error, the server still does.
fn delete_consumer_soon(jetstream: &jetstream::Context, stream_name: &str, consumer: String) {
    if let Ok(runtime) = tokio::runtime::Handle::try_current() {
        let jetstream = jetstream.clone();
        let stream_name = stream_name.to_owned();
        runtime.spawn(async move {
            let _ = jetstream
                .delete_consumer_from_stream(&consumer, &stream_name)
                .await;
        });
    }
}

fn unavailable(err: impl std::fmt::Display) -> BusError {
    BusError::Unavailable(err.to_string())
}

/// `NATS_URL`: one server, or a comma-separated list of a cluster's (`nats://a:4222,nats://b:4222`)
/// as every NATS client takes it. The client connects to any of them and, once connected, also
/// learns the rest of the cluster from the server.
pub fn server_addrs(urls: &str) -> Result<Vec<ServerAddr>, BusError> {
    let addrs = urls
        .split(',')
        .map(str::trim)
        .filter(|url| !url.is_empty())
        .map(|url| {
            url.parse::<ServerAddr>().map_err(|err| {
                BusError::Misconfigured(format!(
                    "NATS_URL: {url:?} is not a NATS server URL: {err}"
                ))
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    if addrs.is_empty() {
        return Err(BusError::Misconfigured(
            "NATS_URL names no server".to_owned(),
        ));
    }
    Ok(addrs)
}

impl NatsBus {
    /// Connects and creates (or updates) the stream.
    pub async fn connect(settings: NatsSettings) -> Result<Self, BusError> {
        let servers = server_addrs(&settings.url)?;
        let (connected, connections) = tokio::sync::watch::channel(0u64);
        let client = async_nats::ConnectOptions::new()
            .name("bichito")
            .reconnect_delay_callback(|attempts| {
                MAX_RECONNECT_DELAY.min(
                    Duration::from_millis(50)
                        .saturating_mul(u32::try_from(attempts).unwrap_or(u32::MAX)),
                )
            })
            .event_callback(move |event| {
                let connected = connected.clone();
                async move {
                    match event {
                        async_nats::Event::Connected => {
                            connected.send_modify(|count| *count += 1);
                        }
                        async_nats::Event::Disconnected => {
                            tracing::warn!("NATS connection lost; reconnecting");
                        }
                        _ => {}
                    }
                }
            })
            .connect(servers)
            .await
            .map_err(unavailable)?;
        let jetstream = jetstream::new(client.clone());
        jetstream
            .create_or_update_stream(stream::Config {
                name: settings.stream_name.clone(),
                subjects: vec![format!("{}.team.>", settings.subject_prefix)],
                max_age: settings.retention,
                duplicate_window: DUPLICATE_WINDOW.min(settings.retention),
                storage: stream::StorageType::File,
                num_replicas: settings.replicas,
                ..stream::Config::default()
            })
            .await
            .map_err(unavailable)?;
        let hub = Arc::new(TeamHub::new(settings.queue_size));
        let mut feed_jetstream = jetstream::new(client.clone());
        feed_jetstream.set_timeout(FEED_REQUEST_TIMEOUT);
        Ok(Self {
            client,
            jetstream,
            feed_jetstream,
            connections,
            settings,
            hub,
            feed: tokio::sync::Mutex::new(Weak::new()),
        })
    }

    /// The JetStream context, for what else the process shares through NATS.
    pub fn jetstream(&self) -> &jetstream::Context {
        &self.jetstream
    }

    async fn stream_state(&self) -> Result<stream::State, BusError> {
        let stream = self
            .jetstream
            .get_stream(&self.settings.stream_name)
            .await
            .map_err(unavailable)?;
        Ok(stream.get_info().await.map_err(unavailable)?.state)
    }

    /// Every team's subjects, or one team's.
    fn subjects(settings: &NatsSettings, team_id: Option<&str>) -> String {
        match team_id {
            Some(team_id) => format!("{}.team.{team_id}.>", settings.subject_prefix),
            None => format!("{}.team.>", settings.subject_prefix),
        }
    }

    /// An ordered consumer over `filter_subject`, from stream sequence `start`.
    async fn consumer(
        jetstream: &jetstream::Context,
        settings: &NatsSettings,
        filter_subject: String,
        start: u64,
    ) -> Result<jetstream::consumer::Consumer<OrderedConfig>, BusError> {
        let stream = jetstream
            .get_stream(&settings.stream_name)
            .await
            .map_err(unavailable)?;
        stream
            .create_consumer(OrderedConfig {
                filter_subject,
                deliver_policy: DeliverPolicy::ByStartSequence {
                    start_sequence: start.max(1),
                },
                max_expires: PULL_EXPIRES,
                ..OrderedConfig::default()
            })
            .await
            .map_err(unavailable)
    }

    /// The team and event type a subject `<prefix>.team.<team_id>.<event type>` names.
    fn team_and_type<'a>(
        settings: &NatsSettings,
        subject: &'a str,
    ) -> Option<(&'a str, EventType)> {
        let rest = subject
            .strip_prefix(settings.subject_prefix.as_str())?
            .strip_prefix(".team.")?;
        feed::team_and_type(rest)
    }

    /// A message's team, event type and JSON; `None` for what is not a team's event.
    fn event_parts<'a>(
        settings: &NatsSettings,
        message: &'a jetstream::Message,
    ) -> Option<(&'a str, EventType, &'a str)> {
        let (team_id, event_type) = Self::team_and_type(settings, message.subject.as_str())?;
        let payload = std::str::from_utf8(&message.payload).ok()?;
        Some((team_id, event_type, payload))
    }

    fn bus_event(settings: &NatsSettings, message: &jetstream::Message) -> Option<BusEvent> {
        let sequence = message.info().ok()?.stream_sequence;
        let (team_id, event_type, payload) = Self::event_parts(settings, message)?;
        Some(BusEvent::new(
            sequence,
            team_id.to_owned(),
            event_type,
            payload,
        ))
    }

    /// The events a replay consumer holds, up to stream sequence `last`.
    async fn read_replay(
        mut consumer: jetstream::consumer::Consumer<OrderedConfig>,
        settings: &NatsSettings,
        last: u64,
    ) -> Result<Vec<Arc<BusEvent>>, BusError> {
        if consumer.info().await.map_err(unavailable)?.num_pending == 0 {
            return Ok(Vec::new());
        }
        let read = async {
            let mut events = Vec::new();
            let mut messages = consumer.messages().await.map_err(unavailable)?;
            while let Some(message) = messages.next().await {
                let message = message.map_err(unavailable)?;
                let pending = message.info().map_err(unavailable)?.pending;
                if let Some(event) = Self::bus_event(settings, &message) {
                    let done = event.id >= last;
                    if event.id <= last {
                        events.push(Arc::new(event));
                    }
                    if done {
                        break;
                    }
                }
                if pending == 0 {
                    break;
                }
            }
            Ok::<_, BusError>(events)
        };
        tokio::time::timeout(REPLAY_TIMEOUT, read)
            .await
            .map_err(|_| unavailable("replay timed out"))?
    }

    /// The running feed, or a new one starting right after the newest event.
    async fn feed(&self) -> Result<Arc<RunningFeed>, BusError> {
        let mut running = self.feed.lock().await;
        if let Some(feed) = running.upgrade() {
            return Ok(feed);
        }
        let newest = self.stream_state().await?.last_sequence;
        let position = Arc::new(AtomicU64::new(newest));
        let feed = feed::Feed::new(
            self.client.clone(),
            self.feed_jetstream.clone(),
            self.settings.clone(),
            self.hub.clone(),
            position.clone(),
        );
        let running_feed = Arc::new(RunningFeed {
            task: tokio::spawn(feed.run(self.connections.clone())),
            position,
        });
        *running = Arc::downgrade(&running_feed);
        Ok(running_feed)
    }
}

#[async_trait::async_trait]
impl Publish for NatsBus {
    async fn publish(&self, event: &OutboxEvent) -> Result<(), BusError> {
        let subject = format!(
            "{}.team.{}.{}",
            self.settings.subject_prefix,
            event.team_id,
            event.event_type.as_str()
        );
        let message = PublishMessage::build()
            .payload(event.payload.clone().into())
            .message_id(event.id.to_string());
        let ack = self
            .jetstream
            .send_publish(subject, message)
            .await
            .map_err(unavailable)?;
        let ack = tokio::time::timeout(PUBLISH_ACK_TIMEOUT, ack)
            .await
            .map_err(|_| unavailable("no acknowledgement from the stream in time"))?
            .map_err(unavailable)?;
        // Best effort: the feeds read a notice that never comes from the stream.
        let mut headers = async_nats::HeaderMap::new();
        headers.insert(feed::SEQUENCE_HEADER, ack.sequence.to_string().as_str());
        if let Err(err) = self
            .client
            .publish_with_headers(
                feed::notice_subject(&self.settings, event),
                headers,
                event.payload.clone().into(),
            )
            .await
        {
            tracing::debug!(error = %err, "event notice not sent; the feeds read it from the stream");
        }
        Ok(())
    }

    fn reconnects(&self) -> Option<tokio::sync::watch::Receiver<u64>> {
        Some(self.connections.clone())
    }
}

#[async_trait::async_trait]
impl Subscribe for NatsBus {
    async fn subscribe(&self, team_id: &str) -> Result<TeamSubscription, BusError> {
        let feed = self.feed().await?;
        let (mut subscription, joined) = self.hub.subscribe(team_id);
        // Read after subscribing: the feed stores an event's position before handing it over.
        subscription.after = feed.position.load(Ordering::SeqCst);
        if let Joined::Opened(channel) = joined {
            channel.on_close(move || drop(feed));
        }
        Ok(subscription)
    }

    async fn replay(&self, team_id: &str, after: u64) -> Result<Replay, BusError> {
        let state = self.stream_state().await?;
        // Events after `after` were removed (older than the window), or the id is unknown.
        if after > state.last_sequence || after.saturating_add(1) < state.first_sequence {
            return Ok(Replay::TooOld);
        }
        if after == state.last_sequence {
            return Ok(Replay::Events(Vec::new()));
        }
        let subjects = Self::subjects(&self.settings, Some(team_id));
        let consumer = Self::consumer(&self.jetstream, &self.settings, subjects, after + 1).await?;
        let name = consumer.cached_info().name.clone();
        let events = Self::read_replay(consumer, &self.settings, state.last_sequence).await;
        delete_consumer_soon(&self.jetstream, &self.settings.stream_name, name);
        Ok(Replay::Events(events?))
    }

    async fn head(&self) -> Result<u64, BusError> {
        // Answer at once while disconnected: readiness probes have a short timeout.
        if self.client.connection_state() != async_nats::connection::State::Connected {
            return Err(unavailable("not connected to NATS"));
        }
        tokio::time::timeout(HEAD_TIMEOUT, self.stream_state())
            .await
            .map_err(|_| unavailable("NATS did not answer in time"))?
            .map(|state| state.last_sequence)
    }

    fn subscribed_teams(&self) -> usize {
        self.hub.open_teams()
    }

    fn close_streams(&self) {
        self.hub.close();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nats_url_takes_one_server_or_a_comma_separated_list() {
        let one = server_addrs("nats://127.0.0.1:4222").expect("one server");
        assert_eq!(one.len(), 1);
        let cluster = server_addrs("nats://a:4222, nats://b:4223 ,nats://c:4224,")
            .expect("a cluster's servers");
        let hosts: Vec<(String, u16)> = cluster
            .iter()
            .map(|addr| (addr.host().to_owned(), addr.port()))
            .collect();
        assert_eq!(
            hosts,
            [
                ("a".to_owned(), 4222),
                ("b".to_owned(), 4223),
                ("c".to_owned(), 4224)
            ]
        );
    }

    #[test]
    fn a_bad_nats_url_is_named() {
        let message = server_addrs("nats://a:4222,nats://b:notaport")
            .expect_err("a bad port")
            .to_string();
        assert!(message.contains("nats://b:notaport"), "{message}");
        assert!(server_addrs(" , ").is_err(), "no server at all");
    }
}
