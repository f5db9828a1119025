//! Finding frame boundaries in a byte stream, without copying or decoding.
//!
//! After startup every message is `tag: u8, length: i32 (counting itself), body`; the
//! startup-phase packets (StartupMessage, SSLRequest, GSSENCRequest, CancelRequest) have no
//! tag. The relay forwards whole frames, so all it needs from most of them is where they end
//! (and, for a long CopyData, where to cut it).

use bytes::{BufMut, BytesMut};
use thiserror::Error;

use super::messages::frontend::COPY_DATA;

/// Tag byte plus length word.
pub const HEADER_LEN: usize = 5;

/// PostgreSQL refuses any message longer than this (`PQ_LARGE_MESSAGE_LIMIT`, 1 GB - 1),
/// so a larger length word means the stream is not the protocol or is corrupt.
pub const MAX_FRAME_LEN: usize = 0x3fff_ffff;

/// The server's limit for startup-phase packets (`MAX_STARTUP_PACKET_LENGTH`).
pub const MAX_STARTUP_PACKET_LEN: usize = 10_000;

/// The server's limit for the body of a client's authentication message before it has
/// authenticated (`PG_MAX_AUTH_TOKEN_LENGTH`): room for a GSSAPI token, far short of what
/// an unauthenticated client could otherwise make the proxy hold.
pub const MAX_AUTH_MESSAGE_BODY: usize = 65_535;

/// How much room [`reserve_partial`] makes at most for the rest of a frame: a large frame
/// then grows the buffer as its bytes arrive, rather than all at once on the word of its
/// length.
const RESERVE_AHEAD: usize = 1 << 20;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum FrameError {
    #[error("invalid message length {length} for message type {tag:?}")]
    InvalidLength { tag: char, length: i64 },
    #[error("invalid startup packet length {0}")]
    InvalidStartupLength(i64),
}

/// The tag and total length (tag and length word included) of the frame at the head of
/// `buf`, once `buf` holds all of it. Reserves room for the rest of a partial frame so the
/// next read can complete it.
pub fn peek_frame(buf: &mut BytesMut) -> Result<Option<(u8, usize)>, FrameError> {
    match frame_at(buf)? {
        Frame::Complete { tag, len } => Ok(Some((tag, len))),
        Frame::Partial { len, .. } => {
            buf.reserve(len - buf.len());
            Ok(None)
        }
        Frame::Header => Ok(None),
    }
}

/// What the head of a byte slice holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Frame {
    /// A whole frame of `len` bytes.
    Complete { tag: u8, len: usize },
    /// The start of a frame of `len` bytes.
    Partial { tag: u8, len: usize },
    /// Not even a whole header.
    Header,
}

pub fn frame_at(buf: &[u8]) -> Result<Frame, FrameError> {
    let Some(header) = buf.get(..HEADER_LEN) else {
        return Ok(Frame::Header);
    };
    let tag = header[0];
    let length = i32::from_be_bytes([header[1], header[2], header[3], header[4]]);
    let length = usize::try_from(length)
        .ok()
        .filter(|l| (4..=MAX_FRAME_LEN).contains(l))
        .ok_or(FrameError::InvalidLength {
            tag: char::from(tag),
            length: i64::from(length),
        })?;
    let len = length + 1;
    if buf.len() < len {
        Ok(Frame::Partial { tag, len })
    } else {
        Ok(Frame::Complete { tag, len })
    }
}

/// The length of the untagged startup-phase packet at the head of `buf`, once it is all
/// there.
pub fn peek_startup_packet(buf: &mut BytesMut) -> Result<Option<usize>, FrameError> {
    if buf.len() < 4 {
        return Ok(None);
    }
    let length = i32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]);
    let valid = usize::try_from(length)
        .ok()
        .filter(|l| (8..=MAX_STARTUP_PACKET_LEN).contains(l));
    let Some(length) = valid else {
        return Err(FrameError::InvalidStartupLength(i64::from(length)));
    };
    if buf.len() < length {
        buf.reserve(length - buf.len());
        return Ok(None);
    }
    Ok(Some(length))
}

/// The body of a frame (after tag and length).
pub fn body(frame: &[u8]) -> &[u8] {
    frame.get(HEADER_LEN..).unwrap_or_default()
}

/// Makes room in `buf` for the rest of the partial frame at its head (up to 1 MiB more),
/// if any, so that one large frame does not take many small reads.
pub fn reserve_partial(buf: &mut BytesMut) {
    if let Ok(Frame::Partial { len, .. }) = frame_at(buf) {
        buf.reserve((len - buf.len()).min(RESERVE_AHEAD));
    }
}

