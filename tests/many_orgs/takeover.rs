//! Several sync processes (workers) share the orgs of one mirror database through leases:
//! three started together split the orgs evenly, a fourth gets its share within two
//! heartbeats, one that leaves cleanly hands its orgs back at once, and the orgs of one
//! killed with SIGKILL move when its leases expire. Every org ends as its Salesforce org
//! is, every lease change comes with a new epoch, and each epoch is one login.
//!
//! Short leases keep them quick: a 2 s lease renewed every 0.5 s.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use sfpg_emulator::http::RunningEmulator;
use sfpg_testkit::TestDatabase;
use sfpg_testkit::process::{TestProcess, eventually_some};

use super::{add_org, all_live, assert_mirror_equals_org, emulator, logins, start_sync, stop};

/// `--lease-ttl` and `--heartbeat` of every worker here.
pub(crate) const LEASE_FLAGS: [&str; 4] = ["--lease-ttl", "2s", "--heartbeat", "500ms"];
pub(crate) const HEARTBEAT: Duration = Duration::from_millis(500);
pub(crate) const TTL: Duration = Duration::from_secs(2);

/// Eight orgs, each on an emulator of its own.
pub(crate) async fn eight_orgs(db: &TestDatabase) -> Vec<(String, RunningEmulator)> {
    let mut orgs = Vec::new();
    for i in 0..8u64 {
        let name = format!("org_{i}");
        let emulator = emulator(300, 90 + i).await;
        add_org(db, &name, &emulator, "10", "1s").await;
        orgs.push((name, emulator));
    }
    orgs
}

/// A worker with short leases.
pub(crate) fn start_worker(db: &TestDatabase) -> TestProcess {
    start_sync(db, &LEASE_FLAGS)
}

/// Each org's holder (pid) and epoch, from its lease; `None` when free or expired.
pub(crate) async fn leases(
    client: &tokio_postgres::Client,
) -> BTreeMap<String, (Option<u32>, i64)> {
    client
        .query(
            "SELECT org_name, CASE WHEN expires_at > now() THEN owner END, epoch FROM sfpg.leases",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| {
            let owner: Option<String> = r.get(1);
            let pid = owner.map(|o| o.rsplit(':').next().unwrap().parse().unwrap());
            (r.get(0), (pid, r.get(2)))
        })
        .collect()
}

/// How many orgs each pid holds.
pub(crate) fn shares(leases: &BTreeMap<String, (Option<u32>, i64)>) -> HashMap<u32, usize> {
    let mut shares = HashMap::new();
    for (owner, _) in leases.values() {
        if let Some(pid) = owner {
            *shares.entry(*pid).or_default() += 1;
        }
    }
    shares
}

