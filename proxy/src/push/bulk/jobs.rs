//! Running a plan through ingest jobs: one job per object and operation (and per 100 MB
//! of CSV), in the plan's order, one after the other, so that a child is sent only once
//! its parent's Id is known.
//!
//! Each job: created, its id journaled ([`JobLog`]) before the upload, uploaded, closed,
//! then polled every second at most, the client told its progress every few seconds,
//! until it ends; then its three result files say what became of each row. A cancel
//! aborts the job under way (Salesforce stops after the batch in hand) and creates no
//! more: its unprocessed rows, and the rows of the jobs never created, were not saved.
//!
//! An error before any job was closed refuses the whole push (nothing reached
//! Salesforce); after, the rows not yet sent are refused and the rest is kept, and rows
//! whose job could not be followed are [`Fate::Unknown`].

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sfpg_salesforce::bulk::ingest::{CsvParts, MAX_PART_BYTES, Part, Table};
use sfpg_salesforce::bulk::{IngestOperation, JobInfo, PollBackoff, RecordOutcome};
use sfpg_salesforce::{Error as SalesforceError, Record, RecordError};
use tokio::sync::mpsc::UnboundedSender;

use super::{Fate, Progress};
use crate::push::catalog::ObjectHandle;
use crate::push::plan::{Operation, Plan};

/// The longest wait between two polls of a running job.
const POLL_CAP: Duration = Duration::from_secs(1);
/// How often the client hears of a running job.
pub const PROGRESS_EVERY: Duration = Duration::from_secs(3);

/// Where a job's id is recorded before its upload (the write journal).
pub trait JobLog {
    fn job_created(&mut self, job: &JobInfo) -> impl Future<Output = ()> + Send;
}

