//! The Id reconciliation and the formula refresh of an object holding at least the org's
//! bulk threshold of rows, each through a query job of its own (`SELECT Id …`, `SELECT Id,
//! <formulas> …`): a million records in a few requests instead of 500 REST pages.
//!
//! Like the REST sweeps, these live in memory ([`JobSweep`]): after a restart a sweep
//! starts over with a new job, which costs requests, never correctness. The reconciliation
//! gathers the Ids of every page in a temporary table of the sync's session
//! ([`IdSet`]) and deletes, once the last page is in, the rows whose records are gone; it
//! does not rely on the order of the pages. The formula refresh sets each page's formula
//! columns as it comes. A job that will not deliver is replaced; after
//! [`MAX_JOB_FAILURES`], or a job the Bulk API refuses, the sweep goes on through REST.

use chrono::Utc;
use sfpg_salesforce::bulk::{QueryOperation, ResultsPage};

use super::super::deletes::recount;
use super::super::{Context, Outcome, after_request, begin, plan_of};
use super::job::{Advance, JobPosition, advance};
use super::reaches_threshold;
use crate::error::Result;
use crate::object::{JobSweep, MAX_JOB_FAILURES, ObjectSync, Sweep, chrono_duration};
use crate::plan::{MirroredField, ObjectPlan};
use crate::settings::SyncSettings;
use crate::soql;
use sfpg_control::objects::ObjectState;
use sfpg_control::writer::{self, CsvError, CsvMode, IdSet, OnLocked};

/// Which sweep.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Reconcile,
    Formulas,
}

fn rows(object: &ObjectSync) -> u64 {
    u64::try_from(object.state.row_count).unwrap_or(0)
}

/// Whether the object's reconciliation reads through a query job: one is under way, or a
/// new sweep starts on an object at or above the threshold.
pub fn reconciles_in_bulk(context: &Context<'_>, object: &ObjectSync) -> bool {
    object.reconcile_job.is_some()
        || (object.reconcile.is_none()
            && reaches_threshold(context.org.bulk_threshold, rows(object)))
}

/// The same for the formula refresh, of an object that has formulas.
pub fn refreshes_in_bulk(context: &Context<'_>, object: &ObjectSync) -> bool {
    let has_formulas = object
        .plan
        .as_ref()
        .is_some_and(|p| !p.calculated_fields().is_empty());
    object.formulas_job.is_some()
        || (has_formulas
            && object.formulas.is_none()
            && reaches_threshold(context.org.bulk_threshold, rows(object)))
}

/// One request of the reconciliation's job.
pub async fn reconcile(context: &mut Context<'_>, object: &mut ObjectSync) -> Result<Outcome> {
    let sweep = object.reconcile_job.take();
    turn(context, object, sweep, Kind::Reconcile).await
}

/// One request of the formula refresh's job.
pub async fn formulas(context: &mut Context<'_>, object: &mut ObjectSync) -> Result<Outcome> {
    let sweep = object.formulas_job.take();
    turn(context, object, sweep, Kind::Formulas).await
}

/// The fields a sweep reads: the Id, and for the refresh the formulas.
fn fields_of(plan: &ObjectPlan, kind: Kind) -> Vec<&MirroredField> {
    let id = std::iter::once(&plan.fields[0]);
    match kind {
        Kind::Reconcile => id.collect(),
        Kind::Formulas => id.chain(plan.calculated_fields()).collect(),
    }
}

/// Puts the sweep back where the next turn finds it (`None`: the sweep is over).
fn keep(object: &mut ObjectSync, kind: Kind, sweep: Option<JobSweep>) {
    match kind {
        Kind::Reconcile => object.reconcile_job = sweep,
        Kind::Formulas => object.formulas_job = sweep,
    }
}

