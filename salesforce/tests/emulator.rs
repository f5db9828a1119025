//! The client against the sfpg emulator, a local org that speaks Salesforce's wire formats
//! and misbehaves on demand: the fault-injection behaviours of issue 4 (expired sessions,
//! 503s, lock contention, the daily limit, slow answers), the rate limiter as the server's
//! request log sees it, every login flow, and the operations on real data.

// As in `tests/http`, support code may unwrap.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::TryStreamExt;
use futures::future::BoxFuture;
use secrecy::{ExposeSecret, SecretString};
use serde_json::json;
use sfpg_emulator::http::{
    self as emulator, ConnectedApp, DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, DEFAULT_PASSWORD,
    DEFAULT_USERNAME, EmulatorConfig, FailureRule, Latency, LoggedRequest, OrgSource,
    RunningEmulator, Transport,
};
use sfpg_salesforce::{
    Client, ClientCredentials, Conditional, Config, Credentials, Error, ErrorClass, JwtBearer,
    Password, Priority, Rate, RateLimiter, Record, RefreshToken, RefreshTokenStore, RetryPolicy,
    SalesforceId, StoreError,
};

const TOKEN_PATH: &str = "/services/oauth2/token";

async fn start(records: usize) -> RunningEmulator {
    emulator::start(EmulatorConfig {
        org: OrgSource::Generated { records, seed: 7 },
        ..EmulatorConfig::default()
    })
    .await
    .unwrap()
}

fn quick_retries() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 4,
        initial_backoff: Duration::from_millis(10),
        max_backoff: Duration::from_millis(40),
        max_elapsed: Duration::from_secs(10),
    }
}

fn config(emulator: &RunningEmulator) -> Config {
    Config::new(emulator.login_url())
        .unwrap()
        .with_retry(quick_retries())
}

fn password() -> Password {
    Password::new(
        DEFAULT_CLIENT_ID,
        DEFAULT_CLIENT_SECRET,
        DEFAULT_USERNAME,
        DEFAULT_PASSWORD,
    )
}

fn client_with(config: Config, credentials: impl Into<Credentials>, rate: Rate) -> Client {
    Client::new(config, credentials, RateLimiter::new(rate)).unwrap()
}

fn client(emulator: &RunningEmulator) -> Client {
    client_with(
        config(emulator),
        password(),
        Rate::per_second(1000).unwrap(),
    )
}

/// API requests the emulator served, token requests excepted.
fn api_requests(emulator: &RunningEmulator) -> Vec<LoggedRequest> {
    emulator
        .requests(0)
        .into_iter()
        .filter(|r| r.path != TOKEN_PATH)
        .collect()
}

fn logins(emulator: &RunningEmulator) -> usize {
    emulator
        .requests(0)
        .iter()
        .filter(|r| r.path == TOKEN_PATH)
        .count()
}

fn record(value: serde_json::Value) -> Record {
    value.as_object().unwrap().clone()
}

// ---- faults ----

#[tokio::test]
async fn an_expired_session_logs_in_again_once_and_replays() {
    let emulator = start(0).await;
    let client = client(&emulator);
    client.describe_global().await.unwrap();
    assert!(emulator.revoke_sessions(None, false) >= 1);
    emulator.clear_requests();

    client.describe_global().await.unwrap();

    assert_eq!(logins(&emulator), 1);
    let requests = api_requests(&emulator);
    let statuses: Vec<Option<u16>> = requests.iter().map(|r| r.status).collect();
    assert_eq!(statuses, vec![Some(401), Some(200)]);
}

#[tokio::test]
async fn a_session_past_its_lifetime_is_renewed() {
    let emulator = start(0).await;
    emulator.set_session_lifetime(Duration::from_millis(300));
    let client = client(&emulator);
    client.describe_global().await.unwrap();
    tokio::time::sleep(Duration::from_millis(400)).await;
    client.describe_global().await.unwrap();
    assert_eq!(logins(&emulator), 2);
}

#[tokio::test]
async fn a_503_then_success() {
    let emulator = start(0).await;
    let client = client(&emulator);
    client.token().await.unwrap();
    emulator.fail_next(FailureRule::new(503, "SERVER_UNAVAILABLE"));
    client.describe_global().await.unwrap();
    let statuses: Vec<Option<u16>> = api_requests(&emulator).iter().map(|r| r.status).collect();
    assert_eq!(statuses, vec![Some(503), Some(200)]);
}

