//! One group's jobs (one object and operation of a stage): its records written as CSV
//! one at a time, straight from the plan (each reference to a record created earlier in
//! the push filled with the Id Salesforce gave it) into a part in a temporary file, a job
//! per part, uploaded from the file, each followed to its end and its results joined back
//! to the rows by their keys, a run of result rows at a time.

use std::time::Instant;

use serde_json::Value as Json;
use sfpg_salesforce::bulk::ingest::{Columns, CsvData, CsvParts, MAX_PART_BYTES, Part};
use sfpg_salesforce::bulk::{JobInfo, PollBackoff, RecordOutcome};
use sfpg_salesforce::{Error as SalesforceError, RecordError};
use tokio::sync::mpsc::UnboundedSender;
use tokio::sync::{mpsc, oneshot, watch};

use super::{
    CANCELED, Group, NOT_SENT, PARENT_REFUSED, POLL_CAP, PROGRESS_EVERY, fate_of, ingest_operation,
    not_sent,
};
use crate::push::bulk::{Fate, Progress};
use crate::push::plan::{Operation, Plan, Planned, SpoolError};

/// What the groups of a stage share.
pub(super) struct Shared<'p> {
    pub(super) plan: &'p Plan,
    pub(super) progress: UnboundedSender<Progress>,
    /// Turns `true` on the client's cancel.
    pub(super) cancel: watch::Receiver<bool>,
    /// Where a job is sent to be journaled; the answer says it was.
    pub(super) logs: mpsc::Sender<(JobInfo, oneshot::Sender<()>)>,
}

/// What became of a group.
#[derive(Default)]
pub(super) struct GroupDone {
    /// Each record's fate, by its index in the plan.
    pub(super) fates: Vec<(usize, Fate)>,
    pub(super) jobs: Vec<JobInfo>,
    /// What stopped the group: its rows not yet sent have no fate.
    pub(super) stopped: Option<SalesforceError>,
    pub(super) closed_any: bool,
}

/// Runs `group`, or with `why_not` refuses its records unsent. `fates` are those of the
/// earlier stages, which the group's references name.
pub(super) async fn run(
    shared: &Shared<'_>,
    fates: &[Option<Fate>],
    group: &Group,
    why_not: Option<(&str, &str)>,
) -> GroupDone {
    let mut run = GroupRun {
        shared,
        group,
        cancel: shared.cancel.clone(),
        done: GroupDone::default(),
    };
    // The records sent: those whose parents were all created. Their Ids are taken again
    // for each pass rather than held: 100,000 updates' Ids held as JSON cost 35 MB.
    let plan = shared.plan;
    let mut sent: Vec<usize> = Vec::with_capacity(group.records.len());
    for &index in &group.records {
        match parent_ids(&plan.records[index], fates) {
            Ok(_) => sent.push(index),
            Err(fate) => run.done.fates.push((index, fate)),
        }
    }
    if let Some((code, message)) = why_not {
        for index in sent {
            run.done.fates.push((index, not_sent(code, message)));
        }
        return run.done;
    }
    if sent.is_empty() {
        return run.done;
    }
    // A first pass names the columns (and refuses a value the CSV cannot carry before
    // anything is sent); a second writes each record as a line of its part. A record of
    // scalar values names its columns by its field names, without its values read.
    let mut columns = Columns::default();
    for &index in &sent {
        let planned = &plan.records[index];
        let ids = parent_ids(planned, fates).unwrap_or_default();
        let named = if planned.scalar {
            // As `fields` orders them: the Ids that are not fields, then the fields.
            let own_ids = ids.iter().map(|(field, _)| *field);
            columns.add_scalar_fields(own_ids.filter(|field| !planned.sends(field)));
            columns.add_scalar_fields(planned.names.iter().map(String::as_str));
            Ok(())
        } else {
            plan.values(planned).map_err(unread).and_then(|values| {
                columns
                    .add_fields(fields(planned, &values, &ids))
                    .map_err(|detail| {
                        SalesforceError::InvalidRequest(format!("record {index}: {detail}"))
                    })
            })
        };
        if let Err(error) = named {
            run.done.stopped = Some(error);
            return run.done;
        }
    }
    // Each part goes to a file as it is written: a group's part may be 100 MB, and four
    // groups run side by side.
    let mut parts = match CsvParts::spooled(columns, MAX_PART_BYTES) {
        Ok(parts) => parts,
        Err(error) => {
            run.done.stopped = Some(error);
            return run.done;
        }
    };
    for &index in &sent {
        let planned = &plan.records[index];
        let ids = parent_ids(planned, fates).unwrap_or_default();
        let pushed = match plan.values(planned) {
            Ok(values) => parts.push(fields(planned, &values, &ids)),
            Err(error) => Err(unread(error)),
        };
        match pushed {
            Ok(None) => {}
            Ok(Some(part)) => {
                run.part(part, &sent).await;
                if run.done.stopped.is_some() {
                    return run.done;
                }
            }
            Err(error) => {
                run.done.stopped = Some(error);
                return run.done;
            }
        }
    }
    match parts.finish() {
        Ok(Some(part)) => run.part(part, &sent).await,
        Ok(None) => {}
        Err(error) => run.done.stopped = Some(error),
    }
    run.done
}

