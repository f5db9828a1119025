//! sfpg's PostgreSQL side, and the only code that speaks SQL to schema `sfpg`: the control
//! schema and its migrations, org records with sealed credentials, each object's sync state
//! and mirrored fields, the write journal, status, the capture triggers, the mapping from
//! Salesforce describe to mirror tables with the DDL that creates and evolves them, and the
//! one writer that turns Salesforce records into mirror rows.

pub mod admin;
pub mod capture;
pub mod connect;
pub mod error;
pub mod events;
pub mod journal;
pub mod leases;
pub mod mapping;
pub mod master_key;
pub mod migrations;
pub mod mirror;
pub mod objects;
pub mod orgs;
pub mod plan;
pub mod reconnect;
pub mod status;
pub mod streams;
pub mod write_failures;
pub mod writer;

pub use error::ControlError;
pub use master_key::{MasterKey, MasterKeyError};
pub use migrations::{AppliedMigration, MigrationError, MigrationReport, apply_control_schema};
pub use orgs::{AuthFlow, NewOrg, Org, OrgSecrets, RateLimit};
