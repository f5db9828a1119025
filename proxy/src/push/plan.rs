//! From a transaction's captured row changes to the records Salesforce is sent.
//!
//! Changes to the same row collapse into one (an INSERT then an UPDATE is one create with
//! the final values; an INSERT then a DELETE is nothing). A create sends the createable
//! mirrored fields that have a value; an update sends only the mirrored fields that
//! changed; columns that are not mirrored fields are local and never sent. Writing `sfid`,
//! `systemmodstamp`, or a field Salesforce does not let this operation write is refused
//! with 428C9 naming the column.

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::{Map, Value, json};
use sfpg_salesforce::Record;
use sfpg_schema::capture::{Operation as Captured, PendingChange};

use super::Refusal;
use super::catalog::{ObjectHandle, OrgHandle};

/// The most records one atomic sObject Collections call takes.
pub const MAX_ATOMIC: usize = sfpg_salesforce::collections::MAX_RECORDS;

/// The columns every mirrored table has that Salesforce sets.
const SFID: &str = "sfid";
const SYSTEM_MODSTAMP: &str = "systemmodstamp";
const IS_DELETED: &str = "isdeleted";
/// The local primary key.
const LOCAL_ID: &str = "id";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    Create,
    Update,
    Delete,
}

impl Operation {
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::Create => "create",
            Operation::Update => "update",
            Operation::Delete => "delete",
        }
    }
}

/// One record to send.
#[derive(Debug, Clone)]
pub struct Planned {
    pub operation: Operation,
    pub object: Arc<ObjectHandle>,
    /// The table's OID, as RowDescription reports it.
    pub table_oid: u32,
    /// The row's local `id`.
    pub row_id: i64,
    /// Update and delete: the record's Id.
    pub sfid: Option<String>,
    /// Create and update: field API names to values, with `attributes.type` (and `Id` for
    /// an update), as sObject Collections takes them.
    pub record: Record,
    /// Update: the values the sent fields had before, to put back if a later call of the
    /// same push fails.
    pub previous: Record,
}

/// What a transaction sends to its org: creates, then updates, then deletes.
#[derive(Debug, Clone)]
pub struct Plan {
    pub org: Arc<OrgHandle>,
    pub records: Vec<Planned>,
}

impl Plan {
    pub fn of(&self, operation: Operation) -> impl Iterator<Item = &Planned> {
        self.records
            .iter()
            .filter(move |r| r.operation == operation)
    }
}

/// One row's net change over the transaction.
struct Net<'a> {
    first: &'a PendingChange,
    old: Option<&'a Map<String, Value>>,
    new: Option<&'a Map<String, Value>>,
    changed: Vec<String>,
    deleted: bool,
}

/// Plans the push of `changes` (in capture order), whose tables resolve to `objects`
/// (by schema and table) in one org. `None` when nothing needs sending.
pub fn plan(
    changes: &[PendingChange],
    org: &Arc<OrgHandle>,
    objects: &HashMap<(String, String), Arc<ObjectHandle>>,
) -> Result<Option<Plan>, Refusal> {
    let nets = collapse(changes);
    let mut creates = Vec::new();
    let mut updates = Vec::new();
    let mut deletes = Vec::new();
    for net in nets {
        let change = net.first;
        let key = (change.schema.clone(), change.table.clone());
        let Some(object) = objects.get(&key) else {
            return Err(Refusal::new(
                "55000",
                format!(
                    "sfpg proxy: {}.{} is not a mirrored object",
                    change.schema, change.table
                ),
            )
            .table(&change.schema, &change.table));
        };
        let row_id = change.row_id.unwrap_or_default();
        let planned = |operation, sfid, record, previous| Planned {
            operation,
            object: Arc::clone(object),
            table_oid: change.table_oid,
            row_id,
            sfid,
            record,
            previous,
        };
        let created_here = change.operation == Captured::Insert;
        if net.deleted {
            if created_here {
                // Created and deleted in the same transaction: Salesforce never sees it.
                continue;
            }
            if let Some(sfid) = text(net.old, SFID) {
                deletes.push(planned(
                    Operation::Delete,
                    Some(sfid),
                    Record::new(),
                    Record::new(),
                ));
            }
            continue;
        }
        if created_here {
            let record = create_record(object, net.new)?;
            creates.push(planned(Operation::Create, None, record, Record::new()));
            continue;
        }
        let Some(sfid) = text(net.old, SFID) else {
            return Err(Refusal::new(
                "55000",
                format!(
                    "cannot update row {row_id} of {}.{}: it has no sfid, so Salesforce has no record for it",
                    object.schema, object.table
                ),
            )
            .table(&object.schema, &object.table));
        };
        if let Some((record, previous)) =
            update_record(object, &sfid, net.old, net.new, &net.changed)?
        {
            updates.push(planned(Operation::Update, Some(sfid), record, previous));
        }
    }
    let mut records = creates;
    records.extend(updates);
    records.extend(deletes);
    if records.is_empty() {
        return Ok(None);
    }
    if records.len() > MAX_ATOMIC {
        return Err(Refusal::new(
            "54000",
            format!(
                "this transaction changes {} Salesforce records; one atomic push takes at most {MAX_ATOMIC}",
                records.len()
            ),
        )
        .hint(format!(
            "Split the change into transactions of at most {MAX_ATOMIC} rows each."
        )));
    }
    Ok(Some(Plan {
        org: Arc::clone(org),
        records,
    }))
}

