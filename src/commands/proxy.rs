//! `sfpg proxy`: the write-through Postgres-protocol endpoint in front of the mirror. Any
//! Postgres client connects to it as to PostgreSQL (its own credentials pass through); a
//! write to a mirrored table reaches Salesforce before it commits. Runs until SIGINT or
//! SIGTERM, then stops gracefully; pushes left unresolved by a crash are repaired at start.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use sfpg_proxy::{ClientLimits, Failpoint, TlsConfig};

use crate::commands::observe::ObserveOptions;
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
    #[command(flatten)]
    pub observe: ObserveOptions,
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
    /// How long `sfpg.write_failures` keeps the records Salesforce refused in bulk pushes
    /// (`sfpg.bulk_writes`); older ones are dropped with each repair pass.
    #[arg(long, default_value = "7d", value_parser = humantime::parse_duration)]
    pub failures_retention: Duration,
    /// On SIGINT or SIGTERM, how long sessions in a transaction (or waiting for a push)
    /// are given to finish before they are closed; idle sessions are closed at once.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    pub shutdown_grace: Duration,
    /// How many threads run client sessions, each a single-threaded runtime keeping its
    /// sessions to itself (the default: one per core; docs/benchmarks.md).
    #[arg(long, default_value_t = default_session_threads(), value_parser = clap::value_parser!(u16).range(1..=256))]
    pub session_threads: u16,
    /// How long a client connection has, from being accepted, to authenticate (as
    /// PostgreSQL's `authentication_timeout`); then it is closed with an error.
    #[arg(long, default_value = "60s", value_parser = parse_auth_timeout)]
    pub auth_timeout: Duration,
    /// Client connections held at once, authenticated or not; more are refused with
    /// "sorry, too many clients already" (cancel requests still get through).
    #[arg(long, default_value_t = default_max_client_connections(), value_parser = clap::value_parser!(u32).range(1..))]
    pub max_client_connections: u32,
    /// The longest message a client may send after authenticating that the proxy holds
    /// whole (a query's text, a statement's parameters): bytes, or with kB, MB or GB as
    /// PostgreSQL counts them (1024-based). COPY data streams through and is not limited.
    #[arg(long, default_value = "64MB", value_parser = parse_message_size)]
    pub max_message_size: usize,
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

/// [`ClientLimits::DEFAULT_MAX_CLIENT_CONNECTIONS`], as the flag takes it.
pub fn default_max_client_connections() -> u32 {
    u32::try_from(ClientLimits::DEFAULT_MAX_CLIENT_CONNECTIONS).unwrap_or(u32::MAX)
}

fn parse_auth_timeout(text: &str) -> Result<Duration, String> {
    let timeout = humantime::parse_duration(text).map_err(|e| e.to_string())?;
    if timeout.is_zero() {
        return Err("must be longer than zero".into());
    }
    Ok(timeout)
}

/// A size as PostgreSQL's memory settings take it: bytes, or kB, MB, GB (1024-based).
fn parse_message_size(text: &str) -> Result<usize, String> {
    let text = text.trim();
    let digits = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(digits);
    let number: usize = number
        .parse()
        .map_err(|_| format!("{text:?} is not a size such as 65536, 512kB, 64MB or 1GB"))?;
    let unit = match unit.trim() {
        "" | "B" => 1,
        "kB" => 1 << 10,
        "MB" => 1 << 20,
        "GB" => 1 << 30,
        other => return Err(format!("unknown unit {other:?}: use kB, MB or GB")),
    };
    let size = number
        .checked_mul(unit)
        .filter(|size| (1 << 10..=1 << 30).contains(size))
        .ok_or_else(|| format!("{text} is not between 1kB and 1GB"))?;
    // PostgreSQL takes no message longer than 1 GB - 1.
    Ok(size.min(sfpg_proxy::net::frame::MAX_FRAME_LEN))
}

impl ProxyOptions {
    /// What a client may make the proxy hold, and for how long before it authenticates.
    pub fn limits(&self) -> ClientLimits {
        ClientLimits {
            auth_timeout: self.auth_timeout,
            max_client_connections: usize::try_from(self.max_client_connections)
                .unwrap_or(usize::MAX),
            max_message_size: self.max_message_size,
        }
    }

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
    run::serve(&args.database_url, None, Some(&args.proxy), &args.observe).await
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Debug, Parser)]
    struct Flags {
        #[command(flatten)]
        proxy: ProxyOptions,
    }

    #[test]
    fn the_defaults_are_the_proxys() {
        let flags = Flags::try_parse_from(["sfpg"]).unwrap();
        assert_eq!(flags.proxy.limits(), ClientLimits::default());
    }

    #[test]
    fn limits_take_postgresql_units() {
        let flags = Flags::try_parse_from([
            "sfpg",
            "--auth-timeout",
            "3s",
            "--max-client-connections",
            "7",
            "--max-message-size",
            "512kB",
        ])
        .unwrap();
        assert_eq!(
            flags.proxy.limits(),
            ClientLimits {
                auth_timeout: Duration::from_secs(3),
                max_client_connections: 7,
                max_message_size: 512 * 1024,
            }
        );
        assert_eq!(
            parse_message_size("1GB"),
            Ok(sfpg_proxy::net::frame::MAX_FRAME_LEN)
        );
        assert_eq!(parse_message_size("65536"), Ok(65536));
        for wrong in ["0", "12", "2GB", "64mb", "MB", "-1"] {
            assert!(parse_message_size(wrong).is_err(), "{wrong}");
        }
        assert!(Flags::try_parse_from(["sfpg", "--auth-timeout", "0s"]).is_err());
        assert!(Flags::try_parse_from(["sfpg", "--max-client-connections", "0"]).is_err());
    }

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
