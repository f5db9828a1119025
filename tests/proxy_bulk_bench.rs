//! The benchmark of issue 25 (ignored by default; figures in docs/benchmarks.md), all
//! through `sfpg proxy` (the binary, its own process) under `sfpg.bulk_writes = auto`,
//! each beside the same N records sent as one raw ingest job straight to the emulator by
//! the client (`Bulk::ingest`, polls capped at 200 ms), in the same run:
//!
//! 1. `COPY salesforce.lead … FROM STDIN` of N Leads (what psql's `\copy` sends);
//! 2. `COPY salesforce.contact … FROM STDIN` of N Contacts (the set-up of 3, timed too);
//! 3. one `UPDATE` of those N Contacts;
//! 4. one `DELETE` of the N Leads of 1 (a delete job of the raw Leads beside it).
//!
//! It prints each write's time and rate, the proxy's share of the raw rate, and the
//! proxy's RSS when it started and its peak (`VmHWM`) after each write.
//!
//! `SFPG_BULK_BENCH_RECORDS` sets N (default 100,000); `SFPG_BULK_BENCH_LOG` the proxy's
//! `RUST_LOG`, to see where a run's time goes:
//! `SFPG_BULK_BENCH_RECORDS=100000 cargo test --release --test proxy_bulk_bench -- --ignored --nocapture`

// Helpers of a test crate may unwrap: a failure should stop the test where it happened.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use futures::SinkExt;
use serde_json::json;
use sfpg_salesforce::Record;
use sfpg_salesforce::bulk::{Bulk, IngestOperation, RecordOutcome};
use sfpg_testkit::binary::Sfpg;
use sfpg_testkit::world::{World, generated, salesforce_client};
use tokio_postgres::Client;

const SFPG: Sfpg = Sfpg::new(env!("CARGO_BIN_EXE_sfpg")).logging("sfpg=warn");