#[tokio::test]
async fn unable_to_lock_row_twice_then_success() {
    let emulator = start(0).await;
    let client = client(&emulator);
    let account = client.sobject("Account");
    let id = account
        .create(&record(json!({"Name": "Acme"})))
        .await
        .unwrap();
    emulator.clear_requests();
    emulator.fail_next(FailureRule::new(400, "UNABLE_TO_LOCK_ROW").times(2));

    account
        .update(&id, &record(json!({"Name": "Acme Corp"})))
        .await
        .unwrap();

    let requests = api_requests(&emulator);
    let statuses: Vec<Option<u16>> = requests.iter().map(|r| r.status).collect();
    assert_eq!(statuses, vec![Some(400), Some(400), Some(204)]);
    assert!(requests.iter().all(|r| r.method == "PATCH"));
    let read = account.get(&id, &["Name"]).await.unwrap();
    assert_eq!(read["Name"], "Acme Corp");
}

#[tokio::test]
async fn the_exhausted_daily_limit_is_a_limit_error_sent_once() {
    let emulator = start(0).await;
    let client = client(&emulator);
    client.token().await.unwrap();
    emulator.set_daily_api_limit(100);
    emulator.consume_api_requests(100);
    emulator.clear_requests();

    let error = client.describe_global().await.unwrap_err();

    assert_eq!(error.class(), ErrorClass::Limit, "{error}");
    assert_eq!(error.error_code(), Some("REQUEST_LIMIT_EXCEEDED"));
    assert_eq!(error.status().map(|s| s.as_u16()), Some(403));
    assert_eq!(api_requests(&emulator).len(), 1);
}

#[tokio::test]
async fn slow_answers_time_out_and_are_retried() {
    let emulator = start(0).await;
    let config = config(&emulator).with_request_timeout(Duration::from_millis(300));
    let client = client_with(config, password(), Rate::per_second(1000).unwrap());
    client.token().await.unwrap();

    // Slow but within the timeout: answered.
    emulator.set_latency(Some(Latency {
        fixed_ms: 100,
        ..Latency::default()
    }));
    client.describe_global().await.unwrap();

    // Slower than the timeout: each attempt times out, and the last error says so. (The
    // emulator logs a request when it answers it, so abandoned attempts are counted by time.)
    emulator.set_latency(Some(Latency {
        fixed_ms: 2_000,
        ..Latency::default()
    }));
    let started = std::time::Instant::now();
    let error = client.describe_global().await.unwrap_err();
    let elapsed = started.elapsed();
    assert!(error.is_timeout(), "{error}");
    assert_eq!(error.class(), ErrorClass::Retryable);
    // Four attempts of 300 ms, and backoffs of at most 10 + 20 + 40 ms between them.
    assert!(elapsed >= Duration::from_millis(1_200), "{elapsed:?}");
    assert!(
        elapsed < Duration::from_millis(1_200 + 70 + 500),
        "{elapsed:?}"
    );

    // A create that timed out may have happened: it is not sent again.
    let started = std::time::Instant::now();
    let error = client
        .sobject("Account")
        .create(&record(json!({"Name": "Acme"})))
        .await
        .unwrap_err();
    assert!(error.is_timeout(), "{error}");
    assert!(
        started.elapsed() < Duration::from_millis(600),
        "{:?}",
        started.elapsed()
    );
}

// ---- the rate limiter, seen from the server ----

