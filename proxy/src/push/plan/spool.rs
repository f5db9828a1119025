//! A large plan's field values, and a large push's images from before the transaction,
//! kept in a file rather than in memory.
//!
//! A bulk push of a million records would otherwise hold every value it sends until its
//! job is written (about 1.5 KB a record of a wide object), which is what made the
//! proxy's memory grow with the transaction. Once a plan has more records than one
//! atomic push can carry ([`super::SPOOL_AFTER`]), each record's values go to an
//! unnamed temporary file as it is planned, and the plan keeps only where they are
//! ([`Slot`]); the ingest jobs read them back one record at a time as they write their
//! CSV. What stays in memory a record is its Ids, its field names (shared by every record
//! with the same ones) and the slot. The images a bulk push may restore its refused rows
//! to ([`crate::push::taken::RowsBefore`]) go to a spool of their own the same way, as
//! text ([`SpoolWriter::write_text`]).
//!
//! The file has no name (`tempfile::tempfile`): it is gone when the plan is dropped, and
//! when the process dies, so a crash leaves nothing behind. Reads are positional, so the
//! jobs of one stage read side by side through a shared reference.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::os::unix::fs::FileExt;

use serde_json::Value;

/// A spool file that could not be written or read: the push stops as it would on a
/// full disk.
#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    #[error("cannot write the push's spool file: {0}")]
    Write(#[source] std::io::Error),
    #[error("cannot read the push's spool file: {0}")]
    Read(#[source] std::io::Error),
    #[error("the push's spool file holds a record that does not parse: {0}")]
    Decode(#[source] serde_json::Error),
}

/// Where one record's values are in the spool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Slot {
    at: u64,
    len: u32,
}

/// The spool as the planner writes it: appended to, one record's values at a time.
#[derive(Debug)]
pub struct SpoolWriter {
    file: BufWriter<File>,
    end: u64,
    /// The record being encoded, reused.
    buffer: Vec<u8>,
}

impl SpoolWriter {
    /// A new spool in the system's temporary directory (`TMPDIR`).
    pub fn new() -> Result<SpoolWriter, SpoolError> {
        let file = tempfile::tempfile().map_err(SpoolError::Write)?;
        Ok(SpoolWriter {
            file: BufWriter::with_capacity(1 << 20, file),
            end: 0,
            buffer: Vec::new(),
        })
    }

    /// Appends one record's values.
    pub fn write(&mut self, values: &[Value]) -> Result<Slot, SpoolError> {
        let mut buffer = std::mem::take(&mut self.buffer);
        buffer.clear();
        serde_json::to_writer(&mut buffer, values)
            .map_err(|error| SpoolError::Write(error.into()))?;
        let slot = self.append(&buffer);
        self.buffer = buffer;
        slot
    }

    /// Appends a text as it is (read back by [`Spool::read_text`]).
    pub fn write_text(&mut self, text: &str) -> Result<Slot, SpoolError> {
        self.append(text.as_bytes())
    }

    fn append(&mut self, bytes: &[u8]) -> Result<Slot, SpoolError> {
        let len = u32::try_from(bytes.len()).map_err(|_| {
            SpoolError::Write(std::io::Error::other("a record takes more than 4 GB"))
        })?;
        self.file.write_all(bytes).map_err(SpoolError::Write)?;
        let slot = Slot { at: self.end, len };
        self.end += u64::from(len);
        Ok(slot)
    }

    /// The spool, written out, to read from.
    pub fn finish(self) -> Result<Spool, SpoolError> {
        let file = self
            .file
            .into_inner()
            .map_err(|error| SpoolError::Write(error.into_error()))?;
        Ok(Spool { file })
    }
}

/// The spool as the jobs read it.
#[derive(Debug)]
pub struct Spool {
    file: File,
}

impl Spool {
    /// The values of the record at `slot`.
    pub fn read(&self, slot: Slot) -> Result<Vec<Value>, SpoolError> {
        serde_json::from_slice(&self.bytes(slot)?).map_err(SpoolError::Decode)
    }

    /// The text at `slot` ([`SpoolWriter::write_text`]).
    pub fn read_text(&self, slot: Slot) -> Result<String, SpoolError> {
        String::from_utf8(self.bytes(slot)?).map_err(|error| {
            SpoolError::Read(std::io::Error::new(std::io::ErrorKind::InvalidData, error))
        })
    }

    fn bytes(&self, slot: Slot) -> Result<Vec<u8>, SpoolError> {
        let mut bytes = vec![0; slot.len as usize];
        self.file
            .read_exact_at(&mut bytes, slot.at)
            .map_err(SpoolError::Read)?;
        Ok(bytes)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn values_come_back_as_they_went_in_whatever_the_order_of_reading() {
        let records = [
            vec![json!("Acme, \"Inc\"\n"), json!(null), json!(12.5)],
            vec![],
            vec![json!(true), json!("\u{0}é漢"), json!({ "Name": "x" })],
        ];
        let mut writer = SpoolWriter::new().unwrap();
        let slots: Vec<Slot> = records.iter().map(|r| writer.write(r).unwrap()).collect();
        let spool = writer.finish().unwrap();
        for (slot, record) in slots.iter().zip(&records).rev() {
            assert_eq!(&spool.read(*slot).unwrap(), record);
        }
    }

    #[test]
    fn texts_come_back_as_they_went_in_beside_values() {
        let mut writer = SpoolWriter::new().unwrap();
        let text = writer
            .write_text("{\"name\":\"Ünïcode, \\\"quoted\\\"\"}")
            .unwrap();
        let values = writer.write(&[json!(1)]).unwrap();
        let empty = writer.write_text("").unwrap();
        let spool = writer.finish().unwrap();
        assert_eq!(spool.read_text(empty).unwrap(), "");
        assert_eq!(spool.read(values).unwrap(), vec![json!(1)]);
        assert_eq!(
            spool.read_text(text).unwrap(),
            "{\"name\":\"Ünïcode, \\\"quoted\\\"\"}"
        );
    }

    #[test]
    fn a_slot_past_the_end_is_an_error_not_a_panic() {
        let mut writer = SpoolWriter::new().unwrap();
        let slot = writer.write(&[json!("a")]).unwrap();
        let spool = writer.finish().unwrap();
        let past = Slot {
            at: slot.at + 100,
            len: slot.len,
        };
        assert!(matches!(spool.read(past), Err(SpoolError::Read(_))));
    }
}
