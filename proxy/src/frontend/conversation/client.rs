//! Client messages: what each needs before it goes upstream.
//!
//! Reads in autocommit, and everything inside a transaction the client opened, go straight
//! through. A statement that may write in autocommit gets a transaction the proxy opens
//! first (an injected BEGIN), which the proxy ends after pushing; the client's COMMIT of a
//! transaction that may have written waits for the push. Those decisions need the server's
//! true transaction state, so they wait until earlier units have been answered.

use std::sync::Arc;

use bytes::{Buf, Bytes, BytesMut};

use super::actions::{Action, Commit};
use super::held::Held;
use super::prepared::Statement;
use super::steps::{Step, in_implicit_transaction, plan_steps};
use super::{Conversation, Out};
use crate::classify::{self, Classified, Kind};
use crate::error::SessionError;
use crate::frontend::replies::{OnReady, Owed, Request, Writes};
use crate::net::frame::{Frame, body, frame_at, reserve_partial};
use crate::net::messages::backend::TransactionStatus;
use crate::net::messages::encode;
use crate::net::messages::frontend as fe;

/// The proxy's prepared BEGIN, and its portal.
const BEGIN_STATEMENT: &str = "__sfpg_begin";

/// What became of a client frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Took {
    Consumed,
    /// Not yet: it stays in the input until the server has answered what came before.
    Wait,
}

