//! What the server still owes, in order, and to whom.
//!
//! Every message the session sends upstream that the server answers (Parse, Bind, Describe,
//! Execute, Close, Sync, Query, FunctionCall) gets an entry, whether the client sent it or
//! the proxy did. Each server message is then routed by the entry at the head: the
//! client's replies are forwarded, the proxy's are consumed, and a ReadyForQuery is handed
//! back with its entry so the session can act on it (hold it, push, rewrite its status).
//!
//! After an error in the extended protocol the server skips everything up to Sync; the
//! entries of the skipped messages are dropped with it.
//!
//! During a COPY FROM STDIN the server ignores Sync and Flush until the client's CopyDone or
//! CopyFail (tokio-postgres and libpq send Execute, Sync, the data, CopyDone, Sync, and get
//! one ReadyForQuery): the entries of the ignored Syncs are dropped when the COPY starts,
//! and a Sync the client sends while its data is still coming gets none. The client's
//! CopyDone and CopyFail leave a mark in the queue, so that a Sync sent after them (before
//! the COPY was seen to start) is told apart from one sent before.
//!
//! The entries also say which statements may write: a refused push's error takes the
//! place of such a statement's CommandComplete (see the session's `end_managed`).

use std::collections::VecDeque;
use std::sync::Arc;

use tokio_postgres::error::SqlState;

use crate::net::frame::body;
use crate::net::messages::backend::{self as be, Fields, Malformed, TransactionStatus};

/// The kind of message an entry stands for, which decides what completes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Request {
    Parse,
    Bind,
    Describe,
    Execute,
    Close,
    Sync,
    Query,
    FunctionCall,
    /// The client ended its COPY data (CopyDone or CopyFail). Owes nothing: it marks where
    /// in the queue that happened. Never left at the head of the queue.
    CopyEnd,
}

impl Request {
    fn is_extended(self) -> bool {
        matches!(
            self,
            Request::Parse | Request::Bind | Request::Describe | Request::Execute | Request::Close
        )
    }

    /// Answered by a ReadyForQuery.
    pub fn ends_with_ready(self) -> bool {
        matches!(self, Request::Sync | Request::Query | Request::FunctionCall)
    }
}

/// What the session does when a ReadyForQuery completes an entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnReady {
    /// Forward it: the client's own unit ended.
    Forward,
    /// Consume it: the proxy's own.
    Consume,
    /// A unit the proxy wrapped in its own transaction ended: push, commit, then answer
    /// the client as if the unit had run on its own. `last`: the client's own unit ends
    /// here (not just a step of a split query string).
    EndManaged {
        last: bool,
        /// The unit is a simple Query (not an extended-protocol unit up to Sync).
        query: bool,
    },
    /// A step, not the last, of a query string the proxy split: go on with the next step,
    /// unless it failed.
    Step,
}

/// Which statements of a request may write: where a refused push's error can go.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Writes {
    #[default]
    None,
    /// An Execute of a statement that may write.
    Execute,
    /// A Query's statements, in order: whether each may write.
    Query(Arc<[bool]>),
}

/// One reply the server owes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owed {
    pub request: Request,
    /// The proxy's own message: its replies are consumed.
    pub ours: bool,
    pub on_ready: OnReady,
    /// WARNINGs "there is already a transaction in progress" (25001) to consume: a client
    /// BEGIN that lands in a transaction the proxy opened would draw one, where PostgreSQL
    /// would have quietly turned its implicit transaction into an explicit one.
    pub begin_warnings: u8,
    /// Leading replies to consume: those of a no-op statement the proxy put in front of
    /// the client's (see the session's COMMIT handling).
    pub skip_replies: u8,
    /// A Describe of a prepared statement, or a Parse of a named one: its name.
    pub statement: Option<Box<[u8]>>,
    /// Which of its statements may write.
    pub writes: Writes,
    /// A Query: how many of its statements have completed.
    pub completed: usize,
}

impl Owed {
    pub fn client(request: Request) -> Self {
        Owed {
            request,
            ours: false,
            on_ready: OnReady::Forward,
            begin_warnings: 0,
            skip_replies: 0,
            statement: None,
            writes: Writes::None,
            completed: 0,
        }
    }

    pub fn ours(request: Request) -> Self {
        Owed {
            request,
            ours: true,
            on_ready: OnReady::Consume,
            begin_warnings: 0,
            skip_replies: 0,
            statement: None,
            writes: Writes::None,
            completed: 0,
        }
    }

