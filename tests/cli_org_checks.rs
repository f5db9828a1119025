//! Bad input to the `sfpg` binary that only the org can tell: an API version it does not
//! serve, objects it does not have or cannot mirror. `org add` and `objects enable` refuse
//! them with exit code 2 and the closest names the org has; and a password inside a stored
//! URL is never shown. Run against the emulator and a throwaway PostgreSQL.

// Helpers of a test crate may unwrap: a failure should stop the test where it happened.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod cli_support;

use cli_support::{URL_PASSWORD, add, assert_refused, org_count, sfpg, stderr};
use sfpg_emulator::http::{
    DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, DEFAULT_USERNAME, EmulatorConfig, OrgSource,
    RunningEmulator, start,
};
use sfpg_testkit::TestDatabase;

/// An emulator whose org also has `Log__c`, which is not replicateable.
async fn emulator() -> RunningEmulator {
    let mut org = sfpg_emulator::org::Org::new().unwrap();
    let mut log = sfpg_emulator::model::ObjectDef::from_json(
        r#"{"name": "Log__c", "label": "Log", "labelPlural": "Logs", "keyPrefix": "a0L",
            "replicateable": false, "fields": []}"#,
    )
    .unwrap();
    log.custom = true;
    org.define_object(log).unwrap();
    start(EmulatorConfig {
        org: OrgSource::Given(Box::new(org)),
        ..EmulatorConfig::default()
    })
    .await
    .unwrap()
}

