//! After a push: what Salesforce set (the Id of a new record, SystemModstamp, formulas,
//! defaults) is read back and written into the mirror rows the transaction changed, so the
//! client's transaction commits the record as Salesforce holds it. That replaces every
//! provisional sfid the push resolved: the new rows' own, and those held in the lookups of
//! rows that refer to them.
//!
//! The rows are written by `sfpg.write_back` (migrations V8, V11), a function of the
//! control schema's owner, on the client's connection: no statement here names anything a
//! client could stand in for, and the client's column grants do not matter. They are made
//! by the mirror writer's pure half ([`WriteBackRow`]): values converted as the sync's are,
//! and the writer's version guard applied by the function.

use std::collections::{BTreeMap, HashSet};

use chrono::{DateTime, Utc};
use serde_json::json;
use sfpg_control::events::is_platform_event;
use sfpg_control::writer::{WriteBackRow, write_back_rows};
use sfpg_salesforce::{Record, SalesforceId};

use super::bulk::read_back;
use super::catalog::ObjectHandle;
use super::plan::{Operation, Plan};

/// What to write into one mirrored table in the client's transaction
/// ([`sfpg_control::capture::WRITE_BACK_SQL`]): `rows`, a JSON array of objects with each
/// row's local `id` and the columns to set.
#[derive(Debug, Clone, PartialEq)]
pub struct WriteBack {
    pub schema: String,
    pub table: String,
    pub rows: String,
    /// A platform event table: `rows` are `{"id", "sfid", "eventuuid"}`, written by
    /// [`sfpg_control::events::EVENT_WRITE_BACK_SQL`].
    pub events: bool,
}

/// A record created by the push, for patching `RETURNING sfid`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Created {
    pub table_oid: u32,
    pub row_id: i64,
    pub sfid: String,
    /// The provisional sfid the row had until the push.
    pub provisional: Option<String>,
}

/// A table's records to read back: where one of them is in the plan, and each one's index
/// in the plan, local id and Salesforce Id.
type TableRows = (usize, Vec<(usize, i64, String)>);

/// Rows of one write-back statement: a bulk push's 100,000 rows go in several, so that no
/// one JSON text (and the server's `jsonb` of it) holds them all.
const WRITE_BACK_ROWS: usize = 5_000;

/// Reads back every created and updated record (`created`: the Id of each create, in plan
/// order) and builds the write-backs of each table. If the read fails, new records still
/// get their Id (the sync fills in the rest). `bulk_since`: the push went through ingest
/// jobs, the first created then; a table with many records is read back by one Bulk query
/// job ([`read_back`]) rather than by Collections retrieves of 200.
pub async fn write_backs(
    plan: &Plan,
    created_ids: &[String],
    event_uuids: &[Option<String>],
    bulk_since: Option<DateTime<Utc>>,
) -> (Vec<WriteBack>, Vec<Created>) {
    let (by_table, created) = by_table(plan, created_ids);
    // The Id of each create, by its index in the plan.
    let ids: Vec<Option<&String>> = {
        let mut creates = created_ids.iter();
        plan.records
            .iter()
            .map(|p| match p.operation {
                Operation::Create => creates.next(),
                _ => None,
            })
            .collect()
    };
    // The EventUuid of each create, by its index in the plan.
    let uuids: Vec<Option<&String>> = {
        let mut creates = event_uuids.iter();
        plan.records
            .iter()
            .map(|p| match p.operation {
                Operation::Create => creates.next().and_then(Option::as_ref),
                _ => None,
            })
            .collect()
    };
    let mut statements = Vec::new();
    for (_, (index, rows)) in by_table {
        let object = &plan.records[index].object;
        if is_platform_event(&object.object) {
            // An event cannot be read back (it is not retrievable): its row gets the Id
            // and EventUuid of the publish; the bus delivers the rest.
            statements.push(event_write_back(object, &rows, &uuids));
            continue;
        }
        let records = match bulk_since {
            Some(since) if rows.len() >= read_back::BULK_READ_BACK_FROM => {
                read_by_query(plan, object, &rows, since).await
            }
            _ => read_by_id(plan, object, &rows).await,
        };
        let plan_of_object = object.plan();
        // The Id is the push's own (a create's from its answer); the read gives the rest.
        let copied: Vec<_> = plan_of_object
            .fields
            .into_iter()
            .filter(|f| f.column != "sfid")
            .collect();
        let back_rows = rows
            .iter()
            .zip(records)
            .map(|((index, row_id, sfid), record)| {
                let mut row = WriteBackRow::new(*row_id);
                row.set("sfid", sfid);
                resolve_references(&mut row, plan, *index, &ids);
                if let Some(record) = record
                    && let Err(error) = row.copy(&object.object, &copied, &record)
                {
                    tracing::warn!(%error, object = %object.object, "cannot write back a record as read; writing its Ids only");
                }
                row
            })
            .collect::<Vec<_>>();
        statements.extend(back_rows.chunks(WRITE_BACK_ROWS).map(|chunk| WriteBack {
            schema: object.schema.clone(),
            table: object.table.clone(),
            rows: write_back_rows(chunk),
            events: false,
        }));
    }
    (statements, created)
}

