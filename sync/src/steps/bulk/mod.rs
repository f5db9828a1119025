//! Large reads through Bulk API 2.0 query jobs. An object whose count at the start of its
//! backfill reaches the org's bulk threshold is backfilled through one job; a larger
//! incremental backlog is read through one job filtered by the cursor; the reconciliation
//! and the formula refresh of an object holding more rows read through a job of their own
//! ([`sweeps`]).
//!
//! A backfill's or catch-up's job lives in `sfpg.objects` ([`BulkRead`]). Each turn sends
//! one request, through the org's rate limiter like every other: the job's creation, a poll
//! (0.2 s after the last, doubling up to a cap; the object's other work and the other
//! objects go on meanwhile), or one result page. A page streams straight from the response
//! into `COPY` ([`writer::write_csv`]) and commits with the next page's locator in the same
//! transaction, so a crash resumes at the page it had not finished: locators stay valid as
//! long as the job exists. A job that is gone (deleted, expired) or ends `Failed` is
//! replaced by a new one whose pages go through the merge, so that rows already written
//! are not duplicated; after [`MAX_JOB_FAILURES`] in a row, or a job the Bulk API refuses
//! to create, the object is read through REST instead.
//!
//! When the last page is in, the backfill goes live and a catch-up moves its cursor: to the
//! snapshot taken before the job was asked for, less the overlap, as the REST backfill
//! does. A job reads the org as it was when it ran; what changed after is the feed's.

mod job;
pub mod sweeps;

use chrono::Utc;
use sfpg_salesforce::bulk::{JobInfo, QueryOperation, ResultsPage};
use tokio_postgres::error::SqlState;

use super::{Context, Outcome, after_request, begin, plan_of};
use crate::error::{Result, SyncError};
use crate::object::{JobWatch, MAX_JOB_FAILURES, ObjectSync, chrono_duration};
use crate::plan::{MirroredField, ObjectPlan};
use crate::soql;
use job::{Advance, JobPosition, advance};
use sfpg_control::ControlError;
use sfpg_control::mirror;
use sfpg_control::objects::{BulkPurpose, BulkRead, ObjectState};
use sfpg_control::writer::{self, CsvError, CsvMode, OnLocked};

/// Whether `count` records (an object, or a backlog) reach the org's bulk threshold.
pub fn reaches_threshold(threshold: Option<u64>, count: u64) -> bool {
    threshold.is_some_and(|t| count >= t)
}

/// One request of the object's query job, and what it brought written with the object's
/// progress.
pub async fn turn(context: &mut Context<'_>, object: &mut ObjectSync) -> Result<Outcome> {
    let plan = plan_of(object)?;
    let read =
        object.state.bulk.clone().ok_or_else(|| {
            SyncError::corrupt(format!("{} has no query job to read", object.name()))
        })?;
    let (soql, operation) = query_of(&plan, &object.state, &read)?;
    let position = JobPosition {
        job_id: read.job_id.as_deref(),
        locator: read.locator.as_deref(),
    };
    let answer = advance(
        context.client,
        &object.bulk_job,
        position,
        &soql,
        operation,
        context.settings.bulk_page_size,
    )
    .await?;
    let now = Utc::now();
    let mut next = after_request(&object.state);
    match answer {
        Advance::Created(info) => {
            tracing::info!(object = %plan.object, job = %info.id, purpose = read.purpose.as_str(), merge = read.merge, "query job created");
            next.bulk = Some(BulkRead {
                job_id: Some(info.id.clone()),
                processed: Some(records(info.number_records_processed)),
                ..read
            });
            save(context, object, next).await?;
            object.bulk_job.created(now);
        }
        Advance::Running(info) | Advance::Complete(info) => {
            let complete = info.state == sfpg_salesforce::bulk::JobState::JobComplete;
            polled(&mut next, read, &info, complete);
            save(context, object, next).await?;
            if complete {
                object.bulk_job.complete = true;
            } else {
                object.bulk_job.wait(now);
            }
        }
        Advance::NotReady => {
            save(context, object, next).await?;
            object.bulk_job.not_complete(now);
        }
        Advance::Gone(reason) => replace_job(context, object, next, &reason).await?,
        Advance::Refused(reason) => fall_back_to_rest(context, object, next, &reason).await?,
        Advance::Page(page) => return write_page(context, object, &plan, read, page).await,
    }
    Ok(Outcome::default())
}

