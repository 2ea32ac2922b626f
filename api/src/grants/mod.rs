//! What authorizes a team stream besides a JWT, shared by every process that streams: the
//! dashboard's sessions (a cookie) and single-use stream tickets; and the end of a session
//! (sign-out), told to every such process so that its streams end too.
//!
//! One process ([`local`]) keeps tickets in memory and reads sessions from its database;
//! several ([`nats`]) share both through JetStream key-value buckets, where a ticket is taken
//! by one atomic delete and a signed-out session's deletion reaches every process's watch.
//!
//! Sessions and tickets are named by the SHA-256 of their secret
//! ([`bichito_core::session::secret_hash`]): the secrets themselves are never stored, sent
//! over the bus, logged or counted.

mod ends;
pub mod local;
pub mod nats;

pub use ends::{SessionEnds, SessionWatch};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// How long a stream ticket stays valid.
pub const TICKET_LIFETIME: std::time::Duration = std::time::Duration::from_secs(60);

/// A session as streams see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionGrant {
    pub user_id: String,
    pub teams: Vec<String>,
    pub expires_at: DateTime<Utc>,
}

/// A stream ticket: one stream of one team, for one user, opened once before `expires_at`.
/// The stream it opens ends with the authorization it was issued on (`grant_expires_at`,
/// `session`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ticket {
    pub user_id: String,
    pub team_id: String,
    pub expires_at: DateTime<Utc>,
    pub grant_expires_at: DateTime<Utc>,
    /// The session (hash) the ticket was issued in, if it was.
    pub session: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum GrantError {
    #[error("sessions and tickets unavailable: {0}")]
    Unavailable(String),
}

#[async_trait::async_trait]
pub trait Grants: Send + Sync + 'static {
    /// The live session `id_hash` names (none once it ended or expired).
    async fn session(
        &self,
        id_hash: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<SessionGrant>, GrantError>;
    /// Makes a new session known to every process that streams.
    async fn session_opened(&self, id_hash: &str, grant: &SessionGrant) -> Result<(), GrantError>;
    /// Ends a session on every process that streams: its streams end.
    async fn session_ended(&self, id_hash: &str) -> Result<(), GrantError>;
    /// Keeps a ticket until it is redeemed or expires.
    async fn issue_ticket(&self, hash: &str, ticket: &Ticket) -> Result<(), GrantError>;
    /// Takes the ticket `hash` names: of every redemption, on any process, one gets it; an
    /// expired ticket is none.
    async fn redeem_ticket(
        &self,
        hash: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<Ticket>, GrantError>;
    /// Watches a session, on this process, for its end.
    fn watch_session(&self, id_hash: &str) -> SessionWatch;
}
