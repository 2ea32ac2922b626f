//! Settings changes seen through Postgres notifications: every change of honeycomb settings or
//! keys runs `pg_notify` in its transaction, so each process hears of it once it commits.

use sqlx::postgres::{PgListener, PgPool, PgPoolOptions};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

/// The channel changes are announced on (see `Dialect::NOTIFY_SETTINGS`).
const SETTINGS_CHANNEL: &str = "bichito_settings";

#[derive(Default)]
pub(super) struct SettingsWatch {
    shared: Arc<Versions>,
    task: OnceLock<ListenerTask>,
}

impl SettingsWatch {
    /// The settings version, counted from notifications by a listener started on first use
    /// (the operator, which only writes settings, never starts one).
    pub(super) fn version(&self, pool: &PgPool) -> u64 {
        self.task
            .get_or_init(|| ListenerTask(tokio::spawn(listen(self.shared.clone(), pool.clone()))));
        self.shared.version()
    }
}

/// The settings version, and whether notifications are being received.
#[derive(Default)]
struct Versions {
    version: AtomicU64,
    listening: AtomicBool,
}

impl Versions {
    fn version(&self) -> u64 {
        if self.listening.load(Ordering::SeqCst) {
            self.version.load(Ordering::SeqCst)
        } else {
            // Changes may go unseen: a value never answered before, so nothing cached matches.
            self.version.fetch_add(1, Ordering::SeqCst) + 1
        }
    }
}

/// The listener, stopped with its store.
struct ListenerTask(tokio::task::JoinHandle<()>);

impl Drop for ListenerTask {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Counts settings notifications for as long as the store lives, reconnecting after errors.
/// A reconnect counts as a change too: notifications sent while away are lost. The listener
/// has a connection of its own, not one of the pool's (which it would hold for good).
async fn listen(versions: Arc<Versions>, pool: PgPool) {
    let own = PgPoolOptions::new()
        .max_connections(1)
        .max_lifetime(None)
        .idle_timeout(None)
        .connect_lazy_with(pool.connect_options().as_ref().clone());
    drop(pool);
    loop {
        match PgListener::connect_with(&own).await {
            Ok(mut listener) => match listener.listen(SETTINGS_CHANNEL).await {
                Ok(()) => {
                    versions.version.fetch_add(1, Ordering::SeqCst);
                    versions.listening.store(true, Ordering::SeqCst);
                    // `Ok(None)`: the connection was lost, and with it what was sent meanwhile.
                    while let Ok(Some(_)) = listener.try_recv().await {
                        versions.version.fetch_add(1, Ordering::SeqCst);
                    }
                    versions.listening.store(false, Ordering::SeqCst);
                    tracing::warn!("settings notifications interrupted; reconnecting");
                }
                Err(err) => tracing::warn!(error = %err, "cannot listen for settings changes"),
            },
            Err(err) => tracing::warn!(error = %err, "cannot listen for settings changes"),
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}
