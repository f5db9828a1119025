//! Many orgs against one mirror database, with the real `sfpg` binary: a rate limit and a
//! budget changed through the CLI while `sfpg sync` runs, measured from the emulator's
//! request log; one sync process serving several orgs while some of them are broken; and two
//! sync processes sharing orgs, one killed with SIGKILL.

// Helpers of a test crate may unwrap: a failure should stop the test where it happened.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../sync/tests/emulated/mirror.rs"]
mod mirror;

use std::collections::HashMap;
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sfpg_emulator::http::{
    DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, DEFAULT_USERNAME, EmulatorConfig, LoggedRequest,
    OrgSource, RunningEmulator,
};
use sfpg_testkit::TestDatabase;

/// A fixed test key (base64 of 32 bytes).
const MASTER_KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
const OBJECTS: [&str; 2] = ["Account", "Contact"];
const TOKEN_PATH: &str = "/services/oauth2/token";

fn sfpg(db: &TestDatabase, args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_sfpg"));
    command
        .args(args)
        .env("DATABASE_URL", db.url())
        .env("SFPG_MASTER_KEY", MASTER_KEY)
        .env("RUST_LOG", "sfpg=warn");
    command
}

/// Runs one `sfpg` command to its end, off the runtime's threads (the emulators it talks to
/// are served by this test's runtime), and returns what it printed.
async fn run(db: &TestDatabase, args: &[&str]) -> String {
    let mut command = sfpg(db, args);
    let output: Output = tokio::task::spawn_blocking(move || command.output())
        .await
        .unwrap()
        .unwrap();
    let printed = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "sfpg {args:?}: {printed}");
    printed
}

/// A running `sfpg sync`, killed if the test ends without stopping it.
struct SyncProcess {
    child: Child,
}

