//! The `text/event-stream` format. Frames are built once per event and shared by every
//! subscriber (axum's `sse::Event` is built per response, so it cannot be shared).

use axum::body::Bytes;

/// Response headers of every stream.
pub const RESPONSE_HEADERS: [(&str, &str); 3] = [
    ("content-type", "text/event-stream"),
    ("cache-control", "no-cache"),
    // Tells nginx (and ingress-nginx) not to buffer the stream.
    ("x-accel-buffering", "no"),
];

/// One event: `id:`, `event:`, then a `data:` line per line of `data`.
pub fn frame(id: u64, event: &str, data: &str) -> Bytes {
    let mut frame = String::with_capacity(data.len() + event.len() + 40);
    frame.push_str("id: ");
    frame.push_str(&id.to_string());
    frame.push_str("\nevent: ");
    frame.push_str(event);
    frame.push('\n');
    for line in data.split('\n') {
        frame.push_str("data: ");
        frame.push_str(line.strip_suffix('\r').unwrap_or(line));
        frame.push('\n');
    }
    frame.push('\n');
    Bytes::from(frame)
}

/// A comment, which clients ignore: keeps idle connections (and proxies) alive.
pub const HEARTBEAT: Bytes = Bytes::from_static(b": heartbeat\n\n");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_carry_id_event_and_one_data_line_per_line() {
        assert_eq!(
            frame(7, "bug.created", "{\"a\":1}"),
            Bytes::from_static(b"id: 7\nevent: bug.created\ndata: {\"a\":1}\n\n")
        );
        assert_eq!(
            frame(1, "x", "a\r\nb"),
            Bytes::from_static(b"id: 1\nevent: x\ndata: a\ndata: b\n\n")
        );
    }
}
