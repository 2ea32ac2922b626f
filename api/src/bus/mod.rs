//! The event bus between the api (publishing outbox events) and the stream (subscribing per
//! team): in-process ([`memory`]) for one process, NATS JetStream for several.

pub mod memory;
pub mod nats;

use crate::config::{BusBackend, StreamArgs};
use crate::grants::Grants;
use crate::grants::local::LocalGrants;
use crate::grants::nats::NatsGrants;
pub use crate::stream::event::BusEvent;
use bichito_core::events::OutboxEvent;
use bichito_core::store::Store;
use std::sync::Arc;

/// The bus `SSE_BACKEND` names, and the sessions and stream tickets shared the same way: in
/// this process (sessions read from `store`), or through NATS.
pub async fn connect(
    args: &StreamArgs,
    store: Option<Arc<dyn Store>>,
) -> Result<(Arc<dyn Bus>, Arc<dyn Grants>), BusError> {
    Ok(match args.sse_backend {
        BusBackend::Memory => {
            let store = store.ok_or_else(|| {
                BusError::Unavailable(
                    "the in-process bus serves only a process with a database".into(),
                )
            })?;
            let bus = memory::MemoryBus::new(
                args.sse_queue_size,
                args.replay_capacity,
                args.replay_window,
            );
            (Arc::new(bus), Arc::new(LocalGrants::new(store)))
        }
        BusBackend::Nats => {
            let bus = nats::NatsBus::connect(nats::NatsSettings {
                url: args.nats_url.clone(),
                stream_name: args.nats_stream.clone(),
                subject_prefix: args.nats_subject_prefix.clone(),
                replicas: args.nats_stream_replicas,
                retention: args.replay_window,
                queue_size: args.sse_queue_size,
            })
            .await?;
            let grants = NatsGrants::connect(
                bus.jetstream(),
                &args.nats_stream,
                args.nats_stream_replicas,
            )
            .await
            .map_err(|err| BusError::Unavailable(err.to_string()))?;
            (Arc::new(bus), Arc::new(grants))
        }
    })
}

/// What a reconnecting client missed since the id it last saw.
#[derive(Debug)]
pub enum Replay {
    /// Every event of the team after that id, oldest first.
    Events(Vec<Arc<BusEvent>>),
    /// The id is older than the retention window (or unknown): the client must refetch.
    TooOld,
}

#[derive(Debug, thiserror::Error)]
pub enum BusError {
    #[error("bus unavailable: {0}")]
    Unavailable(String),
    /// The bus's settings cannot work (a server URL that does not parse, say).
    #[error("{0}")]
    Misconfigured(String),
}

/// The publishing side of a bus: the outbox relay's.
#[async_trait::async_trait]
pub trait Publish: Send + Sync + 'static {
    /// Publishes an outbox event; publishing the same outbox id twice delivers it once.
    async fn publish(&self, event: &OutboxEvent) -> Result<(), BusError>;
    /// Changes each time the bus connects again after losing its server (none for a bus
    /// without one): whoever waits to publish may try again at once.
    fn reconnects(&self) -> Option<tokio::sync::watch::Receiver<u64>> {
        None
    }
}

/// The subscribing side of a bus: the streams'.
#[async_trait::async_trait]
pub trait Subscribe: Send + Sync + 'static {
    /// Live events of one team, from now on: those after the subscription's `after`.
    async fn subscribe(
        &self,
        team_id: &str,
    ) -> Result<crate::stream::hub::TeamSubscription, BusError>;
    /// The team's events after `after`, from the retention window.
    async fn replay(&self, team_id: &str, after: u64) -> Result<Replay, BusError>;
    /// The id of the newest event on the bus (0 when none), asked of the bus itself.
    async fn head(&self) -> Result<u64, BusError>;
    /// Teams this process streams (on NATS, all read through one consumer).
    fn subscribed_teams(&self) -> usize;
    /// Ends this process's subscriptions, current and future (the server is shutting down).
    fn close_streams(&self);
}

/// Both sides of one bus, as a process that publishes and streams holds it.
pub trait Bus: Publish + Subscribe {}

impl<T: Publish + Subscribe + ?Sized> Bus for T {}
