//! Change Data Capture inside the org: every record write passes [`Org::put`], which
//! notes what the record was before its first change in the current transaction; when
//! the transaction ends ([`Org::commit_changes`]) each touched record's state before is
//! compared with its state now, and the differences are published to the event bus
//! under the org's lock, so replay order is commit order.
//!
//! Comparing states, not replaying calls, is what Salesforce documents: "If multiple DML
//! operations are performed on a record within the same transaction boundary, only one
//! change event is generated for the initial change type … [with] the data that is
//! committed … at the end of the transaction". A change rolled back under `allOrNone`
//! restores the record as it was, so it publishes nothing.

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::{Map, Value as Json};

use super::Org;
use crate::events::{ChangeEvent, ChangeEventHeader, ChangeType, EventBus};
use crate::ids::Id;
use crate::model::{FieldDef, ObjectDef, Record, Value, value_to_json};

/// The records touched by the transaction in progress, and what each was before.
#[derive(Debug)]
pub(crate) struct Capture {
    bus: Arc<EventBus>,
    touched: Vec<(usize, Id)>,
    before: HashMap<Id, Option<Arc<Record>>>,
}

/// One record's change, before events are merged.
#[derive(Debug)]
struct RecordChange {
    store: usize,
    id: Id,
    /// Other records with the very same change in this transaction.
    more_ids: Vec<Id>,
    change_type: ChangeType,
    fields: Map<String, Json>,
    changed: Vec<String>,
    nulled: Vec<String>,
    user: String,
    /// How many changes it counts for the overflow threshold.
    weight: usize,
}

impl Org {
    /// Publishes every change from now on to `bus`.
    pub fn attach_bus(&mut self, bus: Arc<EventBus>) {
        self.capture = Some(Capture {
            bus,
            touched: Vec::new(),
            before: HashMap::new(),
        });
    }

    /// The bus the org publishes to, once attached.
    pub fn event_bus(&self) -> Option<&Arc<EventBus>> {
        self.capture.as_ref().map(|c| &c.bus)
    }

    /// Notes that `store`'s record `id` was `previous` before this write (the first
    /// write in a transaction is the one that counts).
    pub(super) fn note_change(&mut self, store: usize, id: Id, previous: &Option<Arc<Record>>) {
        if let Some(capture) = &mut self.capture
            && !capture.before.contains_key(&id)
        {
            capture.before.insert(id, previous.clone());
            capture.touched.push((store, id));
        }
    }

    /// Ends the transaction: publishes its changes, as one `transactionKey`, with
    /// `changeOrigin` = `origin`. Returns how many events were published.
    pub fn commit_changes(&mut self, origin: &str) -> usize {
        // Platform events of the transaction go out with it ("Publish After Commit").
        self.publish_prepared_events();
        let Some(capture) = &mut self.capture else {
            return 0;
        };
        if capture.touched.is_empty() {
            return 0;
        }
        let touched = std::mem::take(&mut capture.touched);
        let mut before = std::mem::take(&mut capture.before);
        let bus = capture.bus.clone();
        let selection = bus.selection();
        let changes: Vec<RecordChange> = touched
            .into_iter()
            .filter(|(store, _)| selection.includes(&self.stores[*store].def.name))
            .filter_map(|(store, id)| {
                let previous = before.remove(&id).flatten();
                self.record_change(store, id, previous)
            })
            .collect();
        let events = self.events_of(changes, &bus, origin);
        let count = events.len();
        bus.publish(events);
        count
    }

    /// Publishes a gap event (the admin API's injection): header only, for `ids` of
    /// `entity` (none for `GAP_OVERFLOW`).
    pub fn publish_gap(
        &mut self,
        entity: &str,
        change_type: ChangeType,
        ids: Vec<String>,
        user: &Id,
    ) -> Option<i64> {
        let bus = self.capture.as_ref()?.bus.clone();
        let name = self.store(entity)?.def.name.clone();
        let (key, number) = bus.next_transaction();
        let event = ChangeEvent {
            replay_id: 0,
            header: ChangeEventHeader {
                entity_name: name,
                record_ids: ids,
                change_type,
                changed_fields: Vec::new(),
                nulled_fields: Vec::new(),
                diff_fields: Vec::new(),
                change_origin: String::new(),
                transaction_key: key,
                sequence_number: 1,
                commit_timestamp: self.now().timestamp_millis(),
                commit_number: number,
                commit_user: user.to_string(),
            },
            fields: Map::new(),
        };
        bus.publish(vec![event]).first().copied()
    }

