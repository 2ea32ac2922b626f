//! `bichito-operator`: `run` reconciles Honeycombs; `crd` prints the CRD.

use bichito_operator::config::{Cli, Command, LogFormat};
use clap::Parser;
use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Crd => {
            print!("{}", bichito_core::spec::crd_yaml());
            ExitCode::SUCCESS
        }
        Command::Run(args) => {
            bichito_core::telemetry::init_logging(
                cli.log_format == LogFormat::Json,
                &cli.log_filter,
            );
            match bichito_operator::controller::run(*args).await {
                Ok(()) => ExitCode::SUCCESS,
                Err(err) => {
                    tracing::error!(error = %err, "bichito-operator stopped");
                    ExitCode::FAILURE
                }
            }
        }
    }
}