    /// Whether every statement of a Query the proxy knows the writes of has completed: if
    /// not, the server split the string otherwise than the proxy, and which completion
    /// belongs to which statement is unknown.
    pub fn statements_accounted_for(&self) -> bool {
        match &self.writes {
            Writes::Query(writes) => self.completed == writes.len(),
            _ => true,
        }
    }
}

/// Where a server message goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Routed {
    /// To the client; `error` when it is an ErrorResponse, `write` when it completes a
    /// statement that may write (its CommandComplete, or an Execute's PortalSuspended).
    Client { error: bool, write: bool },
    /// A CopyInResponse: the client must now send its data. `released`: a Sync the
    /// session waited on was one the server ignores, and will not be answered.
    /// `extended`: the COPY is an Execute (not a Query).
    CopyIn { released: bool, extended: bool },
    /// Consumed by the proxy; `error` when it is an ErrorResponse (of the proxy's own
    /// statement).
    Proxy { error: bool },
    /// A ReadyForQuery that completes `owed`.
    Ready {
        owed: Owed,
        status: TransactionStatus,
    },
}

/// A message for the client that is neither an error nor a completion.
const TO_CLIENT: Routed = Routed::Client {
    error: false,
    write: false,
};

#[derive(Debug, Default)]
pub struct Replies {
    owed: VecDeque<Owed>,
    /// How many entries end with a ReadyForQuery.
    units: usize,
    /// The server runs a COPY FROM STDIN whose data the client is still sending: a Sync or
    /// Flush the client sends now is ignored.
    copy_in: bool,
}

impl Replies {
    pub fn push(&mut self, owed: Owed) {
        if owed.request.ends_with_ready() {
            self.units += 1;
        }
        self.owed.push_back(owed);
    }

    /// Whether a Sync or Flush the client sends now is ignored by the server: it comes
    /// during a COPY FROM STDIN's data.
    pub fn in_copy(&self) -> bool {
        self.copy_in
    }

    /// The client sent CopyDone or CopyFail.
    pub fn client_ended_copy(&mut self) {
        if self.copy_in {
            self.copy_in = false;
        } else if !self.owed.is_empty() {
            // The COPY may not have been seen to start yet; with nothing owed, there is no
            // COPY this could end (one that failed, whose data the server ignores).
            self.push(Owed::client(Request::CopyEnd));
        }
    }

    pub fn is_empty(&self) -> bool {
        self.owed.is_empty()
    }

    /// Units (up to a ReadyForQuery) sent and not yet answered.
    pub fn units_in_flight(&self) -> usize {
        self.units
    }

    /// The statement a Describe at the head of the queue describes, if it is one: its
    /// RowDescription is the statement's result columns.
    pub fn describing_statement(&self) -> Option<&[u8]> {
        self.owed
            .front()
            .filter(|o| o.request == Request::Describe)
            .and_then(|o| o.statement.as_deref())
    }

    /// The statement a Parse at the head of the queue prepares, if it is a named one.
    pub fn parsing_statement(&self) -> Option<&[u8]> {
        self.owed
            .front()
            .filter(|o| o.request == Request::Parse)
            .and_then(|o| o.statement.as_deref())
    }

    /// Extended-protocol messages sent since the last Sync that still owe a reply.
    pub fn extended_in_flight(&self) -> bool {
        self.owed
            .iter()
            .rev()
            .find(|o| o.request != Request::CopyEnd)
            .is_some_and(|o| o.request.is_extended())
    }

    fn pop(&mut self) -> Option<Owed> {
        let owed = self.owed.pop_front()?;
        if owed.request.ends_with_ready() {
            self.units -= 1;
        }
        // A mark of the client's CopyDone only separates entries behind a COPY.
        while self
            .owed
            .front()
            .is_some_and(|o| o.request == Request::CopyEnd)
        {
            self.owed.pop_front();
        }
        Some(owed)
    }

    /// The COPY FROM STDIN at the head has started: the Syncs the client sent after it,
    /// before its CopyDone or CopyFail, are ignored by the server, and so are those it
    /// sends until then. Returns whether a dropped Sync's ReadyForQuery was awaited.
    fn copy_started(&mut self) -> bool {
        let mut released = false;
        let mut i = 1;
        while let Some(owed) = self.owed.get(i) {
            match owed.request {
                Request::Sync => {
                    if let Some(ignored) = self.owed.remove(i) {
                        self.units -= 1;
                        released |= ignored.on_ready != OnReady::Forward;
                    }
                }
                Request::CopyEnd => {
                    // The client has sent all its data already.
                    self.owed.remove(i);
                    return released;
                }
                _ => i += 1,
            }
        }
        self.copy_in = true;
        released
    }

