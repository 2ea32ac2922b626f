//! An event as the bus carries it to this process's streams: the stream writes its frame.

use axum::body::Bytes;
use bichito_core::events::EventType;

/// An event as streams see it: `id` is its position in the bus (the SSE `id:`), and `frame` the
/// whole SSE event (its JSON in the `data:` line), serialized once for every subscriber. The
/// JSON is not kept apart: nothing but streams reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BusEvent {
    pub id: u64,
    pub team_id: String,
    pub event_type: EventType,
    pub frame: Bytes,
}

impl BusEvent {
    pub fn new(id: u64, team_id: String, event_type: EventType, payload: &str) -> Self {
        Self {
            id,
            frame: super::sse::frame(id, event_type.as_str(), payload),
            team_id,
            event_type,
        }
    }

    /// The SSE event, as every subscriber writes it.
    pub fn frame(&self) -> Bytes {
        self.frame.clone()
    }
}
