//! One client session: its own upstream connection, the relayed authentication exchange,
//! then a full-duplex relay of whole frames, with the proxy's own transaction handling
//! woven in where a statement may write.
//!
//! The relay never blocks one direction on the other: one poll function ([`Session::poll_io`])
//! writes what is pending to both sockets and reads from both, and stops reading a side only
//! while the buffer towards the other side is full. A client that pipelines many queries
//! without reading while the server answers them would otherwise deadlock the two. Written
//! by hand rather than with `select!` over split halves: a select builds its futures and
//! picks a random branch order on every turn, and split halves lock on every poll, which at
//! a few microseconds per query was a measurable share of the proxy's cost.
//!
//! The parts: [`client`] decides what each client message needs (forward it, open a
//! transaction first, intercept a COMMIT), with [`steps`] splitting a query string at its
//! COMMITs; [`server`] routes each server message by the reply it answers; [`held`] keeps a
//! managed unit's replies until its push decides; [`actions`] are what runs with the
//! upstream connection to itself (push at commit); [`internal`] runs the proxy's own
//! statements; [`inbound`] bounds what the session holds of the client's input.

mod actions;
mod client;
mod held;
mod inbound;
mod internal;
mod prepared;
mod returning;
mod server;
mod steps;

use std::collections::VecDeque;
use std::future::{Future, poll_fn};
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio_postgres::error::SqlState;
use tokio_util::io::poll_read_buf;
use tokio_util::sync::WaitForCancellationFutureOwned;
use tracing::{Instrument, Span};

use super::admission::AuthDeadline;
use super::cancel::Registration;
use super::refusal::tell_client;
use super::replies::Replies;
use crate::backend::UpstreamStream;
use crate::classify::cache::TextCache;
use crate::error::SessionError;
use crate::frontend::startup::with_proxy_origin;
use crate::net::frame::{body, peek_frame};
use crate::net::messages::backend::{self as be, BackendKey, TransactionStatus};
use crate::net::messages::encode;
use crate::net::messages::frontend as fe;
use crate::net::stream::ClientStream;
use crate::server::Shared;

use self::actions::Action;
use self::held::Held;
use self::prepared::{ByName, Portal, Statement};
use self::steps::Step;

/// Past this many bytes waiting for one side, the relay stops reading from the other.
const HIGH_WATER: usize = 1 << 20;

/// Authentication requests that the client must answer with one message.
fn expects_client_answer(code: i32) -> bool {
    // 3 cleartext, 5 MD5, 7 GSS, 8 GSS continue, 9 SSPI, 10 SASL, 11 SASL continue.
    matches!(code, 3 | 5 | 7..=11)
}

/// The current transaction as the proxy sees it.
#[derive(Debug, Default, Clone, Copy)]
struct Tx {
    /// The proxy opened it around an autocommit statement that may write, and will end it.
    managed: bool,
    /// A statement that may write has run in it: its COMMIT must push first.
    may_write: bool,
}

pub struct Session {
    shared: Arc<Shared>,
    /// Resolves when the proxy starts stopping. Polled once, which registers the session
    /// task's waker; after that the relay reads the flag `has_started` instead, which
    /// takes no lock (see [`crate::server::Draining`]).
    draining: Pin<Box<WaitForCancellationFutureOwned>>,
    /// `draining` has been polled once.
    draining_armed: bool,
    /// The proxy is stopping: close at the first point at rest.
    drained: bool,
    client: ClientStream,
    server: UpstreamStream,
    /// The client stream may hold written bytes back (TLS records) until flushed.
    client_unflushed: bool,
    /// The session's span. It is entered around what logs (actions, errors), not on every
    /// poll of the relay: entering a span takes the subscriber's locks.
    span: Span,
    client_in: BytesMut,
    /// How much of `client_in` has been checked against the limits: whole messages
    /// ([`inbound`]).
    client_checked: usize,
    /// The relay reads from the client while `client_in` is shorter than this.
    client_in_limit: usize,
    client_out: BytesMut,
    server_in: BytesMut,
    server_out: BytesMut,
    registration: Option<Registration>,
    /// The client sent Terminate: forward what is left, then close.
    terminating: bool,

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
    /// Whether this database has the capture functions (migration V3); checked until found.
    capture_installed: bool,
    /// Records the current push created, for `RETURNING sfid`.
    created: Vec<crate::push::Created>,
    /// The client's address, for logs and the write journal.
    peer: SocketAddr,
}

