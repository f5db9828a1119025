//! Running a plan through ingest jobs: one job per object and operation (and per 100 MB
//! of CSV), stage after stage in the plan's order (each level of creates, then the
//! updates, then the deletes), so that a child is sent only once its parent's Id is known.
//! The jobs of one stage, one per object, run side by side, at most
//! [`CONCURRENT_JOBS`] at a time: Salesforce runs them in parallel, and none waits on
//! another's Ids.
//!
//! Each job: created, its id journaled ([`JobLog`]) before the upload, uploaded, closed,
//! then polled as often as the client is told its progress (every few seconds), sooner
//! when its pace says it is about to end, until it ends; then its three result files say what became of each row. A cancel
//! aborts every job under way (Salesforce stops after the batch in hand) and creates no
//! more: their unprocessed rows, and the rows of the jobs never created, were not saved.
//!
//! A job's CSV is written straight from the plan's records, one at a time, its parents'
//! Ids filled in ([`group`]); what is kept to join its results back is a key per row.
//!
//! An error before any job was closed refuses the whole push (nothing reached
//! Salesforce); after, the rows not yet sent are refused and the rest is kept, and rows
//! whose job could not be followed are [`Fate::Unknown`].

mod group;

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;
use futures::stream::{FuturesUnordered, StreamExt};
use sfpg_salesforce::bulk::{IngestOperation, JobInfo, RecordOutcome};
use sfpg_salesforce::{Error as SalesforceError, RecordError};
use tokio::sync::mpsc::UnboundedSender;
use tokio::sync::{mpsc, oneshot, watch};

use self::group::{GroupDone, Shared};
use super::{Fate, Progress};
use crate::push::catalog::ObjectHandle;
use crate::push::plan::{Operation, Plan, Planned};

/// The most jobs of one stage running at once.
pub const CONCURRENT_JOBS: usize = 4;

/// How often the client hears of a running job.
pub const PROGRESS_EVERY: Duration = Duration::from_secs(3);
/// The longest wait between two polls of a running job: the client hears of its progress
/// that often, and a job of some minutes (Salesforce's pace) costs one API request per
/// notice, not one a second. A job about to end is polled sooner, by its pace.
const POLL_CAP: Duration = PROGRESS_EVERY;

/// Where a job's id is recorded before its upload (the write journal).
pub trait JobLog {
    fn job_created(&mut self, job: &JobInfo) -> impl Future<Output = ()> + Send;
}

/// The records of one job: one object and operation (and one level of creates).
#[derive(Debug)]
pub(super) struct Group {
    /// Groups of one stage (operation and level) may run side by side.
    pub(super) stage: usize,
    pub(super) operation: Operation,
    pub(super) object: Arc<ObjectHandle>,
    pub(super) records: Vec<usize>,
}

/// The plan's jobs, in order: its records grouped by operation, level and object.
pub(super) fn groups(plan: &Plan) -> Vec<Group> {
    let mut groups: Vec<Group> = Vec::new();
    // Within one operation and level: the group of each object.
    let mut open: HashMap<String, usize> = HashMap::new();
    let mut stage = None;
    let mut stages = 0;
    for (index, planned) in plan.records.iter().enumerate() {
        let this = (planned.operation, planned.level);
        if stage != Some(this) {
            // A new level or operation: later groups wait for every earlier one.
            open.clear();
            stage = Some(this);
            stages += 1;
        }
        let at = *open
            .entry(planned.object.object.clone())
            .or_insert_with(|| {
                groups.push(Group {
                    stage: stages,
                    operation: planned.operation,
                    object: Arc::clone(&planned.object),
                    records: Vec::new(),
                });
                groups.len() - 1
            });
        groups[at].records.push(index);
    }
    groups
}

/// The groups cut into stages, in order.
fn stages(groups: Vec<Group>) -> Vec<Vec<Group>> {
    let mut stages: Vec<Vec<Group>> = Vec::new();
    for group in groups {
        match stages.last_mut() {
            Some(stage) if stage.first().is_some_and(|g| g.stage == group.stage) => {
                stage.push(group);
            }
            _ => stages.push(vec![group]),
        }
    }
    stages
}

/// Why the push stopped before any record could have been saved.
#[derive(Debug)]
pub struct NothingSent(pub SalesforceError);

/// Runs a plan's jobs.
pub struct Runner<'p, L> {
    plan: &'p Plan,
    log: L,
    progress: UnboundedSender<Progress>,
    fates: Vec<Option<Fate>>,
    jobs: Vec<JobInfo>,
    canceled: bool,
    /// What stopped the jobs: later records are not sent.
    stopped: Option<SalesforceError>,
    /// Whether a job was closed: from then on, Salesforce may have saved records.
    closed_any: bool,
}

impl<'p, L: JobLog> Runner<'p, L> {
    pub fn new(plan: &'p Plan, log: L, progress: UnboundedSender<Progress>) -> Self {
        Runner {
            plan,
            log,
            progress,
            fates: vec![None; plan.records.len()],
            jobs: Vec::new(),
            canceled: false,
            stopped: None,
            closed_any: false,
        }
    }

