//! The proxy's recent refusals, for the status page: a count per SQLSTATE since the process
//! started and the last few refusals, held in memory. The proxy records each transaction it
//! refuses where it counts them for `/metrics`; the page reads a copy. A plain mutex, held
//! only to copy or update, never across an `.await`.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};

use chrono::{DateTime, Utc};

/// How many refusals the page lists one by one.
pub const RECENT: usize = 20;

/// The longest message (and detail) kept, in characters: enough to read what Salesforce
/// said.
const MESSAGE_CHARS: usize = 300;

/// The most SQLSTATEs tallied one by one; the refusals of any other are tallied as
/// [`OTHER`]. A client's own deferred trigger can raise any SQLSTATE it likes at the
/// proxy's statements, and the page must not grow with them.
const SQLSTATES: usize = 64;

/// The tally of the SQLSTATEs past [`SQLSTATES`].
pub const OTHER: &str = "other";

/// One refused transaction, as its client was told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    pub at: DateTime<Utc>,
    /// The SQLSTATE the client got, such as `23514`.
    pub sqlstate: String,
    /// Salesforce's code, which the proxy puts in the error's DETAIL.
    pub detail: Option<String>,
    pub message: String,
}

/// The refusals of one SQLSTATE.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tally {
    pub sqlstate: String,
    pub count: u64,
    /// The latest of them.
    pub last: Refused,
}

/// What the page shows: a tally per SQLSTATE (by SQLSTATE), and the latest refusals, newest
/// first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RefusalsSeen {
    pub by_sqlstate: Vec<Tally>,
    pub recent: Vec<Refused>,
}

#[derive(Debug, Default)]
struct Inner {
    by_sqlstate: BTreeMap<String, Tally>,
    recent: VecDeque<Refused>,
}

/// A process's recent refusals; clones share them.
#[derive(Debug, Clone, Default)]
pub struct RecentRefusals(Arc<Mutex<Inner>>);

impl RecentRefusals {
    /// The process's own: the proxy records into it, the page reads it.
    pub fn global() -> RecentRefusals {
        static GLOBAL: OnceLock<RecentRefusals> = OnceLock::new();
        GLOBAL.get_or_init(RecentRefusals::default).clone()
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A transaction refused with `sqlstate`, `message` and `detail`, now.
    pub fn record(&self, sqlstate: &str, message: &str, detail: Option<&str>) {
        let refused = Refused {
            at: Utc::now(),
            sqlstate: sqlstate.to_owned(),
            detail: detail.map(|detail| detail.chars().take(MESSAGE_CHARS).collect()),
            message: message.chars().take(MESSAGE_CHARS).collect(),
        };
        let mut inner = self.lock();
        let key = if inner.by_sqlstate.len() < SQLSTATES
            || inner.by_sqlstate.contains_key(&refused.sqlstate)
        {
            refused.sqlstate.clone()
        } else {
            OTHER.to_owned()
        };
        inner
            .by_sqlstate
            .entry(key.clone())
            .and_modify(|tally| {
                tally.count += 1;
                tally.last = refused.clone();
            })
            .or_insert_with(|| Tally {
                sqlstate: key,
                count: 1,
                last: refused.clone(),
            });
        if inner.recent.len() == RECENT {
            inner.recent.pop_back();
        }
        inner.recent.push_front(refused);
    }

    /// A copy of what was recorded.
    pub fn seen(&self) -> RefusalsSeen {
        let inner = self.lock();
        RefusalsSeen {
            by_sqlstate: inner.by_sqlstate.values().cloned().collect(),
            recent: inner.recent.iter().cloned().collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_are_counted_by_sqlstate_and_the_latest_kept() {
        let refusals = RecentRefusals::default();
        for i in 0..RECENT + 5 {
            refusals.record(
                "23514",
                &format!("refused {i}"),
                Some("FIELD_CUSTOM_VALIDATION_EXCEPTION"),
            );
        }
        refusals.record("23505", &"x".repeat(1000), Some("DUPLICATE_VALUE"));
        let seen = refusals.seen();
        let counts: Vec<(&str, u64)> = seen
            .by_sqlstate
            .iter()
            .map(|t| (t.sqlstate.as_str(), t.count))
            .collect();
        assert_eq!(counts, [("23505", 1), ("23514", RECENT as u64 + 5)]);
        assert_eq!(
            seen.by_sqlstate[1].last.message,
            format!("refused {}", RECENT + 4)
        );
        assert_eq!(seen.recent.len(), RECENT);
        assert_eq!(seen.recent[0].sqlstate, "23505");
        assert_eq!(seen.recent[0].message.chars().count(), MESSAGE_CHARS);
        assert_eq!(seen.recent[1].message, format!("refused {}", RECENT + 4));
        // Clones share; the global one is one per process.
        refusals.clone().record("42501", "no", None);
        assert_eq!(refusals.seen().by_sqlstate.len(), 3);
        RecentRefusals::global().record("57014", "cancelled", None);
        assert!(!RecentRefusals::global().seen().recent.is_empty());
    }

    #[test]
    fn the_tallies_and_their_texts_stay_bounded_whatever_a_client_raises() {
        let refusals = RecentRefusals::default();
        for n in 0..SQLSTATES + 100 {
            refusals.record(&format!("Z{n:04}"), "x", Some(&"D".repeat(100_000)));
        }
        let seen = refusals.seen();
        assert_eq!(seen.by_sqlstate.len(), SQLSTATES + 1);
        let other = seen
            .by_sqlstate
            .iter()
            .find(|t| t.sqlstate == OTHER)
            .unwrap();
        assert_eq!(other.count, 100);
        assert!(seen.by_sqlstate.iter().all(|t| {
            t.last
                .detail
                .as_ref()
                .is_some_and(|d| d.chars().count() == MESSAGE_CHARS)
        }));
        // A SQLSTATE already tallied keeps its own tally.
        refusals.record("Z0001", "x", None);
        let seen = refusals.seen();
        assert_eq!(
            seen.by_sqlstate
                .iter()
                .find(|t| t.sqlstate == "Z0001")
                .unwrap()
                .count,
            2
        );
    }
}
