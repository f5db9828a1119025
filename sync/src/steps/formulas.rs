//! The formula refresh: formula and roll-up fields are computed when read, so a change in
//! their inputs elsewhere (another record, `TODAY()`, the formula itself) changes their value
//! without bumping `SystemModstamp`, and polling never sees it. Re-reading them on a timer,
//! a page per turn, is the only way to follow them.

use chrono::Utc;

use super::{Context, Outcome, Write, after_request, commit, last_id, plan_of};
use crate::error::Result;
use crate::object::{ObjectSync, Sweep};
use crate::plan::MirroredField;
use sfpg_control::writer::Rows;

pub async fn refresh(context: &mut Context<'_>, object: &mut ObjectSync) -> Result<Outcome> {
    let plan = plan_of(object)?;
    let sweep = object
        .formulas
        .clone()
        .unwrap_or_else(|| Sweep::start(Utc::now()));
    let fields: Vec<&MirroredField> = std::iter::once(&plan.fields[0])
        .chain(plan.calculated_fields())
        .collect();
    if fields.len() < 2 {
        let mut next = object.state.clone();
        next.formulas_refreshed_at = Some(sweep.started_at);
        context.save(&next).await?;
        object.state = next;
        object.formulas = None;
        return Ok(Outcome::default());
    }
    let page = context
        .source
        .backfill_page(
            &plan.object,
            &fields,
            sweep.after.as_ref(),
            context.org.batch_size,
        )
        .await?;
    let page_complete = page.complete;
    let rows = Rows::new(&plan.object, fields, page.columns)?;
    let last = last_id(&plan.object, &rows)?;
    let received = rows.len() as u64;
    let base = after_request(&object.state);
    let complete = page_complete || last.is_none();
    let applied = commit(
        context,
        object,
        &plan,
        &[Write::UpdateColumns(rows)],
        |_| {
            let mut next = base.clone();
            if complete {
                next.formulas_refreshed_at = Some(sweep.started_at);
            }
            next
        },
    )
    .await?;
    object.formulas = (!complete).then_some(Sweep {
        after: last,
        started_at: sweep.started_at,
    });
    Ok(Outcome {
        received,
        written: applied.written,
        deleted: 0,
    })
}
