//! The incremental feed: `queryAll` pages in `SystemModstamp, Id` order after the cursor.
//!
//! While behind, the cursor is the last record read, so pages follow each other without
//! gaps or repeats. Once caught up, the cursor moves to the newest stamp seen less the
//! overlap window: Salesforce stamps a record before its transaction commits, so a record
//! can appear later with a stamp older than ones already read, and re-reading the window
//! finds it. Rows read again unchanged are not rewritten.

use super::{
    Context, Outcome, Write, after_request, commit, live_and_deleted, newest_stamp, parse_id,
    plan_of, stamps,
};
use crate::error::{Result, SyncError};
use crate::object::{ObjectSync, chrono_duration};
use crate::plan::MirroredField;
use crate::soql::ModstampCursor;
use crate::source;
use chrono::Utc;
use sfpg_control::objects::{BulkPurpose, BulkRead};
use sfpg_control::writer::Rows;

/// Reads and applies the next page of changes.
pub async fn changes(context: &mut Context<'_>, object: &mut ObjectSync) -> Result<Outcome> {
    let plan = plan_of(object)?;
    let overlap = chrono_duration(context.settings.overlap);
    let cursor = cursor_of(object, overlap)?;
    let fields: Vec<&MirroredField> = plan.fields.iter().collect();
    let page = context
        .source
        .changes(&plan.object, &fields, &cursor, context.org.batch_size)
        .await?;
    let complete = page.complete;
    let read = Rows::new(&plan.object, fields, page.columns)?;
    let stamps = stamps(&plan.object, &read)?;
    let (rows, deleted_ids) = live_and_deleted(&read)?;
    let ids: Vec<&str> = read.ids().collect();
    let newest = newest_stamp(&stamps, object.state.newest_modstamp);
    let next_cursor = match (ids.last(), stamps.last()) {
        (Some(id), Some(stamp)) if !complete => ModstampCursor {
            stamp: *stamp,
            id: Some(parse_id(&plan.object, id)?),
        },
        // Caught up: every record after the cursor has been read, so the cursor may move to
        // the start of the overlap window, forwards or back.
        _ => ModstampCursor {
            stamp: newest.map_or(cursor.stamp, |n| n - overlap),
            id: None,
        },
    };
    let received = read.len() as u64;
    let base = after_request(&object.state);
    let writes = [Write::Upsert(rows), Write::Delete(deleted_ids)];
    let applied = commit(context, object, &plan, &writes, |applied| {
        let mut next = base.clone();
        next.row_count += i64::try_from(applied.inserted).unwrap_or(0)
            - i64::try_from(applied.deleted).unwrap_or(0);
        next.newest_modstamp = newest;
        next.cursor_modstamp = Some(next_cursor.stamp);
        next.cursor_id = next_cursor.id.as_ref().map(|id| id.as_str().to_owned());
        next
    })
    .await?;
    if complete {
        object.backlog_counted = false;
        object.backlog_count_due = false;
    } else if !object.backlog_counted && context.org.bulk_threshold.is_some() {
        // Behind: how far is for the next turn to count.
        object.backlog_count_due = true;
    }
    Ok(Outcome {
        received,
        written: applied.written,
        deleted: applied.deleted,
    })
}

/// Counts the changes from the cursor on. A backlog larger than the org's bulk threshold
/// (after an outage, or a long backfill) is read through one `queryAll` query job filtered
/// by the cursor ([`super::bulk`]); a smaller one goes on through REST pages, and is not
/// counted again until the feed has caught up.
pub async fn backlog(context: &mut Context<'_>, object: &mut ObjectSync) -> Result<Outcome> {
    let overlap = chrono_duration(context.settings.overlap);
    let cursor = cursor_of(object, overlap)?;
    // Before the count, so that what changes meanwhile is after it.
    let snapshot = Utc::now();
    let backlog = source::count_changed_since(context.client, object.name(), cursor.stamp).await?;
    let mut next = after_request(&object.state);
    let threshold = context.org.bulk_threshold;
    if threshold.is_some_and(|t| backlog > t) {
        tracing::info!(object = %object.name(), backlog, threshold, "the backlog is above the bulk threshold: read through a Bulk API 2.0 query job");
        next.cursor_modstamp = Some(cursor.stamp);
        next.bulk = Some(BulkRead::new(BulkPurpose::Changes, snapshot, true));
    }
    context.save(&next).await?;
    object.state = next;
    object.backlog_count_due = false;
    object.backlog_counted = true;
    Ok(Outcome::default())
}

/// Where the next page starts: the saved cursor, else the backfill's snapshot less the
/// overlap.
fn cursor_of(object: &ObjectSync, overlap: chrono::Duration) -> Result<ModstampCursor> {
    let state = &object.state;
    let stamp = state
        .cursor_modstamp
        .or_else(|| state.backfill_snapshot.map(|s| s - overlap))
        .ok_or_else(|| {
            SyncError::corrupt(format!(
                "{} is live without a cursor or a snapshot",
                state.object
            ))
        })?;
    let id = state
        .cursor_id
        .as_deref()
        .map(|id| {
            sfpg_salesforce::SalesforceId::parse(id).map_err(|e| {
                SyncError::corrupt(format!("{}'s cursor Id is not an Id: {e}", state.object))
            })
        })
        .transpose()?;
    Ok(ModstampCursor { stamp, id })
}
