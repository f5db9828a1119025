//! Client messages: what each needs before it goes upstream.
//!
//! Reads in autocommit, and everything inside a transaction the client opened, go straight
//! through. A statement that may write in autocommit gets a transaction the proxy opens
//! first (an injected BEGIN), which the proxy ends after pushing; the client's COMMIT of a
//! transaction that may have written waits for the push. Those decisions need the server's
//! true transaction state, so they wait until earlier units have been answered.

use std::sync::Arc;

use bytes::{Buf, Bytes};

use super::Session;
use super::actions::{Action, Commit};
use super::held::Held;
use super::prepared::Statement;
use super::steps::{Step, in_implicit_transaction, plan_steps};
use crate::classify::{self, Classified, Kind};
use crate::error::SessionError;
use crate::frontend::replies::{OnReady, Owed, Request, Writes};
use crate::net::frame::{Frame, body, frame_at, reserve_partial};
use crate::net::messages::backend::TransactionStatus;
use crate::net::messages::encode;
use crate::net::messages::frontend as fe;

/// The proxy's prepared BEGIN, and its portal.
const BEGIN_STATEMENT: &str = "__sfpg_begin";

/// What became of a client message.
enum Handled {
    Consumed,
    /// Not yet: it waits in the buffer until the server has answered what came before.
    Wait,
}

fn protocol(error: impl std::fmt::Display) -> SessionError {
    SessionError::Protocol(error.to_string())
}

impl Session {
    /// Handles the client's complete frames, until they run out or one has to wait.
    pub(super) fn pump_client(&mut self) -> Result<(), SessionError> {
        let mut pos = 0;
        let outcome = loop {
            if self.action.is_some() || self.terminating {
                break Ok(());
            }
            if self.barrier {
                // Only what the running statement needs gets past: COPY data. And Terminate.
                match frame_at(&self.client_in[pos..]) {
                    Ok(Frame::Complete { tag, len })
                        if matches!(
                            tag,
                            fe::COPY_DATA | fe::COPY_DONE | fe::COPY_FAIL | fe::TERMINATE
                        ) =>
                    {
                        self.terminating |= tag == fe::TERMINATE;
                        self.forward_copy(tag, pos, len);
                        pos += len;
                        continue;
                    }
                    Ok(_) => break Ok(()),
                    Err(error) => break Err(error.into()),
                }
            }
            if !self.steps.is_empty() {
                if !self.replies.is_empty() {
                    break Ok(());
                }
                if let Err(error) = self.next_step() {
                    break Err(error);
                }
                continue;
            }
            let (tag, len) = match frame_at(&self.client_in[pos..]) {
                Ok(Frame::Complete { tag, len }) => (tag, len),
                Ok(_) => break Ok(()),
                Err(error) => break Err(error.into()),
            };
            match self.on_message(tag, pos, len) {
                Ok(Handled::Consumed) => pos += len,
                Ok(Handled::Wait) => break Ok(()),
                Err(error) => break Err(error),
            }
        };
        self.client_in.advance(pos);
        reserve_partial(&mut self.client_in);
        outcome
    }

