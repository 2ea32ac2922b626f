//! The client side of one SSE subscription over a raw TCP connection: the request, the
//! response head, and then the events, decoded from HTTP/1.1 chunked framing when the server
//! uses it.

use crate::Result;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

pub struct Subscriber {
    pub stream: TcpStream,
    /// Body bytes read together with the response head.
    pub body: Vec<u8>,
    pub chunked: bool,
}

/// Connects, sends `request`, and waits for a `200` response head.
pub async fn subscribe(address: &str, request: &str) -> Result<Subscriber> {
    let mut stream = TcpStream::connect(address).await?;
    stream.write_all(request.as_bytes()).await?;
    let mut head = Vec::new();
    let mut buffer = [0u8; 1024];
    let end = loop {
        if let Some(end) = head.windows(4).position(|window| window == b"\r\n\r\n") {
            break end + 4;
        }
        let read = tokio::time::timeout(Duration::from_secs(30), stream.read(&mut buffer))
            .await
            .map_err(|_| "no response headers within 30 s")??;
        if read == 0 {
            return Err("the server closed the connection".into());
        }
        head.extend_from_slice(&buffer[..read]);
    };
    if !head.starts_with(b"HTTP/1.1 200") {
        return Err(format!("subscription refused: {}", String::from_utf8_lossy(&head)).into());
    }
    let body = head.split_off(end);
    let chunked = String::from_utf8_lossy(&head)
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked");
    Ok(Subscriber {
        stream,
        body,
        chunked,
    })
}

/// One SSE event's `event:` and `data:` fields.
pub struct SseEvent<'a> {
    pub event: &'a str,
    pub data: &'a str,
}

/// Turns the bytes of a response body into SSE events.
#[derive(Default)]
pub struct EventReader {
    chunked: bool,
    /// Raw body bytes not decoded yet (chunked framing only).
    raw: Vec<u8>,
    /// Bytes left in the current chunk.
    chunk_left: usize,
    /// Decoded SSE text not split into events yet.
    text: Vec<u8>,
}

impl EventReader {
    pub fn new(chunked: bool) -> Self {
        Self {
            chunked,
            ..Self::default()
        }
    }

    /// Takes `bytes` of the body and calls `on_event` for each complete event in them.
    pub fn feed(&mut self, bytes: &[u8], mut on_event: impl FnMut(SseEvent<'_>)) -> Result<()> {
        if self.chunked {
            self.raw.extend_from_slice(bytes);
            self.dechunk()?;
        } else {
            self.text.extend_from_slice(bytes);
        }
        let mut start = 0;
        while let Some(end) = find(&self.text[start..], b"\n\n") {
            let block = std::str::from_utf8(&self.text[start..start + end])?;
            let mut event = SseEvent {
                event: "message",
                data: "",
            };
            for line in block.lines() {
                if let Some(name) = line.strip_prefix("event:") {
                    event.event = name.trim_start();
                } else if let Some(data) = line.strip_prefix("data:") {
                    event.data = data.strip_prefix(' ').unwrap_or(data);
                }
            }
            on_event(event);
            start += end + 2;
        }
        self.text.drain(..start);
        Ok(())
    }

    fn dechunk(&mut self) -> Result<()> {
        let mut at = 0;
        loop {
            if self.chunk_left > 0 {
                let take = self.chunk_left.min(self.raw.len() - at);
                if take == 0 {
                    break;
                }
                self.text.extend_from_slice(&self.raw[at..at + take]);
                self.chunk_left -= take;
                at += take;
                continue;
            }
            // A chunk's size line, after the CRLF closing the previous chunk.
            let rest = &self.raw[at..];
            let skip = if rest.starts_with(b"\r\n") { 2 } else { 0 };
            let Some(line_end) = find(&rest[skip..], b"\r\n") else {
                break;
            };
            let line = std::str::from_utf8(&rest[skip..skip + line_end])?;
            let size = line.split(';').next().unwrap_or_default().trim();
            let size = usize::from_str_radix(size, 16)
                .map_err(|_| format!("bad chunk size line {line:?}"))?;
            if size == 0 {
                return Err("the server ended the stream".into());
            }
            self.chunk_left = size;
            at += skip + line_end + 2;
        }
        self.raw.drain(..at);
        Ok(())
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn events(chunked: bool, pieces: &[&[u8]]) -> Vec<(String, String)> {
        let mut reader = EventReader::new(chunked);
        let mut seen = Vec::new();
        for piece in pieces {
            reader
                .feed(piece, |event| {
                    seen.push((event.event.to_owned(), event.data.to_owned()))
                })
                .expect("well-formed body");
        }
        seen
    }

    #[test]
    fn plain_bodies_split_into_events_across_reads() {
        let seen = events(
            false,
            &[
                b"id: 1\nevent: hello\nda",
                b"ta: {}\n\n: ping\n\ndata: x\n\n",
            ],
        );
        assert_eq!(
            seen,
            [
                ("hello".to_owned(), "{}".to_owned()),
                ("message".to_owned(), String::new()),
                ("message".to_owned(), "x".to_owned()),
            ]
        );
    }

    #[test]
    fn chunked_bodies_are_decoded_even_when_reads_split_size_lines_and_data() {
        let body: &[u8] = b"d\r\nevent: a\ndata\r\n5\r\n: 1\n\n\r\n9\r\ndata: 2\n\n\r\n";
        let split: Vec<&[u8]> = body.chunks(3).collect();
        assert_eq!(
            events(true, &split),
            [
                ("a".to_owned(), "1".to_owned()),
                ("message".to_owned(), "2".to_owned())
            ]
        );
    }

    #[test]
    fn the_last_chunk_is_reported_as_the_end_of_the_stream() {
        let mut reader = EventReader::new(true);
        assert!(reader.feed(b"0\r\n\r\n", |_| {}).is_err());
    }
}
