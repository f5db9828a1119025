//! Resolving the write journal: a push Salesforce accepted whose transaction never
//! committed (the proxy died between the two), and a push whose outcome is unknown (its
//! answer never came back, or its session cancelled it under way), are settled by reading
//! the records again from Salesforce into the mirror, under the sync origin.
//!
//! Whether an accepted push's transaction committed is PostgreSQL's to say
//! (`pg_xact_status`), so such a repair is only done for a transaction that is over and
//! did not commit. A push of unknown outcome never commits locally (the proxy rolls it
//! back), and Salesforce may still be carrying it out when the client hears 08007: it is
//! read again at once, then at growing intervals until no request could still be running
//! ([`SETTLE`]). Records it created have no Id the proxy knows: those of a bulk push's
//! ended ingest jobs come from the jobs' result files (`successfulResults/`), and a job it
//! left open (never closed, so never to start) is aborted rather than waited for; for the rest,
//! their objects' changes since the push started are read as well. Records are read back and
//! written 2,000 at a time. Reading a record again is harmless in any case: a mirror row is
//! overwritten only by a copy that is not older.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::StreamExt;
use sfpg_control::ControlError;
use sfpg_control::journal::{self, Resolution, TransactionStatus, Unresolved};
use sfpg_control::writer::{self, OnLocked, Rows, Write, WriteStrategy};
use sfpg_salesforce::bulk::JobState;
use sfpg_salesforce::{Record, SalesforceId};
use tokio_postgres::GenericClient;

use super::catalog::{Catalog, ObjectHandle, OrgHandle};
use super::plan::Operation;

/// How long after a push started Salesforce may still be carrying it out: a synchronous
/// Apex transaction may run for up to 10 minutes. An entry of unknown outcome is read
/// again until then.
pub const SETTLE: Duration = Duration::from_secs(600);

/// The longest wait between two readings of an entry of unknown outcome.
const MAX_RECHECK: Duration = Duration::from_secs(60);

/// How far before a push's start the changes of its objects are read, for the clocks of
/// the proxy and Salesforce that may disagree (the sync's default overlap).
const CLOCK_SKEW: Duration = Duration::from_secs(300);

/// What a repair pass did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RepairReport {
    /// Pushes whose transaction had committed after all.
    pub committed: usize,
    /// Pushes whose records were read back into the mirror for good.
    pub repaired: usize,
    /// Pushes whose transaction is still open, whose repair failed this time, or whose
    /// outcome is unknown and that will be read again.
    pub pending: usize,
    /// When the next entry of unknown outcome is due to be read again.
    pub next_check: Option<DateTime<Utc>>,
}

