//! What every long-running process does alike: logs to stderr (text or JSON lines) and the
//! Prometheus text exposition of its metrics.

use tracing_subscriber::EnvFilter;

/// Logs to stderr with `filter` (tracing's EnvFilter syntax; `info` when it does not parse),
/// one JSON object per line when `json`.
pub fn init_logging(json: bool, filter: &str) {
    let filter = EnvFilter::try_new(filter).unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let installed = if json {
        builder.json().flatten_event(true).try_init()
    } else {
        builder.try_init()
    };
    if let Err(err) = installed {
        eprintln!("logging already initialised: {err}");
    }
}

/// `registry` in the Prometheus text format.
pub fn encode_metrics(registry: &prometheus::Registry) -> String {
    use prometheus::Encoder;
    let mut buffer = Vec::new();
    if let Err(err) = prometheus::TextEncoder::new().encode(&registry.gather(), &mut buffer) {
        tracing::error!(error = %err, "encoding metrics failed");
    }
    String::from_utf8(buffer).unwrap_or_default()
}
