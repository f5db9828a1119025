//! What an org's stream and its scheduler tell each other. The stream says which objects it
//! keeps current (their polling drops to the safety cadence), and asks for an object to be
//! polled at once (after a `GAP_OVERFLOW`); the scheduler says when each object's feed last
//! caught up, which ends a catch-up, and when the org's settings changed.
//!
//! A plain mutex, never held across an `.await`.

use std::collections::{HashMap, HashSet};
use std::sync::{Mutex, MutexGuard, PoisonError};

use chrono::{DateTime, Utc};
use tokio::sync::watch;

#[derive(Debug, Default)]
struct Shared {
    /// Objects the stream keeps current, lower case.
    streamed: HashSet<String>,
    /// Objects to poll at once, lower case.
    poll_now: HashSet<String>,
    /// When each object's last poll that caught up was started, lower case.
    caught_up: HashMap<String, DateTime<Utc>>,
}

/// Shared by an org's stream and its scheduler.
#[derive(Debug)]
pub struct StreamHealth {
    shared: Mutex<Shared>,
    reloads: watch::Sender<u64>,
}

impl Default for StreamHealth {
    fn default() -> Self {
        Self {
            shared: Mutex::default(),
            reloads: watch::channel(0).0,
        }
    }
}

impl StreamHealth {
    fn lock(&self) -> MutexGuard<'_, Shared> {
        self.shared.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The objects the stream keeps current from now on (none: it is down).
    pub fn set_streamed(&self, objects: &[String]) {
        self.lock().streamed = objects.iter().map(|o| o.to_ascii_lowercase()).collect();
    }

    /// Whether the stream keeps `object` current, so its polling may slow down.
    pub fn is_streamed(&self, object: &str) -> bool {
        self.lock().streamed.contains(&object.to_ascii_lowercase())
    }

    /// Asks the scheduler to poll `object` at once, whatever its cadence.
    pub fn poll_now(&self, object: &str) {
        self.lock().poll_now.insert(object.to_ascii_lowercase());
    }

    /// Whether `object` is to be polled at once (asking clears it).
    pub fn take_poll_now(&self, object: &str) -> bool {
        self.lock().poll_now.remove(&object.to_ascii_lowercase())
    }

    /// The scheduler: a poll of `object` started at `started` has caught up.
    pub fn caught_up(&self, object: &str, started: DateTime<Utc>) {
        let mut shared = self.lock();
        let at = shared
            .caught_up
            .entry(object.to_ascii_lowercase())
            .or_insert(started);
        *at = (*at).max(started);
    }

    /// Whether every one of `objects` caught up by a poll started at or after `since`.
    pub fn all_caught_up_since(&self, objects: &[String], since: DateTime<Utc>) -> bool {
        let shared = self.lock();
        objects.iter().all(|o| {
            shared
                .caught_up
                .get(&o.to_ascii_lowercase())
                .is_some_and(|at| *at >= since)
        })
    }

    /// The scheduler: the org's row or objects changed.
    pub fn settings_changed(&self) {
        self.reloads.send_modify(|n| *n += 1);
    }

    /// Follows [`StreamHealth::settings_changed`].
    pub fn reloads(&self) -> watch::Receiver<u64> {
        self.reloads.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_catch_up_ends_when_every_object_polled_after_it_began() {
        let health = StreamHealth::default();
        let began = Utc::now();
        let objects = vec!["Account".to_owned(), "Contact".to_owned()];
        health.caught_up("account", began - chrono::Duration::seconds(1));
        assert!(!health.all_caught_up_since(&objects, began));
        health.caught_up("Account", began);
        health.caught_up("Contact", began + chrono::Duration::seconds(2));
        assert!(health.all_caught_up_since(&objects, began));
        health.set_streamed(&objects);
        assert!(health.is_streamed("contact"));
        health.poll_now("Contact");
        assert!(health.take_poll_now("CONTACT"));
        assert!(!health.take_poll_now("Contact"));
    }
}
