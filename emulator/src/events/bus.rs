//! The bus itself: assigns replay ids (increasing, not contiguous), keeps events for the
//! retention period, answers where a subscription starts (`-1`, `-2` or a replay id) and
//! what follows a position, and wakes long-polling readers when something is published.
//!
//! The org publishes while it holds its own write lock, and takes the bus's lock only
//! inside it (never the other way round); readers take the bus's lock alone.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::sync::watch;

use super::change::ChangeEvent;
use super::selection::Selection;
use crate::org::Clock;

/// Where the bus starts, and what it publishes.
#[derive(Debug, Clone)]
pub struct BusConfig {
    pub selection: Selection,
    /// How long events stay replayable (Salesforce: 72 hours).
    pub retention: Duration,
    /// The changes one transaction may publish before the rest becomes `GAP_OVERFLOW`.
    pub overflow_threshold: usize,
    /// The most events kept whatever their age: the emulator's memory bound (a million
    /// records ingested would otherwise keep a million bodies for 72 hours). The oldest
    /// go first, as if their retention had passed.
    pub max_retained: usize,
}

/// Salesforce keeps change events for three days.
pub const DEFAULT_RETENTION: Duration = Duration::from_secs(72 * 3600);
/// Salesforce's overflow threshold: 100,000 changes in one transaction.
pub const DEFAULT_OVERFLOW_THRESHOLD: usize = 100_000;
/// The emulator keeps at most this many events (a few hundred MB of bodies at most).
pub const DEFAULT_MAX_RETAINED: usize = 200_000;

impl Default for BusConfig {
    fn default() -> BusConfig {
        BusConfig {
            selection: Selection::All,
            retention: DEFAULT_RETENTION,
            overflow_threshold: DEFAULT_OVERFLOW_THRESHOLD,
            max_retained: DEFAULT_MAX_RETAINED,
        }
    }
}

/// Where a subscription starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplayStart {
    /// `-1`: only events published from now on.
    Tip,
    /// `-2`: every retained event.
    Retained,
    /// After this replay id, which must lie within the retained window.
    After(i64),
}

