//! Bad input to the `sfpg` binary that is refused without asking Salesforce: URLs, API
//! versions, certificate and key files, database URLs, schema names, listen addresses. Each
//! exits with code 2 and one line on stderr that names the problem, stores nothing, and
//! never echoes a secret. Run against a throwaway PostgreSQL.

// Helpers of a test crate may unwrap: a failure should stop the test where it happened.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod cli_support;

use cli_support::{URL_PASSWORD, add, assert_refused, org_count, sfpg, temp_file};
use sfpg_emulator::http::{DEFAULT_CLIENT_ID, DEFAULT_USERNAME};
use sfpg_testkit::TestDatabase;

#[tokio::test]
async fn bad_urls_are_refused_before_anything_is_stored() {
    let db = TestDatabase::create().await;
    let with_password = format!("https://admin:{URL_PASSWORD}@acme.my.salesforce.com");
    let bad_port = format!("https://admin:{URL_PASSWORD}@acme.my.salesforce.com:99999");
    let cases: Vec<(&str, Vec<&str>, &[&str])> = vec![
        ("empty", vec!["--instance-url", ""], &["instance URL"]),
        (
            "not a URL",
            vec!["--instance-url", "not a url"],
            &["instance URL", "\"not a url\""],
        ),
        (
            "ftp",
            vec!["--instance-url", "ftp://acme.example"],
            &["instance URL", "ftp://acme.example", "http"],
        ),
        (
            "unclosed IPv6",
            vec!["--instance-url", "http://[::1"],
            &["instance URL", "http://[::1"],
        ),
        ("no host", vec!["--login-url", "https://"], &["login URL"]),
        (
            "bad instance URL beside a good login URL",
            vec![
                "--login-url",
                "https://login.salesforce.com",
                "--instance-url",
                "garbage",
            ],
            &["instance URL", "garbage"],
        ),
        (
            "a password in the URL",
            vec!["--instance-url", &with_password],
            &["instance URL", "user name or password"],
        ),
        (
            "a password in a URL that does not parse",
            vec!["--login-url", &bad_port],
            &["login URL", "acme.my.salesforce.com:99999"],
        ),
        (
            "a Pub/Sub endpoint of another scheme",
            vec![
                "--instance-url",
                "https://acme.my.salesforce.com",
                "--pubsub-endpoint",
                "ftp://pubsub.example:7443",
            ],
            &["--pubsub-endpoint", "is not a Pub/Sub endpoint"],
        ),
        (
            "a Pub/Sub endpoint with a path",
            vec![
                "--instance-url",
                "https://acme.my.salesforce.com",
                "--pubsub-endpoint",
                "https://pubsub.example:7443/eventbus",
            ],
            &["--pubsub-endpoint", "host:port"],
        ),
    ];
    for (case, flags, expected) in cases {
        // Checked before logging in, so with and without --no-verify alike.
        for verify in [false, true] {
            let mut flags = flags.clone();
            if !verify {
                flags.push("--no-verify");
            }
            let output = sfpg(&db, &add("bad", &flags)).await;
            assert_refused(&output, &format!("{case} (verify {verify})"), expected);
        }
    }
    assert_eq!(org_count(&db).await, 0);
}

/// `org add bad` with the JWT bearer flow and the key in `key_file`.
fn jwt_add(key_file: &str) -> Vec<&str> {
    vec![
        "org",
        "add",
        "bad",
        "--instance-url",
        "https://acme.my.salesforce.com",
        "--client-id",
        DEFAULT_CLIENT_ID,
        "--username",
        DEFAULT_USERNAME,
        "--jwt-key-file",
        key_file,
    ]
}

#[tokio::test]
async fn bad_api_versions_certificates_and_keys_are_refused() {
    let db = TestDatabase::create().await;
    let not_pem = temp_file("not-pem.txt", b"not a certificate\n");
    let binary = temp_file("binary.der", &[0x30, 0x82, 0xff, 0xfe, 0x00]);
    let not_key = temp_file("not-key.pem", b"not a key\n");
    let missing = "/nonexistent/sfpg-ca.pem";
    let (not_pem, binary, not_key) = (
        not_pem.to_str().unwrap(),
        binary.to_str().unwrap(),
        not_key.to_str().unwrap(),
    );
    let url = ["--instance-url", "https://acme.my.salesforce.com"];
    let cases: Vec<(&str, Vec<&str>, Vec<&str>)> = vec![
        (
            "api version abc",
            vec!["--api-version", "abc"],
            vec!["\"abc\" is not an API version"],
        ),
        (
            "api version 62",
            vec!["--api-version", "62"],
            vec!["\"62\" is not an API version"],
        ),
        (
            "missing CA certificate",
            vec!["--ca-cert", missing],
            vec!["cannot read the CA certificate", missing],
        ),
        (
            "CA certificate that is not PEM",
            vec!["--ca-cert", not_pem],
            vec!["CA certificate", not_pem, "no PEM certificate"],
        ),
        (
            "CA certificate that is not text",
            vec!["--ca-cert", binary],
            vec!["CA certificate", binary],
        ),
    ];
    let jwt_cases: Vec<(&str, Vec<&str>, Vec<&str>)> = vec![
        (
            "JWT key that is not a key",
            jwt_add(not_key),
            vec!["JWT", not_key, "private key"],
        ),
        (
            "missing JWT key",
            jwt_add("/nonexistent/sfpg-key.pem"),
            vec!["cannot read the JWT key file", "/nonexistent/sfpg-key.pem"],
        ),
    ];
    for verify in [false, true] {
        for (case, flags, expected) in &cases {
            let mut args = add("bad", &url);
            args.extend_from_slice(flags);
            if !verify {
                args.push("--no-verify");
            }
            let output = sfpg(&db, &args).await;
            assert_refused(&output, &format!("{case} (verify {verify})"), expected);
        }
        for (case, args, expected) in &jwt_cases {
            let mut args = args.clone();
            if !verify {
                args.push("--no-verify");
            }
            let output = sfpg(&db, &args).await;
            assert_refused(&output, &format!("{case} (verify {verify})"), expected);
        }
    }
    assert_eq!(org_count(&db).await, 0);
    for file in [not_pem, binary, not_key] {
        let _ = std::fs::remove_file(file);
    }
}

