//! An ingest job's result files: `GET …/successfulResults/` (`"sf__Id","sf__Created"`
//! then the uploaded columns), `…/failedResults/` (`"sf__Id","sf__Error"`, the error as
//! `CODE:message:fields --`, `sf__Id` empty for a failed create) and
//! `…/unprocessedrecords/` (the uploaded columns of rows never processed: the job failed
//! or was aborted first).
//!
//! Written as a captured `failedResults` answer is: the `sf__` headers quoted, the
//! uploaded header names as they came, every value quoted; in the job's delimiter and
//! line ending; `text/csv`, gzip-compressed when the request accepts it. The rows echo
//! the values uploaded, as read from the CSV. Each file lists its rows in upload order
//! (Salesforce promises no order). While the job runs, the files hold the rows processed
//! so far and `unprocessedrecords/` holds nothing.

use std::io::Write as _;

use axum::extract::{Extension, Path, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use csv::StringRecord;
use flate2::Compression;
use flate2::write::GzEncoder;

use super::ingest::{IngestJob, require_ingest_version};
use super::job_not_found;
use super::jobs::Job;
use super::results::accepts_gzip;
use crate::http::auth::Caller;
use crate::http::error::RestError;
use crate::http::state::AppState;
use crate::org::CsvFormat;
use crate::org::ingest::{RowOutcome, upload_reader};

/// Which of the three files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum File {
    Successful,
    Failed,
    Unprocessed,
}

pub async fn successful(
    state: State<AppState>,
    caller: Extension<Caller>,
    path: Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, RestError> {
    respond(state, caller, path, headers, File::Successful).await
}

pub async fn failed(
    state: State<AppState>,
    caller: Extension<Caller>,
    path: Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, RestError> {
    respond(state, caller, path, headers, File::Failed).await
}

pub async fn unprocessed(
    state: State<AppState>,
    caller: Extension<Caller>,
    path: Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, RestError> {
    respond(state, caller, path, headers, File::Unprocessed).await
}

async fn respond(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path((_, id)): Path<(String, String)>,
    headers: HeaderMap,
    file: File,
) -> Result<Response, RestError> {
    require_ingest_version(&caller)?;
    let job = {
        let bulk = state.bulk();
        bulk.ingest.get(&id).ok_or_else(job_not_found)?.clone()
    };
    let csv = tokio::task::spawn_blocking(move || render(&job, file))
        .await
        .unwrap_or_default();
    let gzip = accepts_gzip(&headers);
    let body = if gzip {
        let mut encoder = GzEncoder::new(Vec::new(), Compression::fast());
        // Writing into a Vec cannot fail.
        let _ = encoder.write_all(&csv);
        encoder.finish().unwrap_or_default()
    } else {
        csv
    };
    let mut response = (
        [(header::CONTENT_TYPE, HeaderValue::from_static("text/csv"))],
        body,
    )
        .into_response();
    if gzip {
        response
            .headers_mut()
            .insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
    }
    Ok(response)
}

/// The file's CSV: the header, then each row it lists.
fn render(job: &Job<IngestJob>, file: File) -> Vec<u8> {
    let format = job.csv_format();
    let data = job.detail.data();
    let mut reader = upload_reader(format, &data);
    let header = reader.headers().cloned().unwrap_or_default();
    let mut out = Vec::new();
    let lead: &[&str] = match file {
        File::Successful => &["sf__Id", "sf__Created"],
        File::Failed => &["sf__Id", "sf__Error"],
        File::Unprocessed => &[],
    };
    let names = lead.iter().map(|name| quote(name, true)).chain(
        header
            .iter()
            .map(|name| quote(name, needs_quotes(name, format))),
    );
    line(names, format, &mut out);
    let ended = job.state.is_terminal();
    for (i, row) in reader.records().flatten().enumerate() {
        let lead = match (job.detail.outcomes.get(i), file) {
            (Some(RowOutcome::Succeeded { id, created }), File::Successful) => {
                vec![id.to_string(), created.to_string()]
            }
            (Some(RowOutcome::Failed { id, error }), File::Failed) => vec![
                id.map(|id| id.to_string()).unwrap_or_default(),
                format!(
                    "{}:{}:{} --",
                    error.status_code,
                    error.message,
                    error.fields.join(",")
                ),
            ],
            (None, File::Unprocessed) if ended => Vec::new(),
            _ => continue,
        };
        row_line(&lead, &row, format, &mut out);
    }
    out
}

fn row_line(lead: &[String], row: &StringRecord, format: CsvFormat, out: &mut Vec<u8>) {
    let cells = lead
        .iter()
        .map(String::as_str)
        .chain(row.iter())
        .map(|cell| quote(cell, true));
    line(cells, format, out);
}

fn line(cells: impl Iterator<Item = String>, format: CsvFormat, out: &mut Vec<u8>) {
    for (i, cell) in cells.enumerate() {
        if i > 0 {
            out.push(format.delimiter);
        }
        out.extend_from_slice(cell.as_bytes());
    }
    out.extend_from_slice(format.line_ending);
}

fn needs_quotes(text: &str, format: CsvFormat) -> bool {
    text.bytes()
        .any(|b| b == format.delimiter || matches!(b, b'"' | b'\r' | b'\n'))
}

fn quote(text: &str, quoted: bool) -> String {
    if quoted {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_owned()
    }
}
