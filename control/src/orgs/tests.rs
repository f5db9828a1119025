//! Tests of org records: round trips with sealed secrets, refusals, rotated refresh tokens.

use super::*;
use sfpg_testkit::TestDatabase;

fn acme() -> NewOrg {
    NewOrg {
        name: "acme".to_owned(),
        schema_name: "acme".to_owned(),
        auth_flow: AuthFlow::Password,
        login_url: "https://login.salesforce.com".to_owned(),
        instance_url: None,
        api_version: "62.0".to_owned(),
        client_id: "3MVG9-client".to_owned(),
        username: Some("integration@acme.example".to_owned()),
        secrets: OrgSecrets {
            client_secret: Some(SecretString::from("s3cr3t-client")),
            password: Some(SecretString::from("hunter2-password")),
            ..OrgSecrets::default()
        },
        ca_cert_pem: None,
        batch_size: 200,
        bulk_threshold: Some(DEFAULT_BULK_THRESHOLD),
        objects: vec!["Account".to_owned(), "Invoice__c".to_owned()],
        pubsub_endpoint: None,
    }
}

async fn migrated() -> (TestDatabase, tokio_postgres::Client) {
    let db = TestDatabase::create().await;
    let mut client = db.connect().await;
    crate::apply_control_schema(&mut client).await.unwrap();
    (db, client)
}

#[tokio::test]
async fn a_rotated_refresh_token_replaces_the_stored_one_only() {
    let (_db, mut client) = migrated().await;
    let key = MasterKey::generate();
    let mut new = acme();
    new.auth_flow = AuthFlow::RefreshToken;
    new.secrets.refresh_token = Some(SecretString::from("rt-first"));
    insert(&mut client, &new, &key).await.unwrap();

    save_refresh_token(&mut client, "acme", &SecretString::from("rt-second"), &key)
        .await
        .unwrap();
    let org = load(&client, "acme", &key).await.unwrap();
    let exposed = |s: &Option<SecretString>| s.as_ref().map(|s| s.expose_secret().to_owned());
    assert_eq!(
        exposed(&org.secrets.refresh_token).as_deref(),
        Some("rt-second")
    );
    assert_eq!(
        exposed(&org.secrets.client_secret).as_deref(),
        Some("s3cr3t-client")
    );
    let stored: Vec<u8> = client
        .query_one("SELECT sealed_credentials FROM sfpg.orgs", &[])
        .await
        .unwrap()
        .get(0);
    assert!(!String::from_utf8_lossy(&stored).contains("rt-second"));

    let missing = save_refresh_token(&mut client, "globex", &SecretString::from("x"), &key)
        .await
        .unwrap_err();
    assert!(matches!(missing, ControlError::NotFound(_)), "{missing}");
}

#[tokio::test]
async fn an_org_round_trips_with_its_secrets_sealed() {
    let (_db, mut client) = migrated().await;
    let key = MasterKey::generate();
    insert(&mut client, &acme(), &key).await.unwrap();

    let org = load(&client, "acme", &key).await.unwrap();
    assert_eq!(org.auth_flow, AuthFlow::Password);
    assert_eq!(org.rate_limit, RateLimit::default());
    assert_eq!(
        org.secrets.password.as_ref().map(|s| s.expose_secret()),
        Some("hunter2-password")
    );
    assert_eq!(
        enabled_objects(&client, "acme").await.unwrap(),
        ["Account", "Invoice__c"]
    );
    let tables: Vec<String> = client
        .query("SELECT table_name FROM sfpg.objects ORDER BY 1", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(tables, ["account", "invoice__c"]);

    // At rest, nothing of the secrets is readable.
    let stored: Vec<u8> = client
        .query_one("SELECT sealed_credentials FROM sfpg.orgs", &[])
        .await
        .unwrap()
        .get(0);
    let stored = String::from_utf8_lossy(&stored);
    assert!(!stored.contains("hunter2") && !stored.contains("s3cr3t"));
    // Nor in Debug output.
    let debug = format!("{org:?}");
    assert!(
        !debug.contains("hunter2") && !debug.contains("s3cr3t"),
        "{debug}"
    );

    // Another key cannot open them, and says so.
    let err = load(&client, "acme", &MasterKey::generate())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("cannot be opened"), "{err}");
}

#[tokio::test]
async fn bad_registrations_are_refused_and_change_nothing() {
    let (_db, mut client) = migrated().await;
    let key = MasterKey::generate();
    insert(&mut client, &acme(), &key).await.unwrap();

    let duplicate = insert(&mut client, &acme(), &key).await.unwrap_err();
    assert!(matches!(duplicate, ControlError::Exists(_)), "{duplicate}");

    let same_schema = NewOrg {
        name: "other".to_owned(),
        ..acme()
    };
    assert!(matches!(
        insert(&mut client, &same_schema, &key).await.unwrap_err(),
        ControlError::SchemaInUse { .. }
    ));

    client.batch_execute("CREATE SCHEMA billing").await.unwrap();
    let foreign_schema = NewOrg {
        name: "billing".to_owned(),
        schema_name: "billing".to_owned(),
        ..acme()
    };
    assert!(matches!(
        insert(&mut client, &foreign_schema, &key)
            .await
            .unwrap_err(),
        ControlError::SchemaTaken(_)
    ));

    for bad in ["Acme", "1acme", "ac-me", ""] {
        let new = NewOrg {
            name: bad.to_owned(),
            schema_name: "x".to_owned(),
            ..acme()
        };
        assert!(matches!(
            insert(&mut client, &new, &key).await.unwrap_err(),
            ControlError::InvalidName(_)
        ));
    }
    let new = NewOrg {
        name: "big".to_owned(),
        schema_name: "big".to_owned(),
        batch_size: 5000,
        ..acme()
    };
    assert!(matches!(
        insert(&mut client, &new, &key).await.unwrap_err(),
        ControlError::BatchSize(5000)
    ));

    let orgs: i64 = client
        .query_one("SELECT count(*) FROM sfpg.orgs", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(orgs, 1);
}
