//! Starting and stopping the emulator: building the org, binding the listener,
//! generating the certificate, and assembling the routes behind the outer service.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::middleware::from_fn_with_state;
use axum::routing::{get, post};
use axum_server::Handle;
use axum_server::tls_rustls::RustlsConfig;
use tokio::task::JoinHandle;

use super::auth;
use super::bulk::{self, BulkJobs};
use super::cometd::{self, Clients, CometdTimeouts};
use super::config::{ConnectedApp, EmulatorConfig, OrgSource, Transport, UserLogin};
use super::error::RestError;
use super::limits::ApiUsage;
use super::locators::Locators;
use super::request_log::RequestLog;
use super::service::{EmulatorService, MAX_BODY_BYTES, MakeEmulatorService};
use super::sessions::Sessions;
use super::state::{AppState, KnownApp, KnownUser, Shared, SharedParts};
use super::{
    EmulatorError, admin, admin_cdc, collections, composite, limits, oauth, query, replication,
    sobjects, tls, versions,
};
use crate::events::{BusConfig, EventBus};
use crate::ids::Id;
use crate::org::{NewUser, Org};

/// A running emulator. Dropping it leaves the server running until the runtime ends;
/// [`RunningEmulator::shutdown`] stops it gracefully.
pub struct RunningEmulator {
    pub(super) state: AppState,
    handle: Handle<SocketAddr>,
    task: JoinHandle<std::io::Result<()>>,
    local_addr: SocketAddr,
    certificate: Option<(String, PathBuf)>,
    apps: Vec<ConnectedApp>,
    users: Vec<UserLogin>,
}

/// Starts an emulator as `config` says and returns once it accepts connections.
pub async fn start(config: EmulatorConfig) -> Result<RunningEmulator, EmulatorError> {
    let EmulatorConfig {
        listen,
        transport,
        public_host,
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
    } = config;

    let known_apps = known_apps(&apps, &users)?;

    // Bind first: a taken port fails at once, not after generating the org.
    let (listener, local_addr) = bind(listen)?;
    let host = public_host.unwrap_or_else(|| default_host(local_addr.ip()));
    let scheme = match transport {
        Transport::Http => "http",
        Transport::Https { .. } => "https",
    };
    let instance_url = format!("{scheme}://{}:{}", url_host(&host), local_addr.port());

    // Generating a large org takes a while; keep it off the async workers.
    let usernames: Vec<String> = users.iter().map(|u| u.username.clone()).collect();
    let (org, user_ids) = tokio::task::spawn_blocking(move || build_org(org, &usernames))
        .await
        .map_err(|e| EmulatorError::Config(format!("building the org failed: {e}")))??;
    let known_users = users
        .iter()
        .zip(user_ids)
        .map(|(login, id)| KnownUser::new(login, id))
        .collect();

    let mut org = org;
    let bus = Arc::new(EventBus::new(
        BusConfig {
            selection: cdc_entities,
            retention: event_retention,
            overflow_threshold: cdc_overflow_threshold,
            ..BusConfig::default()
        },
        org.clock(),
    ));
    // Attached after the org is built: generated records existed before anyone listened.
    org.attach_bus(bus.clone());
    org.platform_events().set_retention(event_retention);
    let org_id = org.org_id().to_string();
    let state: AppState = Arc::new(Shared::new(SharedParts {
        org,
        sessions: Sessions::new(&org_id, session_lifetime),
        usage: ApiUsage::new(daily_api_limit),
        log: RequestLog::new(request_log_capacity),
        locators: Locators::new(query_locator_lifetime),
        bulk: BulkJobs::new(bulk_processing_delay)
            .map_err(|e| EmulatorError::Config(format!("cannot mint Bulk job Ids: {e}")))?,
        bus,
        cometd: Clients::new(CometdTimeouts {
            connect: cometd_connect_timeout,
            client: cometd_client_timeout,
        }),
        apps: known_apps,
        users: known_users,
        instance_url,
        org_id,
    }));
    let service = EmulatorService {
        router: routes(state.clone()),
        state: state.clone(),
    };
    let make_service = MakeEmulatorService(service);

    let handle = Handle::new();
    let (task, certificate) = serve(transport, listener, listen, &host, make_service, &handle)?;
    // The listener is bound already; this only waits for the accept loop to run.
    handle.listening().await;
    Ok(RunningEmulator {
        state,
        handle,
        task,
        local_addr,
        certificate,
        apps,
        users,
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

/// The server's task, and its certificate (PEM and path) when it serves HTTPS.
type Serving = (JoinHandle<std::io::Result<()>>, Option<(String, PathBuf)>);

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
            (tokio::spawn(server.serve(make_service)), None)
        }
        Transport::Https { cert_path } => {
            let mut hosts = vec!["localhost".to_owned(), "127.0.0.1".to_owned()];
            if !hosts.iter().any(|h| h == host) {
                hosts.push(host.to_owned());
            }
            let certificate = tls::self_signed(&hosts)?;
            let path = cert_path.unwrap_or_else(|| default_cert_path(local_addr.port()));
            tls::write_pem(&path, &certificate.cert_pem)?;
            let config = RustlsConfig::from_config(certificate.server_config);
            let server = axum_server::tls_rustls::from_tcp_rustls(listener, config)
                .map_err(bind_error)?
                .handle(handle.clone());
            (
                tokio::spawn(server.serve(make_service)),
                Some((certificate.cert_pem, path)),
            )
        }
    })
}

