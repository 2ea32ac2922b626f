//! The Postgres backend: production.

use sqlx::migrate::Migrator;
use sqlx::postgres::{PgPool, PgPoolOptions, PgRow};
use std::time::Duration;

pub struct PostgresStore {
    pool: PgPool,
}

impl PostgresStore {
    const BACKEND: &'static str = "postgres";

    pub async fn connect(url: &str, max_connections: u32) -> sqlx::Result<Self> {
        let pool = PgPoolOptions::new()
            .max_connections(max_connections)
            .acquire_timeout(Duration::from_secs(5))
            .connect(url)
            .await?;
        Ok(Self { pool })
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

super::sql::impl_sql_store!(
    PostgresStore,
    sqlx::Postgres,
    PgRow,
    begin_write = "BEGIN",
    for_update = " FOR UPDATE",
    phantom_id = "SELECT nextval(pg_get_serial_sequence('bichitos', 'id'))",
    phantom_seed = "SELECT nextval(pg_get_serial_sequence('bichitos', 'id'))",
    // Postgres runs data-modifying CTEs: a report is stored in one statement.
    one_statement_insert = true
);
