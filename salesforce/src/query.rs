//! SOQL: `query` and `queryAll` as async streams that follow `nextRecordsUrl` to the last
//! page (reference §2.2).
//!
//! `queryAll` also returns soft-deleted and merged records (`IsDeleted = true`); its
//! follow-up pages come from `/query/<locator>` like any other and still include them.
//!
//! A page's `records` are JSON maps by default. A caller that knows what it wants from them
//! passes a [`RecordsDecoder`], which reads the records in the same pass that reads the
//! page, straight from the response body: a 2,000-record page is parsed once, not parsed
//! into maps and then taken apart again.

use std::fmt;
use std::sync::Arc;

use futures::stream::{self, BoxStream};
use futures::{StreamExt, TryStreamExt};
use reqwest::Method;
use reqwest::header::HeaderValue;
use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde::{Deserialize, Serialize};

use crate::Record;
use crate::client::{ApiRequest, Client, Target};
use crate::error::{Error, Result};

/// One page of a query result, with its records as JSON maps (`R`) or as a
/// [`RecordsDecoder`] made them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct QueryPage<R = Vec<Record>> {
    /// Records in the whole result, repeated on every page.
    pub total_size: u64,
    /// Whether this is the last page.
    pub done: bool,
    /// The path of the next page; present only when `done` is false.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_records_url: Option<String>,
    /// The records, each with its `attributes` (`type`, `url`), keyed by canonical field name.
    /// Parent lookups are nested objects (or `null`); subqueries are nested query results.
    pub records: R,
    /// When the request for this page left for Salesforce (after the rate limiter): the
    /// page holds every record committed before then. Not part of the JSON.
    #[serde(skip)]
    pub sent_at: Option<chrono::DateTime<chrono::Utc>>,
}

/// Reads the `records` array of a query page into the caller's own form.
pub trait RecordsDecoder: Send + Sync + 'static {
    /// What the records become.
    type Records: Send + 'static;

    /// Reads the `records` array (a JSON array of record objects) from `records`.
    fn decode<'de, D: Deserializer<'de>>(
        &self,
        records: D,
    ) -> std::result::Result<Self::Records, D::Error>;
}

/// The default: each record a JSON map.
#[derive(Debug, Clone, Copy, Default)]
pub struct RecordMaps;

impl RecordsDecoder for RecordMaps {
    type Records = Vec<Record>;

    fn decode<'de, D: Deserializer<'de>>(
        &self,
        records: D,
    ) -> std::result::Result<Self::Records, D::Error> {
        Vec::<Record>::deserialize(records)
    }
}

/// A page's envelope (`totalSize`, `done`, `nextRecordsUrl`) around records read by `D`.
struct PageSeed<'d, D>(&'d D);

impl<'de, D: RecordsDecoder> DeserializeSeed<'de> for PageSeed<'_, D> {
    type Value = QueryPage<D::Records>;

    fn deserialize<De: Deserializer<'de>>(
        self,
        deserializer: De,
    ) -> std::result::Result<Self::Value, De::Error> {
        deserializer.deserialize_map(self)
    }
}

/// The records field, handed to the decoder.
struct RecordsSeed<'d, D>(&'d D);

impl<'de, D: RecordsDecoder> DeserializeSeed<'de> for RecordsSeed<'_, D> {
    type Value = D::Records;

    fn deserialize<De: Deserializer<'de>>(
        self,
        deserializer: De,
    ) -> std::result::Result<Self::Value, De::Error> {
        self.0.decode(deserializer)
    }
}

impl<'de, D: RecordsDecoder> Visitor<'de> for PageSeed<'_, D> {
    type Value = QueryPage<D::Records>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a query result page")
    }

    fn visit_map<A: MapAccess<'de>>(
        self,
        mut map: A,
    ) -> std::result::Result<Self::Value, A::Error> {
        use serde::de::Error as _;
        let (mut total_size, mut done, mut next_records_url, mut records) =
            (None, None, None, None);
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            match key.as_ref() {
                "totalSize" => total_size = Some(map.next_value()?),
                "done" => done = Some(map.next_value()?),
                "nextRecordsUrl" => next_records_url = map.next_value()?,
                "records" => records = Some(map.next_value_seed(RecordsSeed(self.0))?),
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(QueryPage {
            total_size: total_size.ok_or_else(|| A::Error::missing_field("totalSize"))?,
            done: done.ok_or_else(|| A::Error::missing_field("done"))?,
            next_records_url,
            records: records.ok_or_else(|| A::Error::missing_field("records"))?,
            sent_at: None,
        })
    }
}

