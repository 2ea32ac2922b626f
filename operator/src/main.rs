//! `bichito-operator`: reconciles `Honeycomb` resources into API keys and quotas.
//!
//! This version prints the CRD generated from the Rust types; the controller comes next and
//! will call `bichito_core::provision` for each Honeycomb.

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "bichito-operator",
    version,
    about = "Reconciles Honeycomb resources (bichito.dev/v1alpha1)."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Print the Honeycomb CustomResourceDefinition (YAML), generated from the Rust types.
    Crd,
}

fn main() {
    match Cli::parse().command {
        Command::Crd => print!("{}", bichito_core::spec::crd_yaml()),
    }
}
