//! `sfpg objects …`: choosing which objects of an org are mirrored, and starting one over.
//! Names to enable are checked against the org's describe, so that a typo is refused with
//! the names the org does have rather than registered and left failing in the sync.

use clap::{Args, Subcommand};
use sfpg_control::{admin, orgs};

use crate::commands::org::{DatabaseArgs, control_client, load_master_key, user_facing, verify};
use crate::database;

#[derive(Debug, Args)]
pub struct ObjectsArgs {
    #[command(subcommand)]
    pub command: ObjectsCommand,
}

#[derive(Debug, Subcommand)]
pub enum ObjectsCommand {
    /// Start mirroring objects (registering them if new). Logs in to the org to check that
    /// it has them, unless --no-verify.
    Enable(EnableArgs),
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
pub struct EnableArgs {
    #[command(flatten)]
    pub list: ObjectListArgs,
    /// Enable without logging in to the org: a well-formed name it does not have is
    /// registered all the same, and the sync reports it as failing.
    #[arg(long)]
    pub no_verify: bool,
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
        ObjectsCommand::Enable(args) => enable(args).await,
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

/// Enables the objects named, each in the org's own spelling once the org has confirmed it.
async fn enable(args: EnableArgs) -> anyhow::Result<()> {
    let EnableArgs {
        mut list,
        no_verify,
    } = args;
    list.objects = verify::object_names(&list.objects, "objects enable")?;
    if !no_verify {
        let db = control_client(&list.database.database_url).await?;
        let key = load_master_key()?;
        let org = orgs::load(&db, &list.org, &key)
            .await
            .map_err(user_facing)?;
        let database = database::parse_url(&list.database.database_url)?;
        let (client, _) = verify::log_in(&org, Some((&database, &key))).await?;
        list.objects = verify::check_objects(&client, &org.name, &list.objects).await?;
    }
    set_enabled(list, true).await
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