/// `org add` flags the org at hand refuses: what the case is, the flags, and what the
/// refusal must say.
const REFUSED_FLAGS: &[(&str, &[&str], &[&str])] = &[
    (
        "a version from the future",
        &["--api-version", "99.0"],
        &["API version 99.0", "31.0", "62.0"],
    ),
    (
        "a retired version",
        &["--api-version", "30.0"],
        &["API version 30.0", "31.0", "62.0"],
    ),
    (
        "a misspelt object",
        &["--objects", "Account,Invoce__c"],
        &[
            "Invoce__c is not an object of org emu",
            "closest",
            "Invoice__c",
        ],
    ),
    (
        "an object the org lacks",
        &["--objects", "NoSuch__c"],
        &["NoSuch__c is not an object of org emu", "closest"],
    ),
    (
        "an object that cannot be mirrored",
        &["--objects", "Log__c"],
        &["Log__c", "not replicateable"],
    ),
    (
        "only commas",
        &["--objects", ",,,"],
        &["--objects", "empty"],
    ),
    (
        "an empty item",
        &["--objects", "Account,,Contact"],
        &["--objects", "empty"],
    ),
    (
        "not an API name",
        &["--objects", "Lead; DROP TABLE x"],
        &["\"Lead; DROP TABLE x\" is not an object API name"],
    ),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn org_add_refuses_an_api_version_or_objects_the_org_does_not_have() {
    let emulator = emulator().await;
    let db = TestDatabase::create().await;
    let url = emulator.login_url();
    for (case, flags, expected) in REFUSED_FLAGS {
        let mut args = add("emu", &["--login-url", url]);
        args.extend_from_slice(flags);
        let output = sfpg(&db, &args).await;
        assert_refused(&output, case, expected);
    }
    // The syntax of names is checked without logging in too.
    for objects in [",,,", "Lead; DROP TABLE x", "Account,"] {
        let output = sfpg(
            &db,
            &add(
                "emu",
                &["--login-url", url, "--objects", objects, "--no-verify"],
            ),
        )
        .await;
        assert_refused(&output, objects, &["--objects"]);
    }
    assert_eq!(org_count(&db).await, 0);

    // Names are matched as Salesforce does, whatever their case, and stored in the org's
    // own spelling.
    let added = sfpg(
        &db,
        &add(
            "emu",
            &["--login-url", url, "--objects", "account, INVOICE__C"],
        ),
    )
    .await;
    assert!(added.status.success(), "{}", stderr(&added));
    assert_eq!(enabled_objects(&db, "emu").await, ["Account", "Invoice__c"]);

    // An org stored at a version the org stopped serving: `org test` says which it serves.
    db.connect()
        .await
        .execute("UPDATE sfpg.orgs SET api_version = '30.0'", &[])
        .await
        .unwrap();
    let tested = sfpg(&db, &["org", "test", "emu"]).await;
    assert_refused(
        &tested,
        "org test",
        &["org emu does not serve API version 30.0: it serves 31.0 to 62.0"],
    );
    emulator.shutdown().await;
}

async fn enabled_objects(db: &TestDatabase, org: &str) -> Vec<String> {
    db.connect()
        .await
        .query(
            "SELECT object_name FROM sfpg.objects WHERE org_name = $1 AND enabled ORDER BY 1",
            &[&org],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn objects_enable_checks_the_names_against_the_org() {
    let emulator = emulator().await;
    let db = TestDatabase::create().await;
    let added = sfpg(&db, &add("emu", &["--login-url", emulator.login_url()])).await;
    assert!(added.status.success(), "{}", stderr(&added));

    let cases: Vec<(Vec<&str>, &[&str])> = vec![
        (
            vec!["objects", "enable", "emu", "Lead; DROP TABLE x"],
            &["\"Lead; DROP TABLE x\" is not an object API name"],
        ),
        (
            vec![
                "objects",
                "enable",
                "emu",
                "Lead; DROP TABLE x",
                "--no-verify",
            ],
            &["\"Lead; DROP TABLE x\" is not an object API name"],
        ),
        (vec!["objects", "enable", "emu", ""], &["empty"]),
        (
            vec!["objects", "enable", "emu", "Lead", "NoSuch__c"],
            &["NoSuch__c is not an object of org emu", "closest"],
        ),
        (
            vec!["objects", "enable", "emu", "Opportunty"],
            &["Opportunty is not an object of org emu", "Opportunity"],
        ),
        (
            vec!["objects", "enable", "emu", "Log__c"],
            &["Log__c", "not replicateable"],
        ),
    ];
    for (args, expected) in cases {
        let output = sfpg(&db, &args).await;
        assert_refused(&output, &format!("{args:?}"), expected);
    }
    // Nothing was enabled by a refused command, not even its good names.
    assert!(enabled_objects(&db, "emu").await.is_empty());

    let enabled = sfpg(&db, &["objects", "enable", "emu", "lead", "Invoice__c"]).await;
    assert!(enabled.status.success(), "{}", stderr(&enabled));
    // --no-verify registers a well-formed name without asking the org.
    let unchecked = sfpg(
        &db,
        &["objects", "enable", "emu", "Later__c", "--no-verify"],
    )
    .await;
    assert!(unchecked.status.success(), "{}", stderr(&unchecked));
    assert_eq!(
        enabled_objects(&db, "emu").await,
        ["Invoice__c", "Later__c", "Lead"]
    );
    emulator.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_password_in_a_stored_url_is_never_shown() {
    let emulator = emulator().await;
    let db = TestDatabase::create().await;
    let added = sfpg(&db, &add("emu", &["--login-url", emulator.login_url()])).await;
    assert!(added.status.success(), "{}", stderr(&added));
    // An org registered before URLs with a user name and password were refused.
    let port = emulator.local_addr().port();
    let client = db.connect().await;
    client
        .execute(
            "UPDATE sfpg.orgs SET login_url = $1, instance_url = $2",
            &[
                &format!("http://admin:{URL_PASSWORD}@127.0.0.1:{port}"),
                &format!("http://admin:{URL_PASSWORD}@127.0.0.1:{port}/"),
            ],
        )
        .await
        .unwrap();
    for args in [
        &["org", "show", "emu"][..],
        &["org", "list"],
        &["status"],
        &["status", "--json"],
        &["org", "test", "emu"],
    ] {
        let output = sfpg(&db, args).await;
        let all = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            stderr(&output)
        );
        assert!(output.status.success(), "{args:?}: {all}");
        assert!(!all.contains(URL_PASSWORD), "{args:?}: {all}");
    }
    let shown = sfpg(&db, &["org", "show", "emu"]).await;
    let shown = String::from_utf8_lossy(&shown.stdout).into_owned();
    assert!(
        shown.contains(&format!("login url        http://***@127.0.0.1:{port}")),
        "{shown}"
    );

    // Where Salesforce cannot be reached, the error names the URL without its password.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    client
        .execute(
            "UPDATE sfpg.orgs SET login_url = $1",
            &[&format!("http://admin:{URL_PASSWORD}@127.0.0.1:{closed}")],
        )
        .await
        .unwrap();
    let unreachable = sfpg(&db, &["org", "test", "emu"]).await;
    let err = stderr(&unreachable);
    assert_eq!(unreachable.status.code(), Some(1), "{err}");
    assert!(err.contains(&format!("127.0.0.1:{closed}")), "{err}");
    assert!(!err.contains(URL_PASSWORD), "{err}");
    emulator.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refusal_after_a_rotating_login_says_the_refresh_token_is_spent() {
    use sfpg_emulator::http::ConnectedApp;

    let emulator = start(EmulatorConfig {
        apps: vec![ConnectedApp {
            client_id: DEFAULT_CLIENT_ID.to_owned(),
            client_secret: DEFAULT_CLIENT_SECRET.to_owned(),
            jwt_public_key_pem: None,
            client_credentials_user: None,
            rotate_refresh_tokens: true,
        }],
        ..EmulatorConfig::default()
    })
    .await
    .unwrap();
    let db = TestDatabase::create().await;
    let refresh_token = emulator
        .issue_refresh_token(DEFAULT_USERNAME, DEFAULT_CLIENT_ID)
        .unwrap();
    let args = |objects| {
        vec![
            "org",
            "add",
            "emu",
            "--login-url",
            emulator.login_url(),
            "--client-id",
            DEFAULT_CLIENT_ID,
            "--refresh-token",
            refresh_token.as_str(),
            "--objects",
            objects,
        ]
    };
    let refused = sfpg(&db, &args("NoSuch__c")).await;
    assert_refused(
        &refused,
        "rotated",
        &[
            "logging in used up the refresh token given",
            "NoSuch__c is not an object of org emu",
        ],
    );
    assert!(!stderr(&refused).contains(&refresh_token));
    // As it said: the token given no longer logs in.
    let again = sfpg(&db, &args("Account")).await;
    assert_refused(
        &again,
        "spent token",
        &["Salesforce refused the credentials"],
    );
    assert_eq!(org_count(&db).await, 0);
    emulator.shutdown().await;
}