impl<R> QueryPage<R> {
    /// Reads a page from its JSON body, its records with `decoder`.
    pub fn decode<D: RecordsDecoder<Records = R>>(
        body: &[u8],
        decoder: &D,
    ) -> serde_json::Result<Self> {
        let mut deserializer = serde_json::Deserializer::from_slice(body);
        let page = PageSeed(decoder).deserialize(&mut deserializer)?;
        deserializer.end()?;
        Ok(page)
    }
}

/// A SOQL query about to run. Nothing is sent until its stream is polled.
#[derive(Debug, Clone)]
pub struct Query {
    client: Client,
    soql: String,
    /// The path under `/services/data/vXX.X/`: `query`, `queryAll`, `tooling/query`.
    resource: &'static [&'static str],
    batch_size: Option<u16>,
}

impl Client {
    /// A `query`: live records only.
    pub fn query(&self, soql: impl Into<String>) -> Query {
        Query::new(self, soql.into(), &["query"])
    }

    /// A `queryAll`: live records, and soft-deleted and merged ones with `IsDeleted = true`.
    pub fn query_all(&self, soql: impl Into<String>) -> Query {
        Query::new(self, soql.into(), &["queryAll"])
    }

    /// A query of the Tooling API (`tooling/query`): setup objects such as
    /// `PlatformEventChannelMember`, the entities selected for Change Data Capture.
    pub fn tooling_query(&self, soql: impl Into<String>) -> Query {
        Query::new(self, soql.into(), &["tooling", "query"])
    }
}

enum Cursor {
    First,
    Next(String),
}

