//! The state every handler shares: the org behind a lock, the sessions, the API usage,
//! the request log, the fault rules, the query locators, the Bulk API jobs, and the
//! configured apps and users.
//!
//! Every lock here is a plain `std::sync` lock taken for a short, synchronous critical
//! section and never held across an `.await`.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use jsonwebtoken::DecodingKey;

use super::bulk::BulkJobs;
use super::cometd::Clients;
use super::config::{ConnectedApp, UserLogin};
use super::faults::Faults;
use super::limits::ApiUsage;
use super::locators::Locators;
use super::query::OpenQuery;
use super::request_log::RequestLog;
use super::sessions::Sessions;
use crate::events::{EventBus, PlatformEventStore};
use crate::ids::Id;
use crate::org::Org;

pub type AppState = Arc<Shared>;

/// A connected app with its JWT key parsed once.
pub struct KnownApp {
    pub client_id: String,
    pub client_secret: String,
    pub jwt_key: Option<DecodingKey>,
    pub client_credentials_user: Option<String>,
    pub rotate_refresh_tokens: bool,
}

impl KnownApp {
    pub fn new(app: &ConnectedApp) -> Result<KnownApp, jsonwebtoken::errors::Error> {
        let jwt_key = app
            .jwt_public_key_pem
            .as_deref()
            .map(|pem| DecodingKey::from_rsa_pem(pem.as_bytes()))
            .transpose()?;
        Ok(KnownApp {
            client_id: app.client_id.clone(),
            client_secret: app.client_secret.clone(),
            jwt_key,
            client_credentials_user: app.client_credentials_user.clone(),
            rotate_refresh_tokens: app.rotate_refresh_tokens,
        })
    }
}

/// A configured user and the Id of its `User` record in the org.
#[derive(Debug, Clone)]
pub struct KnownUser {
    pub username: String,
    pub password: String,
    pub security_token: Option<String>,
    pub user_id: Id,
}

impl KnownUser {
    pub fn new(login: &UserLogin, user_id: Id) -> KnownUser {
        KnownUser {
            username: login.username.clone(),
            password: login.password.clone(),
            security_token: login.security_token.clone(),
            user_id,
        }
    }
}

pub struct Shared {
    org: RwLock<Org>,
    sessions: Mutex<Sessions>,
    usage: Mutex<ApiUsage>,
    log: Mutex<RequestLog>,
    faults: Mutex<Faults>,
    locators: Mutex<Locators<OpenQuery>>,
    bulk: Mutex<BulkJobs>,
    /// The org's change event bus (the org holds it too and publishes to it).
    bus: Arc<EventBus>,
    /// The org's platform event topics (the org holds them too and publishes to them).
    platform: Arc<PlatformEventStore>,
    cometd: Mutex<Clients>,
    /// The Pub/Sub API's open streams and generated schemas.
    pubsub: super::pubsub::Hub,
    apps: Vec<KnownApp>,
    users: Vec<KnownUser>,
    /// `https://127.0.0.1:8443`: where the REST API is.
    pub instance_url: String,
    /// Where the token endpoint is; the same host, as with a My Domain login.
    pub login_url: String,
    pub org_id: String,
}

/// The parts [`Shared`] is built from.
pub struct SharedParts {
    pub org: Org,
    pub sessions: Sessions,
    pub usage: ApiUsage,
    pub log: RequestLog,
    pub locators: Locators<OpenQuery>,
    pub bulk: BulkJobs,
    pub bus: Arc<EventBus>,
    pub cometd: Clients,
    pub apps: Vec<KnownApp>,
    pub users: Vec<KnownUser>,
    pub instance_url: String,
    pub org_id: String,
}

impl Shared {
    pub fn new(parts: SharedParts) -> Shared {
        let platform = parts.org.platform_events().clone();
        Shared {
            org: RwLock::new(parts.org),
            sessions: Mutex::new(parts.sessions),
            usage: Mutex::new(parts.usage),
            log: Mutex::new(parts.log),
            faults: Mutex::new(Faults::default()),
            locators: Mutex::new(parts.locators),
            bulk: Mutex::new(parts.bulk),
            bus: parts.bus,
            platform,
            cometd: Mutex::new(parts.cometd),
            pubsub: super::pubsub::Hub::default(),
            apps: parts.apps,
            users: parts.users,
            login_url: parts.instance_url.clone(),
            instance_url: parts.instance_url,
            org_id: parts.org_id,
        }
    }

    // A panic inside a critical section poisons the lock; the data is still the best
    // there is, and a server must keep serving, so poisoning is ignored.

