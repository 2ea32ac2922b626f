//! A Postgres that stops answering (a black hole: nothing refused, nothing answered) must not
//! hang requests: they get 503 with `Retry-After` within `DATABASE_TIMEOUT`, and the api
//! recovers by itself once the database answers again. A real `bichito api` process reaches
//! Postgres through a TCP proxy of the test's own that can turn into a black hole.

mod common;

use common::process::*;
use common::*;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// A TCP proxy that forwards to `upstream`, or holds every byte (both ways) and every new
/// connection while it is a black hole.
struct BlackHoleProxy {
    address: String,
    open: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl BlackHoleProxy {
    async fn start(upstream: String) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let address = listener.local_addr().expect("address").to_string();
        let (open, watching) = watch::channel(true);
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                tokio::spawn(Self::forward(client, upstream.clone(), watching.clone()));
            }
        });
        Self {
            address,
            open,
            task,
        }
    }

    fn black_hole(&self) {
        self.open.send_replace(false);
    }

    fn restore(&self) {
        self.open.send_replace(true);
    }

    async fn forward(client: TcpStream, upstream: String, mut open: watch::Receiver<bool>) {
        if open.wait_for(|open| *open).await.is_err() {
            return;
        }
        let Ok(server) = TcpStream::connect(&upstream).await else {
            return;
        };
        let (client_read, client_write) = client.into_split();
        let (server_read, server_write) = server.into_split();
        tokio::join!(
            Self::pump(client_read, server_write, open.clone()),
            Self::pump(server_read, client_write, open),
        );
    }

    /// Copies bytes while open; bytes read meanwhile wait for the path to open again.
    async fn pump(
        mut from: tokio::net::tcp::OwnedReadHalf,
        mut to: tokio::net::tcp::OwnedWriteHalf,
        mut open: watch::Receiver<bool>,
    ) {
        let mut buffer = vec![0u8; 16 * 1024];
        loop {
            if open.wait_for(|open| *open).await.is_err() {
                return;
            }
            let read = match from.read(&mut buffer).await {
                Ok(0) | Err(_) => return,
                Ok(read) => read,
            };
            if open.wait_for(|open| *open).await.is_err() {
                return;
            }
            if to.write_all(&buffer[..read]).await.is_err() {
                return;
            }
        }
    }
}

impl Drop for BlackHoleProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// `url` with its host and port replaced by `address`.
fn through(url: &str, address: &str) -> String {
    let (scheme, rest) = url.split_once("://").expect("a URL");
    let (authority, path) = rest.split_once('/').expect("a database name");
    let user = authority.rsplit_once('@').map(|(user, _)| user);
    match user {
        Some(user) => format!("{scheme}://{user}@{address}/{path}"),
        None => format!("{scheme}://{address}/{path}"),
    }
}

fn upstream_of(url: &str) -> String {
    let rest = url.split_once("://").expect("a URL").1;
    let authority = rest
        .split_once('/')
        .map_or(rest, |(authority, _)| authority);
    authority
        .rsplit_once('@')
        .map_or(authority, |(_, host)| host)
        .to_owned()
}

// Multi-threaded: starting the process blocks a thread while the proxy must keep forwarding.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_black_hole_gets_503_within_the_timeout_and_the_api_recovers() {
    let (db, store, key) = provisioned_postgres().await;
    let proxy = BlackHoleProxy::start(upstream_of(&db.url)).await;
    let url = through(&db.url, &proxy.address);
    let env = [
        ("DATABASE_URL", url.as_str()),
        ("DATABASE_TIMEOUT", "2s"),
        ("JWT_SECRET", JWT_SECRET),
    ];
    let mut api = start(&["api", "--listen", "127.0.0.1:0"], &env);
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("client");
    let post = || {
        client
            .post(format!("{}/api/v1/bugs", api.base))
            .header("x-api-key", &key)
            .json(&minimal_report())
            .send()
    };
    assert_eq!(post().await.expect("sent").status(), 201, "warm");

    proxy.black_hole();
    let token = team_token(&["payments"]);
    let started = Instant::now();
    let (reports, read, ready) = tokio::join!(
        futures_util::future::join_all((0..5).map(|_| post())),
        client
            .get(format!("{}/api/v1/teams/payments/bugs", api.base))
            .bearer_auth(&token)
            .send(),
        client.get(format!("{}/readyz", api.base)).send(),
    );
    let elapsed = started.elapsed();
    let mut unavailable = 0;
    for response in reports
        .into_iter()
        .chain([read, ready])
        .map(|response| response.expect("answered"))
    {
        assert_eq!(response.status(), 503);
        assert_eq!(response.headers()["retry-after"], "5");
        expect_error(response, 503).await;
        unavailable += 1;
    }
    assert_eq!(unavailable, 7);
    assert!(
        elapsed < Duration::from_secs(6),
        "answered within the 2 s database timeout (a few bounded waits), not hung: {elapsed:?}"
    );

    proxy.restore();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let status = post().await.expect("sent").status();
        if status == 201 {
            break;
        }
        assert_eq!(status, 503, "unavailable until it recovers");
        assert!(
            Instant::now() < deadline,
            "the api did not recover by itself"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        api.child.try_wait().expect("try_wait").is_none(),
        "recovered without a restart"
    );
    let stored = store.count_bichitos(1).await.expect("count");
    assert!(
        (2..=7).contains(&stored),
        "the warm report and the last one; a 503 during the outage may or may not have been stored: {stored}"
    );
}
