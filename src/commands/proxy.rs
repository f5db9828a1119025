//! `sfpg proxy`: the write-through Postgres-protocol endpoint in front of the mirror. Any
//! Postgres client connects to it as to PostgreSQL (its own credentials pass through); a
//! write to a mirrored table reaches Salesforce before it commits. Runs until SIGINT or
//! SIGTERM, then stops gracefully; pushes left unresolved by a crash are repaired at start.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use sfpg_proxy::{Failpoint, TlsConfig};

use crate::commands::run;
use crate::errors::UserError;

#[derive(Debug, Args)]
pub struct ProxyArgs {
    /// The mirror database, as a `postgres://` URL or a `key=value` connection string.
    /// Its server is where client sessions go (with the clients' own credentials); its
    /// user is the proxy's own, for the control schema and the write journal.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: String,
    #[command(flatten)]
    pub proxy: ProxyOptions,
}

/// Where and how the proxy serves; the flags of `sfpg proxy`, which `sfpg run` takes too.
#[derive(Debug, Args)]
pub struct ProxyOptions {
    /// Where clients connect: HOST:PORT (127.0.0.1:6543, [::1]:6543, localhost:6543).
    #[arg(long, default_value = "127.0.0.1:6543", value_parser = parse_listen)]
    pub listen: String,
    /// PEM certificate chain for clients that ask for TLS (with --tls-key). Without it,
    /// SSLRequest is answered `N`.
    #[arg(long, requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert.
    #[arg(long, requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// How often the write journal is checked for pushes whose transaction never
    /// committed (it is also checked at start).
    #[arg(long, default_value = "1m", value_parser = humantime::parse_duration)]
    pub repair_every: Duration,
    /// On SIGINT or SIGTERM, how long sessions in a transaction (or waiting for a push)
    /// are given to finish before they are closed; idle sessions are closed at once.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    pub shutdown_grace: Duration,
    /// How many threads run client sessions, each a single-threaded runtime keeping its
    /// sessions to itself (the default: one per core; docs/benchmarks.md).
    #[arg(long, default_value_t = default_session_threads(), value_parser = clap::value_parser!(u16).range(1..=256))]
    pub session_threads: u16,
    /// For crash tests: stop every push at this point (pause-after-push).
    #[arg(long, env = "SFPG_PROXY_FAILPOINT", hide = true)]
    pub failpoint: Option<Failpoint>,
}

/// One session thread per core, within the flag's range.
pub fn default_session_threads() -> u16 {
    u16::try_from(sfpg_proxy::default_session_threads().clamp(1, 256)).unwrap_or(1)
}

/// `HOST:PORT` with a port number: the shape of a listening address. Whether the host
/// resolves and the port is free is for binding to tell.
fn parse_listen(text: &str) -> Result<String, String> {
    let well_formed = text
        .rsplit_once(':')
        .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok());
    if well_formed {
        Ok(text.to_owned())
    } else {
        Err("expected HOST:PORT with a port from 0 to 65535, like 127.0.0.1:6543".to_owned())
    }
}

impl ProxyOptions {
    /// The TLS configuration, when --tls-cert and --tls-key are given. A file that cannot
    /// be read or holds no certificate or key is the user's to fix (exit code 2).
    pub fn tls(&self) -> anyhow::Result<Option<TlsConfig>> {
        Ok(match (&self.tls_cert, &self.tls_key) {
            (Some(cert), Some(key)) => Some(
                TlsConfig::from_pem_files(cert, key)
                    .map_err(|e| UserError::new(format!("--tls-cert/--tls-key: {e}")))?,
            ),
            _ => None,
        })
    }
}

pub async fn run(args: ProxyArgs) -> anyhow::Result<()> {
    run::serve(&args.database_url, None, Some(&args.proxy)).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_addresses_need_a_host_and_a_port() {
        for good in [
            "127.0.0.1:6543",
            "[::1]:6543",
            "localhost:0",
            "0.0.0.0:65535",
        ] {
            assert_eq!(parse_listen(good).as_deref(), Ok(good));
        }
        for bad in [
            "notanaddr",
            "127.0.0.1:99999",
            ":6543",
            "127.0.0.1:",
            "",
            "host:x",
        ] {
            assert!(parse_listen(bad).is_err(), "{bad:?}");
        }
    }
}
