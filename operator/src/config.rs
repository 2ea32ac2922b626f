//! Command-line flags, each with its environment variable.

use clap::{Args, Parser, Subcommand, ValueEnum};
use std::net::SocketAddr;
use std::time::Duration;

#[derive(Debug, Parser)]
#[command(
    name = "bichito-operator",
    version,
    about = "Reconciles Honeycomb resources (bichito.dev/v1alpha1) into API keys and quotas."
)]
pub struct Cli {
    /// Log format.
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value_t = LogFormat::Text, global = true)]
    pub log_format: LogFormat,
    /// Log filter, in tracing's EnvFilter syntax (e.g. `info,bichito_operator=debug`).
    #[arg(long, env = "RUST_LOG", default_value = "info", global = true)]
    pub log_filter: String,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the controller (in a cluster, or against the current kubeconfig context).
    Run(Box<RunArgs>),
    /// Print the Honeycomb CustomResourceDefinition (YAML), generated from the Rust types.
    Crd,
}

#[derive(Debug, Clone, Args)]
pub struct RunArgs {
    /// The database the api pods read: `postgres://…` (or `sqlite:…` for a single process).
    #[arg(long, env = "DATABASE_URL")]
    pub database_url: String,
    /// Size of the database connection pool.
    #[arg(long, env = "DATABASE_MAX_CONNECTIONS", default_value_t = 4)]
    pub database_max_connections: u32,
    /// The longest a database operation may take (waiting for a connection included); past
    /// it the reconciliation fails and is retried with backoff.
    #[arg(long, env = "DATABASE_TIMEOUT", default_value = "5s", value_parser = humantime::parse_duration)]
    pub database_timeout: Duration,
    /// Address of the `/metrics`, `/healthz` and `/readyz` listener.
    #[arg(long, env = "BICHITO_LISTEN", default_value = "127.0.0.1:8082")]
    pub listen: SocketAddr,
    /// Watch Honeycombs in this namespace only; every namespace when unset.
    #[arg(long, env = "WATCH_NAMESPACE")]
    pub watch_namespace: Option<String>,
    /// The installation this operator serves: it manages only the Honeycombs whose
    /// `spec.installation` names it (those without one belong to `default`), and never touches
    /// the others, so that several installations can share a cluster.
    #[arg(long, env = "BICHITO_INSTALLATION", default_value = bichito_core::spec::DEFAULT_INSTALLATION)]
    pub installation: String,
    /// Most reconciliations running at once (after a restart every Honeycomb is reconciled:
    /// this bounds the burst, and with it memory and database connections in use).
    #[arg(long, env = "MAX_CONCURRENT_RECONCILES", default_value_t = 8)]
    pub max_concurrent_reconciles: u16,
    /// Every Honeycomb is reconciled again after this long even when nothing changed, to heal
    /// drift (a restored database, a hand-edited row).
    #[arg(long, env = "RESYNC_INTERVAL", default_value = "10m", value_parser = humantime::parse_duration)]
    pub resync_interval: Duration,
    /// How often a Honeycomb whose Secret name belongs to someone else is checked again.
    #[arg(long, env = "CONFLICT_RETRY_INTERVAL", default_value = "1m", value_parser = humantime::parse_duration)]
    pub conflict_retry_interval: Duration,
    #[command(flatten)]
    pub leader: LeaderArgs,
}

#[derive(Debug, Clone, Args)]
pub struct LeaderArgs {
    /// Hold a Lease before reconciling, so that several replicas never reconcile at once.
    #[arg(long, env = "LEADER_ELECTION", default_value_t = true, action = clap::ArgAction::Set)]
    pub leader_election: bool,
    /// Name of the Lease.
    #[arg(long, env = "LEASE_NAME", default_value = "bichito-operator")]
    pub lease_name: String,
    /// Namespace of the Lease (the chart passes the pod's own namespace).
    #[arg(long, env = "POD_NAMESPACE", default_value = "default")]
    pub lease_namespace: String,
    /// This replica's identity in the Lease and in Events (the chart passes the pod name).
    #[arg(long, env = "POD_NAME", default_value = "bichito-operator")]
    pub identity: String,
    /// Seconds a Lease stays held without renewal; a standby takes over after that.
    #[arg(long, env = "LEASE_DURATION_SECONDS", default_value_t = 15)]
    pub lease_duration_seconds: u64,
    /// Seconds before expiry at which the holder renews the Lease.
    #[arg(long, env = "LEASE_RENEW_GRACE_SECONDS", default_value_t = 5)]
    pub lease_renew_grace_seconds: u64,
}
