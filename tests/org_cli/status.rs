//! `sfpg status` while `sfpg sync` runs: `--watch` follows the backfills and ends with
//! them; the text and JSON reports give each org's schema, holder, budget, rate, API usage
//! and objects, and no secret; and `objects resync` backfills an object afresh, bringing
//! back rows lost from the mirror.

use std::time::{Duration, Instant};

use sfpg_emulator::http::{
    DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, DEFAULT_PASSWORD, EmulatorConfig, OrgSource,
    RunningEmulator, start,
};
use sfpg_testkit::TestDatabase;
use sfpg_testkit::process::TestProcess;
use sfpg_testkit::world::soql_of;

use super::{SFPG, add_args, sfpg_off_runtime, text, words};

async fn phases(client: &tokio_postgres::Client, org: &str) -> Vec<(String, String, i64)> {
    client
        .query(
            "SELECT object_name, phase, backfill_done FROM sfpg.objects WHERE org_name = $1 ORDER BY 1",
            &[&org],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect()
}

async fn wait_live(client: &tokio_postgres::Client, org: &str, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    loop {
        let now = phases(client, org).await;
        if !now.is_empty() && now.iter().all(|(_, phase, _)| phase == "live") {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{org} not live after {timeout:?}: {now:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Registers `acme` (password flow: Account, Contact; 20 requests a second) and `globex`
/// (client credentials: Lead; 10 a second, half the daily allocation) on the org at `url`.
async fn register_acme_and_globex(db: &TestDatabase, url: &str) {
    let acme: Vec<&str> = add_args(url, DEFAULT_PASSWORD)
        .into_iter()
        .map(|a| match a {
            "emu" => "acme",
            "Account,Invoice__c" => "Account,Contact",
            a => a,
        })
        .collect();
    let globex = format!(
        "org add globex --instance-url {url} --client-id {DEFAULT_CLIENT_ID} \
         --client-secret {DEFAULT_CLIENT_SECRET} --objects Lead"
    );
    for args in [
        acme,
        words(&globex),
        words("org set-rate-limit acme --requests 20 --per 1s"),
        words("org set-rate-limit globex --requests 10 --per 1s"),
        words("org set-budget globex --max-daily-share 50%"),
    ] {
        let output = sfpg_off_runtime(db, &args).await;
        assert!(output.status.success(), "{args:?}: {}", text(&output));
    }
}

/// Starts `status --watch acme`, then the sync; returns the sync and what the watch
/// printed once it ended, which it must when acme's backfills are done.
async fn watch_the_backfills(db: &TestDatabase) -> (TestProcess, String) {
    let mut watch = SFPG.start(db.url(), &["status", "--watch", "acme"]);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let sync = SFPG
        .logging("sfpg=warn")
        .start(db.url(), &["sync", "--no-progress"]);
    let watched = watch.exit_within(Duration::from_secs(60)).await;
    assert!(watched.success());
    (sync, watch.all_printed(Duration::from_secs(10)))
}

/// Asserts what `status` says of both orgs, in text and JSON, while `sync_pid` syncs them.
async fn assert_status_reports(db: &TestDatabase, emulator: &RunningEmulator, sync_pid: u32) {
    let secrets = [DEFAULT_PASSWORD, DEFAULT_CLIENT_SECRET];
    let all = text(&sfpg_off_runtime(db, &["status"]).await);
    for org in ["acme", "globex"] {
        let heading = all
            .lines()
            .find(|line| line.starts_with(&format!("org {org} (schema {org}) ")))
            .unwrap_or_default();
        // `org acme (schema acme) polling, synced by host:pid, lag 2s`: its state, its
        // worker (and its freshness once a poll caught up).
        assert!(heading.contains(", synced by "), "{org}: {all}");
    }
    for expected in [
        "budget 80% (12000); rate limit 20 requests per 1s",
        "budget 50% (7500); rate limit 10 requests per 1s",
        "API requests today: ",
        "of 15000",
    ] {
        assert!(all.contains(expected), "no {expected:?} in:\n{all}");
    }
    let one = text(&sfpg_off_runtime(db, &["status", "acme"]).await);
    assert!(
        one.starts_with("org acme ") && !one.contains("globex"),
        "{one}"
    );
    assert!(
        one.lines()
            .any(|l| l.trim_start().starts_with("Contact") && l.contains("live")),
        "{one}"
    );
    let json = sfpg_off_runtime(db, &["status", "--json", "globex"]).await;
    assert!(json.status.success(), "{}", text(&json));
    let json: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    let orgs = json.as_array().unwrap();
    assert_eq!(orgs.len(), 1, "{json:#}");
    let globex = &orgs[0];
    assert_eq!(globex["name"], "globex");
    assert_eq!(globex["rate_requests"], 10);
    assert_eq!(globex["rate_period_ms"], 1000);
    assert_eq!(globex["max_daily_share"], 0.5);
    assert_eq!(globex["api_max"], 15000);
    let (used, _) = emulator.api_usage();
    let reported = globex["api_used"].as_u64().unwrap();
    assert!(reported > 0 && reported <= used, "{reported} of {used}");
    assert!(
        globex["lease_owner"]
            .as_str()
            .unwrap()
            .ends_with(&format!(":{sync_pid}")),
        "{globex:#}"
    );
    assert_eq!(globex["objects"][0]["object"], "Lead");
    assert_eq!(globex["objects"][0]["phase"], "live");
    for output in [&all, &one, &json.to_string()] {
        for secret in secrets {
            assert!(!output.contains(secret), "a secret in:\n{output}");
        }
    }
}

/// Deletes 25 of acme's accounts from the mirror as the sync writes (the capture trigger
/// lets it through): rows lost, which polling cannot bring back, since nothing changed.
async fn lose_accounts(db: &TestDatabase) {
    let mut writer = db.connect().await;
    let tx = writer.transaction().await.unwrap();
    tx.execute(sfpg_control::capture::SET_SYNC_ORIGIN_SQL, &[])
        .await
        .unwrap();
    let lost = tx
        .execute(
            "DELETE FROM acme.account WHERE id IN (SELECT id FROM acme.account ORDER BY sfid LIMIT 25)",
            &[],
        )
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(lost, 25);
}

/// Runs `objects resync acme Account` and waits until the backfill has started over (the
/// first page again: Account in Id order, after no Id) and is done.
async fn resync_accounts(db: &TestDatabase, emulator: &RunningEmulator) {
    let client = db.connect().await;
    let before_resync = emulator.requests(0).last().unwrap().seq;
    let resync = sfpg_off_runtime(db, &["objects", "resync", "acme", "Account"]).await;
    assert!(resync.status.success(), "{}", text(&resync));
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let account = phases(&client, "acme").await;
        let in_org = emulator.with_org(|org| org.record_count("Account")) as i64;
        let done = account
            .iter()
            .any(|(o, phase, done)| o == "Account" && phase == "live" && *done == in_org);
        let started_over = emulator.requests(before_resync).iter().any(|r| {
            soql_of(r).is_some_and(|q| {
                q.contains(" FROM Account ") && q.contains("ORDER BY Id") && !q.contains("Id >")
            })
        });
        if done && started_over {
            break;
        }
        assert!(Instant::now() < deadline, "no fresh backfill: {account:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_watch_and_resync_while_sync_runs() {
    let emulator = start(EmulatorConfig {
        org: OrgSource::Generated {
            records: 3_000,
            seed: 7,
        },
        ..EmulatorConfig::default()
    })
    .await
    .unwrap();
    let db = TestDatabase::create().await;
    register_acme_and_globex(&db, emulator.instance_url()).await;
    let client = db.connect().await;

    // Watching before the sync starts: the backfills are all ahead.
    let (sync, watched) = watch_the_backfills(&db).await;
    // It ended because the backfills did, not before.
    let acme = phases(&client, "acme").await;
    assert!(
        acme.iter().all(|(_, phase, _)| phase == "live"),
        "{acme:?}\n{watched}"
    );
    for object in ["Account", "Contact"] {
        assert!(
            watched.lines().any(|l| l == format!("acme/{object} live")),
            "{object}:\n{watched}"
        );
    }
    assert!(watched.contains("acme/Contact backfilling "), "{watched}");
    assert!(
        watched.trim_end().ends_with("no backfill pending"),
        "{watched}"
    );
    assert!(!watched.contains("globex"), "{watched}");
    wait_live(&client, "globex", Duration::from_secs(30)).await;
    assert_status_reports(&db, &emulator, sync.id()).await;

    lose_accounts(&db).await;
    resync_accounts(&db, &emulator).await;
    let objects = ["Account", "Contact"];
    sfpg_testkit::world::assert_mirror_equals_org(&emulator, &client, "acme", &objects).await;

    sync.stop_cleanly(Duration::from_secs(20)).await;
    let after = text(&sfpg_off_runtime(&db, &["status", "acme"]).await);
    let heading = after.lines().next().unwrap_or_default();
    assert!(
        heading.starts_with("org acme (schema acme) ") && heading.contains(", not being synced"),
        "{after}"
    );
    emulator.shutdown().await;
}
