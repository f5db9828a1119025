//! sfpg's PostgreSQL side: the control schema (`sfpg`) and its migrations, its org records
//! with sealed credentials, the mapping from Salesforce describe to mirror tables, and the
//! DDL that creates and evolves them.

pub mod capture;
pub mod control;
pub mod mapping;
pub mod migrations;
pub mod mirror;
pub mod reconnect;

pub use migrations::{AppliedMigration, MigrationError, MigrationReport, apply_control_schema};
