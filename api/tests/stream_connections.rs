//! How a stream process takes connections: a connection whose first request is a stream
//! subscription is answered on a lean path of its own, every other request by the router
//! through hyper. Both must answer alike, and the lean path must notice clients leaving and
//! the server shutting down. Spoken to over raw TCP, to see the bytes on the wire.

mod common;

use bichito::auth::JwtVerifier;
use bichito::bus::Bus;
use bichito::bus::memory::MemoryBus;
use bichito::commands::jwt_args_with_secret;
use bichito::config::StreamArgs;
use bichito::metrics::Metrics;
use bichito::state::StreamState;
use bichito_core::clock::ManualClock;
use bichito_core::events::{EventType, OutboxEvent};
use common::{Backend, JWT_SECRET, TestDatabase, team_token, test_stream_args};
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

struct StreamServer {
    address: String,
    streams: StreamState,
    stop: Option<oneshot::Sender<()>>,
    served: JoinHandle<()>,
    /// Where the process's sessions would be (none are used here).
    _db: TestDatabase,
}

/// `bichito sse` in this process, on the in-process bus, with heartbeats every `heartbeat`.
async fn stream_server(heartbeat: Duration) -> StreamServer {
    let args = StreamArgs {
        sse_heartbeat_interval: heartbeat,
        ..test_stream_args()
    };
    let bus: Arc<dyn Bus> = Arc::new(MemoryBus::new(
        args.sse_queue_size,
        args.replay_capacity,
        args.replay_window,
    ));
    let jwt = JwtVerifier::from_args(&jwt_args_with_secret(JWT_SECRET), None).expect("jwt config");
    let db = TestDatabase::new(Backend::Sqlite).await;
    let grants = Arc::new(bichito::grants::local::LocalGrants::new(db.store().await));
    let streams = StreamState::new(
        bus,
        grants,
        Arc::new(jwt),
        Arc::new(Metrics::new()),
        Arc::new(ManualClock::new(chrono::Utc::now())),
        args,
        bichito::config::CorsArgs::default(),
    );
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind port 0");
    let address = listener.local_addr().expect("address").to_string();
    let (stop, stopped) = oneshot::channel::<()>();
    let served = tokio::spawn(bichito::server::serve_streams(
        listener,
        streams.clone(),
        bichito::config::HttpArgs::default(),
        async {
            let _ = stopped.await;
        },
    ));
    let served = tokio::spawn(async move {
        served.await.expect("joined").expect("served");
    });
    StreamServer {
        address,
        streams,
        stop: Some(stop),
        served,
        _db: db,
    }
}

fn stream_request(team: &str, token: &str, version: &str) -> String {
    format!(
        "GET /api/v1/teams/{team}/stream?token={token} {version}\r\nHost: test\r\nAccept: text/event-stream\r\n\r\n"
    )
}

/// A fresh connection subscribed to `payments`, and what it read up to `hello`.
async fn subscribed(server: &StreamServer) -> (TcpStream, Vec<u8>) {
    let mut socket = TcpStream::connect(&server.address).await.expect("connect");
    socket
        .write_all(stream_request("payments", &team_token(&["payments"]), "HTTP/1.1").as_bytes())
        .await
        .expect("write");
    let mut seen = Vec::new();
    read_until(&mut socket, &mut seen, "event: hello").await;
    (socket, seen)
}

async fn publish(streams: &StreamState, id: i64, team: &str) {
    let event = OutboxEvent {
        id,
        team_id: team.into(),
        event_type: EventType::BugCreated,
        payload: format!("{{\"id\":{id},\"title\":\"t\"}}"),
        created_at: chrono::Utc::now(),
    };
    streams.bus.publish(&event).await.expect("publish");
}

