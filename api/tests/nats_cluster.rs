//! A 3-node NATS cluster of the test's own on loopback, the event stream and buckets kept in 3
//! replicas (`NATS_STREAM_REPLICAS=3`): a node stopped, the stream's leader included, a
//! follower crashed, or all three restarted one at a time, pauses the team stream for a second
//! at most; the stream's leader crashed, for one raft election. Nothing is lost or repeated. Reports are posted every 100 ms throughout; the pause is the longest time from a
//! report's 201 to its event on an open team stream.

mod common;

use bichito::bus::nats::NatsBus;
use common::nats::{NatsCluster, Stop};
use common::*;
use futures_util::StreamExt;
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

const REPLICAS: usize = 3;
const POST_EVERY: Duration = Duration::from_millis(100);
/// The longest a stream may stand still while a node is stopped on purpose (SIGTERM, as
/// Kubernetes stops a pod: nats-server hands its leaderships over as it goes), or after one
/// that did not lead the stream crashed: at worst a publish whose acknowledgement was lost
/// with the node is tried again after 1 s.
const PAUSE_LIMIT: Duration = Duration::from_secs(2);
/// A crashed stream leader is replaced only after a raft election timeout, 4 to 9 s in
/// nats-server; publishing waits for the new leader.
const CRASH_PAUSE_LIMIT: Duration = Duration::from_secs(12);

/// What the team stream saw while reports were posted.
struct Run {
    /// Titles in the order their 201s came.
    posted: Vec<(String, Instant)>,
    /// Titles of `bug.created` events in the order they came.
    delivered: Vec<(String, Instant)>,
}

impl Run {
    /// Every report delivered once, in the order posted; the longest 201 → event delay.
    fn assert_complete(&self) -> Duration {
        let posted: Vec<&str> = self
            .posted
            .iter()
            .map(|(title, _)| title.as_str())
            .collect();
        let delivered: Vec<&str> = self
            .delivered
            .iter()
            .map(|(title, _)| title.as_str())
            .collect();
        if delivered != posted {
            let missing: Vec<&&str> = posted.iter().filter(|t| !delivered.contains(t)).collect();
            let mut seen = std::collections::HashSet::new();
            let repeated: Vec<&&str> = delivered.iter().filter(|t| !seen.insert(**t)).collect();
            panic!(
                "every report accepted reaches the stream once, in order: {} posted, {} delivered, missing {missing:?}, repeated {repeated:?}",
                posted.len(),
                delivered.len()
            );
        }
        self.posted
            .iter()
            .zip(&self.delivered)
            .map(|((_, accepted), (_, seen))| seen.saturating_duration_since(*accepted))
            .max()
            .unwrap_or_default()
    }
}

/// One cluster at a time: two on two cores would measure the machine, not bichito.
static ONE_CLUSTER: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn roomy_spec() -> bichito_core::spec::HoneycombSpec {
    let mut spec = example_spec();
    spec.quotas.reports_per_minute = Some(100_000);
    spec.quotas.monthly_reports = Some(1_000_000);
    spec
}

/// A cluster and a server on it (api and stream processes apart, both given every node).
async fn cluster_and_app() -> (NatsCluster, TestApp) {
    let cluster = NatsCluster::start(3).await;
    let app =
        TestApp::start_on_nats_cluster(Backend::Postgres, &cluster.url(), REPLICAS, roomy_spec())
            .await;
    cluster
        .wait_until_replicated(app.nats_stream(), REPLICAS)
        .await;
    (cluster, app)
}

