//! Deletes the feed cannot see. `queryAll` shows soft deletes while records sit in the recycle
//! bin; a record purged (or hard-deleted) before a poll saw it only shows in `deleted/`, and
//! only while the delete log reaches back that far. Beyond that, comparing all Ids with the
//! mirror's is the only way, and it also runs on its own timer as a safety net.

use chrono::{DateTime, Duration, Timelike, Utc};
use sfpg_salesforce::SalesforceId;

use super::{Context, Outcome, Write, after_request, commit, parse_id, plan_of};
use crate::error::Result;
use crate::object::{ObjectSync, Sweep};
use sfpg_control::writer::Rows;

/// How far back `deleted/` is asked: Salesforce answers for at most 15 days (30 in older
/// versions of its guide).
const DELETED_MAX_LOOKBACK_DAYS: i64 = 14;

/// Reads `deleted/` from the watermark to now and deletes what it lists. A watermark older
/// than the log's `earliestDateAvailable` means deletes may have been lost: a full Id
/// reconciliation is asked for.
pub async fn deleted(context: &mut Context<'_>, object: &mut ObjectSync) -> Result<Outcome> {
    let plan = plan_of(object)?;
    let now = Utc::now();
    let end = whole_minute(now);
    let watermark = object
        .state
        .deleted_watermark
        .or(object.state.backfill_snapshot)
        .unwrap_or(end);
    let oldest_allowed = end - Duration::days(DELETED_MAX_LOOKBACK_DAYS);
    let mut base = object.state.clone();
    if watermark < oldest_allowed {
        // Too old to ask about: whatever was deleted since, only the Ids can tell.
        tracing::warn!(object = %plan.object, %watermark, "the delete watermark is beyond deleted/'s reach; reconciling Ids");
        object.reconcile_requested = true;
        base.deleted_watermark = Some(end);
        context.save(&base).await?;
        object.state = base;
        return Ok(Outcome::default());
    }
    // Salesforce ignores seconds and needs start < end: wait for the next minute.
    if whole_minute(watermark) >= end {
        base.deleted_watermark = Some(whole_minute(watermark));
        object.state = base;
        return Ok(Outcome::default());
    }
    let answer = context
        .client
        .sobject(plan.object.clone())
        .deleted(whole_minute(watermark), end)
        .await?;
    if watermark < answer.earliest_date_available {
        tracing::warn!(
            object = %plan.object, %watermark, earliest = %answer.earliest_date_available,
            "the delete log no longer reaches back to the watermark; reconciling Ids"
        );
        object.reconcile_requested = true;
    }
    let ids: Vec<String> = answer
        .deleted_records
        .iter()
        .map(|d| d.id.as_str().to_owned())
        .collect();
    let received = ids.len() as u64;
    let covered = answer.latest_date_covered;
    base = after_request(&object.state);
    let applied = commit(context, object, &plan, &[Write::Delete(ids)], |applied| {
        let mut next = base.clone();
        next.row_count -= i64::try_from(applied.deleted).unwrap_or(0);
        next.deleted_watermark = Some(covered.max(watermark));
        next
    })
    .await?;
    Ok(Outcome {
        received,
        written: 0,
        deleted: applied.deleted,
    })
}

/// Compares the next page of Ids with the mirror's rows in the same Id range, and deletes
/// the rows Salesforce no longer has. The last page closes the sweep.
pub async fn reconcile(context: &mut Context<'_>, object: &mut ObjectSync) -> Result<Outcome> {
    let plan = plan_of(object)?;
    let sweep = match object.reconcile.clone() {
        Some(sweep) => sweep,
        None => Sweep::start(Utc::now()),
    };
    // Rows stamped after this were written after the page was asked for (by the proxy,
    // say): the page cannot speak for them, and the feed will.
    let modified_before = Utc::now() - crate::object::chrono_duration(context.settings.overlap);
    let page = context
        .source
        .backfill_page(&plan.object, &[&plan.fields[0]], sweep.after.as_ref(), 2000)
        .await?;
    let page_complete = page.complete;
    let ids = Rows::new(&plan.object, vec![&plan.fields[0]], page.columns)?;
    let present = ids
        .ids()
        .map(|id| parse_id(&plan.object, id))
        .collect::<Result<Vec<SalesforceId>>>()?;
    let upto = match (page_complete, present.last()) {
        (true, _) | (false, None) => None,
        (false, Some(last)) => Some(last.as_str().to_owned()),
    };
    let received = present.len() as u64;
    let write = Write::DeleteAbsent {
        after: sweep.after.as_ref().map(|id| id.as_str().to_owned()),
        upto,
        present: present.iter().map(|id| id.as_str().to_owned()).collect(),
        modified_before,
    };
    let base = after_request(&object.state);
    let complete = page_complete || present.is_empty();
    let applied = commit(context, object, &plan, &[write], |applied| {
        let mut next = base.clone();
        next.row_count -= i64::try_from(applied.deleted).unwrap_or(0);
        if complete {
            next.reconciled_at = Some(sweep.started_at);
        }
        next
    })
    .await?;
    if applied.deleted > 0 {
        tracing::info!(object = %plan.object, deleted = applied.deleted, "reconciliation removed rows whose records are gone");
    }
    if complete {
        object.reconcile = None;
        object.reconcile_requested = false;
        recount(context, object).await?;
    } else {
        object.reconcile = Some(Sweep {
            after: present.last().cloned(),
            started_at: sweep.started_at,
        });
    }
    Ok(Outcome {
        received,
        written: 0,
        deleted: applied.deleted,
    })
}

/// Sets the row count to the table's true count: rows the proxy inserted or deleted are
/// not seen by the sync's own arithmetic.
pub(super) async fn recount(context: &mut Context<'_>, object: &mut ObjectSync) -> Result<()> {
    let plan = plan_of(object)?;
    let table = sfpg_control::mirror::qualified(&plan.schema, &plan.table);
    let row = context
        .db
        .query_one(
            &format!("SELECT count(*) FROM {table} WHERE sfid IS NOT NULL"),
            &[],
        )
        .await?;
    let mut next = object.state.clone();
    next.row_count = row.try_get(0)?;
    context.save(&next).await?;
    object.state = next;
    Ok(())
}

fn whole_minute(t: DateTime<Utc>) -> DateTime<Utc> {
    t.with_nanosecond(0)
        .and_then(|t| t.with_second(0))
        .unwrap_or(t)
}