/// Waits until every org is held and each of `pids` holds between `low` and `high`.
async fn split(
    client: &tokio_postgres::Client,
    pids: &[u32],
    (low, high): (usize, usize),
    within: Duration,
) -> BTreeMap<String, (Option<u32>, i64)> {
    eventually_some("a balanced split", within, async || {
        let leases = leases(client).await;
        let shares = shares(&leases);
        let balanced = leases
            .values()
            .all(|(o, _)| o.is_some_and(|p| pids.contains(&p)))
            && pids
                .iter()
                .all(|p| (low..=high).contains(&shares.get(p).copied().unwrap_or(0)));
        balanced.then_some(leases)
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_split_the_orgs_evenly_take_a_newcomer_in_and_let_go_of_those_that_leave() {
    let db = TestDatabase::create().await;
    let orgs = eight_orgs(&db).await;
    let client = db.connect().await;

    // Three together: 8 orgs over 3 workers is 3, 3 and 2.
    let mut workers: Vec<TestProcess> = (0..3).map(|_| start_worker(&db)).collect();
    let pids: Vec<u32> = workers.iter().map(TestProcess::id).collect();
    let started = Instant::now();
    let first = split(&client, &pids, (2, 3), Duration::from_secs(30)).await;
    eprintln!(
        "three workers: {:?} after {:?}",
        shares(&first),
        started.elapsed()
    );

    // A fourth: 2 each, within two heartbeats of its registration (database clock).
    let fourth = start_worker(&db);
    let newcomer = fourth.id();
    workers.push(fourth);
    let pids: Vec<u32> = workers.iter().map(TestProcess::id).collect();
    split(&client, &pids, (2, 2), Duration::from_secs(30)).await;
    let arrived: f64 = client
        .query_one(
            "SELECT extract(epoch FROM max(l.taken_at) - w.started_at)::float8
               FROM sfpg.leases l JOIN sfpg.workers w ON w.name = l.owner
              WHERE w.name LIKE '%:' || $1::text GROUP BY w.started_at",
            &[&newcomer.to_string()],
        )
        .await
        .unwrap()
        .get(0);
    eprintln!("the fourth worker held its share {arrived:.3} s after it registered");
    assert!(
        arrived <= 2.0 * HEARTBEAT.as_secs_f64(),
        "the newcomer got its share after {arrived:.3} s, more than two heartbeats"
    );

    // One leaves cleanly: its orgs are handed back at once, so the other three hold them
    // within a heartbeat or two, long before its 2 s leases would have expired.
    let leaving = workers.remove(0);
    let left_pid = leaving.id();
    let before = leases(&client).await;
    stop(leaving).await;
    let stopped = Instant::now();
    let pids: Vec<u32> = workers.iter().map(TestProcess::id).collect();
    let after_leave = split(&client, &pids, (2, 3), Duration::from_secs(10)).await;
    let moved_in = stopped.elapsed();
    eprintln!("the clean leaver's orgs moved {moved_in:?} after it exited");
    assert!(
        moved_in < TTL,
        "a clean leave waited {moved_in:?}, as long as a lease"
    );
    assert_new_epochs(&before, &after_leave, left_pid);

    // One is killed: its orgs move once its leases expire (2 s), and not before.
    let mut killed = workers.remove(0);
    let killed_pid = killed.id();
    let before = leases(&client).await;
    killed.kill();
    let killed_at = Instant::now();
    let pids: Vec<u32> = workers.iter().map(TestProcess::id).collect();
    let after_kill = split(&client, &pids, (4, 4), Duration::from_secs(20)).await;
    let moved_in = killed_at.elapsed();
    eprintln!("the killed worker's orgs moved {moved_in:?} after the kill");
    assert!(
        moved_in >= TTL - HEARTBEAT && moved_in <= TTL + 3 * HEARTBEAT,
        "a killed worker's orgs moved after {moved_in:?} with a {TTL:?} lease"
    );
    assert_new_epochs(&before, &after_kill, killed_pid);

    eventually_some("every org live", Duration::from_secs(60), async || {
        for (name, _) in &orgs {
            if !all_live(&client, name).await {
                return None;
            }
        }
        Some(())
    })
    .await;
    for worker in workers {
        stop(worker).await;
    }
    let last = leases(&client).await;
    for (name, emulator) in &orgs {
        assert_mirror_equals_org(emulator, &client, name).await;
        // Each epoch is one worker taking the org, which logs in at most once (`org add`'s
        // login is the first; a take handed back before its first request has none): no
        // worker ever ran an org without a lease of its own.
        let epoch = last[name].1;
        let sessions = i64::try_from(logins(emulator) - 1).unwrap();
        assert!(
            (1..=epoch).contains(&sessions),
            "{name}: {sessions} logins by workers for {epoch} lease epochs"
        );
    }
    assert!(
        last.values().all(|(owner, _)| owner.is_none()),
        "workers that stopped still hold leases: {last:?}"
    );
}

/// Every org `gone` held in `before` is held by another worker in `after`, at a higher
/// epoch; an org that changed holders otherwise did so with a higher epoch too (placement
/// may move a few more as the shares change).
fn assert_new_epochs(
    before: &BTreeMap<String, (Option<u32>, i64)>,
    after: &BTreeMap<String, (Option<u32>, i64)>,
    gone: u32,
) {
    for (org, (owner, epoch)) in before {
        let (new_owner, new_epoch) = after[org];
        if *owner == Some(gone) {
            assert!(
                new_owner != Some(gone) && new_epoch > *epoch,
                "{org}: {owner:?}@{epoch} then {new_owner:?}@{new_epoch}"
            );
        } else if new_owner != *owner {
            assert!(
                new_epoch > *epoch,
                "{org}: {owner:?}@{epoch} then {new_owner:?}@{new_epoch}"
            );
        } else {
            // Workers that see a membership change a heartbeat apart may pass an org back
            // and forth once; each take is a new epoch, never an old one.
            assert!(new_epoch >= *epoch, "{org}: epoch {epoch} then {new_epoch}");
        }
    }
}
