//! Logging setup: `tracing` to stderr, as text or JSON lines.

use crate::config::{GlobalArgs, LogFormat};
use tracing_subscriber::EnvFilter;

pub fn init(args: &GlobalArgs) {
    let filter = EnvFilter::try_new(&args.log_filter).unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let installed = match args.log_format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
    if let Err(err) = installed {
        eprintln!("logging already initialised: {err}");
    }
}