/// The org and the `User` Id of each configured username, adding the users it lacks.
fn build_org(source: OrgSource, usernames: &[String]) -> Result<(Org, Vec<Id>), EmulatorError> {
    let mut org = match source {
        OrgSource::Generated { records, seed } => generate(records, seed)?,
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

fn generate(records: usize, seed: u64) -> Result<Org, EmulatorError> {
    let mut org =
        Org::new().map_err(|e| EmulatorError::Config(format!("cannot load the objects: {e}")))?;
    crate::generator::generate(&mut org, records, seed)
        .map_err(|e| EmulatorError::Config(format!("cannot generate the org's data: {e}")))?;
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

fn routes(state: AppState) -> Router {
    let api = Router::new()
        .route("/services/data/{version}", get(versions::resources))
        .route("/services/data/{version}/limits", get(limits::limits))
        .route(
            "/services/data/{version}/sobjects",
            get(sobjects::describe_global),
        )
        .route(
            "/services/data/{version}/sobjects/{object}",
            get(sobjects::basic_info).post(sobjects::create),
        )
        .route(
            "/services/data/{version}/sobjects/{object}/describe",
            get(sobjects::describe),
        )
        .route(
            "/services/data/{version}/sobjects/{object}/updated",
            get(replication::updated),
        )
        .route(
            "/services/data/{version}/sobjects/{object}/deleted",
            get(replication::deleted),
        )
        .route(
            "/services/data/{version}/sobjects/{object}/{id}",
            get(sobjects::retrieve)
                .patch(sobjects::update)
                .delete(sobjects::delete)
                .post(sobjects::create_through_upsert),
        )
        .route(
            "/services/data/{version}/sobjects/{object}/{field}/{value}",
            get(sobjects::retrieve_by_external_id)
                .patch(sobjects::upsert)
                .delete(sobjects::delete_by_external_id),
        )
        .route("/services/data/{version}/query", get(query::query))
        .route(
            "/services/data/{version}/query/{locator}",
            get(query::next_page),
        )
        .route("/services/data/{version}/queryAll", get(query::query_all))
        .route(
            "/services/data/{version}/queryAll/{locator}",
            get(query::next_page),
        )
        .route(
            "/services/data/{version}/composite",
            post(composite::composite),
        )
        .route(
            "/services/data/{version}/composite/sobjects",
            post(collections::create)
                .patch(collections::update)
                .delete(collections::delete),
        )
        .route(
            "/services/data/{version}/composite/sobjects/{object}",
            get(collections::retrieve).post(collections::retrieve_by_body),
        )
        .route(
            "/services/data/{version}/composite/sobjects/{object}/{field}",
            axum::routing::patch(collections::upsert),
        )
        .route(
            "/services/data/{version}/tooling/query",
            get(super::tooling::query),
        )
        .merge(bulk::routes())
        .route_layer(from_fn_with_state(state.clone(), auth::require_session));

    Router::new()
        .route("/services/data", get(versions::versions))
        .route("/services/oauth2/token", post(oauth::token))
        .route("/cometd/{version}", post(cometd::cometd))
        .merge(api)
        .nest(
            "/__emulator",
            admin::routes()
                .merge(admin_cdc::routes())
                .merge(bulk::admin_routes()),
        )
        .fallback(|| async { RestError::not_found() })
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state)
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

    /// The certificate's PEM, when serving HTTPS.
    pub fn cert_pem(&self) -> Option<&str> {
        self.certificate.as_ref().map(|(pem, _)| pem.as_str())
    }

    /// Where the certificate's PEM was written, when serving HTTPS.
    pub fn cert_path(&self) -> Option<&Path> {
        self.certificate.as_ref().map(|(_, path)| path.as_path())
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
    pub async fn shutdown(self) {
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
