//! A client of the proxy keeps one Account row locked (`SELECT … FOR UPDATE` in an open
//! transaction) while two Accounts change in Salesforce: the sync, with its default
//! settings, writes the other change at once and the locked one once the client lets go.

// Helpers of a test crate may unwrap: a failure should stop the test where it happened.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use serde_json::json;
use sfpg_testkit::world::{World, map};

#[tokio::test]
async fn a_row_a_client_keeps_locked_delays_only_its_own_record() {
    let world = World::start(&["Account"], 20).await;
    let ids = world.account_sfids(2).await;
    let (locked, other) = (&ids[0], &ids[1]);
    let client = world.client().await;
    client.batch_execute("BEGIN").await.unwrap();
    client
        .query(
            "SELECT name FROM salesforce.account WHERE sfid = $1 FOR UPDATE",
            &[locked],
        )
        .await
        .unwrap();

    for (id, name) in [(locked, "Locked, changed"), (other, "Other, changed")] {
        world
            .emulator
            .update_as("Account", id, &map(json!({ "Name": name })), None)
            .unwrap();
    }
    // Two turns of the real sync: the feed's page, and maintenance.
    let started = Instant::now();
    world.sync_turns(2).await;
    let took = started.elapsed();
    assert_eq!(
        world
            .mirror_value("account", other, "name")
            .await
            .as_deref(),
        Some("Other, changed"),
        "the unlocked change did not arrive while the other row was locked"
    );
    assert!(took < Duration::from_secs(2), "two turns took {took:?}");
    assert_ne!(
        world
            .mirror_value("account", locked, "name")
            .await
            .as_deref(),
        Some("Locked, changed")
    );

    // The client lets go; the locked record's change follows.
    client.batch_execute("COMMIT").await.unwrap();
    world.sync_turns(2).await;
    world.assert_mirror_equals_org("Account").await;
}
