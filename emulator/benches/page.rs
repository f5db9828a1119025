//! How fast the emulator serves a 2,000-record Account page over real HTTP from a
//! 1,000,000-record org, and how much memory that org takes.
//!
//! Run with `cargo bench -p sfpg-emulator --bench page`; set `SFPG_BENCH_RECORDS` for
//! another org size and `SFPG_BENCH_ROUNDS` for more timed requests. It prints one line
//! per measurement, for `docs/benchmarks.md`.

// A benchmark fails loudly, as a test does.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use serde_json::Value;
use sfpg_emulator::generator;
use sfpg_emulator::http::{EmulatorConfig, OrgSource, RunningEmulator, start};
use sfpg_emulator::org::Org;

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The process's resident memory, from /proc (Linux).
fn resident_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let rank = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

fn main() {
    let records = env_or("SFPG_BENCH_RECORDS", 1_000_000);
    let rounds = env_or("SFPG_BENCH_ROUNDS", 50);
    let org = generated_org(records);
    let accounts = org.record_count("Account");
    in_process(&org, rounds);

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async move {
        let emulator = start(EmulatorConfig {
            org: OrgSource::Given(Box::new(org)),
            daily_api_limit: u64::MAX,
            ..EmulatorConfig::default()
        })
        .await
        .unwrap();
        let api = Api::login(&emulator).await;
        let select = api.account_fields().await;
        // Keyset paging, as sync's backfill does: WHERE Id > last ORDER BY Id LIMIT 2000,
        // with every field (a mirror's backfill) and with a dozen (a report's page).
        let typical = "Id, Name, Type, Industry, BillingCity, BillingCountry, Phone, \
                       AnnualRevenue, NumberOfEmployees, OwnerId, LastModifiedDate, SystemModstamp";
        for (label, select) in [("every field", select.as_str()), ("12 fields", typical)] {
            api.keyset_pages(label, select, rounds).await;
        }
        api.locator_pages(&select, accounts, rounds).await;
        emulator.shutdown().await;
    });
}

/// An org of `records` generated records (seed 1); prints how long that took and the
/// memory it holds.
fn generated_org(records: usize) -> Org {
    let before = resident_bytes();
    let started = Instant::now();
    let mut org = Org::new().unwrap();
    let generated = generator::generate(&mut org, records, 1).unwrap();
    let build = started.elapsed();
    let after = resident_bytes();
    let accounts = org.record_count("Account");
    println!(
        "org: {} records ({accounts} accounts) generated in {:.1} s",
        generated.total(),
        build.as_secs_f64()
    );
    if let (Some(before), Some(after)) = (before, after) {
        let grown = after.saturating_sub(before);
        println!(
            "memory: {:.0} MiB resident for the org, {} bytes per record",
            grown as f64 / (1024.0 * 1024.0),
            grown / generated.total().max(1) as u64
        );
    }
    org
}

/// Where a page's time goes, in-process: the query, then the records written into the
/// response body (what the HTTP layer does), and built as JSON trees (what tests use).
fn in_process(org: &Org, rounds: usize) {
    let all_fields: Vec<String> = org
        .objects()
        .find(|o| o.name == "Account")
        .map(|o| o.fields.iter().map(|f| f.name.clone()).collect())
        .unwrap_or_default();
    let select_all = all_fields.join(", ");
    let (mut query_times, mut render_times, mut serialize_times) =
        (Vec::new(), Vec::new(), Vec::new());
    // Walk the object page by page, as the HTTP run does, so that caches are as cold here
    // as there.
    let mut last = String::from("000000000000000AAA");
    for _ in 0..rounds {
        let soql =
            format!("SELECT {select_all} FROM Account WHERE Id > '{last}' ORDER BY Id LIMIT 2000");
        let started = Instant::now();
        let cursor = org.query(&soql, false).unwrap();
        query_times.push(started.elapsed());
        // As the query resource does: records written straight into the body.
        let started = Instant::now();
        let bytes = serde_json::to_vec(&org.page_records(&cursor, 0, 2000, "62.0")).unwrap();
        serialize_times.push(started.elapsed());
        assert!(!bytes.is_empty());
        // As JSON trees, for the tests and the REST record resources.
        let started = Instant::now();
        let page = org.page(&cursor, 0, 2000, "62.0");
        render_times.push(started.elapsed());
        last = page
            .last()
            .and_then(|r| r["Id"].as_str())
            .filter(|_| page.len() == 2000)
            .unwrap_or("000000000000000AAA")
            .to_owned();
    }
    for (label, times) in [
        ("in-process query (LIMIT 2000, Id order)", &mut query_times),
        (
            "in-process serialization of 2,000 records into a body",
            &mut serialize_times,
        ),
        (
            "in-process render of 2,000 records as JSON trees",
            &mut render_times,
        ),
    ] {
        times.sort();
        println!("{label}: p50 {}", ms(percentile(times, 0.5)));
    }
}