/// Posts a report every [`POST_EVERY`] and follows the team stream while `disrupt` runs, then
/// until every report posted was delivered (or 30 s passed).
async fn posting_through<F: Future<Output = ()>>(app: &TestApp, disrupt: F) -> Run {
    let mut events = app.team_events().await;
    let (sender, mut delivered_rx) = tokio::sync::mpsc::unbounded_channel();
    let reader = tokio::spawn(async move {
        while let Some(event) = events.next().await {
            // Events dropped for a reader that fell behind show as a repeat of this marker.
            if event.event == "stream.gap"
                && sender
                    .send(("<stream.gap>".to_owned(), Instant::now()))
                    .is_err()
            {
                return;
            }
            if event.event == "bug.created" {
                let title = serde_json::from_str::<Value>(&event.data).expect("json")["title"]
                    .as_str()
                    .expect("title")
                    .to_owned();
                if sender.send((title, Instant::now())).is_err() {
                    return;
                }
            }
        }
    });
    let posting = Arc::new(AtomicBool::new(true));
    let poster = {
        let posting = posting.clone();
        let client = app.client.clone();
        let url = app.url("/api/v1/bugs");
        let key = app.api_key.clone();
        tokio::spawn(async move {
            let mut posted = Vec::new();
            let mut tick = tokio::time::interval(POST_EVERY);
            while posting.load(Ordering::SeqCst) {
                tick.tick().await;
                let title = format!("r{}", posted.len());
                let response = client
                    .post(&url)
                    .header("x-api-key", &key)
                    .json(&json!({"title": title, "description": "d"}))
                    .timeout(Duration::from_secs(10))
                    .send()
                    .await
                    .expect("ingest answers");
                assert_eq!(response.status(), 201, "ingest does not depend on NATS");
                posted.push((title, Instant::now()));
            }
            posted
        })
    };
    tokio::time::sleep(Duration::from_secs(1)).await;
    disrupt.await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    posting.store(false, Ordering::SeqCst);
    let posted = poster.await.expect("the poster ran");
    let mut delivered = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while delivered.len() < posted.len() {
        match tokio::time::timeout_at(deadline, delivered_rx.recv()).await {
            Ok(Some(event)) => delivered.push(event),
            Ok(None) | Err(_) => break,
        }
    }
    // Anything more would be a repeat.
    while let Ok(Some(event)) =
        tokio::time::timeout(Duration::from_millis(500), delivered_rx.recv()).await
    {
        delivered.push(event);
    }
    reader.abort();
    Run { posted, delivered }
}

