//! One org's scheduler: round-robin over the org's objects, one request per turn, every
//! request through the org's one rate limiter, and the daily-budget guard in front.
//!
//! A turn picks the next object that has work and runs one step for it. A failed step never
//! stops the org: the object rests, pauses or is described again, as the error calls for;
//! only a lost mirror connection ends the scheduler (and its supervisor starts it again).

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sfpg_salesforce::{Client, ErrorClass};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::budget::{BudgetGuard, Verdict};
use crate::db::Database;
use crate::error::{Reaction, Result, SyncError};
use crate::object::{ObjectSync, Task, chrono_duration};
use crate::settings::SyncSettings;
use crate::source::{RestSource, Source};
use crate::steps::{self, Context, Outcome};
use crate::stream::StreamHealth;
use crate::telemetry;
use sfpg_control::events::is_platform_event;
use sfpg_control::leases::{self, Fence};
use sfpg_control::objects::{ObjectState, Phase};
use sfpg_control::orgs::OrgSettings;
use sfpg_control::plan::MirroredField;

/// What one turn did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TurnReport {
    /// A step ran for `object`.
    Worked {
        object: String,
        task: Task,
        outcome: Outcome,
    },
    /// A step failed; the object (or the org) reacts as `reaction` says.
    Failed {
        object: String,
        task: Task,
        error: String,
        reaction: Reaction,
    },
    /// The paused org sent its probe request.
    Probed { resumed: bool },
    /// Nothing to do before `until` (or before something changes).
    Idle { until: Option<Instant> },
}

/// An org being synced.
pub struct OrgSync {
    org: OrgSettings,
    client: Client,
    source: Arc<dyn Source>,
    db: Database,
    /// The org's lease, which every write checks; `None` when this scheduler is the org's
    /// only writer by construction (a test, a benchmark).
    fence: Option<Fence>,
    settings: SyncSettings,
    objects: Vec<ObjectSync>,
    next: usize,
    budget: BudgetGuard,
    /// After the org's credentials were refused, the whole org rests until then.
    org_resume_at: Option<DateTime<Utc>>,
    /// An org-wide error may stand in `sfpg.orgs` (recorded here, by the supervisor, or by
    /// an earlier run): the next step that succeeds clears it.
    org_error_recorded: bool,
    /// Shared with the org's Change Data Capture stream.
    health: Arc<StreamHealth>,
}

