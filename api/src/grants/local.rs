//! Grants in one process (`SSE_BACKEND=memory`): sessions read from this process's database,
//! tickets in memory.

use super::{GrantError, Grants, SessionEnds, SessionGrant, SessionWatch, TICKET_LIFETIME, Ticket};
use bichito_core::store::Store;
use chrono::{DateTime, TimeDelta, Utc};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

pub struct LocalGrants {
    store: Arc<dyn Store>,
    tickets: Mutex<HashMap<String, Ticket>>,
    ends: Arc<SessionEnds>,
}

impl LocalGrants {
    pub fn new(store: Arc<dyn Store>) -> Self {
        Self {
            store,
            tickets: Mutex::default(),
            ends: Arc::default(),
        }
    }

    fn tickets(&self) -> std::sync::MutexGuard<'_, HashMap<String, Ticket>> {
        self.tickets
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[async_trait::async_trait]
impl Grants for LocalGrants {
    async fn session(
        &self,
        id_hash: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<SessionGrant>, GrantError> {
        let session = self
            .store
            .session(id_hash)
            .await
            .map_err(|err| GrantError::Unavailable(err.to_string()))?;
        Ok(session
            .filter(|session| session.is_live_at(now))
            .map(|session| SessionGrant {
                user_id: session.user_id,
                teams: session.teams,
                expires_at: session.expires_at,
            }))
    }

    async fn session_opened(&self, _: &str, _: &SessionGrant) -> Result<(), GrantError> {
        Ok(())
    }

    async fn session_ended(&self, id_hash: &str) -> Result<(), GrantError> {
        self.ends.ended(id_hash);
        Ok(())
    }

    async fn issue_ticket(&self, hash: &str, ticket: &Ticket) -> Result<(), GrantError> {
        let mut tickets = self.tickets();
        // Expired tickets go as new ones come: the map holds at most a minute of tickets. "Now"
        // is the server clock's, as the ticket's expiry is: at most a lifetime before it.
        let now = ticket.expires_at - TimeDelta::from_std(TICKET_LIFETIME).unwrap_or_default();
        tickets.retain(|_, ticket| ticket.expires_at > now);
        tickets.insert(hash.to_owned(), ticket.clone());
        Ok(())
    }

    async fn redeem_ticket(
        &self,
        hash: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<Ticket>, GrantError> {
        Ok(self
            .tickets()
            .remove(hash)
            .filter(|ticket| ticket.expires_at > now))
    }

    fn watch_session(&self, id_hash: &str) -> SessionWatch {
        self.ends.watch(id_hash)
    }
}
