//! Logging setup: `tracing` to stderr, filtered by RUST_LOG, as text or JSON. By default
//! sfpg's own crates log at `info` and dependencies only at `warn`, so a routine command
//! prints what it did and nothing of its libraries' chatter. Commands write their results
//! to stdout, so logs never mix with output a script reads.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

/// Every sfpg crate's target starts with `sfpg` (`sfpg`, `sfpg_sync::…`).
const DEFAULT_FILTER: &str = "warn,sfpg=info";

use crate::cli::LogFormat;

/// Sets up logging; `default_filter` replaces sfpg's usual default when RUST_LOG is unset.
pub fn init(format: LogFormat, default_filter: Option<&str>) {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new(default_filter.unwrap_or(DEFAULT_FILTER)));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}
