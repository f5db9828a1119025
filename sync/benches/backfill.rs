//! The backfill's speed and memory, against a raw binary `COPY` of the same rows into the
//! same table in the same run.
//!
//! An emulated org holds `SFPG_BENCH_RECORDS` (default 1,000,000) Account records. The sync
//! runs in a child process (this executable again, with `--child`), so that its peak memory
//! is its own and not the emulator's; it backfills Account with no rate limit to speak of,
//! and reports its time, its requests and its peak resident memory. It runs three times:
//! batch 2,000 writing with each strategy (unnest upsert, COPY into staging and merge), then
//! batch 200 with the default strategy. Last, the table's rows are exported with binary COPY,
//! the table emptied, and the rows copied back in: the baseline.
//!
//! Run with `cargo bench -p sfpg-sync --bench backfill`. It prints one line per figure, for
//! `docs/benchmarks.md`.

// A benchmark fails loudly, as a test does.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use sfpg_control::capture::SET_SYNC_ORIGIN_SQL;
use sfpg_control::objects::{ObjectState, Phase};
use sfpg_control::{MasterKey, NewOrg, RateLimit, admin, connect, orgs};
use sfpg_emulator::http::{
    DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, DEFAULT_USERNAME, EmulatorConfig, OrgSource,
};
use sfpg_emulator::org::{NewUser, Org};
use sfpg_salesforce::RateLimiter;
use sfpg_sync::{OrgSync, SyncSettings, WriteStrategy};
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

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    match args.iter().position(|a| a == "--child") {
        Some(i) => runtime.block_on(child(&args[i + 1], &args[i + 2], &args[i + 3])),
        None => runtime.block_on(parent()),
    }
}

/// What a child run reports.
#[derive(Debug)]
struct Run {
    records: u64,
    requests: u64,
    seconds: f64,
    peak_rss_mib: f64,
}

