//! The backfill: the snapshot time and the count, then pages of `WHERE Id > :last ORDER BY
//! Id LIMIT n`, each written with its checkpoint; then the same for fields added later.

use chrono::Utc;
use sfpg_salesforce::SalesforceId;

use super::{
    Context, Outcome, Write, after_request, commit, last_id, newest_stamp, plan_of, stamps,
};
use crate::error::{Result, SyncError};
use crate::object::{ObjectSync, ReadAhead, chrono_duration};
use crate::plan::MirroredField;
use crate::source;
use sfpg_control::mirror;
use sfpg_control::objects::{BulkPurpose, BulkRead, ObjectState, Phase};
use sfpg_control::writer::Rows;

/// Takes the snapshot time, then counts the records. Changes from the snapshot on are the
/// incremental feed's: it starts there (less the overlap) once the pages are done.
///
/// An object counting at least the org's bulk threshold is backfilled through one Bulk API
/// 2.0 query job ([`super::bulk`]): its pages are merged if the table holds rows already (a
/// resync), else copied straight in.
pub async fn count(context: &mut Context<'_>, object: &mut ObjectSync) -> Result<Outcome> {
    let snapshot = object.state.backfill_snapshot.unwrap_or_else(Utc::now);
    let total = source::count(context.client, object.name()).await?;
    let mut next = after_request(&object.state);
    next.backfill_snapshot = Some(snapshot);
    next.backfill_total = Some(i64::try_from(total).unwrap_or(i64::MAX));
    let threshold = context.org.bulk_threshold;
    if super::bulk::reaches_threshold(threshold, total) {
        let plan = plan_of(object)?;
        let merge = mirror::has_rows(&*context.db, &plan.schema, &plan.table).await?;
        tracing::info!(object = %plan.object, total, threshold, merge, "at or above the bulk threshold: backfilled through a Bulk API 2.0 query job");
        next.bulk = Some(BulkRead::new(BulkPurpose::Backfill, snapshot, merge));
    }
    context.save(&next).await?;
    object.state = next;
    Ok(Outcome::default())
}

fn parse_checkpoint(object: &str, checkpoint: Option<&str>) -> Result<Option<SalesforceId>> {
    checkpoint
        .map(|id| {
            SalesforceId::parse(id).map_err(|e| {
                SyncError::corrupt(format!("{object}'s backfill checkpoint is not an Id: {e}"))
            })
        })
        .transpose()
}

/// Copies the next page, and checkpoints it in the same transaction.
///
/// While the page is written, the next one is read, when the rate limiter has a slot that
/// nobody is waiting for: the request would go now anyway, and Salesforce's time to serve
/// it overlaps the database's time to write. Under a real rate limit the slot is never
/// free right after a request, so nothing changes there: one request per turn, objects
/// served round-robin.
pub async fn page(context: &mut Context<'_>, object: &mut ObjectSync) -> Result<Outcome> {
    let plan = plan_of(object)?;
    let checkpoint = object.state.backfill_last_id.clone();
    let after = parse_checkpoint(object.name(), checkpoint.as_deref())?;
    let fields: Vec<&MirroredField> = plan.fields.iter().collect();
    let names: Vec<String> = plan.fields.iter().map(|f| f.field.clone()).collect();
    let source = context.source;
    let batch_size = context.org.batch_size;
    let (page, fetched) = match object.read_ahead.take() {
        Some(ahead) if ahead.after == checkpoint && ahead.fields == names => (ahead.page, false),
        _ => (
            source
                .backfill_page(&plan.object, &fields, after.as_ref(), batch_size)
                .await?,
            true,
        ),
    };
    let complete = page.complete;
    let rows = Rows::new(&plan.object, fields.clone(), page.columns)?;
    let last = last_id(&plan.object, &rows)?;
    let newest = newest_stamp(&stamps(&plan.object, &rows)?, object.state.newest_modstamp);
    let received = rows.len() as u64;
    let overlap = chrono_duration(context.settings.overlap);
    let read_ahead = !complete
        && last.is_some()
        && context.may_read_ahead
        && context.client.limiter().is_ready();
    let mut base = after_request(&object.state);
    // Every request is counted by the turn that sends it.
    base.requests += i64::from(read_ahead) - i64::from(!fetched);
    let writes = [Write::InsertNew(rows)];
    let written = commit(context, object, &plan, &writes, |applied| {
        let mut next = base.clone();
        if let Some(last) = &last {
            next.backfill_last_id = Some(last.as_str().to_owned());
        }
        next.backfill_done += i64::try_from(received).unwrap_or(0);
        next.row_count += i64::try_from(applied.inserted).unwrap_or(0);
        next.newest_modstamp = newest;
        if complete {
            go_live(&mut next, overlap);
        }
        next
    });
    let ahead = async {
        match (&last, read_ahead) {
            (Some(last), true) => Some(
                source
                    .backfill_page(&plan.object, &fields, Some(last), batch_size)
                    .await,
            ),
            _ => None,
        }
    };
    let (applied, ahead) = tokio::join!(written, ahead);
    let applied = applied?;
    if let Some(ahead) = ahead {
        keep_read_ahead(object, &plan.object, last.as_ref(), names, ahead);
    }
    if complete {
        tracing::info!(object = %plan.object, rows = object.state.row_count, "backfill complete; following changes");
    }
    Ok(Outcome {
        received,
        written: applied.written,
        deleted: 0,
    })
}

