//! The SQLite backend: the embedded default, one file, no server. The shared SQL
//! (`store/sql/`) is compiled here for SQLite.

use super::PoolSettings;
use super::dialect::Dialect;
use crate::model::NewBichito;
use crate::store::{IdempotencyClaim, Inserted};
use sqlx::migrate::Migrator;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use std::str::FromStr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

// The concrete types the shared SQL is written against.
type Db = sqlx::Sqlite;
type Row = sqlx::sqlite::SqliteRow;
type Connection = sqlx::SqliteConnection;
type SqlStore = SqliteStore;

#[path = "sql/attachments.rs"]
mod attachments;
#[path = "sql/edits.rs"]
mod edits;
#[path = "sql/honeycombs.rs"]
mod honeycombs;
#[path = "sql/idempotency.rs"]
mod idempotency;
#[path = "sql/limits.rs"]
mod limits;
#[path = "sql/outbox.rs"]
mod outbox;
#[path = "sql/reports.rs"]
mod reports;
#[path = "sql/rows.rs"]
mod rows;
#[path = "sql/sessions.rs"]
mod sessions;
#[path = "sql/store.rs"]
mod store;

pub struct SqliteStore {
    pool: SqlitePool,
    /// The settings counter as last read, and when (see `current_settings_version`).
    settings: Mutex<Option<(Instant, u64)>>,
}

/// How long the settings counter read is reused: other processes' changes (`bichito apply`)
/// are seen within this; this process's own at once.
const SETTINGS_POLL: Duration = Duration::from_millis(100);

// `BEGIN IMMEDIATE` takes the write lock up front: a deferred transaction that reads and then
// writes can fail with SQLITE_BUSY when another connection wrote in between.
impl Dialect for SqliteStore {
    const BACKEND: &'static str = "sqlite";
    const BEGIN_WRITE: &'static str = "BEGIN IMMEDIATE";
    // The immediate transaction already holds the write lock.
    const FOR_UPDATE: &'static str = "";
    const FOR_KEY_SHARE: &'static str = "";
    const NOTIFY_SETTINGS: &'static str = "UPDATE settings_version SET version = version + 1";
    // The sequence row exists only after the first insert.
    const NEXT_ID: &'static str =
        "UPDATE sqlite_sequence SET seq = seq + 1 WHERE name = 'bichitos' RETURNING seq";
    const FIRST_ID: &'static str =
        "INSERT INTO sqlite_sequence (name, seq) VALUES ('bichitos', 1) RETURNING seq";
    const IDS_IN_JSON_ARRAY: &'static str = "SELECT value FROM json_each($2)";
    // SQLite's LIKE ignores the case of ASCII letters only.
    const TITLE_LIKE: &'static str = " AND title LIKE ";
}

impl SqliteStore {
    /// How SQLite writes a report: always in its own transaction (its writer is one
    /// connection anyway, so there is nothing to batch or save a round trip on).
    async fn write_report(
        &self,
        report: &NewBichito,
        monthly_cap: Option<u32>,
        idempotency: Option<&IdempotencyClaim>,
    ) -> crate::Result<Inserted> {
        self.insert_in_transaction(report, monthly_cap, idempotency)
            .await
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
        let version: i64 = sqlx::query_scalar("SELECT version FROM settings_version")
            .fetch_one(&self.pool)
            .await?;
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
        super::dialect::migrator([
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
            (
                5,
                "sessions",
                include_str!("../../migrations/sqlite/0005_sessions.sql"),
            ),
        ])
    }
}
