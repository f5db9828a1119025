//! `sfpg org add` end to end: the real binary against a throwaway PostgreSQL.

// Helpers of a test crate may unwrap: a failure should stop the test where it happened.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::{Command, Output};

use sfpg_testkit::TestDatabase;

/// A fixed test key (base64 of 32 bytes).
const MASTER_KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

fn sfpg(db: &TestDatabase, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sfpg"))
        .args(args)
        .env("DATABASE_URL", db.url())
        .env("SFPG_MASTER_KEY", MASTER_KEY)
        .env_remove("RUST_LOG")
        .output()
        .unwrap()
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

const ADD_ACME: &[&str] = &[
    "org",
    "add",
    "acme",
    "--instance-url",
    "https://acme.my.salesforce.com",
    "--client-id",
    "3MVG9-acme",
    "--client-secret",
    "client-secret-value",
    "--username",
    "integration@acme.example",
    "--password",
    "password-value",
    "--objects",
    "Account,Contact,Invoice__c",
    "--batch-size",
    "500",
    // acme.my.salesforce.com is not reachable from a test; the emulator tests below check
    // the login at registration.
    "--no-verify",
];

#[tokio::test]
async fn org_add_registers_the_org_with_sealed_credentials() {
    let db = TestDatabase::create().await;
    let output = sfpg(&db, ADD_ACME);
    assert!(output.status.success(), "{}", text(&output));
    assert!(text(&output).contains("added org acme (password flow)"));
    assert!(!text(&output).contains("password-value"));

    let client = db.connect().await;
    let row = client
        .query_one(
            "SELECT auth_flow, schema_name, batch_size, rate_requests, rate_period_ms,
                    encode(sealed_credentials, 'escape')
               FROM sfpg.orgs WHERE name = 'acme'",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "password");
    assert_eq!(row.get::<_, String>(1), "acme");
    assert_eq!(row.get::<_, i32>(2), 500);
    assert_eq!((row.get::<_, i32>(3), row.get::<_, i64>(4)), (1, 3000));
    let sealed: String = row.get(5);
    assert!(!sealed.contains("password-value") && !sealed.contains("client-secret-value"));

    let objects: Vec<String> = client
        .query(
            "SELECT object_name FROM sfpg.objects WHERE org_name = 'acme' ORDER BY 1",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(objects, ["Account", "Contact", "Invoice__c"]);
}

#[tokio::test]
async fn bad_input_exits_2_with_one_line_and_changes_nothing() {
    let db = TestDatabase::create().await;
    assert!(sfpg(&db, ADD_ACME).status.success());
    db.connect()
        .await
        .batch_execute("CREATE SCHEMA billing")
        .await
        .unwrap();

    let mut foreign = ADD_ACME.to_vec();
    foreign[2] = "billing";
    let mut bad_name = ADD_ACME.to_vec();
    bad_name[2] = "Bad-Name";
    let mut bad_batch = ADD_ACME.to_vec();
    bad_batch[2] = "big";
    let size = bad_batch.iter().position(|a| *a == "500").unwrap();
    bad_batch[size] = "5000";
    let lone_username = [
        "org",
        "add",
        "solo",
        "--instance-url",
        "https://solo.my.salesforce.com",
        "--client-id",
        "x",
        "--client-secret",
        "y",
        "--username",
        "u@example.com",
        "--no-verify",
    ];
    let cases: [(&[&str], &str); 5] = [
        (ADD_ACME, "an org named acme already exists"),
        (
            &foreign,
            "schema billing already exists and does not belong to sfpg",
        ),
        (&bad_name, "invalid org name"),
        (&bad_batch, "batch size must be between 200 and 2000"),
        (&lone_username, "--username and --password go together"),
    ];
    for (args, expected) in cases {
        let output = sfpg(&db, args);
        let err = String::from_utf8_lossy(&output.stderr).into_owned();
        assert_eq!(output.status.code(), Some(2), "{args:?}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "{err}");
        assert!(err.contains(expected), "{args:?}: {err}");
        assert!(!err.contains("password-value") && !err.contains("client-secret-value"));
    }
    let orgs: i64 = db
        .connect()
        .await
        .query_one("SELECT count(*) FROM sfpg.orgs", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(orgs, 1);
}

#[tokio::test]
async fn org_list_show_and_settings() {
    let db = TestDatabase::create().await;
    assert!(sfpg(&db, ADD_ACME).status.success());

    let list = sfpg(&db, &["org", "list"]);
    assert!(list.status.success(), "{}", text(&list));
    let list = text(&list);
    assert!(
        list.contains("acme") && list.contains("password") && list.contains("1/3s"),
        "{list}"
    );

    let changed = sfpg(
        &db,
        &[
            "org",
            "set-rate-limit",
            "acme",
            "--requests",
            "100",
            "--per",
            "1m",
        ],
    );
    assert!(changed.status.success(), "{}", text(&changed));
    let changed = sfpg(
        &db,
        &["org", "set-budget", "acme", "--max-daily-share", "50%"],
    );
    assert!(changed.status.success(), "{}", text(&changed));

    let show = sfpg(&db, &["org", "show", "acme"]);
    assert!(show.status.success(), "{}", text(&show));
    let show = text(&show);
    for expected in [
        "rate limit       100 request(s) per 1m",
        "daily budget     50% of the org's API allocation",
        "password         ********",
        "client secret    ********",
        "refresh token    -",
        "Invoice__c",
    ] {
        assert!(show.contains(expected), "missing {expected:?} in:\n{show}");
    }
    assert!(!show.contains("password-value") && !show.contains("client-secret-value"));
}

#[tokio::test]
async fn objects_enable_disable_resync_and_org_remove() {
    let db = TestDatabase::create().await;
    assert!(sfpg(&db, ADD_ACME).status.success());
    for args in [
        &["objects", "enable", "acme", "Lead", "Opportunity"][..],
        &["objects", "disable", "acme", "Contact"],
        &["objects", "resync", "acme", "Account"],
    ] {
        let output = sfpg(&db, args);
        assert!(output.status.success(), "{args:?}: {}", text(&output));
    }
    let client = db.connect().await;
    let enabled: Vec<String> = client
        .query(
            "SELECT object_name FROM sfpg.objects WHERE enabled ORDER BY 1",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(enabled, ["Account", "Invoice__c", "Lead", "Opportunity"]);

    client
        .batch_execute("CREATE SCHEMA acme; CREATE TABLE acme.account (id int)")
        .await
        .unwrap();
    let removed = sfpg(&db, &["org", "remove", "acme", "--drop-schema"]);
    assert!(removed.status.success(), "{}", text(&removed));
    let left: i64 = client
        .query_one(
            "SELECT (SELECT count(*) FROM sfpg.orgs) + (SELECT count(*) FROM pg_namespace WHERE nspname = 'acme')",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(left, 0);
}

#[tokio::test]
async fn admin_refusals_exit_2_and_change_nothing() {
    let db = TestDatabase::create().await;
    assert!(sfpg(&db, ADD_ACME).status.success());
    let cases: [(&[&str], &str); 8] = [
        (&["org", "show", "ghost"], "no org named ghost"),
        (&["org", "remove", "ghost"], "no org named ghost"),
        (
            &[
                "org",
                "set-rate-limit",
                "acme",
                "--requests",
                "0",
                "--per",
                "3s",
            ],
            "--requests must be at least 1",
        ),
        (
            &[
                "org",
                "set-rate-limit",
                "acme",
                "--requests",
                "-2",
                "--per",
                "3s",
            ],
            "--requests must be at least 1",
        ),
        (
            &[
                "org",
                "set-rate-limit",
                "acme",
                "--requests",
                "1",
                "--per",
                "often",
            ],
            "is not a duration",
        ),
        (
            &["org", "set-budget", "acme", "--max-daily-share", "180%"],
            "must be a percentage",
        ),
        (
            &["objects", "disable", "acme", "Case"],
            "org acme has no object Case",
        ),
        (
            &["org", "set-rate-limit", "acme", "--per", "3s"],
            "--requests",
        ),
    ];
    for (args, expected) in cases {
        let output = sfpg(&db, args);
        let err = String::from_utf8_lossy(&output.stderr).into_owned();
        assert_eq!(output.status.code(), Some(2), "{args:?}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "{args:?}: {err}");
        assert!(err.contains(expected), "{args:?}: {err}");
    }
    let row = db
        .connect()
        .await
        .query_one(
            "SELECT rate_requests, rate_period_ms, max_daily_share FROM sfpg.orgs WHERE name = 'acme'",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(
        (
            row.get::<_, i32>(0),
            row.get::<_, i64>(1),
            row.get::<_, f32>(2)
        ),
        (1, 3000, 0.8)
    );
}

mod against_the_emulator {
    use super::*;
    use sfpg_emulator::http::{
        DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, DEFAULT_PASSWORD, DEFAULT_USERNAME,
        EmulatorConfig, start,
    };

    fn add_args<'a>(login_url: &'a str, password: &'a str) -> Vec<&'a str> {
        vec![
            "org",
            "add",
            "emu",
            "--login-url",
            login_url,
            "--client-id",
            DEFAULT_CLIENT_ID,
            "--client-secret",
            DEFAULT_CLIENT_SECRET,
            "--username",
            DEFAULT_USERNAME,
            "--password",
            password,
            "--objects",
            "Account,Invoice__c,Bogus__c",
        ]
    }

    // The emulator serves from this runtime while the test waits on a subprocess.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn org_add_checks_the_credentials_and_org_test_reports_the_org() {
        let db = TestDatabase::create().await;
        let emulator = start(EmulatorConfig::default()).await.unwrap();

        let refused = sfpg(&db, &add_args(emulator.login_url(), "wrong-password"));
        let err = String::from_utf8_lossy(&refused.stderr).into_owned();
        assert_eq!(refused.status.code(), Some(2), "{err}");
        assert!(
            err.contains("Salesforce refused the credentials of org emu"),
            "{err}"
        );
        assert!(err.contains("invalid_grant"), "{err}");
        assert!(!err.contains("wrong-password"), "{err}");

        let added = sfpg(&db, &add_args(emulator.login_url(), DEFAULT_PASSWORD));
        assert!(added.status.success(), "{}", text(&added));
        assert!(text(&added).contains(emulator.org_id()), "{}", text(&added));

        let tested = sfpg(&db, &["org", "test", "emu"]);
        assert!(tested.status.success(), "{}", text(&tested));
        let out = text(&tested);
        assert!(
            out.contains(&format!("org id        {}", emulator.org_id())),
            "{out}"
        );
        assert!(out.contains("api usage     "), "{out}");
        assert!(out.contains("Invoice__c"), "{out}");
        assert!(
            out.lines()
                .any(|l| l.contains("Bogus__c") && l.contains("not found in the org")),
            "{out}"
        );
        assert!(
            out.lines()
                .any(|l| l.trim_start().starts_with("Account") && l.contains("can be mirrored")),
            "{out}"
        );
        assert!(!out.contains(DEFAULT_PASSWORD) && !out.contains(DEFAULT_CLIENT_SECRET));

        let stored: Option<String> = db
            .connect()
            .await
            .query_one("SELECT org_id FROM sfpg.orgs WHERE name = 'emu'", &[])
            .await
            .unwrap()
            .get(0);
        assert_eq!(stored.as_deref(), Some(emulator.org_id()));
        emulator.shutdown().await;
    }

    #[tokio::test]
    async fn an_unreachable_salesforce_is_not_the_users_fault() {
        let db = TestDatabase::create().await;
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let login_url = format!("http://127.0.0.1:{port}");
        let output = sfpg(&db, &add_args(&login_url, DEFAULT_PASSWORD));
        let err = String::from_utf8_lossy(&output.stderr).into_owned();
        assert_eq!(output.status.code(), Some(1), "{err}");
        assert!(err.contains("cannot log in to org emu"), "{err}");
        assert_eq!(err.trim().lines().count(), 1, "{err}");
    }
}
