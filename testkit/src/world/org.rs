//! The registered org, through `sfpg-control` as the binary does it: registration as
//! `sfpg org add` would do it, its stored credentials turned into a Salesforce client, and
//! the real sync's backfill. Every call the tests make into the control crate is here.

use sfpg_control::objects::Phase;
use sfpg_control::{NewOrg, connect, orgs};
use sfpg_emulator::http::{DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, RunningEmulator};
use sfpg_salesforce::{Client, Config, RateLimiter};
use sfpg_sync::OrgSync;

use super::{ORG, SCHEMA, master_key, quiet_settings};
use crate::TestDatabase;

/// Registers the emulator's org as [`ORG`], mirrored into [`SCHEMA`], as `sfpg org add`
/// would, with a rate that never holds a test up.
pub async fn register_org(db: &TestDatabase, emulator: &RunningEmulator, objects: &[&str]) {
    register_org_in(&mut db.connect().await, emulator, objects).await;
}

/// [`register_org`] in the database `client` is connected to.
pub async fn register_org_in(
    client: &mut tokio_postgres::Client,
    emulator: &RunningEmulator,
    objects: &[&str],
) {
    register_org_as(client, emulator, objects, SCHEMA).await;
}

/// [`register_org_in`], with the org's tables in `schema`. The control schema is applied
/// first; the credentials are the emulator's client-credentials app's, sealed with
/// [`master_key`].
pub async fn register_org_as(
    client: &mut tokio_postgres::Client,
    emulator: &RunningEmulator,
    objects: &[&str],
    schema: &str,
) {
    sfpg_control::apply_control_schema(client).await.unwrap();
    let org = NewOrg {
        schema_name: schema.to_owned(),
        pubsub_endpoint: Some(emulator.pubsub_endpoint())
            .filter(|endpoint| !endpoint.is_empty())
            .map(str::to_owned),
        ..NewOrg::client_credentials(
            ORG,
            emulator.login_url(),
            DEFAULT_CLIENT_ID,
            DEFAULT_CLIENT_SECRET,
            objects,
        )
    };
    orgs::insert(client, &org, &master_key()).await.unwrap();
    client
        .execute(
            "UPDATE sfpg.orgs SET rate_requests = 1000, rate_period_ms = 1000 WHERE name = $1",
            &[&ORG],
        )
        .await
        .unwrap();
}

/// A Salesforce client of the registered org, from its stored credentials and rate, with
/// `tune` applied to its configuration (retries, timeouts).
pub async fn salesforce_client(db: &TestDatabase, tune: impl FnOnce(Config) -> Config) -> Client {
    let client = db.connect().await;
    let org = orgs::load(&client, ORG, &master_key()).await.unwrap();
    let config = tune(connect::config(&org).unwrap());
    let limiter = RateLimiter::new(connect::rate(&org).unwrap());
    Client::new(config, connect::credentials(&org).unwrap(), limiter).unwrap()
}

/// The real sync of the registered org, resuming from what the mirror holds, with timers
/// that stay out of the way.
pub async fn org_sync(db: &TestDatabase) -> OrgSync {
    let salesforce = salesforce_client(db, |config| config).await;
    OrgSync::start(db.connect().await, salesforce, ORG, quiet_settings())
        .await
        .unwrap()
}

/// Backfills the org's objects with the real sync, then makes sure every mirrored table
/// has its capture triggers.
pub async fn mirror_objects(db: &TestDatabase, objects: &[&str]) {
    let client = db.connect().await;
    let mut sync = org_sync(db).await;
    for _ in 0..1000 {
        if sync.objects().iter().all(|o| o.state.phase == Phase::Live) {
            break;
        }
        sync.turn().await.unwrap();
    }
    assert!(
        sync.objects().iter().all(|o| o.state.phase == Phase::Live),
        "the backfill did not finish"
    );
    for object in objects {
        let table: String = client
            .query_one(
                "SELECT table_name FROM sfpg.objects WHERE org_name = $1 AND object_name = $2",
                &[&ORG, object],
            )
            .await
            .unwrap()
            .get(0);
        // The sync installs them when it creates a table; installing again is harmless.
        sfpg_control::capture::install_capture_trigger(&client, SCHEMA, &table)
            .await
            .unwrap();
    }
}