/// The job's SOQL: every record (`query`), or those changed from the cursor on (`queryAll`,
/// so that soft deletes come too).
fn query_of(
    plan: &ObjectPlan,
    state: &ObjectState,
    read: &BulkRead,
) -> Result<(String, QueryOperation)> {
    let names: Vec<&str> = plan.fields.iter().map(|f| f.field.as_str()).collect();
    match read.purpose {
        BulkPurpose::Backfill => Ok((soql::bulk_all(&plan.object, &names), QueryOperation::Query)),
        BulkPurpose::Changes => {
            let since = state.cursor_modstamp.ok_or_else(|| {
                SyncError::corrupt(format!("{} catches up without a cursor", plan.object))
            })?;
            Ok((
                soql::bulk_changed_since(&plan.object, &names, since),
                QueryOperation::QueryAll,
            ))
        }
    }
}

/// A count as `sfpg.objects` keeps it.
fn records(count: u64) -> i64 {
    i64::try_from(count).unwrap_or(i64::MAX)
}

/// What a poll teaches: the records processed so far, and once complete, the backfill's
/// true total.
fn polled(next: &mut ObjectState, read: BulkRead, info: &JobInfo, complete: bool) {
    let processed = records(info.number_records_processed);
    if complete && read.purpose == BulkPurpose::Backfill {
        next.backfill_total = Some(processed);
    }
    next.bulk = Some(BulkRead {
        processed: Some(processed),
        ..read
    });
}

async fn save(context: &mut Context<'_>, object: &mut ObjectSync, next: ObjectState) -> Result<()> {
    context.save(&next).await?;
    object.state = next;
    Ok(())
}

/// The job will not deliver: a new one takes its place, its pages merged (rows already
/// written must not be duplicated), unless jobs keep failing; then REST.
async fn replace_job(
    context: &mut Context<'_>,
    object: &mut ObjectSync,
    mut next: ObjectState,
    reason: &str,
) -> Result<()> {
    let failures = object.bulk_job.failures + 1;
    if failures >= MAX_JOB_FAILURES {
        let reason = format!("{failures} query jobs in a row did not deliver; the last: {reason}");
        return fall_back_to_rest(context, object, next, &reason).await;
    }
    let read = next
        .bulk
        .take()
        .ok_or_else(|| SyncError::corrupt("a query job replaced without one"))?;
    tracing::warn!(object = %object.name(), %reason, "a new query job replaces one that will not deliver");
    let merge = read.merge || read.read > 0;
    if read.purpose == BulkPurpose::Backfill {
        next.backfill_done = 0;
    }
    next.bulk = Some(BulkRead::new(read.purpose, read.snapshot, merge));
    next.last_error = Some(reason.to_owned());
    next.last_error_at = Some(Utc::now());
    save(context, object, next).await?;
    object.bulk_job = JobWatch::new(false, context.settings.bulk_poll_cap);
    object.bulk_job.failures = failures;
    Ok(())
}

/// The Bulk API cannot read the object: its backfill starts over through REST pages (a
/// page meeting rows already written falls back to the upsert), or its catch-up goes on
/// through REST from the cursor.
async fn fall_back_to_rest(
    context: &mut Context<'_>,
    object: &mut ObjectSync,
    mut next: ObjectState,
    reason: &str,
) -> Result<()> {
    tracing::warn!(object = %object.name(), %reason, "reading through REST instead of the Bulk API");
    if next
        .bulk
        .take()
        .is_some_and(|r| r.purpose == BulkPurpose::Backfill)
    {
        next.backfill_done = 0;
        next.backfill_last_id = None;
    }
    next.last_error = Some(format!(
        "the Bulk API could not read {}, REST reads it instead: {reason}",
        object.name()
    ));
    next.last_error_at = Some(Utc::now());
    save(context, object, next).await?;
    object.bulk_job = JobWatch::new(false, context.settings.bulk_poll_cap);
    object.backlog_count_due = false;
    object.backlog_counted = true;
    Ok(())
}

