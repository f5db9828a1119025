//! A bound query, ready to run over the store's records, and the facts the store needs
//! to run it cheaply: the `Id` range and Id set the filter confines results to, and
//! whether results come out in `Id` order (so a scan may stop at `LIMIT`).

use std::cmp::Ordering;
use std::ops::Bound;

use super::access::RecordAccess;
use super::ast::CompareOp;
use super::eval::{FieldRef, Filter, Operand, order_values};
use super::render::Projection;
use crate::model::{ObjectDef, Record, Value};

/// One `ORDER BY` key.
#[derive(Debug, Clone, PartialEq)]
pub struct SortKey {
    pub field: FieldRef,
    pub descending: bool,
    pub nulls_first: bool,
}

impl SortKey {
    /// Orders two values of this key's field: nulls where `NULLS FIRST/LAST` puts them
    /// whatever the direction, the rest by value.
    fn compare(&self, x: &Value, y: &Value) -> Ordering {
        match (x.is_null(), y.is_null()) {
            (true, true) => Ordering::Equal,
            (true, false) if self.nulls_first => Ordering::Less,
            (true, false) => Ordering::Greater,
            (false, true) if self.nulls_first => Ordering::Greater,
            (false, true) => Ordering::Less,
            (false, false) => {
                let o = order_values(x, y, self.field.field_type);
                if self.descending { o.reverse() } else { o }
            }
        }
    }
}

/// The `Id`s a query can return, from the conjuncts of its top-level `WHERE` on the
/// queried object's own `Id` (`Id > 'x'`, `Id <= 'y'`, `Id = 'z'`, `Id IN (...)`).
/// Ids are canonical 18-character Ids; every other record can be skipped unread.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdScan {
    pub lower: Bound<String>,
    pub upper: Bound<String>,
    /// Set by `Id = ...` and `Id IN (...)`: only these Ids (sorted, without repeats) can
    /// match, still subject to the bounds.
    pub only: Option<Vec<String>>,
}

impl Default for IdScan {
    fn default() -> Self {
        IdScan {
            lower: Bound::Unbounded,
            upper: Bound::Unbounded,
            only: None,
        }
    }
}

impl IdScan {
    /// Whether `id` lies within the bounds (the `only` set aside).
    pub fn contains(&self, id: &str) -> bool {
        let above = match &self.lower {
            Bound::Included(l) => id >= l.as_str(),
            Bound::Excluded(l) => id > l.as_str(),
            Bound::Unbounded => true,
        };
        let below = match &self.upper {
            Bound::Included(u) => id <= u.as_str(),
            Bound::Excluded(u) => id < u.as_str(),
            Bound::Unbounded => true,
        };
        above && below
    }

    fn narrow(&mut self, op: CompareOp, id: &str) {
        let id = id.to_string();
        match op {
            CompareOp::Gt => self.raise(Bound::Excluded(id)),
            CompareOp::Ge => self.raise(Bound::Included(id)),
            CompareOp::Lt => self.lower_upper(Bound::Excluded(id)),
            CompareOp::Le => self.lower_upper(Bound::Included(id)),
            CompareOp::Eq => self.keep_only(vec![id]),
            CompareOp::Ne => {}
        }
    }

    fn raise(&mut self, bound: Bound<String>) {
        let tighter = match (&self.lower, &bound) {
            (Bound::Unbounded, _) => true,
            (Bound::Included(a) | Bound::Excluded(a), Bound::Included(b)) => b > a,
            (Bound::Included(a), Bound::Excluded(b)) => b >= a,
            (Bound::Excluded(a), Bound::Excluded(b)) => b > a,
            (_, Bound::Unbounded) => false,
        };
        if tighter {
            self.lower = bound;
        }
    }

