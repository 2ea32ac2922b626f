//! The Postgres backend: production. The shared SQL (`store/sql/`) is compiled here for
//! Postgres; what this file adds is the pool, the settings watch ([`settings`]) and how a report
//! is written ([`report_writer`]).

mod insert_batch;
mod report_writer;
mod settings;

use super::PoolSettings;
use super::dialect::Dialect;
use insert_batch::InsertBatcher;
use settings::SettingsWatch;
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgPool, PgPoolOptions};

// The concrete types the shared SQL is written against.
type Db = sqlx::Postgres;
type Row = sqlx::postgres::PgRow;
type Connection = sqlx::PgConnection;
type SqlStore = PostgresStore;

#[path = "../sql/attachments.rs"]
mod attachments;
#[path = "../sql/edits.rs"]
mod edits;
#[path = "../sql/honeycombs.rs"]
mod honeycombs;
#[path = "../sql/idempotency.rs"]
mod idempotency;
#[path = "../sql/limits.rs"]
mod limits;
#[path = "../sql/outbox.rs"]
mod outbox;
#[path = "../sql/reports.rs"]
mod reports;
#[path = "../sql/rows.rs"]
mod rows;
#[path = "../sql/sessions.rs"]
mod sessions;
#[path = "../sql/store.rs"]
mod store;

pub struct PostgresStore {
    pool: PgPool,
    inserts: InsertBatcher,
    settings: SettingsWatch,
}

impl Dialect for PostgresStore {
    const BACKEND: &'static str = "postgres";
    const BEGIN_WRITE: &'static str = "BEGIN";
    const FOR_UPDATE: &'static str = " FOR UPDATE";
    const FOR_KEY_SHARE: &'static str = " FOR KEY SHARE";
    const NOTIFY_SETTINGS: &'static str = "SELECT pg_notify('bichito_settings', '')";
    const NEXT_ID: &'static str = "SELECT nextval(pg_get_serial_sequence('bichitos', 'id'))";
    const FIRST_ID: &'static str = Self::NEXT_ID;
    const IDS_IN_JSON_ARRAY: &'static str =
        "SELECT value::bigint FROM json_array_elements_text($2::json)";
    const TITLE_LIKE: &'static str = " AND title ILIKE ";
}

impl PostgresStore {
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
            settings.insert_queue,
        );
        Ok(Self {
            pool,
            inserts,
            settings: SettingsWatch::default(),
        })
    }

    /// Notifications tell every process, this one included.
    fn settings_changed_here(&self) {}

    /// See `Store::settings_version`.
    async fn current_settings_version(&self) -> crate::Result<u64> {
        Ok(self.settings.version(&self.pool))
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    fn migrator() -> Migrator {
        super::dialect::migrator([
            (
                1,
                "init",
                include_str!("../../../migrations/postgres/0001_init.sql"),
            ),
            (
                2,
                "outbox",
                include_str!("../../../migrations/postgres/0002_outbox.sql"),
            ),
            (
                3,
                "attachments",
                include_str!("../../../migrations/postgres/0003_attachments.sql"),
            ),
            (
                4,
                "rate grants",
                include_str!("../../../migrations/postgres/0004_rate_grants.sql"),
            ),
            (
                5,
                "sessions",
                include_str!("../../../migrations/postgres/0005_sessions.sql"),
            ),
        ])
    }
}

/// Writers storing batches of reports: a quarter of the pool, so that batches form under load
/// while reads, the outbox relay and other writes keep connections of their own.
fn insert_writers(max_connections: u32) -> usize {
    usize::try_from(max_connections / 4).unwrap_or(1).max(1)
}