/// Streams the page into the mirror and commits it with the next locator. After the last
/// page, the records read must add up to the job's `numberRecordsProcessed`.
async fn write_page(
    context: &mut Context<'_>,
    object: &mut ObjectSync,
    plan: &ObjectPlan,
    mut read: BulkRead,
    page: Box<ResultsPage>,
) -> Result<Outcome> {
    let next_locator = page.next_locator.clone();
    let mode = if read.merge {
        CsvMode::Merge
    } else {
        CsvMode::Copy
    };
    let fields: Vec<&MirroredField> = plan.fields.iter().collect();
    let mut next = after_request(&object.state);
    let transaction = begin(context.db, context.fence, context.settings).await?;
    let written = writer::write_csv(&transaction, plan, &fields, page, mode, OnLocked::Skip).await;
    let written = match written {
        Ok(written) => written,
        Err(error) => {
            transaction.rollback().await?;
            return page_failed(context, object, next, read, mode, error).await;
        }
    };
    read.locator = next_locator;
    read.read += records(written.received);
    let applied = &written.applied;
    next.row_count += records(applied.inserted) - records(applied.deleted);
    for id in &applied.locked {
        if !next.locked_ids.contains(id) {
            next.locked_ids.push(id.clone());
        }
    }
    if read.purpose == BulkPurpose::Backfill {
        next.backfill_done += records(written.received);
    }
    let last = read.locator.is_none();
    if last && Some(read.read) != read.processed {
        transaction.rollback().await?;
        let reason = format!(
            "query job {}: its pages held {} records where it processed {}",
            read.job_id.as_deref().unwrap_or("?"),
            read.read,
            read.processed.unwrap_or(0)
        );
        replace_job(context, object, next, &reason).await?;
        return Ok(Outcome::default());
    }
    if last {
        let overlap = chrono_duration(context.settings.overlap);
        finish(&transaction, plan, &mut next, &read, overlap).await?;
    } else {
        next.bulk = Some(read);
    }
    next.save(&transaction).await?;
    transaction.commit().await?;
    object.state = next;
    if last {
        object.bulk_job = JobWatch::new(false, context.settings.bulk_poll_cap);
        object.backlog_count_due = false;
        tracing::info!(object = %plan.object, rows = object.state.row_count, "the query job's last page is in");
    }
    if !applied.locked.is_empty() {
        tracing::info!(object = %plan.object, locked = ?applied.locked, "rows held locked by another session were left for later; the rest is written");
    }
    Ok(Outcome {
        received: written.received,
        written: applied.written,
        deleted: applied.deleted,
    })
}

/// A page that could not be written. A plain `COPY` that met a row already mirrored (the
/// proxy wrote back a record it created, or a client's transaction holds one) is read
/// again through the merge; a job gone while its page was read is replaced; anything else
/// is the step's error, and the same page is read again on a later turn.
async fn page_failed(
    context: &mut Context<'_>,
    object: &mut ObjectSync,
    mut next: ObjectState,
    read: BulkRead,
    mode: CsvMode,
    error: CsvError<sfpg_salesforce::Error>,
) -> Result<Outcome> {
    match error {
        CsvError::Body(error) if error.is_job_gone() => {
            let reason = format!("its page could not be read: {error}");
            replace_job(context, object, next, &reason).await?;
            Ok(Outcome::default())
        }
        CsvError::Body(error) => Err(error.into()),
        CsvError::Write(error)
            if mode == CsvMode::Copy
                && matches!(
                    error.code(),
                    Some(&SqlState::UNIQUE_VIOLATION | &SqlState::LOCK_NOT_AVAILABLE)
                ) =>
        {
            tracing::info!(object = %object.name(), "a page met rows already mirrored; it is read again through the merge");
            next.bulk = Some(BulkRead {
                merge: true,
                ..read
            });
            save(context, object, next).await?;
            Ok(Outcome::default())
        }
        CsvError::Write(error @ ControlError::CsvColumns { .. }) => {
            // The job reads other fields than the plan has (a describe changed them since
            // it was created): a new job reads the plan's.
            replace_job(context, object, next, &error.to_string()).await?;
            Ok(Outcome::default())
        }
        CsvError::Write(error) => Err(error.into()),
    }
}

/// The last page is in: the backfill goes live, or the catch-up's cursor moves to the
/// job's snapshot, less the overlap. Lag is measured from the newest stamp mirrored.
async fn finish(
    transaction: &tokio_postgres::Transaction<'_>,
    plan: &ObjectPlan,
    next: &mut ObjectState,
    read: &BulkRead,
    overlap: chrono::Duration,
) -> Result<()> {
    let newest = mirror::newest_modstamp(transaction, &plan.schema, &plan.table).await?;
    next.newest_modstamp = newest.into_iter().chain(next.newest_modstamp).max();
    match read.purpose {
        BulkPurpose::Backfill => {
            next.backfill_total = Some(read.read);
            super::backfill::go_live(next, overlap);
        }
        BulkPurpose::Changes => {
            next.cursor_modstamp = Some(read.snapshot - overlap);
            next.cursor_id = None;
        }
    }
    next.bulk = None;
    Ok(())
}
