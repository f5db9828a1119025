//! Logging in to an emulated org: `org add` checks the credentials and `org test`
//! reports the org; an unreachable Salesforce is not the user's fault; and every auth flow
//! is registered, logs in again from what is stored (a rotated refresh token is stored in
//! its predecessor's place), and is shown with its secrets masked.

use sfpg_emulator::http::{
    ConnectedApp, DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, DEFAULT_PASSWORD, DEFAULT_USERNAME,
    EmulatorConfig, RunningEmulator, Transport, start,
};
use sfpg_testkit::TestDatabase;

use super::{add_args, sfpg, sfpg_off_runtime, text, words};

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
    // A platform event, never queryable, is mirrored all the same: by its stream.
    let event = sfpg(
        &db,
        &["objects", "enable", "emu", "Order_Event__e", "--no-verify"],
    );
    assert!(event.status.success(), "{}", text(&event));

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
    assert!(
        out.lines()
            .any(|l| l.contains("Order_Event__e") && l.contains("platform event: subscribed to")),
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
const JWT_PUBLIC_KEY: &str = include_str!("../../salesforce/tests/fixtures/jwt_public_key.pem");
const JWT_PRIVATE_KEY: &str = include_str!("../../salesforce/tests/fixtures/jwt_private_key.pem");
/// A key the emulator's app does not trust.
const OTHER_PRIVATE_KEY: &str = include_str!("../../emulator/tests/fixtures/jwt-other-key.pem");

/// An org over HTTPS whose app trusts [`JWT_PUBLIC_KEY`] and rotates refresh tokens: each
/// refresh uses up the refresh token it sent.
async fn https_org() -> RunningEmulator {
    start(EmulatorConfig {
        transport: Transport::Https { cert_path: None },
        public_host: Some("localhost".to_owned()),
        apps: vec![ConnectedApp {
            client_id: DEFAULT_CLIENT_ID.to_owned(),
            client_secret: DEFAULT_CLIENT_SECRET.to_owned(),
            jwt_public_key_pem: Some(JWT_PUBLIC_KEY.to_owned()),
            client_credentials_user: Some(DEFAULT_USERNAME.to_owned()),
            rotate_refresh_tokens: true,
        }],
        ..EmulatorConfig::default()
    })
    .await
    .unwrap()
}

/// One org to register: its name, its flow, and the arguments after the name.
struct Flow {
    name: &'static str,
    flow: &'static str,
    args: Vec<String>,
}

/// An org of each flow on the org at `url`.
fn flows(url: &str, key_path: &str, refresh_token: &str) -> Vec<Flow> {
    let flow = |name, flow, line: String| Flow {
        name,
        flow,
        args: line.split_whitespace().map(str::to_owned).collect(),
    };
    let app = format!("--client-id {DEFAULT_CLIENT_ID}");
    let secret = format!("--client-secret {DEFAULT_CLIENT_SECRET}");
    let mut jwt = flow(
        "by_jwt",
        "jwt_bearer",
        format!("--login-url {url} --instance-url {url} {app} --username {DEFAULT_USERNAME}"),
    );
    // A path is one argument, whatever it holds.
    jwt.args
        .extend(["--jwt-key-file".to_owned(), key_path.to_owned()]);
    jwt.args.extend(["--objects".to_owned(), "Lead".to_owned()]);
    vec![
        flow(
            "by_password",
            "password",
            format!(
                "--login-url {url} {app} {secret} --username {DEFAULT_USERNAME} \
                 --password {DEFAULT_PASSWORD} --api-version 60.0 --schema pw_mirror \
                 --objects Account,Contact --batch-size 1000"
            ),
        ),
        flow(
            "by_client_credentials",
            "client_credentials",
            format!("--instance-url {url} {app} {secret}"),
        ),
        jwt,
        flow(
            "by_refresh_token",
            "refresh_token",
            format!("--instance-url {url} {app} {secret} --refresh-token {refresh_token}"),
        ),
    ]
}

/// Adds `flow`'s org with the emulator's CA and asserts that it logged in, was stored with
/// its flow, org id and CA, and that neither `org add` nor `org show` prints a secret.
async fn assert_added(
    db: &TestDatabase,
    emulator: &RunningEmulator,
    ca: &str,
    flow: &Flow,
    secrets: &[&str],
) {
    let Flow { name, flow, args } = flow;
    let mut add = vec!["org", "add", name, "--ca-cert", ca];
    add.extend(args.iter().map(String::as_str));
    let added = sfpg_off_runtime(db, &add).await;
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

    let row = db
        .connect()
        .await
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

    let shown = text(&sfpg_off_runtime(db, &["org", "show", name]).await);
    for secret in secrets {
        assert!(!shown.contains(secret), "{name}: a secret in:\n{shown}");
        assert!(!out.contains(secret), "{name}: a secret in:\n{out}");
    }
    assert!(shown.contains("ca certificate   custom"), "{shown}");
}

/// Asserts the settings stored for `by_password`, what `org show` masks for each flow,
/// and that `org list` names each org's flow.
async fn assert_settings_and_masks(db: &TestDatabase, flows: &[Flow]) {
    let row = db
        .connect()
        .await
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
        let shown = text(&sfpg_off_runtime(db, &["org", "show", name]).await);
        assert!(shown.contains(line), "{name}: no {line:?} in:\n{shown}");
    }
    let listed = text(&sfpg_off_runtime(db, &["org", "list"]).await);
    for Flow { name, flow, .. } in flows {
        assert!(
            listed
                .lines()
                .any(|l| l.starts_with(name) && l.contains(flow)),
            "{name} {flow}:\n{listed}"
        );
    }
}

