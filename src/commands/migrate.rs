//! `sfpg migrate`: applies the control schema to the mirror database and says what it did.

use clap::Args;

use crate::database;

#[derive(Debug, Args)]
pub struct MigrateArgs {
    /// The mirror database, as a `postgres://` URL or a `key=value` connection string.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: String,
}

pub async fn run(args: MigrateArgs) -> anyhow::Result<()> {
    let mut client = database::connect(&args.database_url).await?;
    let report = sfpg_control::apply_control_schema(&mut client).await?;
    if report.applied.is_empty() {
        println!(
            "control schema is up to date (version {})",
            report.current_version
        );
    } else {
        for migration in &report.applied {
            println!(
                "applied migration V{} {}",
                migration.version, migration.name
            );
        }
        println!("control schema is at version {}", report.current_version);
    }
    Ok(())
}