    fn lower_upper(&mut self, bound: Bound<String>) {
        let tighter = match (&self.upper, &bound) {
            (Bound::Unbounded, _) => true,
            (Bound::Included(a) | Bound::Excluded(a), Bound::Included(b)) => b < a,
            (Bound::Included(a), Bound::Excluded(b)) => b <= a,
            (Bound::Excluded(a), Bound::Excluded(b)) => b < a,
            (_, Bound::Unbounded) => false,
        };
        if tighter {
            self.upper = bound;
        }
    }

    fn keep_only(&mut self, mut ids: Vec<String>) {
        ids.sort();
        ids.dedup();
        self.only = Some(match self.only.take() {
            Some(previous) => ids.into_iter().filter(|id| previous.contains(id)).collect(),
            None => ids,
        });
    }
}

/// A query bound to the org's definitions. Build one with [`compile`](super::compile).
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    object: String,
    count: bool,
    projection: Projection,
    filter: Option<Filter>,
    order: Vec<SortKey>,
    limit: Option<u64>,
    offset: u64,
    include_deleted: bool,
    is_deleted: Option<usize>,
    id_scan: IdScan,
    id_ordered: bool,
}

impl Plan {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        object: &ObjectDef,
        count: bool,
        projection: Projection,
        filter: Option<Filter>,
        order: Vec<SortKey>,
        limit: Option<u64>,
        offset: u64,
        include_deleted: bool,
    ) -> Plan {
        let id = object.system.id;
        let is_root_id = |f: &FieldRef| f.hops.is_empty() && f.field == id;
        let id_scan = id_scan(filter.as_ref(), &is_root_id);
        let id_ordered = match order.as_slice() {
            [] => true,
            [key] => is_root_id(&key.field) && !key.descending,
            _ => false,
        };
        Plan {
            object: object.name.clone(),
            count,
            projection,
            filter,
            order,
            limit,
            offset,
            include_deleted,
            is_deleted: object.system.is_deleted,
            id_scan,
            id_ordered,
        }
    }

    /// The queried object's canonical API name.
    pub fn object(&self) -> &str {
        &self.object
    }

    /// `SELECT COUNT()`: answer with `totalSize` and no records.
    pub fn is_count(&self) -> bool {
        self.count
    }

    /// Whether the recycle bin is visible (`queryAll`).
    pub fn include_deleted(&self) -> bool {
        self.include_deleted
    }

    /// The Ids results are confined to.
    pub fn id_scan(&self) -> &IdScan {
        &self.id_scan
    }

    /// Results come in ascending `Id` order (the query orders by `Id ASC`, or does not
    /// order at all and the emulator answers in `Id` order), so a scan in `Id` order may
    /// stop once `OFFSET + LIMIT` records matched.
    pub fn id_ordered(&self) -> bool {
        self.id_ordered
    }

    pub fn limit(&self) -> Option<u64> {
        self.limit
    }

    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// The `SELECT` list, to render records with.
    pub fn projection(&self) -> &Projection {
        &self.projection
    }

    /// Whether `record` passes the `WHERE` clause (and, for `query`, is not deleted).
    pub fn matches<A: RecordAccess + ?Sized>(
        &self,
        access: &A,
        object: &ObjectDef,
        record: &Record,
    ) -> bool {
        if !self.include_deleted
            && let Some(is_deleted) = self.is_deleted
            && *record.get(is_deleted) == Value::Bool(true)
        {
            return false;
        }
        self.filter
            .as_ref()
            .is_none_or(|f| f.matches(access, object, record))
    }

    /// Orders two records as `ORDER BY` says; ties keep their incoming order.
    pub fn compare<A: RecordAccess + ?Sized>(
        &self,
        access: &A,
        object: &ObjectDef,
        a: &Record,
        b: &Record,
    ) -> Ordering {
        for key in &self.order {
            let x = key.field.value(access, object, a);
            let y = key.field.value(access, object, b);
            let ordering = key.compare(&x, &y);
            if ordering != Ordering::Equal {
                return ordering;
            }
        }
        Ordering::Equal
    }

    /// Runs the query over `candidates`, which must come in ascending `Id` order and
    /// include every record within [`Plan::id_scan`]: filters, orders, and applies
    /// `OFFSET` and `LIMIT`. An `Id`-ordered query reads candidates only until it has
    /// enough; an ordered one with a `LIMIT` sorts only the records it returns.
    pub fn select<'r, A, I>(
        &self,
        access: &'r A,
        object: &'r ObjectDef,
        candidates: I,
    ) -> Vec<&'r Record>
    where
        A: RecordAccess + ?Sized,
        I: IntoIterator<Item = &'r Record>,
    {
        let (offset, limit) = self.window();
        let matching = candidates
            .into_iter()
            .filter(|r| self.matches(access, object, r));
        if self.id_ordered {
            return matching.skip(offset).take(limit).collect();
        }
        let records: Vec<&Record> = matching.collect();
        // Each sort key is read once per record (formulas are not cheap), into one flat
        // table; ties keep the incoming (Id) order, so the order is total and paging is
        // stable.
        let width = self.order.len();
        let mut keys = Vec::with_capacity(records.len() * width);
        for record in &records {
            for key in &self.order {
                keys.push(key.field.value(access, object, record));
            }
        }
        let order = |a: &usize, b: &usize| {
            let (x, y) = (&keys[a * width..][..width], &keys[b * width..][..width]);
            self.order
                .iter()
                .zip(x.iter().zip(y))
                .map(|(key, (x, y))| key.compare(x, y))
                .find(|o| *o != Ordering::Equal)
                .unwrap_or_else(|| a.cmp(b))
        };
        let mut positions: Vec<usize> = (0..records.len()).collect();
        let wanted = offset.saturating_add(limit);
        if wanted < positions.len() {
            if wanted == 0 {
                return Vec::new();
            }
            positions.select_nth_unstable_by(wanted - 1, order);
            positions.truncate(wanted);
        }
        positions.sort_unstable_by(order);
        positions
            .into_iter()
            .skip(offset)
            .take(limit)
            .map(|i| records[i])
            .collect()
    }

    /// How many records [`Plan::select`] would return, without ordering them: the
    /// `totalSize` of `COUNT()`.
    pub fn count<'r, A, I>(&self, access: &'r A, object: &'r ObjectDef, candidates: I) -> usize
    where
        A: RecordAccess + ?Sized,
        I: IntoIterator<Item = &'r Record>,
    {
        let (offset, limit) = self.window();
        candidates
            .into_iter()
            .filter(|r| self.matches(access, object, r))
            .take(offset.saturating_add(limit))
            .count()
            .saturating_sub(offset)
    }

    /// `OFFSET` and `LIMIT` as counts (no limit is `usize::MAX`).
    fn window(&self) -> (usize, usize) {
        let offset = usize::try_from(self.offset).unwrap_or(usize::MAX);
        let limit = self
            .limit
            .map_or(usize::MAX, |l| usize::try_from(l).unwrap_or(usize::MAX));
        (offset, limit)
    }
}

/// Collects the `Id` conditions every result must satisfy: the filter itself, or the
/// terms of a top-level `AND`.
fn id_scan(filter: Option<&Filter>, is_root_id: &dyn Fn(&FieldRef) -> bool) -> IdScan {
    let mut scan = IdScan::default();
    let terms: &[Filter] = match filter {
        Some(Filter::And(terms)) => terms,
        Some(single) => std::slice::from_ref(single),
        None => &[],
    };
    for term in terms {
        match term {
            Filter::Compare {
                field,
                op,
                operand: Operand::Id(id),
            } if is_root_id(field) => scan.narrow(*op, id),
            Filter::In {
                field,
                negated: false,
                operands,
            } if is_root_id(field) => {
                let ids = operands
                    .iter()
                    .filter_map(|o| match o {
                        Operand::Id(id) => Some(id.to_string()),
                        _ => None,
                    })
                    .collect();
                scan.keep_only(ids);
            }
            _ => {}
        }
    }
    scan
}
