//! Applies the control schema's embedded SQL migrations (refinery) under a PostgreSQL
//! advisory lock, so that any number of sfpg processes may start at once: one applies, the
//! others wait and then find nothing left to do.

use thiserror::Error;
use tokio_postgres::Client;

mod embedded {
    refinery::embed_migrations!("migrations");
}

/// Key of the session-level advisory lock that serialises migrations. Any fixed 64-bit value
/// works as long as nothing else in the database uses it; this one spells "sfpg" in ASCII.
const MIGRATION_LOCK_KEY: i64 = 0x7366_7067;

/// refinery's history table lives inside the control schema rather than in `public`, so
/// sfpg leaves no trace in schemas it does not own.
const HISTORY_TABLE: &str = "sfpg.schema_migrations";

/// A migration that this run applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppliedMigration {
    pub version: i64,
    pub name: String,
}

/// What [`apply_control_schema`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MigrationReport {
    /// Migrations applied by this call, in order; empty when the schema was up to date.
    pub applied: Vec<AppliedMigration>,
    /// The schema version after this call.
    pub current_version: i64,
}

#[derive(Debug, Error)]
pub enum MigrationError {
    #[error("could not take the migration lock: {0}")]
    Lock(#[source] tokio_postgres::Error),
    #[error("could not prepare the control schema: {0}")]
    Bootstrap(#[source] tokio_postgres::Error),
    #[error("migration failed: {0}")]
    Migration(#[source] refinery::Error),
    #[error("could not release the migration lock: {0}")]
    Unlock(#[source] tokio_postgres::Error),
}

/// The newest control-schema version this build knows.
pub fn latest_version() -> i64 {
    embedded::migrations::runner()
        .get_migrations()
        .iter()
        .map(|m| i64::from(m.version()))
        .max()
        .unwrap_or(0)
}

/// Brings the control schema up to date. Applying twice is a no-op; concurrent callers are
/// serialised by an advisory lock held on `client`'s session for the duration.
pub async fn apply_control_schema(client: &mut Client) -> Result<MigrationReport, MigrationError> {
    client
        .execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK_KEY])
        .await
        .map_err(MigrationError::Lock)?;
    let outcome = apply_locked(client).await;
    // Release even after a failed migration: the session may outlive this call.
    let unlock = client
        .execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK_KEY])
        .await
        .map_err(MigrationError::Unlock);
    let report = outcome?;
    unlock?;
    Ok(report)
}

async fn apply_locked(client: &mut Client) -> Result<MigrationReport, MigrationError> {
    // The history table is inside `sfpg`, so the schema must exist before refinery looks for
    // its table. V1 creates it too, for a reader of the migrations alone.
    client
        .batch_execute("CREATE SCHEMA IF NOT EXISTS sfpg")
        .await
        .map_err(MigrationError::Bootstrap)?;
    let mut runner = embedded::migrations::runner().set_grouped(true);
    runner.set_migration_table_name(HISTORY_TABLE);
    let report = runner
        .run_async(client)
        .await
        .map_err(MigrationError::Migration)?;
    let applied: Vec<AppliedMigration> = report
        .applied_migrations()
        .iter()
        .map(|m| AppliedMigration {
            version: i64::from(m.version()),
            name: m.name().to_owned(),
        })
        .collect();
    let current_version = runner
        .get_last_applied_migration_async(client)
        .await
        .map_err(MigrationError::Migration)?
        .map(|m| i64::from(m.version()))
        .unwrap_or(0);
    Ok(MigrationReport {
        applied,
        current_version,
    })
}

/// Applies the control schema's migrations up to `version` only: a database as an older
/// sfpg left it, for tests of what a later migration does to it.
#[cfg(test)]
pub(crate) async fn apply_control_schema_up_to(client: &mut Client, version: i32) {
    client
        .batch_execute("CREATE SCHEMA IF NOT EXISTS sfpg")
        .await
        .unwrap();
    let mut runner = embedded::migrations::runner()
        .set_grouped(true)
        .set_target(refinery::Target::Version(version));
    runner.set_migration_table_name(HISTORY_TABLE);
    runner.run_async(client).await.unwrap();
}

#[cfg(test)]
mod tests {
    use super::*;
    use sfpg_testkit::TestDatabase;

    #[tokio::test]
    async fn first_run_creates_the_control_schema() {
        let db = TestDatabase::create().await;
        let mut client = db.connect().await;
        let report = apply_control_schema(&mut client).await.unwrap();
        assert_eq!(report.applied.first().map(|m| m.version), Some(1));
        assert_eq!(report.current_version, latest_version());
        let schemas: i64 = client
            .query_one(
                "SELECT count(*) FROM pg_namespace WHERE nspname = 'sfpg'",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        assert_eq!(schemas, 1);
        for table in ["sfpg.orgs", "sfpg.objects"] {
            client
                .query_one(&format!("SELECT count(*) FROM {table}"), &[])
                .await
                .unwrap_or_else(|e| panic!("{table} missing: {e}"));
        }
    }

    #[tokio::test]
    async fn applying_twice_is_a_no_op() {
        let db = TestDatabase::create().await;
        let mut client = db.connect().await;
        apply_control_schema(&mut client).await.unwrap();
        let second = apply_control_schema(&mut client).await.unwrap();
        assert!(second.applied.is_empty(), "{second:?}");
        assert_eq!(second.current_version, latest_version());
        let rows: i64 = client
            .query_one("SELECT count(*) FROM sfpg.schema_migrations", &[])
            .await
            .unwrap()
            .get(0);
        assert_eq!(rows, embedded_count());
    }

    /// How many migrations this build holds: versions taken by other branches may be
    /// missing until they are merged, so this is not always the latest version.
    fn embedded_count() -> i64 {
        embedded::migrations::runner().get_migrations().len() as i64
    }

    #[tokio::test]
    async fn concurrent_appliers_do_not_collide() {
        let db = TestDatabase::create().await;
        let mut tasks = Vec::new();
        for _ in 0..4 {
            let mut client = db.connect().await;
            tasks.push(tokio::spawn(async move {
                apply_control_schema(&mut client).await
            }));
        }
        let mut applied_total = 0;
        for task in tasks {
            let report = task.await.unwrap().unwrap();
            assert_eq!(report.current_version, latest_version());
            applied_total += report.applied.len();
        }
        // Exactly one of the four did the work; the others found it done.
        assert_eq!(applied_total as i64, embedded_count());
        let client = db.connect().await;
        let rows: i64 = client
            .query_one("SELECT count(*) FROM sfpg.schema_migrations", &[])
            .await
            .unwrap()
            .get(0);
        assert_eq!(rows, embedded_count());
    }
}
