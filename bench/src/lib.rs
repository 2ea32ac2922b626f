//! bichito's benchmarks. Each one runs bichito and its reference on this machine, in one run,
//! and prints both and their ratio.
//!
//! - [`ingest`]: accepted reports per second and latency of `POST /api/v1/bugs` (Postgres and
//!   SQLite), against the raw single-row INSERT rate of the same Postgres at the same
//!   concurrency.
//! - [`stream`]: `bichito sse` with NATS against nginx with nchan: idle SSE connections held
//!   and memory per connection; publish-to-receipt latency and the most deliveries per second.
//! - [`operator`]: `bichito-operator` over 10,000 and 50,000 Honeycombs on a fake API server:
//!   time to all-Ready and peak memory, fresh and after a restart, bounded and unbounded.
//! - [`inbox`]: the inbox in headless Chromium against its budgets (bytes of a first load,
//!   time until a team of 1,000 reports is shown, long tasks at 100 events/s), against the
//!   same rows as a static table.
//! - [`load`]: the load generators (closed loop for the most a server takes, open loop at a
//!   fixed rate for latency) and their statistics.
//! - [`server`]: the `bichito` process under test.

pub mod inbox;
pub mod ingest;
pub mod load;
pub mod operator;
pub mod server;
pub mod stream;

use clap::{Parser, Subcommand};

pub type Error = Box<dyn std::error::Error + Send + Sync>;
pub type Result<T> = std::result::Result<T, Error>;

#[derive(Debug, Parser)]
#[command(
    name = "bichito-bench",
    about = "bichito's benchmarks, side by side with their references."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// `POST /api/v1/bugs` against raw INSERTs into the same Postgres.
    Ingest(ingest::IngestArgs),
    /// Idle SSE connections and memory per connection, against nginx + nchan.
    StreamIdle(stream::idle::IdleArgs),
    /// Publish-to-receipt latency at rising rates, against nginx + nchan.
    StreamLatency(stream::latency::LatencyArgs),
    /// The operator over many Honeycombs: time to all-Ready and peak memory.
    Operator(operator::OperatorArgs),
    /// The inbox in headless Chromium: first load, first render, live events.
    Inbox(inbox::InboxArgs),
}

pub async fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Ingest(args) => ingest::run(args).await,
        Command::StreamIdle(args) => stream::idle::idle(args).await,
        Command::StreamLatency(args) => stream::latency::latency(args).await,
        Command::Operator(args) => operator::run(args).await,
        Command::Inbox(args) => inbox::run(args).await,
    }
}
