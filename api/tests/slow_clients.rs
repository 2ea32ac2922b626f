//! Clients that take their time cannot hold a server: half-sent request heads are closed after
//! `HTTP_HEADER_READ_TIMEOUT`, idle kept-alive connections after `HTTP_IDLE_TIMEOUT`, and
//! SIGTERM ends the process within `SHUTDOWN_TIMEOUT` whatever its clients do. Real `bichito
//! api` and `bichito sse` processes, with a file descriptor limit of their own.

mod common;

use common::process::*;
use common::*;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The environment of an `api` process on `db`.
fn api_env(db: &TestDatabase) -> Vec<(&'static str, String)> {
    vec![
        ("DATABASE_URL", db.url.clone()),
        ("JWT_SECRET", JWT_SECRET.to_owned()),
    ]
}

/// The environment of an `sse` process on a NATS stream of the test's own.
fn sse_env(nats: &bichito::bus::nats::NatsSettings) -> Vec<(&'static str, String)> {
    vec![
        ("SSE_BACKEND", "nats".to_owned()),
        ("NATS_URL", nats.url.clone()),
        ("NATS_STREAM", nats.stream_name.clone()),
        ("NATS_SUBJECT_PREFIX", nats.subject_prefix.clone()),
        ("JWT_SECRET", JWT_SECRET.to_owned()),
    ]
}

