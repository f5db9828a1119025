//! The listener: accepts client connections and gives each a session task, or forwards its
//! CancelRequest; and the graceful stop, which stops accepting, closes each session once it
//! is between statements outside a transaction, and waits (bounded) for the others.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::BytesMut;
use sfpg_control::connect::Limiters;
use sfpg_control::reconnect::Reconnect;
use tokio::net::{TcpListener, TcpStream};
use tokio::runtime::Handle;
use tokio::sync::oneshot;
use tokio::task::JoinSet;
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};
use tracing::{Instrument, Span, debug, info, info_span, warn};

use crate::backend::{UpstreamAddr, send_cancel};
use crate::config::{ClientLimits, ProxyConfig};
use crate::error::{ProxyError, SessionError};
use crate::frontend::admission::{Admission, Admitted, AuthDeadline};
use crate::frontend::cancel::{Cancel, CancelRegistry};
use crate::frontend::refusal::{Refusal, RefusalLog};
use crate::frontend::relay;
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
    /// Started when the proxy stops: each session closes at its next safe point.
    pub draining: Draining,
    /// What a client may make the proxy hold, and for how long before it authenticates.
    pub limits: ClientLimits,
    /// The open client connections, against `limits.max_client_connections`.
    pub admission: Admission,
    /// Refused connections, logged at a bounded rate.
    pub refusals: RefusalLog,
}

/// The proxy's signal to its sessions that it is stopping. A session waits on the token
/// once, which leaves its waker registered, and from then on reads the flag: polling the
/// token's future on every turn of a relay loop takes two locks each time.
#[derive(Debug, Default)]
pub struct Draining {
    started: AtomicBool,
    token: CancellationToken,
}

impl Draining {
    /// Sets the flag, then wakes every session waiting on the token.
    pub fn start(&self) {
        self.started.store(true, Ordering::Release);
        self.token.cancel();
    }

    pub fn has_started(&self) -> bool {
        self.started.load(Ordering::Acquire)
    }

    /// Resolves once [`Draining::start`] has run.
    pub fn wait(&self) -> WaitForCancellationFutureOwned {
        self.token.clone().cancelled_owned()
    }
}

/// A bound proxy, ready to serve.
#[derive(Debug)]
pub struct Proxy {
    listener: TcpListener,
    shared: Arc<Shared>,
    repair_every: Duration,
    session_threads: usize,
}

impl Proxy {
    /// Binds the listening socket. Nothing is accepted until [`Proxy::serve`].
    pub async fn bind(config: ProxyConfig) -> Result<Proxy, ProxyError> {
        Proxy::bind_sharing(config, Limiters::new()).await
    }

