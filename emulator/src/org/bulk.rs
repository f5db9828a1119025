//! Bulk API 2.0 query jobs, org side: checking a query as job creation does, the
//! snapshot a job takes when it runs, and its results written as CSV one page at a time.
//!
//! A snapshot holds the matching records themselves (shared, see [`ObjectStore`]), in
//! result order, and the parent records its relationship columns reach, as they were
//! when the job ran: changes made afterwards are not in its results, as Salesforce's
//! results are a file written by the job. A page is rendered from the snapshot when it is
//! asked for, so a result is never held as one string. Formula fields are computed
//! when a page is rendered, from the snapshot's record (a cross-object formula reads the
//! parent as it is then).
//!
//! [`ObjectStore`]: super::store::ObjectStore

use std::collections::HashMap;
use std::ops::Range;
use std::sync::Arc;

use super::query::{candidates, record_id};
use super::{ApiError, Org};
use crate::ids::Id;
use crate::model::{FieldType, ObjectDef, Record, Value, write_csv_text};
use crate::soql::{self, BulkRefusal, FlatColumn, Plan, QueryOptions, RecordAccess};

/// The records a query job read, as they were when it ran.
#[derive(Debug, Clone)]
pub struct QuerySnapshot {
    object: String,
    columns: Vec<FlatColumn>,
    records: Vec<Arc<Record>>,
    parents: HashMap<Id, Arc<Record>>,
}

impl QuerySnapshot {
    /// How many records the job's result holds.
    pub fn len(&self) -> usize {
        self.records.len()
    }

    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// The queried object's API name.
    pub fn object(&self) -> &str {
        &self.object
    }
}

/// How a job's CSV is written: its `columnDelimiter` and `lineEnding`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CsvFormat {
    pub delimiter: u8,
    pub line_ending: &'static [u8],
}

impl Default for CsvFormat {
    fn default() -> CsvFormat {
        CsvFormat {
            delimiter: b',',
            line_ending: b"\n",
        }
    }
}

impl Org {
    /// Checks a Bulk query as job creation does: Bulk's own refusals, then the query as
    /// the REST resource would compile it (`MALFORMED_QUERY`, `INVALID_FIELD`, ...), then
    /// the compound and blob fields Bulk cannot write into CSV. Returns the bound plan.
    pub fn bulk_query_plan(&self, text: &str, include_deleted: bool) -> Result<Plan, ApiError> {
        if let Some(refusal) = soql::bulk_refusal(text) {
            return Err(refused(refusal));
        }
        let options = QueryOptions {
            now: self.now(),
            include_deleted,
        };
        let plan = soql::compile(text, self, &options)?;
        if plan.is_count() {
            return Err(refused(BulkRefusal::Aggregate));
        }
        for column in plan.projection().flat() {
            let field_type = self.column_def(plan.object(), column).map(|f| f.field_type);
            match field_type {
                Some(t) if t.is_compound() => return Err(refused(BulkRefusal::CompoundField)),
                Some(FieldType::Base64) => return Err(refused(BulkRefusal::Blob)),
                _ => {}
            }
        }
        Ok(plan)
    }

    /// Runs a Bulk query and keeps its records (in Id order unless it has an `ORDER BY`)
    /// and the parents its relationship columns reach.
    pub fn bulk_snapshot(
        &self,
        text: &str,
        include_deleted: bool,
    ) -> Result<QuerySnapshot, ApiError> {
        let plan = self.bulk_query_plan(text, include_deleted)?;
        let store = self
            .store(plan.object())
            .ok_or_else(|| ApiError::new(400, "INVALID_TYPE", "sObject type is not supported."))?;
        let selected = plan.select(self, &store.def, candidates(&store.records, plan.id_scan()));
        let records: Vec<Arc<Record>> = selected
            .iter()
            .filter_map(|r| record_id(&store.def, r))
            .filter_map(|id| store.shared(&id))
            .collect();
        let columns = plan.projection().flat().to_vec();
        let mut parents = HashMap::new();
        for record in &records {
            for column in columns.iter().filter(|c| !c.hops.is_empty()) {
                self.keep_parents(record, &column.hops, &mut parents);
            }
        }
        Ok(QuerySnapshot {
            object: store.def.name.clone(),
            columns,
            records,
            parents,
        })
    }

