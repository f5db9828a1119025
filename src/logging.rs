//! Logging setup: `tracing` to stderr, filtered by RUST_LOG, as text or JSON. By default
//! sfpg's own crates log at `info` and dependencies only at `warn`, so a routine command
//! prints what it did and nothing of its libraries' chatter. Commands write their results
//! to stdout, so logs never mix with output a script reads.

use std::borrow::Cow;
use std::fmt::Write as _;
use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;
use tracing_subscriber::field::MakeExt;
use tracing_subscriber::fmt::format::debug_fn;

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
        // A value can carry a client's text (a refused write's message quotes the value
        // Salesforce refused): each field is written on the line it belongs to, so that no
        // client can start a line of its own in the log. JSON escapes by itself.
        LogFormat::Text => builder
            .fmt_fields(
                debug_fn(|writer, field, value| {
                    let text = format!("{value:?}");
                    match field.name() {
                        "message" => write!(writer, "{}", on_one_line(&text)),
                        name => write!(writer, "{name}={}", on_one_line(&text)),
                    }
                })
                .delimited(" "),
            )
            .init(),
        LogFormat::Json => builder.json().init(),
    }
}

/// `text` with its line breaks and other control characters escaped as Rust writes them.
fn on_one_line(text: &str) -> Cow<'_, str> {
    if !text.chars().any(char::is_control) {
        return Cow::Borrowed(text);
    }
    let mut line = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if c.is_control() {
            let _ = write!(line, "{}", c.escape_debug());
        } else {
            line.push(c);
        }
    }
    Cow::Owned(line)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_value_cannot_start_a_log_line_of_its_own() {
        let forged = "Bogus\n2026-12-07T06:00:01Z  WARN sfpg_sync: FORGED\r\u{1b}[31m";
        let line = on_one_line(forged);
        assert!(!line.chars().any(char::is_control), "{line}");
        assert_eq!(
            line,
            "Bogus\\n2026-12-07T06:00:01Z  WARN sfpg_sync: FORGED\\r\\u{1b}[31m"
        );
        assert!(matches!(on_one_line("plain text"), Cow::Borrowed(_)));
    }
}
