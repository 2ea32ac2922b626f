//! `bichito-operator`: reconciles `Honeycomb` resources into API keys and quotas.
//!
//! This first version only carries the command line; the controller arrives with the
//! Kubernetes issue and will call `bichito_core::provision` for each Honeycomb.

use clap::Parser;

#[derive(Debug, Parser)]
#[command(
    name = "bichito-operator",
    version,
    about = "Reconciles Honeycomb resources (bichito.dev/v1alpha1)."
)]
struct Cli {
    /// Database URL the provisioned keys and quotas are written to.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    database_url: Option<String>,
}

fn main() {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .init();
    tracing::info!(
        configured = cli.database_url.is_some(),
        "the Honeycomb controller is not part of this build yet"
    );
}
