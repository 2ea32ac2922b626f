//! The NATS JetStream bus: events on `<prefix>.team.<team_id>.<event type>`, one stream over
//! `<prefix>.team.>` that keeps them for the replay window. An event's id is its stream
//! sequence; `Nats-Msg-Id` (the outbox id) makes republishing harmless.
//!
//! A process reads a team's subject only while one of its connections streams that team: the
//! hub's first subscriber starts an ordered consumer filtered on the team, the last one stops it.

use super::hub::{Joined, TeamHub, TeamSubscription};
use super::{Bus, BusError, BusEvent, Replay};
use async_nats::jetstream::consumer::DeliverPolicy;
use async_nats::jetstream::consumer::pull::OrderedConfig;
use async_nats::jetstream::message::PublishMessage;
use async_nats::jetstream::{self, stream};
use bichito_core::events::{EventType, OutboxEvent};
use futures_util::StreamExt;
use std::sync::Arc;
use std::time::Duration;

/// How long JetStream remembers `Nats-Msg-Id`s for deduplication.
const DUPLICATE_WINDOW: Duration = Duration::from_secs(600);
const REPLAY_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, Clone)]
pub struct NatsSettings {
    pub url: String,
    pub stream_name: String,
    pub subject_prefix: String,
    pub retention: Duration,
    pub queue_size: usize,
}

pub struct NatsBus {
    jetstream: jetstream::Context,
    settings: NatsSettings,
    hub: Arc<TeamHub>,
}

fn unavailable(err: impl std::fmt::Display) -> BusError {
    BusError::Unavailable(err.to_string())
}

impl NatsBus {
    /// Connects and creates (or updates) the stream.
    pub async fn connect(settings: NatsSettings) -> Result<Self, BusError> {
        let client = async_nats::ConnectOptions::new()
            .name("bichito")
            .connect(settings.url.as_str())
            .await
            .map_err(unavailable)?;
        let jetstream = jetstream::new(client);
        jetstream
            .create_or_update_stream(stream::Config {
                name: settings.stream_name.clone(),
                subjects: vec![format!("{}.team.>", settings.subject_prefix)],
                max_age: settings.retention,
                duplicate_window: DUPLICATE_WINDOW.min(settings.retention),
                storage: stream::StorageType::File,
                ..stream::Config::default()
            })
            .await
            .map_err(unavailable)?;
        let hub = Arc::new(TeamHub::new(settings.queue_size));
        Ok(Self {
            jetstream,
            settings,
            hub,
        })
    }

    async fn stream_state(&self) -> Result<stream::State, BusError> {
        let stream = self
            .jetstream
            .get_stream(&self.settings.stream_name)
            .await
            .map_err(unavailable)?;
        Ok(stream.get_info().await.map_err(unavailable)?.state)
    }

    /// An ordered consumer over one team's events, from stream sequence `start`.
    async fn team_consumer(
        jetstream: &jetstream::Context,
        settings: &NatsSettings,
        team_id: &str,
        start: u64,
    ) -> Result<jetstream::consumer::Consumer<OrderedConfig>, BusError> {
        let stream = jetstream
            .get_stream(&settings.stream_name)
            .await
            .map_err(unavailable)?;
        stream
            .create_consumer(OrderedConfig {
                filter_subject: format!("{}.team.{team_id}.>", settings.subject_prefix),
                deliver_policy: DeliverPolicy::ByStartSequence {
                    start_sequence: start.max(1),
                },
                ..OrderedConfig::default()
            })
            .await
            .map_err(unavailable)
    }

    fn bus_event(
        settings: &NatsSettings,
        team_id: &str,
        message: &jetstream::Message,
    ) -> Option<BusEvent> {
        let sequence = message.info().ok()?.stream_sequence;
        let prefix = format!("{}.team.{team_id}.", settings.subject_prefix);
        let event_type = EventType::parse(message.subject.as_str().strip_prefix(&prefix)?)?;
        let payload = std::str::from_utf8(&message.payload).ok()?;
        Some(BusEvent::new(
            sequence,
            team_id.to_owned(),
            event_type,
            payload,
        ))
    }

    /// Feeds a team's channel from `start` on, recreating the consumer after errors.
    async fn forward(
        jetstream: jetstream::Context,
        settings: NatsSettings,
        hub: Arc<TeamHub>,
        team_id: String,
        mut next: u64,
    ) {
        loop {
            match Self::team_consumer(&jetstream, &settings, &team_id, next).await {
                Ok(consumer) => match consumer.messages().await {
                    Ok(mut messages) => {
                        while let Some(message) = messages.next().await {
                            match message {
                                Ok(message) => {
                                    if let Some(event) =
                                        Self::bus_event(&settings, &team_id, &message)
                                    {
                                        next = event.id + 1;
                                        hub.deliver(Arc::new(event));
                                    }
                                }
                                Err(err) => {
                                    tracing::warn!(error = %err, team_id, "team subscription interrupted");
                                    break;
                                }
                            }
                        }
                    }
                    Err(err) => {
                        tracing::warn!(error = %err, team_id, "cannot read the team's events")
                    }
                },
                Err(err) => {
                    tracing::warn!(error = %err, team_id, "cannot subscribe to the team's events")
                }
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }
}

#[async_trait::async_trait]
impl Bus for NatsBus {
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
        ack.await.map_err(unavailable)?;
        Ok(())
    }

    async fn subscribe(&self, team_id: &str) -> Result<TeamSubscription, BusError> {
        let (subscription, joined) = self.hub.subscribe(team_id);
        if let Joined::Opened(channel) = joined {
            // Start right after the newest event: the caller reads the head after this returns.
            let start = self.stream_state().await?.last_sequence + 1;
            let task = tokio::spawn(Self::forward(
                self.jetstream.clone(),
                self.settings.clone(),
                self.hub.clone(),
                team_id.to_owned(),
                start,
            ));
            channel.on_close(move || task.abort());
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
        let mut consumer =
            Self::team_consumer(&self.jetstream, &self.settings, team_id, after + 1).await?;
        if consumer.info().await.map_err(unavailable)?.num_pending == 0 {
            return Ok(Replay::Events(Vec::new()));
        }
        let last = state.last_sequence;
        let read = async {
            let mut events = Vec::new();
            let mut messages = consumer.messages().await.map_err(unavailable)?;
            while let Some(message) = messages.next().await {
                let message = message.map_err(unavailable)?;
                let pending = message.info().map_err(unavailable)?.pending;
                if let Some(event) = Self::bus_event(&self.settings, team_id, &message) {
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
        let events = tokio::time::timeout(REPLAY_TIMEOUT, read)
            .await
            .map_err(|_| unavailable("replay timed out"))??;
        Ok(Replay::Events(events))
    }

    async fn head(&self) -> Result<u64, BusError> {
        Ok(self.stream_state().await?.last_sequence)
    }

    fn subscribed_teams(&self) -> usize {
        self.hub.open_teams()
    }

    fn close_streams(&self) {
        self.hub.close();
    }
}
