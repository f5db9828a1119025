//! `sfpg rotate-origin-key`: replaces the key behind the sync origin and the proxy's push
//! tickets (migration V8), for an owner who suspects it leaked or rotates secrets on a
//! schedule.

use clap::Args;

use crate::database;

#[derive(Debug, Args)]
pub struct RotateOriginKeyArgs {
    /// The mirror database, as a `postgres://` URL or a `key=value` connection string.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: String,
}

pub async fn run(args: RotateOriginKeyArgs) -> anyhow::Result<()> {
    let mut client = database::connect(&args.database_url).await?;
    sfpg_control::apply_control_schema(&mut client).await?;
    sfpg_control::capture::rotate_origin_key(&client).await?;
    // Running processes read the key where they use it: nothing to restart. A sync step
    // or push under way with the old key fails once and is tried again (a push that had
    // already reached Salesforce is repaired from the journal).
    println!("origin key rotated");
    Ok(())
}
