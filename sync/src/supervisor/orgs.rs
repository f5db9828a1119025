//! The orgs a worker holds: one task per org whose lease it holds, started when the lease is
//! taken, stopped when it is handed back or lost, and restarted when it fails or panics
//! (keeping the lease). Restarts back off per org ([`Backoff`]): a database that is gone
//! costs one attempt per wait, not a loop, and the first failure of a series is logged, not
//! each one. A task whose write the lease fence refused is dropped: the org is another
//! worker's now.

use std::any::Any;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use sfpg_control::connect::Pool;
use sfpg_control::leases::{self, Fence, Held};
use sfpg_control::reconnect::Backoff;
use sfpg_salesforce::RateLimiter;
use tokio::sync::mpsc;
use tokio::task::{JoinError, JoinSet};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::worker::Worker;
use super::{Connector, OrgTask};
use crate::error::{Result, SyncError};
use crate::settings::SyncSettings;
use sfpg_control::orgs::OrgSettings;

/// An org task that ran this long before it failed was healthy: its restarts start over
/// from the shortest wait.
const HEALTHY_AFTER: Duration = Duration::from_secs(30);

/// What a joined org task gives back: its org, and how it ended.
type Joined = std::result::Result<(tokio::task::Id, (String, Result<()>)), JoinError>;

/// A running org.
struct Running {
    cancel: CancellationToken,
    reload: mpsc::UnboundedSender<()>,
    /// The org's limiter, once its scheduler has a client. A new rate is set on it the
    /// moment it is announced: the scheduler reloads only between turns, and a turn at
    /// 1 request per 3 s may wait 3 s for its slot at the old rate.
    limiter: Arc<OnceLock<RateLimiter>>,
    started_at: Instant,
}

/// How an org task ended, when it did not stop as asked.
enum Failure {
    Error(SyncError),
    Panic(String),
}

pub(super) struct Orgs {
    pool: Pool,
    connector: Arc<dyn Connector>,
    settings: SyncSettings,
    /// This worker's name, the owner in its fences.
    worker: String,
    shutdown: CancellationToken,
    /// Every org whose lease this worker holds, running or resting.
    holding: BTreeMap<String, Held>,
    /// Orgs stopping to be handed back: their leases are released once they stop.
    handing_back: HashSet<String>,
    running: HashMap<String, Running>,
    tasks: JoinSet<(String, Result<()>)>,
    /// Which org each task runs, to name the org of a task that panicked.
    task_orgs: HashMap<tokio::task::Id, String>,
    /// Orgs waiting to be started again, and until when.
    resting: HashMap<String, Instant>,
    /// Each failing org's restart backoff.
    restarts: HashMap<String, Backoff>,
}

impl Orgs {
    pub(super) fn new(
        pool: Pool,
        connector: Arc<dyn Connector>,
        settings: SyncSettings,
        worker: String,
        shutdown: &CancellationToken,
    ) -> Self {
        Self {
            pool,
            connector,
            settings,
            worker,
            shutdown: shutdown.clone(),
            holding: BTreeMap::new(),
            handing_back: HashSet::new(),
            running: HashMap::new(),
            tasks: JoinSet::new(),
            task_orgs: HashMap::new(),
            resting: HashMap::new(),
            restarts: HashMap::new(),
        }
    }

    /// The orgs whose leases this worker holds.
    pub(super) fn holding(&self) -> &BTreeMap<String, Held> {
        &self.holding
    }

    /// The heartbeat renewed `renewed`: an org held but not among them was taken over (the
    /// worker was too slow to renew): it stops, without handing anything back. A lease
    /// renewed that this worker did not know it held (a take whose answer was lost with the
    /// connection) is run.
    pub(super) fn renewed(&mut self, renewed: &[Held]) {
        for held in renewed {
            if !self.holding.contains_key(&held.org) {
                tracing::info!(org = %held.org, epoch = held.epoch, "running an org whose lease this worker holds");
                self.start(held.clone());
            }
        }
        let lost: Vec<String> = self
            .holding
            .iter()
            .filter(|(_, held)| !renewed.contains(held))
            .map(|(org, _)| org.clone())
            .collect();
        for org in lost {
            tracing::warn!(org = %org, "lease lost (taken over while not renewed); stopping the org");
            self.holding.remove(&org);
            self.handing_back.remove(&org);
            self.resting.remove(&org);
            if let Some(running) = self.running.get(&org) {
                running.cancel.cancel();
            }
        }
    }