impl Conversation {
    /// Takes the client's complete frames from the head of `input`, until they run out,
    /// one has to wait, or an action must run first: that action is returned.
    pub fn on_client_input(
        &mut self,
        input: &mut BytesMut,
        out: &mut Out<'_>,
    ) -> Result<Option<Action>, SessionError> {
        let mut pos = 0;
        let outcome = loop {
            if self.action.is_some() || self.terminating {
                break Ok(());
            }
            if self.barrier {
                // Only what the running statement needs gets past: COPY data. And Terminate.
                match frame_at(&input[pos..]) {
                    Ok(Frame::Complete { tag, len })
                        if matches!(
                            tag,
                            fe::COPY_DATA | fe::COPY_DONE | fe::COPY_FAIL | fe::TERMINATE
                        ) =>
                    {
                        self.terminating |= tag == fe::TERMINATE;
                        self.forward_copy(&input[pos..pos + len], out);
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
                if let Err(error) = self.next_step(out) {
                    break Err(error);
                }
                continue;
            }
            let len = match frame_at(&input[pos..]) {
                Ok(Frame::Complete { len, .. }) => len,
                Ok(_) => break Ok(()),
                Err(error) => break Err(error.into()),
            };
            match self.on_client_frame(&input[pos..pos + len], out) {
                Ok(Took::Consumed) => pos += len,
                Ok(Took::Wait) => break Ok(()),
                Err(error) => break Err(error),
            }
        };
        input.advance(pos);
        reserve_partial(input);
        outcome.map(|()| self.action.take())
    }

    /// One whole client message (tag, length and body), once no earlier request holds the
    /// client back ([`Conversation::on_client_input`] checks).
    pub fn on_client_frame(
        &mut self,
        frame: &[u8],
        out: &mut Out<'_>,
    ) -> Result<Took, SessionError> {
        let tag = frame.first().copied().unwrap_or_default();
        if self.skip_to_sync {
            if tag == fe::SYNC {
                self.skip_to_sync = false;
                return Ok(self.on_sync(frame, out));
            }
            return Ok(Took::Consumed);
        }
        match tag {
            fe::QUERY => self.on_query(frame, out),
            fe::PARSE => self.on_parse(frame, out),
            fe::BIND => {
                let bind = fe::Bind::decode(body(frame))?;
                // A statement the proxy never saw prepared fails on the server anyway;
                // "may write" keeps even that inside a managed transaction.
                let classified = self
                    .statements
                    .get(bind.statement)
                    .map_or_else(|| Arc::new(unknown()), |s| Arc::clone(&s.classified));
                self.portals.bind(bind.portal, bind.statement, classified);
                self.forward(frame, Some(Owed::client(Request::Bind)), out);
                Ok(Took::Consumed)
            }
            fe::EXECUTE => self.on_execute(frame, out),
            fe::SYNC => Ok(self.on_sync(frame, out)),
            fe::CLOSE => {
                match fe::Target::decode(body(frame), "Close")? {
                    fe::Target::Statement(name) => self.statements.remove(name),
                    fe::Target::Portal(name) => self.portals.remove(name),
                }
                self.forward(frame, Some(Owed::client(Request::Close)), out);
                Ok(Took::Consumed)
            }
            fe::DESCRIBE => {
                let target = fe::Target::decode(body(frame), "Describe")?;
                let mut owed = Owed::client(Request::Describe);
                if let fe::Target::Statement(name) = target {
                    owed.statement = Some(name.into());
                }
                self.forward(frame, Some(owed), out);
                Ok(Took::Consumed)
            }
            fe::FLUSH => {
                // The client wants the replies so far, now: nothing may stay held back.
                // (During a COPY's data the server ignores it.)
                if !self.replies.in_copy() {
                    self.release_held(out.client);
                    self.flushed = true;
                }
                self.forward(frame, None, out);
                Ok(Took::Consumed)
            }
            fe::FUNCTION_CALL => {
                self.forward(frame, Some(Owed::client(Request::FunctionCall)), out);
                Ok(Took::Consumed)
            }
            fe::TERMINATE => {
                self.terminating = true;
                self.forward(frame, None, out);
                Ok(Took::Consumed)
            }
            // COPY data, and anything unknown for the server to refuse.
            _ => {
                self.forward_copy(frame, out);
                Ok(Took::Consumed)
            }
        }
    }

    fn on_parse(&mut self, frame: &[u8], out: &mut Out<'_>) -> Result<Took, SessionError> {
        let parse = fe::Parse::decode(body(frame))?;
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
        self.forward(frame, Some(owed), out);
        Ok(Took::Consumed)
    }

    fn on_query(&mut self, frame: &[u8], out: &mut Out<'_>) -> Result<Took, SessionError> {
        if self.tx.managed && self.unit_block.is_some() {
            // PostgreSQL would run the Query in the unit's implicit transaction and commit
            // both; the proxy's transaction around the unit ends at its Sync, with the
            // push. Refused, nothing is pushed and the server rolls the unit back.
            return Err(crate::net::ProtocolError::QueryBeforeSync.into());
        }
        let classified = {
            let query = fe::Query::decode(body(frame))?;
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
            self.forward(frame, Some(Owed::client(Request::Query)), out);
            return Ok(Took::Consumed);
        };
        if !self.replies.is_empty() {
            self.drain(out);
            return Ok(Took::Wait);
        }
        let sql = fe::Query::decode(body(frame))?.sql;
        let written = self.status == TransactionStatus::InBlock && self.tx.may_write;
        self.steps = plan_steps(frame, sql, &classified, written)?.into();
        Ok(Took::Consumed)
    }

    fn on_execute(&mut self, frame: &[u8], out: &mut Out<'_>) -> Result<Took, SessionError> {
        // The description is for rows whose sfid may need filling in (below); without a
        // Describe of the portal, their columns are those of its statement.
        let (kind, description) = {
            let execute = fe::Execute::decode(body(frame))?;
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
                    return Ok(Took::Wait);
                }
                owed.writes = Writes::Execute;
                if !self.in_block() {
                    self.inject_begin(out)?;
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
                    self.release_held(out.client);
                }
                self.unit_block = Some(true);
            }
            Kind::Commit => {
                if self.replies.units_in_flight() > 0 {
                    return Ok(Took::Wait);
                }
                if self.in_block() && self.tx.may_write {
                    if !self.replies.is_empty() {
                        self.drain(out);
                        return Ok(Took::Wait);
                    }
                    if !self.unit_error {
                        let frame = Bytes::copy_from_slice(frame);
                        self.action = Some(Action::PreCommit(Box::new(Commit::Execute(frame))));
                        return Ok(Took::Consumed);
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
        self.forward(frame, Some(owed), out);
        Ok(Took::Consumed)
    }

    fn on_sync(&mut self, frame: &[u8], out: &mut Out<'_>) -> Took {
        if self.replies.in_copy() {
            // Sent during a COPY's data: the server ignores it, and answers the Sync that
            // follows the client's CopyDone.
            self.forward(frame, None, out);
            return Took::Consumed;
        }
        let mut owed = Owed::client(Request::Sync);
        if self.tx.managed {
            owed.on_ready = OnReady::EndManaged {
                last: true,
                query: false,
            };
            self.barrier = true;
        }
        self.forward(frame, Some(owed), out);
        self.unit_block = None;
        Took::Consumed
    }

    /// Sends the next step of a split query string, or hands a COMMIT to the push.
    fn next_step(&mut self, out: &mut Out<'_>) -> Result<(), SessionError> {
        let Some(step) = self.steps.pop_front() else {
            return Ok(());
        };
        if step.commit && self.status == TransactionStatus::InBlock && self.tx.may_write {
            self.action = Some(Action::PreCommit(Box::new(Commit::Query(step))));
            return Ok(());
        }
        self.send_step(step, out)
    }

    /// Sends one step, in a transaction the proxy opens if it writes in autocommit.
    pub(super) fn send_step(&mut self, step: Step, out: &mut Out<'_>) -> Result<(), SessionError> {
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
            self.inject_begin(out)?;
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
                out.server.extend_from_slice(&frame);
                skip_replies = 1;
            }
            None => out.server.extend_from_slice(&step.frame),
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
    fn inject_begin(&mut self, out: &mut Out<'_>) -> Result<(), SessionError> {
        encode::close_statement(out.server, BEGIN_STATEMENT)?;
        encode::parse(out.server, BEGIN_STATEMENT, "BEGIN")?;
        encode::bind(out.server, BEGIN_STATEMENT, BEGIN_STATEMENT, &[])?;
        encode::execute(out.server, BEGIN_STATEMENT)?;
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
    fn drain(&mut self, out: &mut Out<'_>) {
        if self.replies.extended_in_flight() && !self.flushed {
            out.server.extend_from_slice(&[fe::FLUSH, 0, 0, 0, 4]);
            self.flushed = true;
        }
    }

    /// Sends COPY data (or an unknown message) upstream; the end of the client's data is
    /// noted, since the server ignores Sync and Flush before it.
    fn forward_copy(&mut self, frame: &[u8], out: &mut Out<'_>) {
        if matches!(frame.first(), Some(&(fe::COPY_DONE | fe::COPY_FAIL))) {
            self.replies.client_ended_copy();
        }
        self.forward(frame, None, out);
    }

    /// Sends the client's message upstream as it is.
    fn forward(&mut self, frame: &[u8], owed: Option<Owed>, out: &mut Out<'_>) {
        out.server.extend_from_slice(frame);
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
