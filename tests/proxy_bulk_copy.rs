//! Large writes through real clients (issue 25): psql's `\copy` into a mirrored table under
//! `sfpg.bulk_writes = auto` is a bulk insert whose refused rows are restored and listed;
//! a cancel while an ingest job runs aborts it, and the COMMIT reports exactly what
//! Salesforce had processed; progress NOTICEs reach the client while a job runs.

// Helpers of a test crate may unwrap: a failure should stop the test where it happened.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::time::Duration;

use sfpg_testkit::process::output;
use sfpg_testkit::world::World;
use std::process::Command;

/// psql from the test server's binaries, or the one on PATH.
fn psql(world: &World) -> PathBuf {
    world
        .db
        .server()
        .bin_dir()
        .map(|d| d.join("psql"))
        .filter(|p| p.is_file())
        .unwrap_or_else(|| "psql".into())
}

fn ingest_jobs(world: &World) -> usize {
    world
        .emulator
        .requests(0)
        .iter()
        .filter(|r| r.method == "POST" && r.path.ends_with("/jobs/ingest"))
        .count()
}

#[tokio::test]
async fn psql_copy_of_leads_with_a_bad_row_loads_the_rest_and_lists_it() {
    let world = World::start(&["Lead"], 20).await;
    let before = world.org_count("Lead");
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("leads.csv");
    let mut text = String::from("lastname,company,status,email\n");
    for n in 1..=1200 {
        // Row 600's email is no email address: Salesforce refuses that lead alone.
        let email = if n == 600 {
            "not-an-email".to_owned()
        } else {
            format!("lead{n}@example.com")
        };
        text.push_str(&format!(
            "Copied {n},Acme {n},Open - Not Contacted,{email}\n"
        ));
    }
    std::fs::write(&csv, text).unwrap();
    let mut command = Command::new(psql(&world));
    command
        .arg(world.proxy_conninfo())
        .env("PGOPTIONS", "-c sfpg.bulk_writes=auto")
        .args(["-X", "-v", "ON_ERROR_STOP=1", "-c"])
        .arg(format!(
            "\\copy salesforce.lead (lastname, company, status, email) FROM '{}' CSV HEADER",
            csv.display()
        ));
    let out = output(command).await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("COPY 1200"), "{stdout}");
    assert!(
        stderr.contains("WARNING:  1 of 1200 records were refused by Salesforce"),
        "{stderr}"
    );
    assert!(stderr.contains("INVALID_EMAIL_ADDRESS"), "{stderr}");
    assert!(stderr.contains("sfpg.write_failures"), "{stderr}");
    assert_eq!(ingest_jobs(&world), 1);
    assert_eq!(world.org_count("Lead"), before + 1199);
    let direct = world.direct().await;
    let bad: i64 = direct
        .query_one(
            "SELECT count(*) FROM salesforce.lead WHERE email = 'not-an-email'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(bad, 0, "the refused row is not kept");
    let listed: (String, String) = {
        let row = world
            .client()
            .await
            .query_one(
                "SELECT operation, error_code FROM sfpg.write_failures WHERE table_name = 'lead'",
                &[],
            )
            .await
            .unwrap();
        (row.get(0), row.get(1))
    };
    assert_eq!(listed, ("create".into(), "INVALID_EMAIL_ADDRESS".into()));
    world.assert_mirror_equals_org("Lead").await;
}

#[tokio::test]
async fn a_cancel_mid_job_aborts_it_and_the_commit_says_what_was_saved() {
    let world = World::start(&["Account"], 20).await;
    // Each job stays queued, then processes: long enough to cancel in between, and for a
    // progress notice.
    world
        .emulator
        .set_bulk_processing_delay(Duration::from_secs(8));
    let mut config = world.proxy_config();
    config.options("-c sfpg.bulk_writes=on");
    let (client, mut connection) = config.connect(tokio_postgres::NoTls).await.unwrap();
    let (notices_in, mut notices) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut messages = futures::stream::poll_fn(move |cx| connection.poll_message(cx));
        while let Some(Ok(message)) = futures::StreamExt::next(&mut messages).await {
            if let tokio_postgres::AsyncMessage::Notice(notice) = message {
                let _ = notices_in.send(format!("{}: {}", notice.severity(), notice.message()));
            }
        }
    });
    let cancel = client.cancel_token();
    let push = tokio::spawn(async move {
        client
            .batch_execute(
                "BEGIN; INSERT INTO salesforce.account (name)
                 SELECT 'Cancelled ' || g FROM generate_series(1, 50) g; COMMIT",
            )
            .await
            .map(|()| client)
    });
    // A progress notice while the job is queued, then the cancel.
    let first = tokio::time::timeout(Duration::from_secs(20), notices.recv())
        .await
        .unwrap()
        .unwrap();
    assert!(
        first.starts_with("NOTICE: Bulk create of Account (job 750"),
        "{first}"
    );
    cancel.cancel_query(tokio_postgres::NoTls).await.unwrap();
    let client = push.await.unwrap().unwrap();
    let mut warned = Vec::new();
    while let Ok(notice) = notices.try_recv() {
        warned.push(notice);
    }
    // Aborted while queued: Salesforce processed none of them, and none is kept.
    assert!(
        warned.iter().any(|n| n.starts_with(
            "WARNING: 50 of 50 records were not saved: the push was cancelled before Salesforce processed them"
        )),
        "{warned:?}"
    );
    let kept: i64 = client
        .query_one(
            "SELECT count(*) FROM salesforce.account WHERE name LIKE 'Cancelled %'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(kept, 0);
    let codes: Vec<String> = client
        .query("SELECT DISTINCT error_code FROM sfpg.write_failures", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(codes, ["CANCELED"]);
    world.assert_mirror_equals_org("Account").await;
}
