//! The crate's one error type.

/// Everything that can go wrong in the model and the store.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The database could not be reached or failed a query.
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// A schema migration failed.
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// A `DATABASE_URL` with a scheme we do not serve.
    #[error("unsupported database URL (expected postgres:// or sqlite:): {0}")]
    UnsupportedDatabase(String),
    /// A Honeycomb document that does not validate; every problem is listed.
    #[error("invalid honeycomb spec: {}", .0.join("; "))]
    InvalidSpec(Vec<String>),
    /// A YAML file that does not parse.
    #[error("invalid YAML: {0}")]
    Yaml(String),
    /// Stored data that does not decode (a bug or a manual edit of the database).
    #[error("corrupt stored data: {0}")]
    Corrupt(String),
    /// The connection was lost while a write was on its way: it may or may not have been
    /// stored, so it is not tried again.
    #[error("database connection lost during a write (it may have been stored): {0}")]
    WriteOutcomeUnknown(String),
    /// The database did not answer within the configured bound (`DATABASE_TIMEOUT`); a write
    /// may or may not have been stored.
    #[error("the database did not answer within {0:?}")]
    Timeout(std::time::Duration),
    /// Too many reports are already waiting to be stored: nothing was written.
    #[error("too many reports are waiting to be stored")]
    Overloaded,
}

impl Error {
    /// True when the database is unreachable or overloaded rather than the query being wrong:
    /// callers answer 503 instead of 500.
    pub fn is_unavailable(&self) -> bool {
        matches!(
            self,
            Error::Database(
                sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_)
            ) | Error::WriteOutcomeUnknown(_)
                | Error::Timeout(_)
                | Error::Overloaded
        )
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lost_connections_and_unknown_write_outcomes_are_unavailable_and_bad_queries_are_not() {
        assert!(Error::WriteOutcomeUnknown("connection reset".into()).is_unavailable());
        assert!(Error::Database(sqlx::Error::PoolTimedOut).is_unavailable());
        assert!(Error::Timeout(std::time::Duration::from_secs(5)).is_unavailable());
        assert!(Error::Overloaded.is_unavailable());
        assert!(!Error::Database(sqlx::Error::RowNotFound).is_unavailable());
        assert!(!Error::Corrupt("x".into()).is_unavailable());
    }
}