    /// What happened to one record, or `None` when nothing did (rolled back, or created
    /// and deleted within the transaction).
    fn record_change(
        &self,
        store: usize,
        id: Id,
        before: Option<Arc<Record>>,
    ) -> Option<RecordChange> {
        let s = &self.stores[store];
        let after = s.shared(&id);
        if let (Some(b), Some(a)) = (&before, &after)
            && (Arc::ptr_eq(b, a) || b == a)
        {
            return None;
        }
        let live = |r: &Option<Arc<Record>>| r.as_ref().is_some_and(|r| !s.is_deleted(r));
        let binned = |r: &Option<Arc<Record>>| r.as_ref().is_some_and(|r| s.is_deleted(r));
        let change_type = match (&before, live(&before), live(&after)) {
            (None, _, true) => ChangeType::Create,
            (Some(_), true, true) => ChangeType::Update,
            (Some(_), true, false) => ChangeType::Delete,
            (Some(_), false, true) if binned(&before) => ChangeType::Undelete,
            _ => return None,
        };
        let def = &s.def;
        let user_field = def.system.last_modified_by_id;
        let user = after
            .as_deref()
            .or(before.as_deref())
            .and_then(|r| r.get(user_field).as_str())
            .unwrap_or_default()
            .to_owned();
        let mut change = RecordChange {
            store,
            id,
            more_ids: Vec::new(),
            change_type,
            fields: Map::new(),
            changed: Vec::new(),
            nulled: Vec::new(),
            user,
            weight: 1,
        };
        match (change_type, before.as_deref(), after.as_deref()) {
            (ChangeType::Create | ChangeType::Undelete, _, Some(a)) => {
                change.fields = full_body(def, a);
                change.weight = change.fields.len().max(1);
            }
            (ChangeType::Update, Some(b), Some(a)) => {
                update_body(def, b, a, &mut change);
                change.weight = change.changed.len().max(1);
            }
            _ => {}
        }
        Some(change)
    }

    /// Shapes a transaction's changes into events: the first changes up to the overflow
    /// threshold as they are (records with the same change merged into one event), the
    /// rest as one `GAP_OVERFLOW` per entity.
    fn events_of(
        &self,
        changes: Vec<RecordChange>,
        bus: &EventBus,
        origin: &str,
    ) -> Vec<ChangeEvent> {
        let threshold = bus.overflow_threshold();
        let (key, number) = bus.next_transaction();
        let timestamp = self.now().timestamp_millis();
        let mut spent = 0usize;
        let mut merged: Vec<RecordChange> = Vec::new();
        // Each merged change's place by what it changed: a bulk job's thousands of records
        // are merged in one pass, not each compared with every earlier one.
        let mut places: HashMap<MergeKey, usize> = HashMap::new();
        let mut overflowed: Vec<(usize, String)> = Vec::new();
        for change in changes {
            if spent + change.weight > threshold || !overflowed.is_empty() {
                if !overflowed.iter().any(|(s, _)| *s == change.store) {
                    overflowed.push((change.store, change.user.clone()));
                }
                continue;
            }
            spent += change.weight;
            match places.entry(change.merge_key()) {
                std::collections::hash_map::Entry::Occupied(at) => {
                    merged[*at.get()].more_ids.push(change.id);
                }
                std::collections::hash_map::Entry::Vacant(at) => {
                    at.insert(merged.len());
                    merged.push(change);
                }
            }
        }
        let header =
            |entity: &str, ids: Vec<String>, change_type, user: String| ChangeEventHeader {
                entity_name: entity.to_owned(),
                record_ids: ids,
                change_type,
                changed_fields: Vec::new(),
                nulled_fields: Vec::new(),
                diff_fields: Vec::new(),
                change_origin: origin.to_owned(),
                transaction_key: key.clone(),
                sequence_number: 0,
                commit_timestamp: timestamp,
                commit_number: number,
                commit_user: user,
            };
        let mut events: Vec<ChangeEvent> = merged
            .into_iter()
            .map(|m| {
                let entity = &self.stores[m.store].def.name;
                let mut h = header(entity, m.ids(), m.change_type, m.user);
                h.changed_fields = m.changed;
                h.nulled_fields = m.nulled;
                ChangeEvent {
                    replay_id: 0,
                    header: h,
                    fields: m.fields,
                }
            })
            .collect();
        for (store, user) in overflowed {
            let entity = &self.stores[store].def.name;
            events.push(ChangeEvent {
                replay_id: 0,
                header: header(entity, Vec::new(), ChangeType::GapOverflow, user),
                fields: Map::new(),
            });
        }
        for (i, event) in events.iter_mut().enumerate() {
            event.header.sequence_number = i as i64 + 1;
        }
        events
    }
}

/// What makes two records' changes one event: the object, the change's type, its fields
/// and values (keys in order, so that equal maps give equal keys), and its changed fields.
#[derive(Debug, PartialEq, Eq, Hash)]
struct MergeKey {
    store: usize,
    change_type: ChangeType,
    fields: String,
    changed: Vec<String>,
}

