//! From a transaction's captured row changes to the records Salesforce is sent.
//!
//! Changes to the same row collapse into one (an INSERT then an UPDATE is one create with
//! the final values; an INSERT then a DELETE is nothing). A create sends the createable
//! mirrored fields that have a value; an update sends only the mirrored fields that
//! changed; columns that are not mirrored fields are local and never sent. Writing `sfid`,
//! `systemmodstamp`, or a field Salesforce does not let this operation write is refused
//! with 428C9 naming the column.
//!
//! A row created in the transaction has a provisional sfid (`~` and 17 digits, the column's
//! default) until the push: another row may hold it in a lookup. Such a create or update
//! depends on the create of that row, and creates are ordered by dependency, parents
//! first, in levels that [`super::send`] sends one sObject Collections call each. A
//! provisional sfid no create of the push produces, or a cycle of creates, is refused.

use std::borrow::Cow;
use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::Arc;

use serde_json::{Map, Value, json};
use sfpg_control::capture::{Operation as Captured, PendingChange};
use sfpg_control::mirror::is_provisional_sfid;
use sfpg_salesforce::Record;
use sfpg_salesforce::composite::MAX_COLLECTIONS;
use tokio_postgres::error::SqlState;

use super::Refusal;
use super::catalog::{ObjectHandle, OrgHandle};
use super::refusal::unspooled;

mod compact;
mod spool;
pub use compact::compact;
pub use spool::{Slot, Spool, SpoolError, SpoolWriter};

/// The most records one sObject Collections call takes; a push sends at most
/// [`MAX_COLLECTIONS`] of them, in one Composite request.
pub const MAX_RECORDS: usize = sfpg_salesforce::collections::MAX_RECORDS;

/// The most records a plan holds with their values in memory; a larger one keeps them in
/// a spool file ([`spool`]). One atomic push carries at most this many records, so only
/// bulk pushes are spooled.
pub const SPOOL_AFTER: usize = MAX_COLLECTIONS * MAX_RECORDS;

/// The columns every mirrored table has that Salesforce sets.
const SFID: &str = "sfid";
const SYSTEM_MODSTAMP: &str = "systemmodstamp";
const IS_DELETED: &str = "isdeleted";
/// The local primary key.
const LOCAL_ID: &str = "id";

/// What a push does to a record; the journal keeps it with the record.
pub use sfpg_control::journal::Operation;

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
    /// Create and update: the API names of the fields sent (without `attributes` and
    /// `Id`, which [`Plan::record`] adds), shared by every record of the plan that sends
    /// the same ones: a bulk push holds 100,000 records.
    pub names: Arc<[String]>,
    /// Their values, in the same order, in memory or in the plan's spool; read them with
    /// [`Plan::values`]. A field that refers to a row created in the push still holds that
    /// row's provisional sfid (see `references`).
    pub values: Values,
    /// Whether every value is a string, number, boolean or null: the CSV column of each
    /// field is then its name, known without reading the values back.
    pub scalar: bool,
    /// Create: the row's provisional sfid, which other rows may refer to.
    pub provisional: Option<String>,
    /// Create and update: the fields (by their place in `names`) that hold a provisional
    /// sfid, with it; [`Planner::finish`] resolves them into `references`.
    refers_to: Vec<(usize, String)>,
    /// Create and update: fields that hold the provisional sfid of a row created in the
    /// same push, with that create's index in [`Plan::records`].
    pub references: Vec<Reference>,
    /// Create: its dependency level, 0 for a create that refers to no other.
    pub level: usize,
    /// The capture sequence of its row's first change: the plan keeps capture order.
    seq: i64,
}

/// Where a planned record's values are.
#[derive(Debug, Clone, PartialEq)]
pub enum Values {
    Held(Vec<Value>),
    Spooled(Slot),
}

impl Planned {
    /// Whether the record sends field `name`.
    pub fn sends(&self, name: &str) -> bool {
        self.names.iter().any(|field| field == name)
    }

    /// Moves the record's values to `spool`.
    fn spool(&mut self, spool: &mut SpoolWriter) -> Result<(), SpoolError> {
        if let Values::Held(values) = &self.values {
            self.values = Values::Spooled(spool.write(values)?);
        }
        Ok(())
    }
}

/// A field that refers to a record created in the same push.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    /// The field's API name.
    pub field: String,
    /// The create's index in [`Plan::records`].
    pub create: usize,
}

