//! Starting and stopping the emulator: building the org, binding the listener,
//! generating the certificate, and assembling the routes behind the outer service.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum_server::Handle;
use axum_server::tls_rustls::RustlsConfig;
use tokio::task::JoinHandle;

use super::bulk::BulkJobs;
use super::cometd::{Clients, CometdTimeouts};
use super::config::{ConnectedApp, EmulatorConfig, OrgSource, Transport, UserLogin};
use super::limits::ApiUsage;
use super::locators::Locators;
use super::orgs::{self, OrgEntry, OrgLogin, OrgSet};
use super::pubsub::{self, PubSubServer, Timings};
use super::request_log::RequestLog;
use super::routes::routes;
use super::service::{EmulatorService, MakeEmulatorService};
use super::sessions::Sessions;
use super::state::{AppState, KnownApp, KnownUser, Shared, SharedParts};
use super::{EmulatorError, tls};
use crate::events::{BusConfig, EventBus};
use crate::ids::Id;
use crate::org::{NewUser, Org};

/// A running emulator. Dropping it leaves the server running until the runtime ends;
/// [`RunningEmulator::shutdown`] stops it gracefully.
pub struct RunningEmulator {
    /// The first org's state: what the admin methods act on.
    pub(super) state: AppState,
    /// Every org (one unless `orgs` was set).
    orgs: Arc<OrgSet>,
    handle: Handle<SocketAddr>,
    task: JoinHandle<std::io::Result<()>>,
    local_addr: SocketAddr,
    certificate: Option<(String, PathBuf)>,
    /// The Pub/Sub API's server; taken when shutting down.
    pubsub: Option<PubSubServer>,
    apps: Vec<ConnectedApp>,
    users: Vec<UserLogin>,
}

/// Starts an emulator as `config` says and returns once it accepts connections.
pub async fn start(config: EmulatorConfig) -> Result<RunningEmulator, EmulatorError> {
    if config.orgs == 0 {
        return Err(EmulatorError::Config(
            "an emulator serves at least one org".to_owned(),
        ));
    }
    if config.orgs > 1 && matches!(config.org, OrgSource::Given(_)) {
        return Err(EmulatorError::Config(
            "a given org can only be the one org: generate the orgs of a multi-org emulator"
                .to_owned(),
        ));
    }
    // Checked before binding: a bad key fails at once.
    known_apps(&config.apps, &config.users)?;

    // Bind first: a taken port fails at once, not after generating the org.
    let (listener, local_addr) = bind(config.listen)?;
    let host = config
        .public_host
        .clone()
        .unwrap_or_else(|| default_host(local_addr.ip()));
    let scheme = match config.transport {
        Transport::Http => "http",
        Transport::Https { .. } => "https",
    };
    let instance_url = format!("{scheme}://{}:{}", url_host(&host), local_addr.port());
    // The Pub/Sub API's port: as configured, or a free one on the REST port's address.
    let pubsub_listen = config
        .pubsub_listen
        .unwrap_or_else(|| SocketAddr::new(local_addr.ip(), 0));
    let (pubsub_listener, _) = bind(pubsub_listen)?;
    let timings = Timings {
        keepalive: config.pubsub_keepalive,
        idle_close: config.pubsub_idle_close,
    };

    let listen = config.listen;
    let (orgs, transport, apps, users) = build_orgs(config, instance_url).await?;
    let state = orgs.first().state.clone();
    let service = EmulatorService { orgs: orgs.clone() };
    let make_service = MakeEmulatorService(service);

    let handle = Handle::new();
    let (task, certificate, tls_config) =
        serve(transport, listener, listen, &host, make_service, &handle)?;
    let pubsub = pubsub::serve(
        orgs.clone(),
        timings,
        pubsub_listener,
        &url_host(&host),
        tls_config,
    )
    .map_err(|source| EmulatorError::Bind {
        addr: pubsub_listen,
        source,
    })?;
    // The listener is bound already; this only waits for the accept loop to run.
    handle.listening().await;
    Ok(RunningEmulator {
        state,
        orgs,
        handle,
        task,
        local_addr,
        certificate,
        pubsub: Some(pubsub),
        apps,
        users,
    })
}

/// Every org, and what of the config the server keeps besides: the transport to serve,
/// the first org's apps and users.
type Started = (Arc<OrgSet>, Transport, Vec<ConnectedApp>, Vec<UserLogin>);

