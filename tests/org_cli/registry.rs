//! Registering and changing orgs and their objects, offline: `org add` with
//! `--no-verify` stores the org with sealed credentials; `list`, `show`, the rate and the
//! budget, enabling and disabling objects, removing an org; refusals that change nothing;
//! and the master key file.

use sfpg_testkit::TestDatabase;
use sfpg_testkit::binary::assert_refused;
use sfpg_testkit::world::MASTER_KEY_BASE64;

use super::{SFPG, sfpg, text, words};

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
    // acme.my.salesforce.com is not reachable from a test; the `logins` tests check the
    // login at registration.
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
        assert_refused(&output, &format!("{args:?}"), &[expected]);
        let err = String::from_utf8_lossy(&output.stderr);
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
        &words("org set-rate-limit acme --requests 100 --per 1m"),
    );
    assert!(changed.status.success(), "{}", text(&changed));
    let changed = sfpg(
        &db,
        &["org", "set-budget", "acme", "--max-daily-share", "50%"],
    );
    assert!(changed.status.success(), "{}", text(&changed));

    let show = text(&sfpg(&db, &["org", "show", "acme"]));
    assert!(show.contains("bulk threshold   50000 records"), "{show}");
    let changed = sfpg(&db, &["org", "set-bulk-threshold", "acme", "1_000"]);
    assert!(changed.status.success(), "{}", text(&changed));
    let refused = sfpg(&db, &["org", "set-bulk-threshold", "acme", "0"]);
    assert_eq!(refused.status.code(), Some(2), "{}", text(&refused));
    assert!(
        text(&refused).contains("at least 1, or off"),
        "{}",
        text(&refused)
    );

    let show = sfpg(&db, &["org", "show", "acme"]);
    assert!(show.status.success(), "{}", text(&show));
    let show = text(&show);
    for expected in [
        "rate limit       100 request(s) per 1m",
        "daily budget     50% of the org's API allocation",
        "bulk threshold   1000 records",
        "password         ********",
        "client secret    ********",
        "refresh token    -",
        "Invoice__c",
    ] {
        assert!(show.contains(expected), "missing {expected:?} in:\n{show}");
    }
    assert!(!show.contains("password-value") && !show.contains("client-secret-value"));

    let off = sfpg(&db, &["org", "set-bulk-threshold", "acme", "off"]);
    assert!(
        text(&off).contains("Bulk API 2.0 off, REST only"),
        "{}",
        text(&off)
    );
    let show = text(&sfpg(&db, &["org", "show", "acme"]));
    assert!(show.contains("bulk threshold   off"), "{show}");
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
    let cases = [
        ("org show ghost", "no org named ghost"),
        ("org remove ghost", "no org named ghost"),
        ("org test ghost", "no org named ghost"),
        (
            "org set-rate-limit ghost --requests 5 --per 1s",
            "no org named ghost",
        ),
        (
            "org set-budget ghost --max-daily-share 50%",
            "no org named ghost",
        ),
        ("objects enable ghost Account", "no org named ghost"),
        ("objects resync ghost Account", "no org named ghost"),
        ("status ghost", "no org named ghost"),
        (
            "org set-rate-limit acme --requests 0 --per 3s",
            "--requests must be at least 1",
        ),
        (
            "org set-rate-limit acme --requests -2 --per 3s",
            "--requests must be at least 1",
        ),
        (
            "org set-rate-limit acme --requests 1 --per often",
            "is not a duration",
        ),
        (
            "org set-budget acme --max-daily-share 180%",
            "must be a percentage",
        ),
        ("objects disable acme Case", "org acme has no object Case"),
        ("org set-rate-limit acme --per 3s", "--requests"),
        ("objects resync acme Case", "org acme has no object Case"),
        (
            "org set-budget acme --max-daily-share 0%",
            "must be a percentage",
        ),
    ];
    for (line, expected) in cases {
        assert_refused(&sfpg(&db, &words(line)), line, &[expected]);
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
        let mut command = SFPG.command(&db, args);
        command
            .env("SFPG_MASTER_KEY_FILE", &key_file)
            .env_remove("SFPG_MASTER_KEY");
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
    let wrong = with_key_file(&["org", "show", "acme"], Some(MASTER_KEY_BASE64));
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

    // A command that only opens credentials makes no key where there is none: it says
    // which key it needs, and leaves nothing behind.
    std::fs::remove_file(&key_file).unwrap();
    let keyless = with_key_file(&["org", "show", "acme"], None);
    assert!(!keyless.status.success());
    let err = String::from_utf8_lossy(&keyless.stderr).into_owned();
    assert!(
        err.contains(&format!("no master key at {}", key_file.display())),
        "{err}"
    );
    assert!(err.contains("SFPG_MASTER_KEY_FILE"), "{err}");
    assert!(!key_file.exists(), "a key was made by a read");
    let _ = std::fs::remove_dir_all(&dir);
}
