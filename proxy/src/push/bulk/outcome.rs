//! From the fates of a bulk push's records to what the client's transaction keeps: the
//! accepted records (as a plan of their own, to read back and write back like an atomic
//! push's), the refused rows put back as they were before the transaction, the rows of
//! `sfpg.write_failures`, and the WARNING the COMMIT carries.

use std::collections::{BTreeMap, HashMap};

use serde_json::{Map, Value, json};
use sfpg_control::capture::{Operation as Captured, PendingChange};
use sfpg_control::write_failures::{WriteFailure, listing_query};

use super::{BulkSent, Fate};
use crate::push::WriteBack;
use crate::push::plan::{Operation, Plan, Planned};
use crate::push::refusal::sqlstate_for;

/// How many refusals the WARNING's DETAIL names.
const REASONS_SHOWN: usize = 5;

/// What the client's transaction does after a bulk push.
#[derive(Debug)]
pub struct Settled {
    /// The accepted records, references renumbered; none when Salesforce accepted none.
    pub accepted: Option<Plan>,
    /// The Id of each accepted create, in the order of `accepted`.
    pub created: Vec<String>,
    /// Per table, the refused rows to put back (`sfpg.restore_refused`).
    pub restores: Vec<WriteBack>,
    /// One per refused record, for `sfpg.write_failures`.
    pub failures: Vec<WriteFailure>,
    /// The COMMIT's WARNING, when anything was refused.
    pub warning: Option<Vec<(u8, String)>>,
}

/// Who pushed: what `sfpg.write_failures` keeps of the transaction.
#[derive(Debug, Clone)]
pub struct Pusher<'a> {
    pub role: &'a str,
    pub txid: &'a str,
}

/// Settles a bulk push of `plan` (captured as `changes`) that ended as `sent`.
pub fn settle(
    plan: &Plan,
    sent: &BulkSent,
    changes: &[PendingChange],
    who: &Pusher<'_>,
) -> Settled {
    let (accepted, created) = accepted(plan, &sent.fates);
    let before = rows_before(changes);
    let mut restores: BTreeMap<(String, String), Vec<Value>> = BTreeMap::new();
    let mut failures = Vec::new();
    for (planned, fate) in plan.records.iter().zip(&sent.fates) {
        let Fate::Refused { job, error } = fate else {
            continue;
        };
        let object = &planned.object;
        let restore = match planned.operation {
            Operation::Create => json!({ "id": planned.row_id }),
            _ => match before.get(&(planned.table_oid, planned.row_id)) {
                Some(row) => json!({ "id": planned.row_id, "row": row }),
                None => continue,
            },
        };
        restores
            .entry((object.schema.clone(), object.table.clone()))
            .or_default()
            .push(restore);
        failures.push(WriteFailure {
            role_name: who.role.to_owned(),
            txid: who.txid.to_owned(),
            journal_id: sent.journal_id,
            org: plan.org.name.clone(),
            job_id: job.clone(),
            schema: object.schema.clone(),
            table: object.table.clone(),
            row_id: planned.row_id,
            sfid: planned.sfid.clone(),
            operation: planned.operation,
            error_code: error.status_code.clone(),
            message: error.message.clone(),
            fields: error.fields.clone(),
        });
    }
    let warning = warning(&failures, plan.records.len(), sent.canceled, who.txid);
    Settled {
        accepted,
        created,
        restores: restores
            .into_iter()
            .map(|((schema, table), rows)| WriteBack {
                schema,
                table,
                rows: Value::Array(rows).to_string(),
                events: false,
            })
            .collect(),
        failures,
        warning,
    }
}

/// The accepted records as a plan, each reference renumbered to its create's new place,
/// and the Id of each accepted create.
fn accepted(plan: &Plan, fates: &[Fate]) -> (Option<Plan>, Vec<String>) {
    let mut renumbered: HashMap<usize, usize> = HashMap::new();
    let mut records: Vec<Planned> = Vec::new();
    let mut created = Vec::new();
    for (index, (planned, fate)) in plan.records.iter().zip(fates).enumerate() {
        let Fate::Accepted { id } = fate else {
            continue;
        };
        let mut planned = planned.clone();
        // A record is sent only once every create it refers to was accepted.
        planned
            .references
            .retain_mut(|reference| match renumbered.get(&reference.create) {
                Some(&at) => {
                    reference.create = at;
                    true
                }
                None => false,
            });
        if planned.operation == Operation::Create {
            created.push(id.clone());
        }
        renumbered.insert(index, records.len());
        records.push(planned);
    }
    let plan = (!records.is_empty()).then(|| Plan {
        org: plan.org.clone(),
        records,
    });
    (plan, created)
}

/// Each row's image before the transaction, by table and local id: the old image of the
/// first change the transaction made to a row it did not create.
fn rows_before(changes: &[PendingChange]) -> HashMap<(u32, i64), &Map<String, Value>> {
    let mut before = HashMap::new();
    let mut seen = std::collections::HashSet::new();
    for change in changes {
        let key = (change.table_oid, change.row_id.unwrap_or_default());
        if !seen.insert(key) {
            continue;
        }
        if change.operation != Captured::Insert
            && let Some(old) = &change.old
        {
            before.insert(key, old);
        }
    }
    before
}

/// The COMMIT's WARNING: how many of the `total` records were refused, the first
/// reasons, and the query that lists them all.
fn warning(
    failures: &[WriteFailure],
    total: usize,
    canceled: bool,
    txid: &str,
) -> Option<Vec<(u8, String)>> {
    if failures.is_empty() && !canceled {
        return None;
    }
    let mut message = format!(
        "{} of {total} records were refused by Salesforce",
        failures.len()
    );
    if canceled {
        message.push_str(
            " (the push was cancelled: the records Salesforce had not processed were not saved)",
        );
    }
    let mut reasons: Vec<String> = failures
        .iter()
        .take(REASONS_SHOWN)
        .map(|f| {
            format!(
                "{}.{} row {} ({}): {} [{}]: {}",
                f.schema,
                f.table,
                f.row_id,
                f.operation.as_str(),
                f.error_code,
                sqlstate_for(&f.error_code).code(),
                f.message
            )
        })
        .collect();
    if failures.len() > REASONS_SHOWN {
        reasons.push(format!("… and {} more", failures.len() - REASONS_SHOWN));
    }
    Some(vec![
        (b'S', "WARNING".to_owned()),
        (b'V', "WARNING".to_owned()),
        (b'C', "01000".to_owned()),
        (b'M', message),
        (b'D', reasons.join("\n")),
        (
            b'H',
            format!(
                "The refused rows are as they were before the transaction; the accepted ones are committed. List every refusal with: {}",
                listing_query(txid)
            ),
        ),
    ])
}
