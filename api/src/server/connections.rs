//! Accepting connections: every process reads each connection's first request head itself,
//! within the header-read timeout, and answers stream subscriptions on a lean path (where it
//! serves streams: `serve`, `dev`, `sse`); the rest goes to the router through hyper.
//!
//! Timeouts: a new connection must deliver its first head within `HTTP_HEADER_READ_TIMEOUT`
//! (408 otherwise, or just closed when it sent nothing); hyper closes a kept-alive connection
//! whose next head has not arrived within `HTTP_IDLE_TIMEOUT`. On shutdown, requests in flight
//! get `SHUTDOWN_TIMEOUT`; connections still open then are dropped (a stream whose client
//! stopped reading goes with the process, which then exits).
//!
//! Errors hyper answers by itself (400, 414, 431, with an empty body) are rewritten into the
//! API's JSON error shape on their way out (see [`HyperErrors`]).
//!
//! Why not hyper for everything: hyper keeps an 8 KiB read buffer and an 8 KiB header write
//! buffer for each connection for as long as it lives, which made up most of what an idle
//! SSE connection cost. A stream subscription is the last request on its connection, so this
//! reads a connection's first request head itself (with httparse, hyper's own parser) and,
//! when it is a GET of the team stream, hands it to the stream's lean path
//! (`stream/lean.rs`): once the head is written only the subscription, a timer and the
//! socket stay. Everything else (every other route, another
//! method, HTTP/1.0, a request with a body, a head that does not parse) goes to the router
//! through hyper, with the bytes already read replayed in front of the socket.

use super::hyper_errors::{HyperErrors, LINGER};
use crate::config::HttpArgs;
use crate::error::ApiError;
use crate::http::cors::add_dashboard_headers;
use crate::state::StreamState;
use crate::stream::lean::{self, StreamRequest};
use axum::Router;
use axum::response::IntoResponse;
use http_body_util::BodyExt;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use std::future::Future;
use std::io;
use std::pin::{Pin, pin};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// The largest first request head read (431, or 414 when the request line alone is longer).
const MAX_HEAD: usize = 64 * 1024;
/// Headers a stream request may have; more goes to hyper (which allows 100, then 431).
const MAX_HEADERS: usize = 64;
/// Once the shutdown timeout has dropped the connections, how long their tasks get to end.
const DROP_GRACE: Duration = Duration::from_secs(1);

/// Serves `router` (and on a lean path the team stream of `streams`, when given) until
/// `shutdown` resolves; then ends the streams, lets other requests in flight finish, and
/// returns once every connection is closed or the shutdown timeout is over.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    streams: Option<StreamState>,
    http: HttpArgs,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let connections = TaskTracker::new();
    let closing = CancellationToken::new();
    // Cancelled when the shutdown timeout is over: connections served by hyper end at once.
    let dropping = CancellationToken::new();
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
                let served = connection(
                    socket,
                    Served {
                        router: router.clone(),
                        streams: streams.clone(),
                        http: http.clone(),
                        closing: closing.clone(),
                        dropping: dropping.clone(),
                        connections: connections.clone(),
                    },
                );
                connections.spawn(served);
            }
            Err(err) => accept_failed(err).await,
        }
    }
    drop(listener);
    // Streams never end by themselves: close them so the graceful shutdown can finish.
    if let Some(streams) = &streams {
        streams.bus.close_streams();
        streams.shutdown.cancel();
    }
    closing.cancel();
    connections.close();
    if tokio::time::timeout(http.shutdown_timeout, connections.wait())
        .await
        .is_err()
    {
        tracing::warn!(
            open = connections.len(),
            timeout = ?http.shutdown_timeout,
            "shutdown timeout: closing the connections still open"
        );
        dropping.cancel();
        let _ = tokio::time::timeout(DROP_GRACE, connections.wait()).await;
    }
}

