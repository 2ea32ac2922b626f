//! Ingest: `POST /api/v1/bugs` against the raw single-row INSERT rate of the same Postgres.
//!
//! Both sides get the same concurrency and the same number of database connections, and store
//! the same row. bichito does more per report than the INSERT (the key check, the rate window,
//! the monthly usage counter, the outbox event, JSON in and out): the ratio says what that
//! costs. The honeycomb is on the pro plan with a quota of 1,000,000 reports per minute, so
//! the rate limit is never what is measured.

use crate::Result;
use crate::load::{
    Stats, closed_loop, cpu_time, cpu_time_of_command_since, cpu_times_of_command, open_loop,
};
use crate::server::{Server, bichito_binary};
use bichito_core::provision::provision;
use bichito_core::spec::parse_documents;
use bichito_core::testing::TestDatabase;
use clap::Args;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, Clone, Args)]
pub struct IngestArgs {
    /// Requests (or INSERTs) in flight at once.
    #[arg(long, default_value_t = 32)]
    pub concurrency: usize,
    /// Database connections, for bichito's pool and the raw INSERTs alike.
    #[arg(long, default_value_t = 10)]
    pub connections: u32,
    /// How long each closed-loop measurement lasts.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    pub duration: Duration,
    /// Load before each measurement that is not counted.
    #[arg(long, default_value = "2s", value_parser = humantime::parse_duration)]
    pub warmup: Duration,
    /// The fixed-rate latency run, at this fraction of the measured maximum.
    #[arg(long, default_value_t = 0.8)]
    pub latency_load: f64,
    /// The `bichito` binary (default: next to this one).
    #[arg(long)]
    pub bichito: Option<PathBuf>,
    /// Pin the server to this CPU (`taskset`); run the benchmark itself under `taskset` too.
    #[arg(long)]
    pub server_cpu: Option<usize>,
    /// Leave out the SQLite figures.
    #[arg(long)]
    pub skip_sqlite: bool,
}

const HONEYCOMB: &str = "\
apiVersion: bichito.dev/v1alpha1
kind: Honeycomb
metadata: {name: bench, namespace: bench}
spec:
  team: bench
  plan: pro
  quotas: {reportsPerMinute: 1000000}
  apiKey: {secretName: bench-api-key}
";

/// The report every request sends: a widget's typical report.
const REPORT: &str = r#"{"title": "Login button broken on Safari 17", "description": "Steps: visit /login, click Sign in. Nothing happens. No console errors.", "severity": "high", "environment": "production", "app_version": "1.4.2", "url": "https://example.com/login", "user_agent": "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_4) AppleWebKit/605.1.15 Safari/17.4", "reporter_email": "user@example.com", "reporter_identifier": "user_42", "extra": {"viewport": "1440x900", "billing_plan": "pro"}}"#;

/// What one side of the comparison did.
pub struct Measured {
    pub name: String,
    pub max: Stats,
    /// The open-loop run at `latency_load` of `max`, when there was one.
    pub at_load: Option<Stats>,
    /// CPU used during the closed loop (warm-up included).
    pub cpu: CpuUsed,
}

/// CPU time of each party to a run: where the work per report goes.
#[derive(Debug, Default, Clone, Copy)]
pub struct CpuUsed {
    /// The `bichito` process (none for the raw INSERTs).
    pub server: Option<Duration>,
    /// Every `postgres` process on the machine (none for SQLite, which runs in the server).
    pub postgres: Option<Duration>,
    /// This process: the load generator (and, for the raw INSERTs, the database client).
    pub client: Duration,
}

/// The readings that [`CpuUsed`] is measured from.
struct CpuReadings {
    server_pid: Option<String>,
    server: Option<Duration>,
    postgres: Option<HashMap<String, Duration>>,
    client: Duration,
}

