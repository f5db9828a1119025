//! The benchmarks of issue 26 (ignored by default; figures in docs/benchmarks.md): many orgs
//! on one multi-org emulator (`orgs: N`, each with Accounts, Contacts and Opportunities),
//! synced by `sfpg sync` workers, real processes, against one PostgreSQL database.
//!
//! - `placement`: the orgs synced by 1, then 3, then 5 workers (a fresh database each
//!   time): how long until every org is live, orgs per worker against the fair share, RSS
//!   per org held and CPU per idle org, database connections per worker (pg_stat_activity,
//!   by the `application_name` each worker's database URL sets).
//! - `failover` (failover.rs): 3 workers, one killed with SIGKILL once every org is live;
//!   how long until each org it held is polled again by another worker, and that no org was
//!   ever synced by two workers at once, from the emulator's per-org request logs (each
//!   request names the session, i.e. the worker's login, that made it) and the leases'
//!   epochs.
//!
//! `SFPG_SCALE_BENCH_ORGS` (default 1,000), `SFPG_SCALE_BENCH_RECORDS` (records of each
//! object, default 200), `SFPG_SCALE_BENCH_WORKERS` (default `1,3,5`),
//! `SFPG_SCALE_BENCH_SYNC_ARGS` (the workers' flags besides `sync --no-progress`, split at
//! spaces; default `--lease-moves 200 --heartbeat 2s`: a cold start takes at most
//! `--lease-moves` orgs per heartbeat per worker):
//! `cargo test --release --test scale_bench -- --ignored --nocapture --test-threads 1`

// Helpers of a test crate may unwrap: a failure should stop the test where it happened.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod failover;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use sfpg_control::orgs::{NewOrg, RateLimit};
use sfpg_emulator::http::{EmulatorConfig, OrgSource, RunningEmulator};
use sfpg_testkit::TestDatabase;
use sfpg_testkit::binary::Sfpg;
use sfpg_testkit::process::TestProcess;

const SFPG: Sfpg = Sfpg::new(env!("CARGO_BIN_EXE_sfpg")).logging("sfpg=warn");
const OBJECTS: [&str; 3] = ["Account", "Contact", "Opportunity"];

fn setting(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn orgs() -> usize {
    setting("SFPG_SCALE_BENCH_ORGS", 1_000)
}

/// The emulator: `orgs()` orgs of `SFPG_SCALE_BENCH_RECORDS` records per object.
async fn emulator() -> RunningEmulator {
    let started = Instant::now();
    let emulator = sfpg_emulator::http::start(EmulatorConfig {
        orgs: orgs(),
        org: OrgSource::Each {
            each: setting("SFPG_SCALE_BENCH_RECORDS", 200),
            seed: 1,
        },
        ..EmulatorConfig::default()
    })
    .await
    .unwrap();
    println!(
        "emulator: {} orgs of {} records per object, started in {:.1} s",
        orgs(),
        setting("SFPG_SCALE_BENCH_RECORDS", 200),
        started.elapsed().as_secs_f64()
    );
    emulator
}

/// `org0001`, `org0002`, …: the name (and schema) of the emulator's org `number`.
fn org_name(number: usize) -> String {
    format!("org{number:04}")
}

/// Registers every org of `emulator` in `db` (client credentials, the three objects, the
/// default rate of 1 request per 3 s), straight through sfpg-control: `sfpg org add` a
/// thousand times would measure process starts.
async fn register(db: &TestDatabase, emulator: &RunningEmulator) {
    let started = Instant::now();
    let mut client = db.connect().await;
    sfpg_control::migrations::apply_control_schema(&mut client)
        .await
        .unwrap();
    let key = sfpg_testkit::world::master_key();
    for login in emulator.org_logins() {
        let name = org_name(login.number);
        let new = NewOrg {
            pubsub_endpoint: Some(emulator.pubsub_endpoint().to_owned()),
            ..NewOrg::client_credentials(
                &name,
                &login.instance_url,
                &login.client_id,
                &login.client_secret,
                &OBJECTS,
            )
        };
        sfpg_control::orgs::insert(&mut client, &new, &key)
            .await
            .unwrap();
        sfpg_control::admin::set_rate_limit(&client, &name, RateLimit::default())
            .await
            .unwrap();
    }
    println!(
        "registered {} orgs in {:.1} s",
        emulator.org_logins().len(),
        started.elapsed().as_secs_f64()
    );
}

/// A worker: `sfpg sync` with `application_name=worker-N` in its database URL, so that
/// pg_stat_activity tells its connections apart.
struct Worker {
    index: usize,
    process: TestProcess,
}

impl Worker {
    fn start(db: &TestDatabase, index: usize) -> Worker {
        let separator = if db.url().contains('?') { '&' } else { '?' };
        let url = format!("{}{separator}application_name=worker-{index}", db.url());
        let extra = std::env::var("SFPG_SCALE_BENCH_SYNC_ARGS")
            .unwrap_or_else(|_| "--lease-moves 200 --heartbeat 2s".to_owned());
        let mut args = vec!["sync", "--no-progress"];
        args.extend(extra.split_whitespace());
        let process = SFPG.start(&url, &args);
        Worker { index, process }
    }

    /// The name it holds leases under (`host:pid`) ends with this.
    fn owner_suffix(&self) -> String {
        format!(":{}", self.process.id())
    }
}

/// How many orgs have every object live.
async fn live_orgs(client: &tokio_postgres::Client) -> i64 {
    client
        .query_one(
            "SELECT count(*) FROM (SELECT org_name FROM sfpg.objects GROUP BY org_name
              HAVING bool_and(phase = 'live')) AS live",
            &[],
        )
        .await
        .unwrap()
        .get(0)
}

