//! `sfpg objects …`: choosing which objects of an org are mirrored, and starting one over.

use clap::{Args, Subcommand};
use sfpg_schema::control::admin;

use crate::commands::org::{DatabaseArgs, control_client, user_facing};

#[derive(Debug, Args)]
pub struct ObjectsArgs {
    #[command(subcommand)]
    pub command: ObjectsCommand,
}

#[derive(Debug, Subcommand)]
pub enum ObjectsCommand {
    /// Start mirroring objects (registering them if new).
    Enable(ObjectListArgs),
    /// Stop mirroring objects; their tables stay as they are.
    Disable(ObjectListArgs),
    /// Mirror an object afresh: describe it again and backfill it from the start.
    Resync(ResyncArgs),
}

#[derive(Debug, Args)]
pub struct ObjectListArgs {
    /// The org's name in sfpg.
    pub org: String,
    /// Object API names: Account Contact Invoice__c.
    #[arg(required = true)]
    pub objects: Vec<String>,
    #[command(flatten)]
    pub database: DatabaseArgs,
}

#[derive(Debug, Args)]
pub struct ResyncArgs {
    /// The org's name in sfpg.
    pub org: String,
    /// The object's API name.
    pub object: String,
    #[command(flatten)]
    pub database: DatabaseArgs,
}

pub async fn run(args: ObjectsArgs) -> anyhow::Result<()> {
    match args.command {
        ObjectsCommand::Enable(args) => set_enabled(args, true).await,
        ObjectsCommand::Disable(args) => set_enabled(args, false).await,
        ObjectsCommand::Resync(args) => {
            let client = control_client(&args.database.database_url).await?;
            admin::resync_object(&client, &args.org, &args.object)
                .await
                .map_err(user_facing)?;
            println!(
                "org {}: {} will be described and backfilled again",
                args.org, args.object
            );
            Ok(())
        }
    }
}

async fn set_enabled(args: ObjectListArgs, enabled: bool) -> anyhow::Result<()> {
    let mut client = control_client(&args.database.database_url).await?;
    admin::set_objects_enabled(&mut client, &args.org, &args.objects, enabled)
        .await
        .map_err(user_facing)?;
    println!(
        "org {}: {} {}",
        args.org,
        if enabled { "enabled" } else { "disabled" },
        args.objects.join(", ")
    );
    Ok(())
}