    /// Routes one whole server message (tag, length and body).
    pub fn route(&mut self, tag: u8, frame: &[u8]) -> Result<Routed, Malformed> {
        if self.skip_reply(tag) {
            return Ok(Routed::Proxy {
                error: tag == be::ERROR_RESPONSE,
            });
        }
        let Some(head) = self.owed.front() else {
            // Nothing owed: an asynchronous message (notification, parameter change) or
            // the server's last words before it closes. They are the client's.
            return Ok(if tag == be::ERROR_RESPONSE {
                Routed::Client {
                    error: true,
                    write: false,
                }
            } else {
                TO_CLIENT
            });
        };
        let ours = head.ours;
        let routed = |error: bool, write: bool| {
            if ours {
                Routed::Proxy { error }
            } else {
                Routed::Client { error, write }
            }
        };
        match tag {
            be::READY_FOR_QUERY => {
                let status = TransactionStatus::decode_ready_for_query(body(frame))?;
                self.copy_in = false;
                // Entries left before the one the ReadyForQuery answers were skipped.
                while let Some(owed) = self.pop() {
                    if owed.request.ends_with_ready() {
                        return Ok(Routed::Ready { owed, status });
                    }
                }
                Ok(TO_CLIENT)
            }
            be::ERROR_RESPONSE => {
                // An error ends a COPY: the server no longer ignores Syncs.
                self.copy_in = false;
                if head.request.is_extended() {
                    // The server now skips to the next Sync: so do the entries.
                    while self.owed.front().is_some_and(|o| o.request.is_extended()) {
                        self.pop();
                    }
                }
                Ok(routed(true, false))
            }
            be::NOTICE_RESPONSE if head.begin_warnings > 0 => {
                let fields = Fields::decode(body(frame), "NoticeResponse")?;
                if fields.code() == SqlState::ACTIVE_SQL_TRANSACTION.code() {
                    if let Some(head) = self.owed.front_mut() {
                        head.begin_warnings -= 1;
                    }
                    return Ok(Routed::Proxy { error: false });
                }
                Ok(routed(false, false))
            }
            // Asynchronous messages belong to the client whoever's request is running.
            be::PARAMETER_STATUS | be::NOTIFICATION_RESPONSE => Ok(TO_CLIENT),
            be::COPY_IN_RESPONSE
                if !ours && matches!(head.request, Request::Execute | Request::Query) =>
            {
                let extended = head.request == Request::Execute;
                Ok(Routed::CopyIn {
                    released: self.copy_started(),
                    extended,
                })
            }
            _ => {
                let write = self.complete(tag);
                Ok(routed(false, write))
            }
        }
    }

    /// Whether a reply with `tag` is one of the head's leading replies to consume.
    fn skip_reply(&mut self, tag: u8) -> bool {
        match self.owed.front_mut() {
            Some(head)
                if head.skip_replies > 0
                    && !matches!(
                        tag,
                        be::PARAMETER_STATUS | be::NOTIFICATION_RESPONSE | be::READY_FOR_QUERY
                    ) =>
            {
                head.skip_replies -= 1;
                true
            }
            _ => false,
        }
    }

    /// Completes the head entry if `tag` is its last reply (or, for a Query, counts one
    /// statement done). Returns whether it completed a statement that may write.
    fn complete(&mut self, tag: u8) -> bool {
        let Some(head) = self.owed.front_mut() else {
            return false;
        };
        match (tag, head.request) {
            (be::PARSE_COMPLETE | be::BIND_COMPLETE | be::CLOSE_COMPLETE | be::NO_DATA, _)
            | (be::ROW_DESCRIPTION, Request::Describe) => {
                self.complete_extended();
                false
            }
            (
                be::COMMAND_COMPLETE | be::EMPTY_QUERY_RESPONSE | be::PORTAL_SUSPENDED,
                Request::Execute,
            ) => {
                let write = head.writes == Writes::Execute;
                self.complete_extended();
                write
            }
            (be::COMMAND_COMPLETE, Request::Query) => {
                let write = match &head.writes {
                    Writes::Query(writes) => writes.get(head.completed).copied().unwrap_or(false),
                    _ => false,
                };
                head.completed += 1;
                write
            }
            _ => false,
        }
    }

    fn complete_extended(&mut self) {
        if self.owed.front().is_some_and(|o| o.request.is_extended()) {
            self.pop();
        }
    }
}

#[cfg(test)]
mod tests;
