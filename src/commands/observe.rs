//! The flags of the metrics and status listener (`--metrics-listen`, `--metrics-token`),
//! which `sfpg run`, `sync` and `proxy` take, and its start: bound before anything else
//! runs, so a refused address stops the process at once.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use clap::Args;
use sfpg_observe::page::{PageState, RecentRefusals};
use sfpg_observe::{Listener, ObserveError, Refresh, SyncGauges};
use tokio_util::sync::CancellationToken;

use crate::errors::UserError;

#[derive(Debug, Args, Default, Clone)]
pub struct ObserveOptions {
    /// Serve `/metrics` (Prometheus text format) and the status page at `/` on this
    /// address: HOST:PORT, or a bare PORT for 127.0.0.1. Off unless given. An address
    /// other machines can reach needs --metrics-token.
    #[arg(long, value_name = "ADDR")]
    pub metrics_listen: Option<String>,
    /// A bearer token every request to the metrics listener must carry
    /// (`Authorization: Bearer TOKEN`); requests without it get 401.
    #[arg(long, env = "SFPG_METRICS_TOKEN", hide_env_values = true)]
    pub metrics_token: Option<String>,
}

/// What the process runs, which the listener reports on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Parts {
    pub sync: bool,
    pub proxy: bool,
}

/// Binds the listener of `options` (if any) and serves it until `shutdown`: the status
/// page reads `database`'s status rows (and, with the proxy, its refusals); with the sync,
/// each scrape first sets the sync's gauges. Returns where it listens.
pub async fn start(
    options: &ObserveOptions,
    database: tokio_postgres::Config,
    parts: Parts,
    shutdown: &CancellationToken,
) -> anyhow::Result<Option<SocketAddr>> {
    let Some(addr) = &options.metrics_listen else {
        return Ok(None);
    };
    let mut listener = bind(addr, options.metrics_token.clone()).await?;
    if parts.sync {
        listener = listener.refresh_with(sync_refresh(database.clone())?);
    }
    let page = page_state(database, parts)?;
    Ok(Some(spawn(listener, page, shutdown)?))
}

/// The status page's state: the status rows of `database`, and the refusals of this
/// process's proxy, if it runs one.
fn page_state(database: tokio_postgres::Config, parts: Parts) -> anyhow::Result<PageState> {
    let refusals = parts.proxy.then(RecentRefusals::global);
    Ok(PageState::new(database, refusals)?)
}

/// Before each scrape: the seconds since each object's last success (the sync's memory) and
/// the gauges read from the status rows.
pub fn sync_refresh(database: tokio_postgres::Config) -> anyhow::Result<Refresh> {
    let gauges = SyncGauges::new(database)?;
    Ok(Arc::new(move || {
        sfpg_sync::telemetry::refresh();
        let gauges = gauges.clone();
        Box::pin(async move { gauges.refresh().await })
    }))
}

/// Binds `addr`; a refused address is the user's to fix (exit code 2).
pub async fn bind(addr: &str, token: Option<String>) -> anyhow::Result<Listener> {
    Listener::bind(addr, token)
        .await
        .map_err(|error| match error {
            ObserveError::TokenRequired { .. } => UserError::new(error.to_string()).into(),
            other => anyhow::Error::new(other),
        })
}

/// Serves `listener` in the background until `shutdown`; a failure is logged (the sync
/// and the proxy go on without it).
pub fn spawn(
    listener: Listener,
    page: PageState,
    shutdown: &CancellationToken,
) -> anyhow::Result<SocketAddr> {
    let addr = listener
        .local_addr()
        .context("the metrics listener has no address")?;
    let stop = shutdown.clone().cancelled_owned();
    tokio::spawn(async move {
        let page = sfpg_observe::page::router(page);
        if let Err(error) = listener.serve_until(page, stop).await {
            tracing::error!(error = %format!("{:#}", anyhow::Error::new(error)), "metrics listener stopped");
        }
    });
    Ok(addr)
}

/// The metrics and status listener on 127.0.0.1:`port`, or on a free port if that one is
/// taken (another demo, a Prometheus exporter); it stops with the demo, which runs the
/// sync and the proxy.
pub async fn start_loopback(
    port: u16,
    sync: tokio_postgres::Config,
    shutdown: &CancellationToken,
) -> anyhow::Result<SocketAddr> {
    let listener = match bind(&format!("127.0.0.1:{port}"), None).await {
        Ok(listener) => listener,
        Err(error) if port != 0 => {
            tracing::debug!(error = %format!("{error:#}"), "taking another port for metrics");
            bind("127.0.0.1:0", None).await?
        }
        Err(error) => return Err(error),
    };
    let page = page_state(
        sync.clone(),
        Parts {
            sync: true,
            proxy: true,
        },
    )?;
    spawn(listener.refresh_with(sync_refresh(sync)?), page, shutdown)
}
