//! Grants shared through NATS (`SSE_BACKEND=nats`): two JetStream key-value buckets named
//! after the event stream, `<stream>_SESSIONS` and `<stream>_TICKETS`.
//!
//! - A session is put when it opens and deleted when it ends; every process watches the
//!   bucket and ends the streams of a deleted session. A process whose watch broke checks the
//!   sessions its streams depend on once it watches again, so an end missed meanwhile still
//!   ends them.
//! - A ticket is put when issued and redeemed by a delete that expects the revision read: of
//!   two redemptions, on any processes, the second finds the revision moved and fails.

use super::{GrantError, Grants, SessionEnds, SessionGrant, SessionWatch, Ticket};
use crate::config::MAX_SESSION_AGE;
use async_nats::jetstream::{self, kv};
use chrono::{DateTime, Utc};
use futures_util::StreamExt;
use std::sync::Arc;
use std::time::Duration;

/// Tickets outlive their minute in the bucket only as long as this.
const TICKET_BUCKET_AGE: Duration = Duration::from_secs(300);
/// Wait before watching again after the watch broke.
const REWATCH_DELAY: Duration = Duration::from_secs(1);

pub struct NatsGrants {
    sessions: kv::Store,
    tickets: kv::Store,
    ends: Arc<SessionEnds>,
    watcher: tokio::task::JoinHandle<()>,
}

impl Drop for NatsGrants {
    fn drop(&mut self) {
        self.watcher.abort();
    }
}

fn unavailable(err: impl std::fmt::Display) -> GrantError {
    GrantError::Unavailable(err.to_string())
}

/// The bucket `name` with `replicas` copies, created when missing.
///
/// Created as the stream a key-value bucket is (`KV_<name>`, one value per key, deletes as
/// markers), not with `create_key_value`: that first asks for the account's JetStream info,
/// whose answer async-nats 0.51 cannot read from nats-server 2.9. An existing bucket keeps its
/// settings but takes the replica count, as the event stream does (`NATS_STREAM_REPLICAS`).
async fn bucket(
    jetstream: &jetstream::Context,
    name: String,
    max_age: Duration,
    replicas: usize,
) -> Result<kv::Store, GrantError> {
    let stream_name = format!("KV_{name}");
    match jetstream.get_stream(&stream_name).await {
        Ok(mut stream) => {
            let config = stream.info().await.map_err(unavailable)?.config.clone();
            if config.num_replicas != replicas {
                tracing::info!(bucket = %name, from = config.num_replicas, to = replicas, "changing the bucket's replicas");
                jetstream
                    .update_stream(jetstream::stream::Config {
                        num_replicas: replicas,
                        ..config
                    })
                    .await
                    .map_err(unavailable)?;
            }
        }
        Err(_) => {
            jetstream
                .get_or_create_stream(jetstream::stream::Config {
                    name: stream_name,
                    subjects: vec![format!("$KV.{name}.>")],
                    max_messages_per_subject: 1,
                    max_age,
                    duplicate_window: max_age.min(Duration::from_secs(120)),
                    storage: jetstream::stream::StorageType::File,
                    allow_rollup: true,
                    deny_delete: true,
                    allow_direct: true,
                    discard: jetstream::stream::DiscardPolicy::New,
                    num_replicas: replicas,
                    ..jetstream::stream::Config::default()
                })
                .await
                .map_err(unavailable)?;
        }
    }
    jetstream.get_key_value(&name).await.map_err(unavailable)
}

