//! The sync process: one scheduler per enabled org, started, reloaded and stopped as the
//! control schema says (`LISTEN sfpg_org_changed`), and restarted after a failure or a
//! panic, with backoff.
//!
//! Each org's scheduler holds a session advisory lock on its own connection for as long as
//! it runs, so two sync processes never sync the same org, and a process that dies (even by
//! `kill -9`) frees its orgs the moment its connections close: no lease to expire.

mod listener;
mod orgs;

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use futures::future::BoxFuture;
use sfpg_control::{MasterKey, connect, orgs as stored_orgs};
use sfpg_salesforce::{Client, RateLimiter};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::error::{Result, SyncError};
use crate::events::EventStreams;
use crate::scheduler::OrgSync;
use crate::settings::SyncSettings;
use crate::stream::{OrgStream, Transports};
use listener::Listener;
use orgs::Orgs;
use sfpg_salesforce::streaming::{CometD, EventTransport};

/// How often the set of enabled orgs is read even without a notification (one may be lost
/// while the listening connection reconnects).
const RECHECK_INTERVAL: Duration = Duration::from_secs(10);

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

/// Runs every enabled org until shut down.
pub struct Supervisor {
    database: tokio_postgres::Config,
    connector: Arc<dyn Connector>,
    settings: SyncSettings,
}

impl std::fmt::Debug for Supervisor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Supervisor")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl Supervisor {
    pub fn new(
        database: tokio_postgres::Config,
        connector: Arc<dyn Connector>,
        settings: SyncSettings,
    ) -> Self {
        Self {
            database,
            connector,
            settings,
        }
    }

    /// Syncs every enabled org until `shutdown`, then stops each scheduler between turns.
    ///
    /// Fails only when the mirror database cannot be reached at the start. Later, a lost
    /// database is waited out: the listening connection and the orgs' schedulers are
    /// opened again with backoff (up to 30 s between attempts), and the outage is logged
    /// when it begins and when it ends.
    pub async fn run(self, shutdown: CancellationToken) -> Result<()> {
        let mut listener = Listener::new(self.database.clone());
        listener.open().await?;
        let mut orgs = Orgs::new(self.database, self.connector, self.settings, &shutdown);
        loop {
            if let Some(client) = listener.client().await {
                orgs.start_and_stop(client).await;
            }
            let wake = [
                Some(tokio::time::Instant::now() + RECHECK_INTERVAL),
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
                        orgs.changed(&org, listener.current()).await;
                    }
                }
                Some(joined) = orgs.join_next() => orgs.ended(joined, listener.current()).await,
                () = tokio::time::sleep_until(wake) => {}
            }
        }
        tracing::info!("shutting down");
        orgs.stop_all().await;
        Ok(())
    }
}

/// Opens a connection and drives it on the current runtime.
pub async fn connect(database: &tokio_postgres::Config) -> Result<tokio_postgres::Client> {
    Ok(connect::open(database).await?)
}

/// One org's scheduler, with its own connection and lock.
struct OrgTask {
    database: tokio_postgres::Config,
    connector: Arc<dyn Connector>,
    settings: SyncSettings,
    name: String,
    /// Handed to the supervisor, which sets a new rate on it the moment it is announced.
    limiter: Arc<OnceLock<RateLimiter>>,
}

impl OrgTask {
    async fn run(
        self,
        cancel: CancellationToken,
        mut reloads: mpsc::UnboundedReceiver<()>,
    ) -> Result<()> {
        let db = connect(&self.database).await?;
        if !stored_orgs::try_lock(&db, &self.name).await? {
            return Err(SyncError::Leased(self.name));
        }
        stored_orgs::set_lease_owner(&db, &self.name, Some(&lease_owner())).await?;
        let client = self.connector.connect(&db, &self.name).await?;
        let _ = self.limiter.set(client.limiter().clone());
        let stream_db = connect(&self.database).await?;
        let events_db = connect(&self.database).await?;
        let mut sync =
            OrgSync::start(db, client.clone(), &self.name, self.settings.clone()).await?;
        // The org's Change Data Capture stream runs beside its scheduler, on its own
        // connection; either failing ends both, and the org restarts.
        // The org's platform event objects stream into their tables beside it, over CometD,
        // on a connection of their own.
        let transport: Arc<dyn EventTransport> = Arc::new(CometD::new(client.clone()));
        let events = EventStreams {
            org: self.name.clone(),
            db: events_db,
            client: client.clone(),
            transport,
            retention: self.settings.event_table_retention,
        };
        let stream = OrgStream {
            org: self.name.clone(),
            db: stream_db,
            transports: Transports::new(client.clone()),
            client,
            health: Arc::clone(sync.health()),
            settings: self.settings,
        };
        let stop_stream = cancel.child_token();
        let streaming = stream.run(stop_stream.clone());
        let eventing = events.run(stop_stream.clone());
        tokio::pin!(streaming);
        tokio::pin!(eventing);
        let result = tokio::select! {
            result = sync.run(&cancel, &mut reloads) => {
                stop_stream.cancel();
                let _ = (&mut streaming).await;
                let _ = (&mut eventing).await;
                result
            }
            result = &mut streaming => {
                stop_stream.cancel();
                let _ = (&mut eventing).await;
                result
            }
            result = &mut eventing => {
                stop_stream.cancel();
                let _ = (&mut streaming).await;
                result
            }
        };
        result?;
        stored_orgs::set_lease_owner(sync.db(), &self.name, None).await?;
        Ok(())
    }
}

/// `host:pid`: who holds an org, for status.
fn lease_owner() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| "localhost".to_owned());
    format!("{host}:{}", std::process::id())
}