    pub fn org(&self) -> RwLockReadGuard<'_, Org> {
        self.org.read().unwrap_or_else(PoisonError::into_inner)
    }

    /// The org for a write with no API origin (the admin API): its changes are
    /// published with an empty `changeOrigin` when the guard drops.
    pub fn org_mut(&self) -> OrgWrite<'_> {
        self.org_write(String::new())
    }

    /// The org for one transaction: the changes made through the guard are published,
    /// with `changeOrigin` = `origin`, when it drops (still under the lock).
    pub fn org_write(&self, origin: String) -> OrgWrite<'_> {
        OrgWrite {
            guard: self.org.write().unwrap_or_else(PoisonError::into_inner),
            origin,
        }
    }

    pub fn sessions(&self) -> MutexGuard<'_, Sessions> {
        lock(&self.sessions)
    }

    pub fn usage(&self) -> MutexGuard<'_, ApiUsage> {
        lock(&self.usage)
    }

    pub fn log(&self) -> MutexGuard<'_, RequestLog> {
        lock(&self.log)
    }

    pub fn faults(&self) -> MutexGuard<'_, Faults> {
        lock(&self.faults)
    }

    pub fn locators(&self) -> MutexGuard<'_, Locators<OpenQuery>> {
        lock(&self.locators)
    }

    /// The Bulk API jobs. Never take it while holding the org's lock, or the other way
    /// round: each is taken alone, briefly.
    pub fn bulk(&self) -> MutexGuard<'_, BulkJobs> {
        lock(&self.bulk)
    }

    pub fn bus(&self) -> &Arc<EventBus> {
        &self.bus
    }

    /// The platform event topics, readable without the org's lock.
    pub fn platform_events(&self) -> &Arc<PlatformEventStore> {
        &self.platform
    }

    /// The CometD clients. Never held while taking the org's lock; the bus's lock may be
    /// taken inside it (the org takes the bus's inside its own, never this one).
    pub fn cometd(&self) -> MutexGuard<'_, Clients> {
        lock(&self.cometd)
    }

    /// The Pub/Sub API's open streams and schemas (each behind its own short lock).
    pub fn pubsub(&self) -> &super::pubsub::Hub {
        &self.pubsub
    }

    pub fn app(&self, client_id: &str) -> Option<&KnownApp> {
        self.apps.iter().find(|a| a.client_id == client_id)
    }

    /// A configured user by username (usernames ignore case on Salesforce).
    pub fn user(&self, username: &str) -> Option<&KnownUser> {
        self.users
            .iter()
            .find(|u| u.username.eq_ignore_ascii_case(username))
    }

    /// The user whose password (followed by the security token, when one is set) this is.
    pub fn user_by_password(
        &self,
        username: Option<&str>,
        password: Option<&str>,
    ) -> Option<&KnownUser> {
        let user = self.user(username?)?;
        let password = password?;
        let expected_len =
            user.password.len() + user.security_token.as_ref().map_or(0, String::len);
        let matches = password.len() == expected_len
            && password.starts_with(user.password.as_str())
            && user
                .security_token
                .as_deref()
                .is_none_or(|t| password.ends_with(t));
        matches.then_some(user)
    }

    pub fn apps(&self) -> &[KnownApp] {
        &self.apps
    }

    pub fn users(&self) -> &[KnownUser] {
        &self.users
    }

    /// The audiences a JWT bearer assertion may name: Salesforce's login hosts and this
    /// emulator's own URL (as a My Domain login URL).
    pub fn jwt_audiences(&self) -> Vec<String> {
        let mut audiences = vec![
            "https://login.salesforce.com".to_owned(),
            "https://test.salesforce.com".to_owned(),
            self.login_url.clone(),
        ];
        audiences.dedup();
        audiences
    }

    /// `<login URL>/id/<orgId>/<userId>`, the identity URL a token response carries.
    pub fn identity_url(&self, user_id: &Id) -> String {
        format!("{}/id/{}/{}", self.login_url, self.org_id, user_id)
    }
}

/// The org's write lock, held for one transaction. Dropping it commits: the changes
/// are published to the event bus before the lock is let go, so no write can escape
/// Change Data Capture and replay order is commit order.
pub struct OrgWrite<'a> {
    guard: RwLockWriteGuard<'a, Org>,
    origin: String,
}

impl OrgWrite<'_> {
    /// Ends the transaction so far and starts another (a Bulk job's batches, one
    /// transaction each).
    pub fn commit(&mut self) {
        self.guard.commit_changes(&self.origin);
    }
}

impl std::ops::Deref for OrgWrite<'_> {
    type Target = Org;
    fn deref(&self) -> &Org {
        &self.guard
    }
}

impl std::ops::DerefMut for OrgWrite<'_> {
    fn deref_mut(&mut self) -> &mut Org {
        &mut self.guard
    }
}

impl Drop for OrgWrite<'_> {
    fn drop(&mut self) {
        self.guard.commit_changes(&self.origin);
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}
