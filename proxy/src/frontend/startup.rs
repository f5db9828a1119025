//! The first packets of a client connection: encryption negotiation (SSLRequest,
//! GSSENCRequest, direct TLS), then either a StartupMessage that opens a session or a
//! CancelRequest.

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::admission::AuthDeadline;
use super::refusal::Refusal;
use super::tls::{ALPN_POSTGRESQL, TlsConfig};
use crate::error::SessionError;
use crate::net::ProtocolError;
use crate::net::frame::{MAX_STARTUP_PACKET_LEN, peek_startup_packet};
use crate::net::messages::startup::StartupPacket;
use crate::net::stream::ClientStream;
use crate::settings::{ORIGIN_PROXY, ORIGIN_SETTING};

/// The first byte of a TLS handshake record; a protocol packet starts with a length word
/// whose first byte is 0 for any valid length.
const TLS_HANDSHAKE_RECORD: u8 = 0x16;

/// How a client connection opened.
#[derive(Debug)]
pub enum Opening {
    /// A session: the stream, the StartupMessage as received, and any bytes the client sent
    /// after it.
    Session {
        stream: ClientStream,
        startup: Bytes,
        rest: BytesMut,
    },
    /// A CancelRequest for process `pid`.
    Cancel { pid: i32, secret: Vec<u8> },
}

/// Reads packets until a StartupMessage or CancelRequest, answering encryption requests on
/// the way, all before `deadline`. A packet of an invalid length, or the deadline passing
/// while the client could still be told, gets a FATAL error.
pub async fn negotiate(
    tcp: TcpStream,
    tls: Option<&TlsConfig>,
    deadline: AuthDeadline,
) -> Result<Opening, SessionError> {
    let mut stream = match tls {
        Some(tls) if deadline.within(starts_with_tls_handshake(&tcp)).await? => {
            let stream = deadline.within(accept_tls(tls, tcp)).await?;
            // Direct TLS skips SSLRequest, so the ALPN is the only sign the peer meant to
            // speak PostgreSQL; libpq insists on it and so does the server.
            if stream.get_ref().1.alpn_protocol() != Some(ALPN_POSTGRESQL) {
                return Err(ProtocolError::DirectTlsWithoutAlpn.into());
            }
            ClientStream::Tls(Box::new(stream))
        }
        _ => ClientStream::Plain(tcp),
    };
    let mut buf = BytesMut::with_capacity(1024);
    loop {
        let packet = match deadline
            .within(read_startup_packet(&mut stream, &mut buf))
            .await
        {
            Ok(packet) => packet,
            Err(SessionError::Refused(refusal)) => {
                refusal.tell(&mut stream, &mut BytesMut::new()).await;
                return Err(refusal.into());
            }
            Err(error) => return Err(error),
        };
        match StartupPacket::decode(&packet)? {
            StartupPacket::SslRequest => match (tls, stream) {
                (Some(tls), ClientStream::Plain(mut tcp)) => {
                    // Bytes after the SSLRequest would be read as if they had come over
                    // TLS (CVE-2021-23214): refuse them, as the server does.
                    if !buf.is_empty() {
                        return Err(ProtocolError::DataAfterSslRequest.into());
                    }
                    deadline
                        .within(async { Ok(tcp.write_all(b"S").await?) })
                        .await?;
                    let tls_stream = deadline.within(accept_tls(tls, tcp)).await?;
                    stream = ClientStream::Tls(Box::new(tls_stream));
                }
                (None, ClientStream::Plain(mut tcp)) => {
                    deadline
                        .within(async { Ok(tcp.write_all(b"N").await?) })
                        .await?;
                    stream = ClientStream::Plain(tcp);
                }
                (_, ClientStream::Tls(_)) => {
                    return Err(ProtocolError::SslRequestOverTls.into());
                }
            },
            StartupPacket::GssEncRequest => {
                // GSSAPI encryption is not offered; the client may go on in the clear or
                // ask for TLS.
                deadline
                    .within(async { Ok(stream.write_all(b"N").await?) })
                    .await?;
            }
            StartupPacket::Cancel(cancel) => {
                return Ok(Opening::Cancel {
                    pid: cancel.pid,
                    secret: cancel.secret.to_vec(),
                });
            }
            StartupPacket::Startup { .. } => {
                return Ok(Opening::Session {
                    stream,
                    startup: packet,
                    rest: buf,
                });
            }
        }
    }
}

/// The next startup-phase packet. Its length word is checked before any more is read, so
/// the buffer never holds more than PostgreSQL's 10,000-byte limit (plus one read).
async fn read_startup_packet(
    stream: &mut ClientStream,
    buf: &mut BytesMut,
) -> Result<Bytes, SessionError> {
    loop {
        if let Some(len) = peek_startup_packet(buf).map_err(Refusal::from)? {
            return Ok(buf.split_to(len).freeze());
        }
        if stream.read_buf(buf).await? == 0 {
            return Err(SessionError::ClientClosed);
        }
    }
}

async fn accept_tls(
    tls: &TlsConfig,
    tcp: TcpStream,
) -> Result<tokio_rustls::server::TlsStream<TcpStream>, SessionError> {
    tls.acceptor().accept(tcp).await.map_err(SessionError::Tls)
}