async fn turn(
    context: &mut Context<'_>,
    object: &mut ObjectSync,
    sweep: Option<JobSweep>,
    kind: Kind,
) -> Result<Outcome> {
    let plan = plan_of(object)?;
    let cap = context.settings.bulk_poll_cap;
    let fields = fields_of(&plan, kind);
    let names: Vec<&str> = fields.iter().map(|f| f.field.as_str()).collect();
    // A sweep whose job reads other fields than the plan has now (a describe changed
    // them) starts over with a new job.
    let mut sweep = sweep
        .filter(|sweep| sweep.job_id.is_none() || sweep.fields == names)
        .unwrap_or_else(|| JobSweep::start(Utc::now(), cap));
    let soql = soql::bulk_all(&plan.object, &names);
    let position = JobPosition {
        job_id: sweep.job_id.as_deref(),
        locator: sweep.locator.as_deref(),
    };
    let page_size = context.settings.bulk_page_size;
    let answer = advance(
        context.client,
        &sweep.watch,
        position,
        &soql,
        QueryOperation::Query,
        page_size,
    )
    .await;
    let answer = match answer {
        Ok(answer) => answer,
        Err(error) => {
            keep(object, kind, Some(sweep));
            return Err(error);
        }
    };
    let now = Utc::now();
    let next = after_request(&object.state);
    let kept = match answer {
        Advance::Created(info) => {
            sweep.job_id = Some(info.id);
            sweep.fields = names.iter().map(|n| (*n).to_owned()).collect();
            sweep.watch.created(now);
            Some(sweep)
        }
        Advance::Running(_) => {
            sweep.watch.wait(now);
            Some(sweep)
        }
        Advance::Complete(info) => {
            sweep.watch.complete = true;
            sweep.processed = info.number_records_processed;
            Some(sweep)
        }
        Advance::NotReady => {
            sweep.watch.not_complete(now);
            Some(sweep)
        }
        Advance::Gone(reason) => replaced(object, kind, sweep, &reason, cap),
        Advance::Refused(reason) => {
            to_rest(object, kind, &sweep, &reason);
            None
        }
        Advance::Page(page) => {
            return write_page(context, object, &plan, sweep, page, next, kind).await;
        }
    };
    context.save(&next).await?;
    object.state = next;
    keep(object, kind, kept);
    Ok(Outcome::default())
}

/// A new job for the sweep, unless jobs keep failing: then the sweep goes on through REST.
fn replaced(
    object: &mut ObjectSync,
    kind: Kind,
    sweep: JobSweep,
    reason: &str,
    cap: std::time::Duration,
) -> Option<JobSweep> {
    let failures = sweep.watch.failures + 1;
    if failures >= MAX_JOB_FAILURES {
        to_rest(object, kind, &sweep, reason);
        return None;
    }
    tracing::warn!(object = %object.name(), ?kind, %reason, "a new query job replaces one that will not deliver");
    let mut fresh = JobSweep::start(Utc::now(), cap);
    fresh.watch.failures = failures;
    Some(fresh)
}

/// The sweep goes on through REST pages, from the start.
fn to_rest(object: &mut ObjectSync, kind: Kind, sweep: &JobSweep, reason: &str) {
    tracing::warn!(object = %object.name(), ?kind, %reason, "sweeping through REST instead of the Bulk API");
    let rest = Some(Sweep::start(sweep.started_at));
    match kind {
        Kind::Reconcile => object.reconcile = rest,
        Kind::Formulas => object.formulas = rest,
    }
}

