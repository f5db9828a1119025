//! From the fates of a bulk push's records to what the client's transaction keeps: the
//! accepted records (as a plan of their own, to read back and write back like an atomic
//! push's), the refused rows put back as they were before the transaction, the rows of
//! `sfpg.write_failures`, and the WARNING the COMMIT carries.
//!
//! The refused rows' images come from [`RowsBefore`], not from the captured changes,
//! which are not kept through the push.

use std::collections::{BTreeMap, HashMap};

use sfpg_control::write_failures::{WriteFailure, listing_query};

use super::jobs::{CANCELED, NOT_SENT, PARENT_REFUSED, UNPROCESSED};
use super::{BulkSent, Fate};
use crate::push::plan::{Operation, Plan, SpoolError, Values};
use crate::push::refusal::sqlstate_for;
use crate::push::taken::RowsBefore;
use crate::push::write_back::WRITE_BACK_ROWS;
use crate::push::{RowsForm, WriteBack};

/// How many refusals the WARNING's DETAIL names.
const REASONS_SHOWN: usize = 5;

/// What the client's transaction does after a bulk push.
#[derive(Debug)]
pub struct Settled<'b> {
    /// The accepted records, references renumbered, without their fields (the read-back
    /// needs none); none when Salesforce accepted none.
    pub accepted: Option<Plan>,
    /// The Id of each accepted create, in the order of `accepted`.
    pub created: Vec<String>,
    /// The refused rows to put back (`sfpg.restore_refused`).
    pub restores: Restores<'b>,
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

/// Settles a bulk push of `plan` (the rows it changed as they were `before`) that ended
/// as `sent`. The plan becomes the accepted records' own, and the accepted creates' Ids
/// are moved out of the fates, not copied: a bulk push holds 100,000.
pub fn settle<'b>(
    plan: Plan,
    sent: BulkSent,
    before: &'b RowsBefore,
    who: &Pusher<'_>,
) -> Settled<'b> {
    let mut restores = Restores {
        before,
        tables: BTreeMap::new(),
    };
    let mut failures = Vec::new();
    for (planned, fate) in plan.records.iter().zip(&sent.fates) {
        let Fate::Refused { job, error } = fate else {
            continue;
        };
        let object = &planned.object;
        let to_image = match planned.operation {
            Operation::Create => false,
            _ if before.has(planned.table_oid, planned.row_id) => true,
            _ => continue,
        };
        restores
            .tables
            .entry((object.schema.clone(), object.table.clone()))
            .or_default()
            .push(Restore {
                table_oid: planned.table_oid,
                row_id: planned.row_id,
                to_image,
            });
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
    let warning = warning(&failures, plan.records.len(), who.txid);
    let (accepted, created) = accepted(plan, sent.fates);
    Settled {
        accepted,
        created,
        restores,
        failures,
        warning,
    }
}

/// The accepted records as a plan, each reference renumbered to its create's new place and
/// its values dropped (the jobs have sent them), and the Id of each accepted create. The
/// records are kept in place, in the plan's own vector: 100,000 of them are held once.
fn accepted(plan: Plan, fates: Vec<Fate>) -> (Option<Plan>, Vec<String>) {
    let Plan {
        org, mut records, ..
    } = plan;
    let mut renumbered: HashMap<usize, usize> = HashMap::new();
    let mut created = Vec::new();
    let mut fates = fates.into_iter();
    let mut index = 0;
    records.retain_mut(|planned| {
        let fate = fates.next();
        index += 1;
        let Some(Fate::Accepted { id }) = fate else {
            return false;
        };
        planned.values = Values::Held(Vec::new());
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
            created.push(id);
        }
        renumbered.insert(index - 1, renumbered.len());
        true
    });
    let plan = (!records.is_empty()).then_some(Plan {
        org,
        records,
        spool: None,
    });
    (plan, created)
}

/// Per table, the refused rows to put back, and the images from before the transaction
/// they go back to.
#[derive(Debug)]
pub struct Restores<'b> {
    before: &'b RowsBefore,
    tables: BTreeMap<(String, String), Vec<Restore>>,
}

/// A refused row: its local id, and whether it goes back to its image from before the
/// transaction (`false`: a create, whose row goes).
#[derive(Debug)]
struct Restore {
    table_oid: u32,
    row_id: i64,
    to_image: bool,
}

impl Restores<'_> {
    /// The `sfpg.restore_refused` statements, `WRITE_BACK_ROWS` rows each, each made
    /// only when it is wanted (its images read from the spool then): an image that cannot
    /// be read back is an error.
    pub fn statements(&self) -> impl Iterator<Item = Result<WriteBack, SpoolError>> + Send + '_ {
        self.tables.iter().flat_map(|((schema, table), rows)| {
            rows.chunks(WRITE_BACK_ROWS).map(|chunk| {
                Ok(WriteBack {
                    schema: schema.clone(),
                    table: table.clone(),
                    rows: restore_rows(self.before, chunk)?,
                    form: RowsForm::Json,
                })
            })
        })
    }
}