    /// [`Proxy::bind`], with each org's rate limiter taken from `limiters`: a sync in the
    /// same process that draws from the same registry shares the org's bucket, and the
    /// proxy's pushes go ahead of its polling.
    pub async fn bind_sharing(
        config: ProxyConfig,
        limiters: Limiters,
    ) -> Result<Proxy, ProxyError> {
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
                let catalog = Catalog::connect(push.control, push.master_key, limiters)?;
                Some(Arc::new(
                    Pusher::new(catalog, push.failpoint)
                        .keeping_failures_for(push.failures_retention),
                ))
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
                draining: Draining::default(),
                limits: config.limits,
                admission: Admission::new(config.limits.max_client_connections),
                refusals: RefusalLog::default(),
            }),
            repair_every,
            session_threads: config.session_threads,
        })
    }

    /// The address clients connect to (useful after binding port 0).
    pub fn local_addr(&self) -> Result<SocketAddr, ProxyError> {
        self.listener.local_addr().map_err(ProxyError::Accept)
    }

    /// Serves until this future is dropped (which ends every session too) or accepting
    /// fails for good.
    pub async fn serve(self) -> Result<(), ProxyError> {
        self.serve_until(std::future::pending(), Duration::ZERO)
            .await
    }

    /// Serves until `shutdown` resolves, then stops gracefully: no new connection is
    /// accepted; a session between statements outside a transaction is closed at once
    /// (with the FATAL 57P01 a stopping PostgreSQL sends); a session in a transaction, or
    /// waiting for a push, goes on until its transaction ends, then is closed. Sessions
    /// still open after `grace` are dropped: their transactions roll back, and a push caught
    /// between Salesforce's answer and the commit is resolved from the write journal at the
    /// next start.
    pub async fn serve_until(
        self,
        shutdown: impl Future<Output = ()>,
        grace: Duration,
    ) -> Result<(), ProxyError> {
        info!(
            listen = %self.local_addr()?,
            upstream = %self.shared.upstream,
            tls = self.shared.tls.is_some(),
            "proxy listening"
        );
        // Declared before `sessions`, so dropped after them: the threads end once their
        // sessions are gone.
        let threads = SessionThreads::start(self.session_threads)?;
        // Sessions belong to the serving future: dropping it aborts them, so a stopped
        // proxy leaves no client or server connection open behind it.
        let mut sessions = JoinSet::new();
        let mut repairs = JoinSet::new();
        if let Some(pusher) = &self.shared.pusher {
            repairs.spawn(repair_now_and_then(Arc::clone(pusher), self.repair_every));
        }
        tokio::pin!(shutdown);
        let mut next_session: u64 = 0;
        loop {
            let accepted = tokio::select! {
                () = &mut shutdown => break,
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
            let Some(admitted) = self.shared.admission.admit() else {
                refuse_at_once(&self.shared, &tcp);
                continue;
            };
            next_session += 1;
            let session = Accepted {
                tcp,
                peer,
                admitted,
                id: next_session,
            };
            self.spawn_session(session, &threads, &mut sessions);
        }
        drop(self.listener);
        repairs.abort_all();
        self.shared.draining.start();
        drain(sessions, grace).await;
        info!("proxy stopped");
        Ok(())
    }

    /// Starts `session` on the next session thread (or, without any, on the caller's
    /// runtime), owned by `sessions`.
    fn spawn_session(
        &self,
        session: Accepted,
        threads: &SessionThreads,
        sessions: &mut JoinSet<()>,
    ) {
        let Accepted {
            tcp,
            peer,
            admitted,
            id,
        } = session;
        let span = info_span!("session", id, %peer);
        let shared = Arc::clone(&self.shared);
        let Some(runtime) = threads.next(id) else {
            sessions.spawn(handle(shared, tcp, peer, admitted, span));
            return;
        };
        // A socket belongs to the runtime that registered it: it moves as a std socket and
        // is registered again on the session's own thread.
        let tcp = match tcp.into_std() {
            Ok(tcp) => tcp,
            Err(error) => {
                warn!(%error, %peer, "cannot hand the connection to a session thread");
                return;
            }
        };
        let session = async move {
            match TcpStream::from_std(tcp) {
                Ok(tcp) => handle(shared, tcp, peer, admitted, span).await,
                Err(error) => {
                    span.in_scope(|| warn!(%error, "cannot register the connection"));
                }
            }
        };
        sessions.spawn_on(session, runtime);
    }
}

/// An accepted connection, counted against the limit, and the number of its session.
struct Accepted {
    tcp: TcpStream,
    peer: SocketAddr,
    admitted: Admitted,
    id: u64,
}

/// Waits, at most `grace`, for the sessions to close at their next safe point; drops
/// those still open then, which rolls their transactions back.
async fn drain(mut sessions: JoinSet<()>, grace: Duration) {
    if !sessions.is_empty() {
        info!(
            sessions = sessions.len(),
            "stopped accepting; closing each session at its next safe point"
        );
    }
    let drained = tokio::time::timeout(grace, async {
        while sessions.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        warn!(
            sessions = sessions.len(),
            grace = ?grace,
            "sessions still in a transaction were closed; their transactions roll back"
        );
        sessions.shutdown().await;
    }
}

/// The threads that run sessions, each driving a single-threaded runtime until dropped.
struct SessionThreads {
    runtimes: Vec<Handle>,
    /// Dropping these ends the threads, and with them whatever still runs on them.
    _stops: Vec<oneshot::Sender<()>>,
}

impl SessionThreads {
    fn start(count: usize) -> Result<SessionThreads, ProxyError> {
        let mut runtimes = Vec::with_capacity(count);
        let mut stops = Vec::with_capacity(count);
        for index in 0..count {
            // I/O and timers, not `enable_all`. (With tokio's `signal` and `process`
            // features on, as they are in the binary, `enable_io` brings those drivers
            // too; they cost a lock attempt at each park, about 0.2% of a session
            // thread's samples under pgbench.)
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_io()
                .enable_time()
                .build()
                .map_err(ProxyError::SessionThread)?;
            runtimes.push(runtime.handle().clone());
            let (stop, stopped) = oneshot::channel::<()>();
            stops.push(stop);
            std::thread::Builder::new()
                .name(format!("sfpg-sessions-{index}"))
                .spawn(move || {
                    // The runtime runs its tasks while this waits; either outcome of the
                    // channel means the proxy is done with it.
                    let _ = runtime.block_on(stopped);
                })
                .map_err(ProxyError::SessionThread)?;
        }
        Ok(SessionThreads {
            runtimes,
            _stops: stops,
        })
    }

    /// The runtime for the `n`-th session, in turn; `None` without session threads.
    fn next(&self, n: u64) -> Option<&Handle> {
        let count = u64::try_from(self.runtimes.len()).ok().filter(|&c| c > 0)?;
        let index = usize::try_from(n % count).ok()?;
        self.runtimes.get(index)
    }
}

/// Resolves the write journal's unresolved pushes at start, then every `every`, and at
/// once when a push leaves one of unknown outcome (and when such an entry is due to be read
/// again). While the control database cannot be reached, it tries again with backoff
/// (sooner than `every`, never later), and logs when that starts and ends rather than at
/// each pass.
async fn repair_now_and_then(pusher: Arc<Pusher>, every: Duration) {
    let mut control = Reconnect::new("the control database (write journal repair)");
    loop {
        let wait = match repair::repair(pusher.catalog()).await {
            Ok(report) => {
                control.succeeded();
                if report.repaired + report.committed > 0 {
                    info!(
                        repaired = report.repaired,
                        committed = report.committed,
                        pending = report.pending,
                        "write journal resolved"
                    );
                }
                match report.next_check {
                    Some(next) => {
                        every.min((next - chrono::Utc::now()).to_std().unwrap_or_default())
                    }
                    None => every,
                }
            }
            Err(error) => control.failed(&error).min(every),
        };
        pusher.purge_failures().await;
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            () = pusher.repair_wanted().notified() => {}
        }
    }
}

