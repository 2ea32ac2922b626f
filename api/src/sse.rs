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
/// [`HEARTBEAT`] as a chunk (see [`chunked`]).
pub const HEARTBEAT_CHUNK: Bytes = Bytes::from_static(b"d\r\n: heartbeat\n\n\r\n");

/// `frame` as one chunk of a chunked HTTP/1.1 body: size line, frame, CRLF. Done once per
/// event, so that every subscriber's connection writes the same bytes without copying them.
pub fn chunked(frame: &[u8]) -> Bytes {
    let size = format!("{:x}\r\n", frame.len());
    let mut chunk = Vec::with_capacity(size.len() + frame.len() + 2);
    chunk.extend_from_slice(size.as_bytes());
    chunk.extend_from_slice(frame);
    chunk.extend_from_slice(b"\r\n");
    Bytes::from(chunk)
}

/// The frame inside a chunk made by [`chunked`], without copying it.
pub fn unchunked(chunk: &Bytes) -> Bytes {
    let start = chunk
        .windows(2)
        .position(|pair| pair == b"\r\n")
        .map_or(0, |at| at + 2);
    let end = chunk.len().saturating_sub(2).max(start);
    chunk.slice(start..end)
}

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

    #[test]
    fn a_chunk_is_the_frame_with_its_hex_size_and_gives_the_frame_back() {
        let frame = frame(7, "bug.created", &"x".repeat(300));
        let chunk = chunked(&frame);
        let size = format!("{:x}\r\n", frame.len());
        assert!(chunk.starts_with(size.as_bytes()));
        assert!(chunk.ends_with(b"\n\n\r\n"));
        assert_eq!(chunk.len(), size.len() + frame.len() + 2);
        assert_eq!(unchunked(&chunk), frame);
        assert_eq!(chunked(&HEARTBEAT), HEARTBEAT_CHUNK);
        assert_eq!(unchunked(&HEARTBEAT_CHUNK), HEARTBEAT);
    }
}