/// The sync alone: backfill Account and report (`mode` = `sync`), or time the stages of
/// one page after another (`mode` = `breakdown`).
async fn child(database_url: &str, strategy: &str, mode: &str) {
    let (db, connection) = tokio_postgres::connect(database_url, NoTls).await.unwrap();
    tokio::spawn(connection);
    let org = orgs::load(&db, ORG, &key()).await.unwrap();
    let client = connect::client(&org, RateLimiter::new(connect::rate(&org).unwrap())).unwrap();
    let settings = SyncSettings {
        write_strategy: match strategy {
            "copy" => WriteStrategy::CopyMerge,
            _ => WriteStrategy::Unnest,
        },
        ..SyncSettings::default()
    };
    if mode == "breakdown" {
        breakdown(database_url, db, client, settings).await;
        return;
    }
    let started = Instant::now();
    let mut sync = OrgSync::start(db, client, ORG, settings).await.unwrap();
    while sync.object("Account").unwrap().state.phase != Phase::Live {
        sync.turn().await.unwrap();
    }
    let seconds = started.elapsed().as_secs_f64();
    let state = &sync.object("Account").unwrap().state;
    let report = json!({
        "records": state.backfill_done,
        "requests": state.requests,
        "seconds": seconds,
        "peak_rss_kib": peak_rss_kib(),
    });
    println!("{report}");
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

/// An org of `count` Account records shaped like a sales org's.
fn account_org(count: usize) -> Org {
    const RATINGS: [&str; 3] = ["Hot", "Warm", "Cold"];
    const INDUSTRIES: [&str; 6] = [
        "Banking",
        "Energy",
        "Retail",
        "Technology",
        "Healthcare",
        "Media",
    ];
    const CITIES: [(&str, &str); 5] = [
        ("Paris", "IDF"),
        ("Lyon", "ARA"),
        ("Austin", "TX"),
        ("Denver", "CO"),
        ("Osaka", "27"),
    ];
    let mut org = Org::new().unwrap();
    let user = org
        .add_user(&NewUser::from_username(DEFAULT_USERNAME))
        .unwrap();
    for i in 0..count {
        let (city, state) = CITIES[i % CITIES.len()];
        let fields = json!({
            "Name": format!("Account {i:07}"),
            "Type": "Customer - Direct",
            "Industry": INDUSTRIES[i % INDUSTRIES.len()],
            "Rating": RATINGS[i % RATINGS.len()],
            "AnnualRevenue": (i % 5_000) as f64 * 1_250.5,
            "NumberOfEmployees": (i % 20_000) as i64,
            "Phone": format!("+33 1 {:02} {:02} {:02} {:02}", i % 97, i % 89, i % 83, i % 79),
            "Website": format!("https://account-{i}.example.com"),
            "BillingStreet": format!("{} Rue de la Paix", i % 200 + 1),
            "BillingCity": city,
            "BillingState": state,
            "BillingPostalCode": format!("{:05}", i % 99_999),
            "BillingCountry": "France",
            "Description": "A customer since the first year, renewing every spring.",
        });
        let Value::Object(fields) = fields else {
            unreachable!()
        };
        org.create("Account", &fields, &user).unwrap();
    }
    org
}

async fn parent() {
    let count = records_wanted();
    let emulator = emulator_with_accounts(count).await;
    let db = TestDatabase::create().await;
    let client = org_without_limits(&db, &emulator).await;

    let mut runs = Vec::new();
    for (strategy, batch) in [("unnest", 2000), ("copy", 2000)] {
        let run = sync_run(&db, &client, strategy, batch).await;
        print_run(strategy, batch, &run);
        runs.push((strategy, run));
    }
    let fastest = runs
        .iter()
        .min_by(|a, b| a.1.seconds.total_cmp(&b.1.seconds))
        .map(|(s, _)| *s)
        .unwrap();
    println!("fastest writer at batch 2000: {fastest}");
    let small = sync_run(&db, &client, fastest, 200).await;
    print_run(fastest, 200, &small);

    reset(&client, 2000).await;
    print_breakdown(&db, fastest);
    let copy_seconds = raw_copy(&client).await;
    let best = runs
        .iter()
        .map(|(_, r)| r)
        .min_by(|a, b| a.seconds.total_cmp(&b.seconds))
        .unwrap();
    let sync_rate = best.records as f64 / best.seconds;
    let copy_rate = count as f64 / copy_seconds;
    println!(
        "baseline: binary COPY of the same {count} rows into the same table: {copy_seconds:.2} s, {copy_rate:.0} records/s"
    );
    println!(
        "sync at batch 2000 ({fastest}): {sync_rate:.0} records/s = {:.0}% of the raw COPY rate; peak RSS {:.0} MiB",
        sync_rate * 100.0 / copy_rate,
        best.peak_rss_mib
    );
    println!(
        "API requests per 1,000,000 records: {:.0} at batch 2000, {:.0} at batch 200",
        best.requests as f64 * 1_000_000.0 / best.records as f64,
        small.requests as f64 * 1_000_000.0 / small.records as f64
    );
}

/// An emulator serving an org of `count` Accounts, built off the async workers.
async fn emulator_with_accounts(count: usize) -> sfpg_emulator::http::RunningEmulator {
    let started = Instant::now();
    let org = tokio::task::spawn_blocking(move || account_org(count))
        .await
        .unwrap();
    println!(
        "org: {count} Account records built in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let emulator = sfpg_emulator::http::start(EmulatorConfig {
        org: OrgSource::Given(Box::new(org)),
        request_log_capacity: 1,
        ..EmulatorConfig::default()
    })
    .await
    .unwrap();
    emulator.set_daily_api_limit(100_000_000);
    emulator
}

