//! A mirror row a client keeps locked delays only that record: the rest of its page is
//! written at once, and the locked record is read again and written once the lock is gone,
//! even after a restart and with the incremental cursor long past it.

use std::time::{Duration, Instant};

use serde_json::json;
use sfpg_sync::{OrgSync, SyncSettings};

use crate::support::{Harness, all_live, frozen, quiet_settings, turn_until};

/// A short lock wait, so that the old retry window (5 attempts) is a few seconds.
fn settings() -> SyncSettings {
    SyncSettings {
        lock_timeout: Duration::from_millis(300),
        // No overlap: the feed does not read the locked record again by itself, so only
        // the retry of locked records can bring its change.
        overlap: Duration::ZERO,
        ..quiet_settings()
    }
}

/// How long the old code kept trying one page before giving up on it: every attempt
/// waits out the lock, with a pause after each.
fn retry_window(settings: &SyncSettings) -> Duration {
    let attempts = settings.lock_attempts;
    let pauses: u32 = (1..attempts).sum();
    settings.lock_timeout * attempts + Duration::from_millis(100) * pauses
}

/// Runs turns until the mirror row of `sfid` has `name`, failing after `within`.
async fn turn_until_name(
    harness: &Harness,
    sync: &mut OrgSync,
    sfid: &str,
    name: &str,
    within: Duration,
) -> Duration {
    let started = Instant::now();
    let arrived = tokio::time::timeout(within, async {
        while harness
            .mirror_value("account", sfid, "name")
            .await
            .as_deref()
            != Some(name)
        {
            sync.turn().await.unwrap();
        }
    })
    .await;
    assert!(
        arrived.is_ok(),
        "{name:?} did not reach the mirror within {within:?} ({:?})",
        harness.mirror_value("account", sfid, "name").await
    );
    started.elapsed()
}

async fn locked_ids(harness: &Harness) -> Vec<String> {
    harness
        .db
        .connect()
        .await
        .query_one(
            "SELECT locked_ids FROM sfpg.objects WHERE object_name = 'Account'",
            &[],
        )
        .await
        .unwrap()
        .get(0)
}

#[tokio::test]
async fn a_locked_row_delays_only_its_own_record() {
    let (config, clock) = frozen(30);
    let harness = Harness::start(config, &["Account"]).await;
    let settings = settings();
    let window = retry_window(&settings);
    let mut sync = harness.org_sync(settings.clone()).await;
    turn_until(&mut sync, 50, all_live).await;
    let direct = harness.db.connect().await;
    let ids: Vec<String> = direct
        .query("SELECT sfid FROM acme.account ORDER BY sfid LIMIT 3", &[])
        .await
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect();
    let (locked, other, later) = (&ids[0], &ids[1], &ids[2]);

    // A client holds one row locked, as `SELECT … FOR UPDATE` in an open transaction does.
    let mut client = harness.db.connect().await;
    let holder = client.transaction().await.unwrap();
    holder
        .execute(
            "SELECT * FROM acme.account WHERE sfid = $1 FOR UPDATE",
            &[locked],
        )
        .await
        .unwrap();
    let locked_at = Instant::now();

    // Both records change in Salesforce, in the same second: one page of the feed.
    clock.advance(chrono::Duration::seconds(60));
    harness.update("Account", locked, json!({"Name": "Locked, changed"}));
    harness.update("Account", other, json!({"Name": "Other, changed"}));

    // The other change arrives as fast as a page is written, well within the time the
    // locked page used to be retried.
    let took = turn_until_name(&harness, &mut sync, other, "Other, changed", window).await;
    eprintln!("with a row locked, the other change took {took:?} (retry window {window:?})");
    assert!(took < window / 2, "the unlocked change took {took:?}");
    assert_eq!(locked_ids(&harness).await, std::slice::from_ref(locked));

    // The feed moves on past the locked record, while the lock stays held for longer
    // than the old retry window.
    clock.advance(chrono::Duration::seconds(60));
    harness.update("Account", later, json!({"Name": "Later"}));
    turn_until_name(&harness, &mut sync, later, "Later", window).await;
    while locked_at.elapsed() < window * 2 {
        sync.turn().await.unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_ne!(
        harness
            .mirror_value("account", locked, "name")
            .await
            .as_deref(),
        Some("Locked, changed"),
        "written through the lock?"
    );
    assert_eq!(locked_ids(&harness).await, std::slice::from_ref(locked));

    // The sync stops (what it still owes is in sfpg.objects, not in memory), the client
    // lets go, and a new scheduler brings the locked record's change.
    drop(sync);
    holder.rollback().await.unwrap();
    let mut sync = harness.org_sync(settings).await;
    turn_until_name(
        &harness,
        &mut sync,
        locked,
        "Locked, changed",
        Duration::from_secs(10),
    )
    .await;
    assert!(locked_ids(&harness).await.is_empty());
    harness.assert_mirror_equals_org("Account").await;
}
