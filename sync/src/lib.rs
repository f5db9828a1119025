//! Keeps the PostgreSQL mirror in step with Salesforce: describe, backfill, incremental
//! polling, deletes and schema evolution, under a per-org rate limit.

pub mod budget;
pub mod db;
pub mod error;
pub mod events;
#[cfg(feature = "failpoints")]
pub mod failpoints;
pub mod object;
pub mod plan;
pub mod scheduler;
pub mod settings;
pub mod soql;
pub mod source;
pub mod steps;
pub mod stream;
pub mod supervisor;

pub use error::{Reaction, Result, SyncError};
pub use plan::{MirroredField, ObjectPlan};
pub use scheduler::{OrgSync, TurnReport};
pub use settings::{SyncSettings, WriteStrategy};
pub use source::{Page, RestSource, Source};
pub use supervisor::{Connector, StoredCredentials, Supervisor};
