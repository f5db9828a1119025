//! Describe: the first one creates the object's table and starts the backfill; later ones
//! (conditional on `If-Modified-Since`) evolve the table: new fields get a column and a
//! backfill of their own, removed fields stop being written, a type that can widen in
//! place widens, and one that cannot pauses the object with a clear reason.

use chrono::{Duration, Utc};
use sfpg_control::{capture, mirror};
use sfpg_salesforce::Conditional;

use super::{Context, Outcome, after_request, begin};
use crate::error::Result;
use crate::object::JobWatch;
use crate::object::{ObjectSync, chrono_duration};
use crate::plan;
use crate::plan::{ObjectPlan, PlanChange};
use sfpg_control::objects::{BulkPurpose, BulkRead, ObjectState, Phase};
use sfpg_salesforce::SObjectDescribe;
use tokio_postgres::Transaction;

pub async fn describe(context: &mut Context<'_>, object: &mut ObjectSync) -> Result<Outcome> {
    let requested_at = Utc::now();
    let interval = chrono_duration(context.settings.describe_interval);
    let Some(describe) = fetch(context, object).await? else {
        let next = after_request(&object.state);
        context.save(&next).await?;
        object.state = next;
        object.next_describe_at = requested_at + interval;
        return Ok(Outcome::default());
    };
    let newer = plan::from_describe(&describe, &context.org.schema, &object.state.table)?;
    let first = object.plan.is_none() || object.state.phase == Phase::Describing;
    let current = object.plan.clone().unwrap_or_else(|| newer.clone());

    let transaction = begin(context.db, context.fence, context.settings).await?;
    let change = evolve_table(&transaction, &current, &object.state.removed_fields, &newer).await?;
    let mut next = after_request(&object.state);
    next.mirrored_fields = newer.fields.clone();
    next.paused_reason = None;
    // HTTP dates have whole seconds; a change in the second of the request must still count.
    next.describe_modified_at = Some(requested_at - Duration::seconds(1));
    next.removed_fields = still_removed(&object.state.removed_fields, &change);
    if first {
        start_backfill(&mut next);
    } else {
        queue_field_backfill(&mut next, &change);
    }
    let job_replaced = replace_job_of_other_fields(&object.state, &mut next);
    next.save(&transaction).await?;
    transaction.commit().await?;
    if job_replaced {
        object.bulk_job = JobWatch::new(false, context.settings.bulk_poll_cap);
    }

    if !change.is_empty() {
        tracing::info!(
            object = %newer.object,
            added = ?change.added.iter().map(|f| &f.field).collect::<Vec<_>>(),
            widened = ?change.widened.iter().map(|f| &f.field).collect::<Vec<_>>(),
            removed = ?change.removed,
            "the object's fields changed; the mirror follows"
        );
    }
    object.state = next;
    object.plan = Some(newer);
    object.describe_requested = false;
    object.next_describe_at = requested_at + interval;
    Ok(Outcome::default())
}

/// The object's describe, or `None` when it has not changed since the last one.
async fn fetch(context: &Context<'_>, object: &ObjectSync) -> Result<Option<SObjectDescribe>> {
    let sobject = context.client.sobject(object.name().to_owned());
    // Only a healthy, planned object may skip an unchanged describe: a paused one may be
    // waiting for a column someone dropped, which no metadata change announces.
    let since = object.state.describe_modified_at.filter(|_| {
        object.plan.is_some() && object.state.paused_reason.is_none() && !object.describe_requested
    });
    Ok(match since {
        Some(since) => match sobject.describe_if_modified_since(since).await? {
            Conditional::Modified(describe) => Some(describe),
            Conditional::NotModified => None,
        },
        None => Some(sobject.describe().await?),
    })
}

/// Creates the object's table, or brings it to `newer`: new columns added, narrower ones
/// widened; what changed is returned.
async fn evolve_table(
    transaction: &Transaction<'_>,
    current: &ObjectPlan,
    removed_before: &[String],
    newer: &ObjectPlan,
) -> Result<PlanChange> {
    let (schema, table) = (&newer.schema, &newer.table);
    mirror::create_schema(transaction, schema).await?;
    mirror::create_table(transaction, schema, table, &newer.columns()).await?;
    // The proxy's triggers: its clients' writes are captured and pushed, anyone else's
    // refused; the sync's own writes (its transactions set the sync origin) pass.
    capture::install_capture_trigger(transaction, schema, table).await?;
    let existing = mirror::existing_columns(transaction, schema, table).await?;
    let change = plan::compare(current, removed_before, newer, &existing)?;
    for field in &change.added {
        mirror::add_column(transaction, schema, table, &field.as_column()).await?;
    }
    for field in &change.widened {
        mirror::widen_column(transaction, schema, table, &field.as_column()).await?;
    }
    Ok(change)
}

