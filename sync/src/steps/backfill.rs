//! The backfill: the snapshot time and the count, then pages of `WHERE Id > :last ORDER BY
//! Id LIMIT n`, each written with its checkpoint; then the same for fields added later.

use chrono::Utc;
use sfpg_salesforce::SalesforceId;

use super::{Context, Outcome, Write, after_request, commit, newest_stamp, plan_of, record_id};
use crate::error::{Result, SyncError};
use crate::object::{ObjectSync, chrono_duration};
use crate::plan::MirroredField;
use crate::source;
use crate::state::Phase;
use crate::write::Rows;

/// Takes the snapshot time, then counts the records. Changes from the snapshot on are the
/// incremental feed's: it starts there (less the overlap) once the pages are done.
pub async fn count(context: &mut Context<'_>, object: &mut ObjectSync) -> Result<Outcome> {
    let snapshot = object.state.backfill_snapshot.unwrap_or_else(Utc::now);
    let total = source::count(context.client, object.name()).await?;
    let mut next = after_request(&object.state);
    next.backfill_snapshot = Some(snapshot);
    next.backfill_total = Some(i64::try_from(total).unwrap_or(i64::MAX));
    next.save(&*context.db).await?;
    object.state = next;
    Ok(Outcome::default())
}

fn parse_checkpoint(object: &str, checkpoint: Option<&str>) -> Result<Option<SalesforceId>> {
    checkpoint
        .map(|id| {
            SalesforceId::parse(id).map_err(|e| {
                SyncError::Control(format!("{object}'s backfill checkpoint is not an Id: {e}"))
            })
        })
        .transpose()
}

/// Copies the next page, and checkpoints it in the same transaction.
pub async fn page(context: &mut Context<'_>, object: &mut ObjectSync) -> Result<Outcome> {
    let plan = plan_of(object)?;
    let after = parse_checkpoint(object.name(), object.state.backfill_last_id.as_deref())?;
    let fields: Vec<&str> = plan.fields.iter().map(|f| f.field.as_str()).collect();
    let page = context
        .source
        .backfill_page(
            &plan.object,
            &fields,
            after.as_ref(),
            context.org.batch_size,
        )
        .await?;
    let last = page
        .records
        .last()
        .map(|r| record_id(&plan.object, r))
        .transpose()?;
    let newest = newest_stamp(&plan.object, &page.records, object.state.newest_modstamp)?;
    let rows = Rows::from_records(&plan.object, plan.fields.iter().collect(), &page.records)?;
    let received = page.records.len() as u64;
    let overlap = chrono_duration(context.settings.overlap);
    let base = after_request(&object.state);
    let applied = commit(context, object, &plan, &[Write::Upsert(rows)], |applied| {
        let mut next = base.clone();
        if let Some(last) = &last {
            next.backfill_last_id = Some(last.as_str().to_owned());
        }
        next.backfill_done += i64::try_from(received).unwrap_or(0);
        next.row_count += i64::try_from(applied.inserted).unwrap_or(0);
        next.newest_modstamp = newest;
        if page.complete {
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
        next
    })
    .await?;
    if page.complete {
        tracing::info!(object = %plan.object, rows = object.state.row_count, "backfill complete; following changes");
    }
    Ok(Outcome {
        received,
        written: applied.written,
        deleted: 0,
    })
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
        next.save(&*context.db).await?;
        object.state = next;
        return Ok(Outcome::default());
    }
    let after = parse_checkpoint(object.name(), object.state.backfill_last_id.as_deref())?;
    let names: Vec<&str> = fields.iter().map(|f| f.field.as_str()).collect();
    let page = context
        .source
        .backfill_page(&plan.object, &names, after.as_ref(), context.org.batch_size)
        .await?;
    let last = page
        .records
        .last()
        .map(|r| record_id(&plan.object, r))
        .transpose()?;
    let rows = Rows::from_records(&plan.object, fields, &page.records)?;
    let received = page.records.len() as u64;
    let applied = commit(
        context,
        object,
        &plan,
        &[Write::UpdateColumns(rows)],
        |_| {
            let mut next = base.clone();
            if page.complete {
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
