//! The emulated org: object definitions, records and their Salesforce semantics.
//!
//! [`Org`] holds one store per object (records ordered by Id, unique-value indexes, the
//! recycle bin, the delete log) and offers what the REST layer serves: describe,
//! record create / retrieve / update / delete / undelete / upsert, sObject Collections
//! with `allOrNone`, Bulk API 2.0 ingest rows ([`ingest`]), SOQL through [`crate::soql`],
//! the `updated/` and `deleted/` replication windows, users, and platform events
//! published by creates of `…__e` objects ([`platform`]). Every mutating call takes the acting user's Id, and
//! every failure carries Salesforce's own `errorCode`/`statusCode` and message.
//!
//! The org is plain data with no locking of its own: the HTTP layer keeps it behind a
//! lock and never holds that lock across an `.await`.

mod access;
mod bulk;
mod capture;
mod clock;
mod collections;
mod describe;
mod error;
pub mod ingest;
mod input;
mod platform;
mod query;
mod replication;
mod save;
mod store;
mod upsert;
mod users;

use std::sync::Arc;

use chrono::{DateTime, Utc};

pub use bulk::{CsvFormat, QuerySnapshot};
pub(crate) use capture::{component_key, published};
pub use clock::{Clock, ManualClock, SystemClock};
pub use collections::MAX_RECORDS;
pub use error::{ApiError, SaveError, SaveResult};
pub use query::{PageRecords, QueryCursor};
pub use replication::MAX_REPLICATION_IDS;
pub use store::DeletedRecord;
pub use upsert::UpsertOutcome;
pub use users::NewUser;

pub(crate) use save::Journal;

use crate::events::{DEFAULT_PLATFORM_RETENTION, PlatformEvent, PlatformEventStore};
use crate::ids::{DEFAULT_POD, Id, IdGenerator};
use crate::model::{DefinitionError, ObjectDef, bundled_objects};
use store::ObjectStore;

/// An org: its objects, their records, and a clock.
#[derive(Debug)]
pub struct Org {
    stores: Vec<ObjectStore>,
    clock: Arc<dyn Clock>,
    pod: String,
    org_id: Id,
    /// When any object definition last changed (describe global's `If-Modified-Since`).
    global_modified: DateTime<Utc>,
    /// Change Data Capture, once a bus is attached ([`Org::attach_bus`]).
    capture: Option<capture::Capture>,
    /// The platform event topics, one per `…__e` object.
    platform: Arc<PlatformEventStore>,
    /// The platform events this transaction published, until it commits.
    pending_events: Vec<PlatformEvent>,
}

impl Org {
    /// An org with the bundled objects (Account, Contact, Lead, Opportunity, User,
    /// Product2, Invoice__c), no records, on the machine's clock.
    pub fn new() -> Result<Org, DefinitionError> {
        Org::with_clock(Arc::new(SystemClock))
    }

    /// An org with the bundled objects, on `clock`.
    pub fn with_clock(clock: Arc<dyn Clock>) -> Result<Org, DefinitionError> {
        let mut org = Org::empty(clock)?;
        for def in bundled_objects()? {
            org.define_object(def)?;
        }
        Ok(org)
    }

    /// An org with no objects at all.
    pub fn empty(clock: Arc<dyn Clock>) -> Result<Org, DefinitionError> {
        let now = clock::whole_seconds(clock.now());
        let org_id = nth_org_id(1)?;
        Ok(Org {
            stores: Vec::new(),
            clock: clock.clone(),
            pod: DEFAULT_POD.to_owned(),
            org_id,
            global_modified: now,
            capture: None,
            platform: Arc::new(PlatformEventStore::new(
                DEFAULT_PLATFORM_RETENTION,
                clock.clone(),
            )),
            pending_events: Vec::new(),
        })
    }