impl ReplayStart {
    /// `-1`, `-2`, or a replay id.
    pub fn from_wire(value: i64) -> ReplayStart {
        match value {
            -1 => ReplayStart::Tip,
            -2 => ReplayStart::Retained,
            id => ReplayStart::After(id),
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BusError {
    /// The id was never issued, or its events have expired.
    #[error("the replay id {0} is not within the retained events")]
    InvalidReplayId(i64),
}

#[derive(Debug)]
struct BusState {
    events: VecDeque<Arc<ChangeEvent>>,
    /// The newest replay id issued (or the bus's starting point).
    last: i64,
    /// Every replay id at or below this has expired.
    floor: i64,
    config: BusConfig,
    commit_number: i64,
    rng: StdRng,
}

/// The org's change event bus. Shared (`Arc`) between the org and the streaming API.
#[derive(Debug)]
pub struct EventBus {
    state: Mutex<BusState>,
    published: watch::Sender<i64>,
    clock: Arc<dyn Clock>,
}

impl EventBus {
    pub fn new(config: BusConfig, clock: Arc<dyn Clock>) -> EventBus {
        let mut rng = StdRng::from_os_rng();
        // Replay ids are opaque: start somewhere that is not 0 or 1.
        let start = rng.random_range(1_000..10_000);
        let (published, _) = watch::channel(start);
        EventBus {
            state: Mutex::new(BusState {
                events: VecDeque::new(),
                last: start,
                floor: start,
                config,
                commit_number: rng.random_range(10_000_000_000..20_000_000_000),
                rng,
            }),
            published,
            clock,
        }
    }

    fn state(&self) -> MutexGuard<'_, BusState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The entities selected for Change Data Capture.
    pub fn selection(&self) -> Selection {
        self.state().config.selection.clone()
    }

    pub fn set_selection(&self, selection: Selection) {
        self.state().config.selection = selection;
    }

    pub fn overflow_threshold(&self) -> usize {
        self.state().config.overflow_threshold
    }

    pub fn set_overflow_threshold(&self, threshold: usize) {
        self.state().config.overflow_threshold = threshold;
    }

    pub fn retention(&self) -> Duration {
        self.state().config.retention
    }

    pub fn set_retention(&self, retention: Duration) {
        self.state().config.retention = retention;
    }

    /// A new transaction's `transactionKey` and `commitNumber`.
    pub fn next_transaction(&self) -> (String, i64) {
        let mut state = self.state();
        state.commit_number += state.rng.random_range(1..50);
        let bytes: [u8; 16] = state.rng.random();
        let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        let key = format!(
            "{}-{}-{}-{}-{}",
            &hex[..8],
            &hex[8..12],
            &hex[12..16],
            &hex[16..20],
            &hex[20..]
        );
        (key, state.commit_number)
    }

    /// Appends `events` in order, giving each its replay id, and wakes readers.
    pub fn publish(&self, events: Vec<ChangeEvent>) -> Vec<i64> {
        if events.is_empty() {
            return Vec::new();
        }
        let last = {
            let mut state = self.state();
            let mut ids = Vec::with_capacity(events.len());
            for mut event in events {
                let step = state.rng.random_range(1..=3);
                state.last += step;
                event.replay_id = state.last;
                ids.push(state.last);
                state.events.push_back(Arc::new(event));
            }
            self.expire_old(&mut state);
            (state.last, ids)
        };
        self.published.send_replace(last.0);
        last.1
    }

    /// Where a subscription starting at `from` stands: it receives what follows.
    pub fn start(&self, from: ReplayStart) -> Result<i64, BusError> {
        let mut state = self.state();
        self.expire_old(&mut state);
        match from {
            ReplayStart::Tip => Ok(state.last),
            ReplayStart::Retained => Ok(state.floor),
            ReplayStart::After(id) if id >= state.floor && id <= state.last => Ok(id),
            ReplayStart::After(id) => Err(BusError::InvalidReplayId(id)),
        }
    }

    /// Up to `limit` retained events after `position`, oldest first.
    pub fn after(&self, position: i64, limit: usize) -> Vec<Arc<ChangeEvent>> {
        let mut state = self.state();
        self.expire_old(&mut state);
        let first = state.events.partition_point(|e| e.replay_id <= position);
        state.events.range(first..).take(limit).cloned().collect()
    }

    /// The newest replay id issued.
    pub fn last_replay_id(&self) -> i64 {
        self.state().last
    }

    /// How many events are retained.
    pub fn retained(&self) -> usize {
        let mut state = self.state();
        self.expire_old(&mut state);
        state.events.len()
    }

    /// A receiver that changes whenever events are published.
    pub fn watch(&self) -> watch::Receiver<i64> {
        self.published.subscribe()
    }

    /// Expires every retained event now (the admin API's "expire retained events"):
    /// their replay ids become invalid. Returns how many expired.
    pub fn expire_all(&self) -> usize {
        let mut state = self.state();
        let expired = state.events.len();
        state.events.clear();
        state.floor = state.last;
        expired
    }

    /// Drops events older than the retention, or beyond the most kept, raising the floor
    /// past them.
    fn expire_old(&self, state: &mut BusState) {
        while state.events.len() > state.config.max_retained.max(1) {
            if let Some(first) = state.events.pop_front() {
                state.floor = first.replay_id;
            }
        }
        let retention =
            chrono::Duration::from_std(state.config.retention).unwrap_or(chrono::Duration::MAX);
        let Some(cutoff) = self.clock.now().checked_sub_signed(retention) else {
            return;
        };
        let cutoff_ms = cutoff.timestamp_millis();
        while let Some(first) = state.events.front() {
            if first.header.commit_timestamp >= cutoff_ms {
                break;
            }
            state.floor = first.replay_id;
            state.events.pop_front();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::{ChangeEventHeader, ChangeType};
    use crate::org::ManualClock;

    fn event(clock: &ManualClock) -> ChangeEvent {
        ChangeEvent {
            replay_id: 0,
            header: ChangeEventHeader {
                entity_name: "Account".to_owned(),
                record_ids: vec![],
                change_type: ChangeType::Delete,
                changed_fields: vec![],
                nulled_fields: vec![],
                diff_fields: vec![],
                change_origin: String::new(),
                transaction_key: String::new(),
                sequence_number: 1,
                commit_timestamp: clock.now().timestamp_millis(),
                commit_number: 1,
                commit_user: String::new(),
            },
            fields: Default::default(),
        }
    }

    #[test]
    fn the_oldest_events_go_beyond_the_most_kept() {
        let clock = ManualClock::new(chrono::Utc::now());
        let config = BusConfig {
            max_retained: 2,
            ..BusConfig::default()
        };
        let bus = EventBus::new(config, Arc::new(clock.clone()));
        let ids = bus.publish(vec![event(&clock), event(&clock), event(&clock)]);
        assert_eq!(bus.retained(), 2);
        assert!(bus.start(ReplayStart::After(ids[0] - 1)).is_err());
        assert_eq!(bus.start(ReplayStart::Retained), Ok(ids[0]));
        assert_eq!(bus.after(ids[0], 10).len(), 2);
    }

    #[test]
    fn replay_ids_increase_and_expire_with_retention() {
        let clock = ManualClock::new(chrono::Utc::now());
        let config = BusConfig {
            retention: Duration::from_secs(3600),
            ..BusConfig::default()
        };
        let bus = EventBus::new(config, Arc::new(clock.clone()));
        let start = bus.start(ReplayStart::Tip).unwrap();
        let ids = bus.publish(vec![event(&clock), event(&clock), event(&clock)]);
        assert!(ids[0] > start && ids[1] > ids[0] && ids[2] > ids[1]);
        assert_eq!(bus.after(ids[0], 10).len(), 2);
        assert_eq!(bus.start(ReplayStart::After(ids[1])), Ok(ids[1]));
        assert!(bus.start(ReplayStart::After(ids[2] + 10)).is_err());
        clock.advance(chrono::Duration::hours(2));
        assert_eq!(bus.retained(), 0);
        assert_eq!(
            bus.start(ReplayStart::After(ids[1])),
            Err(BusError::InvalidReplayId(ids[1]))
        );
        assert_eq!(bus.start(ReplayStart::After(ids[2])), Ok(ids[2]));
        assert_eq!(bus.start(ReplayStart::Retained), Ok(ids[2]));
    }
}
