//! The sync process, a worker among any number of them: it registers in `sfpg.workers`,
//! and at every heartbeat renews its leases, takes the free orgs placed on it and hands
//! back those placed elsewhere ([`placement`]); it runs one scheduler (with the org's CDC
//! and event streams) per org it holds, reloaded when the control schema says the org
//! changed (`LISTEN sfpg_org_changed`, a hint only: the heartbeat reads the enabled orgs
//! anyway), and restarted after a failure or a panic, with backoff.
//!
//! Every write an org's tasks make checks the org's lease epoch in its transaction
//! ([`sfpg_control::leases::Fence`]): a worker whose lease was taken over (it was paused,
//! or cut off from the database, past the lease) has its next write refused and drops the
//! org. The orgs share one pool of connections ([`SyncSettings::db_pool_size`]); the
//! heartbeat has its own connection, so that busy orgs never delay it.

mod listener;
mod orgs;
pub mod placement;
mod worker;

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use futures::future::BoxFuture;
use sfpg_control::connect::Pool;
use sfpg_control::leases::Fence;
use sfpg_control::{ControlError, MasterKey, connect, orgs as stored_orgs};
use sfpg_salesforce::{Client, RateLimiter};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::error::Result;
use crate::events::EventStreams;
use crate::scheduler::OrgSync;
use crate::settings::SyncSettings;
use crate::stream::{OrgStream, Transports};
use listener::Listener;
use orgs::Orgs;
use sfpg_salesforce::streaming::{CometD, EventTransport};
use worker::Worker;

/// How long a stopping worker lets its orgs finish what they are doing before it aborts
/// them (their open transactions roll back; the lease fence guards the rest).
const STOP_GRACE: Duration = Duration::from_secs(1);

/// Makes the Salesforce client of an org.
pub trait Connector: Send + Sync {
    fn connect<'a>(
        &'a self,
        db: &'a tokio_postgres::Client,
        org: &'a str,
    ) -> BoxFuture<'a, Result<Client>>;
}

/// Clients from the credentials stored (sealed) in `sfpg.orgs`, which save the refresh
/// tokens Salesforce rotates back there.
#[derive(Debug)]
pub struct StoredCredentials {
    database: tokio_postgres::Config,
    key: MasterKey,
    limiters: connect::Limiters,
}

impl StoredCredentials {
    /// Reads the orgs, and saves rotated refresh tokens, in the control schema of
    /// `database`.
    pub fn new(database: tokio_postgres::Config, key: MasterKey) -> Self {
        Self::sharing(database, key, connect::Limiters::new())
    }

    /// Takes each org's rate limiter from `limiters`, so that a proxy in the same process
    /// drawing from the same registry shares the org's bucket.
    pub fn sharing(
        database: tokio_postgres::Config,
        key: MasterKey,
        limiters: connect::Limiters,
    ) -> Self {
        Self {
            database,
            key,
            limiters,
        }
    }
}

impl Connector for StoredCredentials {
    fn connect<'a>(
        &'a self,
        db: &'a tokio_postgres::Client,
        org: &'a str,
    ) -> BoxFuture<'a, Result<Client>> {
        Box::pin(async move {
            let stored = stored_orgs::load(db, org, &self.key).await?;
            let limiter = self.limiters.for_org(&stored)?;
            Ok(connect::stored_client(
                &stored,
                limiter,
                &self.database,
                &self.key,
            )?)
        })
    }
}

/// Runs the orgs this worker holds until shut down.
pub struct Supervisor {
    database: tokio_postgres::Config,
    connector: Arc<dyn Connector>,
    settings: SyncSettings,
    name: String,
}

impl std::fmt::Debug for Supervisor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Supervisor")
            .field("name", &self.name)
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl Supervisor {
    /// A worker named `host:pid`.
    pub fn new(
        database: tokio_postgres::Config,
        connector: Arc<dyn Connector>,
        settings: SyncSettings,
    ) -> Self {
        Self {
            database,
            connector,
            settings,
            name: worker_name(),
        }
    }

    /// This worker's name in `sfpg.workers` and `sfpg.leases`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Syncs the orgs placed on this worker until `shutdown`, then stops every org at once
    /// (those still busy after a short grace are aborted) and hands its leases back in one
    /// statement, so that the other workers take its orgs at their next heartbeat.
    ///
    /// Fails only when the mirror database cannot be reached at the start. Later, a lost
    /// database is waited out: the connections are opened again with backoff (up to 30 s
    /// between attempts), and the outage is logged when it begins and when it ends. The
    /// leases lapse meanwhile; the orgs' writes are refused once another worker takes them.
    pub async fn run(self, shutdown: CancellationToken) -> Result<()> {
        let mut listener = Listener::new(self.database.clone());
        listener.open().await?;
        let pool = connect::pool(&self.database, self.settings.db_pool_size)?;
        let mut worker = Worker::new(&self.database, self.name.clone(), &self.settings)?;
        worker.register().await?;
        let mut orgs = Orgs::new(pool, self.connector, self.settings, self.name, &shutdown);
        loop {
            let _ = listener.client().await;
            let wake = [
                Some(worker.next_beat()),
                listener.next_attempt(),
                orgs.next_restart(),
            ]
            .into_iter()
            .flatten()
            .min()
            .unwrap_or_else(tokio::time::Instant::now);
            tokio::select! {
                () = shutdown.cancelled() => break,
                notification = listener.notification() => {
                    if let Some(org) = notification {
                        orgs.changed(&org).await;
                        worker.beat_soon();
                    }
                }
                Some(joined) = orgs.join_next() => orgs.ended(joined, &worker).await,
                () = tokio::time::sleep_until(wake) => {
                    if worker.beat_due() {
                        worker.beat(&mut orgs).await;
                    }
                    orgs.restart_rested();
                }
            }
        }
        tracing::info!("shutting down");
        orgs.stop_all(&worker, STOP_GRACE).await;
        worker.leave().await;
        Ok(())
    }
}

