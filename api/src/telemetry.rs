//! Logging setup: `tracing` to stderr, as text or JSON lines.

use crate::config::{GlobalArgs, LogFormat};

pub fn init(args: &GlobalArgs) {
    bichito_core::telemetry::init_logging(args.log_format == LogFormat::Json, &args.log_filter);
}