/// What a transaction sends to its org: creates by level (parents first), then updates,
/// then deletes.
#[derive(Debug, Clone)]
pub struct Plan {
    pub org: Arc<OrgHandle>,
    pub records: Vec<Planned>,
    /// Where the values of a plan beyond [`SPOOL_AFTER`] records are.
    pub(crate) spool: Option<Arc<Spool>>,
}

impl Plan {
    /// The values of `planned`, one of this plan's records, in the order of its names.
    pub fn values<'p>(&'p self, planned: &'p Planned) -> Result<Cow<'p, [Value]>, SpoolError> {
        match (&planned.values, &self.spool) {
            (Values::Held(values), _) => Ok(Cow::Borrowed(values)),
            (Values::Spooled(slot), Some(spool)) => spool.read(*slot).map(Cow::Owned),
            (Values::Spooled(_), None) => Err(SpoolError::Read(std::io::Error::other(
                "the record's values were spooled, and the plan has no spool",
            ))),
        }
    }

    /// The record as sObject Collections takes it: `attributes.type`, an update's `Id`,
    /// then the fields.
    pub fn record(&self, planned: &Planned) -> Result<Record, SpoolError> {
        let mut record = Record::new();
        record.insert(
            "attributes".into(),
            json!({ "type": planned.object.object }),
        );
        if planned.operation == Operation::Update
            && let Some(sfid) = &planned.sfid
        {
            record.insert("Id".into(), Value::String(sfid.clone()));
        }
        let values = self.values(planned)?;
        for (field, value) in planned.names.iter().zip(values.iter()) {
            record.insert(field.clone(), value.clone());
        }
        Ok(record)
    }

    pub fn of(&self, operation: Operation) -> impl Iterator<Item = &Planned> {
        self.records
            .iter()
            .filter(move |r| r.operation == operation)
    }

    /// The plan's sObject Collections calls, in order: each level of creates, then the
    /// updates, then the deletes, cut into calls of at most [`MAX_RECORDS`]; each call as
    /// the indexes of its records in [`Plan::records`].
    pub fn calls(&self) -> Vec<(Operation, Vec<usize>)> {
        let mut calls: Vec<(Operation, Vec<usize>)> = Vec::new();
        let mut key = None;
        for (index, planned) in self.records.iter().enumerate() {
            let this = (planned.operation, planned.level);
            match calls.last_mut() {
                Some((_, call)) if key == Some(this) && call.len() < MAX_RECORDS => {
                    call.push(index);
                }
                _ => calls.push((planned.operation, vec![index])),
            }
            key = Some(this);
        }
        calls
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
    let mut planner = Planner::default();
    planner.add(changes, org, objects)?;
    planner.finish()
}

/// A plan built a page of changes at a time, so that a large transaction's changes are
/// never all held beside its plan: each page's rows are planned as the page comes (a
/// row's changes are all in one page, see [`super::taken`]), and once every page is in,
/// the records are put in capture order, the creates ordered by dependency and the
/// references between them resolved.
#[derive(Debug)]
pub struct Planner {
    org: Option<Arc<OrgHandle>>,
    /// The records as planned, page after page; put in order by [`Planner::finish`], in
    /// place (a bulk push holds 100,000).
    records: Vec<Planned>,
    names: Names,
    /// Beyond this many records, values go to `spool`.
    spool_after: usize,
    spool: Option<SpoolWriter>,
}

impl Default for Planner {
    fn default() -> Self {
        Planner::spooling_after(SPOOL_AFTER)
    }
}

impl Planner {
    /// A planner that keeps the values of its records in memory up to `records` of them,
    /// and all of them in a spool file beyond.
    pub fn spooling_after(records: usize) -> Planner {
        Planner {
            org: None,
            records: Vec::new(),
            names: Names::default(),
            spool_after: records,
            spool: None,
        }
    }

    /// Plans the rows of `page` (every change of each, in capture order), whose tables
    /// resolve to `objects` in `org`.
    pub fn add(
        &mut self,
        page: &[PendingChange],
        org: &Arc<OrgHandle>,
        objects: &HashMap<(String, String), Arc<ObjectHandle>>,
    ) -> Result<(), Refusal> {
        for net in collapse(page) {
            let Some(mut planned) = plan_row(&net, objects, &mut self.names)? else {
                continue;
            };
            if let Some(spool) = &mut self.spool {
                planned.spool(spool).map_err(unspooled)?;
            }
            self.records.push(planned);
        }
        self.org.get_or_insert_with(|| Arc::clone(org));
        if self.spool.is_none() && self.records.len() > self.spool_after {
            self.start_spool().map_err(unspooled)?;
        }
        Ok(())
    }

