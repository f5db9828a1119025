//! The open Subscribe streams, for the admin API: each stream's topic and outstanding
//! demand (`pending_num_requested`, and the most it ever was), and a way to end every
//! stream with a chosen status and `error-code`, as Salesforce ends a stream on an error.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use serde::Serialize;
use tokio::sync::watch;
use tonic::Status;

/// What ends a stream from outside: the status it ends with.
pub type EndSignal = watch::Receiver<Option<Status>>;

#[derive(Debug)]
struct Entry {
    topic: String,
    pending: i32,
    max_pending: i32,
    delivered: u64,
    end: watch::Sender<Option<Status>>,
}

/// One open stream as the admin API shows it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct StreamView {
    pub id: u64,
    pub topic: String,
    /// Events requested and not yet delivered.
    pub pending: i32,
    /// The most that were ever outstanding at once.
    pub max_pending: i32,
    /// Events delivered so far.
    pub delivered: u64,
}

#[derive(Debug, Default)]
struct Registry {
    next: u64,
    streams: BTreeMap<u64, Entry>,
}

/// Every open Subscribe stream of the emulator.
#[derive(Debug, Default, Clone)]
pub struct Streams {
    inner: Arc<Mutex<Registry>>,
}

impl Streams {
    fn registry(&self) -> MutexGuard<'_, Registry> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Registers a stream on `topic`; it is forgotten when the guard drops.
    pub fn open(&self, topic: &str) -> (StreamGuard, EndSignal) {
        let (end, signal) = watch::channel(None);
        let mut registry = self.registry();
        registry.next += 1;
        let id = registry.next;
        registry.streams.insert(
            id,
            Entry {
                topic: topic.to_owned(),
                pending: 0,
                max_pending: 0,
                delivered: 0,
                end,
            },
        );
        let guard = StreamGuard {
            streams: self.clone(),
            id,
        };
        (guard, signal)
    }

    /// The open streams.
    pub fn list(&self) -> Vec<StreamView> {
        self.registry()
            .streams
            .iter()
            .map(|(id, e)| StreamView {
                id: *id,
                topic: e.topic.clone(),
                pending: e.pending,
                max_pending: e.max_pending,
                delivered: e.delivered,
            })
            .collect()
    }

    /// Ends every open stream (or those on `topic`) with `status`; how many.
    pub fn end_all(&self, topic: Option<&str>, status: &Status) -> usize {
        let registry = self.registry();
        let mut ended = 0;
        for entry in registry.streams.values() {
            if topic.is_none_or(|t| t == entry.topic) {
                entry.end.send_replace(Some(status.clone()));
                ended += 1;
            }
        }
        ended
    }
}

/// A registered stream; reports its demand, and unregisters it when dropped.
#[derive(Debug)]
pub struct StreamGuard {
    streams: Streams,
    id: u64,
}

impl StreamGuard {
    /// The stream's outstanding demand now, and how many it has delivered.
    pub fn report(&self, pending: i32, delivered: u64) {
        let mut registry = self.streams.registry();
        if let Some(entry) = registry.streams.get_mut(&self.id) {
            entry.pending = pending;
            entry.max_pending = entry.max_pending.max(pending);
            entry.delivered = delivered;
        }
    }
}

impl Drop for StreamGuard {
    fn drop(&mut self) {
        self.streams.registry().streams.remove(&self.id);
    }
}
