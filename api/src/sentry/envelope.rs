//! Sentry's envelope format (develop.sentry.dev/sdk/envelopes): a JSON header line, then items,
//! each a JSON header line and a payload that is `length` bytes when the header says so, or
//! else runs to the next newline. Bodies may be gzip- or deflate-compressed.

use serde_json::{Map, Value};
use std::io::Read;

/// Why an envelope cannot be read.
#[derive(Debug, PartialEq, Eq)]
pub enum EnvelopeError {
    /// Not an envelope (a header that is not JSON, a payload shorter than its length...).
    Malformed(String),
    /// Larger than `limit` bytes once decompressed.
    TooLarge { limit: usize },
    /// A `Content-Encoding` other than gzip, deflate or identity.
    Encoding(String),
}

impl std::fmt::Display for EnvelopeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            EnvelopeError::Malformed(why) => write!(f, "malformed envelope: {why}"),
            EnvelopeError::TooLarge { limit } => {
                write!(f, "the envelope is larger than {limit} bytes decompressed")
            }
            EnvelopeError::Encoding(encoding) => {
                write!(
                    f,
                    "unsupported content-encoding {encoding:?} (gzip, deflate or none)"
                )
            }
        }
    }
}

/// One item: its header (`type`, `length`, `filename`, `content_type`...) and payload.
#[derive(Debug, PartialEq)]
pub struct Item {
    pub header: Map<String, Value>,
    pub payload: Vec<u8>,
}

impl Item {
    pub fn kind(&self) -> &str {
        self.header
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or("")
    }

    /// The payload as a JSON object (event-like items).
    pub fn json(&self) -> Option<Map<String, Value>> {
        match serde_json::from_slice(&self.payload) {
            Ok(Value::Object(object)) => Some(object),
            _ => None,
        }
    }
}

#[derive(Debug, PartialEq)]
pub struct Envelope {
    pub header: Map<String, Value>,
    pub items: Vec<Item>,
}

/// The body as sent, decompressed by its `Content-Encoding`, at most `limit` bytes.
pub fn decode(body: &[u8], encoding: Option<&str>, limit: usize) -> Result<Vec<u8>, EnvelopeError> {
    let reader: Box<dyn Read + '_> = match encoding.map(|value| value.trim().to_ascii_lowercase()) {
        None => Box::new(body),
        Some(value) if value.is_empty() || value == "identity" => Box::new(body),
        Some(value) if value == "gzip" || value == "x-gzip" => {
            Box::new(flate2::read::GzDecoder::new(body))
        }
        Some(value) if value == "deflate" => Box::new(flate2::read::ZlibDecoder::new(body)),
        Some(other) => return Err(EnvelopeError::Encoding(other)),
    };
    let mut decoded = Vec::new();
    // One byte more than allowed tells "too large" from "exactly at the limit".
    reader
        .take(limit as u64 + 1)
        .read_to_end(&mut decoded)
        .map_err(|err| EnvelopeError::Malformed(format!("cannot decompress: {err}")))?;
    if decoded.len() > limit {
        return Err(EnvelopeError::TooLarge { limit });
    }
    Ok(decoded)
}

fn json_line(bytes: &[u8], what: &str) -> Result<Map<String, Value>, EnvelopeError> {
    match serde_json::from_slice(bytes) {
        Ok(Value::Object(object)) => Ok(object),
        _ => Err(EnvelopeError::Malformed(format!(
            "{what} is not a JSON object"
        ))),
    }
}

/// Splits off the bytes up to the next newline (or the end), and the rest after it.
fn line(bytes: &[u8]) -> (&[u8], &[u8]) {
    match bytes.iter().position(|&byte| byte == b'\n') {
        Some(at) => (&bytes[..at], &bytes[at + 1..]),
        None => (bytes, &[]),
    }
}

