//! `sfpg org add` end to end: the real binary against a throwaway PostgreSQL.

// Helpers of a test crate may unwrap: a failure should stop the test where it happened.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../sync/tests/emulated/mirror.rs"]
mod mirror;

use std::process::{Command, Output};
use std::time::{Duration, Instant};

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

/// [`sfpg`] off the runtime's threads, for commands that talk to an emulator this test's
/// runtime serves.
async fn sfpg_off_runtime(db: &TestDatabase, args: &[&str]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_sfpg"));
    command
        .args(args)
        .env("DATABASE_URL", db.url())
        .env("SFPG_MASTER_KEY", MASTER_KEY)
        .env_remove("RUST_LOG");
    tokio::task::spawn_blocking(move || command.output())
        .await
        .unwrap()
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
        // acme.my.salesforce.com is not reachable from a test: enabled without asking it.
        &[
            "objects",
            "enable",
            "acme",
            "Lead",
            "Opportunity",
            "--no-verify",
        ][..],
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
    let cases: Vec<(&[&str], &str)> = vec![
        (&["org", "show", "ghost"], "no org named ghost"),
        (&["org", "remove", "ghost"], "no org named ghost"),
        (&["org", "test", "ghost"], "no org named ghost"),
        (
            &[
                "org",
                "set-rate-limit",
                "ghost",
                "--requests",
                "5",
                "--per",
                "1s",
            ],
            "no org named ghost",
        ),
        (
            &["org", "set-budget", "ghost", "--max-daily-share", "50%"],
            "no org named ghost",
        ),
        (
            &["objects", "enable", "ghost", "Account"],
            "no org named ghost",
        ),
        (
            &["objects", "resync", "ghost", "Account"],
            "no org named ghost",
        ),
        (&["status", "ghost"], "no org named ghost"),
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
        (
            &["objects", "resync", "acme", "Case"],
            "org acme has no object Case",
        ),
        (
            &["org", "set-budget", "acme", "--max-daily-share", "0%"],
            "must be a percentage",
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

#[tokio::test]
async fn the_master_key_file_is_made_on_first_use_and_guarded() {
    use std::os::unix::fs::PermissionsExt;

    let db = TestDatabase::create().await;
    let dir = std::env::temp_dir().join(format!("sfpg-org-cli-key-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let key_file = dir.join("master.key");
    let with_key_file = |args: &[&str], master_key: Option<&str>| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_sfpg"));
        command
            .args(args)
            .env("DATABASE_URL", db.url())
            .env("SFPG_MASTER_KEY_FILE", &key_file)
            .env_remove("SFPG_MASTER_KEY")
            .env_remove("RUST_LOG");
        if let Some(key) = master_key {
            command.env("SFPG_MASTER_KEY", key);
        }
        command.output().unwrap()
    };

    let added = with_key_file(ADD_ACME, None);
    assert!(added.status.success(), "{}", text(&added));
    let said = String::from_utf8_lossy(&added.stderr).into_owned();
    assert!(
        said.contains(&format!(
            "created a new master key at {} (mode 0600)",
            key_file.display()
        )),
        "{said}"
    );
    let mode = std::fs::metadata(&key_file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);

    // Used again, silently.
    let shown = with_key_file(&["org", "show", "acme"], None);
    assert!(shown.status.success(), "{}", text(&shown));
    assert!(
        !text(&shown).contains("created a new master key"),
        "{}",
        text(&shown)
    );
    assert!(
        text(&shown).contains("password         ********"),
        "{}",
        text(&shown)
    );

    // Another key cannot open the credentials, and says so.
    let wrong = with_key_file(&["org", "show", "acme"], Some(MASTER_KEY));
    assert!(!wrong.status.success());
    let err = String::from_utf8_lossy(&wrong.stderr).into_owned();
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("acme"), "{err}");
    assert!(!err.contains("password-value"), "{err}");

    // A key file others can read is refused, not used.
    std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let loose = with_key_file(&["org", "show", "acme"], None);
    assert!(!loose.status.success());
    let err = String::from_utf8_lossy(&loose.stderr).into_owned();
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains(&key_file.display().to_string()), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
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
            "Account,Invoice__c",
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
        // An object the org lacks can only be enabled without asking the org; `org test`
        // then says so.
        let unchecked = sfpg(
            &db,
            &["objects", "enable", "emu", "Bogus__c", "--no-verify"],
        );
        assert!(unchecked.status.success(), "{}", text(&unchecked));

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

    /// The emulator's JWT signing pair, shared with the Salesforce client's tests.
    const JWT_PUBLIC_KEY: &str = include_str!("../salesforce/tests/fixtures/jwt_public_key.pem");
    const JWT_PRIVATE_KEY: &str = include_str!("../salesforce/tests/fixtures/jwt_private_key.pem");
    /// A key the emulator's app does not trust.
    const OTHER_PRIVATE_KEY: &str = include_str!("../emulator/tests/fixtures/jwt-other-key.pem");

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn org_add_accepts_every_auth_flow_and_org_show_masks_the_secrets() {
        use sfpg_emulator::http::{ConnectedApp, Transport};

        let emulator = start(EmulatorConfig {
            transport: Transport::Https { cert_path: None },
            public_host: Some("localhost".to_owned()),
            apps: vec![ConnectedApp {
                client_id: DEFAULT_CLIENT_ID.to_owned(),
                client_secret: DEFAULT_CLIENT_SECRET.to_owned(),
                jwt_public_key_pem: Some(JWT_PUBLIC_KEY.to_owned()),
                client_credentials_user: Some(DEFAULT_USERNAME.to_owned()),
                // Each refresh uses up the refresh token it sent.
                rotate_refresh_tokens: true,
            }],
            ..EmulatorConfig::default()
        })
        .await
        .unwrap();
        let db = TestDatabase::create().await;
        let url = emulator.instance_url();
        let ca = emulator.cert_path().unwrap().to_str().unwrap().to_owned();
        let key_file =
            std::env::temp_dir().join(format!("sfpg-org-cli-jwt-{}.pem", std::process::id()));
        std::fs::write(&key_file, JWT_PRIVATE_KEY).unwrap();
        let key_path = key_file.to_str().unwrap().to_owned();
        let refresh_token = emulator
            .issue_refresh_token(DEFAULT_USERNAME, DEFAULT_CLIENT_ID)
            .unwrap();

        // (name, flow, arguments after the name)
        let flows: Vec<(&str, &str, Vec<&str>)> = vec![
            (
                "by_password",
                "password",
                vec![
                    "--login-url",
                    url,
                    "--client-id",
                    DEFAULT_CLIENT_ID,
                    "--client-secret",
                    DEFAULT_CLIENT_SECRET,
                    "--username",
                    DEFAULT_USERNAME,
                    "--password",
                    DEFAULT_PASSWORD,
                    "--api-version",
                    "60.0",
                    "--schema",
                    "pw_mirror",
                    "--objects",
                    "Account,Contact",
                    "--batch-size",
                    "1000",
                ],
            ),
            (
                "by_client_credentials",
                "client_credentials",
                vec![
                    "--instance-url",
                    url,
                    "--client-id",
                    DEFAULT_CLIENT_ID,
                    "--client-secret",
                    DEFAULT_CLIENT_SECRET,
                ],
            ),
            (
                "by_jwt",
                "jwt_bearer",
                vec![
                    "--login-url",
                    url,
                    "--instance-url",
                    url,
                    "--client-id",
                    DEFAULT_CLIENT_ID,
                    "--username",
                    DEFAULT_USERNAME,
                    "--jwt-key-file",
                    &key_path,
                    "--objects",
                    "Lead",
                ],
            ),
            (
                "by_refresh_token",
                "refresh_token",
                vec![
                    "--instance-url",
                    url,
                    "--client-id",
                    DEFAULT_CLIENT_ID,
                    "--client-secret",
                    DEFAULT_CLIENT_SECRET,
                    "--refresh-token",
                    &refresh_token,
                ],
            ),
        ];
        let secrets = [
            DEFAULT_PASSWORD,
            DEFAULT_CLIENT_SECRET,
            refresh_token.as_str(),
            // A line from the middle of the private key.
            JWT_PRIVATE_KEY.lines().nth(3).unwrap(),
        ];
        let client = db.connect().await;
        for (name, flow, extra) in &flows {
            let mut args = vec!["org", "add", name, "--ca-cert", &ca];
            args.extend(extra);
            let added = sfpg_off_runtime(&db, &args).await;
            let out = text(&added);
            assert!(added.status.success(), "{name}: {out}");
            assert!(
                out.contains(&format!("logged in to org {}", emulator.org_id())),
                "{name}: {out}"
            );
            assert!(
                out.contains(&format!("added org {name} ({flow} flow)")),
                "{name}: {out}"
            );

            let row = client
                .query_one(
                    "SELECT auth_flow, org_id, ca_cert_pem IS NOT NULL FROM sfpg.orgs WHERE name = $1",
                    &[name],
                )
                .await
                .unwrap();
            assert_eq!(row.get::<_, String>(0), *flow, "{name}");
            assert_eq!(
                row.get::<_, Option<String>>(1).as_deref(),
                Some(emulator.org_id())
            );
            assert!(
                row.get::<_, bool>(2),
                "{name}: the CA certificate is stored"
            );

            let shown = sfpg_off_runtime(&db, &["org", "show", name]).await;
            let shown = text(&shown);
            for secret in secrets {
                assert!(!shown.contains(secret), "{name}: a secret in:\n{shown}");
                assert!(!out.contains(secret), "{name}: a secret in:\n{out}");
            }
            assert!(shown.contains("ca certificate   custom"), "{shown}");
        }

        let row = client
            .query_one(
                "SELECT api_version, schema_name, batch_size FROM sfpg.orgs WHERE name = 'by_password'",
                &[],
            )
            .await
            .unwrap();
        assert_eq!(
            (
                row.get::<_, String>(0),
                row.get::<_, String>(1),
                row.get::<_, i32>(2)
            ),
            ("60.0".to_owned(), "pw_mirror".to_owned(), 1000)
        );
        let masked = [
            ("by_password", "password         ********"),
            ("by_password", "client secret    ********"),
            ("by_jwt", "jwt private key  ********"),
            ("by_jwt", "client secret    -"),
            ("by_refresh_token", "refresh token    ********"),
            ("by_client_credentials", "password         -"),
        ];
        for (name, line) in masked {
            let shown = text(&sfpg_off_runtime(&db, &["org", "show", name]).await);
            assert!(shown.contains(line), "{name}: no {line:?} in:\n{shown}");
        }
        let listed = text(&sfpg_off_runtime(&db, &["org", "list"]).await);
        for (name, flow, _) in &flows {
            assert!(
                listed
                    .lines()
                    .any(|l| l.starts_with(name) && l.contains(flow)),
                "{name} {flow}:\n{listed}"
            );
        }

        // The sealed key and token log in again later, from the database alone. The refresh
        // token given to `org add` was used up by its login, and each `org test` uses up the
        // one before: each time, the one Salesforce issued in its place was stored.
        let sealed = |name: &'static str| {
            let client = &client;
            async move {
                client
                    .query_one(
                        "SELECT sealed_credentials FROM sfpg.orgs WHERE name = $1",
                        &[&name],
                    )
                    .await
                    .unwrap()
                    .get::<_, Vec<u8>>(0)
            }
        };
        for name in ["by_jwt", "by_refresh_token", "by_refresh_token"] {
            let before = sealed(name).await;
            let tested = sfpg_off_runtime(&db, &["org", "test", name]).await;
            assert!(tested.status.success(), "{name}: {}", text(&tested));
            assert!(text(&tested).contains(emulator.org_id()));
            assert!(!text(&tested).contains(&refresh_token));
            assert_eq!(
                sealed(name).await != before,
                name == "by_refresh_token",
                "{name}: the stored credentials changed only with a rotated token"
            );
        }

        // Without the emulator's CA the TLS handshake fails: nothing is stored.
        let untrusted = sfpg_off_runtime(
            &db,
            &[
                "org",
                "add",
                "untrusted",
                "--instance-url",
                url,
                "--client-id",
                DEFAULT_CLIENT_ID,
                "--client-secret",
                DEFAULT_CLIENT_SECRET,
            ],
        )
        .await;
        assert!(!untrusted.status.success(), "{}", text(&untrusted));
        // (rustls also logs the refusal, at ERROR, above the command's own error line.)
        let err = String::from_utf8_lossy(&untrusted.stderr).into_owned();
        let last = err.trim().lines().last().unwrap_or_default();
        assert!(
            last.starts_with("error: cannot log in to org untrusted")
                && last.contains("UnknownIssuer"),
            "{err}"
        );
        // A JWT signed by a key the app does not know is refused as bad credentials.
        let other_key =
            std::env::temp_dir().join(format!("sfpg-org-cli-other-{}.pem", std::process::id()));
        std::fs::write(&other_key, OTHER_PRIVATE_KEY).unwrap();
        let refused = sfpg_off_runtime(
            &db,
            &[
                "org",
                "add",
                "wrong_key",
                "--instance-url",
                url,
                "--client-id",
                DEFAULT_CLIENT_ID,
                "--username",
                DEFAULT_USERNAME,
                "--jwt-key-file",
                other_key.to_str().unwrap(),
                "--ca-cert",
                &ca,
            ],
        )
        .await;
        let err = String::from_utf8_lossy(&refused.stderr).into_owned();
        assert_eq!(refused.status.code(), Some(2), "{err}");
        assert!(
            err.contains("Salesforce refused the credentials of org wrong_key"),
            "{err}"
        );
        let stored: i64 = client
            .query_one(
                "SELECT count(*) FROM sfpg.orgs WHERE name IN ('untrusted', 'wrong_key')",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        assert_eq!(stored, 0);
        let _ = std::fs::remove_file(&key_file);
        let _ = std::fs::remove_file(&other_key);
        emulator.shutdown().await;
    }

    /// A running `sfpg sync`, killed if the test ends without stopping it.
    struct SyncProcess(std::process::Child);

    impl SyncProcess {
        fn start(db: &TestDatabase) -> SyncProcess {
            let child = Command::new(env!("CARGO_BIN_EXE_sfpg"))
                .args(["sync", "--no-progress"])
                .env("DATABASE_URL", db.url())
                .env("SFPG_MASTER_KEY", MASTER_KEY)
                .env("RUST_LOG", "sfpg=warn")
                .stdout(std::process::Stdio::null())
                .spawn()
                .unwrap();
            SyncProcess(child)
        }

        /// SIGTERM, and the clean exit it must lead to.
        async fn stop(mut self) {
            let pid = self.0.id().to_string();
            assert!(
                Command::new("kill")
                    .args(["-TERM", &pid])
                    .status()
                    .unwrap()
                    .success()
            );
            let status = wait_for_exit(&mut self.0, Duration::from_secs(20)).await;
            assert!(status.success(), "sfpg sync exited with {status:?}");
        }
    }

    impl Drop for SyncProcess {
        fn drop(&mut self) {
            if matches!(self.0.try_wait(), Ok(None)) {
                let _ = self.0.kill();
                let _ = self.0.wait();
            }
        }
    }

    async fn wait_for_exit(
        child: &mut std::process::Child,
        timeout: Duration,
    ) -> std::process::ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("still running after {timeout:?}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

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

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn status_watch_and_resync_while_sync_runs() {
        let emulator = start(EmulatorConfig {
            org: sfpg_emulator::http::OrgSource::Generated {
                records: 3_000,
                seed: 7,
            },
            ..EmulatorConfig::default()
        })
        .await
        .unwrap();
        let db = TestDatabase::create().await;
        let url = emulator.instance_url();
        for args in [
            add_args(url, DEFAULT_PASSWORD)
                .into_iter()
                .map(|a| {
                    if a == "emu" {
                        "acme"
                    } else if a == "Account,Invoice__c" {
                        "Account,Contact"
                    } else {
                        a
                    }
                })
                .collect::<Vec<_>>(),
            vec![
                "org",
                "add",
                "globex",
                "--instance-url",
                url,
                "--client-id",
                DEFAULT_CLIENT_ID,
                "--client-secret",
                DEFAULT_CLIENT_SECRET,
                "--objects",
                "Lead",
            ],
            vec![
                "org",
                "set-rate-limit",
                "acme",
                "--requests",
                "20",
                "--per",
                "1s",
            ],
            vec![
                "org",
                "set-rate-limit",
                "globex",
                "--requests",
                "10",
                "--per",
                "1s",
            ],
            vec!["org", "set-budget", "globex", "--max-daily-share", "50%"],
        ] {
            let output = sfpg_off_runtime(&db, &args).await;
            assert!(output.status.success(), "{args:?}: {}", text(&output));
        }
        let client = db.connect().await;

        // Watching before the sync starts: the backfills are all ahead.
        let mut watch = Command::new(env!("CARGO_BIN_EXE_sfpg"))
            .args(["status", "--watch", "acme"])
            .env("DATABASE_URL", db.url())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        tokio::time::sleep(Duration::from_millis(500)).await;
        let sync = SyncProcess::start(&db);
        let watched = wait_for_exit(&mut watch, Duration::from_secs(60)).await;
        assert!(watched.success());
        let mut watched = String::new();
        std::io::Read::read_to_string(&mut watch.stdout.take().unwrap(), &mut watched).unwrap();
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

        let secrets = [DEFAULT_PASSWORD, DEFAULT_CLIENT_SECRET];
        let all = text(&sfpg_off_runtime(&db, &["status"]).await);
        for expected in [
            "org acme (schema acme), synced by ",
            "org globex (schema globex), synced by ",
            "budget 80% (12000); rate limit 20 requests per 1s",
            "budget 50% (7500); rate limit 10 requests per 1s",
            "API requests today: ",
            "of 15000",
        ] {
            assert!(all.contains(expected), "no {expected:?} in:\n{all}");
        }
        let one = text(&sfpg_off_runtime(&db, &["status", "acme"]).await);
        assert!(
            one.starts_with("org acme ") && !one.contains("globex"),
            "{one}"
        );
        assert!(
            one.lines()
                .any(|l| l.trim_start().starts_with("Contact") && l.contains("live")),
            "{one}"
        );
        let json = sfpg_off_runtime(&db, &["status", "--json", "globex"]).await;
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
                .ends_with(&format!(":{}", sync.0.id())),
            "{globex:#}"
        );
        assert_eq!(globex["objects"][0]["object"], "Lead");
        assert_eq!(globex["objects"][0]["phase"], "live");
        for output in [&all, &one, &json.to_string()] {
            for secret in secrets {
                assert!(!output.contains(secret), "a secret in:\n{output}");
            }
        }

        // Rows lost from the mirror come back only with a fresh backfill: polling reads
        // what changed, and nothing did.
        let lost = {
            let mut writer = db.connect().await;
            let tx = writer.transaction().await.unwrap();
            // As the sync writes: the capture trigger lets it through.
            tx.execute(sfpg_control::capture::SET_SYNC_ORIGIN_SQL, &[])
                .await
                .unwrap();
            let n = tx
                .execute(
                    "DELETE FROM acme.account WHERE id IN (SELECT id FROM acme.account ORDER BY sfid LIMIT 25)",
                    &[],
                )
                .await
                .unwrap();
            tx.commit().await.unwrap();
            n
        };
        assert_eq!(lost, 25);
        let before_resync = emulator.requests(0).last().unwrap().seq;
        let resync = sfpg_off_runtime(&db, &["objects", "resync", "acme", "Account"]).await;
        assert!(resync.status.success(), "{}", text(&resync));
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let account = phases(&client, "acme").await;
            let in_org = emulator.with_org(|org| org.record_count("Account")) as i64;
            let done = account
                .iter()
                .any(|(o, phase, done)| o == "Account" && phase == "live" && *done == in_org);
            // The first page again: Account in Id order, after no Id.
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
        for object in ["Account", "Contact"] {
            let diff = mirror::mirror_diff(&emulator, &client, "acme", object).await;
            assert!(diff.is_empty(), "{object}:\n{}", diff.join("\n"));
        }

        sync.stop().await;
        let after = text(&sfpg_off_runtime(&db, &["status", "acme"]).await);
        assert!(
            after.starts_with("org acme (schema acme), not being synced\n"),
            "{after}"
        );
        emulator.shutdown().await;
    }

    /// The SOQL of a logged query request, decoded.
    fn soql_of(request: &sfpg_emulator::http::LoggedRequest) -> Option<String> {
        let query = request.query.as_deref()?;
        let encoded = query.split('&').find_map(|pair| pair.strip_prefix("q="))?;
        let mut bytes = Vec::with_capacity(encoded.len());
        let mut iter = encoded.bytes();
        while let Some(byte) = iter.next() {
            match byte {
                b'+' => bytes.push(b' '),
                b'%' => {
                    let hex: Vec<u8> = iter.by_ref().take(2).collect();
                    bytes.push(u8::from_str_radix(std::str::from_utf8(&hex).ok()?, 16).ok()?);
                }
                other => bytes.push(other),
            }
        }
        String::from_utf8(bytes).ok()
    }
}
