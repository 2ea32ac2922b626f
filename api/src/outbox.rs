//! The outbox relay: publishes stored events to the bus, oldest first, and stamps them.
//!
//! The store wakes it right after each write that added an event commits (see
//! `Store::outbox_written`), so events go out at once; a periodic sweep republishes whatever a crash or a bus outage left behind. The bus drops
//! duplicates by outbox id, so publishing twice is harmless.
//!
//! Rounds that found something start at least [`ROUND_INTERVAL`] apart. Each round costs two
//! queries (read the unpublished, stamp them) whatever its size: under a stream of reports,
//! waking once per report would cost the database as much as the reports themselves, while
//! after a quiet spell the first event still goes out at once.

use crate::bus::Publish;
use crate::metrics::Metrics;
use bichito_core::clock::Clock;
use bichito_core::store::Store;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

const BATCH: i64 = 256;
const BATCH_LEN: usize = BATCH as usize;
const SWEEP_EVERY: Duration = Duration::from_secs(1);
const ROUND_INTERVAL: Duration = Duration::from_millis(5);
/// After a failed publish the relay tries again this soon, doubling up to [`SWEEP_EVERY`]: a
/// NATS node that went away costs a stream well under a second, and a bus that stays down is
/// asked about once a second.
const RETRY_FIRST: Duration = Duration::from_millis(100);

pub struct Relay {
    store: Arc<dyn Store>,
    bus: Arc<dyn Publish>,
    clock: Arc<dyn Clock>,
    metrics: Arc<Metrics>,
    /// Notified by the store after each write that added an event.
    wake: Arc<Notify>,
}

impl Relay {
    pub fn new(
        store: Arc<dyn Store>,
        bus: Arc<dyn Publish>,
        clock: Arc<dyn Clock>,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self {
            wake: store.outbox_written().unwrap_or_default(),
            store,
            bus,
            clock,
            metrics,
        }
    }

    pub async fn run(self: Arc<Self>, shutdown: CancellationToken) {
        let mut sweep = tokio::time::interval(SWEEP_EVERY);
        let mut reconnects = self.bus.reconnects();
        let mut retry: Option<Duration> = None;
        loop {
            let swept = tokio::select! {
                () = shutdown.cancelled() => break,
                () = self.wake.notified() => false,
                _ = sweep.tick() => true,
                // Back from an outage: what waits in the outbox goes now, not at the next sweep.
                () = reconnected(&mut reconnects) => true,
                () = tokio::time::sleep(retry.unwrap_or_default()), if retry.is_some() => false,
            };
            let round = tokio::time::Instant::now();
            let published = match self.drain().await {
                Ok(published) => {
                    retry = None;
                    published
                }
                Err(err) => {
                    let delay = retry.map_or(RETRY_FIRST, |delay| (delay * 2).min(SWEEP_EVERY));
                    tracing::warn!(error = %err, retry_in = ?delay, "outbox relay: publish failed");
                    retry = Some(delay);
                    0
                }
            };
            // Wakes that come meanwhile are kept by `Notify`: the next round takes them all.
            if published > 0 {
                tokio::select! {
                    () = shutdown.cancelled() => break,
                    () = tokio::time::sleep_until(round + ROUND_INTERVAL) => {}
                }
            }
            // Counting costs a query: once per sweep, not once per report.
            if swept {
                match self.store.outbox_backlog().await {
                    Ok(backlog) => self.metrics.set_outbox_backlog(backlog),
                    Err(err) => {
                        tracing::warn!(error = %err, "outbox relay: cannot count the backlog")
                    }
                }
            }
        }
        // Last round, so that a clean shutdown leaves nothing behind.
        if let Err(err) = self.drain().await {
            tracing::warn!(error = %err, "outbox relay: final publish failed; the next start will retry");
        }
    }

    /// Publishes every unpublished event; returns how many.
    pub async fn drain(&self) -> Result<usize, Box<dyn std::error::Error + Send + Sync>> {
        let mut published = 0;
        loop {
            let batch = self.store.unpublished_events(BATCH).await?;
            if batch.is_empty() {
                return Ok(published);
            }
            for event in &batch {
                self.bus.publish(event).await?;
                let latency = self.clock.now() - event.created_at;
                self.metrics
                    .observe_publish(latency.to_std().unwrap_or_default().as_secs_f64());
            }
            let ids: Vec<i64> = batch.iter().map(|event| event.id).collect();
            self.store.mark_published(&ids, self.clock.now()).await?;
            published += batch.len();
            // A short batch was everything there was: no need to ask again.
            if batch.len() < BATCH_LEN {
                return Ok(published);
            }
        }
    }
}

/// Resolves when the bus has reconnected; never for a bus that does not reconnect.
async fn reconnected(reconnects: &mut Option<tokio::sync::watch::Receiver<u64>>) {
    match reconnects {
        Some(receiver) => {
            if receiver.changed().await.is_err() {
                *reconnects = None;
                std::future::pending::<()>().await;
            }
        }
        None => std::future::pending().await,
    }
}
