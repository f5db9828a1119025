//! The records a page left out because a client held their mirror rows locked
//! (`sfpg.objects.locked_ids`): once their rows are free they are read again by Id, as
//! Salesforce has them now, and written. Until then a turn only looks at the locks, which
//! costs no request; the checkpoints that moved past these records need not move back.

use chrono::Utc;
use sfpg_salesforce::SalesforceId;

use super::{Context, Outcome, Write, after_request, commit, live_and_deleted, plan_of};
use crate::error::Result;
use crate::object::{ObjectSync, chrono_duration};
use crate::plan::MirroredField;
use crate::source::MAX_IDS;
use sfpg_control::writer::Rows;
use sfpg_control::writer::locks::still_locked;

/// How long after a look that found them all still locked the rows are looked at again.
pub const LOCKED_RETRY_INTERVAL: std::time::Duration = std::time::Duration::from_secs(1);

/// Reads and writes the owed records whose rows are free now (at most [`MAX_IDS`]).
pub async fn retry(context: &mut Context<'_>, object: &mut ObjectSync) -> Result<Outcome> {
    let plan = plan_of(object)?;
    object.locked_retry_at = Utc::now() + chrono_duration(LOCKED_RETRY_INTERVAL);
    let owed: Vec<String> = object
        .state
        .locked_ids
        .iter()
        .take(MAX_IDS)
        .cloned()
        .collect();
    let locked = still_locked(context.db, &plan, &owed, context.settings.lock_timeout).await?;
    let mut free = Vec::new();
    let mut unusable = Vec::new();
    for id in owed.iter().filter(|id| !locked.contains(*id)) {
        match SalesforceId::parse(id) {
            Ok(parsed) => free.push(parsed),
            Err(error) => {
                tracing::warn!(object = %plan.object, %id, %error, "dropped from the records owed");
                unusable.push(id.clone());
            }
        }
    }
    if free.is_empty() {
        if !unusable.is_empty() {
            let mut next = object.state.clone();
            next.locked_ids.retain(|id| !unusable.contains(id));
            context.save(&next).await?;
            object.state = next;
        }
        return Ok(Outcome::default());
    }
    let fields: Vec<&MirroredField> = plan.fields.iter().collect();
    let page = context.source.records(&plan.object, &fields, &free).await?;
    let complete = page.complete;
    let read = Rows::new(&plan.object, fields, page.columns)?;
    let (live, mut deleted) = live_and_deleted(&read)?;
    if complete {
        // Not even in the recycle bin: purged, or out of the integration user's sight.
        let returned: Vec<&str> = read.ids().collect();
        deleted.extend(
            free.iter()
                .map(SalesforceId::as_str)
                .filter(|id| !returned.contains(id))
                .map(str::to_owned),
        );
    }
    let received = read.len() as u64;
    let mut base = after_request(&object.state);
    base.locked_ids.retain(|id| !unusable.contains(id));
    let writes = [Write::Upsert(live), Write::Delete(deleted)];
    let applied = commit(context, object, &plan, &writes, |applied| {
        let mut next = base.clone();
        next.row_count += i64::try_from(applied.inserted).unwrap_or(0)
            - i64::try_from(applied.deleted).unwrap_or(0);
        next
    })
    .await?;
    Ok(Outcome {
        received,
        written: applied.written,
        deleted: applied.deleted,
    })
}