impl SyncProcess {
    fn start(db: &TestDatabase, extra: &[&str]) -> SyncProcess {
        let mut args = vec!["sync", "--no-progress"];
        args.extend_from_slice(extra);
        let child = sfpg(db, &args)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        SyncProcess { child }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGKILL: no chance to release anything.
    async fn kill(mut self) {
        self.child.kill().unwrap();
        self.wait_for_exit().await;
    }

    async fn wait_for_exit(&mut self) -> std::process::ExitStatus {
        tokio::time::timeout(Duration::from_secs(20), async {
            loop {
                if let Some(status) = self.child.try_wait().unwrap() {
                    return status;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
        .await
        .expect("sfpg sync ends within 20 s")
    }

    /// SIGTERM, and the clean exit it must lead to.
    async fn stop(self) {
        let terminated = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status()
            .unwrap();
        assert!(terminated.success());
        let mut this = self;
        let status = this.wait_for_exit().await;
        assert!(status.success(), "sfpg sync exited with {status:?}");
    }
}

impl Drop for SyncProcess {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

async fn emulator(records: usize, seed: u64) -> RunningEmulator {
    sfpg_emulator::http::start(EmulatorConfig {
        org: OrgSource::Generated { records, seed },
        ..EmulatorConfig::default()
    })
    .await
    .unwrap()
}

/// Registers `name` on `emulator` (client credentials, checked by logging in) mirroring
/// Account and Contact, at `requests` per `per`.
async fn add_org(
    db: &TestDatabase,
    name: &str,
    emulator: &RunningEmulator,
    requests: &str,
    per: &str,
) {
    let objects = OBJECTS.join(",");
    run(
        db,
        &[
            "org",
            "add",
            name,
            "--instance-url",
            emulator.instance_url(),
            "--client-id",
            DEFAULT_CLIENT_ID,
            "--client-secret",
            DEFAULT_CLIENT_SECRET,
            "--objects",
            &objects,
            "--batch-size",
            "200",
        ],
    )
    .await;
    run(
        db,
        &[
            "org",
            "set-rate-limit",
            name,
            "--requests",
            requests,
            "--per",
            per,
        ],
    )
    .await;
}

/// The requests that used the daily allocation, oldest first.
fn counted(emulator: &RunningEmulator) -> Vec<LoggedRequest> {
    emulator
        .requests(0)
        .into_iter()
        .filter(|r| r.counted)
        .collect()
}

/// How many times a client logged in.
fn logins(emulator: &RunningEmulator) -> usize {
    emulator
        .requests(0)
        .iter()
        .filter(|r| r.path == TOKEN_PATH)
        .count()
}

/// Now, in milliseconds since the epoch: the unit the checks below compare request times in.
fn now() -> i64 {
    let since_epoch = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    i64::try_from(since_epoch.as_millis()).unwrap()
}

/// When the emulator received a request, in milliseconds since the epoch.
fn at(request: &LoggedRequest) -> i64 {
    request.time.timestamp_millis()
}

/// The pauses between consecutive requests, in milliseconds.
fn gaps(requests: &[LoggedRequest]) -> Vec<i64> {
    requests
        .windows(2)
        .map(|pair| at(&pair[1]) - at(&pair[0]))
        .collect()
}

/// Polls `check` every 50 ms until it returns `Some`, for at most `timeout`.
async fn wait_until<T, F, Fut>(timeout: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(Instant::now() < deadline, "{what}: not within {timeout:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Whether every object of `org` is live.
async fn all_live(client: &tokio_postgres::Client, org: &str) -> bool {
    let row = client
        .query_one(
            "SELECT count(*) FILTER (WHERE phase = 'live'), count(*) FROM sfpg.objects WHERE org_name = $1",
            &[&org],
        )
        .await
        .unwrap();
    let (live, all): (i64, i64) = (row.get(0), row.get(1));
    all > 0 && live == all
}

async fn assert_mirror_equals_org(
    emulator: &RunningEmulator,
    client: &tokio_postgres::Client,
    org: &str,
) {
    for object in OBJECTS {
        let diff = mirror::mirror_diff(emulator, client, org, object).await;
        assert!(
            diff.is_empty(),
            "{org}.{object}: the mirror differs from the org ({} differences):\n{}",
            diff.len(),
            diff.iter().take(10).cloned().collect::<Vec<_>>().join("\n")
        );
    }
}

// ---- a rate limit changed live ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rate_set_with_the_cli_takes_effect_within_two_seconds() {
    // Twenty thousand records at 200 a page, and polling once live: the sync never runs
    // out of requests to make, so the request log shows the limiter's pace.
    let salesforce = emulator(20_000, 31).await;
    let db = TestDatabase::create().await;
    add_org(&db, "acme", &salesforce, "1", "3s").await;
    // `org add` checked the objects with a request of its own: the pace measured is the
    // sync's, from the request after it.
    let registered = salesforce.requests(0).last().map_or(0, |r| r.seq);
    let by_sync = || -> Vec<LoggedRequest> {
        counted(&salesforce)
            .into_iter()
            .filter(|r| r.seq > registered)
            .collect()
    };
    let sync = SyncProcess::start(&db, &[]);

    wait_until(
        Duration::from_secs(30),
        "four requests at 1 per 3 s",
        || {
            let n = by_sync().len();
            async move { (n >= 4).then_some(()) }
        },
    )
    .await;
    let before_change = now();
    run(
        &db,
        &[
            "org",
            "set-rate-limit",
            "acme",
            "--requests",
            "5",
            "--per",
            "1s",
        ],
    )
    .await;
    let changed = now();
    tokio::time::sleep(Duration::from_secs(5)).await;
    sync.stop().await;

    let requests = by_sync();
    let (before, after): (Vec<LoggedRequest>, Vec<LoggedRequest>) =
        requests.into_iter().partition(|r| at(r) < before_change);
    let slow = gaps(&before);
    assert!(slow.len() >= 3, "{slow:?}");
    assert!(
        slow.iter().all(|gap| *gap >= 2_900),
        "at 1 per 3 s, requests came closer than 3 s apart (ms): {slow:?}"
    );
    // From 2 s after the change, requests come at the new rate: 5 a second, 200 ms apart.
    let from = changed + 2_000;
    let window: Vec<&LoggedRequest> = after
        .iter()
        .filter(|r| at(r) >= from && at(r) < from + 2_000)
        .collect();
    let fast = gaps(&after);
    // The first request that came sooner after its predecessor than the old rate allows.
    let effect = after
        .windows(2)
        .find(|pair| at(&pair[1]) - at(&pair[0]) < 1_000)
        .map(|pair| at(&pair[1]) - changed)
        .expect("no request at the new rate");
    eprintln!("the new rate showed {effect} ms after the change; gaps (ms): {fast:?}");
    assert!(
        effect <= 2_000,
        "the new rate showed only {effect} ms after the change"
    );
    // 10 at 5/s; the old rate allows 1. Each turn also writes its page, which on a loaded
    // machine can take longer than 200 ms, so fewer than 10 is no fault of the limiter.
    assert!(
        window.len() >= 5,
        "only {} requests in the 2 s starting 2 s after the change to 5/s; gaps after the \
         change (ms): {fast:?}",
        window.len()
    );
    assert!(
        fast.iter().all(|gap| *gap >= 150),
        "faster than 5 per second after the change (ms): {fast:?}"
    );
}

// ---- a budget changed live ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_budget_set_with_the_cli_pauses_and_resumes_polling_at_once() {
    let salesforce = emulator(20_000, 32).await;
    let (_, allocation) = salesforce.api_usage();
    // Others have used 30% of the org's daily allocation today.
    salesforce.consume_api_requests(allocation * 3 / 10);
    let db = TestDatabase::create().await;
    add_org(&db, "acme", &salesforce, "5", "1s").await;
    let client = db.connect().await;
    // No probe during the test: only the budget change may resume polling.
    let sync = SyncProcess::start(&db, &["--budget-probe-every", "1h"]);
    wait_until(Duration::from_secs(30), "a few requests", || {
        let n = counted(&salesforce).len();
        async move { (n >= 5).then_some(()) }
    })
    .await;

    run(
        &db,
        &["org", "set-budget", "acme", "--max-daily-share", "20%"],
    )
    .await;
    let lowered = now();
    let reason: String = wait_until(Duration::from_secs(5), "polling paused", || {
        let client = &client;
        async move {
            client
                .query_one(
                    "SELECT paused_reason FROM sfpg.orgs WHERE name = 'acme'",
                    &[],
                )
                .await
                .unwrap()
                .get::<_, Option<String>>(0)
        }
    })
    .await;
    let paused_after = now() - lowered;
    assert!(
        paused_after <= 2_000,
        "paused {paused_after} ms after the budget change"
    );
    assert!(reason.contains("daily API budget"), "{reason}");
    assert!(reason.contains("20%"), "{reason}");
    tokio::time::sleep(Duration::from_secs(3)).await;
    let late: Vec<i64> = counted(&salesforce)
        .iter()
        .map(|r| at(r) - lowered)
        .filter(|t| *t > 1_000)
        .collect();
    assert!(
        late.is_empty(),
        "requests went on after the budget fell below the usage (ms after): {late:?}"
    );

    run(
        &db,
        &["org", "set-budget", "acme", "--max-daily-share", "90%"],
    )
    .await;
    let raised = now();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let resumed: Vec<i64> = counted(&salesforce)
        .iter()
        .map(|r| at(r) - raised)
        .filter(|t| *t > 0 && *t < 2_000)
        .collect();
    assert!(
        resumed.len() >= 4,
        "polling did not resume within 2 s of raising the budget (ms after): {resumed:?}"
    );
    let reason: Option<String> = client
        .query_one(
            "SELECT paused_reason FROM sfpg.orgs WHERE name = 'acme'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(reason, None);
    sync.stop().await;
}

// ---- one process, several orgs, some broken ----

/// The longest pause between an org's requests, from its first counted request until
/// `until`.
fn longest_gap_until(requests: &[LoggedRequest], until: i64) -> i64 {
    let before: Vec<LoggedRequest> = requests
        .iter()
        .filter(|r| at(r) <= until)
        .cloned()
        .collect();
    gaps(&before).into_iter().max().unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broken_orgs_do_not_hold_up_the_healthy_ones() {
    // Two healthy orgs, and three broken ones: a refused password, a spent allocation, and
    // a Salesforce that is gone.
    let alpha = emulator(6_000, 41).await;
    let beta = emulator(6_000, 42).await;
    let gamma = emulator(1_000, 43).await;
    let delta = emulator(1_000, 44).await;
    let db = TestDatabase::create().await;
    add_org(&db, "alpha", &alpha, "5", "1s").await;
    add_org(&db, "beta", &beta, "5", "1s").await;
    // gamma's password was changed in Salesforce after it was registered.
    run(
        &db,
        &[
            "org",
            "add",
            "gamma",
            "--instance-url",
            gamma.instance_url(),
            "--client-id",
            DEFAULT_CLIENT_ID,
            "--client-secret",
            DEFAULT_CLIENT_SECRET,
            "--username",
            DEFAULT_USERNAME,
            "--password",
            "an-old-password",
            "--objects",
            "Account,Contact",
            "--no-verify",
        ],
    )
    .await;
    // delta's daily allocation is spent by other integrations.
    add_org(&db, "delta", &delta, "5", "1s").await;
    let (_, allocation) = delta.api_usage();
    delta.consume_api_requests(allocation);
    // epsilon's Salesforce went away after it was registered.
    let epsilon = emulator(1_000, 45).await;
    add_org(&db, "epsilon", &epsilon, "5", "1s").await;
    epsilon.shutdown().await;
    let client = db.connect().await;

    let started = now();
    // The broken orgs try again every second, as hard as they can.
    let sync = SyncProcess::start(&db, &["--retry-after", "1s", "--budget-probe-every", "1s"]);
    let mut live_at: HashMap<&str, i64> = HashMap::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while live_at.len() < 2 {
        for org in ["alpha", "beta"] {
            if !live_at.contains_key(org) && all_live(&client, org).await {
                live_at.insert(org, now());
            }
        }
        assert!(
            Instant::now() < deadline,
            "alpha and beta not live within 60 s: {live_at:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    for (org, emulator) in [("alpha", &alpha), ("beta", &beta)] {
        let requests = counted(emulator);
        let until = live_at[org];
        let longest = longest_gap_until(&requests, until);
        let used = requests.iter().filter(|r| at(r) <= until).count();
        let took = until - started;
        eprintln!("{org}: live after {took} ms, {used} requests, longest gap {longest} ms");
        // 200 ms apart at 5/s; a pause of 1.5 s would mean something held the org up.
        assert!(
            longest < 1_500,
            "{org} waited {longest} ms between two requests"
        );
        // What the org's own rate allows, plus start-up (migrations, logging in).
        let allowed = i64::try_from(used).unwrap() * 200 + 5_000;
        assert!(
            took <= allowed,
            "{org} went live after {took} ms for {used} requests at 5/s"
        );
        assert_mirror_equals_org(emulator, &client, org).await;
    }
    // The broken orgs kept trying meanwhile.
    assert!(
        logins(&gamma) >= 2,
        "gamma logged in {} times",
        logins(&gamma)
    );
    assert!(
        delta
            .requests(0)
            .iter()
            .any(|r| r.status == Some(403) && !r.injected),
        "delta was never refused"
    );

    let status = run(&db, &["status"]).await;
    let section = |org: &str| -> String {
        status
            .split("\n\n")
            .find(|block| block.starts_with(&format!("org {org} ")))
            .unwrap_or_else(|| panic!("no {org} in:\n{status}"))
            .to_owned()
    };
    let gamma_status = section("gamma");
    assert!(
        gamma_status.contains("last org error:") && gamma_status.contains("authentication failure"),
        "{gamma_status}"
    );
    let delta_status = section("delta");
    assert!(
        delta_status.contains("polling paused:") && delta_status.contains("REQUEST_LIMIT_EXCEEDED"),
        "{delta_status}"
    );
    // Each failed attempt (with the client's own retries and their growing pauses) takes
    // a while: wait for the first to be recorded.
    let epsilon_status = wait_until(Duration::from_secs(30), "epsilon's error recorded", || {
        let db = &db;
        async move {
            let status = run(db, &["status", "epsilon"]).await;
            status.contains("Connection refused").then_some(status)
        }
    })
    .await;
    let json = run(&db, &["status", "--json", "epsilon"]).await;
    let json: serde_json::Value = serde_json::from_str(&json).unwrap();
    let errors: Vec<&str> = json[0]["objects"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|object| object["last_error"].as_str())
        .collect();
    assert!(
        errors.iter().any(|e| e.contains("Connection refused")),
        "{errors:?}\n{epsilon_status}"
    );
    for org in ["alpha", "beta"] {
        let healthy = section(org);
        assert!(
            !healthy.contains("last org error") && !healthy.contains("paused"),
            "{healthy}"
        );
    }
    assert!(!status.contains("an-old-password"), "{status}");
    sync.stop().await;
}

// ---- two processes share the orgs ----

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_sync_processes_share_the_orgs_and_one_takes_over_when_the_other_dies() {
    let names = ["alpha", "beta", "gamma"];
    let mut emulators = Vec::new();
    for (i, _) in names.iter().enumerate() {
        emulators.push(emulator(6_000, 51 + i as u64).await);
    }
    let db = TestDatabase::create().await;
    for (name, emulator) in names.iter().zip(&emulators) {
        add_org(&db, name, emulator, "4", "1s").await;
    }
    let client = db.connect().await;
    // Logins so far are `org add`'s own.
    let registered: Vec<u64> = emulators
        .iter()
        .map(|e| e.requests(0).last().map_or(0, |r| r.seq))
        .collect();

    // The first process starts with alpha alone; beta and gamma are switched on once both
    // processes run, so that the two race for them.
    client
        .execute("UPDATE sfpg.orgs SET enabled = (name = 'alpha')", &[])
        .await
        .unwrap();
    // Who held each org, sampled every 50 ms, as it changed; and any moment an org's lock
    // was held twice.
    let seen: Arc<Mutex<HashMap<String, Vec<u32>>>> = Arc::default();
    let doubled: Arc<Mutex<Vec<String>>> = Arc::default();
    let sampler = {
        let (seen, doubled) = (Arc::clone(&seen), Arc::clone(&doubled));
        let watcher = db.connect().await;
        tokio::spawn(async move {
            loop {
                for (org, owner) in owners(&watcher).await {
                    if let Some(pid) = owner {
                        let mut seen = seen.lock().unwrap();
                        let history = seen.entry(org).or_default();
                        if history.last() != Some(&pid) {
                            history.push(pid);
                        }
                    }
                }
                for (org, holders) in lock_holders(&watcher).await {
                    if holders > 1 {
                        doubled.lock().unwrap().push(format!("{org}: {holders}"));
                    }
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
    };

    let first = SyncProcess::start(&db, &[]);
    wait_until(Duration::from_secs(20), "alpha held", || {
        let client = &client;
        let pid = first.pid();
        async move { (owners(client).await["alpha"] == Some(pid)).then_some(()) }
    })
    .await;
    let second = SyncProcess::start(&db, &[]);
    let pids = [first.pid(), second.pid()];
    // Time for the second to start (it finds alpha taken).
    tokio::time::sleep(Duration::from_secs(2)).await;
    client
        .execute("UPDATE sfpg.orgs SET enabled = true", &[])
        .await
        .unwrap();

    let held: HashMap<String, Option<u32>> =
        wait_until(Duration::from_secs(20), "every org held", || {
            let client = &client;
            async move {
                let owners = owners(client).await;
                owners.values().all(Option::is_some).then_some(owners)
            }
        })
        .await;
    // Let both run a while.
    tokio::time::sleep(Duration::from_secs(3)).await;
    eprintln!("held: {held:?} (first {}, second {})", pids[0], pids[1]);
    let mut count_by_pid: HashMap<u32, usize> = HashMap::new();
    for owner in held.values().flatten() {
        *count_by_pid.entry(*owner).or_default() += 1;
    }
    assert!(
        held.values().flatten().all(|pid| pids.contains(pid)),
        "{held:?} vs {pids:?}"
    );
    for (name, emulator) in names.iter().zip(&emulators) {
        assert_eq!(
            logins(emulator) - 1,
            1,
            "{name}: one process logged in, once"
        );
    }
    let locks = lock_holders(&client).await;
    assert!(locks.values().all(|n| *n == 1), "{locks:?}");

    // Kill the process that holds the most orgs.
    let victim = *count_by_pid
        .iter()
        .max_by_key(|(_, n)| **n)
        .map(|(pid, _)| pid)
        .unwrap();
    let (victim_process, survivor) = if victim == first.pid() {
        (first, second)
    } else {
        (second, first)
    };
    let moved: Vec<String> = held
        .iter()
        .filter(|(_, owner)| **owner == Some(victim))
        .map(|(org, _)| org.clone())
        .collect();
    victim_process.kill().await;
    let killed = now();
    let killed_at = Instant::now();

    wait_until(
        Duration::from_secs(30),
        "the survivor holding every org",
        || {
            let client = &client;
            let survivor = survivor.pid();
            async move {
                owners(client)
                    .await
                    .values()
                    .all(|o| *o == Some(survivor))
                    .then_some(())
            }
        },
    )
    .await;
    let took_over = killed_at.elapsed();
    eprintln!("{moved:?} taken over {took_over:?} after the kill");

    wait_until(Duration::from_secs(60), "every org live", || {
        let client = &client;
        async move {
            for org in names {
                if !all_live(client, org).await {
                    return None;
                }
            }
            Some(())
        }
    })
    .await;
    sampler.abort();
    survivor.stop().await;

    for (i, (name, emulator)) in names.iter().zip(&emulators).enumerate() {
        assert_mirror_equals_org(emulator, &client, name).await;
        let requests: Vec<LoggedRequest> = emulator
            .requests(registered[i])
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
        let expected_logins = if moved.contains(&name.to_string()) {
            2
        } else {
            1
        };
        assert_eq!(
            logins(emulator) - 1,
            expected_logins,
            "{name}: logins by sync processes"
        );
        if moved.contains(&name.to_string()) {
            let resumed = requests.iter().find(|r| at(r) > killed).unwrap();
            let gap = at(resumed) - killed;
            assert!(
                gap <= 25_000,
                "{name}: no request for {gap} ms after its process was killed"
            );
        }
    }
    let seen = seen.lock().unwrap().clone();
    for org in names {
        let history = &seen[org];
        let expected: Vec<u32> = if moved.contains(&org.to_string()) {
            vec![victim, survivor_pid(&pids, victim)]
        } else {
            vec![survivor_pid(&pids, victim)]
        };
        assert_eq!(history, &expected, "{org}: holders over time");
    }
    assert!(
        doubled.lock().unwrap().is_empty(),
        "an org's lock was held twice: {:?}",
        doubled.lock().unwrap()
    );
}

fn survivor_pid(pids: &[u32; 2], victim: u32) -> u32 {
    if pids[0] == victim { pids[1] } else { pids[0] }
}