#[tokio::test]
async fn twenty_background_requests_at_ten_per_second_and_an_interactive_one_in_the_middle() {
    let emulator = start(0).await;
    let rate = Rate::per_second(10).unwrap();
    let client = client_with(config(&emulator), password(), rate);
    client.token().await.unwrap();
    emulator.clear_requests();

    let background: Vec<_> = (0..20)
        .map(|_| {
            let client = client.clone();
            tokio::spawn(async move {
                client
                    .query("SELECT Id FROM Account")
                    .collect_records()
                    .await
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(950)).await;
    let issued: DateTime<Utc> = Utc::now();
    client
        .with_priority(Priority::Interactive)
        .query("SELECT Id FROM Contact")
        .collect_records()
        .await
        .unwrap();
    for task in background {
        task.await.unwrap().unwrap();
    }

    let requests = api_requests(&emulator);
    assert_eq!(requests.len(), 21);
    let is_interactive =
        |r: &LoggedRequest| r.query.as_deref().is_some_and(|q| q.contains("Contact"));
    let background_times: Vec<DateTime<Utc>> = requests
        .iter()
        .filter(|r| !is_interactive(r))
        .map(|r| r.time)
        .collect();
    let span = (*background_times.iter().max().unwrap() - *background_times.iter().min().unwrap())
        .to_std()
        .unwrap();
    assert!(
        span >= Duration::from_millis(1900),
        "20 background requests took {span:?}"
    );

    let position = requests.iter().position(is_interactive).unwrap();
    let waited = (requests[position].time - issued)
        .to_std()
        .unwrap_or_default();
    // One token interval, plus a little for the request to reach the server on a busy machine.
    assert!(
        waited <= rate.interval() + Duration::from_millis(50),
        "interactive waited {waited:?}"
    );
    // Background requests queued before it were still waiting when it went.
    let background_after = requests.len() - position - 1;
    assert!(
        background_after >= 8,
        "only {background_after} background requests after it"
    );
}

// ---- logging in ----

#[tokio::test]
async fn every_login_flow_over_tls() {
    let public_key = include_str!("fixtures/jwt_public_key.pem");
    let emulator = emulator::start(EmulatorConfig {
        transport: Transport::Https { cert_path: None },
        public_host: Some("localhost".to_owned()),
        apps: vec![ConnectedApp {
            client_id: DEFAULT_CLIENT_ID.to_owned(),
            client_secret: DEFAULT_CLIENT_SECRET.to_owned(),
            jwt_public_key_pem: Some(public_key.to_owned()),
            client_credentials_user: Some(DEFAULT_USERNAME.to_owned()),
            rotate_refresh_tokens: true,
        }],
        ..EmulatorConfig::default()
    })
    .await
    .unwrap();
    let config = config(&emulator).with_ca_certificates_pem(emulator.cert_pem().unwrap());
    let refresh_token = emulator
        .issue_refresh_token(DEFAULT_USERNAME, DEFAULT_CLIENT_ID)
        .unwrap();
    let flows: Vec<Credentials> = vec![
        password().into(),
        ClientCredentials::new(DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET).into(),
        JwtBearer::new(
            DEFAULT_CLIENT_ID,
            DEFAULT_USERNAME,
            include_str!("fixtures/jwt_private_key.pem"),
        )
        .unwrap()
        .into(),
        RefreshToken::new(DEFAULT_CLIENT_ID, refresh_token)
            .with_client_secret(DEFAULT_CLIENT_SECRET)
            .into(),
    ];
    for credentials in flows {
        let flow = credentials.flow();
        let client = client_with(config.clone(), credentials, Rate::per_second(1000).unwrap());
        let token = client
            .token()
            .await
            .unwrap_or_else(|e| panic!("{flow}: {e}"));
        assert_eq!(
            token.instance_url().as_str().trim_end_matches('/'),
            emulator.instance_url(),
            "{flow}"
        );
        assert_eq!(token.org_id(), Some(emulator.org_id()), "{flow}");
        client
            .describe_global()
            .await
            .unwrap_or_else(|e| panic!("{flow}: {e}"));
        // A rotated refresh token must be the one used next time.
        emulator.revoke_sessions(None, false);
        client
            .describe_global()
            .await
            .unwrap_or_else(|e| panic!("{flow} after revocation: {e}"));
    }

    // Without the emulator's certificate, TLS fails.
    let untrusting = client_with(
        Config::new(emulator.login_url())
            .unwrap()
            .with_retry(RetryPolicy::never()),
        password(),
        Rate::per_second(1000).unwrap(),
    );
    assert!(untrusting.token().await.unwrap_err().is_connect());
}

/// A refresh-token store in memory, counting saves.
#[derive(Default)]
struct MemoryStore {
    token: std::sync::Mutex<Option<String>>,
    saves: std::sync::atomic::AtomicUsize,
}

impl MemoryStore {
    fn holding(token: &str) -> Arc<MemoryStore> {
        let store = MemoryStore::default();
        *store.token.lock().unwrap() = Some(token.to_owned());
        Arc::new(store)
    }

    fn current(&self) -> String {
        self.token.lock().unwrap().clone().unwrap()
    }

    fn saves(&self) -> usize {
        self.saves.load(std::sync::atomic::Ordering::SeqCst)
    }
}

impl RefreshTokenStore for MemoryStore {
    fn save<'a>(
        &'a self,
        refresh_token: &'a SecretString,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        *self.token.lock().unwrap() = Some(refresh_token.expose_secret().to_owned());
        self.saves.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Box::pin(async { Ok(()) })
    }

    fn load(&self) -> BoxFuture<'_, Result<Option<SecretString>, StoreError>> {
        let token = self.token.lock().unwrap().clone().map(SecretString::from);
        Box::pin(async move { Ok(token) })
    }
}

/// With rotation, every refresh uses up the token it sent. Two clients of one org (the
/// sync's and the proxy's) and a restart all keep working only if each rotated token is
/// saved and a refused one is looked up again.
#[tokio::test]
async fn rotated_refresh_tokens_are_saved_and_shared_through_the_store() {
    let mut settings = EmulatorConfig::default();
    settings.apps[0].rotate_refresh_tokens = true;
    let emulator = emulator::start(settings).await.unwrap();
    let first = emulator
        .issue_refresh_token(DEFAULT_USERNAME, DEFAULT_CLIENT_ID)
        .unwrap();
    let store = MemoryStore::holding(&first);
    let client_of = |token: &str, store: Option<Arc<MemoryStore>>| {
        let client = client_with(
            config(&emulator),
            RefreshToken::new(DEFAULT_CLIENT_ID, token.to_owned()),
            Rate::per_second(1000).unwrap(),
        );
        if let Some(store) = store {
            client.keep_refresh_tokens_in(store);
        }
        client
    };
    let sync = client_of(&first, Some(Arc::clone(&store)));
    let proxy = client_of(&first, Some(Arc::clone(&store)));

    sync.describe_global().await.unwrap();
    assert_eq!(store.saves(), 1);
    let second = store.current();
    assert_ne!(second, first, "the rotated token was not saved");

    // The proxy still holds the first token, which Salesforce no longer takes: it finds
    // the second in the store, and saves the third it gets for it.
    proxy.describe_global().await.unwrap();
    assert_eq!(store.saves(), 2);
    let third = store.current();
    assert_ne!(third, second);

    // Sessions end; the sync's second token went with the proxy's refresh.
    emulator.revoke_sessions(None, false);
    sync.describe_global().await.unwrap();
    assert_eq!(store.saves(), 3);

    // After a restart, a client made from what is stored logs in.
    let restarted = client_of(&store.current(), Some(Arc::clone(&store)));
    restarted.describe_global().await.unwrap();
    assert_eq!(store.saves(), 4);

    // Without a store, a used-up token is an authentication error, as before.
    let forgetful = client_of(&first, None);
    let error = forgetful.describe_global().await.unwrap_err();
    assert_eq!(error.class(), ErrorClass::Auth, "{error}");
    assert!(error.to_string().contains("invalid_grant"), "{error}");
    // Nothing secret in the error.
    assert!(!error.to_string().contains(&first), "{error}");
}

#[tokio::test]
async fn wrong_credentials_are_an_auth_error_naming_the_flow() {
    let emulator = start(0).await;
    let wrong = Password::new(
        DEFAULT_CLIENT_ID,
        DEFAULT_CLIENT_SECRET,
        DEFAULT_USERNAME,
        "not-the-password",
    );
    let client = client_with(config(&emulator), wrong, Rate::per_second(1000).unwrap());
    let error = client.describe_global().await.unwrap_err();
    match &error {
        Error::Auth { flow, error, .. } => {
            assert_eq!(flow.to_string(), "username-password");
            assert_eq!(error, "invalid_grant");
        }
        other => panic!("not an Auth error: {other:?}"),
    }
    assert_eq!(logins(&emulator), 1);
    assert!(api_requests(&emulator).is_empty());
}

// ---- operations on real data ----

#[tokio::test]
async fn query_pages_through_the_org() {
    let emulator = start(0).await;
    let client = client(&emulator);
    let parent = client
        .sobject("Account")
        .create(&record(json!({"Name": "Parent"})))
        .await
        .unwrap();
    for batch in 0..3 {
        let contacts: Vec<Record> = (0..150)
            .map(|i| {
                record(json!({
                    "attributes": {"type": "Contact"},
                    "LastName": format!("Contact {batch}-{i}"),
                    "AccountId": parent.as_str(),
                }))
            })
            .collect();
        let results = client
            .collections()
            .all_or_none(true)
            .create(&contacts)
            .await
            .unwrap();
        assert!(results.iter().all(|r| r.success));
    }
    emulator.clear_requests();

    let pages: Vec<_> = client
        .query("SELECT Id, LastName, Account.Name FROM Contact")
        .batch_size(200)
        .pages()
        .try_collect()
        .await
        .unwrap();

    assert_eq!(pages[0].total_size, 450);
    assert!(pages.len() >= 2, "{} pages", pages.len());
    assert_eq!(pages.iter().map(|p| p.records.len()).sum::<usize>(), 450);
    assert!(pages.last().unwrap().done);
    let first = &pages[0].records[0];
    assert_eq!(first["attributes"]["type"], "Contact");
    assert_eq!(first["Account"]["Name"], "Parent");
    let requests = api_requests(&emulator);
    assert_eq!(requests.len(), pages.len());
    assert!(
        requests[1..]
            .iter()
            .all(|r| r.path.starts_with("/services/data/v62.0/query/") && r.query.is_none())
    );
    let (used, _) = emulator.api_usage();
    assert_eq!(client.api_usage().unwrap().api.used, used);
}

#[tokio::test]
async fn records_round_trip() {
    let emulator = start(0).await;
    let client = client(&emulator);
    let started = Utc::now() - chrono::Duration::minutes(1);
    let account = client.sobject("Account");

    let id = account
        .create(&record(json!({"Name": "Acme"})))
        .await
        .unwrap();
    assert_eq!(id.key_prefix(), "001");
    assert_eq!(account.get(&id, &[]).await.unwrap()["Name"], "Acme");
    account
        .update(&id, &record(json!({"Name": "Acme Corp"})))
        .await
        .unwrap();

    let invoices = client.sobject("Invoice__c");
    let fields = record(json!({"Account__c": id.as_str(), "Amount__c": 10}));
    let created = invoices
        .upsert("External_Id__c", "INV-1", &fields)
        .await
        .unwrap();
    assert!(created.created);
    let updated = invoices
        .upsert("External_Id__c", "INV-1", &fields)
        .await
        .unwrap();
    assert!(!updated.created);
    assert_eq!(updated.id, created.id);

    let window_end = Utc::now() + chrono::Duration::minutes(1);
    let updated = account.updated(started, window_end).await.unwrap();
    assert!(updated.ids.contains(&id), "{updated:?}");

    let invoice_id = created.id.unwrap();
    invoices.delete(&invoice_id).await.unwrap();
    let error = invoices.get(&invoice_id, &[]).await.unwrap_err();
    assert_eq!(error.error_code(), Some("ENTITY_IS_DELETED"), "{error}");
    let deleted = invoices.deleted(started, window_end).await.unwrap();
    assert!(
        deleted.deleted_records.iter().any(|d| d.id == invoice_id),
        "{deleted:?}"
    );
    let deleted = client
        .query_all(format!(
            "SELECT Id, IsDeleted FROM Invoice__c WHERE Id = '{invoice_id}'"
        ))
        .collect_records()
        .await
        .unwrap();
    assert_eq!(deleted[0]["IsDeleted"], true);
    let live = client
        .query(format!(
            "SELECT Id FROM Invoice__c WHERE Id = '{invoice_id}'"
        ))
        .collect_records()
        .await
        .unwrap();
    assert!(live.is_empty());
}

#[tokio::test]
async fn collections_all_or_none() {
    let emulator = start(0).await;
    let client = client(&emulator);
    let atomic = client.collections().all_or_none(true);

    let valid = record(json!({"attributes": {"type": "Account"}, "Name": "Acme"}));
    let missing_last_name = record(json!({"attributes": {"type": "Contact"}, "FirstName": "Ann"}));
    let results = atomic
        .create(&[valid.clone(), missing_last_name])
        .await
        .unwrap();
    assert!(results.iter().all(|r| !r.success && r.id.is_none()));
    assert_eq!(
        results[0].errors[0].status_code,
        "ALL_OR_NONE_OPERATION_ROLLED_BACK"
    );
    assert_eq!(results[1].errors[0].status_code, "REQUIRED_FIELD_MISSING");
    assert!(results[1].errors[0].fields.iter().any(|f| f == "LastName"));
    let none = client
        .query("SELECT Id FROM Account")
        .collect_records()
        .await
        .unwrap();
    assert!(none.is_empty(), "rolled back records stay unwritten");

    let contact = record(json!({"attributes": {"type": "Contact"}, "LastName": "Ng"}));
    let results = atomic.create(&[valid, contact]).await.unwrap();
    assert!(results.iter().all(|r| r.success));
    let ids: Vec<SalesforceId> = results.into_iter().map(|r| r.id.unwrap()).collect();

    let read = client
        .collections()
        .retrieve("Account", &ids[..1], &["Id", "Name"])
        .await
        .unwrap();
    assert_eq!(read[0].as_ref().unwrap()["Name"], "Acme");

    let renamed = record(
        json!({"attributes": {"type": "Account"}, "id": ids[0].as_str(), "Name": "Acme Corp"}),
    );
    assert!(atomic.update(&[renamed]).await.unwrap()[0].success);

    let deleted = atomic.delete(&ids).await.unwrap();
    assert!(deleted.iter().all(|r| r.success));
}

#[tokio::test]
async fn describe_and_versions() {
    let emulator = start(0).await;
    let client = client(&emulator);
    let versions = client.versions().await.unwrap();
    assert!(versions.iter().any(|v| v.version == "62.0"));

    let global = client.describe_global().await.unwrap();
    assert!(
        global
            .sobjects
            .iter()
            .any(|o| o.name == "Invoice__c" && o.custom)
    );

    let invoice = client.sobject("Invoice__c").describe().await.unwrap();
    let external = invoice.field("External_Id__c").unwrap();
    assert!(external.external_id && external.unique);
    assert!(invoice.field("Total__c").unwrap().calculated);

    let later = Utc::now() + chrono::Duration::minutes(1);
    let answer = client
        .sobject("Invoice__c")
        .describe_if_modified_since(later)
        .await
        .unwrap();
    assert_eq!(answer, Conditional::NotModified);
    let earlier = Utc::now() - chrono::Duration::days(3650);
    let answer = client
        .sobject("Invoice__c")
        .describe_if_modified_since(earlier)
        .await
        .unwrap();
    assert!(matches!(answer, Conditional::Modified(_)));
}

#[tokio::test]
async fn a_retrieve_of_more_than_200_ids_takes_calls_of_at_most_200_in_order() {
    let emulator = start(3000).await;
    let client = client(&emulator);
    let mut ids: Vec<SalesforceId> = client
        .query("SELECT Id FROM Contact ORDER BY Id DESC LIMIT 450")
        .collect_records()
        .await
        .unwrap()
        .iter()
        .map(|r| SalesforceId::parse(r["Id"].as_str().unwrap()).unwrap())
        .collect();
    assert_eq!(ids.len(), 450);
    // An Id that names no record keeps its place, as `None`.
    ids.insert(300, SalesforceId::parse("003000000000000AAA").unwrap());
    let before = api_requests(&emulator).len();

    let records = client
        .collections()
        .retrieve("Contact", &ids, &["Id", "LastName"])
        .await
        .unwrap();

    assert_eq!(records.len(), ids.len());
    for (id, record) in ids.iter().zip(&records) {
        match record {
            Some(record) => assert_eq!(record["Id"], id.as_str()),
            None => assert_eq!(id.as_str(), "003000000000000AAA"),
        }
    }
    assert!(records[300].is_none());
    let calls: Vec<usize> = api_requests(&emulator)[before..]
        .iter()
        .map(|r| {
            assert!(
                r.path.ends_with("/composite/sobjects/Contact"),
                "{}",
                r.path
            );
            let query = r.query.as_deref().unwrap_or_default();
            url::form_urlencoded::parse(query.as_bytes())
                .find(|(k, _)| k == "ids")
                .map_or(0, |(_, v)| v.split(',').count())
        })
        .collect();
    assert_eq!(calls, [200, 200, 51]);
}