/// The control schema on `db` and the org mirroring Account from `emulator` through REST
/// pages of 2,000, with no rate limit to speak of; the connection that set it up.
async fn org_without_limits(
    db: &TestDatabase,
    emulator: &sfpg_emulator::http::RunningEmulator,
) -> tokio_postgres::Client {
    let mut client = db.connect().await;
    sfpg_control::apply_control_schema(&mut client)
        .await
        .unwrap();
    let new_org = NewOrg {
        batch_size: 2000,
        // REST pages only: the Bulk API's figures are `benches/bulk.rs`'s.
        bulk_threshold: None,
        ..NewOrg::client_credentials(
            ORG,
            emulator.login_url(),
            DEFAULT_CLIENT_ID,
            DEFAULT_CLIENT_SECRET,
            &["Account"],
        )
    };
    orgs::insert(&mut client, &new_org, &key()).await.unwrap();
    // A million requests a second.
    let unlimited = RateLimit {
        requests: 1_000_000,
        period: std::time::Duration::from_secs(1),
    };
    admin::set_rate_limit(&client, ORG, unlimited)
        .await
        .unwrap();
    client
}

/// Runs the `strategy` writer one stage at a time in a child and prints where the time goes.
fn print_breakdown(db: &TestDatabase, strategy: &str) {
    let stages = run_child(db, strategy, "breakdown");
    let per_record =
        |key: &str| stages[key].as_f64().unwrap() * 1e6 / stages["records"].as_f64().unwrap();
    println!(
        "where the time goes ({strategy} writer, batch 2000, one stage at a time): request {:.1} µs/record \
         (of which reading a {} kB page of {} fields per record into column text: {:.1} ms/page), \
         checks {:.1} µs/record, write {:.1} µs/record",
        per_record("fetch"),
        stages["page_bytes"].as_u64().unwrap() / 1000,
        stages["columns"],
        stages["parse_ms"].as_f64().unwrap(),
        per_record("convert"),
        per_record("write"),
    );
}

fn print_run(strategy: &str, batch: u32, run: &Run) {
    println!(
        "sync, {strategy} writer, batch {batch}: {} records in {:.2} s = {:.0} records/s, {} requests, peak RSS {:.0} MiB",
        run.records,
        run.seconds,
        run.records as f64 / run.seconds,
        run.requests,
        run.peak_rss_mib
    );
}

/// Starts the object over on an empty table, then runs the sync in a child process.
async fn sync_run(
    db: &TestDatabase,
    client: &tokio_postgres::Client,
    strategy: &str,
    batch: u32,
) -> Run {
    reset(client, batch).await;
    let report = run_child(db, strategy, "sync");
    Run {
        records: report["records"].as_u64().unwrap(),
        requests: report["requests"].as_u64().unwrap(),
        seconds: report["seconds"].as_f64().unwrap(),
        peak_rss_mib: report["peak_rss_kib"].as_f64().unwrap() / 1024.0,
    }
}

/// Drops the mirror table and starts the object over, at `batch` records per page.
async fn reset(client: &tokio_postgres::Client, batch: u32) {
    client
        .batch_execute(&format!("DROP TABLE IF EXISTS {ORG}.account"))
        .await
        .unwrap();
    admin::set_batch_size(client, ORG, batch).await.unwrap();
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
            ..state
        };
        fresh.save(client).await.unwrap();
    }
    client.batch_execute("CHECKPOINT").await.unwrap();
}

/// Runs this executable as a child in `mode`; returns the JSON line it printed.
fn run_child(db: &TestDatabase, strategy: &str, mode: &str) -> Value {
    let output = Command::new(std::env::current_exe().unwrap())
        .args(["--child", db.url(), strategy, mode])
        .output()
        .unwrap();
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
    report
}

