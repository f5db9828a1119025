//! The body of a Bulk API 2.0 result page as it streams in: NUL bytes stripped, and its
//! CSV records counted so that a page that does not hold the records its
//! `Sforce-NumberOfRecords` header announces fails instead of passing for complete.
//!
//! Neither step holds more than one chunk: NULs are dropped from each chunk as it passes
//! (Salesforce has served result pages with NUL bytes in them, which no CSV reader downstream
//! accepts; simple-salesforce strips them from every page for the same reason, airbyte#8300),
//! and the counter is a `csv-core` state machine that carries a quoted field, newlines and
//! all, from one chunk into the next.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use futures::{Stream, StreamExt};

use crate::client::BodyStream;
use crate::error::{Endpoint, Error, Result};

/// Counts the records of a CSV document fed in chunks cut anywhere: inside a quoted field,
/// between the `\r` and `\n` of a CRLF, in a doubled quote.
///
/// The dialect is the one Bulk API 2.0 writes for the jobs this client creates: comma
/// delimiter, `"` quotes doubled inside a quoted value, LF or CRLF line endings. Empty lines
/// are not records (csv-core skips them); a last record without a line ending counts.
///
/// It reads record by record (`read_record`), which is nearly three times as fast as field
/// by field: 500 MB/s against 180 MB/s on an Account-like page, measured on the 2-core
/// development machine with an optimised build.
pub(crate) struct RecordCounter {
    reader: csv_core::Reader,
    /// Where field contents go; the counter only wants the boundaries, so it is overwritten
    /// (a record larger than it just takes several calls).
    scratch: Box<[u8]>,
    /// Where field ends go, overwritten likewise.
    ends: Box<[usize]>,
    records: u64,
    finished: bool,
}

impl Default for RecordCounter {
    fn default() -> Self {
        Self {
            reader: csv_core::Reader::new(),
            scratch: vec![0; 64 * 1024].into_boxed_slice(),
            ends: vec![0; 512].into_boxed_slice(),
            records: 0,
            finished: false,
        }
    }
}

impl RecordCounter {
    /// Reads the next chunk of the document.
    pub(crate) fn feed(&mut self, mut input: &[u8]) {
        while !input.is_empty() {
            let (result, read, _, _) =
                self.reader
                    .read_record(input, &mut self.scratch, &mut self.ends);
            input = &input[read..];
            if result == csv_core::ReadRecordResult::Record {
                self.records += 1;
            }
        }
    }

    /// The records of the whole document, its header row included, once it has all been
    /// fed: a last record without a line ending is counted here.
    pub(crate) fn finish(&mut self) -> u64 {
        if !self.finished {
            self.finished = true;
            // An empty input tells csv-core the document has ended.
            loop {
                match self
                    .reader
                    .read_record(&[], &mut self.scratch, &mut self.ends)
                    .0
                {
                    csv_core::ReadRecordResult::Record => self.records += 1,
                    csv_core::ReadRecordResult::End | csv_core::ReadRecordResult::InputEmpty => {
                        break;
                    }
                    csv_core::ReadRecordResult::OutputFull
                    | csv_core::ReadRecordResult::OutputEndsFull => {}
                }
            }
        }
        self.records
    }
}

/// Cuts a CSV document fed in chunks cut anywhere into runs of whole records, so that a
/// reader can parse a large document (an ingest job's result file) a run at a time
/// without holding it whole. Same dialect as [`RecordCounter`]; it holds at most one run
/// and the part of a record not yet complete.
pub(crate) struct RecordRuns {
    counter: RecordCounter,
    /// Bytes fed and not yet handed back in a run.
    pending: Vec<u8>,
    /// How much of `pending` the counter has read.
    read: usize,
    /// Where the last whole record read ends in `pending`.
    boundary: usize,
    /// The size from which a run is handed back.
    run_bytes: usize,
}

impl RecordRuns {
    /// Runs of at least `run_bytes` (but the last), each of whole records.
    pub(crate) fn new(run_bytes: usize) -> Self {
        Self {
            counter: RecordCounter::default(),
            pending: Vec::new(),
            read: 0,
            boundary: 0,
            run_bytes,
        }
    }