fn collapse(changes: &[PendingChange]) -> Vec<Net<'_>> {
    let mut nets: Vec<Net<'_>> = Vec::new();
    // The net change a live row is at, by table and local id; a DELETE closes it.
    let mut live: HashMap<(u32, i64), usize> = HashMap::new();
    for change in changes {
        let key = (change.table_oid, change.row_id.unwrap_or_default());
        match live.get(&key).copied() {
            Some(index) => {
                let net = &mut nets[index];
                match change.operation {
                    Captured::Delete => {
                        net.deleted = true;
                        live.remove(&key);
                    }
                    _ => {
                        net.new = change.new.as_ref();
                        for column in change.changed.iter().flatten() {
                            if !net.changed.contains(column) {
                                net.changed.push(column.clone());
                            }
                        }
                    }
                }
            }
            None => {
                let deleted = change.operation == Captured::Delete;
                nets.push(Net {
                    first: change,
                    old: change.old.as_ref(),
                    new: change.new.as_ref(),
                    changed: change.changed.clone().unwrap_or_default(),
                    deleted,
                });
                if !deleted {
                    live.insert(key, nets.len() - 1);
                }
            }
        }
    }
    nets
}

fn text(image: Option<&Map<String, Value>>, column: &str) -> Option<String> {
    image?.get(column)?.as_str().map(str::to_owned)
}

fn typed(object: &ObjectHandle) -> Record {
    let mut record = Record::new();
    record.insert("attributes".into(), json!({ "type": object.object }));
    record
}

fn read_only(object: &ObjectHandle, column: &str, why: &str) -> Refusal {
    Refusal::new(
        "428C9",
        format!(
            "cannot write column \"{column}\" of {}.{}: {why}",
            object.schema, object.table
        ),
    )
    .table(&object.schema, &object.table)
    .column(column)
}

fn create_record(
    object: &ObjectHandle,
    new: Option<&Map<String, Value>>,
) -> Result<Record, Refusal> {
    let mut record = typed(object);
    for (column, value) in new.into_iter().flatten() {
        match column.as_str() {
            LOCAL_ID => continue,
            SFID if !value.is_null() => {
                return Err(read_only(
                    object,
                    column,
                    "Salesforce assigns the Id of a new record",
                ));
            }
            SYSTEM_MODSTAMP if !value.is_null() => {
                return Err(read_only(object, column, "Salesforce sets SystemModstamp"));
            }
            // The table's default (false) is what every new record has.
            IS_DELETED if value.as_bool() == Some(true) => {
                return Err(read_only(object, column, "a new record cannot be deleted"));
            }
            SFID | SYSTEM_MODSTAMP | IS_DELETED => continue,
            _ => {}
        }
        if value.is_null() {
            continue;
        }
        // Columns that mirror no field are the application's own.
        let Some(mirrored) = object.column(column) else {
            continue;
        };
        if !mirrored.createable {
            return Err(read_only(
                object,
                column,
                &format!(
                    "Salesforce does not let a new record set {}",
                    mirrored.field
                ),
            ));
        }
        record.insert(mirrored.field.clone(), value.clone());
    }
    Ok(record)
}

fn update_record(
    object: &ObjectHandle,
    sfid: &str,
    old: Option<&Map<String, Value>>,
    new: Option<&Map<String, Value>>,
    changed: &[String],
) -> Result<Option<(Record, Record)>, Refusal> {
    let mut record = typed(object);
    record.insert("Id".into(), Value::String(sfid.to_owned()));
    let mut previous = typed(object);
    previous.insert("Id".into(), Value::String(sfid.to_owned()));
    let mut fields = 0;
    for column in changed {
        match column.as_str() {
            LOCAL_ID => continue,
            SFID => {
                return Err(read_only(
                    object,
                    column,
                    "it holds the record's Salesforce Id",
                ));
            }
            SYSTEM_MODSTAMP => {
                return Err(read_only(object, column, "Salesforce sets SystemModstamp"));
            }
            IS_DELETED => {
                return Err(read_only(object, column, "delete the row instead"));
            }
            _ => {}
        }
        let Some(mirrored) = object.column(column) else {
            continue;
        };
        if !mirrored.updateable {
            return Err(read_only(
                object,
                column,
                &format!("Salesforce field {} is read-only", mirrored.field),
            ));
        }
        let value = |image: Option<&Map<String, Value>>| {
            image
                .and_then(|i| i.get(column))
                .cloned()
                .unwrap_or(Value::Null)
        };
        record.insert(mirrored.field.clone(), value(new));
        previous.insert(mirrored.field.clone(), value(old));
        fields += 1;
    }
    Ok((fields > 0).then_some((record, previous)))
}

#[cfg(test)]
mod tests;
