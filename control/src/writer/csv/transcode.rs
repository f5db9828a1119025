//! A query job's CSV page turned into PostgreSQL's binary `COPY` format as it streams, with
//! no I/O: chunks of the body go in, pieces to send come out.
//!
//! PostgreSQL reading CSV is the backfill's bottleneck: one backend on one core spends
//! 12-13 µs a record parsing the text and running each column's input function, and the
//! sync waits for it (docs/benchmarks.md, issue 22). Parsing the CSV here, on the other core,
//! and handing PostgreSQL each value in its internal form ([`crate::writer::binary`]) costs
//! it about 10.7 µs instead.
//!
//! The rule of the binary path is that it changes nothing a text `COPY` would have done.
//! An empty cell, quoted or not, is NULL (what `FORCE_NULL` did); every other value is in
//! the one layout Salesforce writes for its type, or this page falls back to text: the
//! rows of the batch in hand, and all that follow, go to PostgreSQL as the CSV they came
//! in, for its own input functions to take or to refuse with their own message. A row of
//! the wrong width, a value out of layout, bytes that are not UTF-8: each falls back, none
//! is an error of ours.
//!
//! Memory is a batch: the binary rows not yet sent and the same rows' CSV, each about
//! [`BATCH`] bytes, and one record ([`MAX_RECORD`] at most).

use bytes::Bytes;
use csv_core::{ReadRecordResult, Reader};

use super::header::HeaderCheck;
use crate::error::ControlError;
use crate::mapping::ColumnType;
use crate::writer::binary;

/// UTF-8's byte-order mark.
const BOM: &[u8] = b"\xef\xbb\xbf";

/// The size a batch is sent at: a few hundred kilobytes keeps the socket busy without
/// holding much.
pub(super) const BATCH: usize = 256 * 1024;

/// The longest record taken. Salesforce's widest fields are long text areas of 131,072
/// characters; a record this long is not one of its.
pub(super) const MAX_RECORD: usize = 64 * 1024 * 1024;

/// What to send next.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Piece {
    /// Rows in the binary format, the stream's header before the first of them. The
    /// caller ends the binary stream (a 16-bit -1) when it finishes the `COPY`.
    Binary(Bytes),
    /// Rows of CSV without the header row, for a `COPY … (FORMAT csv, FORCE_NULL …)`.
    /// The first of them means the binary `COPY`, if one was started, is to be finished.
    Csv(Bytes),
}

/// The page's state: its header, the record being read, and the batch in hand.
pub(super) struct Transcoder<'a> {
    header: HeaderCheck<'a>,
    types: Vec<ColumnType>,
    reader: Reader,
    /// The current record's fields, end to end, and where each ends.
    record: Vec<u8>,
    record_len: usize,
    ends: Vec<usize>,
    ends_len: usize,
    header_seen: bool,
    /// The bytes of a byte-order mark seen at the start of the body, until it is whole or
    /// known not to be one; `None` once decided.
    bom: Option<Vec<u8>>,
    /// The batch's rows in the binary format, and the same rows' CSV.
    binary: Vec<u8>,
    raw: Vec<u8>,
    /// The binary stream's header has gone out.
    binary_started: bool,
    /// A value could not be sent as binary: the rest of the page goes as CSV.
    text: bool,
}

impl<'a> Transcoder<'a> {
    pub(super) fn new(header: HeaderCheck<'a>, types: Vec<ColumnType>) -> Self {
        Self {
            header,
            types,
            reader: Reader::new(),
            record: vec![0; 4096],
            record_len: 0,
            ends: vec![0; 64],
            ends_len: 0,
            header_seen: false,
            bom: Some(Vec::new()),
            binary: Vec::with_capacity(BATCH + 4096),
            raw: Vec::with_capacity(BATCH + 4096),
            binary_started: false,
            text: false,
        }
    }

    /// Takes the next chunk of the body; returns what can be sent now.
    pub(super) fn feed(&mut self, chunk: &[u8]) -> Result<Vec<Piece>, ControlError> {
        let mut pieces = Vec::new();
        match self.bom.take() {
            None => self.read(chunk, &mut pieces)?,
            Some(mut seen) => {
                // A byte-order mark before the header's first quote would make the parser
                // read the quotes as part of the name.
                let wanted = BOM.len() - seen.len();
                let taken = chunk.len().min(wanted);
                seen.extend_from_slice(&chunk[..taken]);
                if !BOM.starts_with(&seen) {
                    self.read(&seen, &mut pieces)?;
                    self.read(&chunk[taken..], &mut pieces)?;
                } else if seen.len() < BOM.len() {
                    self.bom = Some(seen);
                } else {
                    self.read(&chunk[taken..], &mut pieces)?;
                }
            }
        }
        Ok(pieces)
    }

