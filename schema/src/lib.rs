//! sfpg's PostgreSQL side: the control schema (`sfpg`) and its migrations. Later modules add
//! the describe-to-DDL type mapping and the capture triggers of mirrored tables.

pub mod migrations;

pub use migrations::{AppliedMigration, MigrationError, MigrationReport, apply_control_schema};