/// The StartupMessage to send upstream: the client's, with `-c sfpg.origin=proxy` added to
/// its `options`, so that the capture triggers record this session's writes (and every
/// `RESET` returns to it). The client's own parameters, options included, are kept.
pub fn with_proxy_origin(packet: &[u8]) -> Result<Bytes, SessionError> {
    let StartupPacket::Startup {
        major,
        minor,
        parameters,
    } = StartupPacket::decode(packet)?
    else {
        return Err(ProtocolError::NotAStartupMessage.into());
    };
    let origin = format!("-c {ORIGIN_SETTING}={ORIGIN_PROXY}");
    let mut startup = pgwire::messages::startup::Startup::new();
    startup.protocol_number_major = major;
    startup.protocol_number_minor = minor;
    let mut has_options = false;
    for (name, value) in parameters {
        let name = String::from_utf8_lossy(name).into_owned();
        let mut value = String::from_utf8_lossy(value).into_owned();
        if name == "options" {
            has_options = true;
            // PostgreSQL drops a backslash that ends the options, escaping nothing; left
            // there, it would escape the space before the origin and spoil both.
            if (value.len() - value.trim_end_matches('\\').len()) % 2 == 1 {
                value.pop();
            }
            value = if value.trim().is_empty() {
                origin.clone()
            } else {
                format!("{value} {origin}")
            };
        }
        startup.parameters.insert(name, value);
    }
    if !has_options {
        startup.parameters.insert("options".into(), origin);
    }
    // Length word, protocol version, each name and value with its terminator, and the
    // final terminator. The client's packet was within the server's limit; with the
    // origin added it may not be, and the server would drop it without a word.
    let length = 9 + startup
        .parameters
        .iter()
        .map(|(name, value)| name.len() + value.len() + 2)
        .sum::<usize>();
    if length > MAX_STARTUP_PACKET_LEN {
        return Err(Refusal::StartupPacketTooLong { length }.into());
    }
    let mut buf = BytesMut::new();
    pgwire::messages::Message::encode(&startup, &mut buf)
        .map_err(crate::net::messages::encode::EncodeError::from)?;
    Ok(buf.freeze())
}

async fn starts_with_tls_handshake(tcp: &TcpStream) -> Result<bool, SessionError> {
    // Waits for the first byte: an idle connection waits here, under the deadline.
    let mut first = [0u8; 1];
    let n = tcp.peek(&mut first).await?;
    Ok(n == 1 && first[0] == TLS_HANDSHAKE_RECORD)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn startup(parameters: &[(&str, &str)]) -> Vec<u8> {
        let mut body = vec![0, 3, 0, 0];
        for (name, value) in parameters {
            body.extend_from_slice(name.as_bytes());
            body.push(0);
            body.extend_from_slice(value.as_bytes());
            body.push(0);
        }
        body.push(0);
        let mut packet = ((body.len() + 4) as i32).to_be_bytes().to_vec();
        packet.extend_from_slice(&body);
        packet
    }

    fn options(packet: &[u8]) -> String {
        let StartupPacket::Startup { parameters, .. } = StartupPacket::decode(packet).unwrap()
        else {
            panic!("not a startup message");
        };
        parameters
            .iter()
            .find(|(name, _)| *name == b"options")
            .map(|(_, value)| String::from_utf8_lossy(value).into_owned())
            .unwrap()
    }

    #[test]
    fn a_packet_the_origin_takes_past_the_servers_limit_is_refused() {
        let fits = startup(&[("user", "u"), ("application_name", &"x".repeat(9_900))]);
        assert!(with_proxy_origin(&fits).unwrap().len() <= MAX_STARTUP_PACKET_LEN);
        let full = startup(&[("user", "u"), ("application_name", &"x".repeat(9_960))]);
        assert!(full.len() <= MAX_STARTUP_PACKET_LEN);
        assert!(matches!(
            with_proxy_origin(&full),
            Err(SessionError::Refused(Refusal::StartupPacketTooLong { length }))
                if length == full.len() + "options".len() + 1 + 21
        ));
    }

    #[test]
    fn adds_the_origin_to_the_clients_options() {
        let plain = with_proxy_origin(&startup(&[("user", "u"), ("database", "d")])).unwrap();
        assert_eq!(options(&plain), "-c sfpg.origin=proxy");
        let own =
            with_proxy_origin(&startup(&[("user", "u"), ("options", "-c search_path=x")])).unwrap();
        assert_eq!(options(&own), "-c search_path=x -c sfpg.origin=proxy");
        // A backslash ending the client's options escapes nothing; two are one backslash.
        let dangling =
            with_proxy_origin(&startup(&[("options", "-c application_name=x\\")])).unwrap();
        assert_eq!(
            options(&dangling),
            "-c application_name=x -c sfpg.origin=proxy"
        );
        let escaped =
            with_proxy_origin(&startup(&[("options", "-c application_name=x\\\\")])).unwrap();
        assert_eq!(
            options(&escaped),
            "-c application_name=x\\\\ -c sfpg.origin=proxy"
        );
    }
}