/// Cuts the partial CopyData frame at the head of `buf`, once at least `min_piece` bytes of
/// its data have arrived, into a whole CopyData frame of those bytes and the header of a
/// CopyData frame for the data still to come. Returns the length of the whole frame.
///
/// The COPY stream is the concatenation of the CopyData messages' data, whose boundaries
/// mean nothing ("not required to have anything to do with row boundaries", protocol
/// documentation), so the server reads the same stream; and the relay can pass on a COPY
/// of any size while holding only what has arrived.
pub fn split_copy_data(buf: &mut BytesMut, min_piece: usize) -> Option<usize> {
    let Ok(Frame::Partial {
        tag: COPY_DATA,
        len,
    }) = frame_at(buf)
    else {
        return None;
    };
    let arrived = buf.len() - HEADER_LEN;
    if arrived < min_piece {
        return None;
    }
    let to_come = len - buf.len();
    // Both lengths are below `len`, which `frame_at` checked fits its length word.
    let piece = i32::try_from(arrived + 4).ok()?;
    let rest = i32::try_from(to_come + 4).ok()?;
    buf[1..HEADER_LEN].copy_from_slice(&piece.to_be_bytes());
    buf.put_u8(COPY_DATA);
    buf.put_i32(rest);
    Some(buf.len() - HEADER_LEN)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_for_a_whole_frame() {
        // Query "SELECT 1": the length counts itself and the body "SELECT 1\0".
        let mut buf = BytesMut::from(&b"Q\0\0\0\x0dSELECT"[..]);
        assert_eq!(peek_frame(&mut buf), Ok(None));
        buf.extend_from_slice(b" 1\0Z");
        assert_eq!(peek_frame(&mut buf), Ok(Some((b'Q', 14))));
        assert_eq!(body(&buf[..14]), b"SELECT 1\0");
    }

    #[test]
    fn refuses_lengths_the_server_would_refuse() {
        let mut short = BytesMut::from(&b"Q\0\0\0\x03"[..]);
        assert!(peek_frame(&mut short).is_err());
        let mut negative = BytesMut::from(&b"Q\xff\xff\xff\xff"[..]);
        assert!(peek_frame(&mut negative).is_err());
        let mut huge = BytesMut::from(&b"D\x40\0\0\0"[..]);
        assert!(peek_frame(&mut huge).is_err());
    }

    #[test]
    fn reserves_at_most_a_mebibyte_ahead() {
        let mut buf = BytesMut::from(&b"Q\x3f\xff\xff\xff"[..]);
        reserve_partial(&mut buf);
        assert!(buf.capacity() < 2 << 20, "{}", buf.capacity());
    }

    #[test]
    fn a_long_copy_data_is_cut_where_its_bytes_end() {
        // CopyData of 10 data bytes, 6 of them here.
        let mut buf = BytesMut::from(&b"d\0\0\0\x0eabcdef"[..]);
        assert_eq!(split_copy_data(&mut buf, 8), None, "fewer than min_piece");
        assert_eq!(split_copy_data(&mut buf, 6), Some(11));
        assert_eq!(&buf[..], b"d\0\0\0\x0aabcdefd\0\0\0\x08");
        assert_eq!(frame_at(&buf), Ok(Frame::Complete { tag: b'd', len: 11 }));
        buf.extend_from_slice(b"ghij");
        assert_eq!(
            frame_at(&buf[11..]),
            Ok(Frame::Complete { tag: b'd', len: 9 })
        );
        assert_eq!(body(&buf[11..]), b"ghij");
        // Nothing else is cut: a whole frame, another type, a header alone.
        let mut whole = BytesMut::from(&b"d\0\0\0\x05x"[..]);
        assert_eq!(split_copy_data(&mut whole, 0), None);
        let mut query = BytesMut::from(&b"Q\0\0\0\x0eabcdef"[..]);
        assert_eq!(split_copy_data(&mut query, 0), None);
        let mut header = BytesMut::from(&b"d\0\0"[..]);
        assert_eq!(split_copy_data(&mut header, 0), None);
    }

    #[test]
    fn startup_packets_are_bounded() {
        let mut ssl = BytesMut::from(&[0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f][..]);
        assert_eq!(peek_startup_packet(&mut ssl), Ok(Some(8)));
        let mut huge = BytesMut::from(&[0, 1, 0, 0][..]);
        assert!(peek_startup_packet(&mut huge).is_err());
        let mut tiny = BytesMut::from(&[0, 0, 0, 4][..]);
        assert!(peek_startup_packet(&mut tiny).is_err());
    }
}
