//! The SQLite backend: the embedded default, one file, no server.

use super::PoolSettings;
use super::insert_batch::InsertBatcher;
use sqlx::migrate::Migrator;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};
use std::str::FromStr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub struct SqliteStore {
    pool: SqlitePool,
    /// The settings counter as last read, and when (see `current_settings_version`).
    settings: Mutex<Option<(Instant, u64)>>,
}

/// How long the settings counter read is reused: other processes' changes (`bichito apply`)
/// are seen within this; this process's own at once.
const SETTINGS_POLL: Duration = Duration::from_millis(100);

impl SqliteStore {
    const BACKEND: &'static str = "sqlite";

    /// SQLite stores each report in its own transaction: its writer is one connection anyway.
    fn insert_batcher(&self) -> Option<&InsertBatcher> {
        None
    }

    /// Opens (creating if needed) the database file in WAL mode, so that readers never wait for
    /// the writer and two processes can share the file.
    pub async fn connect(url: &str, settings: PoolSettings) -> sqlx::Result<Self> {
        let options = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(settings.timeout);
        let pool = SqlitePoolOptions::new()
            .max_connections(settings.max_connections)
            .acquire_timeout(settings.timeout)
            .connect_with(options)
            .await?;
        Ok(Self {
            pool,
            settings: Mutex::new(None),
        })
    }

    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// See `Store::settings_version`: a counter every settings change bumps in its transaction,
    /// read again at most every [`SETTINGS_POLL`] (each read is a query through sqlx's SQLite
    /// thread, which cost 15 % of the ingest rate when made for every report). A report still
    /// checks its key where it is stored, so a revoked key stores nothing meanwhile.
    async fn current_settings_version(&self) -> crate::Result<u64> {
        if let Some((read, version)) = *self.lock_settings()
            && read.elapsed() < SETTINGS_POLL
        {
            return Ok(version);
        }
        let version: i64 = sqlx::query("SELECT version FROM settings_version")
            .fetch_one(&self.pool)
            .await?
            .try_get("version")?;
        let version = version.unsigned_abs();
        *self.lock_settings() = Some((Instant::now(), version));
        Ok(version)
    }

    /// This process changed settings: the next lookup reads the counter again.
    fn settings_changed_here(&self) {
        *self.lock_settings() = None;
    }

    fn lock_settings(&self) -> std::sync::MutexGuard<'_, Option<(Instant, u64)>> {
        self.settings
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn migrator() -> Migrator {
        super::sql::migrator([
            (
                1,
                "init",
                include_str!("../../migrations/sqlite/0001_init.sql"),
            ),
            (
                2,
                "outbox",
                include_str!("../../migrations/sqlite/0002_outbox.sql"),
            ),
            (
                3,
                "attachments",
                include_str!("../../migrations/sqlite/0003_attachments.sql"),
            ),
            (
                4,
                "rate grants",
                include_str!("../../migrations/sqlite/0004_rate_grants.sql"),
            ),
        ])
    }
}

// `BEGIN IMMEDIATE` takes the write lock up front: a deferred transaction that reads and then
// writes can fail with SQLITE_BUSY when another connection wrote in between.
super::sql::impl_sql_store!(
    SqliteStore,
    sqlx::Sqlite,
    SqliteRow,
    begin_write = "BEGIN IMMEDIATE",
    // The immediate transaction already holds the write lock.
    for_update = "",
    // Likewise.
    for_key_share = "",
    notify_settings = "UPDATE settings_version SET version = version + 1",
    // The sequence row exists only after the first insert: seed it when the update finds none.
    phantom_id = "UPDATE sqlite_sequence SET seq = seq + 1 WHERE name = 'bichitos' RETURNING seq",
    phantom_seed = "INSERT INTO sqlite_sequence (name, seq) VALUES ('bichitos', 1) RETURNING seq",
    // SQLite has no data-modifying CTEs; its round trips are function calls anyway.
    one_statement_insert = false,
    // A statement's `$2`, a JSON array of ids, as rows.
    ids_in_json_array = "SELECT value FROM json_each($2)"
);
