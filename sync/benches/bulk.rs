//! A Bulk API 2.0 backfill's speed, requests and memory, against a raw `COPY … (FORMAT
//! csv)` of the very CSV the emulator served, in the same run; and the REST backfill of the
//! same org beside it.
//!
//! An emulated org holds `SFPG_BENCH_RECORDS` (default 1,000,000) Accounts with every field
//! the generator fills. The sync runs in a child process (this executable again, with
//! `--child`), so that its peak memory is its own and not the emulator's; it backfills
//! Account through one query job with no rate limit to speak of, once per page size
//! (`maxRecords` 100,000, the default; 25,000; and 1,000,000: the whole result in one page),
//! and reports its time (the job's processing, then its pages), its requests and its peak
//! resident memory. The emulator runs in this process: its CPU time over each run is its
//! share. The job's pages at the default size are downloaded again as the sync read them,
//! into files; then, `SFPG_BENCH_ROUNDS` times (3), the sync backfills at the default size
//! and right after, the table emptied, the files are copied in with the sync's own `COPY`
//! statement, one page a transaction under the sync origin (so the capture trigger costs
//! both the same): the baseline, each round's ratio printed, and their median. Last, the
//! REST backfill (pages of 2,000, the COPY writer).
//!
//! Run with `cargo bench -p sfpg-sync --bench bulk`. It prints one line per figure, for
//! `docs/benchmarks.md`.

// A benchmark fails loudly, as a test does.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::process::Command;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use sfpg_control::capture::SET_SYNC_ORIGIN_SQL;
use sfpg_control::mirror::quote_ident;
use sfpg_control::objects::{ObjectState, Phase};
use sfpg_control::{MasterKey, NewOrg, RateLimit, admin, connect, orgs};
use sfpg_emulator::http::{
    DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, DEFAULT_USERNAME, EmulatorConfig, OrgSource,
    RunningEmulator,
};
use sfpg_emulator::org::{NewUser, Org};
use sfpg_salesforce::RateLimiter;
use sfpg_sync::{OrgSync, SyncSettings};
use sfpg_testkit::TestDatabase;
use tokio_postgres::NoTls;

const ORG: &str = "bench";

fn key() -> MasterKey {
    MasterKey::from_bytes([9; 32])
}