/// Reads from `socket` into `seen` until it holds `needle`; the bytes seen so far.
async fn read_until(socket: &mut TcpStream, seen: &mut Vec<u8>, needle: &str) {
    let mut buffer = [0u8; 4096];
    while !String::from_utf8_lossy(seen).contains(needle) {
        let read = tokio::time::timeout(Duration::from_secs(10), socket.read(&mut buffer))
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "no {needle:?} within 10 s; got {:?}",
                    String::from_utf8_lossy(seen)
                )
            })
            .expect("read");
        assert!(
            read > 0,
            "closed before {needle:?}; got {:?}",
            String::from_utf8_lossy(seen)
        );
        seen.extend_from_slice(&buffer[..read]);
    }
}

async fn read_to_end(socket: &mut TcpStream) -> String {
    let mut seen = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), socket.read_to_end(&mut seen))
        .await
        .expect("closed within 10 s")
        .expect("read");
    String::from_utf8(seen).expect("text")
}

/// (status line, lower-cased headers, body) of one whole response.
fn split_response(text: &str) -> (String, Vec<(String, String)>, String) {
    let (head, body) = text.split_once("\r\n\r\n").expect("a response head");
    let mut lines = head.lines();
    let status = lines.next().expect("status line").to_owned();
    let headers = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.to_ascii_lowercase(), value.trim().to_owned()))
        .collect();
    (status, headers, body.to_owned())
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(header, _)| header == name)
        .map(|(_, value)| value.as_str())
}

/// The body of a chunked response, decoded (the chunks must be well formed).
fn dechunk(mut body: &str) -> String {
    let mut decoded = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let size = usize::from_str_radix(size, 16).expect("chunk size");
        if size == 0 {
            break;
        }
        decoded.push_str(&rest[..size]);
        body = rest[size..]
            .strip_prefix("\r\n")
            .expect("CRLF after a chunk");
    }
    decoded
}

fn open_streams(streams: &StreamState) -> i64 {
    streams
        .metrics
        .render()
        .lines()
        .find_map(|line| line.strip_prefix("bichito_sse_connections "))
        .and_then(|value| value.trim().parse().ok())
        .expect("the bichito_sse_connections gauge")
}

#[tokio::test]
async fn a_first_request_for_the_stream_is_answered_chunked_with_every_stream_header() {
    let server = stream_server(Duration::from_secs(3600)).await;
    let mut socket = TcpStream::connect(&server.address).await.expect("connect");
    // The head arrives in two pieces: the server waits for the rest.
    let request = stream_request("payments", &team_token(&["payments"]), "HTTP/1.1");
    let (first, second) = request.split_at(30);
    socket.write_all(first.as_bytes()).await.expect("write");
    tokio::time::sleep(Duration::from_millis(50)).await;
    socket.write_all(second.as_bytes()).await.expect("write");
    let mut seen = Vec::new();
    read_until(&mut socket, &mut seen, "event: hello").await;
    publish(&server.streams, 1, "payments").await;
    read_until(&mut socket, &mut seen, "event: bug.created").await;
    read_until(&mut socket, &mut seen, "\n\n\r\n").await;

    let text = String::from_utf8(seen).expect("text");
    let (status, headers, body) = split_response(&text);
    assert_eq!(status, "HTTP/1.1 200 OK");
    assert_eq!(header(&headers, "content-type"), Some("text/event-stream"));
    assert_eq!(header(&headers, "cache-control"), Some("no-cache"));
    assert_eq!(header(&headers, "x-accel-buffering"), Some("no"));
    assert_eq!(header(&headers, "transfer-encoding"), Some("chunked"));
    assert!(header(&headers, "date").is_some());
    let events = dechunk(&body);
    let created = events
        .split("\n\n")
        .find(|event| event.contains("event: bug.created"))
        .expect("the published event");
    assert_eq!(
        created,
        "id: 1\nevent: bug.created\ndata: {\"id\":1,\"title\":\"t\"}"
    );
    assert!(events.starts_with("id: 0\nevent: hello\ndata: {\"serverTime\":"));
}

