//! The orgs a supervisor runs: one task per enabled org, started and stopped as the control
//! schema says, and restarted when it fails or panics. Restarts back off per org
//! ([`Backoff`]): a database that is gone costs one attempt per wait, not a loop, and the
//! first failure of a series is logged, not each one.

use std::any::Any;
use std::collections::HashMap;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use sfpg_control::reconnect::Backoff;
use sfpg_salesforce::RateLimiter;
use tokio::sync::mpsc;
use tokio::task::{JoinError, JoinSet};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::{Connector, OrgTask, RECHECK_INTERVAL};
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
    database: tokio_postgres::Config,
    connector: Arc<dyn Connector>,
    settings: SyncSettings,
    shutdown: CancellationToken,
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
        database: tokio_postgres::Config,
        connector: Arc<dyn Connector>,
        settings: SyncSettings,
        shutdown: &CancellationToken,
    ) -> Self {
        Self {
            database,
            connector,
            settings,
            shutdown: shutdown.clone(),
            running: HashMap::new(),
            tasks: JoinSet::new(),
            task_orgs: HashMap::new(),
            resting: HashMap::new(),
            restarts: HashMap::new(),
        }
    }

    /// Starts the enabled orgs that do not run (unless resting) and stops those no longer
    /// enabled.
    pub(super) async fn start_and_stop(&mut self, control: &tokio_postgres::Client) {
        let enabled = match OrgSettings::enabled_names(control).await {
            Ok(enabled) => enabled,
            Err(error) => {
                tracing::warn!(%error, "cannot read the enabled orgs");
                return;
            }
        };
        let now = Instant::now();
        self.resting.retain(|_, until| *until > now);
        for (name, org) in &self.running {
            if !enabled.contains(name) {
                tracing::info!(org = %name, "org disabled or removed; stopping it");
                org.cancel.cancel();
            }
        }
        for name in enabled {
            if !self.running.contains_key(&name) && !self.resting.contains_key(&name) {
                self.start(name);
            }
        }
    }

    fn start(&mut self, name: String) {
        let (reload, reloads) = mpsc::unbounded_channel();
        let cancel = self.shutdown.child_token();
        let task = OrgTask {
            database: self.database.clone(),
            connector: Arc::clone(&self.connector),
            settings: self.settings.clone(),
            name: name.clone(),
            limiter: Arc::default(),
        };
        let limiter = Arc::clone(&task.limiter);
        let token = cancel.clone();
        let handle = self
            .tasks
            .spawn(async move { (task.name.clone(), task.run(token, reloads).await) });
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
    pub(super) async fn changed(&self, org: &str, control: Option<&tokio_postgres::Client>) {
        let Some(running) = self.running.get(org) else {
            return;
        };
        let _ = running.reload.send(());
        if let (Some(limiter), Some(client)) = (running.limiter.get(), control) {
            match OrgSettings::load(client, org).await {
                Ok(Some(settings)) => limiter.set_rate(settings.rate),
                Ok(None) => {}
                Err(error) => tracing::warn!(org = %org, %error, "cannot read the org's rate"),
            }
        }
    }

    /// An org task ended: as asked, because another process holds the org, or by failing
    /// or panicking, after which it rests and starts again.
    pub(super) async fn ended(&mut self, joined: Joined, control: Option<&tokio_postgres::Client>) {
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
        let failure = match outcome {
            // Stopped as asked (disabled, or shutting down): a later start is a new one.
            Ok(()) => {
                self.restarts.remove(&name);
                return;
            }
            Err(Failure::Error(SyncError::Leased(_))) => {
                tracing::info!(org = %name, "another sync process holds the org; waiting");
                self.resting.insert(name, Instant::now() + RECHECK_INTERVAL);
                return;
            }
            Err(failure) => failure,
        };
        let wait = self.restart_wait(&name, &running, &failure);
        let (message, code) = match failure {
            Failure::Error(error) => (error.to_string(), error.salesforce_code()),
            Failure::Panic(panic) => (format!("the org's sync panicked: {panic}"), None),
        };
        if let Some(client) = control
            && let Err(error) =
                OrgSettings::record_error(client, &name, Some(&message), code.as_deref()).await
        {
            tracing::warn!(org = %name, %error, "cannot record the org's error");
        }
        self.resting.insert(name, Instant::now() + wait);
    }

    /// How long a failed org rests, logging the failure if it starts a series (or is a
    /// panic, which is always a bug worth a line).
    fn restart_wait(&mut self, name: &str, running: &Running, failure: &Failure) -> Duration {
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
        wait
    }

    /// Stops every org between turns and waits for them.
    pub(super) async fn stop_all(mut self) {
        for org in self.running.values() {
            org.cancel.cancel();
        }
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