    fn on_message(&mut self, tag: u8, pos: usize, len: usize) -> Result<Handled, SessionError> {
        if self.skip_to_sync {
            if tag == fe::SYNC {
                self.skip_to_sync = false;
                return self.on_sync(pos, len);
            }
            return Ok(Handled::Consumed);
        }
        match tag {
            fe::QUERY => self.on_query(pos, len),
            fe::PARSE => self.on_parse(pos, len),
            fe::BIND => {
                let bind =
                    fe::Bind::decode(body(&self.client_in[pos..pos + len])).map_err(protocol)?;
                // A statement the proxy never saw prepared fails on the server anyway;
                // "may write" keeps even that inside a managed transaction.
                let classified = self
                    .statements
                    .get(bind.statement)
                    .map_or_else(|| Arc::new(unknown()), |s| Arc::clone(&s.classified));
                self.portals.bind(bind.portal, bind.statement, classified);
                self.forward(pos, len, Some(Owed::client(Request::Bind)));
                Ok(Handled::Consumed)
            }
            fe::EXECUTE => self.on_execute(pos, len),
            fe::SYNC => self.on_sync(pos, len),
            fe::CLOSE => {
                match fe::Target::decode(body(&self.client_in[pos..pos + len]), "Close")
                    .map_err(protocol)?
                {
                    fe::Target::Statement(name) => self.statements.remove(name),
                    fe::Target::Portal(name) => self.portals.remove(name),
                }
                self.forward(pos, len, Some(Owed::client(Request::Close)));
                Ok(Handled::Consumed)
            }
            fe::DESCRIBE => {
                let target = fe::Target::decode(body(&self.client_in[pos..pos + len]), "Describe")
                    .map_err(protocol)?;
                let mut owed = Owed::client(Request::Describe);
                if let fe::Target::Statement(name) = target {
                    owed.statement = Some(name.into());
                }
                self.forward(pos, len, Some(owed));
                Ok(Handled::Consumed)
            }
            fe::FLUSH => {
                // The client wants the replies so far, now: nothing may stay held back.
                // (During a COPY's data the server ignores it.)
                if !self.replies.in_copy() {
                    self.release_held();
                    self.flushed = true;
                }
                self.forward(pos, len, None);
                Ok(Handled::Consumed)
            }
            fe::FUNCTION_CALL => {
                self.forward(pos, len, Some(Owed::client(Request::FunctionCall)));
                Ok(Handled::Consumed)
            }
            fe::TERMINATE => {
                self.terminating = true;
                self.forward(pos, len, None);
                Ok(Handled::Consumed)
            }
            // COPY data, and anything unknown for the server to refuse.
            _ => {
                self.forward_copy(tag, pos, len);
                Ok(Handled::Consumed)
            }
        }
    }

    fn on_parse(&mut self, pos: usize, len: usize) -> Result<Handled, SessionError> {
        let parse = fe::Parse::decode(body(&self.client_in[pos..pos + len])).map_err(protocol)?;
        let classified = self.texts.classify(parse.sql);
        self.statements.insert(
            parse.statement,
            Statement {
                classified,
                description: None,
            },
        );
        let mut owed = Owed::client(Request::Parse);
        if !parse.statement.is_empty() && self.held.is_some() {
            // Should a refusal drop its ParseComplete, the statement must go too.
            owed.statement = Some(parse.statement.into());
        }
        self.forward(pos, len, Some(owed));
        Ok(Handled::Consumed)
    }

    fn on_query(&mut self, pos: usize, len: usize) -> Result<Handled, SessionError> {
        let classified = {
            let query =
                fe::Query::decode(body(&self.client_in[pos..pos + len])).map_err(protocol)?;
            // A plain query the proxy has nothing to do for is decided by its kind alone:
            // its text, usually new each time, is neither classified in full nor cached.
            if classify::plain_kind(query.sql).is_some_and(|kind| !acted_on(kind)) {
                None
            } else {
                Some(self.texts.classify(query.sql))
                    .filter(|classified| classified.statements.iter().any(|s| acted_on(s.kind)))
            }
        };
        let Some(classified) = classified else {
            self.forward(pos, len, Some(Owed::client(Request::Query)));
            return Ok(Handled::Consumed);
        };
        if !self.replies.is_empty() {
            self.drain();
            return Ok(Handled::Wait);
        }
        let frame = &self.client_in[pos..pos + len];
        let sql = fe::Query::decode(body(frame)).map_err(protocol)?.sql;
        let written = self.status == TransactionStatus::InBlock && self.tx.may_write;
        self.steps = plan_steps(frame, sql, &classified, written)?.into();
        Ok(Handled::Consumed)
    }