impl std::fmt::Debug for OrgSync {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OrgSync")
            .field("org", &self.org.name)
            .field(
                "objects",
                &self
                    .objects
                    .iter()
                    .map(ObjectSync::name)
                    .collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

impl OrgSync {
    /// Loads the org's settings and objects from the control schema and sets the client's
    /// rate limiter to the org's rate. `client` must be the org's, at background priority.
    pub async fn start(
        db: impl Into<Database>,
        client: Client,
        org: &str,
        settings: SyncSettings,
    ) -> Result<Self> {
        Self::start_fenced(db, None, client, org, settings).await
    }

    /// [`OrgSync::start`] under the org's lease: every write checks `fence`, and the first
    /// one refused ends the scheduler ([`SyncError::is_fenced`]).
    pub async fn start_fenced(
        db: impl Into<Database>,
        fence: Option<Fence>,
        client: Client,
        org: &str,
        settings: SyncSettings,
    ) -> Result<Self> {
        let mut db = db.into();
        let mut connection = db.get().await?;
        let settings_row = OrgSettings::load(&*connection, org)
            .await?
            .ok_or_else(|| SyncError::UnknownOrg(org.to_owned()))?;
        client.limiter().set_rate(settings_row.rate);
        // A pause from an earlier run is re-decided by the first answer's usage.
        if settings_row.paused_reason.is_some() {
            let transaction = leases::begin(&mut *connection, fence.as_ref(), None).await?;
            OrgSettings::set_paused(&transaction, org, None).await?;
            transaction.commit().await?;
        }
        drop(connection);
        let mut sync = Self {
            source: Arc::new(RestSource::new(client.clone())),
            org: settings_row,
            client,
            db,
            fence,
            settings,
            objects: Vec::new(),
            next: 0,
            budget: BudgetGuard::new(),
            org_resume_at: None,
            org_error_recorded: true,
            health: Arc::default(),
        };
        sync.reload_objects().await?;
        Ok(sync)
    }

    /// Uses another record source (the Bulk API 2.0, Change Data Capture) instead of SOQL.
    pub fn with_source(mut self, source: Arc<dyn Source>) -> Self {
        self.source = source;
        self
    }

    /// Shares `health` with the org's stream, which tells which objects it keeps current.
    pub fn with_health(mut self, health: Arc<StreamHealth>) -> Self {
        self.health = health;
        self
    }

    /// What the scheduler shares with the org's stream.
    pub fn health(&self) -> &Arc<StreamHealth> {
        &self.health
    }

    /// The org's name.
    pub fn name(&self) -> &str {
        &self.org.name
    }

    /// The org's settings as last loaded.
    pub fn org(&self) -> &OrgSettings {
        &self.org
    }

    /// Where the scheduler's connections come from.
    pub fn database(&mut self) -> &mut Database {
        &mut self.db
    }

    /// The org's lease, if it runs under one.
    pub fn fence(&self) -> Option<&Fence> {
        self.fence.as_ref()
    }

    /// The org's objects.
    pub fn objects(&self) -> &[ObjectSync] {
        &self.objects
    }

    /// The object named `name`.
    pub fn object(&self, name: &str) -> Option<&ObjectSync> {
        self.objects
            .iter()
            .find(|o| o.name().eq_ignore_ascii_case(name))
    }

    /// Why background polling is paused, if it is.
    pub fn paused_reason(&self) -> Option<&str> {
        self.budget.paused_reason()
    }

    /// Reads the org's row and objects again: a new rate, batch size or budget share takes
    /// effect at once (the rate even for a request already waiting), objects enabled or
    /// added start, objects disabled or removed stop.
    pub async fn reload(&mut self) -> Result<()> {
        let org = OrgSettings::load(&*self.db.get().await?, &self.org.name)
            .await?
            .ok_or_else(|| SyncError::UnknownOrg(self.org.name.clone()))?;
        if org.rate != self.org.rate {
            tracing::info!(org = %org.name, rate = ?org.rate, "rate limit changed");
            self.client.limiter().set_rate(org.rate);
        }
        if org.max_daily_share != self.org.max_daily_share && self.budget.paused_reason().is_some()
        {
            // A new share may allow polling again: the next request's usage decides, as a
            // probe's would, rather than the next probe minutes from now.
            tracing::info!(org = %org.name, share = org.max_daily_share, "daily budget changed; polling resumes unless usage is above it");
            self.budget = BudgetGuard::new();
            self.set_paused(None).await?;
        }
        let before = self.stream_settings();
        let org_changed = org != self.org;
        self.org = org;
        self.reload_objects().await?;
        // The stream subscribes again only for a change it follows: a NOTIFY that any
        // role may send, with nothing changed, costs two reads and no request to
        // Salesforce.
        if org_changed || self.stream_settings() != before {
            self.health.settings_changed();
        }
        Ok(())
    }

    /// What of the objects the stream follows: each one's name, whether it is enabled,
    /// its phase, generation and mirrored fields.
    fn stream_settings(&self) -> Vec<(String, bool, Phase, i64, Vec<MirroredField>)> {
        self.objects
            .iter()
            .map(|o| {
                (
                    o.name().to_owned(),
                    o.state.enabled,
                    o.state.phase,
                    o.state.generation,
                    o.state.mirrored_fields.clone(),
                )
            })
            .collect()
    }

    async fn reload_objects(&mut self) -> Result<()> {
        let rows = ObjectState::load_all(&*self.db.get().await?, &self.org.name).await?;
        let mut objects = Vec::with_capacity(rows.len());
        // Platform events are streamed into their tables (`crate::events`), never polled.
        for row in rows.into_iter().filter(|r| !is_platform_event(&r.object)) {
            let existing = self
                .objects
                .iter()
                .position(|o| o.name() == row.object)
                .map(|i| self.objects.swap_remove(i));
            match existing {
                // The row is what this scheduler last saved, plus the operator's columns
                // (enabled, paused_reason): take it, keeping the sweeps under way.
                Some(mut object)
                    if object.state.generation == row.generation
                        && object.state.phase == row.phase
                        && object.state.mirrored_fields == row.mirrored_fields =>
                {
                    object.state = row;
                    objects.push(object);
                }
                // Someone started the object over (`sfpg objects resync`), or it is new.
                _ => objects.push(ObjectSync::resume(row, &self.org.schema, &self.settings)?),
            }
        }
        self.objects = objects;
        self.next = self.next.min(self.objects.len().saturating_sub(1));
        Ok(())
    }

    /// Runs one turn: at most one request to Salesforce.
    pub async fn turn(&mut self) -> Result<TurnReport> {
        #[cfg(feature = "failpoints")]
        crate::failpoints::before_turn(&self.org.name);
        let now = Utc::now();
        if let Some(at) = self.org_resume_at.filter(|at| *at > now) {
            return Ok(TurnReport::Idle {
                until: Some(instant_at(at)),
            });
        }
        self.org_resume_at = None;
        if let Some(probe_at) = self.budget.next_probe() {
            if Instant::now() < probe_at {
                return Ok(TurnReport::Idle {
                    until: Some(probe_at),
                });
            }
            return self.probe().await;
        }
        for object in &mut self.objects {
            object.streamed = self.health.is_streamed(object.name());
            if self.health.take_poll_now(object.name()) {
                object.poll_now = true;
            }
        }
        let count = self.objects.len();
        let chosen = (0..count).map(|i| (self.next + i) % count).find_map(|i| {
            self.objects[i]
                .next_task(now, &self.settings)
                .map(|task| (i, task))
        });
        let Some((index, task)) = chosen else {
            return Ok(TurnReport::Idle {
                until: self.earliest_work().map(instant_at),
            });
        };
        self.next = (index + 1) % count;
        self.run_step(index, task).await
    }

    /// When an object that has nothing to do now will have something: the end of a rest,
    /// a paused object's next describe, the next poll of a query job.
    fn earliest_work(&self) -> Option<DateTime<Utc>> {
        self.objects
            .iter()
            .filter(|o| o.state.enabled)
            .filter_map(|o| match (o.resume_at, o.state.paused_reason.is_some()) {
                (Some(at), _) => Some(at),
                (None, true) => Some(o.next_describe_at),
                (None, false) => [o.next_poll_at(), o.next_safety_poll(&self.settings)]
                    .into_iter()
                    .flatten()
                    .min(),
            })
            .min()
    }

    async fn run_step(&mut self, index: usize, task: Task) -> Result<TurnReport> {
        let may_read_ahead = self
            .objects
            .iter()
            .enumerate()
            .all(|(i, o)| i == index || o.read_ahead.is_none());
        let object = &mut self.objects[index];
        let name = object.name().to_owned();
        let span =
            tracing::info_span!("sync.step", org = %self.org.name, object = %name, task = %task);
        let mut connection = self.db.get().await?;
        let mut context = Context {
            client: &self.client,
            source: &*self.source,
            db: &mut connection,
            fence: self.fence.as_ref(),
            org: &self.org,
            settings: &self.settings,
            may_read_ahead,
        };
        let started = Utc::now();
        if task == Task::Changes && object.state.cursor_id.is_none() {
            object.changes_pass_started = Some(started);
        }
        let phase_before = object.state.phase;
        let result = steps::run(&mut context, object, task)
            .instrument(span)
            .await;
        drop(connection);
        object.record_turn(task);
        if object.state.phase != phase_before {
            // An object that turned live may join the org's stream.
            self.health.settings_changed();
        }
        if result.is_ok() && task == Task::Changes {
            object.changes_polled_at = Some(started);
            object.poll_now = false;
            // Caught up: every change committed before the request is in the mirror, which
            // ends a catch-up of the stream that began before it.
            if object.state.cursor_id.is_none() && object.state.bulk.is_none() {
                self.health.caught_up(object.name(), started);
            }
        }
        if result.is_ok() && task != Task::Describe {
            object.redescribed_for_data = false;
        }
        if result.is_ok() && self.org_error_recorded {
            let org = &self.org.name;
            self.db
                .write(self.fence.as_ref(), async |t| {
                    OrgSettings::record_error(t, org, None, None).await
                })
                .await?;
            self.org_error_recorded = false;
        }
        self.after_request().await?;
        match result {
            Ok(outcome) => {
                tracing::debug!(org = %self.org.name, object = %name, %task, ?outcome, "step done");
                telemetry::step_done(
                    &self.org.name,
                    &name,
                    task,
                    outcome.written + outcome.deleted,
                );
                Ok(TurnReport::Worked {
                    object: name,
                    task,
                    outcome,
                })
            }
            Err(error) => self.failed(index, task, error).await,
        }
    }

    /// Reacts to a failed step.
    async fn failed(&mut self, index: usize, task: Task, error: SyncError) -> Result<TurnReport> {
        let object = &mut self.objects[index];
        let mut reaction = error.reaction();
        // A describe that says the object or field is gone must not loop on itself.
        if reaction == Reaction::Redescribe && task == Task::Describe {
            reaction = Reaction::PauseObject;
        }
        // A page that does not fit the table may come from a field whose type changed
        // since the last describe: look before giving up.
        if error.is_data_error() && !object.redescribed_for_data {
            object.redescribed_for_data = true;
            reaction = Reaction::Redescribe;
        }
        let message = error.to_string();
        let name = object.name().to_owned();
        tracing::warn!(org = %self.org.name, object = %name, %task, ?reaction, error = %message, "step failed");
        let now = Utc::now();
        let backoff = chrono_duration(self.settings.error_backoff);
        match reaction {
            Reaction::Reconnect => return Err(error),
            Reaction::OrgLimit => {
                if let Verdict::Paused(reason) = self
                    .budget
                    .pause(message.clone(), self.settings.budget_probe_interval)
                {
                    let mut connection = self.db.get().await?;
                    let transaction =
                        leases::begin(&mut *connection, self.fence.as_ref(), None).await?;
                    OrgSettings::set_paused(&transaction, &self.org.name, Some(&reason)).await?;
                    transaction.commit().await?;
                }
            }
            Reaction::OrgAuth => {
                self.org_resume_at = Some(now + backoff);
                let mut connection = self.db.get().await?;
                let transaction =
                    leases::begin(&mut *connection, self.fence.as_ref(), None).await?;
                OrgSettings::record_error(
                    &transaction,
                    &self.org.name,
                    Some(&message),
                    error.salesforce_code().as_deref(),
                )
                .await?;
                transaction.commit().await?;
                self.org_error_recorded = true;
            }
            Reaction::Redescribe => object.describe_requested = true,
            Reaction::PauseObject => {}
            Reaction::Retry => object.resume_at = Some(now + backoff),
        }
        let mut next = object.state.clone();
        next.requests += 1;
        next.last_error = Some(message.clone());
        next.last_error_code = error.salesforce_code();
        next.last_error_at = Some(now);
        if reaction == Reaction::PauseObject {
            next.paused_reason = Some(message.clone());
            object.next_describe_at = now + chrono_duration(self.settings.describe_interval);
        }
        let mut connection = self.db.get().await?;
        let transaction = leases::begin(&mut *connection, self.fence.as_ref(), None).await?;
        next.save(&transaction).await?;
        transaction.commit().await?;
        object.state = next;
        Ok(TurnReport::Failed {
            object: name,
            task,
            error: message,
            reaction,
        })
    }

    /// Records the usage Salesforce reported, and pauses or resumes polling by it.
    async fn after_request(&mut self) -> Result<()> {
        let usage = self.client.api_usage();
        if let Some(usage) = &usage {
            self.record_usage(usage).await?;
        }
        let verdict = self.budget.observe(
            usage.as_ref(),
            self.org.max_daily_share,
            self.settings.budget_probe_interval,
        );
        match verdict {
            Verdict::Continue => {}
            Verdict::Paused(reason) => {
                tracing::warn!(org = %self.org.name, %reason, "background polling paused");
                self.set_paused(Some(&reason)).await?;
            }
            Verdict::Resumed => {
                tracing::info!(org = %self.org.name, "background polling resumed");
                self.set_paused(None).await?;
            }
        }
        Ok(())
    }

    /// Records why polling is paused (or that it is not), under the org's lease.
    async fn set_paused(&mut self, reason: Option<&str>) -> Result<()> {
        let mut connection = self.db.get().await?;
        let transaction = leases::begin(&mut *connection, self.fence.as_ref(), None).await?;
        OrgSettings::set_paused(&transaction, &self.org.name, reason).await?;
        transaction.commit().await?;
        Ok(())
    }

    /// Records the API usage Salesforce reported, under the org's lease.
    async fn record_usage(&mut self, usage: &sfpg_salesforce::ApiUsage) -> Result<()> {
        let mut connection = self.db.get().await?;
        let transaction = leases::begin(&mut *connection, self.fence.as_ref(), None).await?;
        OrgSettings::record_usage(&transaction, &self.org.name, usage).await?;
        transaction.commit().await?;
        Ok(())
    }

    /// While paused, one cheap request (a conditional Describe Global, usually 304) to read
    /// the usage again.
    async fn probe(&mut self) -> Result<TurnReport> {
        let answer = self
            .client
            .describe_global_if_modified_since(Utc::now())
            .await;
        let usage = self.client.api_usage();
        let refused = match &answer {
            Err(error) if error.class() == ErrorClass::Limit => Some(error.to_string()),
            Err(error) => {
                tracing::warn!(org = %self.org.name, %error, "the budget probe failed");
                None
            }
            Ok(_) => None,
        };
        if let Some(reason) = refused {
            self.budget
                .pause(reason, self.settings.budget_probe_interval);
            if let Some(usage) = &usage {
                self.record_usage(usage).await?;
            }
            return Ok(TurnReport::Probed { resumed: false });
        }
        if usage.is_none() && answer.is_ok() {
            // Nothing says the budget is spent: go on, and let the next answer decide.
            self.budget = BudgetGuard::new();
            self.set_paused(None).await?;
            return Ok(TurnReport::Probed { resumed: true });
        }
        let before = self.budget.paused_reason().is_some();
        self.after_request().await?;
        if before && self.budget.paused_reason().is_some() {
            // Still above the share: wait another interval.
            let reason = self.budget.paused_reason().unwrap_or_default().to_owned();
            self.budget
                .pause(reason, self.settings.budget_probe_interval);
        }
        Ok(TurnReport::Probed {
            resumed: self.budget.paused_reason().is_none(),
        })
    }

    /// Runs turns until `shutdown`, reloading the org whenever `reload` says it changed.
    pub async fn run(
        &mut self,
        shutdown: &CancellationToken,
        reload: &mut mpsc::UnboundedReceiver<()>,
    ) -> Result<()> {
        tracing::info!(org = %self.org.name, objects = self.objects.len(), rate = ?self.org.rate, "syncing");
        loop {
            let report = {
                let turn = self.turn();
                tokio::pin!(turn);
                tokio::select! {
                    report = &mut turn => report?,
                    () = shutdown.cancelled() => {
                        // The turn in flight (one request, then its page and checkpoint in
                        // one transaction) is let finish, so a stop wastes no request; a
                        // turn still waiting for its rate is dropped after a while.
                        match tokio::time::timeout(FINISH_TURN_WITHIN, turn).await {
                            Err(_) => tracing::info!("stopped waiting for the turn in flight"),
                            // The org was taken over while the turn ran: its write was
                            // refused, which the supervisor must hear of.
                            Ok(Err(error)) if error.is_fenced() => return Err(error),
                            Ok(_) => {}
                        }
                        return Ok(());
                    }
                }
            };
            let mut changed = false;
            while reload.try_recv().is_ok() {
                changed = true;
            }
            if changed {
                self.reload().await?;
                continue;
            }
            if let TurnReport::Idle { until } = report {
                // Wake for the next due work, a change of settings, or shutdown; and at
                // least every few seconds, as timers come due without telling anyone.
                let wake = until
                    .unwrap_or_else(|| Instant::now() + IDLE_RECHECK)
                    .min(Instant::now() + IDLE_RECHECK);
                tokio::select! {
                    () = shutdown.cancelled() => return Ok(()),
                    Some(()) = reload.recv() => self.reload().await?,
                    () = tokio::time::sleep_until(wake) => {}
                }
            }
        }
    }
}

/// How long a turn in flight at shutdown is given to finish.
const FINISH_TURN_WITHIN: Duration = Duration::from_secs(10);

/// The longest an idle scheduler sleeps before looking at its timers again.
const IDLE_RECHECK: Duration = Duration::from_secs(1);

/// The monotonic instant at a wall-clock time (now, if it has passed).
fn instant_at(at: DateTime<Utc>) -> Instant {
    let wait = (at - Utc::now()).to_std().unwrap_or(Duration::ZERO);
    Instant::now() + wait
}
