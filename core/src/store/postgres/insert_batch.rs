//! Reports arriving together are stored together: one statement, one commit and one round trip
//! for as many reports as are waiting (Postgres only).
//!
//! A few writer tasks share one queue. A writer takes the first report waiting, then every
//! other one already queued (up to [`MAX_BATCH`]), and stores them all in one multi-row
//! statement with their `bug.created` events. Nothing waits for a batch to fill: when the
//! database keeps up, a report goes alone and at once; when it does not, reports queue while
//! the writers are busy and the next batches are larger, so each costs Postgres one commit
//! instead of one per report.
//!
//! The queue is bounded: when the writers fall so far behind that it is full, a report is
//! refused at once ([`BatchError::Full`], answered 503 with `Retry-After`) rather than held in
//! memory without end.
//!
//! A batch that the database refuses is answered with [`BatchError::Refused`] (nothing of it was
//! stored), and each caller stores its report alone, so one report that the database refuses
//! cannot take the others with it. A batch lost with its connection, or not answered within
//! the store's timeout, is answered with [`BatchError::Unavailable`]: it may have been stored,
//! so it is not stored again. A report whose caller stopped waiting before a writer took it
//! (its request timed out) is not stored at all.
//!
//! Each report is stored only while its API key is valid: the statement checks and
//! share-locks the key's row, and a report whose key was revoked gets no id.

use crate::events::{self, EventType};
use crate::model::{Bichito, Status};
use serde_json::value::RawValue;
use sqlx::pool::PoolConnection;
use sqlx::postgres::{PgConnection, PgPool};
use sqlx::{Connection, Postgres, Row};
use std::sync::{Arc, LazyLock};
use std::time::{Duration, Instant};
use tokio::sync::{Mutex, mpsc, oneshot};

/// The most reports stored by one statement.
pub const MAX_BATCH: usize = 64;

/// A writer's connection unused for this long is pinged before its next batch.
const IDLE_BEFORE_PING: Duration = Duration::from_secs(1);

/// A report waiting for a writer (as the bichito it becomes, id still 0), with the tail of its
/// event payload (everything after its id) and where to send it back once it has its id.
struct Waiting {
    bichito: Bichito,
    payload_tail: String,
    api_key_id: Option<i64>,
    reply: oneshot::Sender<Result<Option<Bichito>, BatchError>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BatchError {
    /// Nothing of the batch was stored (the database refused it, or no writer took it): store
    /// the report alone.
    Refused,
    /// The queue is full: the report was not queued, nothing was stored.
    Full,
    /// The database could not be reached or the answer was lost; the batch may have been
    /// stored.
    Unavailable(String),
}

pub struct InsertBatcher {
    queue: mpsc::Sender<Waiting>,
}

impl InsertBatcher {
    /// Starts `writers` writer tasks on the current Tokio runtime, each batch bounded by
    /// `timeout`, with at most `capacity` reports waiting; they stop when the batcher is
    /// dropped.
    pub fn start(pool: PgPool, writers: usize, timeout: Duration, capacity: usize) -> Self {
        let (queue, receiver) = mpsc::channel(capacity.max(1));
        let receiver = Arc::new(Mutex::new(receiver));
        for _ in 0..writers.max(1) {
            tokio::spawn(write_batches(pool.clone(), receiver.clone(), timeout));
        }
        Self { queue }
    }

    /// Stores `bichito` (a new report, id 0) and its `bug.created` event (`{"id":<id>`
    /// followed by `payload_tail`) with whatever else is waiting, if `api_key_id` is still
    /// valid; answers it with its id, or `None` when the key was not.
    pub async fn insert(
        &self,
        bichito: Bichito,
        payload_tail: String,
        api_key_id: Option<i64>,
    ) -> Result<Option<Bichito>, BatchError> {
        let (reply, answer) = oneshot::channel();
        self.queue
            .try_send(Waiting {
                bichito,
                payload_tail,
                api_key_id,
                reply,
            })
            .map_err(|err| match err {
                mpsc::error::TrySendError::Full(_) => BatchError::Full,
                mpsc::error::TrySendError::Closed(_) => BatchError::Refused,
            })?;
        // Dropped unanswered: the writers' runtime is shutting down, and the report goes alone.
        answer.await.unwrap_or(Err(BatchError::Refused))
    }
}

/// One writer: takes what is waiting, stores it, answers, again.
///
/// A writer keeps its connection between batches: a connection taken from the pool is pinged
/// when it is taken and again when it is given back, which would make each batch three round
/// trips instead of one. A connection that has been idle for [`IDLE_BEFORE_PING`] is pinged
/// before it is used again, and after a failed batch it goes back to the pool, so the next
/// batch takes a healthy one.
async fn write_batches(
    pool: PgPool,
    receiver: Arc<Mutex<mpsc::Receiver<Waiting>>>,
    timeout: Duration,
) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    let mut held: Option<(PoolConnection<Postgres>, Instant)> = None;
    loop {
        {
            let mut receiver = receiver.lock().await;
            if receiver.recv_many(&mut batch, MAX_BATCH).await == 0 {
                return;
            }
        }
        // Nobody waits for these any more: their requests were answered 503.
        batch.retain(|waiting| !waiting.reply.is_closed());
        if batch.is_empty() {
            continue;
        }
        let stored = tokio::time::timeout(timeout, async {
            let mut connection = connection(&pool, held.take()).await?;
            let stored = store(&mut connection, &batch).await;
            // After any error the connection goes back to the pool, which pings it and keeps
            // it only if it is alive: a database error may also be the server closing the
            // connection (e.g. `terminating connection due to administrator command`).
            if stored.is_ok() {
                held = Some((connection, Instant::now()));
            }
            stored
        })
        .await
        // The connection that did not answer is dropped with the timed-out future.
        .unwrap_or_else(|_| {
            Err(sqlx::Error::Io(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!("the database did not answer within {timeout:?}"),
            )))
        });
        match stored {
            Ok(ids) => {
                for (mut waiting, id) in batch.drain(..).zip(ids) {
                    let answer = id.map(|id| {
                        waiting.bichito.id = id;
                        waiting.bichito
                    });
                    let _ = waiting.reply.send(Ok(answer));
                }
            }
            Err(err) => {
                let answer = match &err {
                    sqlx::Error::Database(_) => BatchError::Refused,
                    other => BatchError::Unavailable(other.to_string()),
                };
                tracing::warn!(error = %err, reports = batch.len(), "a batch of reports failed");
                for waiting in batch.drain(..) {
                    let _ = waiting.reply.send(Err(answer.clone()));
                }
            }
        }
    }
}

