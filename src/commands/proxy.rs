//! `sfpg proxy`: the write-through Postgres-protocol endpoint in front of the mirror. Any
//! Postgres client connects to it as to PostgreSQL (its own credentials pass through); a
//! write to a mirrored table reaches Salesforce before it commits. Runs until SIGINT or
//! SIGTERM; pushes left unresolved by a crash are repaired at start.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use sfpg_proxy::{Failpoint, Proxy, ProxyConfig, PushConfig, TlsConfig, UpstreamAddr};

use crate::commands::org::load_master_key;
use crate::database;

#[derive(Debug, Args)]
pub struct ProxyArgs {
    /// Where clients connect.
    #[arg(long, default_value = "127.0.0.1:6543")]
    pub listen: String,
    /// The mirror database, as a `postgres://` URL or a `key=value` connection string.
    /// Its server is where client sessions go (with the clients' own credentials); its
    /// user is the proxy's own, for the control schema and the write journal.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: String,
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
    /// For crash tests: stop every push at this point (pause-after-push).
    #[arg(long, env = "SFPG_PROXY_FAILPOINT", hide = true)]
    pub failpoint: Option<Failpoint>,
}

pub async fn run(args: ProxyArgs) -> anyhow::Result<()> {
    let mut control = database::connect(&args.database_url).await?;
    sfpg_schema::apply_control_schema(&mut control).await?;
    drop(control);
    let master_key = load_master_key()?;
    let config = database::parse_url(&args.database_url)?;
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => Some(TlsConfig::from_pem_files(cert, key)?),
        _ => None,
    };
    let proxy = Proxy::bind(ProxyConfig {
        listen: args.listen.clone(),
        upstream: UpstreamAddr::from_pg_config(&config),
        tls,
        push: Some(PushConfig {
            control: config,
            master_key,
            repair_every: args.repair_every,
            failpoint: args.failpoint,
        }),
    })
    .await?;
    let addr = proxy.local_addr()?;
    // The bound address on stdout, for whoever asked for port 0.
    println!("sfpg proxy listening on {addr}");
    tokio::select! {
        served = proxy.serve() => served.context("the proxy stopped")?,
        () = stopped() => tracing::info!("stopping the proxy"),
    }
    Ok(())
}

/// Resolves at SIGINT (Ctrl-C) or SIGTERM (`docker stop`, systemd).
async fn stopped() {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                tracing::warn!(%error, "cannot listen for SIGTERM; stop with Ctrl-C");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = terminate => {}
    }
}