/// The sealed key and token log in again later, from the database alone. The refresh
/// token given to `org add` was used up by its login, and each `org test` uses up the one
/// before: each time, the one Salesforce issued in its place was stored.
async fn assert_logins_from_what_is_stored(
    db: &TestDatabase,
    emulator: &RunningEmulator,
    refresh_token: &str,
) {
    let client = db.connect().await;
    let sealed = async |name: &str| {
        client
            .query_one(
                "SELECT sealed_credentials FROM sfpg.orgs WHERE name = $1",
                &[&name],
            )
            .await
            .unwrap()
            .get::<_, Vec<u8>>(0)
    };
    for name in ["by_jwt", "by_refresh_token", "by_refresh_token"] {
        let before = sealed(name).await;
        let tested = sfpg_off_runtime(db, &["org", "test", name]).await;
        assert!(tested.status.success(), "{name}: {}", text(&tested));
        assert!(text(&tested).contains(emulator.org_id()));
        assert!(!text(&tested).contains(refresh_token));
        assert_eq!(
            sealed(name).await != before,
            name == "by_refresh_token",
            "{name}: the stored credentials changed only with a rotated token"
        );
    }
}

/// Without the emulator's CA the TLS handshake fails, and a JWT signed by a key the app
/// does not know is refused as bad credentials: nothing is stored.
async fn assert_untrusted_logins_refused(db: &TestDatabase, url: &str, ca: &str) {
    let app = format!("--client-id {DEFAULT_CLIENT_ID}");
    let line = format!(
        "org add untrusted --instance-url {url} {app} --client-secret {DEFAULT_CLIENT_SECRET}"
    );
    let untrusted = sfpg_off_runtime(db, &words(&line)).await;
    assert!(!untrusted.status.success(), "{}", text(&untrusted));
    // (rustls also logs the refusal, at ERROR, above the command's own error line.)
    let err = String::from_utf8_lossy(&untrusted.stderr).into_owned();
    let last = err.trim().lines().last().unwrap_or_default();
    assert!(
        last.starts_with("error: cannot log in to org untrusted") && last.contains("UnknownIssuer"),
        "{err}"
    );
    let other_key =
        std::env::temp_dir().join(format!("sfpg-org-cli-other-{}.pem", std::process::id()));
    std::fs::write(&other_key, OTHER_PRIVATE_KEY).unwrap();
    let line =
        format!("org add wrong_key --instance-url {url} {app} --username {DEFAULT_USERNAME}");
    let mut args = words(&line);
    let other_key_path = other_key.to_str().unwrap();
    args.extend(["--jwt-key-file", other_key_path, "--ca-cert", ca]);
    let refused = sfpg_off_runtime(db, &args).await;
    let _ = std::fs::remove_file(&other_key);
    let err = String::from_utf8_lossy(&refused.stderr).into_owned();
    assert_eq!(refused.status.code(), Some(2), "{err}");
    assert!(
        err.contains("Salesforce refused the credentials of org wrong_key"),
        "{err}"
    );
    let stored: i64 = db
        .connect()
        .await
        .query_one(
            "SELECT count(*) FROM sfpg.orgs WHERE name IN ('untrusted', 'wrong_key')",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(stored, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn org_add_accepts_every_auth_flow_and_org_show_masks_the_secrets() {
    let emulator = https_org().await;
    let db = TestDatabase::create().await;
    let url = emulator.instance_url();
    let ca = emulator.cert_path().unwrap().to_str().unwrap().to_owned();
    let key_file =
        std::env::temp_dir().join(format!("sfpg-org-cli-jwt-{}.pem", std::process::id()));
    std::fs::write(&key_file, JWT_PRIVATE_KEY).unwrap();
    let refresh_token = emulator
        .issue_refresh_token(DEFAULT_USERNAME, DEFAULT_CLIENT_ID)
        .unwrap();
    let flows = flows(url, key_file.to_str().unwrap(), &refresh_token);
    let secrets = [
        DEFAULT_PASSWORD,
        DEFAULT_CLIENT_SECRET,
        refresh_token.as_str(),
        // A line from the middle of the private key.
        JWT_PRIVATE_KEY.lines().nth(3).unwrap(),
    ];
    for flow in &flows {
        assert_added(&db, &emulator, &ca, flow, &secrets).await;
    }
    assert_settings_and_masks(&db, &flows).await;
    assert_logins_from_what_is_stored(&db, &emulator, &refresh_token).await;
    assert_untrusted_logins_refused(&db, url, &ca).await;
    let _ = std::fs::remove_file(&key_file);
    emulator.shutdown().await;
}