/// The last page is in: the incremental feed takes over from the snapshot (less the
/// overlap).
pub(super) fn go_live(next: &mut ObjectState, overlap: chrono::Duration) {
    let snapshot = next.backfill_snapshot.unwrap_or_else(Utc::now);
    next.phase = Phase::Live;
    next.backfill_last_id = None;
    next.backfill_total = Some(next.backfill_done.max(next.backfill_total.unwrap_or(0)));
    next.cursor_modstamp = Some(snapshot - overlap);
    next.cursor_id = None;
    // Deletes before the snapshot are not in the pages; from it on, the feed and
    // `deleted/` see them.
    next.deleted_watermark = Some(snapshot);
    next.reconciled_at = Some(snapshot);
}

/// Keeps the page read ahead for the next turn, which uses it if its checkpoint and fields
/// are still the same.
fn keep_read_ahead(
    object: &mut ObjectSync,
    name: &str,
    last: Option<&SalesforceId>,
    names: Vec<String>,
    ahead: Result<source::Page>,
) {
    match ahead {
        Ok(page) => {
            object.read_ahead = Some(ReadAhead {
                after: last.map(|id| id.as_str().to_owned()),
                fields: names,
                page,
            });
        }
        // The next turn asks again, and meets the error itself if it persists.
        Err(error) => {
            tracing::debug!(object = %name, %error, "reading the next backfill page ahead failed");
        }
    }
}

/// Fills in the next page of fields added after the backfill (or back after a removal).
pub async fn field_page(context: &mut Context<'_>, object: &mut ObjectSync) -> Result<Outcome> {
    let plan = plan_of(object)?;
    let pending = &object.state.pending_field_backfill;
    let fields: Vec<&MirroredField> = std::iter::once(&plan.fields[0])
        .chain(
            plan.fields
                .iter()
                .filter(|f| pending.iter().any(|p| p.eq_ignore_ascii_case(&f.field))),
        )
        .collect();
    let base = after_request(&object.state);
    if fields.len() < 2 {
        // The pending fields left describe again before they were filled.
        let mut next = object.state.clone();
        next.pending_field_backfill.clear();
        next.backfill_last_id = None;
        context.save(&next).await?;
        object.state = next;
        return Ok(Outcome::default());
    }
    let after = parse_checkpoint(object.name(), object.state.backfill_last_id.as_deref())?;
    let page = context
        .source
        .backfill_page(
            &plan.object,
            &fields,
            after.as_ref(),
            context.org.batch_size,
        )
        .await?;
    let complete = page.complete;
    let rows = Rows::new(&plan.object, fields, page.columns)?;
    let last = last_id(&plan.object, &rows)?;
    let received = rows.len() as u64;
    let applied = commit(
        context,
        object,
        &plan,
        &[Write::UpdateColumns(rows)],
        |_| {
            let mut next = base.clone();
            if complete {
                next.pending_field_backfill.clear();
                next.backfill_last_id = None;
            } else if let Some(last) = &last {
                next.backfill_last_id = Some(last.as_str().to_owned());
            }
            next
        },
    )
    .await?;
    Ok(Outcome {
        received,
        written: applied.written,
        deleted: 0,
    })
}
