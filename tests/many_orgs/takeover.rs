//! Two sync processes share the orgs of one mirror database: each org is held by one of
//! them at a time (its lease and its advisory lock), and when one is killed with SIGKILL,
//! the other takes its orgs over and carries on where it stopped.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sfpg_emulator::http::{LoggedRequest, RunningEmulator};
use sfpg_testkit::TestDatabase;
use sfpg_testkit::process::{TestProcess, eventually, eventually_some};
use tokio::task::JoinHandle;

use super::{
    add_org, all_live, assert_mirror_equals_org, at, emulator, gaps, logins, now, start_sync, stop,
};

const NAMES: [&str; 3] = ["alpha", "beta", "gamma"];

/// Each org's `lease_owner` (`host:pid`), as a pid.
async fn owners(client: &tokio_postgres::Client) -> HashMap<String, Option<u32>> {
    client
        .query("SELECT name, lease_owner FROM sfpg.orgs", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| {
            let owner: Option<String> = r.get(1);
            let pid = owner.map(|o| o.rsplit(':').next().unwrap().parse().unwrap());
            (r.get(0), pid)
        })
        .collect()
}

/// How many sessions hold each org's advisory lock, by org.
async fn lock_holders(client: &tokio_postgres::Client) -> HashMap<String, i64> {
    client
        .query(
            "SELECT o.name, count(l.pid)
               FROM sfpg.orgs o
               LEFT JOIN pg_locks l
                 ON l.locktype = 'advisory' AND l.granted AND l.objsubid = 2
                -- Advisory locks are per database; other tests' orgs share the server.
                AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
                AND l.classid = x'73667073'::int::oid AND l.objid = hashtext(o.name)::oid
              GROUP BY o.name",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect()
}

/// Who held each org, sampled every 50 ms, as it changed; and any moment an org's lock
/// was held twice.
struct Sampler {
    seen: Arc<Mutex<HashMap<String, Vec<u32>>>>,
    doubled: Arc<Mutex<Vec<String>>>,
    task: JoinHandle<()>,
}

impl Sampler {
    async fn start(db: &TestDatabase) -> Sampler {
        let seen: Arc<Mutex<HashMap<String, Vec<u32>>>> = Arc::default();
        let doubled: Arc<Mutex<Vec<String>>> = Arc::default();
        let (history, twice) = (Arc::clone(&seen), Arc::clone(&doubled));
        let watcher = db.connect().await;
        let task = tokio::spawn(async move {
            loop {
                for (org, owner) in owners(&watcher).await {
                    if let Some(pid) = owner {
                        let mut seen = history.lock().unwrap();
                        let holders = seen.entry(org).or_default();
                        if holders.last() != Some(&pid) {
                            holders.push(pid);
                        }
                    }
                }
                for (org, holders) in lock_holders(&watcher).await {
                    if holders > 1 {
                        twice.lock().unwrap().push(format!("{org}: {holders}"));
                    }
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        });
        Sampler {
            seen,
            doubled,
            task,
        }
    }

    /// Stops sampling; returns each org's holders over time and the moments of a lock
    /// held twice.
    fn finish(self) -> (HashMap<String, Vec<u32>>, Vec<String>) {
        self.task.abort();
        let seen = self.seen.lock().unwrap().clone();
        let doubled = self.doubled.lock().unwrap().clone();
        (seen, doubled)
    }
}

/// Starts the first process with alpha alone, then the second, then enables beta and
/// gamma, so that the two race for them; returns both once every org is held, with who
/// holds each.
async fn start_two(
    db: &TestDatabase,
    client: &tokio_postgres::Client,
) -> ([TestProcess; 2], HashMap<String, Option<u32>>) {
    client
        .execute("UPDATE sfpg.orgs SET enabled = (name = 'alpha')", &[])
        .await
        .unwrap();
    let first = start_sync(db, &[]);
    let pid = first.id();
    eventually("alpha held", Duration::from_secs(20), async || {
        owners(client).await["alpha"] == Some(pid)
    })
    .await;
    let second = start_sync(db, &[]);
    // Time for the second to start (it finds alpha taken).
    tokio::time::sleep(Duration::from_secs(2)).await;
    client
        .execute("UPDATE sfpg.orgs SET enabled = true", &[])
        .await
        .unwrap();
    let held = eventually_some("every org held", Duration::from_secs(20), async || {
        let owners = owners(client).await;
        owners.values().all(Option::is_some).then_some(owners)
    })
    .await;
    ([first, second], held)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_sync_processes_share_the_orgs_and_one_takes_over_when_the_other_dies() {
    let mut emulators = Vec::new();
    for i in 0..NAMES.len() {
        emulators.push(emulator(6_000, 51 + i as u64).await);
    }
    let db = TestDatabase::create().await;
    for (name, emulator) in NAMES.iter().zip(&emulators) {
        add_org(&db, name, emulator, "4", "1s").await;
    }
    let client = db.connect().await;
    // Logins so far are `org add`'s own.
    let registered: Vec<u64> = emulators
        .iter()
        .map(|e| e.requests(0).last().map_or(0, |r| r.seq))
        .collect();
    let sampler = Sampler::start(&db).await;
    let (processes, held) = start_two(&db, &client).await;
    let pids = [processes[0].id(), processes[1].id()];
    // Let both run a while.
    tokio::time::sleep(Duration::from_secs(3)).await;
    eprintln!("held: {held:?} (first {}, second {})", pids[0], pids[1]);
    assert_each_held_once(&client, &held, pids, &emulators).await;

    // Kill the process that holds the most orgs.
    let (victim, moved, survivor) = kill_the_busier(processes, &held);
    let killed = now();
    let survivor_pid = survivor.id();
    let killed_at = Instant::now();
    eventually(
        "the survivor holding every org",
        Duration::from_secs(30),
        async || {
            owners(&client)
                .await
                .values()
                .all(|o| *o == Some(survivor_pid))
        },
    )
    .await;
    eprintln!(
        "{moved:?} taken over {:?} after the kill",
        killed_at.elapsed()
    );
    eventually("every org live", Duration::from_secs(60), async || {
        for org in NAMES {
            if !all_live(&client, org).await {
                return false;
            }
        }
        true
    })
    .await;
    let (seen, doubled) = sampler.finish();
    stop(survivor).await;

    let takeover = Takeover {
        victim,
        survivor: survivor_pid,
        moved,
        killed,
    };
    for (i, (name, emulator)) in NAMES.iter().zip(&emulators).enumerate() {
        assert_mirror_equals_org(emulator, &client, name).await;
        takeover.assert_carried_on(name, emulator, registered[i], &seen[*name]);
    }
    assert!(
        doubled.is_empty(),
        "an org's lock was held twice: {doubled:?}"
    );
}

/// Asserts that every org is held by one of the two processes (`pids`), that one process
/// logged in to each, once, and that one session holds each org's lock.
async fn assert_each_held_once(
    client: &tokio_postgres::Client,
    held: &HashMap<String, Option<u32>>,
    pids: [u32; 2],
    emulators: &[RunningEmulator],
) {
    assert!(
        held.values().flatten().all(|pid| pids.contains(pid)),
        "{held:?} vs {pids:?}"
    );
    for (name, emulator) in NAMES.iter().zip(emulators) {
        assert_eq!(
            logins(emulator) - 1,
            1,
            "{name}: one process logged in, once"
        );
    }
    let locks = lock_holders(client).await;
    assert!(locks.values().all(|n| *n == 1), "{locks:?}");
}

/// Kills (SIGKILL) the process that holds the most orgs; returns its pid, the orgs it
/// held, and the other process.
fn kill_the_busier(
    processes: [TestProcess; 2],
    held: &HashMap<String, Option<u32>>,
) -> (u32, Vec<String>, TestProcess) {
    let mut count_by_pid: HashMap<u32, usize> = HashMap::new();
    for owner in held.values().flatten() {
        *count_by_pid.entry(*owner).or_default() += 1;
    }
    let victim = *count_by_pid
        .iter()
        .max_by_key(|(_, n)| **n)
        .map(|(pid, _)| pid)
        .unwrap();
    let [first, second] = processes;
    let (mut victim_process, survivor) = if victim == first.id() {
        (first, second)
    } else {
        (second, first)
    };
    let moved: Vec<String> = held
        .iter()
        .filter(|(_, owner)| **owner == Some(victim))
        .map(|(org, _)| org.clone())
        .collect();
    victim_process.kill();
    (victim, moved, survivor)
}

/// What happened when the victim was killed.
struct Takeover {
    victim: u32,
    survivor: u32,
    /// The orgs the victim held.
    moved: Vec<String>,
    /// When it was killed, in ms since the epoch.
    killed: i64,
}

impl Takeover {
    /// Asserts that org `name` was synced by one process at a time at its rate, logged in
    /// once per process that held it (`holders`, in order), and, if it moved, resumed soon
    /// after the kill.
    fn assert_carried_on(
        &self,
        name: &str,
        emulator: &RunningEmulator,
        registered: u64,
        holders: &[u32],
    ) {
        let requests: Vec<LoggedRequest> = emulator
            .requests(registered)
            .into_iter()
            .filter(|r| r.counted)
            .collect();
        // Two processes syncing one org at once would each send at 4/s: gaps of 125 ms
        // on average, some much shorter.
        let shortest = gaps(&requests).into_iter().min().unwrap();
        assert!(
            shortest >= 200,
            "{name}: two requests {shortest} ms apart at 4/s"
        );
        let moved = self.moved.iter().any(|org| org == name);
        let expected_logins = if moved { 2 } else { 1 };
        assert_eq!(
            logins(emulator) - 1,
            expected_logins,
            "{name}: logins by sync processes"
        );
        if moved {
            let resumed = requests.iter().find(|r| at(r) > self.killed).unwrap();
            let gap = at(resumed) - self.killed;
            assert!(
                gap <= 25_000,
                "{name}: no request for {gap} ms after its process was killed"
            );
        }
        let expected: Vec<u32> = if moved {
            vec![self.victim, self.survivor]
        } else {
            vec![self.survivor]
        };
        assert_eq!(holders, expected, "{name}: holders over time");
    }
}
