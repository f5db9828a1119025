//! The Postgres-protocol proxy: relays client sessions to PostgreSQL and pushes captured
//! writes to Salesforce before the local transaction commits.
