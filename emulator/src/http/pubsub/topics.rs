//! The topics the Pub/Sub API serves, and their schemas. Change events:
//! `/data/ChangeEvents` (every selected entity) and `/data/<Object>ChangeEvent`
//! (`/data/<Name>__ChangeEvent` for custom objects), off the same bus as CometD; names are
//! case-sensitive, as on Salesforce. Schemas are generated from the describe on first use
//! and kept by entity (until its describe changes) and by schema id (for GetSchema).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use chrono::{DateTime, Utc};
use tonic::{Code, Status};

use super::encode::{EncodeError, EventSchema};
use super::schema::Layout;
use super::status::{TOPIC_NOT_FOUND, TOPIC_VALIDATION_EMPTY, error};
use crate::events::{ChangeEvent, all_channel, channel_for, event_name};
use crate::http::state::Shared;

/// A topic a call names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Topic {
    /// `/data/ChangeEvents`.
    AllChanges,
    /// `/data/<Object>ChangeEvent`: the entity's own events.
    Changes { entity: String },
}

impl Topic {
    /// Whether a change event belongs on this topic.
    pub fn carries(&self, event: &ChangeEvent) -> bool {
        match self {
            Topic::AllChanges => true,
            Topic::Changes { entity } => event.header.entity_name == *entity,
        }
    }
}

/// The topic `name` names, or Salesforce's error.
pub fn resolve(state: &Shared, name: &str) -> Result<Topic, Status> {
    if name.trim().is_empty() {
        return Err(error(
            Code::InvalidArgument,
            TOPIC_VALIDATION_EMPTY,
            "The topic name is blank.",
        ));
    }
    if name == all_channel() {
        return Ok(Topic::AllChanges);
    }
    let entity = state
        .org()
        .objects()
        .find(|def| channel_for(&def.name) == name)
        .map(|def| def.name.clone());
    match entity {
        Some(entity) => Ok(Topic::Changes { entity }),
        None => Err(error(
            Code::NotFound,
            TOPIC_NOT_FOUND,
            &format!("The topic {name} does not exist."),
        )),
    }
}

/// What a cached schema was generated from: the describe's timestamp and field count.
type Stamp = (DateTime<Utc>, usize);

#[derive(Debug, Default)]
struct Cache {
    by_entity: HashMap<String, (Stamp, Arc<EventSchema>)>,
    by_id: HashMap<String, Arc<EventSchema>>,
}

/// The schemas generated so far.
#[derive(Debug, Default)]
pub struct Schemas {
    cache: Mutex<Cache>,
}

impl Schemas {
    fn cache(&self) -> MutexGuard<'_, Cache> {
        self.cache.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The `<Object>ChangeEvent` schema of `entity` as its describe is now; `None` when
    /// the org has no such object.
    pub fn change_event(
        &self,
        state: &Shared,
        entity: &str,
    ) -> Option<Result<Arc<EventSchema>, EncodeError>> {
        let def = {
            let org = state.org();
            let def = org.objects().find(|d| d.name == entity)?;
            let stamp = (def.last_modified, def.fields.len());
            if let Some((cached, schema)) = self.cache().by_entity.get(entity)
                && *cached == stamp
            {
                return Some(Ok(schema.clone()));
            }
            def.clone()
        };
        let stamp = (def.last_modified, def.fields.len());
        let generated =
            EventSchema::generate(&event_name(entity), Layout::change_event(&def), &def);
        if let Ok(schema) = &generated {
            let mut cache = self.cache();
            cache.by_id.insert(schema.id.clone(), schema.clone());
            cache
                .by_entity
                .insert(entity.to_owned(), (stamp, schema.clone()));
        }
        Some(generated)
    }

    /// The schema with id `schema_id`, generating every object's when it is not known yet
    /// (a client may hold an id from an earlier run: ids are fingerprints).
    pub fn by_id(&self, state: &Shared, schema_id: &str) -> Option<Arc<EventSchema>> {
        if let Some(schema) = self.cache().by_id.get(schema_id) {
            return Some(schema.clone());
        }
        let entities: Vec<String> = state.org().objects().map(|d| d.name.clone()).collect();
        for entity in entities {
            if let Some(Ok(schema)) = self.change_event(state, &entity)
                && schema.id == schema_id
            {
                return Some(schema);
            }
        }
        None
    }
}