    fn on_execute(&mut self, pos: usize, len: usize) -> Result<Handled, SessionError> {
        // The description is for rows whose sfid may need filling in (below); without a
        // Describe of the portal, their columns are those of its statement.
        let (kind, description) = {
            let execute =
                fe::Execute::decode(body(&self.client_in[pos..pos + len])).map_err(protocol)?;
            match self.portals.get(execute.portal) {
                Some(portal) => (
                    portal.classified.single_kind(),
                    self.statements
                        .get(&portal.statement)
                        .and_then(|statement| statement.description.clone()),
                ),
                None => (Kind::MayWrite, None),
            }
        };
        let mut owed = Owed::client(Request::Execute);
        match kind {
            Kind::Read => {}
            Kind::MayWrite => {
                if self.replies.units_in_flight() > 0 {
                    return Ok(Handled::Wait);
                }
                owed.writes = Writes::Execute;
                if !self.in_block() {
                    self.inject_begin()?;
                    self.tx.managed = true;
                    self.held = Some(Held::default());
                    self.unit_block = Some(true);
                }
                self.tx.may_write = true;
            }
            Kind::Begin => {
                if self.tx.managed {
                    // The client turns the transaction the proxy opened into its own.
                    owed.begin_warnings = 1;
                    self.tx.managed = false;
                    self.release_held();
                }
                self.unit_block = Some(true);
            }
            Kind::Commit => {
                if self.replies.units_in_flight() > 0 {
                    return Ok(Handled::Wait);
                }
                if self.in_block() && self.tx.may_write {
                    if !self.replies.is_empty() {
                        self.drain();
                        return Ok(Handled::Wait);
                    }
                    if !self.unit_error {
                        let frame = Bytes::copy_from_slice(&self.client_in[pos..pos + len]);
                        self.action = Some(Action::PreCommit(Commit::Execute(frame)));
                        return Ok(Handled::Consumed);
                    }
                    // After an error the server skips this COMMIT; let it.
                }
                self.unit_block = Some(false);
            }
            Kind::Rollback => self.unit_block = Some(false),
        }
        if let Some(held) = &mut self.held {
            held.executes.push(description);
        }
        self.forward(pos, len, Some(owed));
        Ok(Handled::Consumed)
    }

    fn on_sync(&mut self, pos: usize, len: usize) -> Result<Handled, SessionError> {
        if self.replies.in_copy() {
            // Sent during a COPY's data: the server ignores it, and answers the Sync that
            // follows the client's CopyDone.
            self.forward(pos, len, None);
            return Ok(Handled::Consumed);
        }
        let mut owed = Owed::client(Request::Sync);
        if self.tx.managed {
            owed.on_ready = OnReady::EndManaged {
                last: true,
                query: false,
            };
            self.barrier = true;
        }
        self.forward(pos, len, Some(owed));
        self.unit_block = None;
        Ok(Handled::Consumed)
    }

    /// Sends the next step of a split query string, or hands a COMMIT to the push.
    fn next_step(&mut self) -> Result<(), SessionError> {
        let Some(step) = self.steps.pop_front() else {
            return Ok(());
        };
        if step.commit && self.status == TransactionStatus::InBlock && self.tx.may_write {
            self.action = Some(Action::PreCommit(Commit::Query(step)));
            return Ok(());
        }
        self.send_step(step)
    }