#[tokio::test]
async fn events_published_together_arrive_whole_and_in_order() {
    let server = stream_server(Duration::from_secs(3600)).await;
    let (mut socket, mut seen) = subscribed(&server).await;
    // Published without waiting for the stream (fewer than its 64-event queue): several are
    // ready at once and go in one write.
    for id in 1..=60 {
        publish(&server.streams, id, "payments").await;
    }
    read_until(&mut socket, &mut seen, "\"id\":60,").await;
    read_until(&mut socket, &mut seen, "\n\n\r\n").await;

    let text = String::from_utf8(seen).expect("text");
    let (_, _, body) = split_response(&text);
    let created: Vec<String> = dechunk(&body)
        .split("\n\n")
        .filter(|event| event.contains("event: bug.created"))
        .map(str::to_owned)
        .collect();
    let expected: Vec<String> = (1..=60)
        .map(|id| format!("id: {id}\nevent: bug.created\ndata: {{\"id\":{id},\"title\":\"t\"}}"))
        .collect();
    assert_eq!(created, expected);
}

#[tokio::test]
async fn a_stream_after_another_request_on_the_same_connection_is_served_by_the_router() {
    let server = stream_server(Duration::from_secs(3600)).await;
    let mut socket = TcpStream::connect(&server.address).await.expect("connect");
    socket
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: test\r\n\r\n")
        .await
        .expect("write");
    let mut seen = Vec::new();
    read_until(&mut socket, &mut seen, "\r\n\r\n").await;
    assert!(String::from_utf8_lossy(&seen).starts_with("HTTP/1.1 200"));
    // Whatever body /healthz has, wait for it, then ask for the stream.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut rest = [0u8; 1024];
    let _ = tokio::time::timeout(Duration::from_millis(100), socket.read(&mut rest)).await;
    socket
        .write_all(stream_request("payments", &team_token(&["payments"]), "HTTP/1.1").as_bytes())
        .await
        .expect("write");
    let mut stream = Vec::new();
    read_until(&mut socket, &mut stream, "event: hello").await;
    let text = String::from_utf8(stream).expect("text");
    let (status, headers, _) = split_response(&text);
    assert_eq!(status, "HTTP/1.1 200 OK");
    assert_eq!(header(&headers, "content-type"), Some("text/event-stream"));
    assert_eq!(header(&headers, "cache-control"), Some("no-cache"));
}

#[tokio::test]
async fn refusals_on_a_first_request_are_the_routers_json_errors() {
    let server = stream_server(Duration::from_secs(3600)).await;
    for (request, status) in [
        (stream_request("payments", "not-a-jwt", "HTTP/1.1"), 401),
        (
            stream_request("payments", &team_token(&["marketing"]), "HTTP/1.1"),
            404,
        ),
        (
            format!(
                "GET /api/v1/teams/payments/stream?token={}&types=bug.exploded HTTP/1.1\r\nHost: test\r\n\r\n",
                team_token(&["payments"])
            ),
            400,
        ),
    ] {
        // On a fresh connection: the lean path answers.
        let mut fresh = TcpStream::connect(&server.address).await.expect("connect");
        fresh.write_all(request.as_bytes()).await.expect("write");
        let (lean_status, lean_headers, lean_body) = split_response(&read_to_end(&mut fresh).await);
        // After another request on the same connection: the router answers.
        let mut reused = TcpStream::connect(&server.address).await.expect("connect");
        reused
            .write_all(format!("GET /healthz HTTP/1.1\r\nHost: test\r\n\r\n{request}").as_bytes())
            .await
            .expect("write");
        let mut seen = Vec::new();
        let routed = loop {
            read_until(&mut reused, &mut seen, "\r\n\r\n").await;
            let text = String::from_utf8_lossy(&seen).into_owned();
            let second = text.match_indices("HTTP/1.1 ").nth(1).map(|(at, _)| at);
            if let Some(at) = second {
                let (_, headers, body) = split_response(&text[at..]);
                let length: usize = header(&headers, "content-length")
                    .and_then(|length| length.parse().ok())
                    .expect("content-length");
                if body.len() >= length {
                    break text[at..].to_owned();
                }
            }
            let mut buffer = [0u8; 1024];
            let read = tokio::time::timeout(Duration::from_secs(10), reused.read(&mut buffer))
                .await
                .expect("in time")
                .expect("read");
            seen.extend_from_slice(&buffer[..read]);
        };
        let (routed_status, routed_headers, routed_body) = split_response(&routed);

        assert!(
            lean_status.starts_with(&format!("HTTP/1.1 {status} ")),
            "{lean_status}"
        );
        assert_eq!(lean_status, routed_status);
        assert_eq!(
            header(&lean_headers, "content-type"),
            Some("application/json")
        );
        assert_eq!(
            header(&lean_headers, "content-type"),
            header(&routed_headers, "content-type")
        );
        assert_eq!(header(&lean_headers, "connection"), Some("close"));
        let lean: Value = serde_json::from_str(&lean_body).expect("JSON error");
        let routed: Value = serde_json::from_str(&routed_body).expect("JSON error");
        assert_eq!(lean, routed);
        assert!(
            lean["error"].is_object() || lean["error"].is_string(),
            "{lean}"
        );
    }
}

