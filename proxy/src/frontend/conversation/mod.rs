//! One client's conversation with its server, as the proxy takes part in it: a state
//! machine that does no I/O. The relay ([`super::relay`]) owns the sockets and buffers;
//! it hands the conversation the frames that arrived from either side, and the
//! conversation writes what to send into the relay's output buffers ([`Out`]) and returns
//! what must run before anything else ([`Action`]: ending a transaction the proxy opened,
//! pushing before a client's COMMIT). Those run on the client's upstream connection
//! through the [`Upstream`](crate::backend::statements::Upstream) trait and reach
//! Salesforce through [`Remote`](crate::push::commit::Remote), so every rule
//! here can be driven from scripted frames (see `tests`).
//!
//! What it keeps: the client's prepared statements and portals ([`prepared`]), what the
//! server still owes and to whom ([`Replies`]), the transaction as the proxy sees it, the
//! replies of a managed unit held back until its push decides ([`held`]), and a query
//! string split at its COMMITs ([`steps`]). [`client`] decides what each client message
//! needs (forward it, open a transaction first, intercept a COMMIT); [`server`] routes each
//! server message by the reply it answers; [`actions`] runs the commit protocol
//! ([`crate::push::commit`]) and answers the client as PostgreSQL would have.
//!
//! The interface: [`Conversation::on_client_input`] and [`Conversation::on_server_input`]
//! take the whole frames at the head of the relay's input buffers (each one through
//! [`Conversation::on_client_frame`] or [`Conversation::on_server_frame`]), and return the
//! action to run, if any; [`Conversation::perform`] runs it, and
//! [`Conversation::answer`] writes what the client is told.

mod actions;
mod client;
mod held;
mod prepared;
mod returning;
mod server;
mod steps;
#[cfg(test)]
mod tests;

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::BytesMut;
use tracing::Span;

use super::cancel::CancelSignal;
use super::replies::Replies;
use crate::classify::cache::TextCache;
use crate::net::messages::backend::TransactionStatus;
use crate::push::commit::Committer;

pub use self::actions::{Action, Answer};
pub use self::client::Took;
use self::held::Held;
use self::prepared::{ByName, Portal, Statement};
use self::steps::Step;

/// Where the conversation's bytes go; the relay writes them to the sockets.
#[derive(Debug)]
pub struct Out<'a> {
    /// Towards the server.
    pub server: &'a mut BytesMut,
    /// Towards the client.
    pub client: &'a mut BytesMut,
}

/// The current transaction as the proxy sees it.
#[derive(Debug, Default, Clone, Copy)]
struct Tx {
    /// The proxy opened it around an autocommit statement that may write, and will end it.
    managed: bool,
    /// A statement that may write has run in it: its COMMIT must push first.
    may_write: bool,
}

/// One client's conversation with its server.
#[derive(Debug)]
pub struct Conversation {
    texts: TextCache,
    statements: ByName<Statement>,
    portals: ByName<Portal>,
    replies: Replies,

    /// The transaction status of the server's last ReadyForQuery.
    status: TransactionStatus,
    tx: Tx,
    /// Within an extended-protocol unit (up to Sync): whether the client is in a
    /// transaction block after the BEGIN, COMMIT or ROLLBACK it sent in this unit, if any.
    unit_block: Option<bool>,
    /// An ErrorResponse reached the client since the last ReadyForQuery.
    unit_error: bool,
    /// A Flush has been sent since the last message that owes a reply.
    flushed: bool,
    /// A sent request's ReadyForQuery must be acted on before anything else is sent.
    barrier: bool,
    /// What must run next, with the upstream connection to itself.
    action: Option<Action>,
    /// Replies of a managed unit, held back until its push decides what the client sees.
    held: Option<Held>,
    /// The remaining steps of a query string split at its COMMITs.
    steps: VecDeque<Step>,
    /// The proxy answered a COMMIT inside an extended-protocol unit with an error: the rest
    /// of the unit is dropped up to its Sync, as the server would have skipped it.
    skip_to_sync: bool,
    /// The client sent Terminate: the relay forwards what is left, then closes.
    terminating: bool,
    /// The client's COMMIT went to the server after its push reached Salesforce: an error
    /// answering it is told as what it is, Salesforce holding what the server rolled back.
    commit_after_push: bool,
    /// The session's pushes.
    committer: Committer,
    /// The session's span, entered where the conversation logs.
    span: Span,
}

impl Conversation {
    /// The conversation of the client at `peer`, which logs in `span`. It starts when the
    /// server is ready for queries ([`Conversation::started`]).
    pub fn new(peer: SocketAddr, span: Span) -> Self {
        Conversation {
            texts: TextCache::default(),
            statements: ByName::default(),
            portals: ByName::default(),
            replies: Replies::default(),
            status: TransactionStatus::Idle,
            tx: Tx::default(),
            unit_block: None,
            unit_error: false,
            flushed: false,
            barrier: false,
            action: None,
            held: None,
            steps: VecDeque::new(),
            skip_to_sync: false,
            terminating: false,
            commit_after_push: false,
            committer: Committer::new(peer),
            span,
        }
    }

    /// Authentication is done: the server is ready for queries, with `status`.
    pub fn started(&mut self, status: TransactionStatus) {
        self.status = status;
    }

    /// The client's cancel key is known: `pid`, and the signal its CancelRequest raises,
    /// which stops a push under way.
    pub fn cancelled_by(&mut self, pid: i32, signal: Arc<CancelSignal>) {
        self.committer.cancelled_by(pid, signal);
    }

    /// The client sent Terminate: nothing more of its input is taken.
    pub fn terminating(&self) -> bool {
        self.terminating
    }

    /// Between statements and outside any transaction, with nothing owed either way (as
    /// far as the conversation knows: the relay checks its buffers): the point where a
    /// stopping proxy may close the session and lose nothing.
    pub fn at_rest(&self) -> bool {
        self.status == TransactionStatus::Idle
            && !self.tx.managed
            && self.replies.is_empty()
            && self.action.is_none()
            && self.held.is_none()
            && self.steps.is_empty()
            && !self.barrier
            && !self.skip_to_sync
    }

    /// Stops holding back: what was held goes to the client as it is.
    pub fn release_held(&mut self, client: &mut BytesMut) {
        if let Some(held) = self.held.take() {
            client.extend_from_slice(&held.replies);
        }
    }
}