/// The orgs each worker holds, by worker index (from `sfpg.orgs.lease_owner`).
async fn held(client: &tokio_postgres::Client, workers: &[Worker]) -> HashMap<usize, Vec<String>> {
    let rows = client
        .query(
            "SELECT org_name, owner FROM sfpg.leases WHERE owner IS NOT NULL",
            &[],
        )
        .await
        .unwrap();
    let mut held: HashMap<usize, Vec<String>> = HashMap::new();
    for row in rows {
        let (org, owner): (String, String) = (row.get(0), row.get(1));
        if let Some(worker) = workers.iter().find(|w| owner.ends_with(&w.owner_suffix())) {
            held.entry(worker.index).or_default().push(org);
        }
    }
    held
}

/// Database connections by `application_name`, in this database.
async fn connections(client: &tokio_postgres::Client) -> HashMap<String, i64> {
    client
        .query(
            "SELECT application_name, count(*) FROM pg_stat_activity
              WHERE datname = current_database() AND pid <> pg_backend_pid()
              GROUP BY 1",
            &[],
        )
        .await
        .unwrap()
        .into_iter()
        .map(|row| (row.get(0), row.get(1)))
        .collect()
}

/// Waits until every org is live (printing progress every 10 s); how long it took.
async fn until_all_live(
    client: &tokio_postgres::Client,
    started: Instant,
    within: Duration,
) -> Duration {
    let total = orgs() as i64;
    let mut reported = Instant::now();
    loop {
        let live = live_orgs(client).await;
        if live == total {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < within,
            "only {live} of {total} orgs live after {within:?}"
        );
        if reported.elapsed() >= Duration::from_secs(10) {
            println!(
                "  {:>5.0} s: {live} of {total} orgs live",
                started.elapsed().as_secs_f64()
            );
            reported = Instant::now();
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Prints each worker's share, RSS per org held, CPU per idle org over `idle`, and
/// database connections; asserts the balance (each within ±10% of the fair share).
async fn report_workers(client: &tokio_postgres::Client, workers: &[Worker], idle: Duration) {
    let fair = orgs() as f64 / workers.len() as f64;
    let before: Vec<Duration> = workers.iter().map(|w| w.process.cpu_time()).collect();
    tokio::time::sleep(idle).await;
    let held = held(client, workers).await;
    let connections = connections(client).await;
    let mut unbalanced = Vec::new();
    for (worker, cpu_before) in workers.iter().zip(before) {
        let orgs = held.get(&worker.index).map_or(0, Vec::len);
        let rss = worker.process.memory("VmRSS") as f64;
        let cpu = (worker.process.cpu_time() - cpu_before).as_secs_f64() / idle.as_secs_f64();
        let per_org = |x: f64| if orgs == 0 { 0.0 } else { x / orgs as f64 };
        println!(
            "  worker-{}: {orgs} orgs ({:+.1}% of the fair share {fair:.1}), RSS {:.1} MB = {:.2} MB per org, \
             idle CPU {:.1}% of a core = {:.3}% per org, {} database connections",
            worker.index,
            100.0 * (orgs as f64 - fair) / fair,
            rss / 1e6,
            per_org(rss) / 1e6,
            100.0 * cpu,
            100.0 * per_org(cpu),
            connections
                .get(&format!("worker-{}", worker.index))
                .copied()
                .unwrap_or(0)
        );
        if (orgs as f64 - fair).abs() > 0.1 * fair {
            unbalanced.push(worker.index);
        }
    }
    println!(
        "  within ±10% of the fair share: {}",
        if unbalanced.is_empty() {
            "every worker".to_owned()
        } else {
            format!("not workers {unbalanced:?}")
        }
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: run with --ignored --nocapture"]
async fn placement() {
    let emulator = emulator().await;
    let counts: Vec<usize> = std::env::var("SFPG_SCALE_BENCH_WORKERS")
        .unwrap_or_else(|_| "1,3,5".to_owned())
        .split(',')
        .filter_map(|n| n.trim().parse().ok())
        .collect();
    for count in counts {
        let db = TestDatabase::create().await;
        register(&db, &emulator).await;
        let client = db.connect().await;
        let started = Instant::now();
        let workers: Vec<Worker> = (1..=count).map(|i| Worker::start(&db, i)).collect();
        println!("{count} workers:");
        let took = until_all_live(&client, started, Duration::from_secs(30 * 60)).await;
        println!(
            "  every org live after {:.1} s (target with 3 workers: under 300 s)",
            took.as_secs_f64()
        );
        // Placement settles (moves are gradual) before the idle figures are taken.
        tokio::time::sleep(Duration::from_secs(30)).await;
        report_workers(&client, &workers, Duration::from_secs(30)).await;
        stop(workers).await;
    }
}

/// SIGTERM to every worker at once; prints how long each took to exit (killing it after
/// two minutes), since a clean stop hands its orgs back.
async fn stop(mut workers: Vec<Worker>) {
    let started = Instant::now();
    for worker in &workers {
        worker.process.signal("TERM");
    }
    let mut exits = Vec::new();
    for worker in &mut workers {
        let deadline = started + Duration::from_secs(120);
        let status = loop {
            if let Some(status) = worker.process.try_wait() {
                break Some(status);
            }
            if Instant::now() > deadline {
                worker.process.kill();
                break None;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        exits.push(match status {
            Some(status) => format!(
                "worker-{} {status} after {:.1} s",
                worker.index,
                started.elapsed().as_secs_f64()
            ),
            None => format!("worker-{} killed after 120 s", worker.index),
        });
    }
    println!("  stopped with SIGTERM: {}", exits.join(", "));
}
