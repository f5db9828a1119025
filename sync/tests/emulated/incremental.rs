//! The incremental feed: creates, updates, deletes and undeletes reach the mirror within
//! two poll turns; two changes in one second leave the last; a late commit inside the
//! overlap window is caught; rows read again unchanged are not rewritten.

use chrono::Duration;
use serde_json::json;
use sfpg_sync::TurnReport;
use sfpg_sync::object::Task;

use crate::support::{Harness, all_live, frozen, generated, quiet_settings, run_turns, turn_until};

#[tokio::test]
async fn creates_updates_deletes_and_undeletes_reach_the_mirror_within_two_poll_turns() {
    let harness = Harness::start(generated(60), &["Account"]).await;
    let mut sync = harness.org_sync(quiet_settings()).await;
    turn_until(&mut sync, 50, all_live).await;

    let id = harness.create(
        "Account",
        json!({"Name": "Initech", "AnnualRevenue": 1250000.5}),
    );
    run_turns(&mut sync, 2).await;
    assert_eq!(
        harness
            .mirror_value("account", &id, "name")
            .await
            .as_deref(),
        Some("Initech")
    );
    harness.assert_mirror_equals_org("Account").await;

    harness.update(
        "Account",
        &id,
        json!({"Name": "Initrode", "Industry": "Banking"}),
    );
    run_turns(&mut sync, 2).await;
    assert_eq!(
        harness
            .mirror_value("account", &id, "name")
            .await
            .as_deref(),
        Some("Initrode")
    );
    harness.assert_mirror_equals_org("Account").await;

    harness.delete("Account", &id);
    run_turns(&mut sync, 2).await;
    assert_eq!(harness.mirror_value("account", &id, "sfid").await, None);
    harness.assert_mirror_equals_org("Account").await;

    harness.emulator.undelete(&id, None).unwrap();
    run_turns(&mut sync, 2).await;
    assert_eq!(
        harness
            .mirror_value("account", &id, "name")
            .await
            .as_deref(),
        Some("Initrode")
    );
    harness.assert_mirror_equals_org("Account").await;

    let state = &sync.object("Account").unwrap().state;
    assert_eq!(state.row_count, harness.mirror_count("account").await);
}

#[tokio::test]
async fn a_record_changed_twice_within_one_second_ends_with_its_last_value() {
    let (config, _clock) = frozen(40);
    let harness = Harness::start(config, &["Account"]).await;
    let mut sync = harness.org_sync(quiet_settings()).await;
    turn_until(&mut sync, 50, all_live).await;
    let id = harness.create("Account", json!({"Name": "first"}));
    run_turns(&mut sync, 2).await;
    assert_eq!(
        harness
            .mirror_value("account", &id, "name")
            .await
            .as_deref(),
        Some("first")
    );
    let stamp = harness.mirror_value("account", &id, "systemmodstamp").await;

    // The clock has not moved: the second change carries the very same SystemModstamp.
    harness.update("Account", &id, json!({"Name": "second"}));
    run_turns(&mut sync, 2).await;
    assert_eq!(
        harness.mirror_value("account", &id, "systemmodstamp").await,
        stamp
    );
    assert_eq!(
        harness
            .mirror_value("account", &id, "name")
            .await
            .as_deref(),
        Some("second")
    );
    harness.assert_mirror_equals_org("Account").await;
}

#[tokio::test]
async fn a_late_commit_inside_the_overlap_window_is_caught() {
    let (config, clock) = frozen(40);
    let harness = Harness::start(config, &["Account"]).await;
    let mut sync = harness.org_sync(quiet_settings()).await;
    turn_until(&mut sync, 50, all_live).await;

    clock.advance(Duration::seconds(60));
    let early = harness.create("Account", json!({"Name": "read first"}));
    run_turns(&mut sync, 2).await;
    assert!(
        harness
            .mirror_value("account", &early, "sfid")
            .await
            .is_some()
    );

    // A transaction stamped before the record just read commits only now.
    clock.advance(Duration::seconds(-30));
    let late = harness.create("Account", json!({"Name": "committed late"}));
    run_turns(&mut sync, 2).await;
    assert_eq!(
        harness
            .mirror_value("account", &late, "name")
            .await
            .as_deref(),
        Some("committed late")
    );
    harness.assert_mirror_equals_org("Account").await;
}

#[tokio::test]
async fn rows_read_again_in_the_overlap_window_are_not_rewritten() {
    let harness = Harness::start(generated(60), &["Account"]).await;
    let mut sync = harness.org_sync(quiet_settings()).await;
    turn_until(&mut sync, 50, all_live).await;
    run_turns(&mut sync, 2).await;
    let client = harness.db.connect().await;
    let versions = "SELECT string_agg(xmin::text, ',' ORDER BY sfid) FROM acme.account";
    let before: String = client.query_one(versions, &[]).await.unwrap().get(0);

    let reports = run_turns(&mut sync, 3).await;
    for report in &reports {
        let TurnReport::Worked {
            task: Task::Changes,
            outcome,
            ..
        } = report
        else {
            panic!("expected a poll: {report:?}");
        };
        assert!(
            outcome.received > 0,
            "the overlap window was not read again"
        );
        assert_eq!(outcome.written, 0);
    }
    let after: String = client.query_one(versions, &[]).await.unwrap().get(0);
    assert_eq!(before, after, "unchanged rows were rewritten");
}