/// What every connection of a server shares.
struct Served {
    router: Router,
    streams: Option<StreamState>,
    http: HttpArgs,
    closing: CancellationToken,
    dropping: CancellationToken,
    connections: TaskTracker,
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

async fn connection(mut socket: TcpStream, served: Served) {
    let mut head = Vec::new();
    let lean = served.streams.is_some();
    let first = tokio::select! {
        () = served.closing.cancelled() => return,
        first = tokio::time::timeout(
            served.http.http_header_read_timeout,
            read_first_request(&mut socket, &mut head, lean),
        ) => first,
    };
    match first {
        Ok(Ok(First::Stream(request))) => {
            drop(head);
            let Some(streams) = served.streams else {
                return;
            };
            let cors = streams.dashboard_origin(&request.headers);
            // Opening (auth, replay) takes a large state that a long-lived task would keep:
            // the stream is written by a task of its own, as small as its writing state.
            match lean::open(request, &streams).await {
                Ok(team_stream) => {
                    let head = lean::head(cors);
                    // Not bound to `dropping`: a select around it would keep a second copy of
                    // its state (1 KiB per idle stream). Streams end when the bus closes them; a
                    // client that stopped reading is cut off when the process exits.
                    served
                        .connections
                        .spawn(lean::write(socket, head, team_stream));
                }
                Err(err) => {
                    let mut response = err.into_response();
                    add_dashboard_headers(response.headers_mut(), cors);
                    let _ = write_response(&mut socket, response).await;
                }
            }
        }
        // Boxed: hyper's connection state would otherwise sit in every stream's task too.
        Ok(Ok(First::Other)) => Box::pin(serve_with_hyper(socket, head, served)).await,
        Ok(Ok(First::Refused(err))) => {
            let _ = write_response(&mut socket, err.into_response()).await;
        }
        Ok(Err(_)) => {}
        // A client that sent nothing at all (a browser's spare connection) is just closed.
        Err(_) if head.is_empty() => {}
        Err(_) => {
            let _ = write_response(&mut socket, ApiError::RequestTimeout.into_response()).await;
        }
    }
}

/// What a connection's first request is.
enum First {
    Stream(StreamRequest),
    Other,
    /// A head this server does not read: answered with the error, then closed.
    Refused(ApiError),
}

/// Reads until the first request head is complete; a stream subscription only when `lean`.
async fn read_first_request(
    socket: &mut TcpStream,
    head: &mut Vec<u8>,
    lean: bool,
) -> io::Result<First> {
    use tokio::io::AsyncReadExt;
    loop {
        if head.len() >= MAX_HEAD {
            let request_line_done = head.windows(2).any(|pair| pair == b"\r\n");
            return Ok(First::Refused(if request_line_done {
                ApiError::HeadersTooLarge
            } else {
                ApiError::UriTooLong
            }));
        }
        head.reserve(1024);
        if socket.read_buf(head).await? == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut request = httparse::Request::new(&mut headers);
        match request.parse(head) {
            Ok(httparse::Status::Complete(_)) if lean => {
                return Ok(lean::request(&request).map_or(First::Other, First::Stream));
            }
            Ok(httparse::Status::Complete(_)) => return Ok(First::Other),
            Ok(httparse::Status::Partial) => {}
            // More headers than a stream request has: hyper reads the rest of it.
            Err(httparse::Error::TooManyHeaders) => {
                if head.windows(4).any(|end| end == b"\r\n\r\n") {
                    return Ok(First::Other);
                }
            }
            Err(_) => return Ok(First::Refused(ApiError::MalformedRequest)),
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
    socket.shutdown().await?;
    linger(socket).await;
    Ok(())
}

/// After an error answer, reads and drops what the client is still sending for a moment:
/// closing a socket with unread bytes resets it, and a reset can destroy the answer before the
/// client reads it.
async fn linger(socket: &mut TcpStream) {
    use tokio::io::AsyncReadExt;
    let mut ignored = [0u8; 4096];
    let _ = tokio::time::timeout(LINGER, async {
        while let Ok(read) = socket.read(&mut ignored).await
            && read > 0
        {}
    })
    .await;
}

/// The connection through hyper and the router, as `axum::serve` would, with `read` (the
/// bytes already taken from the socket) read first.
async fn serve_with_hyper(socket: TcpStream, read: Vec<u8>, served: Served) {
    let io = TokioIo::new(HyperErrors::new(Rewind {
        read,
        at: 0,
        socket,
    }));
    // hyper's header timer runs from the end of one response to the end of the next head, so
    // it bounds the keep-alive idle time and a slow head alike.
    let connection = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(served.http.http_idle_timeout)
        // The same bound on a head as the first request's: hyper answers 431 beyond it.
        .max_buf_size(MAX_HEAD)
        .serve_connection(io, TowerToHyperService::new(served.router))
        .with_upgrades();
    let mut connection = pin!(connection);
    tokio::select! {
        result = connection.as_mut() => {
            if let Err(err) = result {
                tracing::debug!(error = %err, "connection ended with an error");
            }
            return;
        }
        () = served.closing.cancelled() => connection.as_mut().graceful_shutdown(),
    }
    tokio::select! {
        result = connection => {
            if let Err(err) = result {
                tracing::debug!(error = %err, "connection ended with an error");
            }
        }
        // The shutdown timeout is over: the socket goes with the connection.
        () = served.dropping.cancelled() => {}
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