/// What ended a wait of the relay for its sockets.
enum Woke {
    /// Bytes arrived from the client or the server (or both).
    Read,
    /// Only writes made progress, and the relay waits for its output to drain.
    Wrote,
    /// The proxy started stopping.
    Draining,
    /// The server closed its end.
    ServerClosed,
}

/// Runs a session that opened with `startup`, until either side ends it. Authentication
/// must be done by `deadline`.
pub async fn run(
    shared: Arc<Shared>,
    mut client: ClientStream,
    startup: Bytes,
    client_in: BytesMut,
    peer: SocketAddr,
    span: Span,
    deadline: AuthDeadline,
) -> Result<(), SessionError> {
    let startup = match with_proxy_origin(&startup) {
        Ok(startup) => startup,
        Err(error) => return Err(tell_client(&mut client, &mut BytesMut::new(), error).await),
    };
    let connected = deadline
        .within(async { Ok(shared.upstream.connect().await) })
        .await;
    let upstream = match connected {
        Ok(Ok(upstream)) => upstream,
        Err(error) => return Err(tell_client(&mut client, &mut BytesMut::new(), error).await),
        Ok(Err(source)) => {
            // Tell the client in its own protocol, as a server that cannot start a backend
            // would, then give up.
            let mut out = BytesMut::new();
            encode::error_response(
                &mut out,
                vec![
                    (b'S', "FATAL".into()),
                    (b'V', "FATAL".into()),
                    (b'C', SqlState::CONNECTION_FAILURE.code().into()),
                    (
                        b'M',
                        format!("sfpg proxy: cannot connect to the database server: {source}"),
                    ),
                ],
            )?;
            let _ = client.write_all(&out).await;
            return Err(SessionError::Connect {
                addr: shared.upstream.to_string(),
                source,
            });
        }
    };
    let mut session = Session {
        draining: Box::pin(shared.draining.wait()),
        draining_armed: false,
        drained: false,
        shared,
        client,
        server: upstream,
        client_unflushed: false,
        span,
        client_in,
        client_checked: 0,
        client_in_limit: HIGH_WATER,
        client_out: BytesMut::with_capacity(8192),
        server_in: BytesMut::with_capacity(8192),
        server_out: BytesMut::with_capacity(8192),
        registration: None,
        terminating: false,
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
        capture_installed: false,
        created: Vec::new(),
        peer,
    };
    session.server_out.extend_from_slice(&startup);
    match deadline.within(session.authenticate()).await {
        Ok(true) => {}
        Ok(false) => return Ok(()),
        Err(error) => return Err(session.tell_client(error).await),
    }
    match session.relay().await {
        Err(error) => Err(session.tell_client(error).await),
        ended => ended,
    }
}

impl Session {
    /// Relays the authentication exchange. Returns whether the session is ready for
    /// queries (false: the server refused and has closed).
    async fn authenticate(&mut self) -> Result<bool, SessionError> {
        self.flush_server().await?;
        loop {
            let (tag, frame) = self.read_server_frame().await?;
            match tag {
                be::AUTHENTICATION => {
                    let code = be::decode_authentication_code(body(&frame))
                        .map_err(|e| SessionError::Protocol(e.to_string()))?;
                    self.client_out.extend_from_slice(&frame);
                    self.flush_client().await?;
                    if expects_client_answer(code) {
                        let (tag, answer) = self.read_client_frame().await?;
                        if tag != fe::PASSWORD {
                            return Err(SessionError::Protocol(format!(
                                "expected a password message, got message type {:?}",
                                char::from(tag)
                            )));
                        }
                        self.server_out.extend_from_slice(&answer);
                        self.flush_server().await?;
                    }
                }
                be::BACKEND_KEY_DATA => {
                    let upstream = BackendKey::decode(body(&frame))
                        .map_err(|e| SessionError::Protocol(e.to_string()))?;
                    let registration = self.shared.cancels.register(upstream);
                    encode::backend_key_data(
                        &mut self.client_out,
                        registration.pid(),
                        registration.secret(),
                    )?;
                    self.registration = Some(registration);
                }
                be::ERROR_RESPONSE => {
                    // A refused login: the server closes after this.
                    self.client_out.extend_from_slice(&frame);
                    self.flush_client().await?;
                    return Ok(false);
                }
                be::READY_FOR_QUERY => {
                    self.status = TransactionStatus::decode_ready_for_query(body(&frame))
                        .map_err(|e| SessionError::Protocol(e.to_string()))?;
                    self.client_out.extend_from_slice(&frame);
                    self.flush_client().await?;
                    return Ok(true);
                }
                be::PARAMETER_STATUS | be::NOTICE_RESPONSE | be::NEGOTIATE_PROTOCOL_VERSION => {
                    self.client_out.extend_from_slice(&frame);
                }
                other => {
                    return Err(SessionError::Protocol(format!(
                        "unexpected message type {:?} from the server during startup",
                        char::from(other)
                    )));
                }
            }
        }
    }

