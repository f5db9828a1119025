//! Describe: the first one creates the object's table and starts the backfill; later ones
//! (conditional on `If-Modified-Since`) evolve the table: new fields get a column and a
//! backfill of their own, removed fields stop being written, a type that can widen in
//! place widens, and one that cannot pauses the object with a clear reason.

use chrono::{Duration, Utc};
use sfpg_control::{capture, mirror};
use sfpg_salesforce::Conditional;

use super::{Context, Outcome, after_request};
use crate::error::Result;
use crate::object::{ObjectSync, chrono_duration};
use crate::plan;
use sfpg_control::objects::Phase;
use sfpg_control::writer;

pub async fn describe(context: &mut Context<'_>, object: &mut ObjectSync) -> Result<Outcome> {
    let sobject = context.client.sobject(object.name().to_owned());
    let requested_at = Utc::now();
    let interval = chrono_duration(context.settings.describe_interval);
    // Only a healthy, planned object may skip an unchanged describe: a paused one may be
    // waiting for a column someone dropped, which no metadata change announces.
    let since = object.state.describe_modified_at.filter(|_| {
        object.plan.is_some() && object.state.paused_reason.is_none() && !object.describe_requested
    });
    let describe = match since {
        Some(since) => match sobject.describe_if_modified_since(since).await? {
            Conditional::Modified(describe) => describe,
            Conditional::NotModified => {
                let next = after_request(&object.state);
                next.save(&*context.db).await?;
                object.state = next;
                object.next_describe_at = requested_at + interval;
                return Ok(Outcome::default());
            }
        },
        None => sobject.describe().await?,
    };
    let newer = plan::from_describe(&describe, &context.org.schema, &object.state.table)?;
    let first = object.plan.is_none() || object.state.phase == Phase::Describing;
    let current = object.plan.clone().unwrap_or_else(|| newer.clone());
    let removed_before = object.state.removed_fields.clone();

    let transaction = writer::begin(context.db, Some(context.settings.lock_timeout)).await?;
    mirror::create_schema(&transaction, &newer.schema).await?;
    mirror::create_table(&transaction, &newer.schema, &newer.table, &newer.columns()).await?;
    // The proxy's triggers: its clients' writes are captured and pushed, anyone else's
    // refused; the sync's own writes (its transactions set the sync origin) pass.
    capture::install_capture_trigger(&transaction, &newer.schema, &newer.table).await?;
    let existing = mirror::existing_columns(&transaction, &newer.schema, &newer.table).await?;
    let change = plan::compare(&current, &removed_before, &newer, &existing)?;
    for field in &change.added {
        mirror::add_column(
            &transaction,
            &newer.schema,
            &newer.table,
            &field.as_column(),
        )
        .await?;
    }
    for field in &change.widened {
        mirror::widen_column(
            &transaction,
            &newer.schema,
            &newer.table,
            &field.as_column(),
        )
        .await?;
    }

    let mut next = after_request(&object.state);
    next.mirrored_fields = newer.fields.clone();
    next.paused_reason = None;
    // HTTP dates have whole seconds; a change in the second of the request must still count.
    next.describe_modified_at = Some(requested_at - Duration::seconds(1));
    next.removed_fields = removed_before
        .iter()
        .filter(|r| {
            !change
                .returned
                .iter()
                .any(|f| f.field.eq_ignore_ascii_case(r))
        })
        .cloned()
        .chain(change.removed.iter().cloned())
        .collect();
    if first {
        next.phase = Phase::Backfilling;
        next.backfill_total = None;
        next.backfill_done = 0;
        next.backfill_last_id = None;
        next.backfill_snapshot = None;
    } else {
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
    next.save(&transaction).await?;
    transaction.commit().await?;

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