impl NatsGrants {
    /// Opens (creating when missing) the buckets of the event stream `stream_name`, with
    /// `replicas` copies, and starts watching sessions.
    pub async fn connect(
        jetstream: &jetstream::Context,
        stream_name: &str,
        replicas: usize,
    ) -> Result<Self, GrantError> {
        // A day beyond the longest session: an entry is never dropped before its session ends.
        let sessions = bucket(
            jetstream,
            format!("{stream_name}_SESSIONS"),
            MAX_SESSION_AGE + Duration::from_secs(24 * 3600),
            replicas,
        )
        .await?;
        let tickets = bucket(
            jetstream,
            format!("{stream_name}_TICKETS"),
            TICKET_BUCKET_AGE,
            replicas,
        )
        .await?;
        let ends = Arc::new(SessionEnds::default());
        let watcher = tokio::spawn(watch_sessions(sessions.clone(), ends.clone()));
        Ok(Self {
            sessions,
            tickets,
            ends,
            watcher,
        })
    }
}

/// Ends the streams of every session deleted from the bucket, for as long as the process runs.
async fn watch_sessions(sessions: kv::Store, ends: Arc<SessionEnds>) {
    let mut first = true;
    loop {
        match sessions.watch_all().await {
            Ok(mut watch) => {
                if !first {
                    // Ends that came while the watch was broken.
                    for id_hash in ends.watched() {
                        if let Ok(None) = sessions.get(&id_hash).await {
                            ends.ended(&id_hash);
                        }
                    }
                }
                while let Some(entry) = watch.next().await {
                    match entry {
                        Ok(entry)
                            if matches!(
                                entry.operation,
                                kv::Operation::Delete | kv::Operation::Purge
                            ) =>
                        {
                            ends.ended(&entry.key);
                        }
                        Ok(_) => {}
                        Err(err) => {
                            tracing::warn!(error = %err, "session watch broke; watching again");
                            break;
                        }
                    }
                }
            }
            Err(err) => tracing::warn!(error = %err, "cannot watch sessions; retrying"),
        }
        first = false;
        tokio::time::sleep(REWATCH_DELAY).await;
    }
}

#[async_trait::async_trait]
impl Grants for NatsGrants {
    async fn session(
        &self,
        id_hash: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<SessionGrant>, GrantError> {
        let value = self.sessions.get(id_hash).await.map_err(unavailable)?;
        let Some(value) = value else {
            return Ok(None);
        };
        let grant: SessionGrant = serde_json::from_slice(&value).map_err(unavailable)?;
        Ok((grant.expires_at > now).then_some(grant))
    }

    async fn session_opened(&self, id_hash: &str, grant: &SessionGrant) -> Result<(), GrantError> {
        let value = serde_json::to_vec(grant).map_err(unavailable)?;
        self.sessions
            .put(id_hash, value.into())
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    async fn session_ended(&self, id_hash: &str) -> Result<(), GrantError> {
        self.sessions.delete(id_hash).await.map_err(unavailable)
    }

    async fn issue_ticket(&self, hash: &str, ticket: &Ticket) -> Result<(), GrantError> {
        let value = serde_json::to_vec(ticket).map_err(unavailable)?;
        self.tickets
            .create(hash, value.into())
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    async fn redeem_ticket(
        &self,
        hash: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<Ticket>, GrantError> {
        let Some(entry) = self.tickets.entry(hash).await.map_err(unavailable)? else {
            return Ok(None);
        };
        if entry.operation != kv::Operation::Put {
            return Ok(None);
        }
        // Only the redemption whose delete finds the revision it read gets the ticket.
        if let Err(err) = self
            .tickets
            .delete_expect_revision(hash, Some(entry.revision))
            .await
        {
            // Another redemption won, or NATS failed: which, the entry now tells.
            let now_there = self.tickets.entry(hash).await.map_err(unavailable)?;
            let taken = now_there.is_none_or(|current| {
                current.revision != entry.revision || current.operation != kv::Operation::Put
            });
            return if taken {
                Ok(None)
            } else {
                Err(unavailable(err))
            };
        }
        let ticket: Ticket = serde_json::from_slice(&entry.value).map_err(unavailable)?;
        Ok((ticket.expires_at > now).then_some(ticket))
    }

    fn watch_session(&self, id_hash: &str) -> SessionWatch {
        self.ends.watch(id_hash)
    }
}