impl Query {
    fn new(client: &Client, soql: String, resource: &'static [&'static str]) -> Self {
        Self {
            client: client.clone(),
            soql,
            resource,
            batch_size: None,
        }
    }

    /// Asks for pages of `size` records (`Sforce-Query-Options: batchSize`). Salesforce takes
    /// 200 to 2,000 (default 2,000) and treats it as a hint: it may choose another size.
    pub fn batch_size(mut self, size: u16) -> Self {
        self.batch_size = Some(size);
        self
    }

    /// The result page by page, following `nextRecordsUrl` until `done`.
    pub fn pages(self) -> BoxStream<'static, Result<QueryPage>> {
        self.pages_decoded(Arc::new(RecordMaps))
    }

    /// The result page by page, each page's records read by `decoder`.
    pub fn pages_decoded<D: RecordsDecoder>(
        self,
        decoder: Arc<D>,
    ) -> BoxStream<'static, Result<QueryPage<D::Records>>> {
        stream::try_unfold(
            (self, decoder, Some(Cursor::First)),
            |(query, decoder, cursor)| async move {
                let Some(cursor) = cursor else {
                    return Ok(None);
                };
                let (page, next) = query.fetch(cursor, &decoder).await?;
                Ok(Some((page, (query, decoder, next))))
            },
        )
        .boxed()
    }

    /// The result record by record, fetching pages as the stream is read.
    pub fn records(self) -> BoxStream<'static, Result<Record>> {
        self.pages()
            .map_ok(|page| stream::iter(page.records.into_iter().map(Ok)))
            .try_flatten()
            .boxed()
    }

    /// Every record, read into memory. Fine for small results; stream large ones.
    pub async fn collect_records(self) -> Result<Vec<Record>> {
        self.records().try_collect().await
    }

    /// Fetches one page, and says where the next one is.
    async fn fetch<D: RecordsDecoder>(
        &self,
        cursor: Cursor,
        decoder: &Arc<D>,
    ) -> Result<(QueryPage<D::Records>, Option<Cursor>)> {
        let mut request = match cursor {
            Cursor::First => ApiRequest::rest(Method::GET, self.resource.iter().copied())
                .query("q", self.soql.clone()),
            Cursor::Next(path) => ApiRequest::new(Method::GET, Target::Path(path)),
        };
        if let Some(size) = self.batch_size {
            let value = HeaderValue::from_str(&format!("batchSize={size}"))
                .map_err(|e| Error::InvalidRequest(format!("batchSize: {e}")))?;
            request = request.header("sforce-query-options", value);
        }
        let response = self.client.execute(request).await?;
        // A page of 2,000 records takes milliseconds to read: on the blocking pool, so the
        // async workers (and whatever the caller does meanwhile) are not held up.
        let body = response.body.clone();
        let reader = Arc::clone(decoder);
        let mut page = tokio::task::spawn_blocking(move || QueryPage::decode(&body, &*reader))
            .await
            .map_err(|e| Error::Protocol {
                endpoint: response.endpoint.clone(),
                detail: format!("reading the query page stopped: {e}"),
            })?
            .map_err(|source| Error::Decode {
                endpoint: response.endpoint.clone(),
                what: "query page",
                source,
            })?;
        page.sent_at = Some(response.sent_at);
        let next = match (page.done, &page.next_records_url) {
            (true, _) => None,
            (false, Some(next)) => Some(Cursor::Next(next.clone())),
            (false, None) => {
                return Err(Error::Protocol {
                    endpoint: response.endpoint,
                    detail: "a query page with done=false has no nextRecordsUrl".to_owned(),
                });
            }
        };
        Ok((page, next))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_page_with_next_records_url() {
        let page: QueryPage = serde_json::from_str(
            r#"{"totalSize": 3214, "done": false,
                "nextRecordsUrl": "/services/data/v62.0/query/0r8xx3FMjuDHXUcAAD-2000",
                "records": [
                  {"attributes": {"type": "Account", "url": "/services/data/v62.0/sobjects/Account/001D000000IqhSLIAZ"},
                   "Id": "001D000000IqhSLIAZ", "Name": "Acme", "AnnualRevenue": 1.5E7, "IsDeleted": false}
                ]}"#,
        )
        .unwrap();
        assert_eq!(page.total_size, 3214);
        assert!(!page.done);
        assert_eq!(
            page.next_records_url.as_deref(),
            Some("/services/data/v62.0/query/0r8xx3FMjuDHXUcAAD-2000")
        );
        assert_eq!(page.records[0]["Name"], "Acme");
        assert_eq!(page.records[0]["attributes"]["type"], "Account");
    }

    #[test]
    fn last_page_without_next_records_url() {
        let page: QueryPage = serde_json::from_str(
            r#"{"totalSize": 1, "done": true, "records": [
                 {"attributes": {"type": "Contact", "url": "/services/data/v62.0/sobjects/Contact/003D000000QV9n2IAD"},
                  "Id": "003D000000QV9n2IAD", "LastName": "Ng"}]}"#,
        )
        .unwrap();
        assert!(page.done);
        assert_eq!(page.next_records_url, None);
        assert_eq!(page.records.len(), 1);
    }

    #[test]
    fn nested_parents_subqueries_and_empty_lookups() {
        let page: QueryPage = serde_json::from_str(
            r#"{"totalSize": 2, "done": true, "records": [
                 {"attributes": {"type": "Contact", "url": "/services/data/v62.0/sobjects/Contact/003D000000QV9n2IAD"},
                  "Name": "Ann Ng",
                  "Account": {"attributes": {"type": "Account", "url": "/services/data/v62.0/sobjects/Account/001D000000IqhSLIAZ"},
                              "Name": "Acme", "Owner": {"attributes": {"type": "User", "url": "/x"}, "Alias": "jdoe"}}},
                 {"attributes": {"type": "Contact", "url": "/services/data/v62.0/sobjects/Contact/003D000000QV9n3IAD"},
                  "Name": "Bo Li", "Account": null}
               ]}"#,
        )
        .unwrap();
        assert_eq!(page.records[0]["Account"]["Name"], "Acme");
        assert_eq!(page.records[0]["Account"]["Owner"]["Alias"], "jdoe");
        assert!(page.records[1]["Account"].is_null());

        let accounts: QueryPage = serde_json::from_str(
            r#"{"totalSize": 1, "done": true, "records": [
                 {"attributes": {"type": "Account", "url": "/x"}, "Name": "Acme",
                  "Contacts": {"totalSize": 2, "done": true, "records": [
                    {"attributes": {"type": "Contact", "url": "/y"}, "LastName": "Ng"},
                    {"attributes": {"type": "Contact", "url": "/z"}, "LastName": "Li"}]}}]}"#,
        )
        .unwrap();
        let contacts: QueryPage =
            serde_json::from_value(accounts.records[0]["Contacts"].clone()).unwrap();
        assert_eq!(contacts.total_size, 2);
        assert_eq!(contacts.records[1]["LastName"], "Li");
    }

    #[test]
    fn empty_result() {
        let page: QueryPage =
            serde_json::from_str(r#"{"totalSize":0,"done":true,"records":[]}"#).unwrap();
        assert_eq!(page.total_size, 0);
        assert!(page.records.is_empty());
    }
}
