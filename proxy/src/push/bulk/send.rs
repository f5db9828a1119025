//! A bulk push as the [`Pusher`](crate::push::Pusher) runs it: journaled before its first
//! job (outcome `unknown`, so that a crash leaves the repair an entry to finish), each
//! job's id added to the entry before its upload (`response.bulk_jobs`), and the entry
//! settled once the jobs have ended: `pushed` with the accepted records, `unknown` when a
//! job could not be followed, `refused` or `failed` when nothing was sent.
//!
//! A bulk entry's records carry no `fields`: what a repair of it reads is each record's
//! operation, object, table and Id (it reads the records back from Salesforce), and a
//! copy of every field of a large transaction would be its largest part.

use std::future::Future;
use std::time::Instant;

use serde_json::json;
use sfpg_salesforce::Record;
use sfpg_salesforce::bulk::JobInfo;
use tokio::sync::mpsc::UnboundedSender;

use super::budget;
use super::jobs::{JobLog, NothingSent, Runner};
use super::{BulkSent, Fate, Progress};
use crate::push::journal::{Entry, Journal, JournalError, JournalRecord, Outcome};
use crate::push::plan::{Operation, Plan, Planned};
use crate::push::refusal::{self, from_salesforce_error};
use crate::push::send::Failure;

/// The journal entry of a bulk push, rewritten as its jobs are created.
struct JournalLog<'j> {
    journal: &'j Journal,
    id: Option<i64>,
    entry: Entry,
    jobs: Vec<String>,
}

impl JournalLog<'_> {
    /// Rewrites the entry as it now is, with `records`.
    async fn save(&mut self, records: impl Iterator<Item = JournalRecord>) {
        self.entry.response = json!({ "bulk_jobs": self.jobs });
        let Some(id) = self.id else {
            return;
        };
        if let Err(error) = self.journal.update_streamed(id, &self.entry, records).await {
            tracing::error!(%error, journal = id, "cannot journal a bulk push's outcome");
        }
    }
}

impl JobLog for &mut JournalLog<'_> {
    /// The job's id joins the entry's answer; its records, written before the first job,
    /// are not written again.
    async fn job_created(&mut self, job: &JobInfo) {
        self.jobs.push(job.id.clone());
        self.entry.response = json!({ "bulk_jobs": self.jobs });
        let Some(id) = self.id else {
            return;
        };
        if let Err(error) = self.journal.update_response(id, &self.entry.response).await {
            tracing::error!(%error, journal = id, "cannot journal a bulk push's job");
        }
    }
}

/// Runs `plan` through ingest jobs, journaled in `entry` (its org, session and
/// transaction filled in).
pub async fn send<C: Future<Output = ()>>(
    plan: &Plan,
    journal: &Journal,
    mut entry: Entry,
    progress: UnboundedSender<Progress>,
    cancelled: C,
) -> Result<BulkSent, Failure> {
    // Nothing is sent that the org's daily allocations cannot carry.
    let limits = plan.org.client.limits().await.map_err(|error| Failure {
        refusal: from_salesforce_error(&error, "read the org's limits"),
        response: json!({ "error": error.to_string() }),
        outcome: Outcome::Failed,
    })?;
    budget::check(budget::needs(plan), &limits).map_err(|refusal| Failure {
        refusal,
        response: json!({ "error": "limits" }),
        outcome: Outcome::Refused,
    })?;
    // The entry's records are made from the plan as they are written, never held whole
    // (for 100,000 records, 20 MB and their JSON 15 MB).
    entry.records = Vec::new();
    entry.outcome = Outcome::Unknown;
    entry.response = json!({ "bulk_jobs": [] });
    // Without its entry, a crash during the jobs would lose what Salesforce saved: nothing
    // is sent.
    let id = match journal.record_streamed(&entry, planned_records(plan)).await {
        Ok(id) => Some(id),
        Err(error) => {
            tracing::error!(%error, "cannot journal a bulk push before its jobs; nothing was sent");
            return Err(unjournaled(&error));
        }
    };
    let started = Instant::now();
    let mut log = JournalLog {
        journal,
        id,
        entry,
        jobs: Vec::new(),
    };
    let ran = Runner::new(plan, &mut log, progress).run(cancelled).await;
    log.entry.salesforce_ms = i32::try_from(started.elapsed().as_millis()).unwrap_or(i32::MAX);
    let (fates, jobs) = match ran {
        Ok(ran) => ran,
        Err(NothingSent(error)) => {
            log.entry.outcome = if error.status().is_some() {
                Outcome::Refused
            } else {
                Outcome::Failed
            };
            log.save(planned_records(plan)).await;
            return Err(Failure {
                refusal: from_salesforce_error(
                    &error,
                    "push the transaction through Bulk API ingest jobs",
                ),
                response: json!({ "error": error.to_string(), "bulk_jobs": log.jobs }),
                outcome: log.entry.outcome,
            });
        }
    };
    let sent = BulkSent {
        fates,
        jobs,
        journal_id: id,
    };
    // Uncertain: every record, with the Ids known, for the repair to read them all again.
    let all = sent.uncertain();
    if !all {
        log.entry.outcome = Outcome::Pushed;
    }
    log.save(settled_records(plan, &sent.fates, all)).await;
    Ok(sent)
}

/// A bulk push whose entry could not be journaled before its jobs: nothing was sent.
fn unjournaled(error: &JournalError) -> Failure {
    Failure {
        refusal: refusal::unjournaled(error, "bulk push"),
        response: json!({ "error": error.to_string() }),
        outcome: Outcome::Failed,
    }
}

/// The journal's records of a bulk push before its jobs: each record with the Id it had.
fn planned_records(plan: &Plan) -> impl Iterator<Item = JournalRecord> {
    plan.records
        .iter()
        .map(|p| journal_record(p, p.sfid.clone()))
}

/// The journal's records of a settled bulk push: the accepted ones with their Ids, and
/// (`all`) the others too, a create without its Id.
fn settled_records<'p>(
    plan: &'p Plan,
    fates: &'p [Fate],
    all: bool,
) -> impl Iterator<Item = JournalRecord> + 'p {
    plan.records.iter().zip(fates).filter_map(move |(p, fate)| {
        let sfid = match (fate, p.operation) {
            (Fate::Accepted { id }, _) => Some(id.clone()),
            (_, Operation::Create) => None,
            _ => p.sfid.clone(),
        };
        (all || matches!(fate, Fate::Accepted { .. })).then(|| journal_record(p, sfid))
    })
}

/// A record as a bulk entry journals it: without its fields.
fn journal_record(planned: &Planned, sfid: Option<String>) -> JournalRecord {
    JournalRecord {
        operation: planned.operation,
        object: planned.object.object.clone(),
        schema: planned.object.schema.clone(),
        table: planned.object.table.clone(),
        row_id: planned.row_id,
        sfid,
        provisional: planned.provisional.clone(),
        fields: Record::new(),
    }
}