/// Opens a connection and drives it on the current runtime.
pub async fn connect(database: &tokio_postgres::Config) -> Result<tokio_postgres::Client> {
    Ok(connect::open(database).await?)
}

/// One org's scheduler and streams, under the lease this worker took.
struct OrgTask {
    pool: Pool,
    connector: Arc<dyn Connector>,
    settings: SyncSettings,
    fence: Fence,
    /// Handed to the supervisor, which sets a new rate on it the moment it is announced.
    limiter: Arc<OnceLock<RateLimiter>>,
}

impl OrgTask {
    fn name(&self) -> &str {
        self.fence.org()
    }

    async fn run(
        self,
        cancel: CancellationToken,
        mut reloads: mpsc::UnboundedReceiver<()>,
    ) -> Result<()> {
        let name = self.name().to_owned();
        // The start (a pooled connection, the login, the describes, each request waiting
        // for the org's rate) ends the moment the org is stopped: nothing is written yet.
        let started = tokio::select! {
            () = cancel.cancelled() => return Ok(()),
            started = self.start(&name) => started?,
        };
        let (client, mut sync) = started;
        // The org's Change Data Capture stream and its platform event streams run beside
        // its scheduler, on the same pool; either failing ends all three, and the org
        // restarts.
        let transport: Arc<dyn EventTransport> = Arc::new(CometD::new(client.clone()));
        let events = EventStreams {
            org: name.clone(),
            db: self.pool.clone().into(),
            fence: Some(self.fence.clone()),
            client: client.clone(),
            transport,
            retention: self.settings.event_table_retention,
        };
        let stream = OrgStream {
            org: name,
            db: self.pool.into(),
            fence: Some(self.fence),
            transports: Transports::new(client.clone()),
            client,
            health: Arc::clone(sync.health()),
            settings: self.settings,
        };
        // The scheduler stops when the org is stopped or a stream fails; the streams stop
        // when the scheduler has. Each finishes what it has in flight (the scheduler its
        // turn), so that a write refused by the lease fence is seen, not dropped.
        let stop_org = cancel.child_token();
        let stop_streams = stop_org.child_token();
        let scheduling = async {
            let result = sync.run(&stop_org, &mut reloads).await;
            stop_streams.cancel();
            result
        };
        let streaming = async {
            let result = stream.run(stop_streams.clone()).await;
            if result.is_err() {
                stop_org.cancel();
            }
            result
        };
        let eventing = async {
            let result = events.run(stop_streams.clone()).await;
            if result.is_err() {
                stop_org.cancel();
            }
            result
        };
        let (scheduled, streamed, evented) = tokio::join!(scheduling, streaming, eventing);
        first_failure([scheduled, streamed, evented])
    }
}

impl OrgTask {
    /// The org's client and its scheduler, started.
    async fn start(&self, name: &str) -> Result<(Client, OrgSync)> {
        let client = {
            let db = self.pool.get().await.map_err(ControlError::from)?;
            self.connector.connect(&db, name).await?
        };
        let _ = self.limiter.set(client.limiter().clone());
        let sync = OrgSync::start_fenced(
            self.pool.clone(),
            Some(self.fence.clone()),
            client.clone(),
            name,
            self.settings.clone(),
        )
        .await?;
        Ok((client, sync))
    }
}

/// The failure an org's task ends with: a write refused by the lease fence above all (the
/// org is no longer this worker's), else the first.
fn first_failure(results: [Result<()>; 3]) -> Result<()> {
    let mut failures: Vec<_> = results.into_iter().filter_map(Result::err).collect();
    match failures.iter().position(crate::SyncError::is_fenced) {
        Some(fenced) => Err(failures.swap_remove(fenced)),
        None => failures.into_iter().next().map_or(Ok(()), Err),
    }
}

/// `host:pid`: the worker's name, shown by status as the org's holder.
fn worker_name() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| "localhost".to_owned());
    format!("{host}:{}", std::process::id())
}
