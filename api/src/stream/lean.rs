//! The stream's lean path: a plain HTTP/1.1 GET of [`super::ROUTE`], read from the socket
//! by the server itself (see `server/connections.rs`), opened here and written here as a
//! chunked body, without hyper: once the head is written, only the subscription, a timer and
//! the socket stay.
//!
//! Each write is one chunk holding every frame ready at that moment (up to [`WRITE_BATCH`]
//! bytes), sent with one vectored write of the chunk's size line, the frames as every
//! subscriber shares them, and the chunk's end: nothing of a frame is copied.

use super::{ROUTE, TeamStream, sse};
use crate::error::ApiError;
use crate::http::cors::add_dashboard_headers;
use crate::state::StreamState;
use axum::body::Bytes;
use axum::http::{HeaderMap, HeaderName, HeaderValue};
use std::collections::HashMap;
use std::io::{self, IoSlice};
use std::pin::pin;
use std::time::Instant;
use tokio::net::TcpStream;

/// Bytes of frames written in one go when several are ready.
const WRITE_BATCH: usize = 16 * 1024;
/// Frames written in one go at the most (each is one slice of a vectored write).
const WRITE_FRAMES: usize = 64;

/// A GET of the team stream, as [`super::open`] takes it.
pub struct StreamRequest {
    path: String,
    team_id: String,
    pub headers: HeaderMap,
    params: HashMap<String, String>,
}

/// The request as a stream subscription, when it is a plain HTTP/1.1 GET of the stream route.
pub fn request(request: &httparse::Request<'_, '_>) -> Option<StreamRequest> {
    if request.method != Some("GET") || request.version != Some(1) {
        return None;
    }
    let target = request.path?;
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let team_id = percent_encoding::percent_decode_str(super::team_in_path(path)?)
        .decode_utf8()
        .ok()?
        .into_owned();
    let mut headers = HeaderMap::with_capacity(request.headers.len());
    for header in request.headers.iter() {
        let name = HeaderName::from_bytes(header.name.as_bytes()).ok()?;
        // A body, or a switch of protocol, is hyper's to handle.
        let body = (name == "content-length" && header.value != b"0")
            || name == "transfer-encoding"
            || name == "upgrade"
            || name == "expect";
        if body {
            return None;
        }
        headers.append(name, HeaderValue::from_bytes(header.value).ok()?);
    }
    let params = form_urlencoded::parse(query.as_bytes())
        .into_owned()
        .collect();
    Some(StreamRequest {
        path: path.to_owned(),
        team_id,
        headers,
        params,
    })
}

/// Opens the requested stream, counted in the request metrics as the router would.
pub async fn open(request: StreamRequest, streams: &StreamState) -> Result<TeamStream, ApiError> {
    let started = Instant::now();
    let opened = super::open(streams, &request.team_id, &request.headers, &request.params).await;
    let status = opened
        .as_ref()
        .map_or_else(|err| err.status().as_u16(), |_| 200);
    streams
        .metrics
        .request_done("GET", ROUTE, &request.path, status, started.elapsed());
    opened
}