/// What every org is made with, besides its apps, users and data.
struct OrgTemplate {
    session_lifetime: Duration,
    daily_api_limit: u64,
    query_locator_lifetime: Duration,
    request_log_capacity: usize,
    bulk_processing_delay: Duration,
    bus: BusConfig,
    cometd: CometdTimeouts,
    instance_url: String,
}

/// Builds each org (off the async workers) with its event bus, the state around it and
/// its router.
async fn build_orgs(
    config: EmulatorConfig,
    instance_url: String,
) -> Result<Started, EmulatorError> {
    let EmulatorConfig {
        listen: _,
        public_host: _,
        pubsub_listen: _,
        pubsub_keepalive: _,
        pubsub_idle_close: _,
        transport,
        apps,
        users,
        session_lifetime,
        daily_api_limit,
        query_locator_lifetime,
        request_log_capacity,
        bulk_processing_delay,
        cdc_entities,
        event_retention,
        cdc_overflow_threshold,
        cometd_connect_timeout,
        cometd_client_timeout,
        org,
        orgs: count,
    } = config;
    let template = OrgTemplate {
        session_lifetime,
        daily_api_limit,
        query_locator_lifetime,
        request_log_capacity,
        bulk_processing_delay,
        bus: BusConfig {
            selection: cdc_entities,
            retention: event_retention,
            overflow_threshold: cdc_overflow_threshold,
            ..BusConfig::default()
        },
        cometd: CometdTimeouts {
            connect: cometd_connect_timeout,
            client: cometd_client_timeout,
        },
        instance_url,
    };
    let (mut given, generated) = match org {
        OrgSource::Given(org) => (Some(org), None),
        other => (None, Some(other)),
    };
    let mut entries = Vec::with_capacity(count);
    for number in 1..=count {
        let source = match (given.take(), &generated) {
            (Some(org), _) => OrgSource::Given(org),
            (None, Some(OrgSource::Generated { records, seed })) => OrgSource::Generated {
                records: *records,
                seed: seed.wrapping_add(number as u64 - 1),
            },
            (None, Some(OrgSource::Each { each, seed })) => OrgSource::Each {
                each: *each,
                seed: seed.wrapping_add(number as u64 - 1),
            },
            (None, _) => {
                return Err(EmulatorError::Config(
                    "a given org can only be the one org".into(),
                ));
            }
        };
        let org_apps = orgs::apps_of(&apps, number);
        let org_users = orgs::users_of(&users, number);
        entries.push(org_entry(number, source, org_apps, org_users, &template).await?);
    }
    Ok((Arc::new(OrgSet::new(entries)), transport, apps, users))
}

/// Org `number`: its data, its state and its router.
async fn org_entry(
    number: usize,
    source: OrgSource,
    apps: Vec<ConnectedApp>,
    users: Vec<UserLogin>,
    template: &OrgTemplate,
) -> Result<OrgEntry, EmulatorError> {
    let known_apps = known_apps(&apps, &users)?;
    // Generating a large org takes a while; keep it off the async workers.
    let usernames: Vec<String> = users.iter().map(|u| u.username.clone()).collect();
    let (mut org, user_ids) =
        tokio::task::spawn_blocking(move || build_org(source, number, &usernames))
            .await
            .map_err(|e| EmulatorError::Config(format!("building the org failed: {e}")))??;
    let known_users = users
        .iter()
        .zip(user_ids)
        .map(|(login, id)| KnownUser::new(login, id))
        .collect();

    let bus = Arc::new(EventBus::new(template.bus.clone(), org.clock()));
    // Attached after the org is built: generated records existed before anyone listened.
    org.attach_bus(bus.clone());
    org.platform_events().set_retention(template.bus.retention);
    let org_id = org.org_id().to_string();
    let state: AppState = Arc::new(Shared::new(SharedParts {
        org,
        sessions: Sessions::new(&org_id, template.session_lifetime),
        usage: ApiUsage::new(template.daily_api_limit),
        log: RequestLog::new(template.request_log_capacity),
        locators: Locators::new(template.query_locator_lifetime),
        bulk: BulkJobs::new(template.bulk_processing_delay)
            .map_err(|e| EmulatorError::Config(format!("cannot mint Bulk job Ids: {e}")))?,
        bus,
        cometd: Clients::new(template.cometd),
        apps: known_apps,
        users: known_users,
        instance_url: template.instance_url.clone(),
        org_id: org_id.clone(),
    }));
    let (app, user) = (apps.first(), users.first());
    let login = OrgLogin {
        number,
        org_id,
        instance_url: template.instance_url.clone(),
        client_id: app.map(|a| a.client_id.clone()).unwrap_or_default(),
        client_secret: app.map(|a| a.client_secret.clone()).unwrap_or_default(),
        username: user.map(|u| u.username.clone()).unwrap_or_default(),
        password: user.map(|u| u.password.clone()).unwrap_or_default(),
    };
    Ok(OrgEntry {
        router: routes(state.clone()),
        state,
        login,
    })
}

