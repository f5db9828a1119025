//! The org's platform event store: one append log per topic (`Order_Event__e`), each with
//! its own increasing, non-contiguous replay ids and its own retention, read by the
//! streaming endpoints (CometD `/event/<Name>__e`, the Pub/Sub API's topic of the same
//! name).
//!
//! Publishing is two steps so that a request's events can follow its transaction
//! ("Publish After Commit", Salesforce's default publish behaviour): [`PlatformEventStore::prepare`]
//! mints the event's id and `EventUuid` when the request handles the event (a REST create
//! returns them at once), and [`PlatformEventStore::publish_prepared`] appends them when
//! the transaction commits. A transaction that rolls back drops its prepared events, and
//! nothing is published. [`PlatformEventStore::publish`] does both for a lone event.
//!
//! The store's lock is never held with the org's the other way round: the org may publish
//! while it holds its own lock; readers take the store's lock alone.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Map, Value, json};
use tokio::sync::watch;

use super::bus::ReplayStart;
use super::change::schema_id;
use crate::ids::{DEFAULT_POD, Id, IdError, IdGenerator};
use crate::org::Clock;

/// Salesforce keeps (high-volume) platform events for three days.
pub const DEFAULT_PLATFORM_RETENTION: Duration = Duration::from_secs(72 * 3600);
/// The emulator keeps at most this many events per topic, whatever their age.
pub const DEFAULT_PLATFORM_MAX_RETAINED: usize = 100_000;

/// The channel of the platform event `topic`: `/event/Order_Event__e`.
pub fn platform_channel(topic: &str) -> String {
    format!("/event/{topic}")
}

/// The topic a platform event channel names (`/event/Order_Event__e` → `Order_Event__e`).
pub fn platform_topic(channel: &str) -> Option<&str> {
    channel.strip_prefix("/event/").filter(|t| !t.is_empty())
}

/// Why the store refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PlatformError {
    /// No platform event of that name is defined.
    #[error("no platform event topic {0}")]
    UnknownTopic(String),
    /// The id was never issued on the topic, or its events have expired.
    #[error("the replay id {0} is not within the retained events")]
    InvalidReplayId(i64),
    /// The topic's key prefix cannot mint Ids.
    #[error("the key prefix of {topic} cannot mint Ids: {source}")]
    KeyPrefix {
        topic: String,
        #[source]
        source: IdError,
    },
}

/// One platform event message.
#[derive(Debug, Clone, PartialEq)]
pub struct PlatformEvent {
    /// The topic: the event object's API name (`Order_Event__e`).
    pub topic: String,
    /// Its position on the topic; 0 until published.
    pub replay_id: i64,
    /// The Id a REST publish returned (`e01…`), minted with the object's key prefix.
    pub id: Id,
    /// The message's UUID: the `OPERATION_ENQUEUED` message of the publish's save result,
    /// `EventUuid` over CometD, the event `id` over the Pub/Sub API.
    pub event_uuid: String,
    /// When it was published.
    pub created_date: DateTime<Utc>,
    /// Who published it (a User Id).
    pub created_by_id: Id,
    /// The event's own fields, typed per the object's describe (as JSON values).
    pub fields: Map<String, Value>,
}

impl PlatformEvent {
    /// Its CometD message, as Salesforce sends it (API 52.0 and later): `{"channel":
    /// "/event/<topic>", "data": {"schema", "payload": {CreatedDate, CreatedById,
    /// <fields>}, "event": {EventUuid, replayId}}}`.
    pub fn cometd_message(&self) -> Value {
        json!({
            "channel": platform_channel(&self.topic),
            "data": self.cometd_data(&schema_id(&self.topic)),
        })
    }

    /// The `data` of its CometD message.
    pub fn cometd_data(&self, schema: &str) -> Value {
        let mut payload = Map::new();
        payload.insert(
            "CreatedDate".to_owned(),
            Value::String(
                self.created_date
                    .to_rfc3339_opts(SecondsFormat::Millis, true),
            ),
        );
        payload.insert(
            "CreatedById".to_owned(),
            Value::String(self.created_by_id.as_str().to_owned()),
        );
        for (name, value) in &self.fields {
            payload.insert(name.clone(), value.clone());
        }
        json!({
            "schema": schema,
            "payload": payload,
            "event": {"EventUuid": self.event_uuid, "replayId": self.replay_id},
        })
    }
}