    /// The relay proper, until Terminate or either side closes.
    async fn relay(&mut self) -> Result<(), SessionError> {
        loop {
            self.pump_server()?;
            if let Some(action) = self.action.take() {
                self.perform_in_span(action).await?;
                continue;
            }
            self.pump_client_checked()?;
            if let Some(action) = self.action.take() {
                self.perform_in_span(action).await?;
                continue;
            }
            if self.settle_client_in() {
                continue;
            }
            if self.terminating && self.server_out.is_empty() {
                let _ = self.server.shutdown().await;
                self.flush_client().await?;
                return Ok(());
            }
            if self.drained && self.at_rest() {
                return self.close_for_shutdown().await;
            }
            match poll_fn(|cx| self.poll_io(cx)).await? {
                Woke::Read | Woke::Wrote => {}
                // Wakes the session once when the proxy starts stopping; from then on it
                // closes at the first safe point the loop reaches.
                Woke::Draining => self.drained = true,
                Woke::ServerClosed => {
                    // Whatever the server said last (often a FATAL error) still goes to the
                    // client.
                    self.pump_server()?;
                    self.release_held();
                    self.flush_client().await?;
                    return Err(SessionError::ServerClosed);
                }
            }
        }
    }

    /// Runs `action` inside the session's span, so that what it logs names the session.
    async fn perform_in_span(&mut self, action: Action) -> Result<(), SessionError> {
        let span = self.span.clone();
        self.perform(action).instrument(span).await
    }

    /// Writes what is pending towards both sides, then reads from both; ready once a read
    /// brought bytes (or an end), or once writing is all the loop waits for.
    fn poll_io(&mut self, cx: &mut Context<'_>) -> Poll<Result<Woke, SessionError>> {
        let wrote = self.poll_write_out(cx)?;
        let mut read = false;
        // From the client, no further than `client_in_limit` ([`inbound`]).
        if !self.terminating
            && self.server_out.len() < HIGH_WATER
            && let Some(room) = self.client_in_limit.checked_sub(self.client_in.len())
            && room > 0
            && let Poll::Ready(n) = poll_read_buf(
                Pin::new(&mut self.client),
                cx,
                &mut (&mut self.client_in).limit(room),
            )?
        {
            if n == 0 {
                return Poll::Ready(Err(SessionError::ClientClosed));
            }
            read = true;
        }
        if self.client_out.len() < HIGH_WATER
            && let Poll::Ready(n) =
                poll_read_buf(Pin::new(&mut self.server), cx, &mut self.server_in)?
        {
            if n == 0 {
                return Poll::Ready(Ok(Woke::ServerClosed));
            }
            read = true;
        }
        if read {
            return Poll::Ready(Ok(Woke::Read));
        }
        // The loop decides on these once the output has drained; otherwise a write alone
        // gives it nothing new to do.
        if wrote && (self.terminating || self.drained) {
            return Poll::Ready(Ok(Woke::Wrote));
        }
        if !self.drained {
            let started = if self.draining_armed {
                self.shared.draining.has_started()
            } else {
                self.draining_armed = true;
                self.draining.as_mut().poll(cx).is_ready()
            };
            if started {
                return Poll::Ready(Ok(Woke::Draining));
            }
        }
        Poll::Pending
    }

