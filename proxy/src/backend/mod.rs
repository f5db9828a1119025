//! The upstream side: where PostgreSQL listens, the connection each client session gets to
//! it, and forwarding a client's cancel request to the right server process.

pub mod statements;

use std::io;
use std::path::PathBuf;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpStream, UnixStream};

use crate::net::messages::encode;

/// Where the mirror database's server listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UpstreamAddr {
    Tcp {
        host: String,
        port: u16,
    },
    /// A Unix-domain socket file, such as `/var/run/postgresql/.s.PGSQL.5432`.
    Unix {
        socket: PathBuf,
    },
}

impl UpstreamAddr {
    /// The server a `tokio_postgres` configuration (from a `postgres://` URL) points at: its
    /// first host and port. A host starting with `/` is a socket directory, as in libpq.
    pub fn from_pg_config(config: &tokio_postgres::Config) -> Self {
        let port = config.get_ports().first().copied().unwrap_or(5432);
        match config.get_hosts().first() {
            Some(tokio_postgres::config::Host::Tcp(host)) => UpstreamAddr::Tcp {
                host: host.clone(),
                port,
            },
            Some(tokio_postgres::config::Host::Unix(dir)) => UpstreamAddr::Unix {
                socket: dir.join(format!(".s.PGSQL.{port}")),
            },
            None => UpstreamAddr::Tcp {
                host: "localhost".to_owned(),
                port,
            },
        }
    }

    pub async fn connect(&self) -> io::Result<UpstreamStream> {
        match self {
            UpstreamAddr::Tcp { host, port } => {
                let stream = TcpStream::connect((host.as_str(), *port)).await?;
                // Every message is a small write answered by a small read: Nagle's delay
                // would add tens of milliseconds to each round trip.
                stream.set_nodelay(true)?;
                Ok(UpstreamStream::Tcp(stream))
            }
            UpstreamAddr::Unix { socket } => {
                Ok(UpstreamStream::Unix(UnixStream::connect(socket).await?))
            }
        }
    }
}

impl std::fmt::Display for UpstreamAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            UpstreamAddr::Tcp { host, port } => write!(f, "{host}:{port}"),
            UpstreamAddr::Unix { socket } => write!(f, "{}", socket.display()),
        }
    }
}

/// Asks the server to cancel what process `pid` is running, the way a client would: a
/// CancelRequest on a connection of its own, which the server closes without an answer.
pub async fn send_cancel(addr: &UpstreamAddr, pid: i32, secret: &[u8]) -> io::Result<()> {
    let mut packet = BytesMut::new();
    encode::cancel_request(&mut packet, pid, secret).map_err(io::Error::other)?;
    let mut stream = addr.connect().await?;
    stream.write_all(&packet).await?;
    stream.flush().await?;
    // Waiting for the server to close first ensures the request was read before we return.
    let mut sink = [0u8; 1];
    let _ = tokio::io::AsyncReadExt::read(&mut stream, &mut sink).await;
    Ok(())
}

/// A connection to the server, over TCP or a Unix-domain socket.
#[derive(Debug)]
pub enum UpstreamStream {
    Tcp(TcpStream),
    Unix(UnixStream),
}

impl AsyncRead for UpstreamStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            UpstreamStream::Tcp(s) => Pin::new(s).poll_read(cx, buf),
            UpstreamStream::Unix(s) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for UpstreamStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            UpstreamStream::Tcp(s) => Pin::new(s).poll_write(cx, buf),
            UpstreamStream::Unix(s) => Pin::new(s).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            UpstreamStream::Tcp(s) => Pin::new(s).poll_flush(cx),
            UpstreamStream::Unix(s) => Pin::new(s).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            UpstreamStream::Tcp(s) => Pin::new(s).poll_shutdown(cx),
            UpstreamStream::Unix(s) => Pin::new(s).poll_shutdown(cx),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;

    use super::*;

    #[test]
    fn reads_the_server_address_from_a_url() {
        let tcp = tokio_postgres::Config::from_str("postgres://u:p@db.example:6432/x").unwrap();
        assert_eq!(
            UpstreamAddr::from_pg_config(&tcp),
            UpstreamAddr::Tcp {
                host: "db.example".into(),
                port: 6432
            }
        );
        let unix = tokio_postgres::Config::from_str("host=/run/pg port=5433 user=u").unwrap();
        assert_eq!(
            UpstreamAddr::from_pg_config(&unix),
            UpstreamAddr::Unix {
                socket: PathBuf::from("/run/pg/.s.PGSQL.5433")
            }
        );
    }
}