/// The configured apps, checked: a JWT key must be an RSA key, and a client-credentials
/// app must run as a configured user.
fn known_apps(apps: &[ConnectedApp], users: &[UserLogin]) -> Result<Vec<KnownApp>, EmulatorError> {
    let known_apps = apps
        .iter()
        .map(|app| {
            KnownApp::new(app).map_err(|e| {
                EmulatorError::Config(format!(
                    "the JWT public key of app {} is not an RSA PEM key: {e}",
                    app.client_id
                ))
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    for app in apps {
        if let Some(user) = &app.client_credentials_user
            && !users.iter().any(|u| u.username.eq_ignore_ascii_case(user))
        {
            return Err(EmulatorError::Config(format!(
                "app {} runs client credentials as {user}, who is not a configured user",
                app.client_id
            )));
        }
    }
    Ok(known_apps)
}

/// The listener on `listen`, non-blocking, and the address it got.
fn bind(listen: SocketAddr) -> Result<(std::net::TcpListener, SocketAddr), EmulatorError> {
    let listener = std::net::TcpListener::bind(listen).map_err(|source| EmulatorError::Bind {
        addr: listen,
        source,
    })?;
    let bind_error = |source| EmulatorError::Bind {
        addr: listen,
        source,
    };
    listener.set_nonblocking(true).map_err(bind_error)?;
    let local_addr = listener.local_addr().map_err(bind_error)?;
    Ok((listener, local_addr))
}

/// The server's task, and its certificate (PEM and path) and TLS configuration when it
/// serves HTTPS (the Pub/Sub API serves the same certificate).
type Serving = (
    JoinHandle<std::io::Result<()>>,
    Option<(String, PathBuf)>,
    Option<Arc<rustls::ServerConfig>>,
);

/// Serves `make_service` on `listener` in the background, over TLS with a self-signed
/// certificate for `host` (written where the config says) when the transport is HTTPS;
/// returns the task and the certificate (PEM and path).
fn serve(
    transport: Transport,
    listener: std::net::TcpListener,
    listen: SocketAddr,
    host: &str,
    make_service: MakeEmulatorService,
    handle: &Handle<SocketAddr>,
) -> Result<Serving, EmulatorError> {
    let bind_error = |source| EmulatorError::Bind {
        addr: listen,
        source,
    };
    let local_addr = listener.local_addr().map_err(bind_error)?;
    Ok(match transport {
        Transport::Http => {
            let server = axum_server::from_tcp(listener)
                .map_err(bind_error)?
                .handle(handle.clone());
            (tokio::spawn(server.serve(make_service)), None, None)
        }
        Transport::Https { cert_path } => {
            let mut hosts = vec!["localhost".to_owned(), "127.0.0.1".to_owned()];
            if !hosts.iter().any(|h| h == host) {
                hosts.push(host.to_owned());
            }
            let certificate = tls::self_signed(&hosts)?;
            let path = cert_path.unwrap_or_else(|| default_cert_path(local_addr.port()));
            tls::write_pem(&path, &certificate.cert_pem)?;
            let config = RustlsConfig::from_config(certificate.server_config.clone());
            let server = axum_server::tls_rustls::from_tcp_rustls(listener, config)
                .map_err(bind_error)?
                .handle(handle.clone());
            (
                tokio::spawn(server.serve(make_service)),
                Some((certificate.cert_pem, path)),
                Some(certificate.server_config),
            )
        }
    })
}

/// The org and the `User` Id of each configured username, adding the users it lacks.
fn build_org(
    source: OrgSource,
    number: usize,
    usernames: &[String],
) -> Result<(Org, Vec<Id>), EmulatorError> {
    let mut org = match source {
        OrgSource::Generated { records, seed } => generate(number, |org| {
            crate::generator::generate(org, records, seed).map(drop)
        })?,
        OrgSource::Each { each, seed } => generate(number, |org| {
            crate::generator::generate_each(org, each, seed).map(drop)
        })?,
        OrgSource::Given(org) => *org,
    };
    let ids = usernames
        .iter()
        .map(|username| match org.user_id_by_username(username) {
            Some(id) => Ok(id),
            None => org
                .add_user(&NewUser::from_username(username))
                .map_err(|e| EmulatorError::Config(format!("cannot create user {username}: {e}"))),
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok((org, ids))
}

/// Org `number` with the bundled objects, filled by `fill`.
fn generate(
    number: usize,
    fill: impl FnOnce(&mut Org) -> Result<(), crate::generator::GenerateError>,
) -> Result<Org, EmulatorError> {
    let config = |e: &dyn std::fmt::Display, what: &str| {
        EmulatorError::Config(format!("cannot {what}: {e}"))
    };
    let mut org = Org::new().map_err(|e| config(&e, "load the objects"))?;
    org.set_number(number as u64)
        .map_err(|e| config(&e, "number the org"))?;
    fill(&mut org).map_err(|e| config(&e, "generate the org's data"))?;
    Ok(org)
}

/// The host clients should use for a listening IP: itself, or loopback when listening
/// on every interface.
fn default_host(ip: IpAddr) -> String {
    if ip.is_unspecified() {
        "127.0.0.1".to_owned()
    } else {
        ip.to_string()
    }
}

/// IPv6 literals take brackets in a URL.
fn url_host(host: &str) -> String {
    if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]")
    } else {
        host.to_owned()
    }
}

fn default_cert_path(port: u16) -> PathBuf {
    std::env::temp_dir().join(format!("sfpg-emulator-{port}.pem"))
}

impl RunningEmulator {
    /// `http://127.0.0.1:PORT` (or `https://`): where the REST API is.
    pub fn instance_url(&self) -> &str {
        &self.state.instance_url
    }

    /// Where clients log in; the same host, as with a My Domain.
    pub fn login_url(&self) -> &str {
        &self.state.login_url
    }

    /// `<login URL>/services/oauth2/token`.
    pub fn token_url(&self) -> String {
        format!("{}/services/oauth2/token", self.state.login_url)
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// `https://127.0.0.1:PORT` (or `http://`): where the Pub/Sub API (gRPC) is.
    pub fn pubsub_endpoint(&self) -> &str {
        self.pubsub.as_ref().map_or("", |p| p.endpoint())
    }

    /// The certificate's PEM, when serving HTTPS.
    pub fn cert_pem(&self) -> Option<&str> {
        self.certificate.as_ref().map(|(pem, _)| pem.as_str())
    }

    /// Where the certificate's PEM was written, when serving HTTPS.
    pub fn cert_path(&self) -> Option<&Path> {
        self.certificate.as_ref().map(|(_, path)| path.as_path())
    }

    /// Every org (one unless `orgs` was set).
    pub(super) fn orgs(&self) -> &OrgSet {
        &self.orgs
    }

    /// Every org's login (one unless `orgs` was set), as `GET /__emulator/orgs` lists them.
    pub fn org_logins(&self) -> Vec<OrgLogin> {
        self.orgs.logins()
    }

    /// The connected apps clients can log in with.
    pub fn apps(&self) -> &[ConnectedApp] {
        &self.apps
    }

    /// The users clients can log in as.
    pub fn users(&self) -> &[UserLogin] {
        &self.users
    }

    /// The 18-character Id of the emulated org.
    pub fn org_id(&self) -> &str {
        &self.state.org_id
    }

    /// The `User` Id of a configured user.
    pub fn user_id(&self, username: &str) -> Option<String> {
        self.state.user(username).map(|u| u.user_id.to_string())
    }

    /// Stops accepting connections, lets requests in flight finish (for up to five
    /// seconds), and waits for the server to end.
    pub async fn shutdown(mut self) {
        if let Some(pubsub) = self.pubsub.take() {
            pubsub.shutdown(&self.orgs).await;
        }
        self.handle.graceful_shutdown(Some(Duration::from_secs(5)));
        // A server task that failed or panicked has stopped too; nothing is left to do.
        let _ = self.task.await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_for_urls() {
        assert_eq!(default_host("0.0.0.0".parse().unwrap()), "127.0.0.1");
        assert_eq!(default_host("10.1.2.3".parse().unwrap()), "10.1.2.3");
        assert_eq!(url_host("::1"), "[::1]");
        assert_eq!(url_host("localhost"), "localhost");
    }
}
