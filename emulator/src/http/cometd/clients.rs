//! The CometD clients the server knows: each handshake makes one, bound to its
//! `BAYEUX_BROWSER` cookie and the session that made it, with its subscriptions (a
//! channel and how far it has read) and the faults the admin API set on it.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::Rng;
use tokio::sync::Notify;

/// Salesforce holds a connect up to 110 s.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(110);
/// A client that does not connect again within 40 s of a response is forgotten.
pub const DEFAULT_CLIENT_TIMEOUT: Duration = Duration::from_secs(40);

/// How long connects are held and clients kept.
#[derive(Debug, Clone, Copy)]
pub struct CometdTimeouts {
    pub connect: Duration,
    pub client: Duration,
}

impl Default for CometdTimeouts {
    fn default() -> CometdTimeouts {
        CometdTimeouts {
            connect: DEFAULT_CONNECT_TIMEOUT,
            client: DEFAULT_CLIENT_TIMEOUT,
        }
    }
}

/// One subscription: its channel and the replay id it has read up to.
#[derive(Debug, Clone)]
pub struct Subscription {
    pub channel: String,
    pub position: i64,
}

#[derive(Debug)]
pub struct Client {
    pub cookie: String,
    pub token: String,
    pub subscriptions: Vec<Subscription>,
    /// When the last response to it was sent (or its handshake).
    pub last_seen: Instant,
    /// Connects in flight (they keep it alive).
    pub connecting: usize,
    /// Whether it has connected since its handshake (the first connect returns at once).
    pub connected_once: bool,
    /// The admin API's faults: hold connects without answer; close the next connect.
    pub stalled: bool,
    pub drop_connects: usize,
    /// Wakes its waiting connect when the admin API changes something.
    pub wake: Arc<Notify>,
}

#[derive(Debug, Default)]
pub struct Clients {
    clients: HashMap<String, Client>,
    pub timeouts: CometdTimeouts,
}

impl Clients {
    pub fn new(timeouts: CometdTimeouts) -> Clients {
        Clients {
            clients: HashMap::new(),
            timeouts,
        }
    }

    /// A new client for `token`: its id and cookie.
    pub fn handshake(&mut self, token: &str) -> (String, String) {
        self.forget_idle();
        let mut rng = rand::rng();
        let id: String = (0..30)
            .map(|_| char::from(b"abcdefghijklmnopqrstuvwxyz0123456789"[rng.random_range(0..36)]))
            .collect();
        let cookie: String = (0..24)
            .map(|_| char::from(b"abcdef0123456789"[rng.random_range(0..16)]))
            .collect();
        self.clients.insert(
            id.clone(),
            Client {
                cookie: cookie.clone(),
                token: token.to_owned(),
                subscriptions: Vec::new(),
                last_seen: Instant::now(),
                connecting: 0,
                connected_once: false,
                stalled: false,
                drop_connects: 0,
                wake: Arc::new(Notify::new()),
            },
        );
        (id, cookie)
    }

    /// The client `id`, when it is known, alive, and `cookie` is its cookie.
    pub fn get(&mut self, id: &str, cookie: Option<&str>) -> Option<&mut Client> {
        self.forget_idle();
        self.clients
            .get_mut(id)
            .filter(|c| cookie == Some(c.cookie.as_str()))
    }

    /// The client `id` regardless of cookie (a connect in progress checks on itself).
    pub fn get_mut(&mut self, id: &str) -> Option<&mut Client> {
        self.clients.get_mut(id)
    }

    pub fn remove(&mut self, id: &str) -> Option<Client> {
        self.clients.remove(id)
    }

    /// The ids of every client.
    pub fn ids(&self) -> Vec<String> {
        self.clients.keys().cloned().collect()
    }

    /// Forgets clients that neither connect now nor did within the client timeout
    /// (Salesforce then answers `403::Unknown client`).
    fn forget_idle(&mut self) {
        let timeout = self.timeouts.client;
        self.clients
            .retain(|_, c| c.connecting > 0 || c.last_seen.elapsed() < timeout);
    }
}