fn with(
    mut env: Vec<(&'static str, String)>,
    more: &[(&'static str, &str)],
) -> Vec<(&'static str, String)> {
    env.extend(
        more.iter()
            .map(|(name, value)| (*name, (*value).to_owned())),
    );
    env
}

fn borrowed<'a>(env: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    env.iter()
        .map(|(name, value)| (*name, value.as_str()))
        .collect()
}

/// Opens `count` connections that each send half a request head and stop.
async fn half_heads(address: &str, count: usize) -> Vec<TcpStream> {
    let mut sockets = Vec::with_capacity(count);
    for _ in 0..count {
        let mut socket = TcpStream::connect(address).await.expect("connect");
        socket
            .write_all(b"GET /healthz HTTP/1.1\r\nhost: slow\r\n")
            .await
            .expect("write half a head");
        sockets.push(socket);
    }
    sockets
}

/// Reads until the server closes `socket`; what it sent, or `None` if it did not close
/// within `limit`.
async fn closed_within(socket: &mut TcpStream, limit: Duration) -> Option<String> {
    let mut seen = Vec::new();
    let read = tokio::time::timeout(limit, socket.read_to_end(&mut seen)).await;
    match read {
        Ok(_) => Some(String::from_utf8_lossy(&seen).into_owned()),
        Err(_) => None,
    }
}

/// `GET /healthz` over a new connection, retried until `deadline` (the process may be out of
/// file descriptors for a moment and not accept yet).
async fn healthz_until(base: &str, deadline: Instant) -> reqwest::StatusCode {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .pool_max_idle_per_host(0)
        .build()
        .expect("client");
    loop {
        match client.get(format!("{base}/healthz")).send().await {
            Ok(response) => return response.status(),
            Err(err) => assert!(Instant::now() < deadline, "never served: {err}"),
        }
    }
}

/// 300 half-sent heads against a process allowed 200 open files: without a header timeout they
/// would hold every descriptor for good; with one, each is answered 408 and closed, and the
/// server serves others again.
async fn half_sent_heads_are_closed_and_the_server_serves_others(process: Process) {
    let mut sockets = half_heads(process.address(), 300).await;
    let started = Instant::now();
    let status = healthz_until(&process.base, started + Duration::from_secs(20)).await;
    assert_eq!(status, 200);
    for socket in &mut sockets {
        let answered = closed_within(socket, Duration::from_secs(20))
            .await
            .expect("a half-sent head is closed by the server");
        assert!(
            answered.is_empty() || answered.starts_with("HTTP/1.1 408 "),
            "408 or nothing: {answered:?}"
        );
    }
    assert!(
        started.elapsed() < Duration::from_secs(25),
        "every slow connection closed within a few header timeouts"
    );
    drop(process);
}

#[tokio::test]
async fn an_api_process_closes_half_sent_heads_after_the_header_timeout() {
    let db = TestDatabase::postgres().await;
    let env = with(api_env(&db), &[("HTTP_HEADER_READ_TIMEOUT", "1s")]);
    let process = start_with_open_files(200, &["api", "--listen", "127.0.0.1:0"], &borrowed(&env));
    half_sent_heads_are_closed_and_the_server_serves_others(process).await;
}

#[tokio::test]
async fn an_sse_process_closes_half_sent_heads_after_the_header_timeout() {
    let nats = unique_nats_settings();
    let _cleanup = StreamCleanup(nats.stream_name.clone());
    let env = with(sse_env(&nats), &[("HTTP_HEADER_READ_TIMEOUT", "1s")]);
    let process = start_with_open_files(200, &["sse", "--listen", "127.0.0.1:0"], &borrowed(&env));
    half_sent_heads_are_closed_and_the_server_serves_others(process).await;
}

#[tokio::test]
async fn a_kept_alive_connection_is_closed_after_the_idle_timeout() {
    let db = TestDatabase::postgres().await;
    let env = with(
        api_env(&db),
        &[
            ("HTTP_IDLE_TIMEOUT", "1s"),
            ("HTTP_HEADER_READ_TIMEOUT", "30s"),
        ],
    );
    let process = start(&["api", "--listen", "127.0.0.1:0"], &borrowed(&env));
    let mut socket = TcpStream::connect(process.address())
        .await
        .expect("connect");
    socket
        .write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .expect("write");
    let started = Instant::now();
    let seen = closed_within(&mut socket, Duration::from_secs(10))
        .await
        .expect("closed once idle");
    assert!(seen.starts_with("HTTP/1.1 200 "), "{seen:?}");
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "kept alive until the idle timeout, {:?}",
        started.elapsed()
    );
}

/// A half-sent head, a request whose body never ends, and an idle kept-alive connection:
/// SIGTERM still ends the process within its shutdown timeout, with exit status 0.
async fn sigterm_ends_the_process_within_its_shutdown_timeout(mut process: Process) {
    let address = process.address().to_owned();
    let mut half_head = half_heads(&address, 1).await.remove(0);
    let mut half_body = TcpStream::connect(&address).await.expect("connect");
    half_body
        .write_all(
            b"POST /api/v1/bugs HTTP/1.1\r\nhost: x\r\nx-api-key: sk_live_whatever\r\ncontent-type: application/json\r\ncontent-length: 1000\r\n\r\n{\"title\":",
        )
        .await
        .expect("write");
    let mut idle = TcpStream::connect(&address).await.expect("connect");
    idle.write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .expect("write");
    let mut answer = [0u8; 12];
    idle.read_exact(&mut answer).await.expect("answered");
    assert_eq!(&answer, b"HTTP/1.1 200");

    let started = Instant::now();
    process.sigterm();
    let status = tokio::task::spawn_blocking(move || {
        let status = process.exit_within(Duration::from_secs(10));
        (status, process)
    })
    .await
    .expect("joined");
    let (status, mut process) = status;
    let status = status.expect("the process exits within its shutdown timeout");
    assert!(status.success(), "{status:?}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "SHUTDOWN_TIMEOUT is 2 s: {:?}",
        started.elapsed()
    );
    for socket in [&mut half_head, &mut half_body, &mut idle] {
        assert!(
            closed_within(socket, Duration::from_secs(1))
                .await
                .is_some(),
            "every connection was closed"
        );
    }
    let logs = process.logs();
    assert!(logs.contains("shutting down"), "{logs}");
}

#[tokio::test]
async fn sigterm_ends_an_api_process_whatever_its_clients_do() {
    let (db, _store, _key) = provisioned_postgres().await;
    let env = with(
        api_env(&db),
        &[
            ("SHUTDOWN_TIMEOUT", "2s"),
            ("HTTP_HEADER_READ_TIMEOUT", "60s"),
        ],
    );
    let process = start(&["api", "--listen", "127.0.0.1:0"], &borrowed(&env));
    sigterm_ends_the_process_within_its_shutdown_timeout(process).await;
}

#[tokio::test]
async fn sigterm_ends_a_serve_process_whatever_its_clients_do() {
    let db = TestDatabase::sqlite();
    let data = std::env::temp_dir().join(format!("bichito-slow-{}", std::process::id()));
    let env = with(
        api_env(&db),
        &[
            ("SHUTDOWN_TIMEOUT", "2s"),
            ("HTTP_HEADER_READ_TIMEOUT", "60s"),
            ("BICHITO_DATA_DIR", data.to_str().expect("utf-8 path")),
            ("ATTACHMENTS_BACKEND", "disabled"),
        ],
    );
    let process = start(&["serve", "--listen", "127.0.0.1:0"], &borrowed(&env));
    sigterm_ends_the_process_within_its_shutdown_timeout(process).await;
    let _ = std::fs::remove_dir_all(data);
}