#[tokio::test]
async fn other_methods_and_http_1_0_are_left_to_the_router() {
    let server = stream_server(Duration::from_secs(3600)).await;
    let path = format!(
        "/api/v1/teams/payments/stream?token={}",
        team_token(&["payments"])
    );
    let mut post = TcpStream::connect(&server.address).await.expect("connect");
    post.write_all(
        format!("POST {path} HTTP/1.1\r\nHost: test\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{{}}")
            .as_bytes(),
    )
    .await
    .expect("write");
    let (status, headers, body) = split_response(&read_to_end(&mut post).await);
    assert!(status.starts_with("HTTP/1.1 405"), "{status}");
    assert_eq!(header(&headers, "content-type"), Some("application/json"));
    assert!(serde_json::from_str::<Value>(&body).is_ok(), "{body}");

    let mut old = TcpStream::connect(&server.address).await.expect("connect");
    old.write_all(stream_request("payments", &team_token(&["payments"]), "HTTP/1.0").as_bytes())
        .await
        .expect("write");
    let mut seen = Vec::new();
    read_until(&mut old, &mut seen, "event: hello").await;
    let text = String::from_utf8(seen).expect("text");
    let (status, headers, _) = split_response(&text);
    assert!(status.starts_with("HTTP/1."), "{status}");
    assert!(status.ends_with("200 OK"), "{status}");
    assert_eq!(
        header(&headers, "transfer-encoding"),
        None,
        "no chunks for HTTP/1.0"
    );
}

#[tokio::test]
async fn a_client_that_hangs_up_is_unsubscribed_without_waiting_for_a_heartbeat() {
    // With an hour between heartbeats, only reading the socket can notice the client left.
    let server = stream_server(Duration::from_secs(3600)).await;
    let (socket, _) = subscribed(&server).await;
    assert_eq!(open_streams(&server.streams), 1);
    drop(socket);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while open_streams(&server.streams) != 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the stream is still open 5 s after its client left"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(server.streams.bus.subscribed_teams(), 0);
}

#[tokio::test]
async fn shutdown_ends_streams_with_the_last_chunk_and_then_returns() {
    let mut server = stream_server(Duration::from_secs(3600)).await;
    let (mut socket, seen) = subscribed(&server).await;
    let _ = server.stop.take().expect("running").send(());
    let rest = read_to_end(&mut socket).await;
    let text = String::from_utf8(seen).expect("text") + &rest;
    assert!(
        text.ends_with("\n\n\r\n0\r\n\r\n"),
        "the body ends with the last chunk: {text:?}"
    );
    let (_, _, body) = split_response(&text);
    assert!(dechunk(&body).starts_with("id: 0\nevent: hello\n"));
    tokio::time::timeout(Duration::from_secs(5), &mut server.served)
        .await
        .expect("serve_streams returns once its connections are closed")
        .expect("joined");
    assert!(
        TcpStream::connect(&server.address).await.is_err(),
        "no longer accepting"
    );
}
