//! `GET /query/?q=` and `/queryAll/?q=`, and the follow-up pages behind
//! `nextRecordsUrl` (`/query/<locator>-<offset>`, for queryAll too), with the batch size
//! from `Sforce-Query-Options` (reference §2.2).

use std::sync::Arc;

use axum::extract::{Extension, Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use super::auth::Caller;
use super::error::RestError;
use super::locators::split_page;
use super::state::AppState;
use crate::org::{PageRecords, QueryCursor};

pub const DEFAULT_BATCH_SIZE: usize = 2_000;
pub const MIN_BATCH_SIZE: usize = 200;
pub const MAX_BATCH_SIZE: usize = 2_000;

/// One page of a query result, in Salesforce's key order.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct QueryPage<'a> {
    total_size: usize,
    done: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    next_records_url: Option<String>,
    records: PageRecords<'a>,
}

/// What a locator keeps: the query's results, and the batch size it was asked for,
/// which follow-up pages keep unless they ask for another.
#[derive(Debug)]
pub struct OpenQuery {
    cursor: QueryCursor,
    batch_size: usize,
}

#[derive(Debug, Deserialize)]
pub struct QueryParams {
    q: Option<String>,
}

/// `GET /query/?q=`.
pub async fn query(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Query(params): Query<QueryParams>,
    headers: HeaderMap,
) -> Result<Response, RestError> {
    first_page(state, caller, params, &headers, false).await
}

/// `GET /queryAll/?q=`: the recycle bin included.
pub async fn query_all(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Query(params): Query<QueryParams>,
    headers: HeaderMap,
) -> Result<Response, RestError> {
    first_page(state, caller, params, &headers, true).await
}

async fn first_page(
    state: AppState,
    caller: Caller,
    params: QueryParams,
    headers: &HeaderMap,
    include_deleted: bool,
) -> Result<Response, RestError> {
    let soql = params
        .q
        .filter(|q| !q.trim().is_empty())
        .ok_or_else(|| RestError::bad_request("MALFORMED_QUERY", "No query string specified"))?;
    let batch = batch_size(headers).unwrap_or(DEFAULT_BATCH_SIZE);
    // Filtering and serializing a page take a while; they run on the blocking pool. The
    // records are written straight from the org into the body, under its read lock.
    blocking(move || {
        let version = caller.version.number();
        let org = state.org();
        let open = Arc::new(OpenQuery {
            cursor: org.query(&soql, include_deleted)?,
            batch_size: batch,
        });
        let done = batch >= open.cursor.len();
        let next_records_url = (!done).then(|| {
            let locator = state.locators().open(Arc::clone(&open));
            next_url(&caller, &locator, batch)
        });
        json_response(&QueryPage {
            total_size: open.cursor.total_size(),
            done,
            next_records_url,
            records: org.page_records(&open.cursor, 0, batch, &version),
        })
    })
    .await?
}

/// `GET /query/<locator>-<offset>` (and the same under `/queryAll/`).
pub async fn next_page(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path((_, segment)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, RestError> {
    let (locator, offset) = split_page(&segment).ok_or_else(invalid_locator)?;
    let open: Arc<OpenQuery> = state.locators().get(locator).ok_or_else(invalid_locator)?;
    if offset > open.cursor.len() {
        return Err(invalid_locator());
    }
    let batch = batch_size(&headers).unwrap_or(open.batch_size);
    let locator = locator.to_owned();
    blocking(move || {
        let version = caller.version.number();
        let end = offset.saturating_add(batch);
        let done = end >= open.cursor.len();
        json_response(&QueryPage {
            total_size: open.cursor.total_size(),
            done,
            next_records_url: (!done).then(|| next_url(&caller, &locator, end)),
            records: state
                .org()
                .page_records(&open.cursor, offset, batch, &version),
        })
    })
    .await?
}

/// A page as a JSON response, serialized where it was built.
fn json_response(page: &QueryPage) -> Result<Response, RestError> {
    // Records average a few hundred bytes; start big enough to avoid most regrowth.
    let mut body = Vec::with_capacity(256 * page.records.len() + 128);
    serde_json::to_writer(&mut body, page).map_err(|_| internal_error())?;
    Ok(([(header::CONTENT_TYPE, "application/json")], body).into_response())
}

/// `/services/data/vXX.X/query/<locator>-<offset>`: queryAll pages use `/query/` too.
fn next_url(caller: &Caller, locator: &str, offset: usize) -> String {
    format!("{}/query/{locator}-{offset}", caller.version.base_path())
}

fn invalid_locator() -> RestError {
    RestError::bad_request("INVALID_QUERY_LOCATOR", "invalid query locator")
}

/// `Sforce-Query-Options: batchSize=N`, clamped to 200..=2000; `None` when absent or
/// unreadable.
pub fn batch_size(headers: &HeaderMap) -> Option<usize> {
    headers
        .get("sforce-query-options")
        .and_then(|v| v.to_str().ok())
        .and_then(|options| {
            options.split(',').find_map(|option| {
                let (key, value) = option.split_once('=')?;
                key.trim()
                    .eq_ignore_ascii_case("batchSize")
                    .then(|| value.trim().parse::<usize>().ok())
                    .flatten()
            })
        })
        .map(|n| n.clamp(MIN_BATCH_SIZE, MAX_BATCH_SIZE))
}

/// Runs org work on the blocking pool; a panic there answers 500, never kills the server.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, RestError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|_| internal_error())
}

fn internal_error() -> RestError {
    RestError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "UNKNOWN_EXCEPTION",
        "An unexpected error occurred. Please include this ErrorId if you contact support.",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert("Sforce-Query-Options", value.parse().unwrap());
        headers
    }

    #[test]
    fn batch_size_is_clamped() {
        assert_eq!(batch_size(&HeaderMap::new()), None);
        assert_eq!(batch_size(&headers("batchSize=500")), Some(500));
        assert_eq!(batch_size(&headers("batchSize=10")), Some(200));
        assert_eq!(batch_size(&headers("batchSize=5000")), Some(2000));
        assert_eq!(batch_size(&headers("batchSize=abc")), None);
        assert_eq!(batch_size(&headers("foo=1, batchSize = 300")), Some(300));
    }
}
