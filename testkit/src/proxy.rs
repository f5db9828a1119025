//! The proxy in process, in front of a test database: the one place tests build a
//! `ProxyConfig`, for the proxy's own tests (a relay with no push) and for the world's
//! (pushing to the emulated org).

use std::net::SocketAddr;
use std::time::Duration;

use sfpg_control::MasterKey;
use sfpg_proxy::{ClientLimits, Proxy, ProxyConfig, PushConfig, TlsConfig, UpstreamAddr};
use tokio::task::JoinHandle;

use crate::TestDatabase;

/// A proxy serving in the background; it stops when dropped.
#[derive(Debug)]
pub struct RunningProxy {
    pub addr: SocketAddr,
    task: JoinHandle<()>,
}

impl Drop for RunningProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// How the proxy is set up; the default relays plain TCP on one session thread and pushes
/// nothing.
pub struct ProxySetup {
    pub tls: Option<TlsConfig>,
    /// Push captured writes to the orgs registered in the test database, whose
    /// credentials are sealed with this key. The journal's repair runs once an hour, so
    /// that only a test that asks for it sees one.
    pub push_with: Option<MasterKey>,
    /// How many threads run the sessions (0: the test's own runtime).
    pub session_threads: usize,
}

impl Default for ProxySetup {
    fn default() -> ProxySetup {
        ProxySetup {
            tls: None,
            push_with: None,
            session_threads: 1,
        }
    }
}

/// Binds a proxy for `db` on a free port of 127.0.0.1 and serves in the background.
pub async fn start_proxy(db: &TestDatabase, setup: ProxySetup) -> RunningProxy {
    let server = db.server();
    let proxy = Proxy::bind(ProxyConfig {
        listen: "127.0.0.1:0".into(),
        upstream: UpstreamAddr::Tcp {
            host: server.host().to_owned(),
            port: server.port(),
        },
        tls: setup.tls,
        push: setup.push_with.map(|master_key| PushConfig {
            control: db.config(),
            master_key,
            repair_every: Duration::from_secs(3600),
            failpoint: None,
            failures_retention: sfpg_proxy::DEFAULT_FAILURES_RETENTION,
        }),
        session_threads: setup.session_threads,
        limits: ClientLimits::default(),
    })
    .await
    .unwrap_or_else(|e| panic!("sfpg-testkit: the proxy did not bind: {e}"));
    let addr = proxy
        .local_addr()
        .unwrap_or_else(|e| panic!("sfpg-testkit: the proxy has no address: {e}"));
    let task = tokio::spawn(async move {
        if let Err(error) = proxy.serve().await {
            panic!("sfpg-testkit: the proxy stopped: {error}");
        }
    });
    RunningProxy { addr, task }
}