pub fn parse(bytes: &[u8]) -> Result<Envelope, EnvelopeError> {
    let (first, mut rest) = line(bytes);
    let header = json_line(first, "the envelope header")?;
    let mut items = Vec::new();
    while !rest.is_empty() {
        let (item_header, after) = line(rest);
        if item_header.iter().all(u8::is_ascii_whitespace) {
            rest = after;
            continue;
        }
        let item_header = json_line(item_header, "an item header")?;
        let (payload, after) = match item_header.get("length") {
            Some(length) => {
                let length = length
                    .as_u64()
                    .and_then(|length| usize::try_from(length).ok())
                    .ok_or_else(|| {
                        EnvelopeError::Malformed("an item length is not a number".into())
                    })?;
                if after.len() < length {
                    return Err(EnvelopeError::Malformed(
                        "an item is shorter than its length".into(),
                    ));
                }
                let (payload, after) = after.split_at(length);
                // The newline after a payload of known length is optional.
                (payload, after.strip_prefix(b"\n").unwrap_or(after))
            }
            None => line(after),
        };
        items.push(Item {
            header: item_header,
            payload: payload.to_vec(),
        });
        rest = after;
    }
    Ok(Envelope { header, items })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn items_with_and_without_a_length_and_binary_payloads() {
        let mut body = b"{\"event_id\":\"9ec79c33ec9942ab8353589fcb2e04dc\"}\n".to_vec();
        body.extend(
            b"{\"type\":\"feedback\"}\n{\"contexts\":{\"feedback\":{\"message\":\"hi\"}}}\n",
        );
        body.extend(b"{\"type\":\"attachment\",\"length\":5,\"filename\":\"a.png\"}\n");
        body.extend(b"\x89P\nN\x00");
        body.extend(b"\n{\"type\":\"client_report\",\"length\":2}\n{}");
        let envelope = parse(&body).expect("parses");
        assert_eq!(
            envelope.header["event_id"],
            "9ec79c33ec9942ab8353589fcb2e04dc"
        );
        let kinds: Vec<&str> = envelope.items.iter().map(Item::kind).collect();
        assert_eq!(kinds, ["feedback", "attachment", "client_report"]);
        assert_eq!(
            envelope.items[1].payload, b"\x89P\nN\x00",
            "a newline inside is data"
        );
        assert_eq!(
            envelope.items[0].json().expect("object")["contexts"]["feedback"]["message"],
            "hi"
        );
    }

    #[test]
    fn broken_envelopes_are_refused_with_a_reason() {
        for body in [
            &b"not json\n"[..],
            b"{}\n{\"type\":\"attachment\",\"length\":10}\nshort",
            b"{}\n{\"type\":\"x\",\"length\":\"ten\"}\n",
            b"{}\n[1]\n{}",
        ] {
            assert!(
                matches!(parse(body), Err(EnvelopeError::Malformed(_))),
                "{}",
                String::from_utf8_lossy(body)
            );
        }
        assert_eq!(parse(b"{}").expect("an empty envelope").items, []);
    }

    #[test]
    fn gzip_and_deflate_bodies_are_read_within_the_limit() {
        let plain = b"{}\n{\"type\":\"feedback\"}\n{}\n".to_vec();
        let mut gzip = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gzip.write_all(&plain).expect("write");
        let gzip = gzip.finish().expect("gzip");
        let mut deflate =
            flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
        deflate.write_all(&plain).expect("write");
        let deflate = deflate.finish().expect("deflate");
        assert_eq!(decode(&gzip, Some("gzip"), 100).expect("gzip"), plain);
        assert_eq!(
            decode(&deflate, Some("deflate"), 100).expect("deflate"),
            plain
        );
        assert_eq!(decode(&plain, None, 100).expect("plain"), plain);
        assert_eq!(
            decode(&gzip, Some("gzip"), 10),
            Err(EnvelopeError::TooLarge { limit: 10 }),
            "a small body that inflates past the limit"
        );
        assert!(matches!(
            decode(&plain, Some("br"), 100),
            Err(EnvelopeError::Encoding(_))
        ));
        assert!(matches!(
            decode(b"nope", Some("gzip"), 100),
            Err(EnvelopeError::Malformed(_))
        ));
    }
}
