//! Where a part's CSV is written and what it is uploaded from: memory, or an unnamed
//! temporary file read as the upload goes.
//!
//! A part may be 100 MB, and a caller writing a large push runs several groups of parts side
//! by side; in a file ([`CsvParts::spooled`](super::CsvParts::spooled)) a part costs the
//! process nothing but its keys. The file has no name (`tempfile::tempfile`), so it is gone
//! once the part is dropped or the process dies. The upload reads it in chunks, off the async
//! threads, from the start again for each attempt, so that a retried `PUT` (after a refused
//! connection or an expired session) sends it whole.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::os::unix::fs::FileExt;
use std::sync::Arc;

use bytes::Bytes;

use crate::error::{Error, Result};

/// How much of a spooled part is read at a time for its upload.
const UPLOAD_CHUNK_BYTES: u64 = 256 * 1024;

/// A part's CSV, as [`Bulk::upload_ingest_data`](crate::bulk::Bulk::upload_ingest_data)
/// sends it.
#[derive(Debug, Clone)]
pub enum CsvData {
    Memory(Bytes),
    Spooled(SpooledCsv),
}

impl CsvData {
    /// Its size in bytes.
    pub fn len(&self) -> u64 {
        match self {
            CsvData::Memory(bytes) => bytes.len() as u64,
            CsvData::Spooled(file) => file.len,
        }
    }

    /// Whether it holds nothing.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The bytes as a request body, a file's read from its start in chunks.
    pub(crate) fn body(&self) -> reqwest::Body {
        match self {
            CsvData::Memory(bytes) => reqwest::Body::from(bytes.clone()),
            CsvData::Spooled(file) => file.body(),
        }
    }

    /// The bytes, read whole: for tests and small parts.
    pub fn to_bytes(&self) -> std::io::Result<Bytes> {
        match self {
            CsvData::Memory(bytes) => Ok(bytes.clone()),
            CsvData::Spooled(file) => {
                let mut bytes = vec![0; usize::try_from(file.len).map_err(std::io::Error::other)?];
                file.file.read_exact_at(&mut bytes, 0)?;
                Ok(Bytes::from(bytes))
            }
        }
    }
}

impl From<Bytes> for CsvData {
    fn from(bytes: Bytes) -> Self {
        CsvData::Memory(bytes)
    }
}

/// A part's CSV in an unnamed temporary file.
#[derive(Debug, Clone)]
pub struct SpooledCsv {
    file: Arc<File>,
    len: u64,
}

impl SpooledCsv {
    /// The file as a request body, read from its start in chunks.
    fn body(&self) -> reqwest::Body {
        let file = Arc::clone(&self.file);
        let len = self.len;
        let chunks = futures::stream::try_unfold(0_u64, move |at| {
            let file = Arc::clone(&file);
            async move {
                if at >= len {
                    return Ok(None);
                }
                let size = (len - at).min(UPLOAD_CHUNK_BYTES);
                let chunk = tokio::task::spawn_blocking(move || {
                    let mut chunk = vec![0; size as usize];
                    file.read_exact_at(&mut chunk, at).map(|()| chunk)
                })
                .await
                .map_err(std::io::Error::other)??;
                Ok::<_, std::io::Error>(Some((Bytes::from(chunk), at + size)))
            }
        });
        reqwest::Body::wrap_stream(chunks)
    }
}

/// Where [`CsvParts`](super::CsvParts) writes the part it is building.
#[derive(Debug)]
pub(crate) enum Sink {
    Memory(Vec<u8>),
    File { file: BufWriter<File>, len: u64 },
}

impl Sink {
    /// A new part holding `header`, in memory or (`spooled`) in a new file.
    pub(crate) fn new(header: &[u8], spooled: bool) -> Result<Sink> {
        if !spooled {
            return Ok(Sink::Memory(header.to_vec()));
        }
        let file = tempfile::tempfile().map_err(spool_error)?;
        let mut sink = Sink::File {
            file: BufWriter::with_capacity(256 * 1024, file),
            len: 0,
        };
        sink.write(header)?;
        Ok(sink)
    }

    pub(crate) fn len(&self) -> u64 {
        match self {
            Sink::Memory(csv) => csv.len() as u64,
            Sink::File { len, .. } => *len,
        }
    }

    pub(crate) fn write(&mut self, bytes: &[u8]) -> Result<()> {
        match self {
            Sink::Memory(csv) => csv.extend_from_slice(bytes),
            Sink::File { file, len } => {
                file.write_all(bytes).map_err(spool_error)?;
                *len += bytes.len() as u64;
            }
        }
        Ok(())
    }

    /// The part written, to upload.
    pub(crate) fn into_data(self) -> Result<CsvData> {
        match self {
            Sink::Memory(csv) => Ok(CsvData::Memory(Bytes::from(csv))),
            Sink::File { file, len } => {
                let file = file
                    .into_inner()
                    .map_err(|error| spool_error(error.into_error()))?;
                Ok(CsvData::Spooled(SpooledCsv {
                    file: Arc::new(file),
                    len,
                }))
            }
        }
    }

    /// Whether it writes to a file.
    pub(crate) fn spooled(&self) -> bool {
        matches!(self, Sink::File { .. })
    }
}

fn spool_error(source: std::io::Error) -> Error {
    Error::UploadSpool { source }
}