    /// Writes as much of both output buffers as the sockets take now. Returns whether
    /// anything was written.
    fn poll_write_out(&mut self, cx: &mut Context<'_>) -> Result<bool, SessionError> {
        let to_server = write_now(Pin::new(&mut self.server), cx, &mut self.server_out)?;
        let to_client = write_now(Pin::new(&mut self.client), cx, &mut self.client_out)?;
        self.client_unflushed |= to_client > 0;
        if self.client_unflushed
            && self.client_out.is_empty()
            && let Poll::Ready(()) = Pin::new(&mut self.client).poll_flush(cx)?
        {
            self.client_unflushed = false;
        }
        Ok(to_server + to_client > 0)
    }

    /// Between statements and outside any transaction, with nothing owed either way: the
    /// point where a stopping proxy may close the session and lose nothing.
    fn at_rest(&self) -> bool {
        self.status == TransactionStatus::Idle
            && !self.tx.managed
            && self.replies.is_empty()
            && self.action.is_none()
            && self.held.is_none()
            && self.steps.is_empty()
            && !self.barrier
            && !self.skip_to_sync
            && self.client_in.is_empty()
            && self.server_out.is_empty()
    }

    /// Ends the session as a PostgreSQL server that is shutting down does: FATAL 57P01 to
    /// the client, and Terminate to the server.
    async fn close_for_shutdown(&mut self) -> Result<(), SessionError> {
        encode::error_response(
            &mut self.client_out,
            vec![
                (b'S', "FATAL".into()),
                (b'V', "FATAL".into()),
                (b'C', SqlState::ADMIN_SHUTDOWN.code().into()),
                (
                    b'M',
                    "terminating connection due to administrator command".into(),
                ),
            ],
        )?;
        self.flush_client().await?;
        let _ = self.client.shutdown().await;
        self.server_out
            .extend_from_slice(&[fe::TERMINATE, 0, 0, 0, 4]);
        self.flush_server().await?;
        let _ = self.server.shutdown().await;
        self.span
            .in_scope(|| tracing::debug!("session closed: the proxy is stopping"));
        Ok(())
    }

    /// Stops holding back: what was held goes to the client as it is.
    fn release_held(&mut self) {
        if let Some(held) = self.held.take() {
            self.client_out.extend_from_slice(&held.replies);
        }
    }

    async fn read_server_frame(&mut self) -> Result<(u8, BytesMut), SessionError> {
        loop {
            if let Some((tag, len)) = peek_frame(&mut self.server_in)? {
                return Ok((tag, self.server_in.split_to(len)));
            }
            if self.server.read_buf(&mut self.server_in).await? == 0 {
                return Err(SessionError::ServerClosed);
            }
        }
    }

    async fn flush_server(&mut self) -> Result<(), SessionError> {
        self.server.write_all_buf(&mut self.server_out).await?;
        Ok(())
    }

    async fn flush_client(&mut self) -> Result<(), SessionError> {
        self.client.write_all_buf(&mut self.client_out).await?;
        self.client.flush().await?;
        self.client_unflushed = false;
        Ok(())
    }
}

/// Writes from `buf` until it is empty or `stream` would block (which registers the waker
/// for writability). Returns how many bytes went out.
///
/// A plain write, not a vectored one: `buf` is one contiguous slice, and on Linux `send`
/// takes a shorter path through the kernel than `writev` (issue 6's profile: the copy
/// into the socket alone cost several times more through `writev`).
fn write_now<S: AsyncWrite + Unpin>(
    mut stream: Pin<&mut S>,
    cx: &mut Context<'_>,
    buf: &mut BytesMut,
) -> io::Result<usize> {
    let mut written = 0;
    while !buf.is_empty() {
        match stream.as_mut().poll_write(cx, buf)? {
            Poll::Ready(0) => return Err(io::ErrorKind::WriteZero.into()),
            Poll::Ready(n) => {
                buf.advance(n);
                written += n;
            }
            Poll::Pending => break,
        }
    }
    Ok(written)
}