/// The JSON array `sfpg.restore_refused` takes: `{"id"}` for a create, `{"id", "row"}`
/// with the row's image (already JSON) otherwise.
fn restore_rows(before: &RowsBefore, rows: &[Restore]) -> Result<String, SpoolError> {
    let mut text = String::from("[");
    for (n, restore) in rows.iter().enumerate() {
        if n > 0 {
            text.push(',');
        }
        text.push_str("{\"id\":");
        text.push_str(&restore.row_id.to_string());
        if restore.to_image
            && let Some(row) = before.get(restore.table_oid, restore.row_id)?
        {
            text.push_str(",\"row\":");
            text.push_str(&row);
        }
        text.push('}');
    }
    text.push(']');
    Ok(text)
}

/// The COMMIT's WARNING: how many of the `total` records Salesforce refused and how many
/// it never processed (and why), the first reasons, and the query that lists them all.
/// Salesforce is said to have refused only what it refused: a record of a cancelled job
/// was not saved, and not refused either.
fn warning(failures: &[WriteFailure], total: usize, txid: &str) -> Option<Vec<(u8, String)>> {
    if failures.is_empty() {
        return None;
    }
    let refused = failures
        .iter()
        .filter(|f| !not_processed(&f.error_code))
        .count();
    let unsaved = failures.len() - refused;
    let why: Vec<&str> = NOT_PROCESSED
        .iter()
        .filter(|(code, _)| failures.iter().any(|f| f.error_code == *code))
        .map(|(_, why)| *why)
        .collect();
    let message = match (refused, unsaved) {
        (_, 0) => format!("{refused} of {total} records were refused by Salesforce"),
        (0, _) => format!(
            "{unsaved} of {total} records were not saved: {}",
            why.join("; ")
        ),
        _ => format!(
            "{refused} of {total} records were refused by Salesforce, and {unsaved} more were not saved: {}",
            why.join("; ")
        ),
    };
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
                "The rows not saved are as they were before the transaction; the others are committed. List each with its reason: {}",
                listing_query(txid)
            ),
        ),
    ])
}

/// The push's own codes for records Salesforce never processed, with what the WARNING
/// says of them.
const NOT_PROCESSED: [(&str, &str); 4] = [
    (
        CANCELED,
        "the push was cancelled before Salesforce processed them",
    ),
    (NOT_SENT, "the push stopped before they were sent"),
    (
        UNPROCESSED,
        "their job ended before Salesforce processed them",
    ),
    (PARENT_REFUSED, "a record they refer to was not created"),
];

fn not_processed(code: &str) -> bool {
    NOT_PROCESSED.iter().any(|(own, _)| *own == code)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failure(row_id: i64, error_code: &str) -> WriteFailure {
        WriteFailure {
            role_name: "app".into(),
            txid: "9".into(),
            journal_id: None,
            org: "acme".into(),
            job_id: None,
            schema: "salesforce".into(),
            table: "lead".into(),
            row_id,
            sfid: None,
            operation: Operation::Create,
            error_code: error_code.into(),
            message: "why".into(),
            fields: Vec::new(),
        }
    }

    fn field(warning: &[(u8, String)], code: u8) -> Option<&str> {
        warning
            .iter()
            .find(|(c, _)| *c == code)
            .map(|(_, v)| v.as_str())
    }

    #[test]
    fn the_warning_tells_refused_records_from_records_salesforce_never_processed() {
        assert!(warning(&[], 10, "9").is_none(), "nothing left undone");
        let said = |failures: &[WriteFailure]| {
            let warning = warning(failures, 10, "9").unwrap();
            field(&warning, b'M').unwrap().to_owned()
        };
        assert_eq!(
            said(&[failure(1, "INVALID_EMAIL_ADDRESS")]),
            "1 of 10 records were refused by Salesforce"
        );
        assert_eq!(
            said(&[failure(1, CANCELED), failure(2, CANCELED)]),
            "2 of 10 records were not saved: the push was cancelled before Salesforce processed them"
        );
        assert_eq!(
            said(&[
                failure(1, "REQUIRED_FIELD_MISSING"),
                failure(2, PARENT_REFUSED),
                failure(3, NOT_SENT),
            ]),
            "1 of 10 records were refused by Salesforce, and 2 more were not saved: \
             the push stopped before they were sent; a record they refer to was not created"
        );
        let warning = warning(&[failure(4, "INVALID_EMAIL_ADDRESS")], 10, "9").unwrap();
        assert_eq!(
            field(&warning, b'D'),
            Some("salesforce.lead row 4 (create): INVALID_EMAIL_ADDRESS [22000]: why")
        );
        assert!(field(&warning, b'H').unwrap().contains("txid = '9'"));
    }

    #[test]
    fn the_restores_are_json_with_each_rows_image_held_or_spooled() {
        let rows = [
            Restore {
                table_oid: 7,
                row_id: 1,
                to_image: false,
            },
            Restore {
                table_oid: 7,
                row_id: 2,
                to_image: true,
            },
        ];
        let images = [((7, 2), r#"{"id": 2, "name": "Old"}"#), ((8, 2), "{}")];
        for spool_after in [0, 1, 10] {
            let before = RowsBefore::kept(&images, spool_after);
            let text = restore_rows(&before, &rows).unwrap();
            let parsed: serde_json::Value = serde_json::from_str(&text).unwrap();
            assert_eq!(
                parsed,
                serde_json::json!([{"id": 1}, {"id": 2, "row": {"id": 2, "name": "Old"}}]),
                "images spooled after {spool_after}"
            );
        }
    }
}