    /// Follows `hops` from `record`, keeping each live parent reached.
    fn keep_parents(
        &self,
        record: &Record,
        hops: &[usize],
        parents: &mut HashMap<Id, Arc<Record>>,
    ) {
        let mut record = record;
        for &hop in hops {
            let Some(id) = reference(record, hop) else {
                return;
            };
            let Some(store) = self.store_for_id(&id) else {
                return;
            };
            let Some(parent) = store.shared(&id).filter(|p| !store.is_deleted(p)) else {
                return;
            };
            record = parents.entry(id).or_insert(parent);
        }
    }

    /// The header row: every column name quoted.
    pub fn write_csv_header(&self, snapshot: &QuerySnapshot, format: CsvFormat, out: &mut Vec<u8>) {
        for (i, column) in snapshot.columns.iter().enumerate() {
            if i > 0 {
                out.push(format.delimiter);
            }
            quoted(column.header.as_bytes(), out);
        }
        out.extend_from_slice(format.line_ending);
    }

    /// Rows `range` of the snapshot (clamped to its length), each value quoted, null and
    /// empty alike written `""`.
    pub fn write_csv_rows(
        &self,
        snapshot: &QuerySnapshot,
        range: Range<usize>,
        format: CsvFormat,
        out: &mut Vec<u8>,
    ) {
        let Some(store) = self.store(&snapshot.object) else {
            return;
        };
        let view = Frozen {
            org: self,
            parents: &snapshot.parents,
        };
        let end = range.end.min(snapshot.records.len());
        let start = range.start.min(end);
        let mut text = Vec::with_capacity(64);
        for record in &snapshot.records[start..end] {
            for (i, column) in snapshot.columns.iter().enumerate() {
                if i > 0 {
                    out.push(format.delimiter);
                }
                text.clear();
                view.write_column(&store.def, record, column, &mut text);
                quoted(&text, out);
            }
            out.extend_from_slice(format.line_ending);
        }
    }

    /// The definition of the field a flat column reads.
    fn column_def(&self, object: &str, column: &FlatColumn) -> Option<&crate::model::FieldDef> {
        let mut def = &self.store(object)?.def;
        for &hop in &column.hops {
            let field = def.fields.get(hop)?;
            let target = field.reference_to.first()?;
            def = &self.store(target)?.def;
        }
        def.fields.get(column.field)
    }
}

fn refused(refusal: BulkRefusal) -> ApiError {
    ApiError::new(400, refusal.error_code(), refusal.message())
}

/// The Id a reference field holds.
fn reference(record: &Record, field: usize) -> Option<Id> {
    let text = record.get(field).as_str()?;
    Id::from_canonical(text).or_else(|| Id::parse(text).ok())
}

/// `"text"`, with `"` doubled inside.
fn quoted(text: &[u8], out: &mut Vec<u8>) {
    out.push(b'"');
    if text.contains(&b'"') {
        for &b in text {
            if b == b'"' {
                out.push(b'"');
            }
            out.push(b);
        }
    } else {
        out.extend_from_slice(text);
    }
    out.push(b'"');
}

/// The org as a snapshot's pages see it: parents as the job found them.
struct Frozen<'a> {
    org: &'a Org,
    parents: &'a HashMap<Id, Arc<Record>>,
}

impl Frozen<'_> {
    fn write_column(
        &self,
        object: &ObjectDef,
        record: &Record,
        column: &FlatColumn,
        out: &mut Vec<u8>,
    ) {
        let (mut object, mut record) = (object, record);
        for &hop in &column.hops {
            match self.parent(object, record, hop) {
                Some(parent) => (object, record) = parent,
                None => return,
            }
        }
        let Some(field) = object.fields.get(column.field) else {
            return;
        };
        let value = self.value(object, record, column.field);
        write_csv_text(&value, field, out);
    }
}

impl RecordAccess for Frozen<'_> {
    fn value<'a>(
        &'a self,
        object: &'a ObjectDef,
        record: &'a Record,
        field: usize,
    ) -> std::borrow::Cow<'a, Value> {
        self.org.value(object, record, field)
    }

    fn parent<'a>(
        &'a self,
        _object: &'a ObjectDef,
        record: &'a Record,
        reference_field: usize,
    ) -> Option<(&'a ObjectDef, &'a Record)> {
        let id = reference(record, reference_field)?;
        let parent = self.parents.get(&id)?;
        let store = self.org.store_for_id(&id)?;
        Some((&store.def, parent))
    }
}