    /// Adds an object. Its definition is completed (system fields, type rules, formulas);
    /// an object of the same name or key prefix is refused.
    pub fn define_object(&mut self, mut def: ObjectDef) -> Result<(), DefinitionError> {
        def.complete()?;
        let clash = self.stores.iter().find(|s| {
            s.def.name.eq_ignore_ascii_case(&def.name) || s.def.key_prefix == def.key_prefix
        });
        if let Some(existing) = clash {
            return Err(DefinitionError::Invalid {
                object: def.name.clone(),
                message: format!(
                    "clashes with {} (name or key prefix {})",
                    existing.def.name, existing.def.key_prefix
                ),
            });
        }
        let now = clock::whole_seconds(self.now());
        def.last_modified = now;
        self.global_modified = now;
        let name = def.name.clone();
        if def.is_platform_event() {
            self.platform
                .define_topic(&def.name, &def.key_prefix)
                .map_err(|e| DefinitionError::Invalid {
                    object: name.clone(),
                    message: e.to_string(),
                })?;
        }
        let store =
            ObjectStore::new(def, &self.pod, now).map_err(|e| DefinitionError::Invalid {
                object: name,
                message: e.to_string(),
            })?;
        self.stores.push(store);
        Ok(())
    }

    /// Makes this the `number`-th org (1 is the first and the default): its Id becomes the
    /// `number`-th `00D…` Id, so the orgs one emulator serves have distinct Ids (access
    /// tokens start with them, and that is how a request finds its org). Call it before
    /// anything reads the Id.
    pub fn set_number(&mut self, number: u64) -> Result<(), DefinitionError> {
        self.org_id = nth_org_id(number)?;
        Ok(())
    }

    /// The org's Id (`00D…`).
    pub fn org_id(&self) -> Id {
        self.org_id
    }

    /// The org's clock.
    pub fn clock(&self) -> Arc<dyn Clock> {
        self.clock.clone()
    }

    /// The org's current time.
    pub fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    /// Every object definition, in the order they were defined.
    pub fn objects(&self) -> impl Iterator<Item = &ObjectDef> {
        self.stores.iter().map(|s| &s.def)
    }

    /// How many records (the recycle bin included) `object` holds.
    pub fn record_count(&self, object: &str) -> usize {
        self.store(object).map_or(0, |s| s.records.len())
    }

    /// How many records the org holds in all.
    pub fn total_records(&self) -> usize {
        self.stores.iter().map(|s| s.records.len()).sum()
    }

    fn store(&self, name: &str) -> Option<&ObjectStore> {
        self.stores
            .iter()
            .find(|s| s.def.name.eq_ignore_ascii_case(name))
    }

    pub(crate) fn store_index(&self, name: &str) -> Option<usize> {
        self.stores
            .iter()
            .position(|s| s.def.name.eq_ignore_ascii_case(name))
    }

    /// The definition of the object at `store` (see [`Org::store_index`]).
    pub(crate) fn def_at(&self, store: usize) -> &ObjectDef {
        &self.stores[store].def
    }

    /// The store of an object named in a URL, or `404 NOT_FOUND`.
    fn store_index_or_404(&self, name: &str) -> Result<usize, ApiError> {
        self.store_index(name).ok_or_else(ApiError::not_found)
    }

    fn store_for_id(&self, id: &Id) -> Option<&ObjectStore> {
        self.stores
            .iter()
            .find(|s| s.def.key_prefix == id.key_prefix())
    }

    fn store_index_for_id(&self, id: &Id) -> Option<usize> {
        self.stores
            .iter()
            .position(|s| s.def.key_prefix == id.key_prefix())
    }

    /// The current time truncated to whole seconds, as audit fields hold it.
    fn stamp(&self) -> DateTime<Utc> {
        clock::whole_seconds(self.now())
    }
}

/// The `number`-th Organization Id: "00D" is the Organization key prefix, and the first
/// org takes the generator's first Id.
fn nth_org_id(number: u64) -> Result<Id, DefinitionError> {
    Ok(IdGenerator::new("00D", DEFAULT_POD)
        .map_err(|e| DefinitionError::Invalid {
            object: "Organization".to_owned(),
            message: e.to_string(),
        })?
        .starting_at(number)
        .next_id())
}

#[cfg(test)]
mod tests;
