//! The sync process: one scheduler per enabled org, started, reloaded and stopped as the
//! control schema says (`LISTEN sfpg_org_changed`), and restarted after a failure.
//!
//! Each org's scheduler holds a session advisory lock on its own connection for as long as
//! it runs, so two sync processes never sync the same org, and a process that dies (even by
//! `kill -9`) frees its orgs the moment its connections close: no lease to expire.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use futures::StreamExt;
use futures::future::BoxFuture;
use sfpg_salesforce::{Client, RateLimiter};
use sfpg_schema::control::{MasterKey, connect, orgs};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_postgres::{AsyncMessage, NoTls};
use tokio_util::sync::CancellationToken;

use crate::error::{Result, SyncError};
use crate::scheduler::OrgSync;
use crate::settings::SyncSettings;
use crate::state::OrgSettings;

/// The channel every change to `sfpg.orgs` and `sfpg.objects` is announced on.
pub const ORG_CHANGED_CHANNEL: &str = "sfpg_org_changed";

/// The first key of the per-org advisory lock ("sfps"); the second is the org name's hash.
pub(crate) const ORG_LOCK_KEY: i32 = 0x7366_7073;

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
            let stored = orgs::load(db, org, &self.key)
                .await
                .map_err(|e| SyncError::Control(format!("org {org}: {e}")))?;
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

struct Running {
    cancel: CancellationToken,
    reload: mpsc::UnboundedSender<()>,
    /// The org's limiter, once its scheduler has a client. A new rate is set on it the
    /// moment it is announced: the scheduler reloads only between turns, and a turn at
    /// 1 request per 3 s may wait 3 s for its slot at the old rate.
    limiter: Arc<OnceLock<RateLimiter>>,
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
    pub async fn run(self, shutdown: CancellationToken) -> Result<()> {
        let (control, mut notifications) = listen(&self.database).await?;
        let mut control = Some(control);
        let mut running: HashMap<String, Running> = HashMap::new();
        let mut tasks: JoinSet<(String, Result<()>)> = JoinSet::new();
        let mut resting: HashMap<String, tokio::time::Instant> = HashMap::new();
        loop {
            if control
                .as_ref()
                .is_none_or(tokio_postgres::Client::is_closed)
            {
                match listen(&self.database).await {
                    Ok((client, receiver)) => {
                        control = Some(client);
                        notifications = receiver;
                    }
                    Err(error) => {
                        tracing::warn!(%error, "cannot reach the mirror database to listen for changes");
                        control = None;
                    }
                }
            }
            if let Some(client) = &control {
                match OrgSettings::enabled_names(client).await {
                    Ok(enabled) => {
                        let now = tokio::time::Instant::now();
                        resting.retain(|_, until| *until > now);
                        for (name, org) in &running {
                            if !enabled.contains(name) {
                                tracing::info!(org = %name, "org disabled or removed; stopping it");
                                org.cancel.cancel();
                            }
                        }
                        for name in enabled {
                            if running.contains_key(&name) || resting.contains_key(&name) {
                                continue;
                            }
                            let (reload, reloads) = mpsc::unbounded_channel();
                            let cancel = shutdown.child_token();
                            let task = OrgTask {
                                database: self.database.clone(),
                                connector: Arc::clone(&self.connector),
                                settings: self.settings.clone(),
                                name: name.clone(),
                                limiter: Arc::default(),
                            };
                            let limiter = Arc::clone(&task.limiter);
                            let token = cancel.clone();
                            tasks.spawn(async move {
                                (task.name.clone(), task.run(token, reloads).await)
                            });
                            running.insert(
                                name,
                                Running {
                                    cancel,
                                    reload,
                                    limiter,
                                },
                            );
                        }
                    }
                    Err(error) => tracing::warn!(%error, "cannot read the enabled orgs"),
                }
            }
            tokio::select! {
                () = shutdown.cancelled() => break,
                notification = notifications.recv() => match notification {
                    Some(org) => {
                        if let Some(running) = running.get(&org) {
                            let _ = running.reload.send(());
                            if let (Some(limiter), Some(client)) = (running.limiter.get(), &control) {
                                match OrgSettings::load(client, &org).await {
                                    Ok(Some(settings)) => limiter.set_rate(settings.rate),
                                    Ok(None) => {}
                                    Err(error) => tracing::warn!(org = %org, %error, "cannot read the org's rate"),
                                }
                            }
                        }
                    }
                    None => control = None,
                },
                Some(joined) = tasks.join_next() => {
                    let Ok((name, result)) = joined else { continue };
                    running.remove(&name);
                    match result {
                        Ok(()) => {}
                        Err(SyncError::Leased(_)) => {
                            tracing::info!(org = %name, "another sync process holds the org; waiting");
                            resting.insert(name, tokio::time::Instant::now() + RECHECK_INTERVAL);
                        }
                        Err(error) => {
                            tracing::error!(org = %name, %error, "org sync stopped; restarting it after a pause");
                            if let Some(client) = &control {
                                let _ = OrgSettings::record_error(client, &name, Some(&error.to_string())).await;
                            }
                            resting.insert(name, tokio::time::Instant::now() + self.settings.error_backoff);
                        }
                    }
                }
                () = tokio::time::sleep(RECHECK_INTERVAL) => {}
            }
        }
        tracing::info!("shutting down");
        for org in running.values() {
            org.cancel.cancel();
        }
        while let Some(joined) = tasks.join_next().await {
            if let Ok((name, Err(error))) = joined {
                tracing::warn!(org = %name, %error, "org sync failed while stopping");
            }
        }
        Ok(())
    }
}

