//! Postgres failover under a running `bichito api`: a real primary and streaming replica of
//! the test's own; the api reaches "the database" through a TCP proxy standing in for
//! CloudNativePG's `-rw` Service. The primary crashes, the replica is promoted and the proxy
//! moved to it: meanwhile reports get 503 with `Retry-After` (never a 500, never a hang), then
//! the api recovers by itself, without a restart. With synchronous replication no report that
//! got a 201 is lost.

mod common;

use bichito_core::testing::postgres_pair::{PgPair, ServiceProxy};
use common::process::*;
use common::*;
use std::time::{Duration, Instant};

/// What one report got.
struct Answer {
    title: String,
    status: u16,
    retry_after: Option<String>,
    /// The error's JSON, for what was not a 201.
    body: String,
    took: Duration,
    at: Instant,
}

/// The database `bichito` on the pair's primary, migrated, with the example honeycomb applied
/// (quotas raised: the test posts a report every 50 ms); its API key.
async fn provisioned(pair: &PgPair) -> String {
    pair.create_database("bichito").await;
    let settings = bichito_core::store::PoolSettings {
        max_connections: 2,
        ..Default::default()
    };
    let store = bichito_core::store::connect(&pair.primary.url("bichito"), settings)
        .await
        .expect("connect");
    store.migrate().await.expect("migrate");
    let mut spec = example_spec();
    spec.quotas.reports_per_minute = Some(100_000);
    spec.quotas.monthly_reports = Some(1_000_000);
    let done = bichito_core::provision::provision(
        &*store,
        "payments",
        "checkout-web",
        &spec,
        None,
        chrono::Utc::now(),
    )
    .await
    .expect("provision");
    done.api_key
}

/// Titles of the reports stored in the database at `url`.
async fn stored_titles(url: &str) -> std::collections::BTreeSet<String> {
    let mut connection = <sqlx::PgConnection as sqlx::Connection>::connect(url)
        .await
        .expect("the database");
    sqlx::query_scalar("SELECT title FROM bichitos")
        .fetch_all(&mut connection)
        .await
        .expect("titles")
        .into_iter()
        .collect()
}

// Multi-threaded: starting the process blocks a thread while the proxy must keep forwarding.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failover_gets_503_meanwhile_and_the_api_recovers_losing_no_201() {
    let mut pair = PgPair::start(true);
    pair.wait_until_streaming().await;
    let key = provisioned(&pair).await;
    let proxy = ServiceProxy::start(format!("127.0.0.1:{}", pair.primary.port)).await;
    let url = format!("postgres://postgres@{}/bichito", proxy.address);
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
    let endpoint = format!("{}/api/v1/bugs", api.base);
    let post = |title: String| {
        let request = client
            .post(&endpoint)
            .header("x-api-key", &key)
            .json(&serde_json::json!({"title": title, "description": "d"}));
        async move {
            let started = Instant::now();
            let response = request.send().await.expect("answered");
            let status = response.status().as_u16();
            let retry_after = response
                .headers()
                .get("retry-after")
                .and_then(|value| value.to_str().ok())
                .map(str::to_owned);
            let took = started.elapsed();
            let body = if status == 201 {
                String::new()
            } else {
                response.text().await.unwrap_or_default()
            };
            Answer {
                title,
                status,
                retry_after,
                body,
                took,
                at: Instant::now(),
            }
        }
    };

    let mut answers = Vec::new();
    for n in 0..20 {
        answers.push(post(format!("before {n}")).await);
    }
    assert!(answers.iter().all(|answer| answer.status == 201), "warm");

    // The primary is lost; the operator (here, the test) promotes the replica and moves the
    // Service, as CloudNativePG does.
    pair.primary.crash();
    let crashed = Instant::now();
    let poster = async move {
        let mut answers = Vec::new();
        let mut recovered = 0;
        let mut n = 0;
        // Until five reports in a row are accepted after the first 201 past the crash,
        // or 60 s.
        while recovered < 5 && crashed.elapsed() < Duration::from_secs(60) {
            let answer = post(format!("during {n}")).await;
            n += 1;
            recovered = if answer.status == 201 {
                recovered + 1
            } else {
                0
            };
            answers.push(answer);
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        answers
    };
    let failover = async {
        tokio::time::sleep(Duration::from_secs(1)).await;
        pair.replica.promote();
        proxy.move_to(format!("127.0.0.1:{}", pair.replica.port));
        Instant::now()
    };
    let (during, moved) = tokio::join!(poster, failover);

    let first_201 = during
        .iter()
        .find(|answer| answer.status == 201 && answer.at > moved)
        .expect("the api recovered by itself within 60 s");
    let recovery = first_201.at.saturating_duration_since(moved);
    let slowest = during
        .iter()
        .map(|answer| answer.took)
        .max()
        .unwrap_or_default();
    let refused = during.iter().filter(|answer| answer.status != 201).count();
    eprintln!(
        "failover: {refused} of {} reports refused, recovered {recovery:?} after the Service moved, slowest answer {slowest:?}",
        during.len()
    );
    for answer in during.iter().filter(|answer| answer.status != 201) {
        assert_eq!(
            answer.status, 503,
            "{}: unavailable, not an error: {}",
            answer.title, answer.body
        );
        assert_eq!(answer.retry_after.as_deref(), Some("5"), "{}", answer.title);
    }
    assert!(refused > 0, "the outage was seen");
    assert!(
        slowest < Duration::from_secs(7),
        "every answer within the 2 s database timeout and a few bounded waits: {slowest:?}"
    );
    assert!(
        recovery < Duration::from_secs(5),
        "recovered {recovery:?} after the Service moved"
    );
    answers.extend(during);

    assert!(
        api.child.try_wait().expect("try_wait").is_none(),
        "recovered without a restart"
    );
    let ready = client
        .get(format!("{}/readyz", api.base))
        .send()
        .await
        .expect("answered");
    assert_eq!(ready.status(), 200, "ready again");

    let stored = stored_titles(&pair.replica.url("bichito")).await;
    let lost: Vec<&str> = answers
        .iter()
        .filter(|answer| answer.status == 201 && !stored.contains(&answer.title))
        .map(|answer| answer.title.as_str())
        .collect();
    assert!(
        lost.is_empty(),
        "reports that got a 201 and were lost: {lost:?}"
    );
}
