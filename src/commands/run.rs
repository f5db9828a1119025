//! `sfpg run`: the sync and the proxy of every configured org in one process, the
//! production entry point. Both take each org's rate limiter from one registry, so an org
//! has one bucket: the proxy's pushes go ahead of the sync's polling and together they keep
//! to the org's rate. Also the one start-and-stop path of `sfpg sync`, `sfpg proxy` and
//! `sfpg demo`: on SIGINT or SIGTERM the proxy stops accepting and closes each session at its
//! next safe point, the sync finishes the turn in flight, and the process exits 0.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use clap::Args;
use sfpg_control::MasterKey;
use sfpg_control::connect::Limiters;
use sfpg_proxy::{Proxy, ProxyConfig, PushConfig, UpstreamAddr};
use sfpg_sync::{StoredCredentials, Supervisor, SyncSettings};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::commands::observe::{self, ObserveOptions};
use crate::commands::org::load_or_create_master_key;
use crate::commands::proxy::ProxyOptions;
use crate::commands::status::follow_backfills;
use crate::commands::sync::SyncOptions;
use crate::database;

#[derive(Debug, Args)]
pub struct RunArgs {
    /// The mirror database, as a `postgres://` URL or a `key=value` connection string.
    /// Its server is where proxy client sessions go (with the clients' own credentials);
    /// its user is the one the sync writes the mirror as, and the proxy's own.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: String,
    #[command(flatten)]
    pub sync: SyncOptions,
    #[command(flatten)]
    pub proxy: ProxyOptions,
    #[command(flatten)]
    pub observe: ObserveOptions,
}

pub async fn run(args: RunArgs) -> anyhow::Result<()> {
    serve(
        &args.database_url,
        Some(&args.sync),
        Some(&args.proxy),
        &args.observe,
    )
    .await
}

/// Runs the sync, the proxy, or both, until SIGINT or SIGTERM; then stops them gracefully.
pub async fn serve(
    database_url: &str,
    sync: Option<&SyncOptions>,
    proxy: Option<&ProxyOptions>,
    observe: &ObserveOptions,
) -> anyhow::Result<()> {
    if let Some(sync) = sync {
        sync.check()?;
    }
    let shutdown = CancellationToken::new();
    tokio::spawn(cancel_on_signal(shutdown.clone()));
    // First: an address refused (off loopback without a token) stops the process before
    // anything else starts.
    let parts = observe::Parts {
        sync: sync.is_some(),
        proxy: proxy.is_some(),
    };
    let metrics = observe::start(
        observe,
        database::parse_url(database_url)?,
        parts,
        &shutdown,
    )
    .await?;
    let services = Services::start(
        database_url,
        &load_or_create_master_key,
        sync.map(SyncOptions::settings),
        proxy,
        shutdown.clone(),
    )
    .await?;
    if let Some(addr) = services.proxy_addr() {
        // The bound address on stdout, for whoever asked for port 0.
        println!("sfpg proxy listening on {addr}");
    }
    if let Some(addr) = metrics {
        // After the proxy's line, which scripts read first.
        println!("sfpg metrics on http://{addr}/metrics");
    }
    if sync.is_some_and(|sync| !sync.no_progress) {
        let progress = database::connect(database_url).await?;
        let stop = shutdown.clone();
        tokio::spawn(async move {
            if let Err(error) = follow_backfills(&progress, &stop, false).await {
                tracing::warn!(error = %format!("{error:#}"), "progress display stopped");
            }
        });
    }
    services.wait().await
}

/// The sync and the proxy of one process, running until their shutdown token is cancelled.
pub struct Services {
    proxy_addr: Option<SocketAddr>,
    parts: JoinSet<(&'static str, anyhow::Result<()>)>,
    shutdown: CancellationToken,
}

impl Services {
    /// Brings the control schema up to date, binds the proxy (with `proxy`) and starts the
    /// sync (with `sync`). `master_key` is called once per part.
    pub async fn start(
        database_url: &str,
        master_key: &dyn Fn() -> anyhow::Result<MasterKey>,
        sync: Option<SyncSettings>,
        proxy: Option<&ProxyOptions>,
        shutdown: CancellationToken,
    ) -> anyhow::Result<Services> {
        let mut control = database::connect(database_url).await?;
        sfpg_control::apply_control_schema(&mut control).await?;
        drop(control);
        let config = database::parse_url(database_url)?;
        let limiters = Limiters::new();
        let mut parts = JoinSet::new();
        let mut proxy_addr = None;
        if let Some(options) = proxy {
            let proxy = Proxy::bind_sharing(
                ProxyConfig {
                    listen: options.listen.clone(),
                    upstream: UpstreamAddr::from_pg_config(&config),
                    tls: options.tls()?,
                    push: Some(PushConfig {
                        control: config.clone(),
                        master_key: master_key()?,
                        repair_every: options.repair_every,
                        failpoint: options.failpoint,
                        failures_retention: options.failures_retention,
                    }),
                    session_threads: usize::from(options.session_threads),
                    limits: options.limits(),
                },
                limiters.clone(),
            )
            .await?;
            proxy_addr = Some(proxy.local_addr()?);
            let stop = shutdown.clone();
            let grace = options.shutdown_grace;
            parts.spawn(async move {
                let served = proxy.serve_until(stop.cancelled_owned(), grace).await;
                ("proxy", served.context("the proxy stopped"))
            });
        }
        if let Some(settings) = sync {
            let credentials = StoredCredentials::sharing(config.clone(), master_key()?, limiters);
            let supervisor = Supervisor::new(config, Arc::new(credentials), settings);
            let stop = shutdown.clone();
            parts.spawn(async move {
                let synced = supervisor.run(stop).await;
                ("sync", synced.context("the sync stopped"))
            });
        }
        Ok(Services {
            proxy_addr,
            parts,
            shutdown,
        })
    }

    /// Where the proxy listens, if it runs.
    pub fn proxy_addr(&self) -> Option<SocketAddr> {
        self.proxy_addr
    }

    /// Waits until every part has stopped. A part that fails stops the others, and its
    /// error is the result.
    pub async fn wait(mut self) -> anyhow::Result<()> {
        let mut failed = None;
        while let Some(joined) = self.parts.join_next().await {
            let outcome = match joined {
                Ok((part, outcome)) => outcome.map(|()| part),
                Err(error) => Err(anyhow::Error::new(error).context("a part of sfpg panicked")),
            };
            match outcome {
                Ok(part) => tracing::debug!(part, "stopped"),
                Err(error) => {
                    if failed.is_none() {
                        self.shutdown.cancel();
                        failed = Some(error);
                    }
                }
            }
        }
        failed.map_or(Ok(()), Err)
    }
}

/// Cancels `shutdown` on SIGINT (Ctrl-C) or SIGTERM (`docker stop`, systemd).
pub async fn cancel_on_signal(shutdown: CancellationToken) {
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
        _ = tokio::signal::ctrl_c() => tracing::info!("interrupted; stopping"),
        () = terminate => tracing::info!("terminated; stopping"),
        () = shutdown.cancelled() => return,
    }
    shutdown.cancel();
}
