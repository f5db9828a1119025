//! How fast the emulator serves a Bulk API 2.0 query result of 1,000,000 Accounts with
//! every field a mirror copies, over real HTTP, and how much memory the job takes.
//!
//! Run with `cargo bench -p sfpg-emulator --bench bulk`; set `SFPG_BENCH_ACCOUNTS` for
//! another size and `SFPG_BENCH_MAX_RECORDS` for another page size. It prints one line
//! per measurement, for `docs/benchmarks.md`.

// A benchmark fails loudly, as a test does.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use sfpg_emulator::generator;
use sfpg_emulator::http::{EmulatorConfig, OrgSource, RunningEmulator, start};
use sfpg_emulator::model::FieldType;
use sfpg_emulator::org::{CsvFormat, Org};

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The process's resident memory, from /proc (Linux).
fn resident_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kib: f64 = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0.0);
    kib / 1024.0
}

fn main() {
    let accounts = env_or("SFPG_BENCH_ACCOUNTS", 1_000_000);
    let max_records = env_or("SFPG_BENCH_MAX_RECORDS", 50_000);
    let before = resident_mib();
    let started = Instant::now();
    let mut org = Org::new().unwrap();
    generator::generate_accounts(&mut org, accounts, 1).unwrap();
    println!(
        "org: {accounts} accounts generated in {:.1} s, {:.0} MiB resident",
        started.elapsed().as_secs_f64(),
        resident_mib() - before
    );
    // Every field Bulk can write (compound and blob fields cannot be selected).
    let fields: Vec<String> = org
        .objects()
        .find(|o| o.name == "Account")
        .map(|o| {
            o.fields
                .iter()
                .filter(|f| !f.field_type.is_compound() && f.field_type != FieldType::Base64)
                .map(|f| f.name.clone())
                .collect()
        })
        .unwrap_or_default();
    let soql = format!("SELECT {} FROM Account", fields.join(", "));
    println!("query: {} fields", fields.len());
    in_process(&org, &soql);

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async move {
        let emulator = start(EmulatorConfig {
            org: OrgSource::Given(Box::new(org)),
            daily_api_limit: u64::MAX,
            bulk_processing_delay: Duration::ZERO,
            ..EmulatorConfig::default()
        })
        .await
        .unwrap();
        let api = Api::login(&emulator).await;
        let job = api.run_job(&soql).await;
        for gzip in [false, true] {
            api.download(&job, max_records, gzip).await;
        }
        emulator.shutdown().await;
    });
}

/// The CSV writer alone, in-process: every row of the result written into one reused
/// buffer a thousand rows at a time, as the results resource does.
fn in_process(org: &Org, soql: &str) {
    let started = Instant::now();
    let snapshot = org.bulk_snapshot(soql, false).unwrap();
    let snap = started.elapsed();
    let started = Instant::now();
    let mut out = Vec::with_capacity(4 << 20);
    let mut bytes = 0usize;
    let mut at = 0;
    while at < snapshot.len() {
        out.clear();
        org.write_csv_rows(&snapshot, at..at + 1_000, CsvFormat::default(), &mut out);
        bytes += out.len();
        at += 1_000;
    }
    let write = started.elapsed();
    println!(
        "in-process: snapshot of {} records in {:.2} s; CSV written at {:.0} records/s, \
         {:.0} MB/s ({:.0} bytes a record)",
        snapshot.len(),
        snap.as_secs_f64(),
        snapshot.len() as f64 / write.as_secs_f64(),
        bytes as f64 / write.as_secs_f64() / 1e6,
        bytes as f64 / snapshot.len().max(1) as f64
    );
}

struct Api {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl Api {
    async fn login(emulator: &RunningEmulator) -> Api {
        // No automatic gzip: the benchmark asks for it, and counts the bytes as sent.
        let http = reqwest::Client::builder().no_gzip().build().unwrap();
        let app = &emulator.apps()[0];
        let user = &emulator.users()[0];
        let token: Value = http
            .post(emulator.token_url())
            .form(&[
                ("grant_type", "password"),
                ("client_id", app.client_id.as_str()),
                ("client_secret", app.client_secret.as_str()),
                ("username", user.username.as_str()),
                ("password", user.password.as_str()),
            ])
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        Api {
            http,
            base: format!("{}/services/data/v62.0/jobs/query", emulator.instance_url()),
            token: token["access_token"].as_str().unwrap().to_owned(),
        }
    }

    /// Creates the job and polls until it is complete; prints how long that took.
    async fn run_job(&self, soql: &str) -> String {
        let before = resident_mib();
        let started = Instant::now();
        let created: Value = self
            .http
            .post(&self.base)
            .bearer_auth(&self.token)
            .json(&json!({"operation": "query", "query": soql}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let id = created["id"].as_str().unwrap().to_owned();
        loop {
            let info: Value = self
                .http
                .get(format!("{}/{id}", self.base))
                .bearer_auth(&self.token)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            if info["state"] == "JobComplete" {
                println!(
                    "job: {} records complete {:.2} s after creation; {:.0} MiB more resident",
                    info["numberRecordsProcessed"],
                    started.elapsed().as_secs_f64(),
                    resident_mib() - before
                );
                return id;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Reads every page, following `Sforce-Locator`, counting bytes without keeping them.
    async fn download(&self, id: &str, max_records: usize, gzip: bool) {
        let before = resident_mib();
        let mut peak = before;
        let started = Instant::now();
        let (mut pages, mut records, mut bytes) = (0usize, 0usize, 0usize);
        let mut locator: Option<String> = None;
        loop {
            let mut request = self
                .http
                .get(format!("{}/{id}/results", self.base))
                .bearer_auth(&self.token)
                .query(&[("maxRecords", max_records)]);
            if let Some(locator) = &locator {
                request = request.query(&[("locator", locator)]);
            }
            if gzip {
                request = request.header("Accept-Encoding", "gzip");
            }
            let mut response = request.send().await.unwrap();
            let header = |name: &str| response.headers()[name].to_str().unwrap().to_owned();
            records += header("sforce-numberofrecords").parse::<usize>().unwrap();
            let next = header("sforce-locator");
            while let Some(chunk) = response.chunk().await.unwrap() {
                bytes += chunk.len();
            }
            pages += 1;
            peak = peak.max(resident_mib());
            if next == "null" {
                break;
            }
            locator = Some(next);
        }
        let elapsed = started.elapsed().as_secs_f64();
        println!(
            "download ({}, maxRecords {max_records}): {pages} pages, {records} records in \
             {elapsed:.2} s: {:.1} pages/s, {:.0} records/s, {:.0} MB/s on the wire; \
             resident peak {:.0} MiB above the start",
            if gzip { "gzip" } else { "plain" },
            pages as f64 / elapsed,
            records as f64 / elapsed,
            bytes as f64 / elapsed / 1e6,
            peak - before
        );
    }
}