fn is_transient_accept_error(error: &std::io::Error) -> bool {
    !matches!(error.kind(), std::io::ErrorKind::InvalidInput)
}

/// Serves one connection. Everything but the relay itself runs inside `span`; the session
/// enters it where it logs, rather than on each of the relay's polls.
async fn handle(
    shared: Arc<Shared>,
    tcp: TcpStream,
    peer: SocketAddr,
    admitted: Admitted,
    span: Span,
) {
    // Counts the connection until it ends.
    let _ticket = admitted.ticket;
    let deadline = AuthDeadline::after(shared.limits.auth_timeout);
    let opening = async {
        if let Err(error) = tcp.set_nodelay(true) {
            debug!(%error, "cannot set TCP_NODELAY");
        }
        negotiate(tcp, shared.tls.as_ref(), deadline).await
    }
    .instrument(span.clone())
    .await;
    let outcome = match opening {
        Ok(Opening::Session { mut stream, .. }) if admitted.over_limit => {
            let refusal = Refusal::TooManyClients {
                limit: shared.admission.limit(),
            };
            refusal.tell(&mut stream, &mut BytesMut::new()).await;
            Err(refusal.into())
        }
        Ok(Opening::Session {
            stream,
            startup,
            rest,
        }) => {
            span.in_scope(|| debug!(tls = stream.is_tls(), "session started"));
            relay::run(
                Arc::clone(&shared),
                stream,
                startup,
                rest,
                peer,
                span.clone(),
                deadline,
            )
            .await
        }
        Ok(Opening::Cancel { pid, secret }) => {
            cancel(&shared, pid, &secret).instrument(span.clone()).await;
            Ok(())
        }
        Err(error) => Err(error),
    };
    let _entered = span.enter();
    match outcome {
        Ok(()) => debug!("session ended"),
        Err(error) if error.is_disconnect() => debug!(%error, "session ended"),
        Err(SessionError::Refused(refusal)) => shared.refusals.record(&refusal),
        Err(error @ SessionError::Protocol(_)) => shared.refusals.record_violation(&error),
        Err(error @ SessionError::Connect { .. }) => warn!(%error, "session refused"),
        Err(error) => warn!(%error, "session failed"),
    }
}

/// Refuses a connection past every allowance without reading from it: the FATAL error goes
/// into the new socket's empty send buffer, or nowhere.
fn refuse_at_once(shared: &Shared, tcp: &TcpStream) {
    let refusal = Refusal::TooManyClients {
        limit: shared.admission.limit(),
    };
    let mut out = BytesMut::new();
    if refusal.error_response(&mut out).is_ok() {
        let _ = tcp.try_write(&out);
    }
    shared.refusals.record(&refusal);
}

async fn cancel(shared: &Shared, pid: i32, secret: &[u8]) {
    match shared.cancels.cancel(pid, secret) {
        Some(Cancel::Forward(upstream)) => {
            debug!(pid, "forwarding cancel request");
            if let Err(error) = send_cancel(&shared.upstream, upstream.pid, &upstream.secret).await
            {
                warn!(%error, "cannot forward a cancel request to the server");
            }
        }
        Some(Cancel::Taken) => debug!(pid, "cancel request taken by the session's push"),
        None => debug!(pid, "cancel request with an unknown key ignored"),
    }
}
