//! The status page of the real binary in a real browser: `sfpg run --metrics-listen`
//! mirrors two orgs (one logging in with a client secret, one with a password too) and
//! refuses a client's write, and headless Chromium (Debian's `chromium`) loads the page at
//! `/`, takes a screenshot and dumps the DOM it rendered. The page names every org and
//! object, lists the refusal by its SQLSTATE, reloads itself, runs no script, and holds
//! neither the client secret nor the password. The `sfpg.status` view, read by a
//! read-only role, holds the same orgs and objects.

// Helpers of a test crate may unwrap: a failure should stop the test where it happened.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "sync_cdc/support.rs"]
mod cdc;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use sfpg_emulator::http::{DEFAULT_CLIENT_SECRET, DEFAULT_PASSWORD, DEFAULT_USERNAME};
use sfpg_testkit::TestDatabase;
use sfpg_testkit::binary::{RUN_WITH_METRICS, spawn_with_metrics};
use sfpg_testkit::process::TestProcess;

use cdc::SFPG;

const OBJECTS: [&str; 3] = ["Account", "Contact", "Invoice__c"];
const ORGS: [&str; 2] = ["acme", "globex"];

/// `sfpg run` with the proxy and the metrics listener on free ports of 127.0.0.1.
fn start_run(db: &TestDatabase) -> (TestProcess, SocketAddr, SocketAddr) {
    spawn_with_metrics(SFPG.at(db.url(), &RUN_WITH_METRICS))
}

/// Runs Debian's headless Chromium on `url` with `args` (as root: no sandbox; a new
/// profile each time); its stdout. Missing, it fails the test with the install step.
async fn chromium(profile: &Path, args: &[&str], url: &str) -> String {
    let run = tokio::process::Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .arg(url)
        .kill_on_drop(true)
        .output();
    let output = match tokio::time::timeout(Duration::from_secs(120), run).await {
        Ok(Ok(output)) => output,
        Ok(Err(error)) => panic!(
            "cannot run chromium ({error}): install Debian's package with \
             `apt-get install -y chromium` (.ci/run does)"
        ),
        Err(_) => panic!("chromium did not finish within 120 s on {url}"),
    };
    assert!(
        output.status.success(),
        "chromium {args:?} {url}: {}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

/// The text of `html` without its tags, whitespace runs made one space.
fn text_of(html: &str) -> String {
    let mut text = String::new();
    let mut in_tag = false;
    for c in html.chars() {
        match c {
            '<' => in_tag = true,
            '>' => {
                in_tag = false;
                text.push(' ');
            }
            c if !in_tag => text.push(c),
            _ => {}
        }
    }
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_status_page_in_chromium_names_every_org_and_object_and_no_secret() {
    let emulator = sfpg_emulator::http::start(sfpg_testkit::world::generated(30, 7))
        .await
        .unwrap();
    let db = TestDatabase::create().await;
    SFPG.add_org(&db, "acme", emulator.instance_url(), &OBJECTS, &[])
        .await;
    let with_password = [
        "--schema",
        "globex",
        "--username",
        DEFAULT_USERNAME,
        "--password",
        DEFAULT_PASSWORD,
    ];
    SFPG.add_org(
        &db,
        "globex",
        emulator.instance_url(),
        &OBJECTS,
        &with_password,
    )
    .await;
    for org in ORGS {
        SFPG.set_rate_per_second(&db, org, 20).await;
        SFPG.run(&db, &["org", "set-cdc", org, "off"]).await;
    }
    let client = db.connect().await;
    let (run, proxy, listener) = start_run(&db);
    sfpg_testkit::world::wait_all_live(&client, Duration::from_secs(120)).await;

    // A write Salesforce refuses (its validation rule), for the refusals table.
    let account = cdc::ids(&emulator, "Account").remove(0);
    let refused = db
        .connect_via(proxy)
        .await
        .batch_execute(&format!(
            "INSERT INTO acme.invoice__c (account__c, amount__c) VALUES ('{account}', -100)"
        ))
        .await
        .unwrap_err();
    let sqlstate = refused.code().unwrap().code().to_owned();

    let url = format!("http://{listener}/");
    let profile = tempfile::tempdir().unwrap();
    let screenshot = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("status-page.png");
    let _ = std::fs::remove_file(&screenshot);
    chromium(
        profile.path(),
        &[
            &format!("--screenshot={}", screenshot.display()),
            "--window-size=1280,900",
        ],
        &url,
    )
    .await;
    let png = std::fs::read(&screenshot).unwrap();
    assert!(
        png.starts_with(b"\x89PNG\r\n\x1a\n") && png.len() > 10_000,
        "not a screenshot of a page: {} bytes at {}",
        png.len(),
        screenshot.display()
    );

    let dom = chromium(profile.path(), &["--dump-dom"], &url).await;
    let text = text_of(&dom);
    for org in ORGS {
        assert!(dom.contains(&format!("<td>{org}</td>")), "{org}: {text}");
    }
    for object in OBJECTS {
        assert_eq!(
            dom.matches(&format!("<td>{object}</td>")).count(),
            ORGS.len(),
            "{object}: {text}"
        );
    }
    assert!(text.contains("live"), "{text}");
    assert!(
        dom.contains(&format!("<td>{sqlstate}</td>")),
        "the refusal {sqlstate}: {text}"
    );
    assert!(text.contains("FIELD_CUSTOM_VALIDATION_EXCEPTION"), "{text}");
    assert!(dom.contains("http-equiv=\"refresh\""), "{dom}");
    assert!(!dom.contains("<script"), "{dom}");
    for secret in [DEFAULT_CLIENT_SECRET, DEFAULT_PASSWORD] {
        assert!(!dom.contains(secret), "the page shows a secret: {dom}");
    }
    // Nothing but GET: the page changes nothing.
    let post = reqwest::Client::new().post(&url).send().await.unwrap();
    assert_eq!(post.status().as_u16(), 405);
    drop(run);
}