fn records_wanted() -> usize {
    std::env::var("SFPG_BENCH_RECORDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000)
}

/// How many rounds of the sync against the baseline (`SFPG_BENCH_ROUNDS`, default 3).
fn rounds() -> usize {
    std::env::var("SFPG_BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    match args.iter().position(|a| a == "--child") {
        Some(i) => runtime.block_on(child(&args[i + 1], &args[i + 2])),
        None => runtime.block_on(parent()),
    }
}

/// The sync alone: backfills Account (through Bulk with `page_size` records a page, or
/// through REST with `rest`) and reports the times of its stages, its requests and its
/// peak memory.
async fn child(database_url: &str, page_size: &str) {
    let (db, connection) = tokio_postgres::connect(database_url, NoTls).await.unwrap();
    tokio::spawn(connection);
    let org = orgs::load(&db, ORG, &key()).await.unwrap();
    let client = connect::client(&org, RateLimiter::new(connect::rate(&org).unwrap())).unwrap();
    // The defaults but the page size: polls 0.2 s after the job's creation, doubling.
    let settings = SyncSettings {
        bulk_page_size: page_size.parse().ok(),
        ..SyncSettings::default()
    };
    let started = Instant::now();
    let mut sync = OrgSync::start(db, client, ORG, settings).await.unwrap();
    let backend = backend_pid(&sync.database().get().await.unwrap()).await;
    let (own_cpu, backend_cpu) = (cpu_seconds(), process_cpu_seconds(&backend));
    let (mut created, mut complete) = (None, None);
    while sync.object("Account").unwrap().state.phase != Phase::Live {
        let report = sync.turn().await.unwrap();
        let object = sync.object("Account").unwrap();
        let job = object.state.bulk.as_ref().and_then(|b| b.job_id.as_ref());
        if created.is_none() && job.is_some() {
            created = Some(started.elapsed());
        }
        if complete.is_none() && object.bulk_job.complete {
            complete = Some(started.elapsed());
        }
        if let sfpg_sync::TurnReport::Idle { until } = report {
            let nap = tokio::time::Instant::now() + Duration::from_millis(10);
            tokio::time::sleep_until(until.map_or(nap, |u| u.min(nap))).await;
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    let state = &sync.object("Account").unwrap().state;
    let complete = complete.map_or(0.0, |c| c.as_secs_f64());
    let report = json!({
        "records": state.backfill_done,
        "requests": state.requests,
        "seconds": seconds,
        "job_seconds": complete - created.map_or(0.0, |c| c.as_secs_f64()),
        "pages_seconds": if complete > 0.0 { seconds - complete } else { seconds },
        "peak_rss_kib": peak_rss_kib(),
        "sync_cpu": cpu_seconds() - own_cpu,
        "postgres_cpu": process_cpu_seconds(&backend) - backend_cpu,
    });
    println!("{report}");
}

/// The process id of the PostgreSQL backend serving `client`.
async fn backend_pid(client: &tokio_postgres::Client) -> String {
    let pid: i32 = client
        .query_one("SELECT pg_backend_pid()", &[])
        .await
        .unwrap()
        .get(0);
    pid.to_string()
}

/// VmHWM: the most resident memory this process ever had.
fn peak_rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// This process's CPU time (user and system), from /proc: the emulator's, while a child
/// syncs.
fn cpu_seconds() -> f64 {
    process_cpu_seconds("self")
}

/// The CPU time (user and system) of process `pid` (or `self`), from /proc.
fn process_cpu_seconds(pid: &str) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // After the command name in parentheses: fields 14 and 15 are utime and stime.
    let rest = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    if fields.len() < 13 {
        return 0.0;
    }
    let ticks: f64 = fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap();
    ticks / 100.0
}

/// What a child run reported, with the emulator's CPU time over it.
#[derive(Debug)]
struct Run {
    records: u64,
    requests: u64,
    seconds: f64,
    job_seconds: f64,
    pages_seconds: f64,
    peak_rss_mib: f64,
    emulator_cpu: f64,
    /// The sync process's CPU time, and its PostgreSQL backend's.
    sync_cpu: f64,
    postgres_cpu: f64,
}

async fn parent() {
    let count = records_wanted();
    let started = Instant::now();
    let mut org = Org::new().unwrap();
    org.add_user(&NewUser::from_username(DEFAULT_USERNAME))
        .unwrap();
    let org = tokio::task::spawn_blocking(move || {
        sfpg_emulator::generator::generate_accounts(&mut org, count, 1).unwrap();
        org
    })
    .await
    .unwrap();
    println!(
        "org: {count} Account records built in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let emulator = sfpg_emulator::http::start(EmulatorConfig {
        org: OrgSource::Given(Box::new(org)),
        daily_api_limit: u64::MAX,
        ..EmulatorConfig::default()
    })
    .await
    .unwrap();
    let db = TestDatabase::create().await;
    let client = register(&db, &emulator).await;

    for page_size in [25_000, 1_000_000] {
        let run = sync_run(&db, &client, &emulator, &page_size.to_string()).await;
        print_run(&format!("Bulk, maxRecords {page_size}"), &run);
    }
    // The default page size, in rounds against the baseline: the machine is shared, so
    // each sync run is compared with a COPY run right after it.
    let first = sync_run(&db, &client, &emulator, "100000").await;
    print_run("Bulk, maxRecords 100000 (round 0)", &first);
    let job = last_job(&emulator);
    let dir = tempfile::tempdir().unwrap();
    let pages = download(&client, &job, 100_000, dir.path()).await;
    println!(
        "the job's CSV: {} pages, {:.0} MB",
        pages.len(),
        pages.iter().map(|p| p.1).sum::<u64>() as f64 / 1e6
    );
    let mut ratios = Vec::new();
    for round in 1..=rounds() {
        let bulk = sync_run(&db, &client, &emulator, "100000").await;
        print_run(&format!("Bulk, maxRecords 100000 (round {round})"), &bulk);
        let (copy_seconds, copied) = raw_copy(&client, &pages).await;
        assert_eq!(copied, bulk.records);
        let copy_rate = copied as f64 / copy_seconds;
        let pages_rate = bulk.records as f64 / bulk.pages_seconds;
        let ratio = pages_rate * 100.0 / copy_rate;
        println!(
            "baseline (round {round}): COPY (FORMAT csv, HEADER, FORCE_NULL) of the job's pages into \
             the emptied table: {copy_seconds:.2} s, {copy_rate:.0} records/s; the sync's pages \
             {pages_rate:.0} records/s = {ratio:.0}% of it (end to end, job included: {:.0} records/s)",
            bulk.records as f64 / bulk.seconds
        );
        ratios.push(ratio);
    }
    ratios.sort_by(f64::total_cmp);
    if let Some(median) = ratios.get(ratios.len() / 2) {
        println!(
            "the sync's pages at maxRecords 100000: {:.0}% of the raw COPY rate (median of {} rounds; {:?}); \
         {:.0} API requests per 1,000,000 records",
            median,
            ratios.len(),
            ratios.iter().map(|r| r.round()).collect::<Vec<_>>(),
            first.requests as f64 * 1_000_000.0 / first.records as f64
        );
    }

    admin::set_bulk_threshold(&client, ORG, None).await.unwrap();
    let rest = sync_run(&db, &client, &emulator, "rest").await;
    print_run("REST, batch 2000", &rest);
}

/// Registers the emulated org for Account at 2,000 records a REST page, every object
/// through Bulk, without a rate limit to speak of; returns a control connection.
async fn register(db: &TestDatabase, emulator: &RunningEmulator) -> tokio_postgres::Client {
    let mut client = db.connect().await;
    sfpg_control::apply_control_schema(&mut client)
        .await
        .unwrap();
    let new_org = NewOrg {
        batch_size: 2000,
        bulk_threshold: Some(1),
        ..NewOrg::client_credentials(
            ORG,
            emulator.login_url(),
            DEFAULT_CLIENT_ID,
            DEFAULT_CLIENT_SECRET,
            &["Account"],
        )
    };
    orgs::insert(&mut client, &new_org, &key()).await.unwrap();
    let unlimited = RateLimit {
        requests: 1_000_000,
        period: Duration::from_secs(1),
    };
    admin::set_rate_limit(&client, ORG, unlimited)
        .await
        .unwrap();
    client
}

fn print_run(what: &str, run: &Run) {
    let per_record = |seconds: f64| seconds * 1e6 / run.records as f64;
    println!(
        "sync, {what}: {} records in {:.2} s (job {:.2} s, pages {:.2} s = {:.0} records/s), \
         {} requests, peak RSS {:.0} MiB; CPU per record: PostgreSQL {:.1} µs, sync {:.1} µs, \
         emulator {:.1} µs (the emulator's CPU = {:.0}% of the run's time)",
        run.records,
        run.seconds,
        run.job_seconds,
        run.pages_seconds,
        run.records as f64 / run.pages_seconds,
        run.requests,
        run.peak_rss_mib,
        per_record(run.postgres_cpu),
        per_record(run.sync_cpu),
        per_record(run.emulator_cpu),
        run.emulator_cpu * 100.0 / run.seconds
    );
}

/// Starts the object over on an empty table, then runs the sync in a child process.
async fn sync_run(
    db: &TestDatabase,
    client: &tokio_postgres::Client,
    emulator: &RunningEmulator,
    page_size: &str,
) -> Run {
    reset(client).await;
    let before = emulator.requests(0).len();
    let cpu = cpu_seconds();
    let output = Command::new(std::env::current_exe().unwrap())
        .args(["--child", db.url(), page_size])
        .output()
        .unwrap();
    let emulator_cpu = cpu_seconds() - cpu;
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report: Value = serde_json::from_slice(
        output
            .stdout
            .split(|b| *b == b'\n')
            .find(|l| l.starts_with(b"{"))
            .unwrap(),
    )
    .unwrap();
    let counted = emulator.requests(0)[before..]
        .iter()
        .filter(|r| r.counted)
        .count() as u64;
    let requests = report["requests"].as_u64().unwrap();
    if counted != requests {
        println!("(the emulator counted {counted} requests, the sync {requests})");
    }
    Run {
        records: report["records"].as_u64().unwrap(),
        requests,
        seconds: report["seconds"].as_f64().unwrap(),
        job_seconds: report["job_seconds"].as_f64().unwrap(),
        pages_seconds: report["pages_seconds"].as_f64().unwrap(),
        peak_rss_mib: report["peak_rss_kib"].as_f64().unwrap() / 1024.0,
        emulator_cpu,
        sync_cpu: report["sync_cpu"].as_f64().unwrap(),
        postgres_cpu: report["postgres_cpu"].as_f64().unwrap(),
    }
}

/// Drops the mirror table and starts the object over.
async fn reset(client: &tokio_postgres::Client) {
    client
        .batch_execute(&format!("DROP TABLE IF EXISTS {ORG}.account"))
        .await
        .unwrap();
    for state in ObjectState::load_all(client, ORG).await.unwrap() {
        let fresh = ObjectState {
            phase: Phase::Describing,
            mirrored_fields: Vec::new(),
            backfill_snapshot: None,
            backfill_last_id: None,
            backfill_done: 0,
            backfill_total: None,
            cursor_modstamp: None,
            cursor_id: None,
            newest_modstamp: None,
            row_count: 0,
            requests: 0,
            describe_modified_at: None,
            bulk: None,
            ..state
        };
        fresh.save(client).await.unwrap();
    }
    client.batch_execute("CHECKPOINT").await.unwrap();
}

/// The Id of the last query job the emulator served pages of.
fn last_job(emulator: &RunningEmulator) -> String {
    let requests = emulator.requests(0);
    let path = requests
        .iter()
        .rev()
        .find(|r| r.path.ends_with("/results"))
        .map(|r| r.path.clone())
        .unwrap();
    path.trim_end_matches("/results")
        .rsplit('/')
        .next()
        .unwrap()
        .to_owned()
}

/// Reads the job's pages again, as the sync did, each into a file of `dir`; returns each
/// file with its size.
async fn download(
    control: &tokio_postgres::Client,
    job: &str,
    page_size: u32,
    dir: &std::path::Path,
) -> Vec<(std::path::PathBuf, u64)> {
    let org = orgs::load(control, ORG, &key()).await.unwrap();
    let client = connect::client(&org, RateLimiter::new(connect::rate(&org).unwrap())).unwrap();
    let bulk = client.bulk();
    let mut files = Vec::new();
    let mut locator: Option<String> = None;
    loop {
        let mut page = bulk
            .query_results(job, locator.as_deref(), Some(page_size))
            .await
            .unwrap();
        let path = dir.join(format!("page-{}.csv", files.len()));
        let mut file = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
        let mut size = 0u64;
        while let Some(chunk) = page.next().await {
            let chunk = chunk.unwrap();
            size += chunk.len() as u64;
            file.write_all(&chunk).unwrap();
        }
        file.flush().unwrap();
        files.push((path, size));
        match page.next_locator.take() {
            Some(next) => locator = Some(next),
            None => return files,
        }
    }
}

/// Empties the table, then times copying `pages` in with the sync's own statement, one
/// page a transaction under the sync origin; returns the seconds and the rows copied.
async fn raw_copy(
    client: &tokio_postgres::Client,
    pages: &[(std::path::PathBuf, u64)],
) -> (f64, u64) {
    let table = format!("{ORG}.account");
    let state = ObjectState::load(client, ORG, "Account")
        .await
        .unwrap()
        .unwrap();
    let columns: Vec<String> = state
        .mirrored_fields
        .iter()
        .map(|f| quote_ident(&f.column))
        .collect();
    let list = columns.join(", ");
    let statement =
        format!("COPY {table} ({list}) FROM STDIN (FORMAT csv, HEADER true, FORCE_NULL ({list}))");
    client
        .batch_execute(&format!(
            "BEGIN; {SET_SYNC_ORIGIN_SQL}; TRUNCATE {table}; COMMIT; CHECKPOINT"
        ))
        .await
        .unwrap();
    let backend = backend_pid(client).await;
    let backend_cpu = process_cpu_seconds(&backend);
    let started = Instant::now();
    let mut copied = 0;
    for (path, _) in pages {
        client
            .batch_execute(&format!("BEGIN; {SET_SYNC_ORIGIN_SQL}"))
            .await
            .unwrap();
        let sink = client.copy_in(&statement).await.unwrap();
        futures::pin_mut!(sink);
        let mut file = std::fs::File::open(path).unwrap();
        let mut buffer = vec![0u8; 256 * 1024];
        loop {
            let read = file.read(&mut buffer).unwrap();
            if read == 0 {
                break;
            }
            sink.feed(Bytes::copy_from_slice(&buffer[..read]))
                .await
                .unwrap();
        }
        copied += sink.finish().await.unwrap();
        client.batch_execute("COMMIT").await.unwrap();
    }
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "  (the baseline's PostgreSQL CPU: {:.1} µs per record)",
        (process_cpu_seconds(&backend) - backend_cpu) * 1e6 / copied as f64
    );
    (seconds, copied)
}