#[tokio::test]
async fn a_garbage_database_url_is_refused_by_every_command() {
    let db = TestDatabase::create().await;
    let secret_url = format!("postgres://sfpg:{URL_PASSWORD}@localhost:notaport/mirror");
    let commands: Vec<Vec<&str>> = vec![
        vec!["migrate"],
        vec!["status"],
        vec!["org", "list"],
        vec!["org", "show", "acme"],
        vec!["org", "test", "acme"],
        vec!["org", "remove", "acme"],
        vec![
            "org",
            "set-rate-limit",
            "acme",
            "--requests",
            "1",
            "--per",
            "1s",
        ],
        vec!["org", "set-budget", "acme", "--max-daily-share", "50%"],
        add(
            "acme",
            &[
                "--instance-url",
                "https://acme.my.salesforce.com",
                "--no-verify",
            ],
        ),
        vec!["objects", "enable", "acme", "Account", "--no-verify"],
        vec!["objects", "disable", "acme", "Account"],
        vec!["objects", "resync", "acme", "Account"],
        vec!["sync"],
        vec!["proxy", "--listen", "127.0.0.1:0"],
        vec!["run", "--listen", "127.0.0.1:0"],
    ];
    for url in ["garbage", "host=", "postgres://[::1", secret_url.as_str()] {
        for command in &commands {
            let mut args = command.clone();
            args.extend(["--database-url", url]);
            let output = sfpg(&db, &args).await;
            assert_refused(
                &output,
                &format!("{command:?} {url}"),
                &["invalid database URL"],
            );
        }
    }
}

#[tokio::test]
async fn bad_schema_names_listen_addresses_and_tls_files_are_refused() {
    let db = TestDatabase::create().await;
    let url = [
        "--instance-url",
        "https://acme.my.salesforce.com",
        "--no-verify",
    ];
    for (schema, expected) in [
        ("Bad-Schema", "invalid schema name \"Bad-Schema\""),
        ("pg_mirror", "invalid schema name \"pg_mirror\""),
        ("", "invalid schema name \"\""),
    ] {
        let mut args = add("acme", &url);
        args.extend(["--schema", schema]);
        assert_refused(&sfpg(&db, &args).await, schema, &[expected]);
    }
    assert_eq!(org_count(&db).await, 0);

    let not_pem = temp_file("tls-not-pem.txt", b"not a certificate\n");
    let not_pem = not_pem.to_str().unwrap();
    let cases: Vec<(Vec<&str>, Vec<&str>)> = vec![
        (vec!["--listen", "notanaddr"], vec!["--listen", "notanaddr"]),
        (
            vec!["--listen", "127.0.0.1:99999"],
            vec!["--listen", "127.0.0.1:99999"],
        ),
        (
            vec![
                "--listen",
                "127.0.0.1:0",
                "--tls-cert",
                "/nonexistent/cert.pem",
                "--tls-key",
                "/nonexistent/key.pem",
            ],
            vec!["/nonexistent/cert.pem"],
        ),
        (
            vec![
                "--listen",
                "127.0.0.1:0",
                "--tls-cert",
                not_pem,
                "--tls-key",
                not_pem,
            ],
            vec![not_pem],
        ),
    ];
    for command in ["proxy", "run"] {
        for (flags, expected) in &cases {
            let mut args = vec![command];
            args.extend_from_slice(flags);
            let output = sfpg(&db, &args).await;
            assert_refused(&output, &format!("{args:?}"), expected);
        }
    }
    let _ = std::fs::remove_file(not_pem);
}

#[tokio::test]
async fn a_heartbeat_that_cannot_hold_a_lease_is_refused() {
    let db = TestDatabase::create().await;
    let output = sfpg(&db, &["sync", "--heartbeat", "40s"]).await;
    assert_refused(
        &output,
        "sync --heartbeat 40s",
        &["--heartbeat (40s)", "--lease-ttl"],
    );
}