    /// Moves the values of every record planned so far to a new spool, where the later
    /// ones will go too.
    fn start_spool(&mut self) -> Result<(), SpoolError> {
        let mut spool = SpoolWriter::new()?;
        for planned in &mut self.records {
            planned.spool(&mut spool)?;
        }
        self.spool = Some(spool);
        Ok(())
    }

    /// The plan of every page added; `None` when nothing needs sending.
    pub fn finish(self) -> Result<Option<Plan>, Refusal> {
        let mut records = self.records;
        // Creates, then updates, then deletes, each in capture order (each row's first
        // change decides; no two records share it).
        let rank = |operation| match operation {
            Operation::Create => 0,
            Operation::Update => 1,
            Operation::Delete => 2,
        };
        records.sort_unstable_by_key(|p| (rank(p.operation), p.seq));
        let creates = records
            .iter()
            .take_while(|p| p.operation == Operation::Create)
            .count();
        order_creates(&mut records[..creates])?;
        // Pushed one at a time, the vector has room for up to twice its records; the plan
        // is held until the push ends.
        records.shrink_to_fit();
        let Some(org) = self.org.filter(|_| !records.is_empty()) else {
            return Ok(None);
        };
        resolve_references(&mut records)?;
        let spool = match self.spool {
            Some(spool) => Some(Arc::new(spool.finish().map_err(unspooled)?)),
            None => None,
        };
        Ok(Some(Plan {
            org,
            records,
            spool,
        }))
    }

    /// The org of the pages planned so far.
    pub fn org(&self) -> Option<&Arc<OrgHandle>> {
        self.org.as_ref()
    }
}

impl Plan {
    /// Whether one atomic Composite request carries the plan: at most [`MAX_COLLECTIONS`]
    /// sObject Collections calls.
    pub fn fits_one_request(&self) -> bool {
        self.calls().len() <= MAX_COLLECTIONS
    }

