//! The topics the Pub/Sub API serves, and their schemas. Change events:
//! `/data/ChangeEvents` (every selected entity) and `/data/<Object>ChangeEvent`
//! (`/data/<Name>__ChangeEvent` for custom objects), off the same bus as CometD; names are
//! case-sensitive, as on Salesforce. Platform events: `/event/<Name>__e`, off the org's
//! platform event store (the topics CometD serves too). Schemas are generated from the describe on first use
//! and kept by entity (until its describe changes) and by schema id (for GetSchema).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use chrono::{DateTime, Utc};
use tonic::{Code, Status};

use super::encode::{EncodeError, EventSchema};
use super::schema::Layout;
use super::status::{TOPIC_NOT_FOUND, TOPIC_VALIDATION_EMPTY, error};
use crate::events::{ChangeEvent, all_channel, channel_for, event_name, platform_topic};
use crate::http::state::Shared;

/// A topic a call names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Topic {
    /// `/data/ChangeEvents`.
    AllChanges,
    /// `/data/<Object>ChangeEvent`: the entity's own events.
    Changes { entity: String },
    /// `/event/<Name>__e`: a platform event's topic.
    Platform { name: String },
}

impl Topic {
    /// Whether a change event belongs on this topic.
    pub fn carries(&self, event: &ChangeEvent) -> bool {
        match self {
            Topic::AllChanges => true,
            Topic::Changes { entity } => event.header.entity_name == *entity,
            Topic::Platform { .. } => false,
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
    if let Some(topic) = platform_topic(name)
        && state.platform_events().has_topic(topic)
    {
        return Ok(Topic::Platform {
            name: topic.to_owned(),
        });
    }
    let entity = state
        .org()
        .objects()
        .find(|def| !def.is_platform_event() && channel_for(&def.name) == name)
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
    by_event: HashMap<String, (Stamp, Arc<EventSchema>)>,
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
        self.of_object(state, entity, false)
    }

    /// The schema of the platform event `name` (`Order_Event__e`) as its describe is now.
    pub fn platform_event(
        &self,
        state: &Shared,
        name: &str,
    ) -> Option<Result<Arc<EventSchema>, EncodeError>> {
        self.of_object(state, name, true)
    }

    /// The event schema of the object `name`: its platform event's, or its change
    /// events'. Kept by event name until the describe changes.
    fn of_object(
        &self,
        state: &Shared,
        name: &str,
        platform: bool,
    ) -> Option<Result<Arc<EventSchema>, EncodeError>> {
        let event = if platform {
            name.to_owned()
        } else {
            event_name(name)
        };
        let def = {
            let org = state.org();
            let def = org
                .objects()
                .find(|d| d.name == name && d.is_platform_event() == platform)?;
            let stamp = (def.last_modified, def.fields.len());
            if let Some((cached, schema)) = self.cache().by_event.get(&event)
                && *cached == stamp
            {
                return Some(Ok(schema.clone()));
            }
            def.clone()
        };
        let stamp = (def.last_modified, def.fields.len());
        let layout = if platform {
            Layout::platform_event(&def)
        } else {
            Layout::change_event(&def)
        };
        let generated = EventSchema::generate(&event, layout, &def);
        if let Ok(schema) = &generated {
            let mut cache = self.cache();
            cache.by_id.insert(schema.id.clone(), schema.clone());
            cache.by_event.insert(event, (stamp, schema.clone()));
        }
        Some(generated)
    }

    /// The schema with id `schema_id`, generating every object's when it is not known yet
    /// (a client may hold an id from an earlier run: ids are fingerprints).
    pub fn by_id(&self, state: &Shared, schema_id: &str) -> Option<Arc<EventSchema>> {
        if let Some(schema) = self.cache().by_id.get(schema_id) {
            return Some(schema.clone());
        }
        let objects: Vec<(String, bool)> = state
            .org()
            .objects()
            .map(|d| (d.name.clone(), d.is_platform_event()))
            .collect();
        objects.into_iter().find_map(|(name, platform)| {
            match self.of_object(state, &name, platform) {
                Some(Ok(schema)) if schema.id == schema_id => Some(schema),
                _ => None,
            }
        })
    }
}
