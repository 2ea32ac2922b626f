//! What differs between the two backends' SQL. Everything else in `sql/` runs unchanged on
//! both: Postgres and SQLite accept the same `$N` placeholders, `RETURNING` and `ON CONFLICT`.

pub(super) trait Dialect {
    /// `postgres` or `sqlite`.
    const BACKEND: &'static str;
    /// Opens a transaction that writes.
    const BEGIN_WRITE: &'static str;
    /// Appended to a `SELECT` in a write transaction: locks the rows read until the commit.
    const FOR_UPDATE: &'static str;
    /// Appended to a `SELECT` that checks a key: the key cannot be revoked until the commit.
    const FOR_KEY_SHARE: &'static str;
    /// Run in every transaction that changes settings or keys: tells every process.
    const NOTIFY_SETTINGS: &'static str;
    /// Takes the next bichito id without a row; answers no row where the sequence has none yet.
    const NEXT_ID: &'static str;
    /// Starts the sequence for [`Self::NEXT_ID`] when it answered no row.
    const FIRST_ID: &'static str;
    /// A statement's `$2`, a JSON array of ids, as rows.
    const IDS_IN_JSON_ARRAY: &'static str;
    /// `title` matches the `LIKE` pattern bound after it, ignoring case (`\` escapes).
    const TITLE_LIKE: &'static str;
}

/// The migrator of one backend, from its embedded `(version, description, sql)` files.
pub(super) fn migrator<const N: usize>(
    files: [(i64, &'static str, &'static str); N],
) -> sqlx::migrate::Migrator {
    use sqlx::SqlSafeStr as _;
    use sqlx::migrate::{Migration, MigrationType, Migrator};
    Migrator::with_migrations(
        files
            .into_iter()
            .map(|(version, description, sql)| {
                Migration::new(
                    version,
                    description.into(),
                    MigrationType::Simple,
                    sqlx::AssertSqlSafe(sql).into_sql_str(),
                    false,
                )
            })
            .collect(),
    )
}
