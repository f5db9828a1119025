//! The untagged packets a client may open a connection with: StartupMessage, SSLRequest,
//! GSSENCRequest and CancelRequest.

use super::Reader;

pub const SSL_REQUEST_CODE: i32 = 80_877_103;
pub const GSSENC_REQUEST_CODE: i32 = 80_877_104;
pub const CANCEL_REQUEST_CODE: i32 = 80_877_102;

/// What a startup-phase packet asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartupPacket<'a> {
    SslRequest,
    GssEncRequest,
    Cancel(CancelRequest<'a>),
    /// A StartupMessage: protocol version and parameters (user, database, options, …).
    Startup {
        major: u16,
        minor: u16,
        parameters: Vec<(&'a [u8], &'a [u8])>,
    },
}

/// A CancelRequest: the process id and secret the client was given in BackendKeyData.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CancelRequest<'a> {
    pub pid: i32,
    pub secret: &'a [u8],
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed startup packet")]
pub struct Malformed;

impl<'a> StartupPacket<'a> {
    /// Decodes a whole packet, its length word included.
    pub fn decode(packet: &'a [u8]) -> Result<Self, Malformed> {
        let mut r = Reader::new(packet);
        r.i32().ok_or(Malformed)?;
        let code = r.i32().ok_or(Malformed)?;
        match code {
            SSL_REQUEST_CODE if r.is_empty() => Ok(StartupPacket::SslRequest),
            GSSENC_REQUEST_CODE if r.is_empty() => Ok(StartupPacket::GssEncRequest),
            CANCEL_REQUEST_CODE => {
                let pid = r.i32().ok_or(Malformed)?;
                let secret = r.remaining();
                if !(4..=256).contains(&secret.len()) {
                    return Err(Malformed);
                }
                Ok(StartupPacket::Cancel(CancelRequest { pid, secret }))
            }
            SSL_REQUEST_CODE | GSSENC_REQUEST_CODE => Err(Malformed),
            version => {
                let major = u16::try_from(version >> 16).map_err(|_| Malformed)?;
                let minor = (version & 0xffff) as u16;
                let mut parameters = Vec::new();
                loop {
                    let name = r.cstr().ok_or(Malformed)?;
                    if name.is_empty() {
                        break;
                    }
                    let value = r.cstr().ok_or(Malformed)?;
                    parameters.push((name, value));
                }
                Ok(StartupPacket::Startup {
                    major,
                    minor,
                    parameters,
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packet(code: i32, rest: &[u8]) -> Vec<u8> {
        let len = (8 + rest.len()) as i32;
        [&len.to_be_bytes()[..], &code.to_be_bytes(), rest].concat()
    }

    #[test]
    fn recognises_each_kind() {
        assert_eq!(
            StartupPacket::decode(&packet(SSL_REQUEST_CODE, b"")),
            Ok(StartupPacket::SslRequest)
        );
        assert_eq!(
            StartupPacket::decode(&packet(GSSENC_REQUEST_CODE, b"")),
            Ok(StartupPacket::GssEncRequest)
        );
        let cancel = packet(CANCEL_REQUEST_CODE, &[0, 0, 0, 9, 1, 2, 3, 4]);
        assert_eq!(
            StartupPacket::decode(&cancel),
            Ok(StartupPacket::Cancel(CancelRequest {
                pid: 9,
                secret: &[1, 2, 3, 4]
            }))
        );
        let startup = packet(196_608, b"user\0alice\0database\0db\0\0");
        let StartupPacket::Startup {
            major,
            minor,
            parameters,
        } = StartupPacket::decode(&startup).unwrap()
        else {
            panic!("not a startup message");
        };
        assert_eq!((major, minor), (3, 0));
        assert_eq!(parameters[0], (&b"user"[..], &b"alice"[..]));
        assert_eq!(parameters[1], (&b"database"[..], &b"db"[..]));
    }

    #[test]
    fn malformed_packets_are_refused() {
        assert!(StartupPacket::decode(&packet(196_608, b"user\0alice")).is_err());
        assert!(StartupPacket::decode(&packet(CANCEL_REQUEST_CODE, &[0, 0])).is_err());
        assert!(StartupPacket::decode(&packet(SSL_REQUEST_CODE, b"x")).is_err());
        assert!(StartupPacket::decode(&[0, 0, 0, 8]).is_err());
    }
}
