//! The command line: global options and one subcommand per job. Each subcommand's arguments
//! live with the command in `commands/`.

use clap::{Parser, Subcommand, ValueEnum};

use crate::commands;

/// sfpg keeps a PostgreSQL mirror of Salesforce orgs and lets any Postgres client write back
/// through a Postgres-protocol proxy. Salesforce stays the source of truth.
#[derive(Debug, Parser)]
#[command(name = "sfpg", version, propagate_version = true)]
pub struct Cli {
    /// Log line format. The level is set with RUST_LOG (for example `RUST_LOG=sfpg=debug`).
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create or upgrade sfpg's control schema (`sfpg`) in the mirror database.
    Migrate(commands::migrate::MigrateArgs),
    /// Register and manage Salesforce orgs.
    Org(Box<commands::org::OrgArgs>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line, for log collectors.
    Json,
}
