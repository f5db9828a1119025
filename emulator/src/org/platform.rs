//! Publishing platform events from the org's write paths: a create of a platform event
//! object (`POST /sobjects/Order_Event__e`, sObject Collections, Composite) checks the
//! values like any create, then *prepares* the event (its Id and `EventUuid`, which the
//! save result returns at once) and holds it until the transaction ends.
//!
//! Events follow their transaction, as Salesforce's "Publish After Commit" behaviour
//! documents: "the event message is published only after a transaction commits
//! successfully and isn't published if the transaction fails". A batch rolled back under
//! `allOrNone` drops its prepared events through its [`Journal`]; the others are
//! published in order when the transaction commits ([`Org::commit_changes`]), under the
//! org's lock, so they come after every change event of the same transaction.

use std::sync::Arc;

use serde_json::Map;

use super::input::Input;
use super::save::Journal;
use super::{Org, SaveError, SaveResult};
use crate::events::{PlatformEvent, PlatformEventStore};
use crate::ids::Id;
use crate::model::value_to_json;

/// The standard fields of an event object; the rest are the event's own.
const STANDARD_FIELDS: [&str; 5] = ["Id", "ReplayId", "CreatedDate", "CreatedById", "EventUuid"];

impl Org {
    /// The org's platform event topics (one per `…__e` object).
    pub fn platform_events(&self) -> &Arc<PlatformEventStore> {
        &self.platform
    }

    /// The `EventUuid` of an event this transaction has prepared, by the Id its publish
    /// returned: what the save result's `OPERATION_ENQUEUED` message carries.
    pub fn pending_event_uuid(&self, id: &Id) -> Option<&str> {
        self.pending_events
            .iter()
            .find(|event| &event.id == id)
            .map(|event| event.event_uuid.as_str())
    }

    /// The save result of a create that returned `id`: for a platform event, Salesforce's
    /// `{"id", "success": true, "errors": [{"statusCode": "OPERATION_ENQUEUED", "message":
    /// <EventUuid>, "fields": []}]}` (Platform Events Developer Guide, "Match a Publish
    /// Result with the Event Published"); for a record, the plain success.
    pub fn created_result(&self, id: Id, created: Option<bool>) -> SaveResult {
        let mut result = SaveResult {
            created,
            ..SaveResult::ok(id.to_string())
        };
        if let Some(uuid) = self.pending_event_uuid(&id) {
            result
                .errors
                .push(SaveError::new("OPERATION_ENQUEUED", uuid, Vec::new()));
        }
        result
    }

    /// Checks `input` as a create of the event object at `store`, and prepares the event
    /// for publishing when the transaction commits. Returns its Id.
    pub(super) fn prepare_event(
        &mut self,
        store: usize,
        input: &Input,
        user: Id,
        journal: &mut Journal,
    ) -> Result<Id, SaveError> {
        let record = self.new_record(store, input, user)?;
        let def = &self.stores[store].def;
        let mut fields = Map::new();
        for (i, field) in def.fields.iter().enumerate() {
            if !STANDARD_FIELDS.contains(&field.name.as_str()) {
                fields.insert(field.name.clone(), value_to_json(record.get(i), field));
            }
        }
        let topic = def.name.clone();
        let event = self
            .platform
            .prepare(&topic, fields, user)
            .map_err(|e| SaveError::new("UNKNOWN_EXCEPTION", e.to_string(), Vec::new()))?;
        let id = event.id;
        self.pending_events.push(event);
        journal.event_prepared();
        Ok(id)
    }

    /// Forgets the newest prepared event (its batch rolled back).
    pub(super) fn drop_prepared_event(&mut self) {
        self.pending_events.pop();
    }

    /// Publishes the transaction's prepared events, in order. Returns how many.
    pub(super) fn publish_prepared_events(&mut self) -> usize {
        let events: Vec<PlatformEvent> = std::mem::take(&mut self.pending_events);
        let count = events.len();
        if count > 0
            && let Err(error) = self.platform.publish_prepared(events)
        {
            // Topics are defined with their objects and never removed: unreachable in
            // practice, and a publish failure after commit is what Salesforce reports
            // only asynchronously too.
            tracing::error!(%error, "platform events could not be published");
            return 0;
        }
        count
    }
}
