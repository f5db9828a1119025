//! A query job's results: `GET …/results?locator=&maxRecords=` (one page of CSV) and
//! `GET …/resultPages` (up to five page URLs at once, API 58.0 and later).
//!
//! As Salesforce documents them ("Get Results for a Query Job", "Get Parallel Results
//! for a Query Job"): results only once the job is `JobComplete` (else `412
//! JOB_NOT_COMPLETE` with the text the API 46.0 guide quotes), only in the API version
//! the job was created with (else `409`); `text/csv` with a header row on every page;
//! `Sforce-NumberOfRecords` (records in this page) and `Sforce-Locator` (the next
//! page's locator, or the literal `null` after the last); a locator names the same page
//! for as long as the job exists. The body is gzip-compressed when the request accepts
//! it ("Use Compression for Bulk API 2.0 Query Responses").
//!
//! A page is rendered from the job's snapshot while it is sent, a thousand rows at a
//! time on the blocking pool, so neither the result nor a page is ever held whole.

use std::io::Write as _;
use std::ops::Range;
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{Extension, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use flate2::Compression;
use flate2::write::GzEncoder;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use super::jobs::JobState;
use super::query::{decode_offset, encode_offset, require_query_version};
use super::{job_not_found, version_mismatch};
use crate::http::auth::Caller;
use crate::http::error::RestError;
use crate::http::state::AppState;
use crate::org::{CsvFormat, QuerySnapshot};

/// Records per page when the request names no `maxRecords`, unless the admin API sets
/// another. Salesforce picks a size "based on the service"; this is the emulator's pick.
pub const DEFAULT_MAX_RECORDS: usize = 50_000;
/// Rows rendered per chunk of the response body.
const CHUNK_ROWS: usize = 1_000;
/// The first API version with `/resultPages`.
const FIRST_RESULT_PAGES_VERSION: u16 = 58;
/// How many page URLs one `/resultPages` answer holds at most.
const RESULT_PAGES: usize = 5;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResultsParams {
    #[serde(default)]
    locator: Option<String>,
    #[serde(default)]
    max_records: Option<String>,
}

/// What a results request may read: the job's snapshot and CSV format, and the page
/// size to use when the request names none.
struct Readable {
    snapshot: Arc<QuerySnapshot>,
    format: CsvFormat,
    default_page_size: usize,
}

/// The job's snapshot, once the request may read it: the job exists, is asked for in
/// its own API version, and is complete (and no "412 poll race" fault holds it back).
fn readable(state: &AppState, caller: &Caller, id: &str) -> Result<Readable, RestError> {
    require_query_version(caller)?;
    let mut bulk = state.bulk();
    let default_page_size = bulk.default_page_size.max(1);
    let job = bulk.query.get_mut(id).ok_or_else(job_not_found)?;
    if job.api_version != caller.version.0 {
        return Err(version_mismatch(job.api_version, caller.version.0));
    }
    match (&job.detail.snapshot, job.state) {
        (Some(_), JobState::JobComplete) if job.detail.results_not_ready > 0 => {
            job.detail.results_not_ready -= 1;
            Err(not_complete(JobState::InProgress))
        }
        (Some(snapshot), JobState::JobComplete) => Ok(Readable {
            snapshot: Arc::clone(snapshot),
            format: job.csv_format(),
            default_page_size,
        }),
        _ => Err(not_complete(job.state)),
    }
}

/// `412 JOB_NOT_COMPLETE`, worded as Salesforce's guide quotes it.
pub fn not_complete(state: JobState) -> RestError {
    RestError::new(
        StatusCode::PRECONDITION_FAILED,
        "JOB_NOT_COMPLETE",
        format!(
            "can only download query results of successfully completed bulk job with \
             status: JOB_COMPLETE. Current status: {}",
            state.as_upper()
        ),
    )
}

/// A locator or `maxRecords` that names nothing: `400 INVALIDURL` (one of the Bulk API
/// 2.0 error codes; the wording is the emulator's).
fn invalid_url(message: &str) -> RestError {
    RestError::bad_request("INVALIDURL", message)
}

/// `GET /jobs/query/<id>/results`.
pub async fn results(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path((_, id)): Path<(String, String)>,
    Query(params): Query<ResultsParams>,
    headers: HeaderMap,
) -> Result<Response, RestError> {
    let readable = readable(&state, &caller, &id)?;
    let len = readable.snapshot.len();
    let start = match params.locator.as_deref() {
        None | Some("") => 0,
        Some(locator) => decode_offset(locator)
            .filter(|&offset| offset <= len)
            .ok_or_else(|| invalid_url("Invalid locator"))?,
    };
    let max = match params.max_records.as_deref() {
        None | Some("") => readable.default_page_size,
        Some(text) => text
            .parse::<usize>()
            .ok()
            .filter(|&n| n > 0)
            .ok_or_else(|| invalid_url("maxRecords must be a positive integer"))?,
    };
    let end = start.saturating_add(max).min(len);
    let next = if end < len {
        encode_offset(end)
    } else {
        "null".to_owned()
    };
    // Result storage counts a page the first time it is written; a cut-off fault
    // applies to one download.
    let (counted, cut) = match state.bulk().query.get_mut(&id) {
        Some(job) => (
            job.detail.served_pages.insert(start),
            job.detail.cut_download_after.take(),
        ),
        None => (false, None),
    };
    let gzip = accepts_gzip(&headers);
    let page = Page {
        rows: start..end,
        gzip,
        cut_after: cut,
    };
    let body = page_body(state, readable, page, counted);
    let mut response = (StatusCode::OK, body).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/csv"));
    headers.insert("sforce-numberofrecords", HeaderValue::from(end - start));
    if let Ok(value) = HeaderValue::from_str(&next) {
        headers.insert("sforce-locator", value);
    }
    if gzip {
        headers.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
    }
    Ok(response)
}

/// Whether `Accept-Encoding` takes gzip (and does not refuse it with `q=0`).
fn accepts_gzip(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|coding| {
            let mut parts = coding.split(';');
            let name = parts.next().unwrap_or_default().trim();
            let refused = parts.any(|p| {
                let p = p.trim().replace(' ', "");
                p == "q=0" || p == "q=0.0" || p == "q=0.00" || p == "q=0.000"
            });
            (name.eq_ignore_ascii_case("gzip") || name == "*") && !refused
        })
}