    /// Runs every job; `cancelled` resolves on the client's cancel. Returns each record's
    /// fate (a record the cancel kept from Salesforce is `CANCELED`) and the jobs.
    pub async fn run<C: Future<Output = ()>>(
        mut self,
        cancelled: C,
    ) -> Result<(Vec<Fate>, Vec<JobInfo>), NothingSent> {
        let mut cancelled = std::pin::pin!(cancelled);
        let (cancel, _) = watch::channel(false);
        for stage in stages(groups(self.plan)) {
            self.run_stage(&stage, &mut cancelled, &cancel).await;
            if let Some(error) = self.stopped.take() {
                if !self.closed_any {
                    return Err(NothingSent(error));
                }
                tracing::warn!(%error, "a bulk push stopped; the records not yet sent are refused");
                self.stopped = Some(error);
            }
        }
        let fates = self
            .fates
            .into_iter()
            .map(|fate| fate.unwrap_or_else(|| not_sent(NOT_SENT, "it was not sent")))
            .collect();
        Ok((fates, self.jobs))
    }

    /// Runs the jobs of one stage side by side, at most [`CONCURRENT_JOBS`] at once; a
    /// group started after a cancel or a stop is not sent. Each job's id is journaled here,
    /// one at a time and in the order the jobs were created, before its upload.
    async fn run_stage<C: Future<Output = ()>>(
        &mut self,
        stage: &[Group],
        cancelled: &mut Pin<&mut C>,
        cancel: &watch::Sender<bool>,
    ) {
        let (logs, mut to_log) = mpsc::channel::<(JobInfo, oneshot::Sender<()>)>(1);
        let shared = Shared {
            plan: self.plan,
            progress: self.progress.clone(),
            cancel: cancel.subscribe(),
            logs,
        };
        // The groups of a stage refer only to earlier stages' records: their fates are
        // read as they are, and this stage's are written once it has ended.
        let fates = &self.fates;
        let mut waiting = stage.iter();
        let mut running = FuturesUnordered::new();
        let mut done: Vec<GroupDone> = Vec::new();
        loop {
            if !self.canceled && cancelled.as_mut().now_or_never().is_some() {
                self.canceled = true;
                cancel.send_replace(true);
            }
            let stopped = done.iter().any(|d| d.stopped.is_some());
            while running.len() < CONCURRENT_JOBS {
                let Some(group) = waiting.next() else { break };
                let why_not = if self.canceled {
                    Some((
                        CANCELED,
                        "the push was cancelled before its job was created",
                    ))
                } else if stopped || self.stopped.is_some() {
                    Some((NOT_SENT, "the push stopped before its job was created"))
                } else {
                    None
                };
                running.push(group::run(&shared, fates, group, why_not));
            }
            if running.is_empty() {
                break;
            }
            let canceled = self.canceled;
            tokio::select! {
                Some(ended) = running.next() => done.push(ended),
                Some((job, logged)) = to_log.recv() => {
                    self.log.job_created(&job).await;
                    let _ = logged.send(());
                }
                () = cancelled.as_mut(), if !canceled => {
                    self.canceled = true;
                    cancel.send_replace(true);
                }
            }
        }
        drop(running);
        for ended in done {
            for (index, fate) in ended.fates {
                self.fates[index] = Some(fate);
            }
            self.jobs.extend(ended.jobs);
            self.closed_any |= ended.closed_any;
            if self.stopped.is_none() {
                self.stopped = ended.stopped;
            }
        }
    }
}

fn ingest_operation(operation: Operation) -> IngestOperation {
    match operation {
        Operation::Create => IngestOperation::Insert,
        Operation::Update => IngestOperation::Update,
        Operation::Delete => IngestOperation::Delete,
    }
}

fn not_sent(code: &str, message: &str) -> Fate {
    Fate::Refused {
        job: None,
        error: Box::new(RecordError {
            status_code: code.into(),
            message: message.into(),
            fields: Vec::new(),
        }),
    }
}

/// The push's own codes for a record Salesforce never processed, in its fate: the client
/// cancelled first; the push stopped (an error of Salesforce's) before its job; its job
/// ended (failed or aborted) before reaching it; a record it refers to was not created.
pub(super) const CANCELED: &str = "CANCELED";
pub(super) const NOT_SENT: &str = "NOT_SENT";
pub(super) const UNPROCESSED: &str = "UNPROCESSED";
pub(super) const PARENT_REFUSED: &str = "PARENT_REFUSED";

/// Salesforce's refusal of a delete whose record is deleted already (in the recycle bin
/// or gone).
const ENTITY_IS_DELETED: &str = "ENTITY_IS_DELETED";

/// What became of `planned`, which its job (if created) ended with `outcome`.
fn fate_of(outcome: RecordOutcome, planned: &Planned, job: Option<&str>, canceled: bool) -> Fate {
    let job = job.map(str::to_owned);
    match outcome {
        RecordOutcome::Succeeded { id, .. } => Fate::Accepted { id },
        // The record is deleted in the org, as the client asked: the delete holds. Putting
        // the row back, as a refusal does, would leave the mirror a record the org no
        // longer has, and the sync's own delete of it, waiting on the client's row lock,
        // would find the row it waited for gone and skip the one put back.
        RecordOutcome::Failed { id, error }
            if planned.operation == Operation::Delete && error.status_code == ENTITY_IS_DELETED =>
        {
            Fate::Accepted {
                id: id.or_else(|| planned.sfid.clone()).unwrap_or_default(),
            }
        }
        RecordOutcome::Failed { error, .. } => Fate::Refused {
            job,
            error: Box::new(error),
        },
        RecordOutcome::Unprocessed => {
            let (code, message) = if canceled {
                (
                    CANCELED,
                    "the push was cancelled before Salesforce processed it",
                )
            } else {
                (UNPROCESSED, "its job ended before Salesforce processed it")
            };
            Fate::Refused {
                job,
                error: Box::new(RecordError {
                    status_code: code.into(),
                    message: message.into(),
                    fields: Vec::new(),
                }),
            }
        }
        RecordOutcome::Unknown => Fate::Unknown,
    }
}
