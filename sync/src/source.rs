//! Where records come from: one interface for the backfill (pages in Id order) and the
//! incremental feed (pages in `SystemModstamp` order, soft deletes included).
//!
//! [`RestSource`] serves both with SOQL over the REST API, one request per page. The Bulk
//! API 2.0 (for large backfills) and Change Data Capture (for the feed) plug in here: the
//! scheduler, the writer and the checkpoints do not change.
//!
//! A page arrives as the text of each field's column ([`Columns`]), since that is all the
//! writer needs and reading it so is several times cheaper than reading JSON maps.

use std::sync::Arc;

use futures::StreamExt;
use futures::future::BoxFuture;
use sfpg_salesforce::{Client, SalesforceId};

use crate::error::{Result, SyncError};
use crate::plan::MirroredField;
use crate::soql::{self, ModstampCursor};
use sfpg_control::writer::{Columns, TextColumns};

/// One page of records.
#[derive(Debug, Clone, PartialEq)]
pub struct Page {
    /// The records' values, field by field in the order asked for, records in the order
    /// asked for.
    pub columns: Columns,
    /// Nothing follows this page: the backfill is complete, or the feed is caught up.
    pub complete: bool,
    /// When its request left for Salesforce (after the rate limiter), if one did.
    pub sent_at: Option<chrono::DateTime<chrono::Utc>>,
}

impl Page {
    /// How many records.
    pub fn len(&self) -> usize {
        self.columns.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A supplier of an object's records.
pub trait Source: Send + Sync {
    /// Up to `limit` records of `object` with Ids after `after` (or from the first), in Id
    /// order, with `fields` (which start with `Id`). Live records only.
    fn backfill_page<'a>(
        &'a self,
        object: &'a str,
        fields: &'a [&'a MirroredField],
        after: Option<&'a SalesforceId>,
        limit: u32,
    ) -> BoxFuture<'a, Result<Page>>;

    /// Up to `limit` records of `object` changed after `cursor`, in `SystemModstamp` then Id
    /// order, with `fields`. Soft-deleted records are included, with `IsDeleted = true`.
    fn changes<'a>(
        &'a self,
        object: &'a str,
        fields: &'a [&'a MirroredField],
        cursor: &'a ModstampCursor,
        limit: u32,
    ) -> BoxFuture<'a, Result<Page>>;

    /// The records of `object` with these Ids (at most [`MAX_IDS`]), with `fields`, in any
    /// order; soft-deleted ones included, with `IsDeleted = true`. An Id missing from a
    /// complete page names no record (any more).
    fn records<'a>(
        &'a self,
        object: &'a str,
        fields: &'a [&'a MirroredField],
        ids: &'a [SalesforceId],
    ) -> BoxFuture<'a, Result<Page>>;
}

/// The most Ids [`Source::records`] takes at once: 200 Ids keep the query's URL well
/// within Salesforce's 16,384 bytes.
pub const MAX_IDS: usize = 200;

/// SOQL over the REST API: `query` for the backfill, `queryAll` for changes.
#[derive(Debug, Clone)]
pub struct RestSource {
    client: Client,
}

impl RestSource {
    pub fn new(client: Client) -> Self {
        Self { client }
    }
}

/// The batch size hint for a `LIMIT`: Salesforce takes 200 to 2,000.
fn batch_hint(limit: u32) -> u16 {
    u16::try_from(limit.clamp(200, 2000)).unwrap_or(2000)
}

/// Reads only the first page of a query. A `LIMIT n` result that Salesforce splits anyway
/// is not followed: the next turn asks again from the last record, which costs the same one
/// request and leaves no locator to expire across a crash.
async fn first_page(
    query: sfpg_salesforce::Query,
    fields: &[&MirroredField],
    limit: u32,
) -> Result<Page> {
    let decoder = Arc::new(TextColumns::new(fields));
    let mut pages = Box::pin(query.batch_size(batch_hint(limit)).pages_decoded(decoder));
    let page = match pages.next().await {
        Some(page) => page?,
        None => {
            return Ok(Page {
                columns: Columns::new(fields.len()),
                complete: true,
                sent_at: None,
            });
        }
    };
    let page_len = page.records.len();
    let short = u32::try_from(page_len).is_ok_and(|n| n < limit);
    Ok(Page {
        complete: page.done && short,
        sent_at: page.sent_at,
        columns: page.records,
    })
}

fn names<'a>(fields: &[&'a MirroredField]) -> Vec<&'a str> {
    fields.iter().map(|f| f.field.as_str()).collect()
}

impl Source for RestSource {
    fn backfill_page<'a>(
        &'a self,
        object: &'a str,
        fields: &'a [&'a MirroredField],
        after: Option<&'a SalesforceId>,
        limit: u32,
    ) -> BoxFuture<'a, Result<Page>> {
        Box::pin(async move {
            let soql = soql::id_page(object, &names(fields), after, limit);
            first_page(self.client.query(soql), fields, limit).await
        })
    }

    fn changes<'a>(
        &'a self,
        object: &'a str,
        fields: &'a [&'a MirroredField],
        cursor: &'a ModstampCursor,
        limit: u32,
    ) -> BoxFuture<'a, Result<Page>> {
        Box::pin(async move {
            let soql = soql::changes(object, &names(fields), cursor, limit);
            first_page(self.client.query_all(soql), fields, limit).await
        })
    }

    fn records<'a>(
        &'a self,
        object: &'a str,
        fields: &'a [&'a MirroredField],
        ids: &'a [SalesforceId],
    ) -> BoxFuture<'a, Result<Page>> {
        Box::pin(async move {
            let ids = &ids[..ids.len().min(MAX_IDS)];
            let soql = soql::by_ids(object, &names(fields), ids);
            let limit = u32::try_from(ids.len()).unwrap_or(u32::MAX);
            let page = first_page(self.client.query_all(soql), fields, limit).await?;
            // A page of all the Ids asked for is not "short", yet nothing follows it: only
            // Salesforce's `done` says whether the answer is whole.
            let complete = page.complete || page.len() >= ids.len();
            Ok(Page { complete, ..page })
        })
    }
}

/// The number of records of `object`, by `SELECT COUNT()`.
pub async fn count(client: &Client, object: &str) -> Result<u64> {
    count_of(client, object, soql::count(object)).await
}

/// The number of records of `object` changed from `since` on: an incremental backlog.
pub async fn count_changed_since(
    client: &Client,
    object: &str,
    since: chrono::DateTime<chrono::Utc>,
) -> Result<u64> {
    count_of(client, object, soql::count_changed_since(object, since)).await
}

async fn count_of(client: &Client, object: &str, soql: String) -> Result<u64> {
    let mut pages = Box::pin(client.query(soql).pages());
    match pages.next().await {
        Some(page) => Ok(page?.total_size),
        None => Err(SyncError::MalformedRecord {
            object: object.to_owned(),
            detail: "count: no answer to SELECT COUNT()".to_owned(),
        }),
    }
}