    /// The end of the body: the last record (without a line break) and the batch in hand.
    pub(super) fn finish(&mut self) -> Result<Vec<Piece>, ControlError> {
        let mut pieces = Vec::new();
        if let Some(seen) = self.bom.take() {
            self.read(&seen, &mut pieces)?;
        }
        if !self.text {
            self.parse(&[], &mut pieces)?;
        }
        self.flush(&mut pieces);
        Ok(pieces)
    }

    /// Reads `input`, a part of the body.
    fn read(&mut self, input: &[u8], pieces: &mut Vec<Piece>) -> Result<(), ControlError> {
        if input.is_empty() {
            return Ok(());
        }
        self.parse(input, pieces)
    }

    /// Reads `input` record by record; an empty `input` tells the parser the body ended.
    fn parse(&mut self, mut input: &[u8], pieces: &mut Vec<Piece>) -> Result<(), ControlError> {
        if self.text {
            self.raw.extend_from_slice(input);
            if self.raw.len() >= BATCH {
                self.flush(pieces);
            }
            return Ok(());
        }
        loop {
            let (result, read, written, ended) = self.reader.read_record(
                input,
                &mut self.record[self.record_len..],
                &mut self.ends[self.ends_len..],
            );
            if self.header_seen {
                self.raw.extend_from_slice(&input[..read]);
            }
            input = &input[read..];
            self.record_len += written;
            self.ends_len += ended;
            match result {
                ReadRecordResult::InputEmpty | ReadRecordResult::End => return Ok(()),
                ReadRecordResult::OutputFull => self.grow_record()?,
                ReadRecordResult::OutputEndsFull => self.ends.resize(self.ends.len() * 2, 0),
                ReadRecordResult::Record => {
                    self.take_record()?;
                    if self.text {
                        // The rest of this chunk follows the batch's CSV as it is.
                        return self.read(input, pieces);
                    }
                    if self.binary.len() >= BATCH {
                        self.flush(pieces);
                    }
                }
            }
        }
    }

    fn grow_record(&mut self) -> Result<(), ControlError> {
        if self.record.len() >= MAX_RECORD {
            return Err(self.header.record_too_long(MAX_RECORD));
        }
        let longer = (self.record.len() * 2).min(MAX_RECORD);
        self.record.resize(longer, 0);
        Ok(())
    }

    /// The record just read: the header is checked; a row is encoded, or the page turns
    /// to text.
    fn take_record(&mut self) -> Result<(), ControlError> {
        let (record_len, ends_len) = (self.record_len, self.ends_len);
        self.record_len = 0;
        self.ends_len = 0;
        let fields = Fields {
            record: &self.record[..record_len],
            ends: &self.ends[..ends_len],
        };
        if !self.header_seen {
            self.header_seen = true;
            let names: Vec<String> = fields
                .iter()
                .map(|f| String::from_utf8_lossy(f).into_owned())
                .collect();
            return self.header.check(&names);
        }
        if !encode_row(&mut self.binary, &self.types, &fields) {
            self.text = true;
        }
        Ok(())
    }

    /// Sends the batch in hand: as binary rows while the page is binary, else as CSV.
    fn flush(&mut self, pieces: &mut Vec<Piece>) {
        if self.text {
            self.binary.clear();
            if !self.raw.is_empty() {
                pieces.push(Piece::Csv(Bytes::from(std::mem::take(&mut self.raw))));
            }
            return;
        }
        self.raw.clear();
        if self.binary.is_empty() {
            return;
        }
        let mut out = Vec::with_capacity(self.binary.len() + binary::HEADER.len());
        if !self.binary_started {
            self.binary_started = true;
            out.extend_from_slice(binary::HEADER);
        }
        out.extend_from_slice(&self.binary);
        self.binary.clear();
        pieces.push(Piece::Binary(Bytes::from(out)));
    }
}

/// One record's fields.
struct Fields<'r> {
    record: &'r [u8],
    ends: &'r [usize],
}

impl<'r> Fields<'r> {
    fn iter(&self) -> impl Iterator<Item = &'r [u8]> + '_ {
        let record = self.record;
        self.ends.iter().scan(0, move |start, &end| {
            let field = &record[*start..end];
            *start = end;
            Some(field)
        })
    }
}

/// Appends one row to `out`; false, with `out` as it was, when the row cannot go as
/// binary.
fn encode_row(out: &mut Vec<u8>, types: &[ColumnType], fields: &Fields<'_>) -> bool {
    let start = out.len();
    let fine = fields.ends.len() == types.len()
        && i16::try_from(types.len()).is_ok_and(|width| {
            out.extend_from_slice(&width.to_be_bytes());
            fields.iter().zip(types).all(|(field, column_type)| {
                if field.is_empty() {
                    out.extend_from_slice(&(-1i32).to_be_bytes());
                    return true;
                }
                std::str::from_utf8(field)
                    .ok()
                    .and_then(|text| binary::push_value(out, *column_type, text))
                    .is_some()
            })
        });
    if !fine {
        out.truncate(start);
    }
    fine
}

#[cfg(test)]
mod tests;