impl CpuReadings {
    fn now(server_pid: Option<&str>, postgres: bool) -> Self {
        Self {
            server_pid: server_pid.map(str::to_owned),
            server: server_pid.and_then(cpu_time),
            postgres: postgres.then(|| cpu_times_of_command("postgres")),
            client: cpu_time("self").unwrap_or_default(),
        }
    }

    fn used_since(&self) -> CpuUsed {
        let server = self
            .server_pid
            .as_deref()
            .and_then(cpu_time)
            .zip(self.server)
            .map(|(after, before)| after.saturating_sub(before));
        CpuUsed {
            server,
            postgres: self
                .postgres
                .as_ref()
                .map(|before| cpu_time_of_command_since("postgres", before)),
            client: cpu_time("self")
                .unwrap_or_default()
                .saturating_sub(self.client),
        }
    }
}

pub async fn run(args: IngestArgs) -> Result<()> {
    let binary = bichito_binary(args.bichito.clone())?;
    let mut results = Vec::new();

    let db = TestDatabase::postgres().await;
    let key = provisioned(&db).await?;
    results.push(bichito_side("bichito (Postgres)", &binary, &db.url, &key, &args).await?);
    results.push(raw_inserts(&db.url, &args).await?);

    if !args.skip_sqlite {
        let db = TestDatabase::sqlite();
        let key = provisioned(&db).await?;
        results.push(bichito_side("bichito (SQLite)", &binary, &db.url, &key, &args).await?);
    }
    print(&results, &args);
    Ok(())
}

/// Applies the benchmark's honeycomb (team `bench`, pro plan, no quota in the way); its key.
pub(crate) async fn provisioned(db: &TestDatabase) -> Result<String> {
    let store = db.store().await;
    let spec = parse_documents(HONEYCOMB)?.remove(0).spec;
    let done = provision(&*store, "bench", "bench", &spec, None, chrono::Utc::now()).await?;
    Ok(done.api_key)
}

async fn bichito_side(
    name: &str,
    binary: &std::path::Path,
    database_url: &str,
    key: &str,
    args: &IngestArgs,
) -> Result<Measured> {
    let connections = args.connections.to_string();
    let server = Server::start(
        binary,
        &["serve", "--listen", "127.0.0.1:0"],
        &[
            ("DATABASE_URL", database_url),
            ("DATABASE_MAX_CONNECTIONS", &connections),
            ("JWT_SECRET", "bench-secret-bench-secret-bench-secret"),
            ("ATTACHMENTS_BACKEND", "disabled"),
        ],
        args.server_cpu,
    )
    .await?;
    // The open loop may have many more requests in flight than the closed loop: keep every
    // connection it opens, so that it measures the server rather than TCP handshakes.
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(usize::MAX)
        .build()?;
    let url: Arc<str> = format!("{}/api/v1/bugs", server.base).into();
    let key: Arc<str> = key.into();
    let post = move || {
        let request = client
            .post(&*url)
            .header("x-api-key", &*key)
            .header("content-type", "application/json")
            .body(REPORT);
        async move { matches!(request.send().await, Ok(response) if response.status().as_u16() == 201) }
    };
    let on_postgres = database_url.starts_with("postgres");
    let cpu_before = CpuReadings::now(Some(&server.pid), on_postgres);
    let max = closed_loop(args.concurrency, args.warmup, args.duration, post.clone()).await;
    let cpu = cpu_before.used_since();
    let at_load = if max.ok > 0 {
        Some(open_loop(max.rate() * args.latency_load, args.duration, post).await)
    } else {
        None
    };
    server.stop().await;
    Ok(Measured {
        name: name.to_owned(),
        max,
        at_load,
        cpu,
    })
}