    /// Sends one step, in a transaction the proxy opens if it writes in autocommit.
    pub(super) fn send_step(&mut self, step: Step) -> Result<(), SessionError> {
        let mut block = self.status != TransactionStatus::Idle;
        let mut opened = false;
        let mut handed_over = false;
        let mut begin_warnings = 0;
        for kind in &step.kinds {
            match kind {
                Kind::MayWrite => {
                    if !block {
                        opened = true;
                        block = true;
                    }
                    self.tx.may_write = true;
                }
                Kind::Begin => {
                    if opened && !handed_over {
                        // PostgreSQL would quietly make the implicit transaction explicit;
                        // in the proxy's transaction the BEGIN draws a warning to drop.
                        begin_warnings = 1;
                        handed_over = true;
                    }
                    block = true;
                }
                Kind::Rollback if opened && !handed_over => {
                    // The client rolls back what it wrote in autocommit: nothing to push,
                    // so no transaction of the proxy's (PostgreSQL warns about this
                    // ROLLBACK, which it would not inside an explicit transaction).
                    opened = false;
                    block = false;
                }
                Kind::Commit | Kind::Rollback => block = false,
                Kind::Read => {}
            }
        }
        let managed = opened && !handed_over;
        if opened {
            self.inject_begin()?;
        }
        if managed {
            self.held = Some(Held::default());
        }
        self.tx.managed = managed;
        let on_ready = if managed {
            OnReady::EndManaged {
                last: step.last,
                query: true,
            }
        } else if step.last {
            OnReady::Forward
        } else {
            OnReady::Step
        };
        self.barrier = on_ready != OnReady::Forward;
        let mut skip_replies = 0;
        let implicit_commit =
            (step.commit && step.implicit && self.status == TransactionStatus::Idle)
                .then(|| in_implicit_transaction(&step.frame))
                .flatten();
        match implicit_commit {
            Some(frame) => {
                self.server_out.extend_from_slice(&frame);
                skip_replies = 1;
            }
            None => self.server_out.extend_from_slice(&step.frame),
        }
        let writes = if managed {
            Writes::Query(step.kinds.iter().map(|k| *k == Kind::MayWrite).collect())
        } else {
            Writes::None
        };
        self.replies.push(Owed {
            on_ready,
            begin_warnings,
            skip_replies,
            writes,
            ..Owed::client(Request::Query)
        });
        self.flushed = false;
        Ok(())
    }

    /// Whether the client is in a transaction block at this point of the current unit.
    /// Meaningful once earlier units have been answered.
    fn in_block(&self) -> bool {
        self.unit_block
            .unwrap_or(self.status != TransactionStatus::Idle)
    }

    /// Opens the proxy's transaction: BEGIN through a named statement and portal, so
    /// that neither the client's unnamed statement nor its unnamed portal is touched.
    fn inject_begin(&mut self) -> Result<(), SessionError> {
        encode::close_statement(&mut self.server_out, BEGIN_STATEMENT)?;
        encode::parse(&mut self.server_out, BEGIN_STATEMENT, "BEGIN")?;
        encode::bind(&mut self.server_out, BEGIN_STATEMENT, BEGIN_STATEMENT, &[])?;
        encode::execute(&mut self.server_out, BEGIN_STATEMENT)?;
        for request in [
            Request::Close,
            Request::Parse,
            Request::Bind,
            Request::Execute,
        ] {
            self.replies.push(Owed::ours(request));
        }
        Ok(())
    }

    /// Makes the server answer what it owes: extended-protocol replies wait for a Flush.
    fn drain(&mut self) {
        if self.replies.extended_in_flight() && !self.flushed {
            self.server_out.extend_from_slice(&[fe::FLUSH, 0, 0, 0, 4]);
            self.flushed = true;
        }
    }

    /// Sends COPY data (or an unknown message) upstream; the end of the client's data is
    /// noted, since the server ignores Sync and Flush before it.
    fn forward_copy(&mut self, tag: u8, pos: usize, len: usize) {
        if matches!(tag, fe::COPY_DONE | fe::COPY_FAIL) {
            self.replies.client_ended_copy();
        }
        self.forward(pos, len, None);
    }

    /// Sends the client's message at `pos` upstream as it is.
    fn forward(&mut self, pos: usize, len: usize, owed: Option<Owed>) {
        self.server_out
            .extend_from_slice(&self.client_in[pos..pos + len]);
        if let Some(owed) = owed {
            self.replies.push(owed);
            self.flushed = false;
        }
    }
}

/// Whether a Query with a statement of this kind needs the proxy: a possible write, or a
/// COMMIT that may have to push first. Anything else passes straight through.
fn acted_on(kind: Kind) -> bool {
    matches!(kind, Kind::MayWrite | Kind::Commit)
}

/// What a statement the proxy never saw prepared is taken for.
pub(super) fn unknown() -> Classified {
    Classified {
        statements: vec![crate::classify::Statement {
            range: 0..0,
            kind: Kind::MayWrite,
        }],
    }
}
