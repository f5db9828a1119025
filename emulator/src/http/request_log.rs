//! The record of every request the emulator served (admin calls excepted), so tests can
//! check rate limits and retries from the server's side.

use std::collections::VecDeque;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::model::format_datetime;

/// One served (or deliberately dropped) request.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LoggedRequest {
    /// Increases by one per request; `GET /__emulator/requests?after=N` reads newer ones.
    pub seq: u64,
    pub method: String,
    pub path: String,
    /// The raw query string, if any.
    pub query: Option<String>,
    #[serde(serialize_with = "salesforce_datetime")]
    pub time: DateTime<Utc>,
    /// Whether the request used one of the daily API allocation.
    pub counted: bool,
    /// The response status; `None` when the connection was dropped without a response.
    pub status: Option<u16>,
    /// Whether an injected fault (failure or dropped connection) answered it.
    pub injected: bool,
    /// Which session made it: the serial number of its access token within the org (1
    /// for the first token issued), `None` without a live token (a login, a bad token).
    pub session: Option<u64>,
    /// The client's `User-Agent`, as sent.
    pub user_agent: Option<String>,
}

fn salesforce_datetime<S: serde::Serializer>(d: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format_datetime(d))
}

/// A bounded log: the oldest entries go once `capacity` is reached.
#[derive(Debug)]
pub struct RequestLog {
    entries: VecDeque<LoggedRequest>,
    capacity: usize,
    next_seq: u64,
}

/// What a finished request reports to the log.
#[derive(Debug, Clone)]
pub struct Served {
    pub method: String,
    pub path: String,
    pub query: Option<String>,
    pub time: DateTime<Utc>,
    pub counted: bool,
    pub status: Option<u16>,
    pub injected: bool,
    pub session: Option<u64>,
    pub user_agent: Option<String>,
}

impl RequestLog {
    pub fn new(capacity: usize) -> RequestLog {
        RequestLog {
            entries: VecDeque::new(),
            capacity: capacity.max(1),
            next_seq: 1,
        }
    }

    pub fn push(&mut self, served: Served) {
        if self.entries.len() == self.capacity {
            self.entries.pop_front();
        }
        self.entries.push_back(LoggedRequest {
            seq: self.next_seq,
            method: served.method,
            path: served.path,
            query: served.query,
            time: served.time,
            counted: served.counted,
            status: served.status,
            injected: served.injected,
            session: served.session,
            user_agent: served.user_agent,
        });
        self.next_seq += 1;
    }

    /// Entries with `seq > after`, oldest first.
    pub fn after(&self, after: u64) -> Vec<LoggedRequest> {
        self.entries
            .iter()
            .filter(|e| e.seq > after)
            .cloned()
            .collect()
    }

    pub fn clear(&mut self) {
        self.entries.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn served(path: &str) -> Served {
        Served {
            method: "GET".to_owned(),
            path: path.to_owned(),
            query: None,
            time: DateTime::<Utc>::UNIX_EPOCH,
            counted: true,
            status: Some(200),
            injected: false,
            session: None,
            user_agent: None,
        }
    }

    #[test]
    fn keeps_the_newest_entries_in_order() {
        let mut log = RequestLog::new(2);
        log.push(served("/a"));
        log.push(served("/b"));
        log.push(served("/c"));
        let paths: Vec<_> = log.after(0).into_iter().map(|e| (e.seq, e.path)).collect();
        assert_eq!(paths, [(2, "/b".to_owned()), (3, "/c".to_owned())]);
        assert_eq!(log.after(2).len(), 1);
    }

    #[test]
    fn serializes_with_salesforce_time_format() {
        let mut log = RequestLog::new(4);
        log.push(served("/services/data/v62.0/limits"));
        let json = serde_json::to_value(&log.after(0)[0]).unwrap();
        assert_eq!(json["time"], "1970-01-01T00:00:00.000+0000");
        assert_eq!(json["counted"], true);
        assert_eq!(json["status"], 200);
    }
}