/// Exports the mirror table with binary COPY, empties it, and times copying the rows back.
async fn raw_copy(client: &tokio_postgres::Client) -> f64 {
    let table = format!("{ORG}.account");
    let stream = client
        .copy_out(&format!("COPY {table} TO STDOUT (FORMAT binary)"))
        .await
        .unwrap();
    futures::pin_mut!(stream);
    let mut data = BytesMut::new();
    while let Some(chunk) = stream.next().await {
        data.extend_from_slice(&chunk.unwrap());
    }
    let data: Bytes = data.freeze();
    // The mirror's triggers refuse writes from anyone but the sync and the proxy; the
    // baseline writes as the sync does, so the triggers cost it what they cost the sync.
    client
        .batch_execute(&format!(
            "BEGIN; {SET_SYNC_ORIGIN_SQL}; TRUNCATE {table}; COMMIT; CHECKPOINT"
        ))
        .await
        .unwrap();
    let started = Instant::now();
    client
        .batch_execute(&format!("BEGIN; {SET_SYNC_ORIGIN_SQL}"))
        .await
        .unwrap();
    let sink = client
        .copy_in(&format!("COPY {table} FROM STDIN (FORMAT binary)"))
        .await
        .unwrap();
    futures::pin_mut!(sink);
    const CHUNK: usize = 256 * 1024;
    for start in (0..data.len()).step_by(CHUNK) {
        sink.send(data.slice(start..(start + CHUNK).min(data.len())))
            .await
            .unwrap();
    }
    sink.finish().await.unwrap();
    client.batch_execute("COMMIT").await.unwrap();
    started.elapsed().as_secs_f64()
}

/// Where a page's time goes, one page after another with nothing overlapping: the
/// request (the emulator rendering the page, HTTP, and the client reading the JSON into
/// column text), the checks on the rows, and the write with its transaction.
async fn breakdown(
    database_url: &str,
    mut db: tokio_postgres::Client,
    client: sfpg_salesforce::Client,
    settings: SyncSettings,
) {
    use sfpg_control::writer::{Rows, begin, upsert};
    use sfpg_sync::Source;

    let (control, connection) = tokio_postgres::connect(database_url, NoTls).await.unwrap();
    tokio::spawn(connection);
    let mut sync = OrgSync::start(control, client.clone(), ORG, settings.clone())
        .await
        .unwrap();
    while sync.object("Account").unwrap().plan.is_none() {
        sync.turn().await.unwrap();
    }
    let plan = sync.object("Account").unwrap().plan.clone().unwrap();
    let source = sfpg_sync::RestSource::new(client.clone());
    let fields: Vec<&sfpg_sync::MirroredField> = plan.fields.iter().collect();
    let (mut fetch, mut convert, mut write, mut records) = (0.0, 0.0, 0.0, 0u64);
    let mut after: Option<sfpg_salesforce::SalesforceId> = None;
    loop {
        let started = Instant::now();
        let page = source
            .backfill_page("Account", &fields, after.as_ref(), 2000)
            .await
            .unwrap();
        fetch += started.elapsed().as_secs_f64();
        let complete = page.complete;
        let started = Instant::now();
        let rows = Rows::new("Account", fields.clone(), page.columns).unwrap();
        convert += started.elapsed().as_secs_f64();
        let started = Instant::now();
        let transaction = begin(&mut db, Some(settings.lock_timeout)).await.unwrap();
        upsert(&transaction, &plan, &rows, settings.write_strategy)
            .await
            .unwrap();
        transaction.commit().await.unwrap();
        write += started.elapsed().as_secs_f64();
        records += rows.len() as u64;
        if complete {
            break;
        }
        let last = rows.ids().last().unwrap();
        after = Some(sfpg_salesforce::SalesforceId::parse(last).unwrap());
    }
    // The client's share of the request: reading one page of JSON into column text.
    let names: Vec<&str> = fields.iter().map(|f| f.field.as_str()).collect();
    let first = client
        .query(format!(
            "SELECT {} FROM Account ORDER BY Id LIMIT 2000",
            names.join(", ")
        ))
        .collect_records()
        .await
        .unwrap();
    let body =
        serde_json::to_vec(&json!({"totalSize": 2000, "done": true, "records": first})).unwrap();
    let decoder = sfpg_control::writer::TextColumns::new(&fields);
    let started = Instant::now();
    for _ in 0..10 {
        sfpg_salesforce::QueryPage::decode(&body, &decoder).unwrap();
    }
    let parse_ms = started.elapsed().as_secs_f64() * 100.0;
    let report = json!({
        "records": records, "fetch": fetch, "convert": convert, "write": write,
        "parse_ms": parse_ms, "page_bytes": body.len(), "columns": plan.fields.len(),
    });
    println!("{report}");
}
