//! The listener: binds the address of `--metrics-listen` (refusing one off loopback without
//! a token), installs the process's Prometheus recorder, and serves `/metrics` beside the
//! status page's router.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tokio::net::TcpListener;

use crate::auth;

/// What can stop the listener.
#[derive(Debug, thiserror::Error)]
pub enum ObserveError {
    #[error(
        "--metrics-listen {addr} is reachable from other machines; set --metrics-token \
         (a bearer token every request must carry) or listen on loopback (127.0.0.1)"
    )]
    TokenRequired { addr: String },
    #[error("cannot resolve --metrics-listen {addr}")]
    Resolve {
        addr: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot listen for metrics on {addr}")]
    Bind {
        addr: String,
        #[source]
        source: std::io::Error,
    },
    #[error("the metrics listener failed")]
    Serve(#[source] std::io::Error),
    #[error("cannot set up the connection to the mirror database for /metrics: {0}")]
    Pool(String),
}

/// Run before each scrape, to set the gauges measured rather than recorded (a lag that
/// grows while nothing happens).
pub type Refresh = Arc<dyn Fn() -> Pin<Box<dyn Future<Output = ()> + Send>> + Send + Sync>;

/// How long a scrape waits for the refresh before rendering what it has.
const REFRESH_TIMEOUT: Duration = Duration::from_secs(5);

/// What `/metrics` renders from.
#[derive(Clone)]
struct Scrape {
    handle: PrometheusHandle,
    refresh: Option<Refresh>,
}

/// A bound, not yet serving, metrics and status endpoint.
pub struct Listener {
    tcp: TcpListener,
    token: Option<Arc<str>>,
    handle: PrometheusHandle,
    refresh: Option<Refresh>,
}

impl Listener {
    /// Binds `addr` (`host:port`; a bare `port` or `:port` means loopback). Without a token
    /// (an empty one counts as none), every address `addr` resolves to must be loopback.
    /// Installs the process's metrics recorder on first use.
    pub async fn bind(addr: &str, token: Option<String>) -> Result<Listener, ObserveError> {
        let target = with_default_host(addr);
        let resolved: Vec<SocketAddr> = tokio::net::lookup_host(&target)
            .await
            .map_err(|source| ObserveError::Resolve {
                addr: addr.to_owned(),
                source,
            })?
            .collect();
        let token: Option<Arc<str>> = token.filter(|token| !token.is_empty()).map(Arc::from);
        if token.is_none() && !auth::all_loopback(&resolved) {
            return Err(ObserveError::TokenRequired {
                addr: addr.to_owned(),
            });
        }
        let tcp = TcpListener::bind(resolved.as_slice())
            .await
            .map_err(|source| ObserveError::Bind {
                addr: addr.to_owned(),
                source,
            })?;
        Ok(Listener {
            tcp,
            token,
            handle: recorder().clone(),
            refresh: None,
        })
    }

    /// Runs `refresh` before each scrape renders.
    pub fn refresh_with(mut self, refresh: Refresh) -> Listener {
        self.refresh = Some(refresh);
        self
    }

    /// The address bound (the port chosen, for `:0`).
    pub fn local_addr(&self) -> Result<SocketAddr, ObserveError> {
        self.tcp.local_addr().map_err(ObserveError::Serve)
    }

    /// Serves `/metrics` and `page` (merged in at `/`) until the process ends.
    pub async fn serve(self, page: Router) -> Result<(), ObserveError> {
        self.serve_until(page, std::future::pending()).await
    }

    /// Serves until `shutdown` completes, then finishes the requests in flight.
    pub async fn serve_until(
        self,
        page: Router,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), ObserveError> {
        let app = Router::new()
            .route("/metrics", get(render))
            .with_state(Scrape {
                handle: self.handle,
                refresh: self.refresh,
            })
            .merge(page)
            .layer(axum::middleware::from_fn_with_state(
                self.token,
                auth::require_bearer,
            ));
        axum::serve(self.tcp, app)
            .with_graceful_shutdown(shutdown)
            .await
            .map_err(ObserveError::Serve)
    }
}

impl std::fmt::Debug for Listener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Listener")
            .field("tcp", &self.tcp)
            .field("token", &self.token.as_ref().map(|_| "(set)"))
            .field("refresh", &self.refresh.is_some())
            .finish_non_exhaustive()
    }
}

