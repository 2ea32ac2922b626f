//! The Postgres backend: production.

use super::PoolSettings;
use super::insert_batch::InsertBatcher;
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgListener, PgPool, PgPoolOptions, PgRow};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

/// The channel every change of honeycomb settings or keys is announced on (`pg_notify`, in the
/// change's transaction, so it is delivered once the change commits).
const SETTINGS_CHANNEL: &str = "bichito_settings";

pub struct PostgresStore {
    pool: PgPool,
    inserts: InsertBatcher,
    settings: SettingsWatch,
}

impl PostgresStore {
    const BACKEND: &'static str = "postgres";

    pub async fn connect(url: &str, settings: PoolSettings) -> sqlx::Result<Self> {
        let pool = PgPoolOptions::new()
            .max_connections(settings.max_connections)
            .acquire_timeout(settings.timeout)
            .connect(url)
            .await?;
        let inserts = InsertBatcher::start(
            pool.clone(),
            insert_writers(settings.max_connections),
            settings.timeout,
        );
        Ok(Self {
            pool,
            inserts,
            settings: SettingsWatch::default(),
        })
    }

    /// Notifications tell every process, this one included.
    fn settings_changed_here(&self) {}

    /// See `Store::settings_version`: counted from notifications, by a listener started on
    /// first use (the operator, which only writes settings, never starts one).
    async fn current_settings_version(&self) -> crate::Result<u64> {
        self.settings.task.get_or_init(|| {
            ListenerTask(tokio::spawn(listen(
                self.settings.shared.clone(),
                self.pool.clone(),
            )))
        });
        Ok(self.settings.shared.version())
    }

    fn insert_batcher(&self) -> Option<&InsertBatcher> {
        Some(&self.inserts)
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    fn migrator() -> Migrator {
        super::sql::migrator([
            (
                1,
                "init",
                include_str!("../../migrations/postgres/0001_init.sql"),
            ),
            (
                2,
                "outbox",
                include_str!("../../migrations/postgres/0002_outbox.sql"),
            ),
            (
                3,
                "attachments",
                include_str!("../../migrations/postgres/0003_attachments.sql"),
            ),
            (
                4,
                "rate grants",
                include_str!("../../migrations/postgres/0004_rate_grants.sql"),
            ),
        ])
    }
}

#[derive(Default)]
struct SettingsWatch {
    shared: Arc<Versions>,
    task: OnceLock<ListenerTask>,
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

/// Writers storing batches of reports: a quarter of the pool, so that batches form under load
/// while reads, the outbox relay and other writes keep connections of their own.
fn insert_writers(max_connections: u32) -> usize {
    usize::try_from(max_connections / 4).unwrap_or(1).max(1)
}

super::sql::impl_sql_store!(
    PostgresStore,
    sqlx::Postgres,
    PgRow,
    begin_write = "BEGIN",
    for_update = " FOR UPDATE",
    for_key_share = " FOR KEY SHARE",
    notify_settings = "SELECT pg_notify('bichito_settings', '')",
    phantom_id = "SELECT nextval(pg_get_serial_sequence('bichitos', 'id'))",
    phantom_seed = "SELECT nextval(pg_get_serial_sequence('bichitos', 'id'))",
    // Postgres runs data-modifying CTEs: a report is stored in one statement.
    one_statement_insert = true,
    // A statement's `$2`, a JSON array of ids, as rows.
    ids_in_json_array = "SELECT value::bigint FROM json_array_elements_text($2::json)"
);