/// The emulator's REST API as a logged-in client sees it.
struct Api {
    http: reqwest::Client,
    token: String,
    instance_url: String,
    base: String,
}

impl Api {
    /// Logs in with the password flow as the emulator's first user and app.
    async fn login(emulator: &RunningEmulator) -> Api {
        let http = reqwest::Client::new();
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
            token: token["access_token"].as_str().unwrap().to_owned(),
            instance_url: emulator.instance_url().to_owned(),
            base: format!("{}/services/data/v62.0", emulator.instance_url()),
        }
    }

    /// Every Account field, as a mirror's backfill selects them.
    async fn account_fields(&self) -> String {
        let describe: Value = self
            .http
            .get(format!("{}/sobjects/Account/describe", self.base))
            .bearer_auth(&self.token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let fields: Vec<&str> = describe["fields"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["name"].as_str().unwrap())
            .collect();
        fields.join(", ")
    }

    /// GETs `url` (with `soql` as `q`); returns how long it took and the body.
    async fn get(&self, url: String, soql: Option<String>) -> (Duration, Vec<u8>) {
        let mut request = self.http.get(url).bearer_auth(&self.token);
        if let Some(soql) = soql {
            request = request.query(&[("q", soql)]);
        }
        let started = Instant::now();
        let response = request.send().await.unwrap();
        assert!(response.status().is_success());
        let body = response.bytes().await.unwrap();
        // The time first: copying the body out is not the emulator's.
        (started.elapsed(), body.to_vec())
    }

    /// `rounds` keyset pages of 2,000 Accounts with `select`; prints their times.
    async fn keyset_pages(&self, label: &str, select: &str, rounds: usize) {
        let first_id = String::from("000000000000000AAA");
        let mut last = first_id.clone();
        let mut keyset = Vec::new();
        let mut bytes = 0;
        for _ in 0..rounds {
            let soql =
                format!("SELECT {select} FROM Account WHERE Id > '{last}' ORDER BY Id LIMIT 2000");
            let (elapsed, body) = self.get(format!("{}/query", self.base), Some(soql)).await;
            let page: Value = serde_json::from_slice(&body).unwrap();
            let page_records = page["records"].as_array().unwrap();
            if page_records.len() < 2000 {
                // The end of the object: start over, and do not count the short page.
                last = first_id.clone();
                continue;
            }
            last = page_records.last().unwrap()["Id"]
                .as_str()
                .unwrap()
                .to_owned();
            bytes = body.len();
            keyset.push(elapsed);
        }
        keyset.sort();
        println!(
            "keyset page (2,000 Accounts, {label}, {} KiB): p50 {}, p95 {}, max {}",
            bytes / 1024,
            ms(percentile(&keyset, 0.5)),
            ms(percentile(&keyset, 0.95)),
            ms(*keyset.last().unwrap())
        );
    }

    /// Locator paging: the first page runs the whole query, follow-ups only render.
    async fn locator_pages(&self, select: &str, accounts: usize, rounds: usize) {
        let soql = format!("SELECT {select} FROM Account");
        let (first, body) = self.get(format!("{}/query", self.base), Some(soql)).await;
        let page: Value = serde_json::from_slice(&body).unwrap();
        println!(
            "first page of SELECT ... FROM Account (filters all {accounts} accounts): {}",
            ms(first)
        );
        let mut next = page["nextRecordsUrl"].as_str().map(str::to_owned);
        let mut follow = Vec::new();
        while let Some(path) = next.take() {
            if follow.len() == rounds {
                break;
            }
            let (elapsed, body) = self.get(format!("{}{path}", self.instance_url), None).await;
            let page: Value = serde_json::from_slice(&body).unwrap();
            next = page["nextRecordsUrl"].as_str().map(str::to_owned);
            follow.push(elapsed);
        }
        follow.sort();
        if !follow.is_empty() {
            println!(
                "nextRecordsUrl page (2,000 Accounts): p50 {}, p95 {}, max {}",
                ms(percentile(&follow, 0.5)),
                ms(percentile(&follow, 0.95)),
                ms(*follow.last().unwrap())
            );
        }
    }
}
