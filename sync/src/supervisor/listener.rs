//! The supervisor's listening connection: it listens on
//! [`ORG_CHANGED_CHANNEL`](orgs::ORG_CHANGED_CHANNEL), so that a changed org reloads at once.
//! A hint only: the heartbeat reads the enabled orgs anyway (and through PgBouncer in
//! transaction mode, notifications do not arrive at all). When it is
//! lost it is opened again with backoff ([`Reconnect`]), never in a loop: while the database
//! is gone, the supervisor waits for the next attempt instead.

use futures::StreamExt;
use sfpg_control::reconnect::Reconnect;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_postgres::{AsyncMessage, NoTls};

use crate::error::Result;
use sfpg_control::orgs;

/// The listening connection, or the wait before opening it again.
pub(super) struct Listener {
    database: tokio_postgres::Config,
    connection: Option<Connection>,
    reconnect: Reconnect,
}

struct Connection {
    client: tokio_postgres::Client,
    /// The payloads (org names); ends when the connection does.
    notifications: mpsc::UnboundedReceiver<String>,
}

impl Listener {
    pub(super) fn new(database: tokio_postgres::Config) -> Self {
        Self {
            database,
            connection: None,
            reconnect: Reconnect::new("the mirror database (listening for changes)"),
        }
    }

    /// Opens the connection at once, for the supervisor's start: a database that cannot
    /// be reached then is a configuration to fix, not an outage to wait out.
    pub(super) async fn open(&mut self) -> Result<()> {
        self.connection = Some(listen(&self.database).await?);
        Ok(())
    }

    /// The connection, opened again first if it was lost and its next attempt is due.
    pub(super) async fn client(&mut self) -> Option<&tokio_postgres::Client> {
        if self
            .connection
            .as_ref()
            .is_some_and(|c| c.client.is_closed())
        {
            self.lost();
        }
        if self.connection.is_none() && self.reconnect.may_attempt() {
            match listen(&self.database).await {
                Ok(connection) => {
                    self.reconnect.succeeded();
                    self.connection = Some(connection);
                }
                Err(error) => {
                    self.reconnect.failed(&error);
                }
            }
        }
        self.connection.as_ref().map(|c| &c.client)
    }

    /// When the next attempt to open the connection is due, while it is lost.
    pub(super) fn next_attempt(&self) -> Option<Instant> {
        self.connection
            .is_none()
            .then(|| self.reconnect.next_attempt())
    }

    /// The next notification's payload. `None` means the connection was lost (it will be
    /// opened again at its next attempt); without a connection this never resolves.
    pub(super) async fn notification(&mut self) -> Option<String> {
        let Some(connection) = &mut self.connection else {
            return std::future::pending().await;
        };
        let received = connection.notifications.recv().await;
        if received.is_none() {
            self.lost();
        }
        received
    }

    /// The connection is gone: the first attempt to open it again is made at once, and
    /// the following ones back off.
    fn lost(&mut self) {
        self.connection = None;
        if !self.reconnect.is_down() {
            self.reconnect.attempt_now();
        }
    }
}

/// A connection that listens on [`ORG_CHANGED_CHANNEL`](orgs::ORG_CHANGED_CHANNEL); the receiver yields the payloads
/// (org names) and ends when the connection does.
async fn listen(database: &tokio_postgres::Config) -> Result<Connection> {
    let (client, mut connection) = database.connect(NoTls).await?;
    let (sender, notifications) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut messages = futures::stream::poll_fn(move |cx| connection.poll_message(cx));
        while let Some(message) = messages.next().await {
            match message {
                Ok(AsyncMessage::Notification(notification)) => {
                    let _ = sender.send(notification.payload().to_owned());
                }
                Ok(_) => {}
                Err(error) => {
                    tracing::warn!(%error, "the listening connection closed");
                    break;
                }
            }
        }
    });
    orgs::listen_for_changes(&client).await?;
    Ok(Connection {
        client,
        notifications,
    })
}
