//! Accepting connections in processes that stream (`serve`, `dev`, `sse`).
//!
//! Why not hyper for everything: hyper keeps an 8 KiB read buffer and an 8 KiB header write
//! buffer for each connection for as long as it lives, which made up most of what an idle
//! SSE connection cost. A stream subscription is the last request on its connection, so this
//! reads a connection's first request head itself (with httparse, hyper's own parser) and,
//! when it is a GET of the team stream, answers it here: once the head is written only the
//! subscription, a timer and the socket stay. Everything else (every other route, another
//! method, HTTP/1.0, a request with a body, a head that does not parse) goes to the router
//! through hyper, with the bytes already read replayed in front of the socket.

use crate::http::stream::{self, ROUTE, TeamStream};
use crate::sse;
use crate::state::StreamState;
use axum::Router;
use axum::http::{HeaderMap, HeaderName, HeaderValue};
use axum::response::IntoResponse;
use http_body_util::BodyExt;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::pin::{Pin, pin};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// A first request head longer than this goes to hyper, which refuses it.
const MAX_HEAD: usize = 16 * 1024;
/// Headers a stream request may have; more goes to hyper.
const MAX_HEADERS: usize = 64;
/// Frames written to a stream in one go when several are ready.
const WRITE_BATCH: usize = 16 * 1024;

/// Serves `router` (and the team stream of `streams` on the lean path) until `shutdown`
/// resolves; then ends the streams, lets other requests in flight finish, and returns once
/// every connection is closed.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    streams: StreamState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let connections = TaskTracker::new();
    let closing = CancellationToken::new();
    let mut shutdown = pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((socket, _)) => {
                // Events are small writes that must leave at once.
                let _ = socket.set_nodelay(true);
                connections.spawn(connection(
                    socket,
                    router.clone(),
                    streams.clone(),
                    closing.clone(),
                    connections.clone(),
                ));
            }
            Err(err) => accept_failed(err).await,
        }
    }
    drop(listener);
    // Streams never end by themselves: close them so the graceful shutdown can finish.
    streams.bus.close_streams();
    streams.shutdown.cancel();
    closing.cancel();
    connections.close();
    connections.wait().await;
}

async fn accept_failed(err: io::Error) {
    if matches!(
        err.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    ) {
        return;
    }
    // Most likely out of file descriptors: wait for some connections to close.
    tracing::error!(error = %err, "accepting a connection failed");
    tokio::time::sleep(Duration::from_secs(1)).await;
}

async fn connection(
    mut socket: TcpStream,
    router: Router,
    streams: StreamState,
    closing: CancellationToken,
    connections: TaskTracker,
) {
    let mut head = Vec::new();
    let first = tokio::select! {
        () = closing.cancelled() => return,
        first = read_first_request(&mut socket, &mut head) => first,
    };
    match first {
        Ok(First::Stream(request)) => {
            drop(head);
            // Opening (auth, replay) takes a large state that a long-lived task would keep:
            // the stream is written by a task of its own, as small as its writing state.
            match open_stream(request, &streams).await {
                Ok(team_stream) => {
                    connections.spawn(write_stream(socket, team_stream));
                }
                Err(err) => {
                    let _ = write_response(&mut socket, err.into_response()).await;
                }
            }
        }
        // Boxed: hyper's connection state would otherwise sit in every stream's task too.
        Ok(First::Other) => Box::pin(serve_with_hyper(socket, head, router, closing)).await,
        Err(_) => {}
    }
}

/// What a connection's first request is.
enum First {
    Stream(StreamRequest),
    Other,
}

/// A GET of the team stream, as `http::stream::open` takes it.
struct StreamRequest {
    path: String,
    team_id: String,
    headers: HeaderMap,
    params: HashMap<String, String>,
}

/// Reads until the first request head is complete (or cannot be a stream request).
async fn read_first_request(socket: &mut TcpStream, head: &mut Vec<u8>) -> io::Result<First> {
    use tokio::io::AsyncReadExt;
    loop {
        if head.len() >= MAX_HEAD {
            return Ok(First::Other);
        }
        head.reserve(1024);
        if socket.read_buf(head).await? == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut request = httparse::Request::new(&mut headers);
        match request.parse(head) {
            Ok(httparse::Status::Complete(_)) => {
                return Ok(stream_request(&request).map_or(First::Other, First::Stream));
            }
            Ok(httparse::Status::Partial) => {}
            Err(_) => return Ok(First::Other),
        }
    }
}

