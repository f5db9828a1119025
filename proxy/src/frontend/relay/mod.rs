//! One client session's I/O: its own upstream connection, the relayed authentication
//! exchange ([`auth`]), then a full-duplex relay of whole frames between the client (plain
//! or TLS) and the server. What the frames mean, and what the proxy adds, is the
//! [`Conversation`]'s: the relay hands it what arrives, writes out what it returns, and
//! lends it the upstream connection ([`Statements`]) for the actions it asks for.
//!
//! The relay never blocks one direction on the other: one poll function
//! ([`Relay::poll_io`]) writes what is pending to both sockets and reads from both, and
//! stops reading a side only while the buffer towards the other side is full. A client
//! that pipelines many queries without reading while the server answers them would
//! otherwise deadlock the two. Written by hand rather than with `select!` over split
//! halves: a select builds its futures and picks a random branch order on every turn, and
//! split halves lock on every poll, which at a few microseconds per query was a measurable
//! share of the proxy's cost. [`inbound`] bounds what the relay holds of the client's
//! input.

mod auth;
mod inbound;

use std::future::{Future, poll_fn};
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio_postgres::error::SqlState;
use tokio_util::io::poll_read_buf;
use tokio_util::sync::WaitForCancellationFutureOwned;
use tracing::Span;

use super::admission::AuthDeadline;
use super::cancel::Registration;
use super::conversation::{Action, Conversation, Out};
use super::refusal::tell_client;
use crate::backend::UpstreamStream;
use crate::backend::statements::{Statements, flush};
use crate::error::SessionError;
use crate::frontend::startup::with_proxy_origin;
use crate::net::messages::encode;
use crate::net::messages::frontend as fe;
use crate::net::stream::ClientStream;
use crate::server::Shared;

/// Past this many bytes waiting for one side, the relay stops reading from the other.
const HIGH_WATER: usize = 1 << 20;

/// A session's sockets and buffers, and the conversation it relays.
pub struct Relay {
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
    /// The session's cancel key, from the server's BackendKeyData on; dropping it with the
    /// session takes the key out of the registry.
    registration: Option<Registration>,
    conversation: Conversation,
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
    let server = match connected {
        Ok(Ok(server)) => server,
        Ok(Err(source)) => return Err(cannot_connect(&shared, &mut client, source).await),
        Err(error) => return Err(tell_client(&mut client, &mut BytesMut::new(), error).await),
    };
    let mut relay = Relay {
        draining: Box::pin(shared.draining.wait()),
        draining_armed: false,
        drained: false,
        shared,
        client,
        server,
        client_unflushed: false,
        conversation: Conversation::new(peer, span.clone()),
        span,
        client_in,
        client_checked: 0,
        client_in_limit: HIGH_WATER,
        client_out: BytesMut::with_capacity(8192),
        server_in: BytesMut::with_capacity(8192),
        server_out: BytesMut::with_capacity(8192),
        registration: None,
    };
    relay.server_out.extend_from_slice(&startup);
    match deadline.within(relay.authenticate()).await {
        Ok(true) => {}
        Ok(false) => return Ok(()),
        Err(error) => return Err(relay.tell_client(error).await),
    }
    match relay.relay().await {
        Err(error) => Err(relay.tell_client(error).await),
        ended => ended,
    }
}

/// The server cannot be reached: the client is told in its own protocol, as a server that
/// cannot start a backend would, and the session gives up.
async fn cannot_connect(
    shared: &Shared,
    client: &mut ClientStream,
    source: io::Error,
) -> SessionError {
    let mut out = BytesMut::new();
    if let Err(error) = encode::error_response(
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
    ) {
        return error.into();
    }
    let _ = client.write_all(&out).await;
    SessionError::Connect {
        addr: shared.upstream.to_string(),
        source,
    }
}

impl Relay {
    /// The relay proper, until Terminate or either side closes.
    async fn relay(&mut self) -> Result<(), SessionError> {
        loop {
            let mut out = Out {
                server: &mut self.server_out,
                client: &mut self.client_out,
            };
            if let Some(action) = self
                .conversation
                .on_server_input(&mut self.server_in, &mut out)?
            {
                self.perform(action).await?;
                continue;
            }
            if let Some(action) = self.on_client_input()? {
                self.perform(action).await?;
                continue;
            }
            if self.settle_client_in() {
                continue;
            }
            if self.conversation.terminating() && self.server_out.is_empty() {
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
                Woke::ServerClosed => return self.server_closed().await,
            }
        }
    }

    /// Runs what the conversation asked for with the upstream connection to itself, then
    /// writes out its answer.
    async fn perform(&mut self, action: Action) -> Result<(), SessionError> {
        let mut upstream = Statements::new(
            &mut self.server,
            &mut self.server_in,
            &mut self.server_out,
            &mut self.client_out,
        )
        .with_client(&mut self.client);
        let pusher = self.shared.pusher.as_deref();
        let answer = self
            .conversation
            .perform(action, &mut upstream, pusher)
            .await?;
        let mut out = Out {
            server: &mut self.server_out,
            client: &mut self.client_out,
        };
        self.conversation.answer(answer, &mut out)
    }

    /// The server closed its end: whatever it said last (often a FATAL error) still goes
    /// to the client.
    async fn server_closed(&mut self) -> Result<(), SessionError> {
        let mut out = Out {
            server: &mut self.server_out,
            client: &mut self.client_out,
        };
        // Whatever it asks for can no longer run.
        let _ = self
            .conversation
            .on_server_input(&mut self.server_in, &mut out)?;
        self.conversation.release_held(&mut self.client_out);
        self.flush_client().await?;
        Err(SessionError::ServerClosed)
    }

    /// Writes what is pending towards both sides, then reads from both; ready once a read
    /// brought bytes (or an end), or once writing is all the loop waits for.
    fn poll_io(&mut self, cx: &mut Context<'_>) -> Poll<Result<Woke, SessionError>> {
        let wrote = self.poll_write_out(cx)?;
        let mut read = false;
        let terminating = self.conversation.terminating();
        // From the client, no further than `client_in_limit` ([`inbound`]).
        if !terminating
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
        if wrote && (terminating || self.drained) {
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
        self.conversation.at_rest() && self.client_in.is_empty() && self.server_out.is_empty()
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
        self.server_out.put_slice(&[fe::TERMINATE, 0, 0, 0, 4]);
        flush(&mut self.server, &mut self.server_out).await?;
        let _ = self.server.shutdown().await;
        self.span
            .in_scope(|| tracing::debug!("session closed: the proxy is stopping"));
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