    /// Placement moved `org` elsewhere (or it was disabled): it stops between turns, and its
    /// lease is released once it has.
    pub(super) fn hand_back(&mut self, org: &str) -> Option<Held> {
        match self.running.get(org) {
            Some(running) => {
                tracing::info!(org = %org, "handing the org back");
                running.cancel.cancel();
                self.handing_back.insert(org.to_owned());
                None
            }
            // Resting: nothing runs, it goes at once.
            None => {
                self.resting.remove(org);
                self.holding.remove(org)
            }
        }
    }

    /// Starts the org whose lease was just taken.
    pub(super) fn start(&mut self, held: Held) {
        self.holding.insert(held.org.clone(), held.clone());
        self.spawn(held);
    }

    /// Starts again the held orgs whose rest is over.
    pub(super) fn restart_rested(&mut self) {
        let now = Instant::now();
        let due: Vec<String> = self
            .resting
            .iter()
            .filter(|(_, until)| **until <= now)
            .map(|(org, _)| org.clone())
            .collect();
        for org in due {
            self.resting.remove(&org);
            if let Some(held) = self.holding.get(&org).cloned()
                && !self.running.contains_key(&org)
            {
                self.spawn(held);
            }
        }
    }

    fn fence(&self, held: &Held) -> Fence {
        Fence::new(held.org.clone(), self.worker.clone(), held.epoch)
    }

    fn spawn(&mut self, held: Held) {
        let name = held.org.clone();
        let (reload, reloads) = mpsc::unbounded_channel();
        let cancel = self.shutdown.child_token();
        let task = OrgTask {
            pool: self.pool.clone(),
            connector: Arc::clone(&self.connector),
            settings: self.settings.clone(),
            fence: self.fence(&held),
            limiter: Arc::default(),
        };
        let limiter = Arc::clone(&task.limiter);
        let token = cancel.clone();
        let handle = self.tasks.spawn(async move {
            let name = task.name().to_owned();
            (name, task.run(token, reloads).await)
        });
        self.task_orgs.insert(handle.id(), name.clone());
        self.running.insert(
            name,
            Running {
                cancel,
                reload,
                limiter,
                started_at: Instant::now(),
            },
        );
    }

    /// When the next resting org may start again. Rests already over do not count: those
    /// orgs start at the next look at the enabled orgs, which needs the control connection;
    /// waking for them while it is lost would only spin.
    pub(super) fn next_restart(&self) -> Option<Instant> {
        let now = Instant::now();
        self.resting.values().filter(|at| **at > now).min().copied()
    }

    /// The next org task to end.
    pub(super) async fn join_next(&mut self) -> Option<Joined> {
        self.tasks.join_next_with_id().await
    }

    /// `sfpg_org_changed` named `org`: its scheduler reloads, and its limiter takes the
    /// org's rate at once.
    pub(super) async fn changed(&self, org: &str) {
        let Some(running) = self.running.get(org) else {
            return;
        };
        let _ = running.reload.send(());
        let Some(limiter) = running.limiter.get() else {
            return;
        };
        let settings = match self.pool.get().await {
            Ok(client) => OrgSettings::load(&**client, org).await,
            Err(error) => Err(error.into()),
        };
        match settings {
            Ok(Some(settings)) => limiter.set_rate(settings.rate),
            Ok(None) => {}
            Err(error) => tracing::warn!(org = %org, %error, "cannot read the org's rate"),
        }
    }

    /// An org task ended: as asked (handed back, lost, shutting down), refused by the lease
    /// fence (dropped), or by failing or panicking, after which it rests and starts again.
    pub(super) async fn ended(&mut self, joined: Joined, worker: &Worker) {
        let (name, outcome) = match joined {
            Ok((id, (name, result))) => {
                self.task_orgs.remove(&id);
                (name, result.map_err(Failure::Error))
            }
            Err(error) => {
                let Some(name) = self.task_orgs.remove(&error.id()) else {
                    return;
                };
                if !error.is_panic() {
                    // Aborted: only dropping the supervisor does that.
                    self.running.remove(&name);
                    return;
                }
                (name, Err(Failure::Panic(panic_message(error.into_panic()))))
            }
        };
        let Some(running) = self.running.remove(&name) else {
            return;
        };
        if self.handing_back.remove(&name) {
            if let Some(held) = self.holding.remove(&name) {
                worker.release(&held).await;
            }
            self.restarts.remove(&name);
            return;
        }
        let failure = match outcome {
            // Stopped as asked (lost, or shutting down): a later start is a new one.
            Ok(()) => {
                self.restarts.remove(&name);
                return;
            }
            Err(Failure::Error(error)) if error.is_fenced() => {
                tracing::warn!(org = %name, %error, "write refused by the lease fence: the org was taken over; dropping it");
                metrics::counter!("sfpg_lease_fenced_total", "org" => name.clone()).increment(1);
                self.holding.remove(&name);
                self.restarts.remove(&name);
                return;
            }
            Err(failure) => failure,
        };
        let Some(held) = self.holding.get(&name).cloned() else {
            // Lost meanwhile: not this worker's to restart.
            return;
        };
        // As the failure itself: a line for the first of a series, not one per attempt
        // (with the database away, every attempt fails to record it too).
        let (wait, first) = self.restart_wait(&name, &running, &failure);
        let (message, code) = match failure {
            Failure::Error(error) => (error.to_string(), error.salesforce_code()),
            Failure::Panic(panic) => (format!("the org's sync panicked: {panic}"), None),
        };
        if let Err(error) = self.record_error(&held, &message, code.as_deref()).await {
            if first {
                tracing::warn!(org = %name, %error, "cannot record the org's error");
            } else {
                tracing::debug!(org = %name, %error, "cannot record the org's error again");
            }
        }
        self.resting.insert(name, Instant::now() + wait);
    }