/// The reference: the same row, INSERTed directly by `concurrency` tasks over the same number
/// of connections.
async fn raw_inserts(database_url: &str, args: &IngestArgs) -> Result<Measured> {
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(args.connections)
        .connect(database_url)
        .await?;
    let insert = move || {
        let pool = pool.clone();
        async move {
            let now = chrono::Utc::now();
            sqlx::query(
                "INSERT INTO bichitos (honeycomb_id, team_id, title, description, status, severity, \
                     environment, app_version, url, user_agent, reporter_email, reporter_identifier, \
                     extra, created_at, updated_at) \
                 VALUES (1, 'bench', $1, $2, 'open', 'high', 'production', '1.4.2', $3, $4, $5, $6, $7, $8, $8) \
                 RETURNING id",
            )
            .bind("Login button broken on Safari 17")
            .bind("Steps: visit /login, click Sign in. Nothing happens. No console errors.")
            .bind("https://example.com/login")
            .bind("Mozilla/5.0 (Macintosh; Intel Mac OS X 14_4) AppleWebKit/605.1.15 Safari/17.4")
            .bind("user@example.com")
            .bind("user_42")
            .bind(r#"{"viewport":"1440x900","billing_plan":"pro"}"#)
            .bind(now)
            .fetch_one(&pool)
            .await
            .is_ok()
        }
    };
    let cpu_before = CpuReadings::now(None, true);
    let max = closed_loop(args.concurrency, args.warmup, args.duration, insert).await;
    let cpu = cpu_before.used_since();
    Ok(Measured {
        name: "raw INSERT (Postgres)".into(),
        max,
        at_load: None,
        cpu,
    })
}

fn print(results: &[Measured], args: &IngestArgs) {
    println!(
        "ingest: concurrency {}, {} database connections, {:?} per run (after {:?} warm-up), latency run at {:.0} % of each maximum",
        args.concurrency,
        args.connections,
        args.duration,
        args.warmup,
        args.latency_load * 100.0
    );
    println!();
    println!(
        "| side | reports/s | p50 ms | p99 ms | errors | CPU µs per report: server | Postgres | client | at {:.0} %: rate/s | p50 ms | p99 ms | p99.9 ms |",
        args.latency_load * 100.0
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|");
    for side in results {
        let load = side.at_load.as_ref().map_or_else(
            || "– | – | – | –".to_owned(),
            |load| {
                format!(
                    "{:.0} | {:.2} | {:.2} | {:.2}",
                    load.rate(),
                    load.percentile_ms(50.0),
                    load.percentile_ms(99.0),
                    load.percentile_ms(99.9)
                )
            },
        );
        // The CPU was read over the warm-up too, so divide by every report it covered.
        let reports = side.max.rate() * (args.warmup + args.duration).as_secs_f64();
        let per_report = |cpu: Option<Duration>| {
            cpu.map_or_else(
                || "–".to_owned(),
                |cpu| format!("{:.0}", cpu.as_secs_f64() * 1e6 / reports.max(1.0)),
            )
        };
        println!(
            "| {} | {:.0} | {:.2} | {:.2} | {} | {} | {} | {} | {load} |",
            side.name,
            side.max.rate(),
            side.max.percentile_ms(50.0),
            side.max.percentile_ms(99.0),
            side.max.errors,
            per_report(side.cpu.server),
            per_report(side.cpu.postgres),
            per_report(Some(side.cpu.client)),
        );
    }
    let rate = |name: &str| {
        results
            .iter()
            .find(|side| side.name == name)
            .map(|side| side.max.rate())
    };
    if let (Some(ours), Some(raw)) = (rate("bichito (Postgres)"), rate("raw INSERT (Postgres)")) {
        println!();
        println!(
            "ratio bichito/raw INSERT (Postgres): {:.2} (target ≥ 0.80)",
            ours / raw.max(f64::EPSILON)
        );
    }
    if let Some(load) = results
        .iter()
        .find(|side| side.name == "bichito (Postgres)")
        .and_then(|side| side.at_load.as_ref())
    {
        println!(
            "bichito (Postgres) p99 at {:.0} % of its maximum: {:.2} ms (target < 50 ms)",
            args.latency_load * 100.0,
            load.percentile_ms(99.0)
        );
    }
}