/// `9187` and `:9187` listen on loopback; anything else is taken as given.
fn with_default_host(addr: &str) -> String {
    let port = addr.strip_prefix(':').unwrap_or(addr);
    if !port.is_empty() && port.bytes().all(|byte| byte.is_ascii_digit()) {
        format!("127.0.0.1:{port}")
    } else {
        addr.to_owned()
    }
}

/// `GET /metrics`: everything recorded so far, in the Prometheus text format (0.0.4).
async fn render(State(scrape): State<Scrape>) -> impl IntoResponse {
    if let Some(refresh) = &scrape.refresh
        && tokio::time::timeout(REFRESH_TIMEOUT, refresh())
            .await
            .is_err()
    {
        tracing::warn!("the gauges' refresh took too long; /metrics shows older values");
    }
    let handle = &scrape.handle;
    // Histograms keep a rolling window that upkeep trims; a scrape is a fine time for it.
    handle.run_upkeep();
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        handle.render(),
    )
}

/// The process's one Prometheus recorder, installed on first call along with the
/// descriptions of every sfpg metric.
fn recorder() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let builder = PrometheusBuilder::new()
            .set_buckets_for_metric(
                Matcher::Suffix("_seconds".to_owned()),
                crate::metrics::LATENCY_BUCKETS,
            )
            .unwrap_or_else(|error| {
                tracing::warn!(%error, "latency buckets refused; histograms render as summaries");
                PrometheusBuilder::new()
            });
        let recorder = builder.build_recorder();
        let handle = recorder.handle();
        if let Err(error) = metrics::set_global_recorder(recorder) {
            tracing::warn!(%error, "another metrics recorder is installed; /metrics stays empty");
        }
        crate::metrics::describe();
        handle
    })
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    async fn fetch(addr: SocketAddr, path: &str, token: Option<&str>) -> (u16, String) {
        let mut request = reqwest::Client::new().get(format!("http://{addr}{path}"));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.unwrap();
        (response.status().as_u16(), response.text().await.unwrap())
    }

    #[tokio::test]
    async fn the_page_sits_behind_the_same_token_and_each_scrape_refreshes_first() {
        let listener = Listener::bind("127.0.0.1:0", Some("t0ken".to_owned()))
            .await
            .unwrap();
        let refreshed = Arc::new(AtomicUsize::new(0));
        let counted = Arc::clone(&refreshed);
        let listener = listener.refresh_with(Arc::new(move || {
            counted.fetch_add(1, Ordering::SeqCst);
            metrics::gauge!("sfpg_freshness_lag_seconds", "org" => "acme", "object" => "Account")
                .set(1.5);
            Box::pin(async {})
        }));
        let addr = listener.local_addr().unwrap();
        let page = Router::new().route("/", axum::routing::get(|| async { "the page" }));
        tokio::spawn(listener.serve(page));

        assert_eq!(fetch(addr, "/", None).await.0, 401);
        assert_eq!(fetch(addr, "/metrics", Some("t0ken!")).await.0, 401);
        assert_eq!(
            refreshed.load(Ordering::SeqCst),
            0,
            "refused before the refresh"
        );
        assert_eq!(
            fetch(addr, "/", Some("t0ken")).await,
            (200, "the page".to_owned())
        );
        let (status, body) = fetch(addr, "/metrics", Some("t0ken")).await;
        assert_eq!(status, 200);
        assert_eq!(refreshed.load(Ordering::SeqCst), 1);
        assert!(
            body.contains(r#"sfpg_freshness_lag_seconds{org="acme",object="Account"} 1.5"#),
            "{body}"
        );
        assert!(
            body.contains("# HELP sfpg_freshness_lag_seconds How far behind"),
            "{body}"
        );
    }

    #[test]
    fn bare_ports_mean_loopback() {
        assert_eq!(with_default_host("9187"), "127.0.0.1:9187");
        assert_eq!(with_default_host(":0"), "127.0.0.1:0");
        assert_eq!(with_default_host("0.0.0.0:9187"), "0.0.0.0:9187");
        assert_eq!(with_default_host("[::1]:9187"), "[::1]:9187");
        assert_eq!(with_default_host("localhost:9187"), "localhost:9187");
    }
}