#[derive(Debug)]
struct Topic {
    events: VecDeque<Arc<PlatformEvent>>,
    /// The newest replay id issued (or the topic's starting point).
    last: i64,
    /// Every replay id at or below this has expired.
    floor: i64,
    ids: IdGenerator,
    published: watch::Sender<i64>,
}

#[derive(Debug)]
struct StoreState {
    topics: HashMap<String, Topic>,
    retention: Duration,
    max_retained: usize,
    rng: StdRng,
}

/// Every platform event topic of the org. Shared (`Arc`) between the org and the
/// streaming APIs.
#[derive(Debug)]
pub struct PlatformEventStore {
    state: Mutex<StoreState>,
    clock: Arc<dyn Clock>,
    /// Counts publishes on any topic: wakes readers of several topics at once.
    published_any: watch::Sender<u64>,
}

impl PlatformEventStore {
    /// A store with no topics, keeping events for `retention`.
    pub fn new(retention: Duration, clock: Arc<dyn Clock>) -> PlatformEventStore {
        PlatformEventStore {
            state: Mutex::new(StoreState {
                topics: HashMap::new(),
                retention,
                max_retained: DEFAULT_PLATFORM_MAX_RETAINED,
                rng: StdRng::from_os_rng(),
            }),
            clock,
            published_any: watch::Sender::new(0),
        }
    }

    fn state(&self) -> MutexGuard<'_, StoreState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Adds the topic of the platform event object `name`, whose Ids start with
    /// `key_prefix`. Defining a topic again keeps its events.
    pub fn define_topic(&self, name: &str, key_prefix: &str) -> Result<(), PlatformError> {
        let mut state = self.state();
        if state.topics.contains_key(name) {
            return Ok(());
        }
        let ids = IdGenerator::new(key_prefix, DEFAULT_POD).map_err(|source| {
            PlatformError::KeyPrefix {
                topic: name.to_owned(),
                source,
            }
        })?;
        // Replay ids are opaque and each topic has its own: start somewhere not 0 or 1.
        let start = state.rng.random_range(1_000..10_000);
        let (published, _) = watch::channel(start);
        state.topics.insert(
            name.to_owned(),
            Topic {
                events: VecDeque::new(),
                last: start,
                floor: start,
                ids,
                published,
            },
        );
        Ok(())
    }

    /// Whether `name` is a defined topic.
    pub fn has_topic(&self, name: &str) -> bool {
        self.state().topics.contains_key(name)
    }

    /// The names of every topic.
    pub fn topics(&self) -> Vec<String> {
        let mut names: Vec<String> = self.state().topics.keys().cloned().collect();
        names.sort();
        names
    }

    pub fn retention(&self) -> Duration {
        self.state().retention
    }

    pub fn set_retention(&self, retention: Duration) {
        self.state().retention = retention;
    }

    /// The most events kept per topic, whatever their age.
    pub fn set_max_retained(&self, max_retained: usize) {
        self.state().max_retained = max_retained;
    }

    /// An event of `topic` with its Id and `EventUuid`, not yet published: what a
    /// publish call answers before its transaction commits.
    pub fn prepare(
        &self,
        topic: &str,
        fields: Map<String, Value>,
        user: Id,
    ) -> Result<PlatformEvent, PlatformError> {
        let mut state = self.state();
        let uuid: [u8; 16] = state.rng.random();
        let entry = state
            .topics
            .get_mut(topic)
            .ok_or_else(|| PlatformError::UnknownTopic(topic.to_owned()))?;
        Ok(PlatformEvent {
            topic: topic.to_owned(),
            replay_id: 0,
            id: entry.ids.next_id(),
            event_uuid: uuid_v4(uuid),
            created_date: self.clock.now(),
            created_by_id: user,
            fields,
        })
    }

    /// Appends prepared events in order (the commit of their transaction), giving each its
    /// topic's next replay id, and wakes the topics' readers. Returns the replay ids.
    pub fn publish_prepared(&self, events: Vec<PlatformEvent>) -> Result<Vec<i64>, PlatformError> {
        let mut state = self.state();
        if let Some(unknown) = events.iter().find(|e| !state.topics.contains_key(&e.topic)) {
            return Err(PlatformError::UnknownTopic(unknown.topic.clone()));
        }
        let now = self.clock.now();
        let mut ids = Vec::with_capacity(events.len());
        let mut touched = Vec::new();
        for mut event in events {
            let step = state.rng.random_range(1..=3);
            let Some(topic) = state.topics.get_mut(&event.topic) else {
                continue;
            };
            topic.last += step;
            event.replay_id = topic.last;
            // CreatedDate is the publish time: the commit, not the request's start.
            event.created_date = now;
            ids.push(topic.last);
            if !touched.contains(&event.topic) {
                touched.push(event.topic.clone());
            }
            topic.events.push_back(Arc::new(event));
        }
        let (retention, max_retained) = (state.retention, state.max_retained);
        for name in touched {
            if let Some(topic) = state.topics.get_mut(&name) {
                expire_old(topic, retention, max_retained, now);
                topic.published.send_replace(topic.last);
            }
        }
        drop(state);
        self.published_any.send_modify(|count| *count += 1);
        Ok(ids)
    }

