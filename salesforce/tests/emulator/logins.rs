//! Every login flow over TLS, rotated refresh tokens saved and shared through a store, and
//! wrong credentials.

use super::*;

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

#[tokio::test]
async fn every_login_flow_over_tls() {
    let public_key = include_str!("../fixtures/jwt_public_key.pem");
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
            include_str!("../fixtures/jwt_private_key.pem"),
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

/// A store that takes a while to save, as a database write may: between Salesforce
/// rotating the token and the store holding the new one, another client finds only the
/// token just used up.
struct SlowStore {
    inner: Arc<MemoryStore>,
    saving: Arc<tokio::sync::Notify>,
}

impl RefreshTokenStore for SlowStore {
    fn save<'a>(
        &'a self,
        refresh_token: &'a SecretString,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            self.saving.notify_one();
            tokio::time::sleep(Duration::from_millis(700)).await;
            self.inner.save(refresh_token).await
        })
    }

    fn load(&self) -> BoxFuture<'_, Result<Option<SecretString>, StoreError>> {
        self.inner.load()
    }
}

/// Two clients refresh at once: the one Salesforce refuses waits for the other's rotated
/// token to be saved, instead of failing in the moment between the rotation and the save.
#[tokio::test]
async fn a_refresh_refused_during_another_clients_rotation_waits_for_its_save() {
    let mut settings = EmulatorConfig::default();
    settings.apps[0].rotate_refresh_tokens = true;
    let emulator = emulator::start(settings).await.unwrap();
    let first = emulator
        .issue_refresh_token(DEFAULT_USERNAME, DEFAULT_CLIENT_ID)
        .unwrap();
    let store = MemoryStore::holding(&first);
    let saving = Arc::new(tokio::sync::Notify::new());
    let slow = Arc::new(SlowStore {
        inner: Arc::clone(&store),
        saving: Arc::clone(&saving),
    });
    let client_of = |store: Arc<dyn RefreshTokenStore>| {
        let client = client_with(
            config(&emulator),
            RefreshToken::new(DEFAULT_CLIENT_ID, first.clone()),
            Rate::per_second(1000).unwrap(),
        );
        client.keep_refresh_tokens_in(store);
        client
    };
    let sync = client_of(slow);
    let proxy = client_of(Arc::clone(&store) as Arc<dyn RefreshTokenStore>);

    let rotating = tokio::spawn(async move { sync.describe_global().await.map(|_| ()) });
    // Salesforce has rotated the first token; the store still holds it.
    saving.notified().await;
    assert_eq!(store.current(), first);
    proxy
        .describe_global()
        .await
        .expect("the proxy's refresh found the token the sync was saving");
    rotating.await.unwrap().unwrap();
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
