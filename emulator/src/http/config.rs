//! What an emulator is started with: where it listens, how it speaks (HTTPS or plain
//! HTTP), its connected apps and users, its limits, and the data it starts with.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::org::Org;

/// A connected app: the OAuth client that logs in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectedApp {
    /// The consumer key (`client_id`; the `iss` of a JWT bearer assertion).
    pub client_id: String,
    /// The consumer secret (`client_secret`).
    pub client_secret: String,
    /// The certificate's public key (PEM) that verifies JWT bearer assertions; without it
    /// the app cannot use the JWT bearer flow.
    pub jwt_public_key_pem: Option<String>,
    /// The username the client-credentials flow runs as; without it the app cannot use
    /// that flow.
    pub client_credentials_user: Option<String>,
    /// Issue a new refresh token on every refresh and invalidate the old one, as apps
    /// with refresh-token rotation do.
    pub rotate_refresh_tokens: bool,
}

/// A user who can log in with the password flow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserLogin {
    pub username: String,
    pub password: String,
    /// When set, the password flow needs `password` immediately followed by this token,
    /// as Salesforce requires from outside trusted IP ranges.
    pub security_token: Option<String>,
}

/// Whether the emulator speaks HTTPS (with a certificate generated at start) or plain HTTP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transport {
    /// Plain HTTP, for tests on loopback.
    Http,
    /// HTTPS with a self-signed certificate, whose PEM is written to `cert_path` (by
    /// default a file in the system's temporary directory, named after the port).
    Https { cert_path: Option<PathBuf> },
}

/// Where the org's data comes from.
pub enum OrgSource {
    /// The standard object definitions and `records` generated records from `seed`.
    Generated { records: usize, seed: u64 },
    /// The standard object definitions, `each` Accounts, `each` Contacts and `each`
    /// Opportunities (one of each per Account) and the few users who own them, from `seed`.
    Each { each: usize, seed: u64 },
    /// An org built by the caller.
    Given(Box<Org>),
}

impl std::fmt::Debug for OrgSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            OrgSource::Generated { records, seed } => f
                .debug_struct("Generated")
                .field("records", records)
                .field("seed", seed)
                .finish(),
            OrgSource::Each { each, seed } => f
                .debug_struct("Each")
                .field("each", each)
                .field("seed", seed)
                .finish(),
            OrgSource::Given(_) => f.write_str("Given(..)"),
        }
    }
}

/// Everything [`start`](super::start) needs. `Default` gives a plain-HTTP emulator on a
/// free loopback port with one app, one user and an empty org (standard objects, no
/// records): what most tests want.
#[derive(Debug)]
pub struct EmulatorConfig {
    pub listen: SocketAddr,
    pub transport: Transport,
    /// Where the Pub/Sub API (gRPC) listens; by default a free port on the REST address.
    pub pubsub_listen: Option<SocketAddr>,
    /// How long a Pub/Sub stream without events waits before an empty keepalive batch
    /// (Salesforce: within 270 s).
    pub pubsub_keepalive: Duration,
    /// How long a Pub/Sub stream with nothing requested stays open (Salesforce: 60 s).
    pub pubsub_idle_close: Duration,
    /// The host name written into `instance_url` and the certificate, when the listening
    /// address is not what clients should use (e.g. a container's service name). By
    /// default the listening IP, or `127.0.0.1` when listening on every interface.
    pub public_host: Option<String>,
    pub apps: Vec<ConnectedApp>,
    pub users: Vec<UserLogin>,
    /// How long an access token works; afterwards every call gets 401 INVALID_SESSION_ID.
    pub session_lifetime: Duration,
    /// The org's daily API allocation (`DailyApiRequests.Max`).
    pub daily_api_limit: u64,
    /// How long a query locator stays usable after it was last used.
    pub query_locator_lifetime: Duration,
    /// How many requests the request log keeps (the oldest go first).
    pub request_log_capacity: usize,
    /// How long a Bulk API job takes from `UploadComplete` to its end: half of it
    /// queued, half `InProgress`. Tests may set zero.
    pub bulk_processing_delay: Duration,
    /// The entities selected for Change Data Capture (`all`, `none`, or a list).
    pub cdc_entities: crate::events::Selection,
    /// How long change events stay replayable (Salesforce: 72 hours).
    pub event_retention: Duration,
    /// The changes one transaction publishes before the rest become `GAP_OVERFLOW`.
    pub cdc_overflow_threshold: usize,
    /// How long a CometD `/meta/connect` is held when no event comes (Salesforce: 110 s).
    pub cometd_connect_timeout: Duration,
    /// How long a CometD client lives without a connect (Salesforce: 40 s).
    pub cometd_client_timeout: Duration,
    pub org: OrgSource,
    /// How many orgs to serve (at least one). Org 1 has the configured apps, users and
    /// data; org `n` the same apps and users with `org{n}` in their names, and data
    /// generated from the seed plus `n - 1` (see `http::orgs`). A given org
    /// ([`OrgSource::Given`]) can only be the one org.
    pub orgs: usize,
}

/// How long a Bulk API job takes by default: long enough for a client to see
/// `UploadComplete` and `InProgress`, short enough for a demo.
pub const DEFAULT_BULK_PROCESSING_DELAY: Duration = Duration::from_millis(500);

/// The default connected app's consumer key.
pub const DEFAULT_CLIENT_ID: &str = "3MVG9sfpgEmulatorConsumerKey";
/// The default connected app's consumer secret.
pub const DEFAULT_CLIENT_SECRET: &str = "sfpg-emulator-consumer-secret";
/// The default user.
pub const DEFAULT_USERNAME: &str = "admin@sfpg.example";
/// The default user's password.
pub const DEFAULT_PASSWORD: &str = "sfpg-emulator-password";

impl Default for EmulatorConfig {
    fn default() -> EmulatorConfig {
        EmulatorConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            transport: Transport::Http,
            pubsub_listen: None,
            pubsub_keepalive: super::pubsub::DEFAULT_KEEPALIVE,
            pubsub_idle_close: super::pubsub::DEFAULT_IDLE_CLOSE,
            public_host: None,
            apps: vec![ConnectedApp {
                client_id: DEFAULT_CLIENT_ID.to_owned(),
                client_secret: DEFAULT_CLIENT_SECRET.to_owned(),
                jwt_public_key_pem: None,
                client_credentials_user: Some(DEFAULT_USERNAME.to_owned()),
                rotate_refresh_tokens: false,
            }],
            users: vec![UserLogin {
                username: DEFAULT_USERNAME.to_owned(),
                password: DEFAULT_PASSWORD.to_owned(),
                security_token: None,
            }],
            // Salesforce's default session timeout.
            session_lifetime: Duration::from_secs(2 * 60 * 60),
            daily_api_limit: 15_000,
            // Query results live two days since the API 56.0 cursor changes.
            query_locator_lifetime: Duration::from_secs(2 * 24 * 60 * 60),
            request_log_capacity: 100_000,
            bulk_processing_delay: DEFAULT_BULK_PROCESSING_DELAY,
            cdc_entities: crate::events::Selection::All,
            event_retention: crate::events::DEFAULT_RETENTION,
            cdc_overflow_threshold: crate::events::DEFAULT_OVERFLOW_THRESHOLD,
            cometd_connect_timeout: super::cometd::DEFAULT_CONNECT_TIMEOUT,
            cometd_client_timeout: super::cometd::DEFAULT_CLIENT_TIMEOUT,
            org: OrgSource::Generated {
                records: 0,
                seed: 1,
            },
            orgs: 1,
        }
    }
}
