//! SOQL over the store. The engine ([`crate::soql`]) binds and evaluates; the store feeds
//! it candidates from a range scan over the Id order, narrowed by the query's own `Id`
//! conditions, so `WHERE Id > x ORDER BY Id LIMIT n` reads about `n` records whatever the
//! table's size.

use std::ops::Bound;

use serde::{Serialize, Serializer};
use serde_json::Value as Json;

use super::{ApiError, Org};
use crate::ids::Id;
use crate::model::Record;
use crate::soql::{self, IdScan, Plan, QueryOptions};

/// A query's results: the matching records' Ids in result order, and the compiled
/// projection to render them with. The HTTP layer keeps cursors behind query locators
/// and renders one page at a time.
#[derive(Debug, Clone)]
pub struct QueryCursor {
    plan: Plan,
    ids: Vec<Id>,
    total_size: usize,
}

impl QueryCursor {
    /// `totalSize`: the number of matching records (the count, for `SELECT COUNT()`).
    pub fn total_size(&self) -> usize {
        self.total_size
    }

    /// How many records the cursor can render (0 for `SELECT COUNT()`).
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// Whether this is a `SELECT COUNT()` query (no records, only `totalSize`).
    pub fn is_count(&self) -> bool {
        self.plan.is_count()
    }

    /// The queried object's API name.
    pub fn object(&self) -> &str {
        self.plan.object()
    }
}

impl Org {
    /// Runs a query (`include_deleted` for `queryAll`) and returns its cursor. Malformed
    /// SOQL, unknown objects and fields fail with the engine's `MALFORMED_QUERY`,
    /// `INVALID_TYPE` or `INVALID_FIELD` (HTTP 400).
    pub fn query(&self, text: &str, include_deleted: bool) -> Result<QueryCursor, ApiError> {
        let options = QueryOptions {
            now: self.now(),
            include_deleted,
        };
        let plan = soql::compile(text, self, &options)?;
        let store = self
            .store(plan.object())
            .ok_or_else(|| ApiError::new(400, "INVALID_TYPE", "sObject type is not supported."))?;
        let selected = plan.select(self, &store.def, candidates(&store.records, plan.id_scan()));
        let ids: Vec<Id> = selected
            .iter()
            .filter_map(|r| record_id(&store.def, r))
            .collect();
        let total_size = ids.len();
        let ids = if plan.is_count() { Vec::new() } else { ids };
        Ok(QueryCursor {
            plan,
            ids,
            total_size,
        })
    }

    /// Renders `len` records of `cursor` from `offset`, as the query resource returns
    /// them. Records purged since the query ran are skipped.
    pub fn page(
        &self,
        cursor: &QueryCursor,
        offset: usize,
        len: usize,
        api_version: &str,
    ) -> Vec<Json> {
        let Some(store) = self.store(cursor.plan.object()) else {
            return Vec::new();
        };
        page_ids(cursor, offset, len)
            .iter()
            .filter_map(|id| store.get(id))
            .map(|r| {
                cursor
                    .plan
                    .projection()
                    .render(self, &store.def, r, api_version)
            })
            .collect()
    }

    /// The records [`Org::page`] renders, as a JSON array serialized in place (the
    /// query resource writes it straight into the response body).
    pub fn page_records<'a>(
        &'a self,
        cursor: &'a QueryCursor,
        offset: usize,
        len: usize,
        api_version: &'a str,
    ) -> PageRecords<'a> {
        PageRecords {
            org: self,
            cursor,
            ids: page_ids(cursor, offset, len),
            api_version,
        }
    }
}

fn page_ids(cursor: &QueryCursor, offset: usize, len: usize) -> &[Id] {
    let end = offset.saturating_add(len).min(cursor.ids.len());
    cursor.ids.get(offset..end).unwrap_or_default()
}

/// One page of a query's records; see [`Org::page_records`].
pub struct PageRecords<'a> {
    org: &'a Org,
    cursor: &'a QueryCursor,
    ids: &'a [Id],
    api_version: &'a str,
}

impl PageRecords<'_> {
    /// How many records the page holds at most (purged ones are skipped when written).
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }
}

impl Serialize for PageRecords<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let Some(store) = self.org.store(self.cursor.plan.object()) else {
            return serializer.collect_seq(std::iter::empty::<()>());
        };
        let projection = self.cursor.plan.projection();
        serializer.collect_seq(
            self.ids
                .iter()
                .filter_map(|id| store.get(id))
                .map(|r| projection.rendered(self.org, &store.def, r, self.api_version)),
        )
    }
}

pub(super) fn record_id(def: &crate::model::ObjectDef, record: &Record) -> Option<Id> {
    Id::from_canonical(record.get(def.system.id).as_str()?)
}

/// The records within `scan`, in ascending Id order, read lazily so that an Id-ordered
/// query with a `LIMIT` stops early.
pub(super) fn candidates<'r>(
    records: &'r std::collections::BTreeMap<Id, std::sync::Arc<Record>>,
    scan: &'r IdScan,
) -> Box<dyn Iterator<Item = &'r Record> + 'r> {
    if let Some(only) = &scan.only {
        let mut ids: Vec<Id> = only
            .iter()
            .filter(|id| scan.contains(id))
            .filter_map(|id| Id::parse(id).ok())
            .collect();
        ids.sort();
        ids.dedup();
        return Box::new(
            ids.into_iter()
                .filter_map(move |id| records.get(&id).map(|r| &**r)),
        );
    }
    match (to_id_bound(&scan.lower), to_id_bound(&scan.upper)) {
        (Some(lower), Some(upper)) if bounds_ordered(&lower, &upper) => {
            Box::new(records.range((lower, upper)).map(|(_, r)| &**r))
        }
        (Some(_), Some(_)) => Box::new(std::iter::empty()),
        // A bound that is not an Id (the engine only passes Ids): scan and test each.
        _ => Box::new(
            records
                .iter()
                .filter(move |(id, _)| scan.contains(id.as_str()))
                .map(|(_, r)| &**r),
        ),
    }
}

fn to_id_bound(bound: &Bound<String>) -> Option<Bound<Id>> {
    Some(match bound {
        Bound::Included(s) => Bound::Included(Id::parse(s).ok()?),
        Bound::Excluded(s) => Bound::Excluded(Id::parse(s).ok()?),
        Bound::Unbounded => Bound::Unbounded,
    })
}

/// `BTreeMap::range` panics on inverted or empty-excluded bounds; such a scan is empty.
fn bounds_ordered(lower: &Bound<Id>, upper: &Bound<Id>) -> bool {
    match (lower, upper) {
        (Bound::Included(l), Bound::Included(u)) => l <= u,
        (Bound::Included(l) | Bound::Excluded(l), Bound::Excluded(u))
        | (Bound::Excluded(l), Bound::Included(u)) => l < u,
        _ => true,
    }
}
