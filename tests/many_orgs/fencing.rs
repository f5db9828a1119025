//! Leases under faults. A worker paused (SIGSTOP) past its lease is cut off: the other
//! worker takes its orgs with new epochs, and when it is continued, the write its turn in
//! flight makes is refused by the epoch fence; it drops the org, and the mirror ends as the
//! org is. And database connections killed under the workers (`pg_terminate_backend`) cost
//! nothing but a restart of the orgs' tasks: no lease moves, and changes keep coming.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::json;
use sfpg_testkit::TestDatabase;
use sfpg_testkit::process::{eventually, eventually_some};

use super::takeover::{HEARTBEAT, TTL, leases, shares, start_worker};
use super::{add_org, all_live, assert_mirror_equals_org, emulator, stop};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_paused_past_its_lease_has_its_next_write_refused_and_drops_the_org() {
    let db = TestDatabase::create().await;
    let mut orgs = Vec::new();
    for i in 0..4u64 {
        let name = format!("slow_{i}");
        // Slow backfills (about 50 pages at 2 requests/s): a turn is always under way.
        let emulator = emulator(20_000, 120 + i).await;
        add_org(&db, &name, &emulator, "2", "1s").await;
        orgs.push((name, emulator));
    }
    let client = db.connect().await;
    let paused = start_worker(&db);
    let other = start_worker(&db);
    let (paused_pid, other_pid) = (paused.id(), other.id());
    let split = eventually_some("a split", Duration::from_secs(30), async || {
        let leases = leases(&client).await;
        let shares = shares(&leases);
        (shares.get(&paused_pid) == Some(&2) && shares.get(&other_pid) == Some(&2))
            .then_some(leases)
    })
    .await;
    // Let turns get going.
    tokio::time::sleep(Duration::from_secs(2)).await;

    paused.signal("STOP");
    let taken = eventually_some("the other worker holding every org", TTL * 4, async || {
        let leases = leases(&client).await;
        leases
            .values()
            .all(|(owner, _)| *owner == Some(other_pid))
            .then_some(leases)
    })
    .await;
    let moved: Vec<&String> = split
        .iter()
        .filter(|(_, (owner, _))| *owner == Some(paused_pid))
        .map(|(org, _)| org)
        .collect();
    for org in &moved {
        assert!(
            taken[*org].1 > split[*org].1,
            "{org}: taken without a new epoch"
        );
    }
    // Past the take-over, so that the other worker has written under its epoch.
    tokio::time::sleep(HEARTBEAT * 2).await;
    paused.signal("CONT");
    eventually(
        "the paused worker's write refused by the fence",
        Duration::from_secs(20),
        async || paused.logged("write refused by the lease fence") > 0,
    )
    .await;
    let refused: Vec<String> = paused
        .log_since(0)
        .into_iter()
        .filter(|l| l.contains("write refused by the lease fence"))
        .collect();
    eprintln!("{}", refused.join("\n"));
    assert!(
        refused
            .iter()
            .all(|l| moved.iter().any(|org| l.contains(&format!("org={org}")))),
        "refused writes for orgs it did not hold: {refused:?}"
    );

    eventually_some("every org live", Duration::from_secs(120), async || {
        for (name, _) in &orgs {
            if !all_live(&client, name).await {
                return None;
            }
        }
        Some(())
    })
    .await;
    stop(paused).await;
    stop(other).await;
    for (name, emulator) in &orgs {
        assert_mirror_equals_org(emulator, &client, name).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_database_connections_move_no_lease_and_changes_keep_coming() {
    let db = TestDatabase::create().await;
    let mut orgs = Vec::new();
    for i in 0..4u64 {
        let name = format!("cut_{i}");
        let emulator = emulator(100, 140 + i).await;
        add_org(&db, &name, &emulator, "10", "1s").await;
        orgs.push((name, emulator));
    }
    let client = db.connect().await;
    let workers = [start_worker(&db), start_worker(&db)];
    let pids = [workers[0].id(), workers[1].id()];
    eventually("every org live", Duration::from_secs(60), async || {
        for (name, _) in &orgs {
            if !all_live(&client, name).await {
                return false;
            }
        }
        let shares = shares(&leases(&client).await);
        pids.iter().all(|p| shares.get(p) == Some(&2))
    })
    .await;
    let before: BTreeMap<String, (Option<u32>, i64)> = leases(&client).await;

    let killed: i64 = client
        .query_one(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
              WHERE datname = current_database() AND pid <> pg_backend_pid()",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    eprintln!("{killed} connections terminated");
    assert!(killed >= 4, "only {killed} connections to terminate");

    // A change in every org after the cut reaches the mirror.
    let mut changed = Vec::new();
    for (name, emulator) in &orgs {
        let sfid: String = client
            .query_one(
                &format!("SELECT sfid FROM {name}.account ORDER BY sfid LIMIT 1"),
                &[],
            )
            .await
            .unwrap()
            .get(0);
        let value = format!("after the cut {name}");
        emulator
            .update_as(
                "Account",
                &sfid,
                &sfpg_testkit::world::map(json!({ "Name": value })),
                None,
            )
            .unwrap();
        changed.push((name.clone(), sfid, value));
    }
    eventually(
        "the changes mirrored",
        Duration::from_secs(60),
        async || {
            for (name, sfid, value) in &changed {
                let row = client
                    .query_opt(
                        &format!("SELECT name FROM {name}.account WHERE sfid = $1"),
                        &[sfid],
                    )
                    .await
                    .unwrap();
                if row.and_then(|r| r.get::<_, Option<String>>(0)).as_deref() != Some(value) {
                    return false;
                }
            }
            true
        },
    )
    .await;
    // The heartbeats came back on new connections within the lease: nothing moved.
    assert_eq!(leases(&client).await, before, "leases moved after the cut");
    let [first, second] = workers;
    stop(first).await;
    stop(second).await;
    for (name, emulator) in &orgs {
        assert_mirror_equals_org(emulator, &client, name).await;
    }
}