/// Which rows a response carries, and how.
struct Page {
    rows: Range<usize>,
    gzip: bool,
    /// Cut the connection after this many records (a fault).
    cut_after: Option<usize>,
}

type Chunk = Result<Bytes, std::io::Error>;

/// The body of one page: rendered in chunks on the blocking pool and handed over
/// through a small channel, so a slow reader holds back the writer.
fn page_body(state: AppState, readable: Readable, page: Page, counted: bool) -> Body {
    let (sender, receiver) = mpsc::channel::<Chunk>(4);
    tokio::task::spawn_blocking(move || {
        let written = write_page(&state, &readable, &page, &sender);
        if counted {
            state.bulk().limits.add_result_bytes(written);
        }
    });
    Body::from_stream(futures::stream::unfold(
        receiver,
        |mut receiver| async move { receiver.recv().await.map(|chunk| (chunk, receiver)) },
    ))
}

/// Where page bytes go: straight out, or through a gzip encoder.
enum Sink {
    Plain,
    Gzip(Box<GzEncoder<Vec<u8>>>),
}

impl Sink {
    /// The bytes to send for `csv`.
    fn push(&mut self, csv: Vec<u8>) -> Vec<u8> {
        match self {
            Sink::Plain => csv,
            Sink::Gzip(encoder) => {
                // Writing into a Vec cannot fail.
                let _ = encoder.write_all(&csv);
                std::mem::take(encoder.get_mut())
            }
        }
    }

    /// The bytes the encoder holds back so far, forced out.
    fn flush(&mut self) -> Vec<u8> {
        match self {
            Sink::Plain => Vec::new(),
            Sink::Gzip(encoder) => {
                let _ = encoder.flush();
                std::mem::take(encoder.get_mut())
            }
        }
    }

    /// The bytes left to send at the end.
    fn finish(self) -> Vec<u8> {
        match self {
            Sink::Plain => Vec::new(),
            Sink::Gzip(encoder) => (*encoder).finish().unwrap_or_default(),
        }
    }
}

