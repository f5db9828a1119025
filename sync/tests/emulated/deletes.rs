//! Deletes the feed cannot see: `deleted/` catches them while the delete log reaches back
//! to the watermark; beyond it, and on its own timer, a full Id reconciliation.

use std::time::Duration;

use chrono::Utc;
use sfpg_sync::object::Task;
use sfpg_sync::{SyncSettings, TurnReport};

use crate::support::{Harness, all_live, frozen, generated, quiet_settings, turn_until};

/// A mirror row for a record Salesforce never had (or lost without a trace), stamped long
/// ago so that no page can mistake it for a fresh write.
async fn insert_ghost(harness: &Harness, table: &str, id: &str) {
    let client = harness.db.connect().await;
    // Written as the sync would, with the origin key (for the whole session, not only a
    // transaction): the capture triggers refuse anyone else.
    client
        .batch_execute(
            "SELECT set_config('sfpg.origin', 'sync:' || key, false) FROM sfpg.origin_key",
        )
        .await
        .unwrap();
    client
        .execute(
            &format!(
                "INSERT INTO acme.{table} (sfid, systemmodstamp) VALUES ($1, '2000-01-01T00:00:00Z')"
            ),
            &[&id],
        )
        .await
        .unwrap();
}

fn task_of(report: &TurnReport) -> Option<Task> {
    match report {
        TurnReport::Worked { task, .. } | TurnReport::Failed { task, .. } => Some(*task),
        _ => None,
    }
}

#[tokio::test]
async fn deleted_catches_a_delete_the_feed_never_saw_and_an_old_watermark_reconciles() {
    let (config, clock) = frozen(60);
    let harness = Harness::start(config, &["Account"]).await;
    let mut first = harness.org_sync(quiet_settings()).await;
    turn_until(&mut first, 50, all_live).await;
    drop(first);

    // Deleted by a transaction stamped before the overlap window: `queryAll` from the
    // cursor will not show it.
    let victim: String = harness.org_records("Account", &["Id".into()])[5]["Id"]
        .as_str()
        .unwrap()
        .to_owned();
    clock.advance(chrono::Duration::minutes(-10));
    harness.delete("Account", &victim);
    clock.advance(chrono::Duration::minutes(10));
    insert_ghost(&harness, "account", "001000000000000AAA").await;
    // The last delete check was long ago, before the delete log's first entry.
    let client = harness.db.connect().await;
    client
        .execute(
            "UPDATE sfpg.objects SET deleted_watermark = now() - interval '20 minutes' WHERE object_name = 'Account'",
            &[],
        )
        .await
        .unwrap();

    let settings = SyncSettings {
        deleted_interval: Duration::ZERO,
        ..quiet_settings()
    };
    let mut sync = harness.org_sync(settings).await;
    let started = Utc::now();
    let reports = turn_until(&mut sync, 30, |s| {
        s.object("Account")
            .unwrap()
            .state
            .reconciled_at
            .is_some_and(|at| at >= started)
    })
    .await;
    let deleted = reports
        .iter()
        .find_map(|r| match r {
            TurnReport::Worked {
                task: Task::Deleted,
                outcome,
                ..
            } if outcome.received > 0 => Some(outcome.clone()),
            _ => None,
        })
        .expect("deleted/ found nothing");
    assert_eq!((deleted.received, deleted.deleted), (1, 1));
    assert!(reports.iter().any(|r| task_of(r) == Some(Task::Reconcile)));
    assert_eq!(harness.mirror_value("account", &victim, "sfid").await, None);
    assert_eq!(
        harness
            .mirror_value("account", "001000000000000AAA", "sfid")
            .await,
        None,
        "the ghost survived"
    );
    harness.assert_mirror_equals_org("Account").await;
}

#[tokio::test]
async fn the_periodic_reconciliation_removes_rows_whose_records_are_gone() {
    let harness = Harness::start(generated(8000), &["Contact"]).await;
    let mut sync = harness.org_sync(quiet_settings()).await;
    turn_until(&mut sync, 100, all_live).await;
    let ids: Vec<String> = harness
        .org_records("Contact", &["Id".into()])
        .iter()
        .map(|r| r["Id"].as_str().unwrap().to_owned())
        .collect();
    assert!(ids.len() > 2000, "the sweep should take more than one page");
    // Before the first Id, between two pages' worth, and after the last.
    let first = &ids[0];
    let ghosts = [
        format!("{}0000000AAA", &first[..8]),
        format!("{}zzzzzzzAAA", &ids[2100][..8]),
        "003zzzzzzzzzzzzAAA".to_owned(),
    ];
    for ghost in &ghosts {
        insert_ghost(&harness, "contact", ghost).await;
    }
    drop(sync);

    let settings = SyncSettings {
        reconcile_interval: Duration::from_secs(1),
        ..quiet_settings()
    };
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let mut sync = harness.org_sync(settings).await;
    let started = Utc::now();
    let reports = turn_until(&mut sync, 20, |s| {
        s.object("Contact")
            .unwrap()
            .state
            .reconciled_at
            .is_some_and(|at| at >= started)
    })
    .await;
    let pages = reports
        .iter()
        .filter(|r| task_of(r) == Some(Task::Reconcile))
        .count();
    assert_eq!(pages, ids.len() / 2000 + 1);
    for ghost in &ghosts {
        assert_eq!(
            harness.mirror_value("contact", ghost, "sfid").await,
            None,
            "{ghost} survived"
        );
    }
    harness.assert_mirror_equals_org("Contact").await;
    assert_eq!(
        sync.object("Contact").unwrap().state.row_count,
        ids.len() as i64
    );
}
