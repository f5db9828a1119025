//! The few protocol messages the proxy looks inside, decoded from borrowed frames, and the
//! messages it writes itself, encoded with `pgwire`'s codecs.
//!
//! Decoding is written here rather than taken from `pgwire` because the proxy decodes what a
//! client sent, and a malformed frame must become a protocol error, never a panic; these
//! readers check every bound and borrow instead of allocating.

pub mod backend;
pub mod encode;
pub mod frontend;
pub mod startup;

/// A bounds-checked cursor over a message body.
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Reader { buf }
    }

    pub fn remaining(&self) -> &'a [u8] {
        self.buf
    }

    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// A NUL-terminated string, without its terminator.
    pub fn cstr(&mut self) -> Option<&'a [u8]> {
        let end = self.buf.iter().position(|&b| b == 0)?;
        let (value, rest) = self.buf.split_at(end);
        self.buf = rest.get(1..)?;
        Some(value)
    }

    pub fn u8(&mut self) -> Option<u8> {
        let (&first, rest) = self.buf.split_first()?;
        self.buf = rest;
        Some(first)
    }

    pub fn i16(&mut self) -> Option<i16> {
        self.take(2).map(|b| i16::from_be_bytes([b[0], b[1]]))
    }

    pub fn i32(&mut self) -> Option<i32> {
        self.take(4)
            .map(|b| i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    pub fn u32(&mut self) -> Option<u32> {
        self.take(4)
            .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    pub fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.buf.len() < n {
            return None;
        }
        let (value, rest) = self.buf.split_at(n);
        self.buf = rest;
        Some(value)
    }
}

#[cfg(test)]
mod tests {
    use super::Reader;

    #[test]
    fn reader_never_reads_past_the_end() {
        let mut r = Reader::new(b"ab\0\0\x01");
        assert_eq!(r.cstr(), Some(&b"ab"[..]));
        assert_eq!(r.cstr(), Some(&b""[..]));
        assert_eq!(r.i16(), None);
        assert_eq!(r.u8(), Some(1));
        assert_eq!(r.u8(), None);
        assert_eq!(Reader::new(b"no terminator").cstr(), None);
    }
}