#[derive(Debug, thiserror::Error)]
pub enum RepairError {
    #[error("write journal repair: cannot reach the control database: {0}")]
    Pool(#[from] deadpool_postgres::PoolError),
    #[error("write journal repair: {0}")]
    Control(#[from] ControlError),
    #[error("write journal repair: {0}")]
    Catalog(super::Refusal),
    #[error("write journal repair: reading Salesforce: {0}")]
    Salesforce(#[from] sfpg_salesforce::Error),
}

/// Resolves every unresolved push of the journal that is due. Each entry is claimed first
/// ([`journal::claim`]): its row stays locked while it is repaired, so that of several
/// proxies, one repairs it; the others pass it by.
pub async fn repair(catalog: &Catalog) -> Result<RepairReport, RepairError> {
    let mut report = RepairReport::default();
    let entries = journal::due(&**catalog.control().get().await?).await?;
    for entry in entries {
        let mut claim = catalog.control().get().await?;
        let transaction = (**claim).transaction().await.map_err(ControlError::from)?;
        if !journal::claim(&transaction, entry.id).await? {
            // Another proxy is repairing it, or has just settled it.
            continue;
        }
        settle(catalog, &transaction, &entry, &mut report).await?;
        transaction.commit().await.map_err(ControlError::from)?;
    }
    let control = catalog.control().get().await?;
    report.next_check = journal::next_check(&**control).await?;
    crate::telemetry::journal_pending_repair(journal::pending_repair(&**control).await?);
    Ok(report)
}

/// Repairs one claimed entry and records what became of it in `claim`, its transaction.
async fn settle(
    catalog: &Catalog,
    claim: &impl GenericClient,
    entry: &Unresolved,
    report: &mut RepairReport,
) -> Result<(), RepairError> {
    let id = entry.id;
    match resolve(catalog, entry).await {
        Ok(Settled::Committed) => {
            journal::resolve(claim, id, Resolution::Committed).await?;
            report.committed += 1;
        }
        Ok(Settled::Repaired) => {
            journal::resolve(claim, id, Resolution::Repaired).await?;
            tracing::info!(journal = id, org = %entry.org, outcome = %entry.outcome, "repaired a push whose transaction did not commit");
            report.repaired += 1;
        }
        Ok(Settled::Later) => report.pending += 1,
        Ok(Settled::Again) => {
            recheck(claim, entry).await?;
            report.pending += 1;
        }
        Err(error) => {
            tracing::warn!(journal = id, %error, "cannot repair a push yet");
            if entry.outcome.is_uncertain() {
                recheck(claim, entry).await?;
            }
            report.pending += 1;
        }
    }
    Ok(())
}

/// What became of an entry.
enum Settled {
    /// Its transaction committed: the mirror has what Salesforce accepted.
    Committed,
    /// Its records were read back; nothing is left to do.
    Repaired,
    /// Its transaction is still open: look again at the next pass.
    Later,
    /// Of unknown outcome, read back for now; Salesforce may still be carrying it out.
    Again,
}

async fn resolve(catalog: &Catalog, entry: &Unresolved) -> Result<Settled, RepairError> {
    let bulk = entry.bulk_jobs.is_some();
    if (bulk || entry.outcome.is_uncertain())
        && entry.transaction == Some(TransactionStatus::InProgress)
    {
        // A push journals itself before its request leaves (a bulk push, before its jobs
        // run): while its transaction is open, its session is still waiting on Salesforce
        // and will settle the entry itself.
        return Ok(Settled::Later);
    }
    if entry.outcome.is_uncertain() {
        // A bulk push journals each job before its upload: one whose entry names no job
        // had sent nothing when its session ended (a job created but not yet journaled was
        // never uploaded, and never runs). There is nothing to read again.
        if bulk && entry.jobs().is_empty() {
            tracing::info!(
                journal = entry.id,
                "a bulk push ended before its first job: nothing was sent"
            );
            return Ok(Settled::Repaired);
        }
        // A bulk push's jobs go on without the session that created them: they are
        // finished by Salesforce, and read back once every one has ended, from their
        // result files (reading while they run would read every change of their objects
        // since the push began, again at each pass).
        if bulk && jobs_running(catalog, entry).await? {
            return Ok(Settled::Again);
        }
        // The proxy rolls such a transaction back; its records are read again whatever
        // its state (a row lock it still holds only delays the write a moment).
        read_back(catalog, entry, true).await?;
        // Once every job has ended, nothing of a bulk push can still be running.
        let settled = bulk || entry.started_at + chrono_duration(SETTLE) <= Utc::now();
        return Ok(if settled {
            Settled::Repaired
        } else {
            Settled::Again
        });
    }
    match entry.transaction {
        Some(TransactionStatus::Committed) => Ok(Settled::Committed),
        Some(TransactionStatus::InProgress) => Ok(Settled::Later),
        // Aborted, or too old for PostgreSQL to remember: read the records again.
        Some(TransactionStatus::Aborted) | None => {
            read_back(catalog, entry, false).await?;
            Ok(Settled::Repaired)
        }
    }
}

/// Whether one of the entry's ingest jobs has not ended yet (one that is gone has). A job
/// still `Open` was never closed by the push, whose session is gone (its transaction is
/// over, or this entry would wait for it): Salesforce never starts a job nobody closes,
/// so it is aborted, nothing of it having been processed, rather than waited for until
/// Salesforce deletes it.
async fn jobs_running(catalog: &Catalog, entry: &Unresolved) -> Result<bool, RepairError> {
    let org = catalog
        .org_by_name(&entry.org)
        .await
        .map_err(RepairError::Catalog)?;
    let bulk = org.client.bulk();
    for job in entry.jobs() {
        match bulk.ingest_job(job).await {
            Ok(info) if info.state == JobState::Open => {
                let aborted = bulk.abort_ingest_job(job).await?;
                tracing::info!(job = %job, journal = entry.id, "aborted an ingest job a push left open");
                if !aborted.state.is_terminal() {
                    return Ok(true);
                }
            }
            Ok(info) if !info.state.is_terminal() => return Ok(true),
            Ok(_) => {}
            Err(error) if error.is_job_gone() => {}
            Err(error) => return Err(error.into()),
        }
    }
    Ok(false)
}

/// Schedules the next reading of an entry of unknown outcome: 1 s, 2 s, 4 s … apart, at
/// most [`MAX_RECHECK`].
async fn recheck(claim: &impl GenericClient, entry: &Unresolved) -> Result<(), RepairError> {
    let wait = Duration::from_secs(1u64 << entry.checks.clamp(0, 6)).min(MAX_RECHECK);
    let at = Utc::now() + chrono_duration(wait);
    journal::schedule_check(claim, entry.id, at).await?;
    Ok(())
}

fn chrono_duration(duration: Duration) -> chrono::TimeDelta {
    chrono::TimeDelta::from_std(duration).unwrap_or(chrono::TimeDelta::MAX)
}

/// Reads the entry's records from Salesforce into the mirror: upserts those that exist,
/// deletes those that do not (any more), [`READ_BACK_IDS`] at a time. A bulk push's ingest
/// jobs that have ended say in their result files which records they saved: the Ids of its
/// creates come from there. With `uncertain`, the objects of creates whose Id is still
/// unknown (no answer came, or their job is running or gone) are read for every change
/// since the push started.
async fn read_back(
    catalog: &Catalog,
    entry: &Unresolved,
    uncertain: bool,
) -> Result<(), RepairError> {
    let org = catalog
        .org_by_name(&entry.org)
        .await
        .map_err(RepairError::Catalog)?;
    let mut by_table: BTreeMap<(String, String), TableIds> = BTreeMap::new();
    for record in &entry.records {
        let table = by_table
            .entry((record.schema.clone(), record.table.clone()))
            .or_default();
        match record.sfid.as_deref().filter(|id| !id.is_empty()) {
            Some(sfid) => {
                table.sfids.insert(sfid.to_owned());
            }
            None if record.operation == Operation::Create => table.unknown_creates = true,
            None => {}
        }
    }
    if !entry.jobs().is_empty() {
        saved_by_jobs(&org, entry, &mut by_table).await?;
    }
    for ((schema, table), ids) in by_table {
        let (_, object) = catalog
            .object(&schema, &table)
            .await
            .map_err(RepairError::Catalog)?;
        let sfids: Vec<String> = ids.sfids.into_iter().collect();
        for chunk in sfids.chunks(READ_BACK_IDS) {
            let (found, gone) = by_id(&org, &object, chunk).await?;
            write(catalog, &object, &found, &gone).await?;
        }
        if uncertain && ids.unknown_creates {
            let since = entry.started_at - chrono_duration(CLOCK_SKEW);
            write_changed_since(catalog, &org, &object, since).await?;
        }
    }
    Ok(())
}

/// Ids read back and written per round: a bulk push's 100,000 records are never all held.
const READ_BACK_IDS: usize = 2_000;

/// What a repair reads back of one table.
#[derive(Default)]
struct TableIds {
    /// The Ids of its records (a set: a bulk job's results name the updates again).
    sfids: std::collections::BTreeSet<String>,
    /// A create of it has no Id known.
    unknown_creates: bool,
}

/// Adds the Ids each ended ingest job of a bulk entry saved (its `successfulResults/`)
/// to their tables, found by the job's object among the entry's records; a table whose
/// every insert job has ended and been read has no create of unknown Id left. A job
/// running says nothing; a job gone leaves every table's creates unknown.
async fn saved_by_jobs(
    org: &OrgHandle,
    entry: &Unresolved,
    by_table: &mut BTreeMap<(String, String), TableIds>,
) -> Result<(), RepairError> {
    let bulk = org.client.bulk();
    // Of each table, whether an insert job of it could not be read.
    let mut unread_inserts: BTreeMap<(String, String), bool> = BTreeMap::new();
    // A job gone (Salesforce keeps them 7 days) may have been any table's inserts.
    let mut any_gone = false;
    for job in entry.jobs() {
        let info = match bulk.ingest_job(job).await {
            Ok(info) => info,
            Err(error) if error.is_job_gone() => {
                any_gone = true;
                continue;
            }
            Err(error) => return Err(error.into()),
        };
        let Some(record) = entry.records.iter().find(|r| r.object == info.object) else {
            continue;
        };
        let key = (record.schema.clone(), record.table.clone());
        let insert = info.operation == "insert";
        if !info.state.is_terminal() {
            if insert {
                unread_inserts.insert(key, true);
            }
            continue;
        }
        let saved = bulk.ingest_saved_ids(job).await?;
        by_table.entry(key.clone()).or_default().sfids.extend(saved);
        if insert {
            unread_inserts.entry(key).or_insert(false);
        }
    }
    for (key, unread) in unread_inserts {
        if !unread
            && !any_gone
            && let Some(table) = by_table.get_mut(&key)
        {
            table.unknown_creates = false;
        }
    }
    Ok(())
}

/// The records of `sfids` Salesforce holds, and the Ids it no longer has.
async fn by_id(
    org: &OrgHandle,
    object: &ObjectHandle,
    sfids: &[String],
) -> Result<(Vec<Record>, Vec<String>), RepairError> {
    let ids: Vec<SalesforceId> = sfids
        .iter()
        .filter_map(|id| SalesforceId::parse(id).ok())
        .collect();
    let mut found = Vec::new();
    let mut gone = Vec::new();
    if ids.is_empty() {
        return Ok((found, gone));
    }
    let records = org
        .client
        .collections()
        .retrieve(&object.object, &ids, &object.fields())
        .await?;
    for (id, record) in ids.iter().zip(records) {
        match record {
            Some(record) => found.push(record),
            None => gone.push(id.as_str().to_owned()),
        }
    }
    Ok((found, gone))
}

/// Writes back every record of the object changed since `since`, a query page (up to
/// 2,000 records) at a time, never all held: where a create whose Id never came back is
/// found, if Salesforce made it.
async fn write_changed_since(
    catalog: &Catalog,
    org: &OrgHandle,
    object: &ObjectHandle,
    since: DateTime<Utc>,
) -> Result<(), RepairError> {
    let soql = format!(
        "SELECT {} FROM {} WHERE SystemModstamp >= {} ORDER BY SystemModstamp, Id",
        object.fields().join(", "),
        object.object,
        since.format("%Y-%m-%dT%H:%M:%SZ"),
    );
    let mut pages = org.client.query(soql).pages();
    while let Some(page) = pages.next().await {
        write(catalog, object, &page?.records, &[]).await?;
    }
    Ok(())
}

/// Writes Salesforce's copies into the mirror through the mirror writer, each over a row
/// only when that row is not newer (its version guard), and deletes the rows of records
/// that are gone, in one transaction under the sync origin. A row a client holds locked is
/// waited for: the repair has nowhere to keep a record for later.
async fn write(
    catalog: &Catalog,
    object: &ObjectHandle,
    found: &[Record],
    gone: &[String],
) -> Result<(), RepairError> {
    let plan = object.plan();
    let rows = Rows::from_records(&plan.object, plan.fields.iter().collect(), found)?;
    let writes = [Write::Upsert(rows), Write::Delete(gone.to_vec())];
    let mut control = catalog.control().get().await?;
    let transaction = writer::begin(&mut **control, None).await?;
    writer::apply(
        &transaction,
        &plan,
        &writes,
        WriteStrategy::default(),
        OnLocked::Wait,
    )
    .await?;
    transaction.commit().await.map_err(ControlError::from)?;
    Ok(())
}