/// Stops the node leading the stream `how`, keeps it down for `down`, starts it again and
/// waits until it has caught up.
async fn stop_the_leader(cluster: &mut NatsCluster, stream: &str, how: Stop, down: Duration) {
    let leader = cluster
        .stream_cluster(stream)
        .await
        .leader
        .expect("a leader");
    let index = cluster.index_of(&leader);
    cluster.stop(index, how).await;
    tokio::time::sleep(down).await;
    let after = cluster
        .stream_cluster(stream)
        .await
        .leader
        .expect("a leader");
    assert_ne!(after, leader, "another node leads the stream");
    cluster.restart(index).await;
    cluster.wait_until_replicated(stream, REPLICAS).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stream_leader_stopped_pauses_streams_for_a_second_at_most_and_loses_nothing() {
    let _one = ONE_CLUSTER.lock().await;
    let (mut cluster, app) = cluster_and_app().await;
    let stream = app.nats_stream().to_owned();
    let run = posting_through(&app, async {
        stop_the_leader(
            &mut cluster,
            &stream,
            Stop::Graceful,
            Duration::from_secs(5),
        )
        .await;
    })
    .await;
    let pause = run.assert_complete();
    eprintln!(
        "leader stopped: {} reports, longest 201 → event {pause:?}",
        run.posted.len()
    );
    assert!(pause <= PAUSE_LIMIT, "paused {pause:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stream_leader_crashed_pauses_streams_for_one_election_and_loses_nothing() {
    let _one = ONE_CLUSTER.lock().await;
    let (mut cluster, app) = cluster_and_app().await;
    let stream = app.nats_stream().to_owned();
    let run = posting_through(&app, async {
        stop_the_leader(&mut cluster, &stream, Stop::Crash, Duration::from_secs(12)).await;
    })
    .await;
    let pause = run.assert_complete();
    eprintln!(
        "leader crashed: {} reports, longest 201 → event {pause:?}",
        run.posted.len()
    );
    assert!(pause <= CRASH_PAUSE_LIMIT, "paused {pause:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_crashed_pauses_streams_for_a_second_at_most_and_loses_nothing() {
    let _one = ONE_CLUSTER.lock().await;
    let (mut cluster, app) = cluster_and_app().await;
    let stream = app.nats_stream().to_owned();
    let run = posting_through(&app, async {
        let leader = cluster
            .stream_cluster(&stream)
            .await
            .leader
            .expect("a leader");
        let follower = (0..REPLICAS)
            .find(|index| cluster.node_name(*index) != leader)
            .expect("a follower");
        cluster.stop(follower, Stop::Crash).await;
        tokio::time::sleep(Duration::from_secs(5)).await;
        cluster.restart(follower).await;
        cluster.wait_until_replicated(&stream, REPLICAS).await;
    })
    .await;
    let pause = run.assert_complete();
    eprintln!(
        "follower crashed: {} reports, longest 201 → event {pause:?}",
        run.posted.len()
    );
    assert!(pause <= PAUSE_LIMIT, "paused {pause:?}");
}

/// A rolling restart, as a NATS upgrade does it: each node stopped, started again and caught
/// up before the next.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rolling_restart_of_every_node_pauses_streams_for_a_second_at_most_and_loses_nothing() {
    let _one = ONE_CLUSTER.lock().await;
    let (mut cluster, app) = cluster_and_app().await;
    let stream = app.nats_stream().to_owned();
    let run = posting_through(&app, async {
        for index in 0..REPLICAS {
            cluster.stop(index, Stop::Graceful).await;
            tokio::time::sleep(Duration::from_secs(2)).await;
            cluster.restart(index).await;
            cluster.wait_until_replicated(&stream, REPLICAS).await;
        }
    })
    .await;
    let pause = run.assert_complete();
    eprintln!(
        "rolling restart: {} reports, longest 201 → event {pause:?}",
        run.posted.len()
    );
    assert!(pause <= PAUSE_LIMIT, "paused {pause:?}");
}

/// `NATS_STREAM_REPLICAS` raised on an install that ran with 1: the stream and both buckets
/// take 3 copies at the next start, keeping every event.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raising_the_replicas_moves_an_existing_stream_and_its_buckets() {
    let _one = ONE_CLUSTER.lock().await;
    let cluster = NatsCluster::start(3).await;
    let app =
        TestApp::start_on_nats_cluster(Backend::Postgres, &cluster.url(), 1, roomy_spec()).await;
    let stream = app.nats_stream().to_owned();
    for _ in 0..3 {
        app.created_report().await;
    }
    let stored = wait_for_messages(&cluster, &stream, 3).await;
    let buckets = [
        format!("KV_{stream}_SESSIONS"),
        format!("KV_{stream}_TICKETS"),
    ];
    assert_eq!(cluster.stream_replicas(&stream).await, 1);
    for bucket in &buckets {
        assert_eq!(cluster.stream_replicas(bucket).await, 1, "{bucket}");
    }

    let mut settings = unique_nats_settings();
    settings.url = cluster.url();
    settings.stream_name = stream.clone();
    settings.replicas = REPLICAS;
    let _restarted = nats_parts(settings).await;

    assert_eq!(cluster.stream_replicas(&stream).await, REPLICAS);
    for bucket in &buckets {
        assert_eq!(cluster.stream_replicas(bucket).await, REPLICAS, "{bucket}");
    }
    cluster.wait_until_replicated(&stream, REPLICAS).await;
    assert_eq!(
        wait_for_messages(&cluster, &stream, stored).await,
        stored,
        "no event lost"
    );
}

/// The stream's message count, once it has at least `count` (waits up to 10 s).
async fn wait_for_messages(cluster: &NatsCluster, stream: &str, count: u64) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let messages = cluster.stream_messages(stream).await;
        if messages >= count || Instant::now() > deadline {
            return messages;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// More replicas than a lone server can keep: the start fails, saying why.
#[tokio::test]
async fn replicas_a_lone_server_cannot_keep_are_refused_with_the_reason() {
    let mut settings = unique_nats_settings();
    settings.replicas = REPLICAS;
    let message = match NatsBus::connect(settings).await {
        Ok(_) => panic!("a lone server cannot keep 3 replicas"),
        Err(err) => err.to_string(),
    };
    assert!(message.contains("replicas"), "{message}");
}
