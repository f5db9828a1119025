//! The proxy's errors: starting it ([`ProxyError`]) and what ends one client session
//! ([`SessionError`]).

use std::io;

use crate::frontend::refusal::Refusal;
use crate::net::frame::FrameError;
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
    Control(String),
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
    #[error("I/O error: {0}")]
    Io(#[from] io::Error),
    #[error("TLS handshake failed: {0}")]
    Tls(#[source] io::Error),
    #[error("protocol violation: {0}")]
    Protocol(String),
    #[error("cannot connect to the database server at {addr}: {source}")]
    Connect {
        addr: String,
        #[source]
        source: io::Error,
    },
    #[error(transparent)]
    Frame(#[from] FrameError),
    /// The proxy closes the connection on its own; the client is told why with a FATAL
    /// error ([`Refusal::tell`]).
    #[error("refused: {0}")]
    Refused(#[from] Refusal),
    #[error(transparent)]
    Encode(#[from] EncodeError),
}

impl SessionError {
    /// An ending that is part of normal life rather than something to log as a failure.
    pub fn is_disconnect(&self) -> bool {
        match self {
            SessionError::ClientClosed | SessionError::ServerClosed => true,
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