fn records() -> usize {
    std::env::var("SFPG_BULK_BENCH_RECORDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000)
}

fn record(value: serde_json::Value) -> Record {
    value.as_object().cloned().unwrap()
}

/// One raw ingest job of `records`; returns its time and the Ids it gave.
async fn raw_job(
    bulk: &Bulk,
    object: &str,
    operation: IngestOperation,
    records: &[Record],
) -> (Duration, Vec<String>) {
    let started = Instant::now();
    let report = bulk
        .ingest(object, &operation, records, Duration::from_millis(200))
        .await
        .unwrap();
    let took = started.elapsed();
    let ids = report
        .outcomes
        .iter()
        .map(|o| match o {
            RecordOutcome::Succeeded { id, .. } => id.clone(),
            other => panic!("{other:?}"),
        })
        .collect();
    (took, ids)
}

/// `COPY <copy> FROM STDIN` of the `n` CSV lines `line` makes, in 64 KiB messages.
async fn copy_in(
    client: &Client,
    copy: &str,
    n: usize,
    line: impl Fn(usize) -> String,
) -> Duration {
    let started = Instant::now();
    let sink = client.copy_in(copy).await.unwrap();
    futures::pin_mut!(sink);
    let mut chunk = String::new();
    for i in 0..n {
        chunk.push_str(&line(i));
        if chunk.len() > 64 * 1024 {
            sink.send(bytes::Bytes::from(std::mem::take(&mut chunk)))
                .await
                .unwrap();
        }
    }
    sink.send(bytes::Bytes::from(chunk)).await.unwrap();
    assert_eq!(sink.finish().await.unwrap(), n as u64);
    started.elapsed()
}

#[tokio::test]
#[ignore = "benchmark: run with --ignored --nocapture"]
async fn bulk_writes_through_the_proxy_beside_one_raw_ingest_job() {
    let n = records();
    let world = World::mirrored(generated(10, 3), &["Contact", "Lead"]).await;
    world.emulator.set_bulk_processing_delay(Duration::ZERO);
    let salesforce = salesforce_client(&world.db, |c| c).await;
    let bulk = salesforce.bulk();

    let mut command = SFPG.at(
        world.db.url(),
        &["proxy", "--listen", "127.0.0.1:0", "--repair-every", "1h"],
    );
    if let Ok(filter) = std::env::var("SFPG_BULK_BENCH_LOG") {
        command.env("RUST_LOG", filter);
    }
    let (mut proxy, addr) = sfpg_testkit::binary::spawn_listening(command);
    let mut config = world.db.config_via(addr);
    config.options("-c sfpg.bulk_writes=auto");
    let (client, connection) = config.connect(tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(connection);
    let rss_started = proxy.memory("VmRSS");
    // The proxy's own CPU in each write: steadier than its wall time when the machine's
    // load (or the emulator's pace) varies from run to run.
    let cpu_started = proxy.cpu_time();

    // 1. Leads: a raw insert job, then the proxy's COPY.
    let leads: Vec<Record> = (0..n)
        .map(|i| record(json!({"LastName": format!("Raw {i}"), "Company": "Raw", "Status": "Open - Not Contacted"})))
        .collect();
    let (raw_leads, lead_ids) = raw_job(&bulk, "Lead", IngestOperation::Insert, &leads).await;
    drop(leads);
    let proxy_leads = copy_in(
        &client,
        "COPY salesforce.lead (lastname, company, status) FROM STDIN (FORMAT csv)",
        n,
        |i| format!("Proxied {i},Proxied,Open - Not Contacted\n"),
    )
    .await;
    let rss_leads = proxy.memory("VmHWM");
    let cpu_leads = proxy.cpu_time();

    // 2. Contacts: a raw insert job, then the proxy's COPY.
    let contacts: Vec<Record> = (0..n)
        .map(|i| record(json!({"LastName": format!("Raw {i}"), "Title": "Raw"})))
        .collect();
    let (raw_contacts, ids) = raw_job(&bulk, "Contact", IngestOperation::Insert, &contacts).await;
    drop(contacts);
    let proxy_contacts = copy_in(
        &client,
        "COPY salesforce.contact (lastname, title) FROM STDIN (FORMAT csv)",
        n,
        |i| format!("Proxied {i},Proxied\n"),
    )
    .await;
    let rss_contacts = proxy.memory("VmHWM");
    let cpu_contacts = proxy.cpu_time();

    // 3. The update of N Contacts: a raw update job, then the proxy's one UPDATE.
    let updates: Vec<Record> = ids
        .iter()
        .map(|id| record(json!({"Id": id, "Title": "Raw updated"})))
        .collect();
    let (raw_update, _) = raw_job(&bulk, "Contact", IngestOperation::Update, &updates).await;
    drop(updates);
    let started = Instant::now();
    let updated = client
        .execute(
            "UPDATE salesforce.contact SET title = 'Proxied updated' WHERE title = 'Proxied'",
            &[],
        )
        .await
        .unwrap();
    let proxy_update = started.elapsed();
    assert_eq!(updated, n as u64);
    let rss_update = proxy.memory("VmHWM");
    let cpu_update = proxy.cpu_time();

    // 4. The delete of the N Leads: a raw delete job of the raw ones, then the proxy's one
    // DELETE. Each deleted row's whole image is what the push keeps to put a refused
    // delete back.
    let deletes: Vec<Record> = lead_ids
        .iter()
        .map(|id| record(json!({"Id": id})))
        .collect();
    let (raw_delete, _) = raw_job(&bulk, "Lead", IngestOperation::Delete, &deletes).await;
    drop(deletes);
    let started = Instant::now();
    let deleted = client
        .execute("DELETE FROM salesforce.lead WHERE company = 'Proxied'", &[])
        .await
        .unwrap();
    let proxy_delete = started.elapsed();
    assert_eq!(deleted, n as u64);
    let rss_delete = proxy.memory("VmHWM");
    let cpu_delete = proxy.cpu_time();
    proxy.kill();
    let direct = direct_postgres(&world, n).await;

    let mb = |bytes: u64| bytes as f64 / 1e6;
    println!("records: {n}");
    println!("proxy RSS when started (VmRSS): {:.1} MB", mb(rss_started));
    for ((what, raw, proxied, rss, cpu), direct) in [
        (
            "\\copy of Leads (COPY FROM STDIN)",
            raw_leads,
            proxy_leads,
            rss_leads,
            cpu_leads - cpu_started,
        ),
        (
            "\\copy of Contacts (COPY FROM STDIN)",
            raw_contacts,
            proxy_contacts,
            rss_contacts,
            cpu_contacts - cpu_leads,
        ),
        (
            "UPDATE of Contacts",
            raw_update,
            proxy_update,
            rss_update,
            cpu_update - cpu_contacts,
        ),
        (
            "DELETE of Leads",
            raw_delete,
            proxy_delete,
            rss_delete,
            cpu_delete - cpu_update,
        ),
    ]
    .into_iter()
    .zip(direct)
    {
        println!(
            "{what}: raw job {:.2} s ({:.0}/s), through the proxy {:.2} s ({:.0}/s): {:.0}% of the raw rate; proxy CPU {:.2} s; proxy peak RSS (VmHWM) after it {:.1} MB; \
             the same statement straight to PostgreSQL, no sfpg: {:.2} s ({:.0}% of the raw job's time)",
            raw.as_secs_f64(),
            n as f64 / raw.as_secs_f64(),
            proxied.as_secs_f64(),
            n as f64 / proxied.as_secs_f64(),
            100.0 * raw.as_secs_f64() / proxied.as_secs_f64(),
            cpu.as_secs_f64(),
            mb(rss),
            direct.as_secs_f64(),
            100.0 * direct.as_secs_f64() / raw.as_secs_f64(),
        );
    }
}

/// The baseline of direct PostgreSQL: each of the four statements the client sent the
/// proxy, sent straight to the server into copies of the tables without sfpg's triggers
/// (temporary tables with the same columns, defaults and indexes), timed alone. What the
/// proxy adds to a write is on top of this; no push can take less.
async fn direct_postgres(world: &World, n: usize) -> [Duration; 4] {
    let client = world.db.connect().await;
    client
        .batch_execute(
            "CREATE TEMP TABLE lead_direct (LIKE salesforce.lead INCLUDING DEFAULTS INCLUDING INDEXES);
             CREATE TEMP TABLE contact_direct (LIKE salesforce.contact INCLUDING DEFAULTS INCLUDING INDEXES);",
        )
        .await
        .unwrap();
    let leads = copy_in(
        &client,
        "COPY lead_direct (lastname, company, status) FROM STDIN (FORMAT csv)",
        n,
        |i| format!("Direct {i},Direct,Open - Not Contacted\n"),
    )
    .await;
    let contacts = copy_in(
        &client,
        "COPY contact_direct (lastname, title) FROM STDIN (FORMAT csv)",
        n,
        |i| format!("Direct {i},Proxied\n"),
    )
    .await;
    // The table as the proxy's UPDATE found it: the mirror's rows, every column filled.
    client
        .batch_execute(
            "TRUNCATE contact_direct;
             INSERT INTO contact_direct SELECT * FROM salesforce.contact;
             UPDATE contact_direct SET title = 'Proxied' WHERE title = 'Proxied updated'",
        )
        .await
        .unwrap();
    client
        .batch_execute("VACUUM ANALYZE contact_direct")
        .await
        .unwrap();
    let started = Instant::now();
    let updated = client
        .execute(
            "UPDATE contact_direct SET title = 'Proxied updated' WHERE title = 'Proxied'",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(updated, n as u64);
    let update = started.elapsed();
    client
        .batch_execute("VACUUM ANALYZE lead_direct")
        .await
        .unwrap();
    let started = Instant::now();
    let deleted = client
        .execute("DELETE FROM lead_direct WHERE company = 'Direct'", &[])
        .await
        .unwrap();
    assert_eq!(deleted, n as u64);
    [leads, contacts, update, started.elapsed()]
}