/// The head of a stream's response, with the CORS headers of a dashboard origin.
pub fn head(cors: Option<HeaderValue>) -> String {
    let mut head = String::from("HTTP/1.1 200 OK\r\n");
    for (name, value) in sse::RESPONSE_HEADERS {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    let mut headers = HeaderMap::new();
    add_dashboard_headers(&mut headers, cors);
    for (name, value) in &headers {
        if let Ok(value) = value.to_str() {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
    }
    head.push_str(&format!(
        "transfer-encoding: chunked\r\ndate: {}\r\n\r\n",
        httpdate::fmt_http_date(std::time::SystemTime::now())
    ));
    head
}

/// Writes the response `head`, then the stream's frames until the stream ends or the client
/// goes away.
pub async fn write(socket: TcpStream, head: String, mut team_stream: TeamStream) {
    if write_all(&socket, &mut [IoSlice::new(head.as_bytes())])
        .await
        .is_err()
    {
        return;
    }
    drop(head);
    // One watch for the client's side for the whole stream, not one per frame.
    let mut gone = pin!(client_gone(&socket));
    loop {
        let next = tokio::select! {
            frame = team_stream.next_frame() => frame,
            () = &mut gone => return,
        };
        let Some(frame) = next else {
            // The stream ended (its authorization did, or the server is shutting down): end
            // the body properly.
            let _ = write_all(&socket, &mut [IoSlice::new(b"0\r\n\r\n")]).await;
            return;
        };
        let written = match team_stream.ready_frame() {
            // The usual case: one event.
            None => write_chunk(&socket, &[frame]).await,
            // Whatever else is ready goes in the same chunk.
            Some(second) => {
                let mut frames = vec![frame, second];
                let mut size: usize = frames.iter().map(Bytes::len).sum();
                while size < WRITE_BATCH && frames.len() < WRITE_FRAMES {
                    let Some(more) = team_stream.ready_frame() else {
                        break;
                    };
                    size += more.len();
                    frames.push(more);
                }
                write_chunk(&socket, &frames).await
            }
        };
        if written.is_err() {
            return;
        }
    }
}

/// Writes `frames` as one chunk of a chunked body: size line, frames, CRLF.
async fn write_chunk(socket: &TcpStream, frames: &[Bytes]) -> io::Result<()> {
    let mut size_line = [0u8; 18];
    let size_line = chunk_size_line(frames.iter().map(Bytes::len).sum(), &mut size_line);
    if let [frame] = frames {
        let mut slices = [
            IoSlice::new(size_line),
            IoSlice::new(frame),
            IoSlice::new(b"\r\n"),
        ];
        return write_all(socket, &mut slices).await;
    }
    let mut slices = Vec::with_capacity(frames.len() + 2);
    slices.push(IoSlice::new(size_line));
    slices.extend(frames.iter().map(|frame| IoSlice::new(frame)));
    slices.push(IoSlice::new(b"\r\n"));
    write_all(socket, &mut slices).await
}

/// `size` in hex and CRLF, written into `buf`: a chunk's size line.
fn chunk_size_line(size: usize, buf: &mut [u8; 18]) -> &[u8] {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut end = buf.len() - 2;
    buf[end..].copy_from_slice(b"\r\n");
    let mut rest = size;
    loop {
        end -= 1;
        buf[end] = HEX[rest % 16];
        rest /= 16;
        if rest == 0 {
            break;
        }
    }
    &buf[end..]
}

/// Writes all of `slices`, trying at once and waiting only when the socket is full. Takes the
/// socket by shared reference so that the client's side can be watched at the same time.
async fn write_all(socket: &TcpStream, mut slices: &mut [IoSlice<'_>]) -> io::Result<()> {
    while !slices.is_empty() {
        match socket.try_write_vectored(slices) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(written) => IoSlice::advance_slices(&mut slices, written),
            Err(err) if err.kind() == io::ErrorKind::WouldBlock => socket.writable().await?,
            Err(err) => return Err(err),
        }
    }
    Ok(())
}

/// Resolves when the client closes its side (a stream's client has nothing more to send, so
/// anything it does send is read, a few bytes at a time, and ignored: the buffer is part of
/// every stream's state).
async fn client_gone(socket: &TcpStream) {
    let mut ignored = [0u8; 8];
    loop {
        if socket.readable().await.is_err() {
            return;
        }
        match socket.try_read(&mut ignored) {
            Ok(0) => return,
            Ok(_) => {}
            Err(err) if err.kind() == io::ErrorKind::WouldBlock => {}
            Err(_) => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chunk_size_line_is_the_size_in_hex_and_crlf() {
        let mut buf = [0u8; 18];
        assert_eq!(chunk_size_line(0, &mut buf), b"0\r\n");
        assert_eq!(chunk_size_line(13, &mut buf), b"d\r\n");
        assert_eq!(chunk_size_line(300, &mut buf), b"12c\r\n");
        assert_eq!(
            chunk_size_line(usize::MAX, &mut buf),
            b"ffffffffffffffff\r\n"
        );
    }
}
