//! The command line: global options and one subcommand per job. Each subcommand's arguments
//! live with the command in `commands/`.

use std::process::ExitCode;

use clap::error::ErrorKind;
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
    /// Replace the key that lets the sync and the proxy's write-back past the capture
    /// triggers (owner only; running processes pick it up without a restart).
    RotateOriginKey(commands::rotate_origin_key::RotateOriginKeyArgs),
    /// Register and manage Salesforce orgs.
    Org(Box<commands::org::OrgArgs>),
    /// Choose which objects of an org are mirrored.
    Objects(commands::objects::ObjectsArgs),
    /// Serve a local Salesforce org (generated data) that speaks Salesforce's wire formats.
    Emulator(Box<commands::emulator::EmulatorArgs>),
    /// Keep the mirror of every enabled org in step with Salesforce, until stopped.
    Sync(Box<commands::sync::SyncArgs>),
    /// Serve the write-through Postgres-protocol endpoint in front of the mirror.
    Proxy(Box<commands::proxy::ProxyArgs>),
    /// Show where each org's and object's sync stands.
    Status(commands::status::StatusArgs),
    /// Run the sync and the proxy together, for every configured org, until stopped: the
    /// production entry point.
    Run(Box<commands::run::RunArgs>),
    /// Try sfpg on this machine: an emulated Salesforce org mirrored into PostgreSQL, with
    /// the proxy to connect psql to. Needs nothing configured.
    Demo(commands::demo::DemoArgs),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line, for log collectors.
    Json,
}

/// Prints help and version as clap does; a usage error becomes one line (clap's message with
/// its continuation lines folded in, without the usage block) and exit code 2.
pub fn exit_on_parse_error(error: clap::Error) -> ExitCode {
    if matches!(
        error.kind(),
        ErrorKind::DisplayHelp
            | ErrorKind::DisplayVersion
            | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
    ) {
        let _ = error.print();
        return ExitCode::from(u8::try_from(error.exit_code()).unwrap_or(2));
    }
    let rendered = error.render().to_string();
    let message: Vec<&str> = rendered
        .lines()
        .map(str::trim)
        .take_while(|line| !line.starts_with("Usage:") && !line.starts_with("For more information"))
        .filter(|line| !line.is_empty())
        .collect();
    eprintln!("{}", message.join(" "));
    ExitCode::from(2)
}
