//! Fault tests on a private NATS server (a free port and a store folder of the test's own):
//! stopping it never touches the machine's shared services.

mod common;

use common::*;
use eventsource_stream::Eventsource;
use futures_util::StreamExt;
use serde_json::{Value, json};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A nats-server with JetStream that this test owns.
struct PrivateNats {
    port: u16,
    store: std::path::PathBuf,
    child: Option<Child>,
}

fn nats_server_binary() -> &'static str {
    [
        "/usr/sbin/nats-server",
        "/usr/bin/nats-server",
        "/usr/local/bin/nats-server",
    ]
    .into_iter()
    .find(|path| std::path::Path::new(path).exists())
    .expect("nats-server must be installed (scripts/test.sh installs it)")
}

impl PrivateNats {
    fn start() -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .expect("free port")
            .local_addr()
            .expect("address")
            .port();
        let store =
            std::env::temp_dir().join(format!("bichito-nats-{}-{port}", std::process::id()));
        let mut nats = Self {
            port,
            store,
            child: None,
        };
        nats.resume();
        nats
    }

    fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Starts (again) on the same port and store folder, and waits until it accepts clients.
    fn resume(&mut self) {
        let child = Command::new(nats_server_binary())
            .args([
                "-a",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-js",
                "-sd",
            ])
            .arg(&self.store)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start nats-server");
        self.child = Some(child);
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("the private nats-server did not start");
    }

    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for PrivateNats {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.store);
    }
}

#[tokio::test]
async fn reports_accepted_while_nats_is_down_reach_the_stream_after_it_returns() {
    let mut nats = PrivateNats::start();
    let app = TestApp::start_on_nats_at(Backend::Postgres, &nats.url()).await;
    let token = app.token(&["payments"]);
    let response = app
        .client
        .get(app.stream_url(&format!("/api/v1/teams/payments/stream?token={token}")))
        .send()
        .await
        .expect("stream");
    let mut events = Box::pin(response.bytes_stream().eventsource());
    assert_eq!(next(&mut events).await.event, "hello");
    app.post_report(&json!({"title": "before", "description": "d"}))
        .await;
    assert_eq!(
        serde_json::from_str::<Value>(&next(&mut events).await.data).expect("json")["title"],
        "before"
    );

    nats.stop();
    for n in 0..3 {
        let response = app
            .post_report(&json!({"title": format!("during {n}"), "description": "d"}))
            .await;
        assert_eq!(response.status(), 201, "ingest does not depend on NATS");
    }
    assert!(
        app.store.outbox_backlog().await.expect("backlog") >= 3,
        "the events wait in the outbox"
    );

    nats.resume();
    let mut titles = Vec::new();
    while titles.len() < 3 {
        let event = next(&mut events).await;
        if event.event == "bug.created" {
            titles.push(
                serde_json::from_str::<Value>(&event.data).expect("json")["title"]
                    .as_str()
                    .expect("title")
                    .to_owned(),
            );
        }
    }
    assert_eq!(
        titles,
        ["during 0", "during 1", "during 2"],
        "every report accepted meanwhile, once, in order"
    );
}

async fn next<S>(events: &mut std::pin::Pin<Box<S>>) -> eventsource_stream::Event
where
    S: futures_util::Stream<
            Item = Result<
                eventsource_stream::Event,
                eventsource_stream::EventStreamError<reqwest::Error>,
            >,
        >,
{
    tokio::time::timeout(Duration::from_secs(30), events.next())
        .await
        .expect("an event within 30 s")
        .expect("stream open")
        .expect("well-formed SSE")
}
