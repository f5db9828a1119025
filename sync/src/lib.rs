//! Keeps the PostgreSQL mirror in step with Salesforce: describe, backfill, incremental
//! polling, deletes and schema evolution, under a per-org rate limit.
