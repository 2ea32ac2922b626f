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
        match self {
            Error::Database(sqlx::Error::Database(error)) => error
                .code()
                .is_some_and(|code| is_unavailable_sqlstate(&code)),
            // A connection cut while it was being opened reads as garbage (`Protocol`) or a
            // failed handshake (`Tls`): the server is going or coming, not the query wrong.
            Error::Database(
                sqlx::Error::PoolTimedOut
                | sqlx::Error::PoolClosed
                | sqlx::Error::Io(_)
                | sqlx::Error::Protocol(_)
                | sqlx::Error::Tls(_),
            )
            | Error::WriteOutcomeUnknown(_)
            | Error::Timeout(_)
            | Error::Overloaded => true,
            _ => false,
        }
    }
}

/// Errors Postgres answers while it fails over or restarts rather than because the query is
/// wrong: connection exceptions (class 08), insufficient resources (53: too many connections,
/// disk full), shutting down or starting up (57P01-57P03), and a write reaching a server that
/// is (still, or again) a read-only standby (25006), as during a switchover.
fn is_unavailable_sqlstate(code: &str) -> bool {
    code.starts_with("08") || code.starts_with("53") || code.starts_with("57P") || code == "25006"
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lost_connections_and_unknown_write_outcomes_are_unavailable_and_bad_queries_are_not() {
        assert!(Error::WriteOutcomeUnknown("connection reset".into()).is_unavailable());
        assert!(Error::Database(sqlx::Error::PoolTimedOut).is_unavailable());
        assert!(
            Error::Database(sqlx::Error::Protocol(
                "unexpected response from SSLRequest: 0x00".into()
            ))
            .is_unavailable(),
            "a connection cut while opening"
        );
        assert!(Error::Timeout(std::time::Duration::from_secs(5)).is_unavailable());
        assert!(Error::Overloaded.is_unavailable());
        assert!(!Error::Database(sqlx::Error::RowNotFound).is_unavailable());
        assert!(!Error::Corrupt("x".into()).is_unavailable());
    }

    #[test]
    fn failover_sqlstates_are_unavailable_and_query_errors_are_not() {
        for code in [
            "08006", "08001", "53300", "57P01", "57P02", "57P03", "25006",
        ] {
            assert!(is_unavailable_sqlstate(code), "{code}");
        }
        for code in ["23505", "42601", "22001", "40001", "25P02"] {
            assert!(!is_unavailable_sqlstate(code), "{code}");
        }
    }
}
