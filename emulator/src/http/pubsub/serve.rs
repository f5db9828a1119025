//! Serving the Pub/Sub API: a tonic server on its own listener, behind TLS (the REST
//! port's certificate, with ALPN `h2` since gRPC is HTTP/2) or plain. Handshakes run off
//! the accept loop, so a slow client cannot hold up the others.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use rustls::ServerConfig;
use sfpg_pubsub_proto::pub_sub_server::PubSubServer as GrpcServer;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;
use tonic::transport::server::Connected;

use super::status::{SERVICE_UNAVAILABLE, error};
use super::{Service, Timings};
use crate::http::orgs::OrgSet;
use crate::http::state::AppState;

/// The running Pub/Sub server.
#[derive(Debug)]
pub struct PubSubServer {
    endpoint: String,
    local_addr: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

impl PubSubServer {
    /// `https://HOST:PORT` (or `http://`): where clients connect.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Ends every open stream (`UNAVAILABLE`, `service.unavailable`), stops accepting, and
    /// waits (up to five seconds) for the server to end.
    pub async fn shutdown(mut self, orgs: &OrgSet) {
        let status = error(
            tonic::Code::Unavailable,
            SERVICE_UNAVAILABLE,
            "The Pub/Sub API service is unavailable.",
        );
        for org in orgs.iter() {
            org.state.pubsub().streams.end_all(None, &status);
        }
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if tokio::time::timeout(Duration::from_secs(5), &mut self.task)
            .await
            .is_err()
        {
            self.task.abort();
        }
    }
}

/// Serves the Pub/Sub API on `listener` (already bound) for `host`, over TLS when
/// `tls` is given.
pub fn serve(
    orgs: Arc<OrgSet>,
    timings: Timings,
    listener: std::net::TcpListener,
    host: &str,
    tls: Option<Arc<ServerConfig>>,
) -> std::io::Result<PubSubServer> {
    let local_addr = listener.local_addr()?;
    let listener = TcpListener::from_std(listener)?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    let endpoint = format!("{scheme}://{host}:{}", local_addr.port());
    // The first org's admin API refuses connections for the port all orgs share.
    let state = orgs.first().state.clone();
    let service = GrpcServer::new(Service::new(orgs, timings));
    let (shutdown, stop) = oneshot::channel::<()>();
    let task = match tls {
        Some(config) => {
            let mut config = (*config).clone();
            config.alpn_protocols = vec![b"h2".to_vec()];
            let acceptor = TlsAcceptor::from(Arc::new(config));
            let connections = accept(state, listener, move |tcp| {
                let acceptor = acceptor.clone();
                async move { acceptor.accept(tcp).await.ok() }
            });
            tokio::spawn(run(service, connections, stop))
        }
        None => {
            let connections = accept(state, listener, |tcp| async move { Some(tcp) });
            tokio::spawn(run(service, connections, stop))
        }
    };
    Ok(PubSubServer {
        endpoint,
        local_addr,
        shutdown: Some(shutdown),
        task,
    })
}

/// The connections `listener` accepts, each made ready by `prepare` (a TLS handshake) in
/// its own task; while the admin API refuses connections, each is closed at once.
fn accept<IO, F, Fut>(state: AppState, listener: TcpListener, prepare: F) -> mpsc::Receiver<IO>
where
    IO: Send + 'static,
    F: Fn(TcpStream) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = Option<IO>> + Send + 'static,
{
    let (tx, rx) = mpsc::channel(64);
    tokio::spawn(async move {
        loop {
            let accepted = tokio::select! {
                // The server ended: let the port go.
                _ = tx.closed() => return,
                accepted = listener.accept() => accepted,
            };
            let Ok((tcp, _)) = accepted else {
                // Out of descriptors, most likely: give the others time to close.
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            };
            if state.pubsub().refusing() {
                drop(tcp);
                continue;
            }
            let _ = tcp.set_nodelay(true);
            let ready = prepare(tcp);
            let tx = tx.clone();
            tokio::spawn(async move {
                if let Some(io) = ready.await {
                    let _ = tx.send(io).await;
                }
            });
        }
    });
    rx
}

async fn run<IO>(
    service: GrpcServer<Service>,
    connections: mpsc::Receiver<IO>,
    stop: oneshot::Receiver<()>,
) where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Connected + Unpin + Send + 'static,
{
    let incoming = futures::stream::unfold(connections, |mut rx| async move {
        rx.recv().await.map(|io| (Ok::<IO, std::io::Error>(io), rx))
    });
    let served = tonic::transport::Server::builder()
        .add_service(service)
        .serve_with_incoming_shutdown(incoming, async {
            let _ = stop.await;
        })
        .await;
    if let Err(e) = served {
        tracing::warn!(error = %e, "the Pub/Sub API server stopped");
    }
}