/// The fields still removed after `change`: those removed before that did not come back,
/// and those removed now.
fn still_removed(removed_before: &[String], change: &PlanChange) -> Vec<String> {
    removed_before
        .iter()
        .filter(|r| {
            !change
                .returned
                .iter()
                .any(|f| f.field.eq_ignore_ascii_case(r))
        })
        .cloned()
        .chain(change.removed.iter().cloned())
        .collect()
}

/// A query job under way reads the fields the plan had when it was created: when they
/// change, a new job takes its place (its pages merged, since the old one's may be
/// written), or its pages would not fit the table. True when it was replaced.
fn replace_job_of_other_fields(before: &ObjectState, next: &mut ObjectState) -> bool {
    let fields = |state: &ObjectState| -> Vec<String> {
        state
            .mirrored_fields
            .iter()
            .map(|f| f.field.to_ascii_lowercase())
            .collect()
    };
    if fields(before) == fields(next) {
        return false;
    }
    let Some(read) = next.bulk.take() else {
        return false;
    };
    tracing::info!(object = %next.object, "the fields changed while a query job read the object; a new job reads them");
    if read.purpose == BulkPurpose::Backfill {
        next.backfill_done = 0;
    }
    let merge = read.merge || read.read > 0;
    next.bulk = Some(BulkRead::new(read.purpose, read.snapshot, merge));
    true
}

/// The first describe: the backfill starts from nothing.
fn start_backfill(next: &mut ObjectState) {
    next.phase = Phase::Backfilling;
    next.backfill_total = None;
    next.backfill_done = 0;
    next.backfill_last_id = None;
    next.backfill_snapshot = None;
}

/// A later describe: new and returned fields get a backfill of their own.
fn queue_field_backfill(next: &mut ObjectState, change: &PlanChange) {
    let was_pending = !next.pending_field_backfill.is_empty();
    for field in change.added.iter().chain(&change.returned) {
        if !next
            .pending_field_backfill
            .iter()
            .any(|p| p.eq_ignore_ascii_case(&field.field))
        {
            next.pending_field_backfill.push(field.field.clone());
        }
    }
    // Live, the Id checkpoint is the field backfill's: a new sweep starts from the top.
    if next.phase == Phase::Live && !was_pending && !next.pending_field_backfill.is_empty() {
        next.backfill_last_id = None;
    }
}

#[cfg(test)]
mod tests {
    use chrono::Utc;
    use sfpg_control::mapping::ColumnType;
    use sfpg_control::plan::MirroredField;

    use super::*;
    use crate::object::tests::state;

    #[test]
    fn a_job_reading_other_fields_than_the_plan_is_replaced() {
        let mut before = state(Phase::Backfilling);
        let running = BulkRead {
            job_id: Some("7505g00000AbCdEAAV".into()),
            locator: Some("MTAwMDA".into()),
            read: 100_000,
            ..BulkRead::new(BulkPurpose::Backfill, Utc::now(), false)
        };
        before.bulk = Some(running.clone());
        before.backfill_done = 100_000;

        // The same fields (a type widened in place): the job goes on.
        let mut next = before.clone();
        assert!(!replace_job_of_other_fields(&before, &mut next));
        assert_eq!(next.bulk.as_ref(), Some(&running));

        // A field added: a new job, its pages merged over what the old one wrote.
        let mut next = before.clone();
        next.mirrored_fields
            .push(MirroredField::new("Color__c", ColumnType::Varchar(40)));
        assert!(replace_job_of_other_fields(&before, &mut next));
        let fresh = next.bulk.unwrap();
        assert_eq!((fresh.job_id, fresh.locator, fresh.read), (None, None, 0));
        assert!(fresh.merge);
        assert_eq!(fresh.snapshot, running.snapshot);
        assert_eq!(next.backfill_done, 0);

        // Without a job, nothing to replace.
        let mut idle = state(Phase::Live);
        let mut next = idle.clone();
        next.mirrored_fields.pop();
        assert!(!replace_job_of_other_fields(&idle, &mut next));
        idle.bulk = None;
        assert_eq!(next.bulk, idle.bulk);
    }
}
