//! The Salesforce client sfpg's sync and proxy use: OAuth flows, REST, SOQL query paging,
//! sObject Collections, Bulk API 2.0 query jobs ([`bulk`]), Change Data Capture streaming
//! over CometD ([`streaming`]), typed errors, retries and per-org rate limiting.
//!
//! It speaks Salesforce's documented wire behaviour (see `reference/salesforce-api.md` in
//! the shared docs) and works unchanged against a real org or the sfpg emulator.
//!
//! # Use
//!
//! One [`RateLimiter`] per org, shared by everything that talks to that org; one [`Client`]
//! per set of credentials. Clients are cheap to clone and share their token.
//!
//! ```no_run
//! use futures::TryStreamExt;
//! use serde_json::json;
//! use sfpg_salesforce::{Client, Config, Password, Priority, Rate, RateLimiter};
//!
//! # async fn run() -> sfpg_salesforce::Result<()> {
//! let config = Config::new("https://acme.my.salesforce.com")?;
//! let credentials = Password::new("consumer-key", "consumer-secret", "sync@acme.com", "password+token");
//! // sfpg's default: one request every three seconds, for sync and proxy together.
//! let limiter = RateLimiter::new(Rate::default());
//! let client = Client::new(config, credentials, limiter)?;
//!
//! // Sync: page through a query in the background.
//! let mut records = client
//!     .query_all("SELECT Id, Name, SystemModstamp, IsDeleted FROM Account")
//!     .batch_size(200)
//!     .records();
//! while let Some(record) = records.try_next().await? {
//!     println!("{}", record["Name"]);
//! }
//!
//! // Proxy: push a transaction atomically, ahead of any background request.
//! let push = client.with_priority(Priority::Interactive);
//! let account = json!({"attributes": {"type": "Account"}, "Name": "Acme"});
//! let results = push
//!     .collections()
//!     .all_or_none(true)
//!     .create(&[account.as_object().cloned().unwrap_or_default()])
//!     .await?;
//! for result in results {
//!     for error in result.errors {
//!         eprintln!("{}: {} {:?}", error.status_code, error.message, error.fields);
//!     }
//! }
//!
//! // Pause background work before the daily allocation runs out.
//! if client.api_usage().is_some_and(|usage| usage.api.fraction_used() > 0.8) {
//!     client.limiter().set_rate(Rate::new(1, std::time::Duration::from_secs(60))?);
//! }
//! # Ok(())
//! # }
//! ```
//!
//! # Behaviour
//!
//! - Every call goes to the token's `instance_url` and carries
//!   `Sforce-Call-Options: client=sfpg` (configurable), so sfpg's writes are recognisable in
//!   change events.
//! - Tokens have no expiry in Salesforce's answer; a 401 `INVALID_SESSION_ID` triggers
//!   exactly one re-authentication and one replay, and a second 401 is returned.
//! - Transient failures (transport errors, 5xx, `UNABLE_TO_LOCK_ROW`, the concurrent-request
//!   limit) are retried with exponential backoff and full jitter, bounded by [`RetryPolicy`].
//!   A create is retried only when Salesforce certainly did not act on it. The daily
//!   `REQUEST_LIMIT_EXCEEDED`, validation errors and other 4xx are returned at once.
//! - Every counted request, retries and replays included, waits for the rate limiter.
//! - [`Error::class`] tells retryable, not retryable, auth and limit errors apart, and every
//!   error keeps Salesforce's `errorCode`/`statusCode`, message and fields.
//! - Secrets (client secret, password, private key, tokens) are wrapped with `secrecy`: they
//!   never appear in `Debug` output, errors or log lines.
//! - Each request runs in a `salesforce.request` tracing span with its method, path (never
//!   the query string), attempt and status.

pub mod auth;
pub mod bulk;
mod client;
pub mod collections;
pub mod composite;
pub mod config;
pub mod datetime;
pub mod describe;
pub mod error;
pub mod ids;
pub mod limiter;
pub mod limits;
pub mod query;
pub mod replication;
pub mod retry;
pub mod sobject;
pub mod streaming;
mod telemetry;
pub mod usage;
pub mod versions;

pub use auth::{
    AuthFlow, ClientCredentials, Credentials, JwtBearer, Password, RefreshToken, RefreshTokenStore,
    StoreError, Token,
};
pub use bulk::{Bulk, JobInfo, JobState, QueryOperation, ResultsPage};
pub use client::Client;
pub use collections::Collections;
pub use composite::{Composite, Subrequest, SubrequestResult};
pub use config::{ApiVersion, Config, check_ca_certificates_pem, parse_org_url, redact_url};
pub use describe::{Conditional, DescribeGlobal, Field, FieldType, SObjectDescribe};
pub use error::{ApiError, Error, ErrorClass, RecordError, Result};
pub use ids::SalesforceId;
pub use limiter::{Priority, Rate, RateLimiter};
pub use query::{Query, QueryPage, RecordMaps, RecordsDecoder};
pub use retry::RetryPolicy;
pub use sobject::{SObject, SaveResult, Upserted};
pub use usage::ApiUsage;

/// A record: field API names to JSON values, as Salesforce sends and accepts them.
pub type Record = serde_json::Map<String, serde_json::Value>;
