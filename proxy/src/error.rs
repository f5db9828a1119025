//! The proxy's errors: starting it ([`ProxyError`]) and what ends one client session
//! ([`SessionError`]). Each layer's own errors join these with `#[from]` and keep their
//! source: the wire's ([`ProtocolError`], [`EncodeError`]), the client's refusal
//! ([`Refusal`]), and a statement of the proxy's own that the server refused
//! ([`ServerError`]).

use std::io;

use crate::frontend::refusal::Refusal;
use crate::net::ProtocolError;
use crate::net::messages::backend::ServerError;
use crate::net::messages::encode::EncodeError;

/// Why the proxy could not start or stopped serving.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: String,
        #[source]
        source: io::Error,
    },
    #[error("cannot accept connections: {0}")]
    Accept(#[source] io::Error),
    #[error("cannot set up the connections to the control database: {0}")]
    Control(#[from] deadpool_postgres::BuildError),
    #[error("cannot start a thread for client sessions: {0}")]
    SessionThread(#[source] io::Error),
}

/// Why a client session ended other than by the client's Terminate.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error("the client closed the connection")]
    ClientClosed,
    #[error("the server closed the connection")]
    ServerClosed,
    /// The server ended the session with a FATAL (or PANIC) error, in answer to one of the
    /// proxy's own statements: terminated, shutting down. Its words are kept.
    #[error("the server ended the session: {0}")]
    ServerEnded(#[source] ServerError),
    #[error("I/O error: {0}")]
    Io(#[from] io::Error),
    #[error("TLS handshake failed: {0}")]
    Tls(#[source] io::Error),
    #[error("protocol violation: {0}")]
    Protocol(#[from] ProtocolError),
    #[error("cannot connect to the database server at {addr}: {source}")]
    Connect {
        addr: String,
        #[source]
        source: io::Error,
    },
    /// The proxy closes the connection on its own; the client is told why with a FATAL
    /// error ([`Refusal::tell`]).
    #[error("refused: {0}")]
    Refused(#[from] Refusal),
    #[error(transparent)]
    Encode(#[from] EncodeError),
    /// The transaction could not be ended: the session cannot go on in a known state.
    #[error("the proxy's ROLLBACK failed: {0}")]
    Rollback(#[source] ServerError),
    /// The server connection ended during a COMMIT's push: the client is told what became
    /// of its transaction with a FATAL error (the refusal, at that severity), rather than
    /// left with a closed connection, and the session ends.
    #[error("the server connection ended during a push: {0}")]
    PushServerLost(crate::push::Refusal),
}

/// The wire's own errors are protocol violations of the session.
macro_rules! protocol_violation {
    ($($error:ty),*) => {$(
        impl From<$error> for SessionError {
            fn from(error: $error) -> Self {
                SessionError::Protocol(error.into())
            }
        }
    )*};
}

protocol_violation!(
    crate::net::frame::FrameError,
    crate::net::messages::frontend::Malformed,
    crate::net::messages::backend::Malformed,
    crate::net::messages::startup::Malformed
);

impl SessionError {
    /// An ending that is part of normal life rather than something to log as a failure.
    pub fn is_disconnect(&self) -> bool {
        match self {
            SessionError::ClientClosed
            | SessionError::ServerClosed
            | SessionError::ServerEnded(_) => true,
            SessionError::Io(e) => matches!(
                e.kind(),
                io::ErrorKind::ConnectionReset
                    | io::ErrorKind::BrokenPipe
                    | io::ErrorKind::UnexpectedEof
            ),
            _ => false,
        }
    }
}
