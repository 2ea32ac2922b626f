//! The Postgres backend: production.

use super::insert_batch::InsertBatcher;
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgPool, PgPoolOptions, PgRow};
use std::time::Duration;

pub struct PostgresStore {
    pool: PgPool,
    inserts: InsertBatcher,
}

impl PostgresStore {
    const BACKEND: &'static str = "postgres";

    pub async fn connect(url: &str, max_connections: u32) -> sqlx::Result<Self> {
        let pool = PgPoolOptions::new()
            .max_connections(max_connections)
            .acquire_timeout(Duration::from_secs(5))
            .connect(url)
            .await?;
        let inserts = InsertBatcher::start(pool.clone(), insert_writers(max_connections));
        Ok(Self { pool, inserts })
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
        ])
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
    phantom_id = "SELECT nextval(pg_get_serial_sequence('bichitos', 'id'))",
    phantom_seed = "SELECT nextval(pg_get_serial_sequence('bichitos', 'id'))",
    // Postgres runs data-modifying CTEs: a report is stored in one statement.
    one_statement_insert = true,
    // A statement's `$2`, a JSON array of ids, as rows.
    ids_in_json_array = "SELECT value::bigint FROM json_array_elements_text($2::json)"
);