/// `value` written with every object's keys sorted: equal JSON values, equal texts.
fn canonical(value: &Json, out: &mut String) {
    match value {
        Json::Object(map) => canonical_map(map, out),
        Json::Array(items) => {
            out.push('[');
            for item in items {
                canonical(item, out);
                out.push(',');
            }
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}

fn canonical_map(map: &Map<String, Json>, out: &mut String) {
    let mut entries: Vec<(&String, &Json)> = map.iter().collect();
    entries.sort_by(|a, b| a.0.cmp(b.0));
    out.push('{');
    for (key, value) in entries {
        out.push_str(&Json::String(key.clone()).to_string());
        out.push(':');
        canonical(value, out);
        out.push(',');
    }
    out.push('}');
}

impl RecordChange {
    fn merge_key(&self) -> MergeKey {
        let mut fields = String::new();
        canonical_map(&self.fields, &mut fields);
        MergeKey {
            store: self.store,
            change_type: self.change_type,
            fields,
            changed: self.changed.clone(),
        }
    }

    /// Every record id of a (possibly merged) change.
    fn ids(&self) -> Vec<String> {
        std::iter::once(&self.id)
            .chain(&self.more_ids)
            .map(Id::to_string)
            .collect()
    }
}

/// Whether a field appears in change events: stored fields only (no formulas, no
/// compound views), and never `Id`, `IsDeleted` or `SystemModstamp`.
pub(crate) fn published(def: &ObjectDef, index: usize) -> bool {
    let f = &def.fields[index];
    let system = def.system;
    !f.is_computed()
        && index != system.id
        && Some(index) != system.is_deleted
        && index != system.system_modstamp
}

/// A value as change events carry it; date-times in UTC with milliseconds.
fn event_value(value: &Value, field: &FieldDef) -> Json {
    match value {
        Value::DateTime(t) => Json::String(t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()),
        other => value_to_json(other, field),
    }
}

/// `BillingCity` of `BillingAddress` → `City`; `FirstName` of `Name` → `FirstName`.
pub(crate) fn component_key(component: &str, compound: &str) -> String {
    let prefix = compound
        .strip_suffix("Address")
        .or_else(|| compound.strip_suffix("__c"))
        .unwrap_or(compound);
    component
        .strip_prefix(prefix)
        .unwrap_or(component)
        .trim_start_matches("__")
        .trim_end_matches("__s")
        .to_owned()
}

/// Puts `value` at `field`'s place in `body`: nested under its compound field when it is
/// a component. Returns the name `changedFields` uses (`BillingAddress.City`).
fn place(body: &mut Map<String, Json>, field: &FieldDef, value: Json) -> String {
    match &field.compound_field_name {
        Some(compound) => {
            let key = component_key(&field.name, compound);
            let entry = body
                .entry(compound.clone())
                .or_insert_with(|| Json::Object(Map::new()));
            if let Json::Object(nested) = entry {
                nested.insert(key.clone(), value);
            }
            format!("{compound}.{key}")
        }
        None => {
            body.insert(field.name.clone(), value);
            field.name.clone()
        }
    }
}

/// CREATE and UNDELETE: every non-null field; a compound field with all its components
/// once any of them is set.
fn full_body(def: &ObjectDef, record: &Record) -> Map<String, Json> {
    let mut body = Map::new();
    let mut compounds_set: Vec<&str> = Vec::new();
    for (i, f) in def.fields.iter().enumerate() {
        if published(def, i)
            && !record.get(i).is_null()
            && let Some(c) = &f.compound_field_name
        {
            compounds_set.push(c);
        }
    }
    for (i, f) in def.fields.iter().enumerate() {
        if !published(def, i) {
            continue;
        }
        let value = record.get(i);
        let in_set_compound = f
            .compound_field_name
            .as_deref()
            .is_some_and(|c| compounds_set.contains(&c));
        if !value.is_null() || in_set_compound {
            place(&mut body, f, event_value(value, f));
        }
    }
    body
}

/// UPDATE: only the fields whose values changed (a field set to null present as null),
/// plus `LastModifiedDate`.
fn update_body(def: &ObjectDef, before: &Record, after: &Record, change: &mut RecordChange) {
    let last_modified = def.system.last_modified_date;
    for (i, f) in def.fields.iter().enumerate() {
        if !published(def, i) || (i != last_modified && before.get(i) == after.get(i)) {
            continue;
        }
        let value = after.get(i);
        let name = place(&mut change.fields, f, event_value(value, f));
        if value.is_null() {
            change.nulled.push(name.clone());
        }
        change.changed.push(name);
    }
}
