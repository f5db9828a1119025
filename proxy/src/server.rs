//! The listener: accepts client connections and gives each a session task, or forwards its
//! CancelRequest.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use tracing::{Instrument, debug, info, info_span, warn};

use crate::backend::{UpstreamAddr, send_cancel};
use crate::config::ProxyConfig;
use crate::error::{ProxyError, SessionError};
use crate::frontend::cancel::CancelRegistry;
use crate::frontend::session;
use crate::frontend::startup::{Opening, negotiate};
use crate::frontend::tls::TlsConfig;
use crate::push::{Catalog, Pusher, repair};

/// What every session of one proxy shares.
#[derive(Debug)]
pub struct Shared {
    pub upstream: UpstreamAddr,
    pub tls: Option<TlsConfig>,
    pub cancels: Arc<CancelRegistry>,
    pub pusher: Option<Arc<Pusher>>,
}

/// A bound proxy, ready to serve.
#[derive(Debug)]
pub struct Proxy {
    listener: TcpListener,
    shared: Arc<Shared>,
    repair_every: Duration,
}

impl Proxy {
    /// Binds the listening socket. Nothing is accepted until [`Proxy::serve`].
    pub async fn bind(config: ProxyConfig) -> Result<Proxy, ProxyError> {
        let listener =
            TcpListener::bind(&config.listen)
                .await
                .map_err(|source| ProxyError::Bind {
                    addr: config.listen.clone(),
                    source,
                })?;
        let mut repair_every = Duration::from_secs(60);
        let pusher = match config.push {
            Some(push) => {
                repair_every = push.repair_every;
                let manager = deadpool_postgres::Manager::new(push.control, tokio_postgres::NoTls);
                let pool = deadpool_postgres::Pool::builder(manager)
                    .max_size(4)
                    .build()
                    .map_err(|e| ProxyError::Control(e.to_string()))?;
                let catalog = Catalog::new(pool, push.master_key, |_| None);
                Some(Arc::new(Pusher::new(catalog, push.failpoint)))
            }
            None => None,
        };
        Ok(Proxy {
            listener,
            shared: Arc::new(Shared {
                upstream: config.upstream,
                tls: config.tls,
                cancels: Arc::new(CancelRegistry::default()),
                pusher,
            }),
            repair_every,
        })
    }

    /// The address clients connect to (useful after binding port 0).
    pub fn local_addr(&self) -> Result<SocketAddr, ProxyError> {
        self.listener.local_addr().map_err(ProxyError::Accept)
    }

    /// Serves until this future is dropped (which ends every session too) or accepting
    /// fails for good.
    pub async fn serve(self) -> Result<(), ProxyError> {
        info!(
            listen = %self.local_addr()?,
            upstream = %self.shared.upstream,
            tls = self.shared.tls.is_some(),
            "proxy listening"
        );
        // Sessions belong to the serving future: dropping it aborts them, so a stopped
        // proxy leaves no client or server connection open behind it.
        let mut sessions = JoinSet::new();
        if let Some(pusher) = &self.shared.pusher {
            sessions.spawn(repair_now_and_then(Arc::clone(pusher), self.repair_every));
        }
        let mut next_session: u64 = 0;
        loop {
            let accepted = tokio::select! {
                accepted = self.listener.accept() => accepted,
                Some(_) = sessions.join_next() => continue,
            };
            let (tcp, peer) = match accepted {
                Ok(accepted) => accepted,
                Err(error) if is_transient_accept_error(&error) => {
                    // Out of file descriptors and the like: keep the proxy up and retry.
                    warn!(%error, "accept failed; retrying");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
                Err(error) => return Err(ProxyError::Accept(error)),
            };
            next_session += 1;
            let span = info_span!("session", id = next_session, %peer);
            sessions.spawn(handle(Arc::clone(&self.shared), tcp, peer).instrument(span));
        }
    }
}

/// Resolves the write journal's unresolved pushes at start, then every `every`.
async fn repair_now_and_then(pusher: Arc<Pusher>, every: Duration) {
    loop {
        match repair::repair(pusher.catalog()).await {
            Ok(report) if report.repaired + report.committed > 0 => info!(
                repaired = report.repaired,
                committed = report.committed,
                pending = report.pending,
                "write journal resolved"
            ),
            Ok(_) => {}
            Err(error) => warn!(%error, "cannot check the write journal"),
        }
        tokio::time::sleep(every).await;
    }
}

fn is_transient_accept_error(error: &std::io::Error) -> bool {
    !matches!(error.kind(), std::io::ErrorKind::InvalidInput)
}

async fn handle(shared: Arc<Shared>, tcp: TcpStream, peer: SocketAddr) {
    if let Err(error) = tcp.set_nodelay(true) {
        debug!(%error, "cannot set TCP_NODELAY");
    }
    let outcome = match negotiate(tcp, shared.tls.as_ref()).await {
        Ok(Opening::Session {
            stream,
            startup,
            rest,
        }) => {
            debug!(tls = stream.is_tls(), "session started");
            session::run(Arc::clone(&shared), stream, startup, rest, peer).await
        }
        Ok(Opening::Cancel { pid, secret }) => {
            cancel(&shared, pid, &secret).await;
            Ok(())
        }
        Err(error) => Err(error),
    };
    match outcome {
        Ok(()) => debug!("session ended"),
        Err(error) if error.is_disconnect() => debug!(%error, "session ended"),
        Err(error @ SessionError::Connect { .. }) => warn!(%error, "session refused"),
        Err(error) => warn!(%error, "session failed"),
    }
}

async fn cancel(shared: &Shared, pid: i32, secret: &[u8]) {
    match shared.cancels.cancel(pid, secret) {
        Some(upstream) => {
            debug!(pid, "forwarding cancel request");
            if let Err(error) = send_cancel(&shared.upstream, upstream.pid, &upstream.secret).await
            {
                warn!(%error, "cannot forward a cancel request to the server");
            }
        }
        None => debug!(pid, "cancel request with an unknown key ignored"),
    }
}