/// A connection that listens on [`ORG_CHANGED_CHANNEL`]; the receiver yields the payloads
/// (org names) and ends when the connection does.
async fn listen(
    database: &tokio_postgres::Config,
) -> Result<(tokio_postgres::Client, mpsc::UnboundedReceiver<String>)> {
    let (client, mut connection) = database.connect(NoTls).await?;
    let (sender, receiver) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut messages = futures::stream::poll_fn(move |cx| connection.poll_message(cx));
        while let Some(message) = messages.next().await {
            match message {
                Ok(AsyncMessage::Notification(notification)) => {
                    let _ = sender.send(notification.payload().to_owned());
                }
                Ok(_) => {}
                Err(error) => {
                    tracing::warn!(%error, "the listening connection closed");
                    break;
                }
            }
        }
    });
    client
        .batch_execute(&format!("LISTEN {ORG_CHANGED_CHANNEL}"))
        .await?;
    Ok((client, receiver))
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
    /// Handed to the supervisor (see [`Running::limiter`]).
    limiter: Arc<OnceLock<RateLimiter>>,
}

impl OrgTask {
    async fn run(
        self,
        cancel: CancellationToken,
        mut reloads: mpsc::UnboundedReceiver<()>,
    ) -> Result<()> {
        let db = connect(&self.database).await?;
        let locked: bool = db
            .query_one(
                "SELECT pg_try_advisory_lock($1, hashtext($2))",
                &[&ORG_LOCK_KEY, &self.name],
            )
            .await?
            .try_get(0)?;
        if !locked {
            return Err(SyncError::Leased(self.name));
        }
        db.execute(
            "UPDATE sfpg.orgs SET lease_owner = $2, lease_expires_at = NULL WHERE name = $1",
            &[&self.name, &lease_owner()],
        )
        .await?;
        let client = self.connector.connect(&db, &self.name).await?;
        let _ = self.limiter.set(client.limiter().clone());
        let mut sync = OrgSync::start(db, client, &self.name, self.settings).await?;
        sync.run(&cancel, &mut reloads).await?;
        sync.db()
            .execute(
                "UPDATE sfpg.orgs SET lease_owner = NULL WHERE name = $1",
                &[&self.name],
            )
            .await?;
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