/// The records of `rows` as Salesforce holds them, by Collections retrieves of 200; each
/// `None` that could not be read.
async fn read_by_id(
    plan: &Plan,
    object: &ObjectHandle,
    rows: &[(usize, i64, String)],
) -> Vec<Option<Record>> {
    let sfids: Vec<SalesforceId> = rows
        .iter()
        .filter_map(|(_, _, id)| SalesforceId::parse(id).ok())
        .collect();
    match plan
        .org
        .client
        .collections()
        .retrieve(&object.object, &sfids, &object.fields())
        .await
    {
        Ok(records) => records,
        Err(error) => {
            tracing::warn!(%error, object = %object.object, "cannot read back pushed records; writing their Ids only");
            vec![None; rows.len()]
        }
    }
}

/// The records of `rows` as Salesforce holds them, by one Bulk query job of the object's
/// records changed since `since`; each `None` that could not be read.
async fn read_by_query(
    plan: &Plan,
    object: &ObjectHandle,
    rows: &[(usize, i64, String)],
    since: DateTime<Utc>,
) -> Vec<Option<Record>> {
    let wanted: HashSet<&str> = rows.iter().map(|(_, _, id)| id.as_str()).collect();
    match read_back::records_since(&plan.org, object, since, &wanted).await {
        Ok(mut found) => rows.iter().map(|(_, _, id)| found.remove(id)).collect(),
        Err(error) => {
            tracing::warn!(%error, object = %object.object, "cannot read back pushed records by a Bulk query; writing their Ids only");
            vec![None; rows.len()]
        }
    }
}

/// The write-back of published platform events: each row's Id and EventUuid.
fn event_write_back(
    object: &ObjectHandle,
    rows: &[(usize, i64, String)],
    uuids: &[Option<&String>],
) -> WriteBack {
    let rows: Vec<serde_json::Value> = rows
        .iter()
        .map(|(index, row_id, sfid)| {
            json!({"id": row_id, "sfid": sfid, "eventuuid": uuids.get(*index).copied().flatten()})
        })
        .collect();
    WriteBack {
        schema: object.schema.clone(),
        table: object.table.clone(),
        rows: serde_json::Value::Array(rows).to_string(),
        events: true,
    }
}

/// The created and updated records of `plan` by table (`created_ids`: the Id of each
/// create, in plan order), and the creates, for patching `RETURNING sfid`.
fn by_table(
    plan: &Plan,
    created_ids: &[String],
) -> (BTreeMap<(String, String), TableRows>, Vec<Created>) {
    // (schema, table) -> (index of a record of it in the plan, [(row_id, sfid)]).
    let mut by_table: BTreeMap<(String, String), TableRows> = BTreeMap::new();
    let mut created = Vec::new();
    let mut creates = created_ids.iter();
    for (index, planned) in plan.records.iter().enumerate() {
        let sfid = match planned.operation {
            Operation::Create => {
                let Some(id) = creates.next() else { continue };
                created.push(Created {
                    table_oid: planned.table_oid,
                    row_id: planned.row_id,
                    sfid: id.clone(),
                    provisional: planned.provisional.clone(),
                });
                id.clone()
            }
            Operation::Update => match &planned.sfid {
                Some(id) => id.clone(),
                None => continue,
            },
            Operation::Delete => continue,
        };
        let key = (planned.object.schema.clone(), planned.object.table.clone());
        by_table
            .entry(key)
            .or_insert_with(|| (index, Vec::new()))
            .1
            .push((index, planned.row_id, sfid));
    }
    (by_table, created)
}

/// Gives the lookups of record `index` that held a provisional sfid the real Id of the
/// create they refer to (`ids`: the Id of each create, by its index in the plan), even if
/// the read-back fails; when it succeeds, the record's copy sets the same values.
fn resolve_references(row: &mut WriteBackRow, plan: &Plan, index: usize, ids: &[Option<&String>]) {
    let object = &plan.records[index].object;
    for reference in &plan.records[index].references {
        let column = object.columns.iter().find(|c| c.field == reference.field);
        let id = ids.get(reference.create).copied().flatten();
        if let (Some(column), Some(id)) = (column, id) {
            row.set(&column.column, id);
        }
    }
}