/// Renders the header and the page's rows chunk by chunk, taking the org's lock for one
/// chunk at a time; returns how many bytes of CSV it wrote. Stops early when the client
/// has gone; ends the body with an error (hyper then drops the connection) when a fault
/// cuts it.
fn write_page(
    state: &AppState,
    readable: &Readable,
    page: &Page,
    sender: &mpsc::Sender<Chunk>,
) -> u64 {
    let mut sink = if page.gzip {
        Sink::Gzip(Box::new(GzEncoder::new(Vec::new(), Compression::fast())))
    } else {
        Sink::Plain
    };
    let rows = match page.cut_after {
        Some(n) => page.rows.start..page.rows.end.min(page.rows.start.saturating_add(n)),
        None => page.rows.clone(),
    };
    let send =
        |bytes: Vec<u8>| bytes.is_empty() || sender.blocking_send(Ok(Bytes::from(bytes))).is_ok();
    let mut csv = Vec::new();
    state
        .org()
        .write_csv_header(&readable.snapshot, readable.format, &mut csv);
    let mut written = 0u64;
    let mut at = rows.start;
    loop {
        let until = at.saturating_add(CHUNK_ROWS).min(rows.end);
        if until > at {
            state
                .org()
                .write_csv_rows(&readable.snapshot, at..until, readable.format, &mut csv);
        }
        written += csv.len() as u64;
        if !send(sink.push(std::mem::take(&mut csv))) {
            return written;
        }
        if until >= rows.end {
            break;
        }
        at = until;
        csv.reserve(CHUNK_ROWS * 256);
    }
    if page.cut_after.is_some() {
        // What the encoder holds goes out first, and the client gets a moment to read
        // the headers and those bytes: the cut falls mid-body, not before the answer.
        send(sink.flush());
        std::thread::sleep(std::time::Duration::from_millis(100));
        let cut = std::io::Error::new(
            std::io::ErrorKind::ConnectionReset,
            "download cut off by fault injection",
        );
        let _ = sender.blocking_send(Err(cut));
        return written;
    }
    send(sink.finish());
    written
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ResultPages {
    result_pages: Vec<ResultUrl>,
    next_records_url: Option<String>,
    done: bool,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ResultUrl {
    result_url: String,
}

#[derive(Debug, Deserialize)]
pub struct ResultPagesParams {
    #[serde(default)]
    locator: Option<String>,
}

/// `GET /jobs/query/<id>/resultPages`: up to five `resultUrl`s (each a results URL with
/// the locator of one page of the default size), `nextRecordsUrl` for the next five,
/// and `done` when there are no more. The guide's table spells the key
/// `nextRecordUrl`, its text and example `nextRecordsUrl`; the example wins.
pub async fn result_pages(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path((_, id)): Path<(String, String)>,
    Query(params): Query<ResultPagesParams>,
) -> Result<Response, RestError> {
    if caller.version.0 < FIRST_RESULT_PAGES_VERSION {
        return Err(RestError::not_found());
    }
    let readable = readable(&state, &caller, &id)?;
    let len = readable.snapshot.len();
    let mut at = match params.locator.as_deref() {
        None | Some("") => 0,
        Some(locator) => decode_offset(locator)
            .filter(|&offset| offset <= len)
            .ok_or_else(|| invalid_url("Invalid locator"))?,
    };
    let base = format!("{}/jobs/query/{id}", caller.version.base_path());
    let mut result_pages = Vec::new();
    // An empty result still has one page: its header row.
    while result_pages.len() < RESULT_PAGES && (at < len || (len == 0 && result_pages.is_empty())) {
        result_pages.push(ResultUrl {
            result_url: format!("{base}/results?locator={}", encode_offset(at)),
        });
        at = at.saturating_add(readable.default_page_size);
    }
    let done = at >= len;
    let body = ResultPages {
        result_pages,
        next_records_url: (!done)
            .then(|| format!("{base}/resultPages?locator={}", encode_offset(at))),
        done,
    };
    match serde_json::to_vec(&body) {
        Ok(bytes) => Ok((
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/json")],
            bytes,
        )
            .into_response()),
        Err(_) => Err(RestError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "UNKNOWN_EXCEPTION",
            "An unexpected error occurred.",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::ACCEPT_ENCODING, value.parse().unwrap());
        headers
    }

    #[test]
    fn reads_accept_encoding() {
        assert!(accepts_gzip(&headers("gzip")));
        assert!(accepts_gzip(&headers("deflate, gzip;q=0.8")));
        assert!(accepts_gzip(&headers("*")));
        assert!(!accepts_gzip(&headers("gzip;q=0")));
        assert!(!accepts_gzip(&headers("identity")));
        assert!(!accepts_gzip(&HeaderMap::new()));
    }
}
