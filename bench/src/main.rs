use clap::Parser;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = bichito_bench::Cli::parse();
    match bichito_bench::run(cli).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err}");
            std::process::ExitCode::FAILURE
        }
    }
}
