//! Team events (seed 000): what changed, addressed to the owning team's stream.
//!
//! Each event is written to the outbox table in the same transaction as the change it
//! describes, so a stored change always has its event; the bus publishes from there.

use crate::model::{Bichito, BichitoPatch};
use serde_json::{Map, Value, json};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    BugCreated,
    BugUpdated,
    BugCommented,
    BugDeleted,
    /// The team's last honeycomb was deleted: the team is gone. Not forwarded to clients: the
    /// streams of the team end with `stream.expired` (reason `team_removed`).
    TeamRemoved,
}

impl EventType {
    pub const ALL: [EventType; 5] = [
        EventType::BugCreated,
        EventType::BugUpdated,
        EventType::BugCommented,
        EventType::BugDeleted,
        EventType::TeamRemoved,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EventType::BugCreated => "bug.created",
            EventType::BugUpdated => "bug.updated",
            EventType::BugCommented => "bug.commented",
            EventType::BugDeleted => "bug.deleted",
            EventType::TeamRemoved => "team.removed",
        }
    }

    pub fn parse(value: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|event| event.as_str() == value)
    }
}

/// An event as stored in the outbox: `payload` is the JSON of the event's `data:` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxEvent {
    /// The outbox sequence number; also the event's deduplication id on the bus.
    pub id: i64,
    pub team_id: String,
    pub event_type: EventType,
    pub payload: String,
    /// When the change was committed; publish latency is measured from here.
    pub created_at: chrono::DateTime<chrono::Utc>,
}

/// `bug.updated`'s `changes`: only the fields the patch really changes; labels as the full list.
pub fn changes(current: &Bichito, patch: &BichitoPatch) -> Map<String, Value> {
    let mut changes = Map::new();
    if let Some(status) = patch.status.filter(|status| *status != current.status) {
        changes.insert("status".into(), json!(status));
    }
    if let Some(severity) = patch
        .severity
        .filter(|severity| *severity != current.severity)
    {
        changes.insert("severity".into(), json!(severity));
    }
    if let Some(assignee) = patch
        .assignee
        .as_ref()
        .filter(|assignee| **assignee != current.assignee)
    {
        changes.insert("assignee".into(), json!(assignee));
    }
    if let Some(labels) = patch
        .labels
        .as_ref()
        .filter(|labels| **labels != current.labels)
    {
        changes.insert("labels".into(), json!(labels));
    }
    if let Some(duplicate_of) = patch
        .duplicate_of
        .filter(|duplicate_of| *duplicate_of != current.duplicate_of)
    {
        changes.insert("duplicate_of".into(), json!(duplicate_of));
    }
    changes
}

pub fn updated_payload(bichito: &Bichito, changes: &Map<String, Value>) -> String {
    json!({"bug_id": bichito.id, "project_id": bichito.honeycomb_id, "changes": changes})
        .to_string()
}

/// `bug.updated` for an attachment that was just verified: `changes.attachment` is what the
/// canonical payload now shows.
pub fn attached_payload(bichito: &Bichito) -> String {
    let changes = Map::from_iter([("attachment".to_owned(), json!(bichito.attachment))]);
    updated_payload(bichito, &changes)
}

pub fn commented_payload(bichito: &Bichito, comment_id: i64, author_id: &str) -> String {
    json!({"bug_id": bichito.id, "project_id": bichito.honeycomb_id, "comment_id": comment_id, "author_id": author_id})
        .to_string()
}

pub fn team_removed_payload(team_id: &str) -> String {
    json!({"team_id": team_id}).to_string()
}

pub fn deleted_payload(bichito: &Bichito) -> String {
    json!({"bug_id": bichito.id, "project_id": bichito.honeycomb_id}).to_string()
}

/// `bug.deleted`'s payload as an SQL expression over a row's bichito `id` and `honeycomb_id`
/// columns, for deletions the database writes in bulk: the same JSON as [`deleted_payload`].
pub fn deleted_payload_sql(id: &str, honeycomb_id: &str) -> String {
    format!("'{{\"bug_id\":' || {id} || ',\"project_id\":' || {honeycomb_id} || '}}'")
}

/// `bug.created`'s payload: the canonical bichito.
pub fn created_payload(bichito: &Bichito) -> crate::Result<String> {
    serde_json::to_string(bichito).map_err(|err| crate::Error::Corrupt(err.to_string()))
}

/// [`created_payload`] of a report not stored yet (its id 0) without its opening `{"id":0`:
/// the database writes the new id in front ([`created_payload_sql`]), so the payload is
/// serialized before the id is known.
pub fn created_payload_tail(unstored: &Bichito) -> crate::Result<String> {
    created_payload(unstored)?
        .strip_prefix(CREATED_HEAD_ID_ZERO)
        .map(str::to_owned)
        .ok_or_else(|| crate::Error::Corrupt("the payload does not start with its id".into()))
}

const CREATED_HEAD_ID_ZERO: &str = "{\"id\":0";

/// `bug.created`'s payload as an SQL expression over the new row's `id` and the payload's
/// tail ([`created_payload_tail`]): the same JSON as [`created_payload`].
pub fn created_payload_sql(id: &str, tail: &str) -> String {
    format!("'{{\"id\":' || {id} || {tail}")
}