/// The request as a stream subscription, when it is a plain HTTP/1.1 GET of the stream route.
fn stream_request(request: &httparse::Request<'_, '_>) -> Option<StreamRequest> {
    if request.method != Some("GET") || request.version != Some(1) {
        return None;
    }
    let target = request.path?;
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let team = path
        .strip_prefix("/api/v1/teams/")?
        .strip_suffix("/stream")?;
    if team.is_empty() || team.contains('/') {
        return None;
    }
    let team_id = percent_encoding::percent_decode_str(team)
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
async fn open_stream(
    request: StreamRequest,
    streams: &StreamState,
) -> Result<TeamStream, crate::error::ApiError> {
    let started = Instant::now();
    let opened = stream::open(streams, &request.team_id, &request.headers, &request.params).await;
    let status = opened
        .as_ref()
        .map_or_else(|err| err.status().as_u16(), |_| 200);
    streams
        .metrics
        .request_done("GET", ROUTE, &request.path, status, started.elapsed());
    opened
}

/// Writes the stream's chunks until the stream ends or the client goes away.
async fn write_stream(socket: TcpStream, mut team_stream: TeamStream) {
    let mut head = String::from("HTTP/1.1 200 OK\r\n");
    for (name, value) in sse::RESPONSE_HEADERS {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str(&format!(
        "transfer-encoding: chunked\r\ndate: {}\r\n\r\n",
        httpdate::fmt_http_date(std::time::SystemTime::now())
    ));
    if write_all(&socket, head.as_bytes()).await.is_err() {
        return;
    }
    drop(head);
    // One watch for the client's side for the whole stream, not one per frame.
    let mut gone = pin!(client_gone(&socket));
    loop {
        let next = tokio::select! {
            chunk = team_stream.next_chunk() => chunk,
            () = &mut gone => return,
        };
        let Some(chunk) = next else {
            // The server is shutting down: end the body properly.
            let _ = write_all(&socket, b"0\r\n\r\n").await;
            return;
        };
        let written = match team_stream.ready_chunk() {
            // The usual case: one event, written from the bytes every subscriber shares.
            None => write_all(&socket, &chunk).await,
            // Whatever else is ready goes in the same write.
            Some(second) => {
                let mut out = Vec::with_capacity(chunk.len() + second.len());
                out.extend_from_slice(&chunk);
                out.extend_from_slice(&second);
                while out.len() < WRITE_BATCH {
                    match team_stream.ready_chunk() {
                        Some(more) => out.extend_from_slice(&more),
                        None => break,
                    }
                }
                write_all(&socket, &out).await
            }
        };
        if written.is_err() {
            return;
        }
    }
}

/// Writes all of `bytes`, trying at once and waiting only when the socket is full. Takes the
/// socket by shared reference so that the client's side can be watched at the same time.
async fn write_all(socket: &TcpStream, mut bytes: &[u8]) -> io::Result<()> {
    while !bytes.is_empty() {
        match socket.try_write(bytes) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(written) => bytes = &bytes[written..],
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

/// Writes a whole (error) response and closes the connection.
async fn write_response(
    socket: &mut TcpStream,
    response: axum::response::Response,
) -> io::Result<()> {
    let (parts, body) = response.into_parts();
    let body = body
        .collect()
        .await
        .map(|collected| collected.to_bytes())
        .unwrap_or_default();
    let mut out = format!(
        "HTTP/1.1 {} {}\r\n",
        parts.status.as_u16(),
        parts.status.canonical_reason().unwrap_or("")
    )
    .into_bytes();
    for (name, value) in &parts.headers {
        if name == "content-length" || name == "connection" {
            continue;
        }
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(
        format!(
            "content-length: {}\r\nconnection: close\r\ndate: {}\r\n\r\n",
            body.len(),
            httpdate::fmt_http_date(std::time::SystemTime::now())
        )
        .as_bytes(),
    );
    out.extend_from_slice(&body);
    socket.write_all(&out).await?;
    socket.shutdown().await
}

/// The connection through hyper and the router, as `axum::serve` would, with `read` (the
/// bytes already taken from the socket) read first.
async fn serve_with_hyper(
    socket: TcpStream,
    read: Vec<u8>,
    router: Router,
    closing: CancellationToken,
) {
    let io = TokioIo::new(Rewind {
        read,
        at: 0,
        socket,
    });
    let connection = hyper::server::conn::http1::Builder::new()
        .serve_connection(io, TowerToHyperService::new(router))
        .with_upgrades();
    let mut connection = pin!(connection);
    tokio::select! {
        result = connection.as_mut() => {
            if let Err(err) = result {
                tracing::debug!(error = %err, "connection ended with an error");
            }
            return;
        }
        () = closing.cancelled() => connection.as_mut().graceful_shutdown(),
    }
    if let Err(err) = connection.await {
        tracing::debug!(error = %err, "connection ended with an error");
    }
}

/// A socket with bytes already read from it put back in front.
struct Rewind {
    read: Vec<u8>,
    at: usize,
    socket: TcpStream,
}

impl AsyncRead for Rewind {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.at < self.read.len() {
            let take = buf.remaining().min(self.read.len() - self.at);
            buf.put_slice(&self.read[self.at..self.at + take]);
            self.at += take;
            if self.at == self.read.len() {
                self.read = Vec::new();
                self.at = 0;
            }
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.socket).poll_read(cx, buf)
    }
}

impl AsyncWrite for Rewind {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.socket).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.socket).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.socket.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.socket).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.socket).poll_shutdown(cx)
    }
}