    /// Publishes one event at once: its Id, replay id and `EventUuid`.
    pub fn publish(
        &self,
        topic: &str,
        fields: Map<String, Value>,
        user: Id,
    ) -> Result<(Id, i64, String), PlatformError> {
        let event = self.prepare(topic, fields, user)?;
        let (id, uuid) = (event.id, event.event_uuid.clone());
        let replay_ids = self.publish_prepared(vec![event])?;
        let replay_id = replay_ids.first().copied().unwrap_or_default();
        Ok((id, replay_id, uuid))
    }

    /// Where a subscription of `topic` starting at `from` stands: it receives what follows.
    pub fn start(&self, topic: &str, from: ReplayStart) -> Result<i64, PlatformError> {
        self.with_topic(topic, |topic| match from {
            ReplayStart::Tip => Ok(topic.last),
            ReplayStart::Retained => Ok(topic.floor),
            ReplayStart::After(id) if id >= topic.floor && id <= topic.last => Ok(id),
            ReplayStart::After(id) => Err(PlatformError::InvalidReplayId(id)),
        })?
    }

    /// Up to `limit` retained events of `topic` after `position`, oldest first.
    pub fn after(
        &self,
        topic: &str,
        position: i64,
        limit: usize,
    ) -> Result<Vec<Arc<PlatformEvent>>, PlatformError> {
        self.with_topic(topic, |topic| {
            let first = topic.events.partition_point(|e| e.replay_id <= position);
            topic.events.range(first..).take(limit).cloned().collect()
        })
    }

    /// The newest replay id issued on `topic`.
    pub fn last_replay_id(&self, topic: &str) -> Result<i64, PlatformError> {
        self.with_topic(topic, |topic| topic.last)
    }

    /// A receiver that changes whenever `topic` gets events.
    pub fn watch(&self, topic: &str) -> Result<watch::Receiver<i64>, PlatformError> {
        self.with_topic(topic, |topic| topic.published.subscribe())
    }

    /// A receiver that changes whenever any topic gets events.
    pub fn watch_all(&self) -> watch::Receiver<u64> {
        self.published_any.subscribe()
    }

    /// Expires every retained event of every topic now: their replay ids become invalid.
    /// Returns how many expired.
    pub fn expire_all(&self) -> usize {
        let mut state = self.state();
        let mut expired = 0;
        for topic in state.topics.values_mut() {
            expired += topic.events.len();
            topic.events.clear();
            topic.floor = topic.last;
        }
        expired
    }

    /// Runs `read` on `name`'s topic after expiring its old events.
    fn with_topic<T>(
        &self,
        name: &str,
        read: impl FnOnce(&Topic) -> T,
    ) -> Result<T, PlatformError> {
        let now = self.clock.now();
        let mut state = self.state();
        let (retention, max_retained) = (state.retention, state.max_retained);
        let topic = state
            .topics
            .get_mut(name)
            .ok_or_else(|| PlatformError::UnknownTopic(name.to_owned()))?;
        expire_old(topic, retention, max_retained, now);
        Ok(read(topic))
    }
}

/// Drops events older than the retention, or beyond the most kept, raising the floor
/// past them.
fn expire_old(topic: &mut Topic, retention: Duration, max_retained: usize, now: DateTime<Utc>) {
    while topic.events.len() > max_retained.max(1) {
        if let Some(first) = topic.events.pop_front() {
            topic.floor = first.replay_id;
        }
    }
    let retention = chrono::Duration::from_std(retention).unwrap_or(chrono::Duration::MAX);
    let Some(cutoff) = now.checked_sub_signed(retention) else {
        return;
    };
    while let Some(first) = topic.events.front() {
        if first.created_date >= cutoff {
            break;
        }
        topic.floor = first.replay_id;
        topic.events.pop_front();
    }
}

/// A random (version 4) UUID in its hyphenated text form.
fn uuid_v4(mut bytes: [u8; 16]) -> String {
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

#[cfg(test)]
mod tests;