    /// Records the org's failure, under its lease.
    async fn record_error(&self, held: &Held, message: &str, code: Option<&str>) -> Result<()> {
        let mut client = self
            .pool
            .get()
            .await
            .map_err(sfpg_control::ControlError::from)?;
        let fence = self.fence(held);
        let transaction = leases::begin(&mut **client, Some(&fence), None).await?;
        OrgSettings::record_error(&transaction, &held.org, Some(message), code).await?;
        transaction.commit().await?;
        Ok(())
    }

    /// How long a failed org rests, and whether the failure starts a series; it is logged
    /// if it does (or is a panic, which is always a bug worth a line).
    fn restart_wait(
        &mut self,
        name: &str,
        running: &Running,
        failure: &Failure,
    ) -> (Duration, bool) {
        let backoff = self.restarts.entry(name.to_owned()).or_default();
        if running.started_at.elapsed() >= HEALTHY_AFTER {
            backoff.succeeded();
        }
        let first = backoff.failures() == 0;
        let wait = backoff.failed();
        match failure {
            Failure::Panic(panic) => {
                tracing::error!(org = %name, %panic, ?wait, "org sync panicked; restarting it");
            }
            Failure::Error(error) if first => {
                tracing::error!(org = %name, %error, ?wait, "org sync stopped; restarting it with backoff");
            }
            Failure::Error(error) => {
                tracing::debug!(org = %name, %error, ?wait, attempts = backoff.failures(), "org sync failed again");
            }
        }
        (wait, first)
    }

    /// Stops every org at once: all are cancelled together, those that finish their turn
    /// (or their start) within `grace` end there, and the rest are aborted where they wait
    /// (a rate limiter's slot, a pooled connection, a request), which rolls back any
    /// transaction they had open. The worker then leaves, handing every lease back in one
    /// statement. Waiting for each org's turn instead would take minutes with hundreds of
    /// orgs at 1 request per 3 s sharing a pool of 16 connections.
    pub(super) async fn stop_all(mut self, worker: &Worker, grace: Duration) {
        let started = Instant::now();
        let orgs = self.running.len();
        tracing::debug!(worker = %worker.name(), orgs, "stopping every org");
        for org in self.running.values() {
            org.cancel.cancel();
        }
        if tokio::time::timeout(grace, self.drain()).await.is_err() {
            tracing::info!(
                left = self.tasks.len(),
                ?grace,
                "aborting the orgs still busy after the grace"
            );
            self.tasks.abort_all();
            self.drain().await;
        }
        tracing::info!(orgs, took = ?started.elapsed(), "every org stopped");
    }

    /// Waits for every org task to end, logging failures and panics.
    async fn drain(&mut self) {
        while let Some(joined) = self.tasks.join_next_with_id().await {
            match joined {
                Ok((_, (name, Err(error)))) => {
                    tracing::warn!(org = %name, %error, "org sync failed while stopping");
                }
                Err(error) if error.is_panic() => {
                    let name = self.task_orgs.remove(&error.id()).unwrap_or_default();
                    let panic = panic_message(error.into_panic());
                    tracing::error!(org = %name, %panic, "org sync panicked while stopping");
                }
                _ => {}
            }
        }
    }
}

/// A panic's message, when it has one (`panic!` with a literal or a format).
fn panic_message(payload: Box<dyn Any + Send>) -> String {
    match payload.downcast::<String>() {
        Ok(message) => *message,
        Err(payload) => payload
            .downcast_ref::<&str>()
            .map_or_else(|| "(no message)".to_owned(), |m| (*m).to_owned()),
    }
}