/// The connection kept from the last batch, if it was used within [`IDLE_BEFORE_PING`] or answers
/// a ping; otherwise one from the pool.
async fn connection(
    pool: &PgPool,
    held: Option<(PoolConnection<Postgres>, Instant)>,
) -> sqlx::Result<PoolConnection<Postgres>> {
    if let Some((mut connection, last_used)) = held
        && (last_used.elapsed() < IDLE_BEFORE_PING || connection.ping().await.is_ok())
    {
        return Ok(connection);
    }
    pool.acquire().await
}

/// One statement for the whole batch: each report gets its id from the bichitos' sequence
/// first, so that its event (in the same order) and its answer know it.
static INSERT_BATCH: LazyLock<String> = LazyLock::new(|| {
    format!(
        "WITH batch AS MATERIALIZED ( \
             SELECT nextval('bichitos_id_seq') AS id, r.* \
             FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::text[], \
                         $6::text[], $7::text[], $8::text[], $9::text[], $10::text[], \
                         $11::text[], $12::text[], $13::text[], $14::timestamptz[], $15::text[], \
                         $18::bigint[]) WITH ORDINALITY \
                  AS r(honeycomb_id, team_id, title, description, severity, environment, \
                       app_version, stack_trace, url, user_agent, reporter_email, \
                       reporter_identifier, extra, created_at, payload_tail, api_key_id, position) \
             WHERE r.api_key_id IS NULL OR EXISTS ( \
                 SELECT 1 FROM api_keys k WHERE k.id = r.api_key_id \
                     AND (k.expires_at IS NULL OR k.expires_at > r.created_at) FOR KEY SHARE)), \
         stored AS ( \
             INSERT INTO bichitos (id, honeycomb_id, team_id, title, description, status, \
                 severity, environment, app_version, stack_trace, url, user_agent, \
                 reporter_email, reporter_identifier, extra, created_at, updated_at) \
             SELECT id, honeycomb_id, team_id, title, description, $16, severity, environment, \
                 app_version, stack_trace, url, user_agent, reporter_email, \
                 reporter_identifier, extra, created_at, created_at \
             FROM batch), \
         events AS ( \
             INSERT INTO outbox (team_id, event_type, payload, created_at) \
             SELECT team_id, $17, {}, created_at FROM batch ORDER BY id) \
         SELECT id, position FROM batch",
        events::created_payload_sql("id", "payload_tail")
    )
});

/// Stores `batch`; answers the ids in its order (`None` for a report whose key was revoked).
async fn store(connection: &mut PgConnection, batch: &[Waiting]) -> sqlx::Result<Vec<Option<i64>>> {
    // Columns as arrays of borrowed values: nothing of the reports is copied to bind them.
    fn column<'a, T>(batch: &'a [Waiting], field: impl Fn(&'a Waiting) -> T) -> Vec<T> {
        batch.iter().map(field).collect()
    }
    let rows = sqlx::query(INSERT_BATCH.as_str())
        .bind(column(batch, |w| w.bichito.honeycomb_id))
        .bind(column(batch, |w| w.bichito.team_id.as_str()))
        .bind(column(batch, |w| w.bichito.title.as_str()))
        .bind(column(batch, |w| w.bichito.description.as_str()))
        .bind(column(batch, |w| w.bichito.severity.as_str()))
        .bind(column(batch, |w| w.bichito.environment.as_deref()))
        .bind(column(batch, |w| w.bichito.app_version.as_deref()))
        .bind(column(batch, |w| w.bichito.stack_trace.as_deref()))
        .bind(column(batch, |w| w.bichito.url.as_deref()))
        .bind(column(batch, |w| w.bichito.user_agent.as_deref()))
        .bind(column(batch, |w| w.bichito.reporter_email.as_deref()))
        .bind(column(batch, |w| w.bichito.reporter_identifier.as_deref()))
        .bind(column(batch, |w| {
            w.bichito.extra.as_deref().map(RawValue::get)
        }))
        .bind(column(batch, |w| w.bichito.created_at))
        .bind(column(batch, |w| w.payload_tail.as_str()))
        .bind(Status::Open.as_str())
        .bind(EventType::BugCreated.as_str())
        .bind(column(batch, |w| w.api_key_id))
        .fetch_all(&mut *connection)
        .await?;
    let mut ids = vec![None; batch.len()];
    for row in rows {
        let position: i64 = row.try_get("position")?;
        let slot = usize::try_from(position - 1)
            .ok()
            .and_then(|index| ids.get_mut(index))
            .ok_or_else(|| {
                sqlx::Error::Protocol(format!("batch position {position} out of range"))
            })?;
        *slot = Some(row.try_get::<i64, _>("id")?);
    }
    Ok(ids)
}