/// The records of one job: one object and operation (and one level of creates).
#[derive(Debug)]
pub(super) struct Group {
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
    for (index, planned) in plan.records.iter().enumerate() {
        let this = (planned.operation, planned.level);
        if stage != Some(this) {
            // A new level or operation: later groups wait for every earlier one.
            open.clear();
            stage = Some(this);
        }
        let at = *open
            .entry(planned.object.object.clone())
            .or_insert_with(|| {
                groups.push(Group {
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
    /// fate, the jobs, and whether the client cancelled.
    pub async fn run<C: Future<Output = ()>>(
        mut self,
        cancelled: C,
    ) -> Result<(Vec<Fate>, Vec<JobInfo>, bool), NothingSent> {
        let mut cancelled = std::pin::pin!(cancelled);
        for group in groups(self.plan) {
            self.run_group(&group, &mut cancelled).await;
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
            .map(|fate| fate.unwrap_or_else(|| not_sent("NOT_SENT", "it was not sent")))
            .collect();
        Ok((fates, self.jobs, self.canceled))
    }

    async fn run_group<C: Future<Output = ()>>(
        &mut self,
        group: &Group,
        cancelled: &mut Pin<&mut C>,
    ) {
        let mut indexes = Vec::with_capacity(group.records.len());
        let mut records = Vec::with_capacity(group.records.len());
        for &index in &group.records {
            match self.record_of(index) {
                Ok(record) => {
                    indexes.push(index);
                    records.push(record);
                }
                Err(fate) => self.fates[index] = Some(fate),
            }
        }
        if records.is_empty() {
            return;
        }
        let why_not = if self.canceled {
            Some((
                "CANCELED",
                "the push was cancelled before its job was created",
            ))
        } else if self.stopped.is_some() {
            Some(("NOT_SENT", "the push stopped before its job was created"))
        } else {
            None
        };
        if let Some((code, message)) = why_not {
            for index in indexes {
                self.fates[index] = Some(not_sent(code, message));
            }
            return;
        }
        let table = match Table::from_records(&records) {
            Ok(table) => table,
            Err(error) => {
                self.stopped = Some(error);
                return;
            }
        };
        drop(records);
        for part in CsvParts::new(&table, MAX_PART_BYTES) {
            let part = match part {
                Ok(part) => part,
                Err(error) => {
                    self.stopped = Some(error);
                    return;
                }
            };
            let rows = part.rows.clone();
            let (job, outcomes) = self.run_part(group, &table, part, cancelled).await;
            for (row, outcome) in rows.zip(outcomes) {
                self.fates[indexes[row]] = Some(fate_of(outcome, job.as_deref(), self.canceled));
            }
        }
    }

    /// What the job sends for record `index`: its fields, with each reference to a record
    /// created earlier in the push replaced by the Id Salesforce gave it. `Err`: its
    /// parent was not created, so it is not sent.
    fn record_of(&self, index: usize) -> Result<Record, Fate> {
        let planned = &self.plan.records[index];
        if planned.operation == Operation::Delete {
            let mut record = Record::new();
            record.insert("Id".into(), planned.sfid.clone().unwrap_or_default().into());
            return Ok(record);
        }
        let mut record = planned.record.clone();
        record.remove("attributes");
        for reference in &planned.references {
            match &self.fates[reference.create] {
                Some(Fate::Accepted { id }) => {
                    record.insert(reference.field.clone(), id.clone().into());
                }
                _ => {
                    return Err(Fate::Refused {
                        job: None,
                        error: RecordError {
                            status_code: "PARENT_REFUSED".into(),
                            message: format!(
                                "the record {} refers to was not created",
                                reference.field
                            ),
                            fields: vec![reference.field.clone()],
                        },
                    });
                }
            }
        }
        Ok(record)
    }

    /// One job for one part. Returns the job's id and each row's outcome.
    async fn run_part<C: Future<Output = ()>>(
        &mut self,
        group: &Group,
        table: &Table,
        part: Part,
        cancelled: &mut Pin<&mut C>,
    ) -> (Option<String>, Vec<RecordOutcome>) {
        let rows = part.rows.len();
        let all = |outcome: RecordOutcome| vec![outcome; rows];
        let bulk = self.plan.org.client.bulk();
        let operation = ingest_operation(group.operation);
        let job = match bulk
            .create_ingest_job(&group.object.object, &operation)
            .await
        {
            Ok(job) => job,
            Err(error) => {
                self.stopped = Some(error);
                return (None, all(RecordOutcome::Unprocessed));
            }
        };
        self.log.job_created(&job).await;
        let id = Some(job.id.clone());
        if let Err(error) = bulk.upload_ingest_data(&job.id, part.csv).await {
            // Never closed, the job never runs.
            let _ = bulk.abort_ingest_job(&job.id).await;
            self.stopped = Some(error);
            return (id, all(RecordOutcome::Unprocessed));
        }
        if let Err(error) = bulk.close_ingest_job(&job.id).await {
            self.closed_any = true;
            self.stopped = Some(error);
            return (id, all(RecordOutcome::Unknown));
        }
        self.closed_any = true;
        let ended = match self.follow(&job, group, rows, cancelled).await {
            Ok(ended) => ended,
            Err(error) => {
                self.stopped = Some(error);
                return (id, all(RecordOutcome::Unknown));
            }
        };
        let outcomes = bulk.ingest_outcomes(&ended, table, part.rows).await;
        self.jobs.push(ended);
        match outcomes {
            Ok(outcomes) => (id, outcomes),
            Err(error) => {
                self.stopped = Some(error);
                (id, all(RecordOutcome::Unknown))
            }
        }
    }

    /// Polls the job until it ends, telling the client its progress; a cancel aborts it.
    async fn follow<C: Future<Output = ()>>(
        &mut self,
        job: &JobInfo,
        group: &Group,
        records: usize,
        cancelled: &mut Pin<&mut C>,
    ) -> Result<JobInfo, SalesforceError> {
        let bulk = self.plan.org.client.bulk();
        let mut waits = PollBackoff::new(POLL_CAP);
        let mut told = Instant::now();
        loop {
            let canceled = self.canceled;
            tokio::select! {
                () = tokio::time::sleep(waits.next_wait()) => {}
                () = cancelled.as_mut(), if !canceled => {
                    self.canceled = true;
                    // Refused once the job has ended, which the poll then shows.
                    if let Err(error) = bulk.abort_ingest_job(&job.id).await {
                        tracing::debug!(%error, job = %job.id, "cannot abort an ingest job");
                    }
                }
            }
            let info = bulk.ingest_job(&job.id).await?;
            let ended = info.state.is_terminal();
            if ended || told.elapsed() >= PROGRESS_EVERY {
                told = Instant::now();
                let _ = self.progress.send(Progress {
                    job_id: info.id.clone(),
                    object: group.object.object.clone(),
                    operation: group.operation.as_str(),
                    state: info.state.to_string(),
                    records,
                    processed: info.number_records_processed,
                    failed: info.number_records_failed,
                });
            }
            if ended {
                return Ok(info);
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
        error: RecordError {
            status_code: code.into(),
            message: message.into(),
            fields: Vec::new(),
        },
    }
}

fn fate_of(outcome: RecordOutcome, job: Option<&str>, canceled: bool) -> Fate {
    let job = job.map(str::to_owned);
    match outcome {
        RecordOutcome::Succeeded { id, .. } => Fate::Accepted { id },
        RecordOutcome::Failed { error, .. } => Fate::Refused { job, error },
        RecordOutcome::Unprocessed => {
            let (code, message) = if canceled {
                (
                    "CANCELED",
                    "the push was cancelled before Salesforce processed it",
                )
            } else {
                (
                    "UNPROCESSED",
                    "its job ended before Salesforce processed it",
                )
            };
            Fate::Refused {
                job,
                error: RecordError {
                    status_code: code.into(),
                    message: message.into(),
                    fields: Vec::new(),
                },
            }
        }
        RecordOutcome::Unknown => Fate::Unknown,
    }
}