    /// Reads the next chunk; returns a run of whole records once `run_bytes` of them wait.
    pub(crate) fn feed(&mut self, chunk: &[u8]) -> Option<Vec<u8>> {
        self.pending.extend_from_slice(chunk);
        let counter = &mut self.counter;
        while self.read < self.pending.len() {
            let (result, read, _, _) = counter.reader.read_record(
                &self.pending[self.read..],
                &mut counter.scratch,
                &mut counter.ends,
            );
            self.read += read;
            if result == csv_core::ReadRecordResult::Record {
                self.boundary = self.read;
            }
        }
        (self.boundary >= self.run_bytes).then(|| self.take_run())
    }

    /// The records not yet handed back, a last one without a line ending included; `None`
    /// when there are none.
    pub(crate) fn finish(&mut self) -> Option<Vec<u8>> {
        self.boundary = self.pending.len();
        let run = self.take_run();
        (!run.iter().all(u8::is_ascii_whitespace)).then_some(run)
    }

    fn take_run(&mut self) -> Vec<u8> {
        let rest = self.pending.split_off(self.boundary);
        self.read -= self.boundary;
        self.boundary = 0;
        std::mem::replace(&mut self.pending, rest)
    }
}

/// `chunk` without its NUL bytes; the chunk itself, uncopied, when it has none.
pub(crate) fn strip_nul(chunk: Bytes) -> Bytes {
    if !chunk.contains(&0) {
        return chunk;
    }
    let mut kept = BytesMut::with_capacity(chunk.len());
    for part in chunk.split(|&b| b == 0) {
        kept.extend_from_slice(part);
    }
    kept.freeze()
}

/// The records a page's CSV holds, its header row left out. A page with no records may come
/// as a header alone or as nothing at all.
pub(crate) fn data_records(rows: u64) -> u64 {
    rows.saturating_sub(1)
}

/// What the body stream checks its count against, and names in its errors.
pub(crate) struct PageIdentity {
    pub(crate) endpoint: Endpoint,
    pub(crate) job_id: String,
    pub(crate) locator: Option<String>,
    pub(crate) number_of_records: u64,
}

/// A result page's body: chunks without NULs, then an error in place of the end if the
/// records read differ from the page's `Sforce-NumberOfRecords`.
pub(crate) struct CsvBody {
    inner: Option<BodyStream>,
    counter: RecordCounter,
    page: PageIdentity,
}

impl CsvBody {
    pub(crate) fn new(inner: BodyStream, page: PageIdentity) -> Self {
        Self {
            inner: Some(inner),
            counter: RecordCounter::default(),
            page,
        }
    }

    /// The check at the end of the body.
    fn check_count(&mut self) -> Result<()> {
        let counted = data_records(self.counter.finish());
        if counted == self.page.number_of_records {
            return Ok(());
        }
        Err(Error::BulkPageCount {
            job_id: self.page.job_id.clone(),
            locator: self.page.locator.clone(),
            number_of_records: self.page.number_of_records,
            counted,
        })
    }
}

impl Stream for CsvBody {
    type Item = Result<Bytes>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        loop {
            let Some(inner) = this.inner.as_mut() else {
                return Poll::Ready(None);
            };
            match inner.poll_next_unpin(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Some(Ok(chunk))) => {
                    let chunk = strip_nul(chunk);
                    if chunk.is_empty() {
                        continue;
                    }
                    this.counter.feed(&chunk);
                    return Poll::Ready(Some(Ok(chunk)));
                }
                Poll::Ready(Some(Err(source))) => {
                    // A body cut off half-way: nothing after it can be trusted.
                    this.inner = None;
                    return Poll::Ready(Some(Err(Error::Transport {
                        endpoint: this.page.endpoint.clone(),
                        source: source.without_url(),
                    })));
                }
                Poll::Ready(None) => {
                    this.inner = None;
                    return Poll::Ready(this.check_count().err().map(Err));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