/// A record's values that could not be read back from the plan's spool: the upload cannot
/// be made, as when its own file cannot be written.
fn unread(error: SpoolError) -> SalesforceError {
    SalesforceError::UploadSpool {
        source: std::io::Error::other(error),
    }
}

/// The Ids a record's line carries, by field: an update's or delete's own `Id`, and the
/// Ids of the records `planned` refers to. `Err`: a parent was not created, so the record
/// is not sent.
fn parent_ids<'p>(
    planned: &'p Planned,
    fates: &[Option<Fate>],
) -> Result<Vec<(&'p str, Json)>, Fate> {
    let own = match planned.operation {
        Operation::Create => None,
        Operation::Update | Operation::Delete => {
            Some(("Id", Json::String(planned.sfid.clone().unwrap_or_default())))
        }
    };
    let parents = planned
        .references
        .iter()
        .map(|reference| match fates.get(reference.create) {
            Some(Some(Fate::Accepted { id })) => {
                Ok((reference.field.as_str(), Json::String(id.clone())))
            }
            _ => Err(Fate::Refused {
                job: None,
                error: Box::new(RecordError {
                    status_code: PARENT_REFUSED.into(),
                    message: format!("the record {} refers to was not created", reference.field),
                    fields: vec![reference.field.clone()],
                }),
            }),
        });
    own.into_iter().map(Ok).chain(parents).collect()
}

/// What the job sends for a record: its Id (an update's and a delete's), then its fields
/// (`values`, read from the plan), each reference to a record created in the push holding
/// that record's Id (`ids`).
fn fields<'a>(
    planned: &'a Planned,
    values: &'a [Json],
    ids: &'a [(&'a str, Json)],
) -> impl Iterator<Item = (&'a str, &'a Json)> {
    let id_of = |name: &str| {
        ids.iter()
            .find(|(field, _)| *field == name)
            .map(|(_, id)| id)
    };
    let not_a_field = ids
        .iter()
        .filter(|(field, _)| !planned.sends(field))
        .map(|(field, id)| (*field, id));
    let own = planned
        .names
        .iter()
        .zip(values)
        .map(move |(name, value)| (name.as_str(), id_of(name).unwrap_or(value)));
    not_a_field.chain(own)
}

struct GroupRun<'s, 'p> {
    shared: &'s Shared<'p>,
    group: &'s Group,
    cancel: watch::Receiver<bool>,
    done: GroupDone,
}

impl GroupRun<'_, '_> {
    fn canceled(&self) -> bool {
        *self.cancel.borrow()
    }

    /// One part through one job; `rows` are the plan's indexes of the group's rows sent.
    async fn part(&mut self, part: Part, rows: &[usize]) {
        let Part {
            csv,
            rows: range,
            results,
        } = part;
        let indexes = &rows[range];
        if self.canceled() {
            let fate = || {
                not_sent(
                    CANCELED,
                    "the push was cancelled before its job was created",
                )
            };
            self.done.fates.extend(indexes.iter().map(|&i| (i, fate())));
            return;
        }
        let (job, outcomes) = self.job(csv, &results, indexes.len()).await;
        let canceled = self.canceled();
        for (&index, outcome) in indexes.iter().zip(outcomes) {
            let fate = fate_of(
                outcome,
                &self.shared.plan.records[index],
                job.as_deref(),
                canceled,
            );
            self.done.fates.push((index, fate));
        }
    }

