//! The benchmark of issue 25 (ignored by default; figures in docs/benchmarks.md): N
//! Contacts inserted by `COPY … FROM STDIN` through `sfpg proxy` under
//! `sfpg.bulk_writes = auto`, and all N updated by one `UPDATE`, each beside the same
//! records sent as one raw ingest job straight to the emulator, in the same run; the
//! proxy's peak RSS (VmHWM) after both.
//!
//! `SFPG_BULK_BENCH_RECORDS` sets N (default 100,000):
//! `SFPG_BULK_BENCH_RECORDS=100000 cargo test --release --test proxy_bulk_bench -- --ignored --nocapture`

// Helpers of a test crate may unwrap: a failure should stop the test where it happened.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use futures::SinkExt;
use serde_json::json;
use sfpg_salesforce::Record;
use sfpg_salesforce::bulk::IngestOperation;
use sfpg_testkit::binary::Sfpg;
use sfpg_testkit::world::{World, generated, salesforce_client};

const SFPG: Sfpg = Sfpg::new(env!("CARGO_BIN_EXE_sfpg")).logging("sfpg=warn");

fn records() -> usize {
    std::env::var("SFPG_BULK_BENCH_RECORDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000)
}

fn rate(records: usize, took: Duration) -> f64 {
    records as f64 / took.as_secs_f64()
}

#[tokio::test]
#[ignore = "benchmark: run with --ignored --nocapture"]
async fn bulk_writes_through_the_proxy_beside_one_raw_ingest_job() {
    let n = records();
    let world = World::mirrored(generated(10, 3), &["Contact"]).await;
    world.emulator.set_bulk_processing_delay(Duration::ZERO);
    let salesforce = salesforce_client(&world.db, |c| c).await;
    let bulk = salesforce.bulk();

    // Raw: one ingest job of N inserts, straight to the emulator.
    let raw_records: Vec<Record> = (0..n)
        .map(|i| {
            json!({"LastName": format!("Raw {i}"), "Title": "Raw"})
                .as_object()
                .cloned()
                .unwrap()
        })
        .collect();
    let started = Instant::now();
    let report = bulk
        .ingest(
            "Contact",
            &IngestOperation::Insert,
            &raw_records,
            Duration::from_millis(200),
        )
        .await
        .unwrap();
    let raw_insert = started.elapsed();
    assert!(report.outcomes.iter().all(|o| o.is_success()));

    // Through the proxy: COPY of N contacts under auto.
    let (mut proxy, addr) = sfpg_testkit::binary::spawn_listening(SFPG.at(
        world.db.url(),
        &["proxy", "--listen", "127.0.0.1:0", "--repair-every", "1h"],
    ));
    let mut config = world.db.config_via(addr);
    config.options("-c sfpg.bulk_writes=auto");
    let (client, connection) = config.connect(tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(connection);
    let started = Instant::now();
    let sink = client
        .copy_in("COPY salesforce.contact (lastname, title) FROM STDIN (FORMAT csv)")
        .await
        .unwrap();
    futures::pin_mut!(sink);
    let mut chunk = String::new();
    for i in 0..n {
        chunk.push_str(&format!("Proxied {i},Proxied\n"));
        if chunk.len() > 64 * 1024 {
            sink.send(bytes::Bytes::from(std::mem::take(&mut chunk)))
                .await
                .unwrap();
        }
    }
    sink.send(bytes::Bytes::from(chunk)).await.unwrap();
    let copied = sink.finish().await.unwrap();
    let proxy_insert = started.elapsed();
    assert_eq!(copied, n as u64);

    // Raw: one ingest job updating the N raw contacts.
    let ids: Vec<String> = report
        .outcomes
        .iter()
        .map(|o| match o {
            sfpg_salesforce::bulk::RecordOutcome::Succeeded { id, .. } => id.clone(),
            other => panic!("{other:?}"),
        })
        .collect();
    let updates: Vec<Record> = ids
        .iter()
        .map(|id| {
            json!({"Id": id, "Title": "Raw updated"})
                .as_object()
                .cloned()
                .unwrap()
        })
        .collect();
    let started = Instant::now();
    let report = bulk
        .ingest(
            "Contact",
            &IngestOperation::Update,
            &updates,
            Duration::from_millis(200),
        )
        .await
        .unwrap();
    let raw_update = started.elapsed();
    assert!(report.outcomes.iter().all(|o| o.is_success()));

    // Through the proxy: one UPDATE of the N contacts it inserted.
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
    let rss = proxy.memory("VmHWM");
    proxy.kill();

    println!("records: {n}");
    for (what, raw, proxied) in [
        ("insert (COPY)", raw_insert, proxy_insert),
        ("update (UPDATE)", raw_update, proxy_update),
    ] {
        println!(
            "{what}: raw job {:.2} s ({:.0}/s), through the proxy {:.2} s ({:.0}/s): {:.0}% of the raw rate",
            raw.as_secs_f64(),
            rate(n, raw),
            proxied.as_secs_f64(),
            rate(n, proxied),
            100.0 * raw.as_secs_f64() / proxied.as_secs_f64()
        );
    }
    println!("proxy peak RSS (VmHWM): {:.1} MB", rss as f64 / 1e6);
}