/// Writes one page: its Ids into the reconciliation's set, or its formulas into the
/// mirror. The last page ends the sweep: the reconciliation deletes the rows whose records
/// are gone, and both record when the sweep began.
async fn write_page(
    context: &mut Context<'_>,
    object: &mut ObjectSync,
    plan: &ObjectPlan,
    mut sweep: JobSweep,
    page: Box<ResultsPage>,
    mut next: ObjectState,
    kind: Kind,
) -> Result<Outcome> {
    let next_locator = page.next_locator.clone();
    if kind == Kind::Reconcile && sweep.ids.is_none() {
        match IdSet::start(&*context.db, plan).await {
            Ok(ids) => sweep.ids = Some(ids),
            Err(error) => {
                keep(object, kind, Some(sweep));
                return Err(error.into());
            }
        }
    }
    let settings = context.settings;
    let transaction = begin(context.db, context.fence, context.settings).await?;
    let (received, mut locked, written) =
        match write_rows(&transaction, plan, &sweep, page, kind).await {
            Ok(written) => written,
            Err(error) => {
                transaction.rollback().await?;
                return page_failed(settings, object, kind, sweep, error);
            }
        };
    sweep.read += received;
    sweep.locator = next_locator;
    let last = sweep.locator.is_none();
    if last && sweep.read != sweep.processed {
        transaction.rollback().await?;
        let reason = format!(
            "its pages held {} records where the job processed {}",
            sweep.read, sweep.processed
        );
        let kept = replaced(object, kind, sweep, &reason, settings.bulk_poll_cap);
        keep(object, kind, kept);
        return Ok(Outcome::default());
    }
    let deleted = if last {
        let overlap = chrono_duration(settings.overlap);
        end_sweep(
            &transaction,
            plan,
            &mut sweep,
            &mut next,
            overlap,
            kind,
            &mut locked,
        )
        .await?
    } else {
        0
    };
    for id in locked {
        if !next.locked_ids.contains(&id) {
            next.locked_ids.push(id);
        }
    }
    next.save(&transaction).await?;
    transaction.commit().await?;
    object.state = next;
    if !last {
        keep(object, kind, Some(sweep));
    } else if kind == Kind::Reconcile {
        object.reconcile_requested = false;
        if deleted > 0 {
            tracing::info!(object = %plan.object, deleted, "reconciliation removed rows whose records are gone");
        }
        recount(context, object).await?;
    }
    Ok(Outcome {
        received,
        written,
        deleted,
    })
}

/// The page's Ids into the reconciliation's set, or its formulas into the mirror: the
/// records received, those left out because a client held their rows, the rows written.
async fn write_rows(
    transaction: &tokio_postgres::Transaction<'_>,
    plan: &ObjectPlan,
    sweep: &JobSweep,
    page: Box<ResultsPage>,
    kind: Kind,
) -> std::result::Result<(u64, Vec<String>, u64), CsvError<sfpg_salesforce::Error>> {
    match (&sweep.ids, kind) {
        (Some(ids), Kind::Reconcile) => ids
            .add(transaction, plan, page)
            .await
            .map(|received| (received, Vec::new(), 0)),
        _ => {
            let fields = fields_of(plan, kind);
            writer::write_csv(
                transaction,
                plan,
                &fields,
                page,
                CsvMode::UpdateColumns,
                OnLocked::Skip,
            )
            .await
            .map(|w| (w.received, w.applied.locked, w.applied.written))
        }
    }
}

/// A page that could not be written: a job gone is replaced (or the sweep goes on through
/// REST); any other error is returned, the sweep kept to try the page again.
fn page_failed(
    settings: &SyncSettings,
    object: &mut ObjectSync,
    kind: Kind,
    sweep: JobSweep,
    error: CsvError<sfpg_salesforce::Error>,
) -> Result<Outcome> {
    if matches!(&error, CsvError::Body(e) if e.is_job_gone()) {
        let kept = replaced(
            object,
            kind,
            sweep,
            &error.to_string(),
            settings.bulk_poll_cap,
        );
        keep(object, kind, kept);
        return Ok(Outcome::default());
    }
    keep(object, kind, Some(sweep));
    Err(match error {
        CsvError::Body(error) => error.into(),
        CsvError::Write(error) => error.into(),
    })
}

/// The last page is in: the reconciliation deletes the rows whose records are gone
/// (modified before the sweep began, less `overlap`), and the sweep's start is recorded
/// in `next`. Returns the rows deleted; rows a client held are added to `locked`.
async fn end_sweep(
    transaction: &tokio_postgres::Transaction<'_>,
    plan: &ObjectPlan,
    sweep: &mut JobSweep,
    next: &mut ObjectState,
    overlap: chrono::Duration,
    kind: Kind,
    locked: &mut Vec<String>,
) -> Result<u64> {
    let mut deleted = 0;
    if let Some(ids) = sweep.ids.take() {
        let modified_before = sweep.started_at - overlap;
        let (gone, left) = ids
            .delete_absent(transaction, plan, modified_before)
            .await?;
        deleted = gone;
        locked.extend(left);
        next.row_count -= i64::try_from(gone).unwrap_or(0);
    }
    match kind {
        Kind::Reconcile => next.reconciled_at = Some(sweep.started_at),
        Kind::Formulas => next.formulas_refreshed_at = Some(sweep.started_at),
    }
    Ok(deleted)
}