    /// The refusal of a plan beyond one atomic request, under `sfpg.bulk_writes = off`, or
    /// (`with_events`) because it publishes platform events, which only an atomic request
    /// publishes.
    pub fn too_large(&self, with_events: bool) -> Refusal {
        too_many_calls(self, self.calls().len(), with_events)
    }
}

/// The field-name lists of a planner's records, each held once however many records send
/// exactly those fields.
#[derive(Debug, Default)]
struct Names {
    /// By the hash of the names; a bucket holds every list of that hash.
    lists: HashMap<u64, Vec<Arc<[String]>>>,
    state: RandomState,
}

impl Names {
    fn intern(&mut self, names: &[&str]) -> Arc<[String]> {
        let bucket = self.lists.entry(self.state.hash_one(names)).or_default();
        let same =
            |list: &&Arc<[String]>| list.iter().map(String::as_str).eq(names.iter().copied());
        if let Some(list) = bucket.iter().find(same) {
            return Arc::clone(list);
        }
        let list: Arc<[String]> = names.iter().map(|name| (*name).to_owned()).collect();
        bucket.push(Arc::clone(&list));
        list
    }
}

/// What one row's net change sends: a create, an update, a delete, or nothing.
fn plan_row(
    net: &Net<'_>,
    objects: &HashMap<(String, String), Arc<ObjectHandle>>,
    names: &mut Names,
) -> Result<Option<Planned>, Refusal> {
    let change = net.first;
    let key = (change.schema.clone(), change.table.clone());
    let Some(object) = objects.get(&key) else {
        return Err(Refusal::new(
            SqlState::OBJECT_NOT_IN_PREREQUISITE_STATE,
            format!(
                "sfpg proxy: {}.{} is not a mirrored object",
                change.schema, change.table
            ),
        )
        .table(&change.schema, &change.table));
    };
    let row_id = change.row_id.unwrap_or_default();
    let mut planned = |operation, sfid, fields: Vec<(&str, Value)>, provisional| {
        let (field_names, values): (Vec<&str>, Vec<Value>) = fields.into_iter().unzip();
        let refers_to = values
            .iter()
            .enumerate()
            .filter_map(|(at, value)| {
                let value = value.as_str()?;
                is_provisional_sfid(value).then(|| (at, value.to_owned()))
            })
            .collect();
        Planned {
            operation,
            object: Arc::clone(object),
            table_oid: change.table_oid,
            row_id,
            sfid,
            names: names.intern(&field_names),
            scalar: !values.iter().any(|v| v.is_array() || v.is_object()),
            values: Values::Held(values),
            provisional,
            refers_to,
            references: Vec::new(),
            level: 0,
            seq: change.seq,
        }
    };
    let created_here = change.operation == Captured::Insert;
    if net.deleted {
        // Created and deleted in the same transaction: Salesforce never sees it.
        if created_here {
            return Ok(None);
        }
        return Ok(text(net.old, SFID)
            .map(|sfid| planned(Operation::Delete, Some(sfid), Vec::new(), None)));
    }
    if created_here {
        let fields = create_fields(object, net.new)?;
        let provisional = text(net.new, SFID);
        return Ok(Some(planned(Operation::Create, None, fields, provisional)));
    }
    let Some(sfid) = text(net.old, SFID) else {
        return Err(Refusal::new(
            SqlState::OBJECT_NOT_IN_PREREQUISITE_STATE,
            format!(
                "cannot update row {row_id} of {}.{}: it has no sfid, so Salesforce has no record for it",
                object.schema, object.table
            ),
        )
        .table(&object.schema, &object.table));
    };
    Ok(update_fields(object, net.new, &net.changed)?
        .map(|fields| planned(Operation::Update, Some(sfid), fields, None)))
}

/// The refusal of a plan that needs more than one Composite request's `calls`.
fn too_many_calls(plan: &Plan, calls: usize, with_events: bool) -> Refusal {
    let levels = plan
        .of(Operation::Create)
        .map(|p| p.level + 1)
        .max()
        .unwrap_or(0);
    let refusal = Refusal::new(
        SqlState::PROGRAM_LIMIT_EXCEEDED,
        format!(
            "this transaction changes {} Salesforce records in {calls} sObject Collections calls \
             ({levels} {} of creates, then updates and deletes, at most {MAX_RECORDS} \
             records a call); one atomic push takes at most {MAX_COLLECTIONS} calls",
            plan.records.len(),
            if levels == 1 { "level" } else { "levels" },
        ),
    );
    if with_events {
        return refusal.hint(
            "It publishes platform events, which are published atomically with the records \
             saved beside them, never through Bulk API ingest jobs, whatever sfpg.bulk_writes \
             says. Publish the events in a transaction of their own; the rest then goes \
             through ingest jobs.",
        );
    }
    refusal.hint(format!(
        "Split the change into smaller transactions: at most {MAX_RECORDS} creates, updates \
         or deletes per call, and fewer levels of rows that refer to rows created in the \
         same transaction. Or SET sfpg.bulk_writes = auto to push it through Bulk API 2.0 \
         ingest jobs, without atomicity: the records Salesforce refuses are restored and \
         listed in sfpg.write_failures."
    ))
}

/// The creates (in capture order) ordered by dependency level (parents first, capture
/// order within a level), each with its level. A create depends on the creates whose
/// provisional sfid one of its fields holds; a cycle is refused.
fn order_creates(creates: &mut [Planned]) -> Result<(), Refusal> {
    // Most pushes create rows that refer to none of each other: all of level 0.
    if creates.iter().all(|p| p.refers_to.is_empty()) {
        return Ok(());
    }
    let levels = {
        let by_provisional: HashMap<&str, usize> = creates
            .iter()
            .enumerate()
            .filter_map(|(i, p)| Some((p.provisional.as_deref()?, i)))
            .collect();
        let depends_on: Vec<Vec<usize>> = creates
            .iter()
            .map(|p| {
                p.refers_to
                    .iter()
                    .filter_map(|(_, value)| by_provisional.get(value.as_str()).copied())
                    .collect()
            })
            .collect();
        // Depth-first, so a cycle shows as a create met again on its own path.
        let mut levels: Vec<Option<usize>> = vec![None; creates.len()];
        for start in 0..creates.len() {
            let mut path: Vec<usize> = Vec::new();
            level_of(start, &depends_on, &mut levels, &mut path, creates)?;
        }
        levels
    };
    for (planned, level) in creates.iter_mut().zip(&levels) {
        planned.level = level.unwrap_or_default();
    }
    creates.sort_unstable_by_key(|p| (p.level, p.seq));
    Ok(())
}

fn level_of(
    create: usize,
    depends_on: &[Vec<usize>],
    levels: &mut [Option<usize>],
    path: &mut Vec<usize>,
    creates: &[Planned],
) -> Result<usize, Refusal> {
    if let Some(level) = levels[create] {
        return Ok(level);
    }
    if let Some(at) = path.iter().position(|&c| c == create) {
        let mut tables: Vec<String> = path[at..]
            .iter()
            .map(|&c| format!("{}.{}", creates[c].object.schema, creates[c].object.table))
            .collect();
        tables.push(tables[0].clone());
        let first = &creates[create].object;
        return Err(Refusal::new(
            SqlState::FOREIGN_KEY_VIOLATION,
            format!(
                "rows created in this transaction refer to each other in a cycle ({}): \
                 Salesforce cannot create any of them first",
                tables.join(" -> ")
            ),
        )
        .table(&first.schema, &first.table)
        .hint("Create one of the rows without the reference, and set it with an UPDATE in a later transaction."));
    }
    path.push(create);
    let mut level = 0;
    for &parent in &depends_on[create] {
        level = level.max(level_of(parent, depends_on, levels, path, creates)? + 1);
    }
    path.pop();
    levels[create] = Some(level);
    Ok(level)
}

/// Notes, for each create and update, the fields that refer to a create of the plan; a
/// provisional sfid that no create produces (rolled back, or from another transaction)
/// is refused with 23503 naming its column.
fn resolve_references(records: &mut [Planned]) -> Result<(), Refusal> {
    if records.iter().all(|p| p.refers_to.is_empty()) {
        return Ok(());
    }
    let by_provisional: HashMap<String, usize> = records
        .iter()
        .enumerate()
        .filter_map(|(i, p)| Some((p.provisional.clone()?, i)))
        .collect();
    for planned in records.iter_mut() {
        let mut references = Vec::new();
        for (at, value) in std::mem::take(&mut planned.refers_to) {
            let field = &planned.names[at];
            let Some(&create) = by_provisional.get(&value) else {
                let object = &planned.object;
                let column = object
                    .columns
                    .iter()
                    .find(|c| c.field == *field)
                    .map_or_else(|| field.to_ascii_lowercase(), |c| c.column.clone());
                return Err(Refusal::new(
                    SqlState::FOREIGN_KEY_VIOLATION,
                    format!(
                        "column \"{column}\" of {}.{} (row {}) holds {value}, the provisional sfid \
                         of a row this transaction does not create",
                        object.schema, object.table, planned.row_id
                    ),
                )
                .detail(format!(
                    "A provisional sfid stands for a row created in the same transaction until it commits; {value} is not one of them."
                ))
                .table(&object.schema, &object.table)
                .column(column));
            };
            references.push(Reference {
                field: field.clone(),
                create,
            });
        }
        planned.references = references;
    }
    Ok(())
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

fn read_only(object: &ObjectHandle, column: &str, why: &str) -> Refusal {
    Refusal::new(
        SqlState::GENERATED_ALWAYS,
        format!(
            "cannot write column \"{column}\" of {}.{}: {why}",
            object.schema, object.table
        ),
    )
    .table(&object.schema, &object.table)
    .column(column)
}

fn create_fields<'o>(
    object: &'o ObjectHandle,
    new: Option<&Map<String, Value>>,
) -> Result<Vec<(&'o str, Value)>, Refusal> {
    let mut fields = Vec::new();
    for (column, value) in new.into_iter().flatten() {
        match column.as_str() {
            LOCAL_ID => continue,
            // The column's default, a provisional sfid, stands for the Id to come.
            SFID if !value.is_null() && !value.as_str().is_some_and(is_provisional_sfid) => {
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
        fields.push((mirrored.field.as_str(), value.clone()));
    }
    Ok(fields)
}

fn update_fields<'o>(
    object: &'o ObjectHandle,
    new: Option<&Map<String, Value>>,
    changed: &[String],
) -> Result<Option<Vec<(&'o str, Value)>>, Refusal> {
    let mut fields = Vec::new();
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
        let value = new
            .and_then(|i| i.get(column))
            .cloned()
            .unwrap_or(Value::Null);
        fields.push((mirrored.field.as_str(), value));
    }
    Ok((!fields.is_empty()).then_some(fields))
}

#[cfg(test)]
mod tests;