    /// Creates, journals, uploads, closes and follows one job. Returns its id and each
    /// row's outcome.
    async fn job(
        &mut self,
        csv: CsvData,
        results: &sfpg_salesforce::bulk::ingest::PartRows,
        rows: usize,
    ) -> (Option<String>, Vec<RecordOutcome>) {
        let all = |outcome: RecordOutcome| vec![outcome; rows];
        let bulk = self.shared.plan.org.client.bulk();
        let operation = ingest_operation(self.group.operation);
        let job = match bulk
            .create_ingest_job(&self.group.object.object, &operation)
            .await
        {
            Ok(job) => job,
            Err(error) => {
                let outcomes = all(unsent("its job could not be created", &error));
                self.done.stopped = Some(error);
                return (None, outcomes);
            }
        };
        let (logged, journaled) = oneshot::channel();
        if self.shared.logs.send((job.clone(), logged)).await.is_ok() {
            let _ = journaled.await;
        }
        let id = Some(job.id.clone());
        if let Err(error) = bulk.upload_ingest_data(&job.id, csv).await {
            // Never closed, the job never runs.
            let _ = bulk.abort_ingest_job(&job.id).await;
            let outcomes = all(unsent("its job's upload failed", &error));
            self.done.stopped = Some(error);
            return (id, outcomes);
        }
        self.done.closed_any = true;
        if let Err(error) = bulk.close_ingest_job(&job.id).await {
            self.done.stopped = Some(error);
            return (id, all(RecordOutcome::Unknown));
        }
        let ended = match self.follow(&job, rows).await {
            Ok(ended) => ended,
            Err(error) => {
                self.done.stopped = Some(error);
                return (id, all(RecordOutcome::Unknown));
            }
        };
        let outcomes = bulk.ingest_outcomes(&ended, results).await;
        self.done.jobs.push(ended);
        match outcomes {
            Ok(outcomes) => (id, outcomes),
            Err(error) => {
                self.done.stopped = Some(error);
                (id, all(RecordOutcome::Unknown))
            }
        }
    }

    /// Polls the job until it ends, telling the client its progress; a cancel aborts it.
    /// The polls double from 0.2 s to [`POLL_CAP`], and come sooner when the job's pace
    /// says it is about to end (`PollBackoff::next_wait_paced`).
    async fn follow(&mut self, job: &JobInfo, records: usize) -> Result<JobInfo, SalesforceError> {
        let bulk = self.shared.plan.org.client.bulk();
        let mut waits = PollBackoff::new(POLL_CAP);
        let mut wait = waits.next_wait();
        let closed = Instant::now();
        let mut told = closed;
        let mut aborted = false;
        loop {
            let mut cancel = self.cancel.clone();
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                // The guard `wait_for` returns is dropped at once: it is not `Send`.
                Ok(()) = async { cancel.wait_for(|canceled| *canceled).await.map(drop) }, if !aborted => {
                    aborted = true;
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
                let _ = self.shared.progress.send(Progress {
                    job_id: info.id.clone(),
                    object: self.group.object.object.clone(),
                    operation: self.group.operation.as_str(),
                    state: info.state.to_string(),
                    records,
                    processed: info.number_records_processed,
                    failed: info.number_records_failed,
                });
            }
            if ended {
                return Ok(info);
            }
            wait = waits.next_wait_paced(
                info.number_records_processed,
                records as u64,
                closed.elapsed(),
            );
        }
    }
}

/// A record whose job never ran, for `why`: Salesforce's error is kept in its message,
/// where the client's WARNING and `sfpg.write_failures` show it.
fn unsent(why: &str, error: &SalesforceError) -> RecordOutcome {
    RecordOutcome::Failed {
        id: None,
        error: RecordError {
            status_code: NOT_SENT.into(),
            message: format!("{why}: {error}"),
            fields: Vec::new(),
        },
    }
}
