//! The sync against an emulated Salesforce over real HTTP and a throwaway PostgreSQL: each
//! module is one part of issue 5, driven turn by turn through the scheduler.

// Test support panics on purpose: a failed setup is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod backfill;
mod bulk;
mod bulk_faults;
mod deletes;
mod faults;
mod freshness;
mod incremental;
mod locks;
mod rate;
mod schema_changes;
mod support;
