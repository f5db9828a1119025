//! This process as a worker: its registration and heartbeat in `sfpg.workers`, and what it
//! does at each heartbeat: renew its leases (an org whose lease was not renewed was taken
//! over, and stops), read the live workers and the enabled orgs, and move what
//! [`placement`](super::placement) says, a few orgs at a time.
//!
//! The heartbeat has a connection of its own (a pool of one, opened again when lost), so
//! that orgs busy with the shared pool never delay it; its statements are unnamed, one
//! round trip each, so it works through PgBouncer in transaction mode.

use std::collections::BTreeSet;
use std::time::Duration;

use sfpg_control::connect::{self, Pool};
use sfpg_control::leases::{self, Held};
use sfpg_control::reconnect::Reconnect;
use tokio::time::Instant;

use super::orgs::Orgs;
use super::placement;
use crate::error::Result;
use crate::settings::SyncSettings;

/// How long after a lease's expiry a worker waiting for it looks again.
const EXPIRY_MARGIN: Duration = Duration::from_millis(100);

pub(super) struct Worker {
    name: String,
    control: Pool,
    ttl: Duration,
    heartbeat: Duration,
    max_orgs: u32,
    moves: usize,
    next_beat: Instant,
    /// The heartbeat's database outages, logged once each.
    reconnect: Reconnect,
}

impl Worker {
    pub(super) fn new(
        database: &tokio_postgres::Config,
        name: String,
        settings: &SyncSettings,
    ) -> Result<Self> {
        Ok(Self {
            name,
            control: connect::pool(database, 1)?,
            ttl: settings.lease_ttl,
            heartbeat: settings.heartbeat,
            max_orgs: settings.max_orgs.max(1),
            moves: usize::try_from(settings.lease_moves.max(1)).unwrap_or(usize::MAX),
            next_beat: Instant::now(),
            reconnect: Reconnect::new("the mirror database (heartbeat)"),
        })
    }

    pub(super) fn name(&self) -> &str {
        &self.name
    }

    /// Registers the worker, letting go of leases an earlier process of its name left.
    pub(super) async fn register(&self) -> Result<()> {
        let client = self.client().await?;
        leases::register(&**client, &self.name, self.ttl, self.max_orgs).await?;
        tracing::info!(worker = %self.name, ttl = ?self.ttl, heartbeat = ?self.heartbeat, max_orgs = self.max_orgs, "worker registered");
        Ok(())
    }

    async fn client(&self) -> Result<connect::Pooled> {
        Ok(self
            .control
            .get()
            .await
            .map_err(sfpg_control::ControlError::from)?)
    }

    pub(super) fn next_beat(&self) -> Instant {
        self.next_beat
    }

    pub(super) fn beat_due(&self) -> bool {
        Instant::now() >= self.next_beat
    }

    /// Something changed (an org enabled, disabled, added): look at the placement now.
    pub(super) fn beat_soon(&mut self) {
        self.next_beat = Instant::now();
    }

    /// One heartbeat: renew, then move. A database that cannot be reached is logged once
    /// per outage; the leases lapse meanwhile and the orgs' writes are refused once taken.
    pub(super) async fn beat(&mut self, orgs: &mut Orgs) {
        self.next_beat = Instant::now() + self.heartbeat;
        match self.renew_and_move(orgs).await {
            Ok(()) => self.reconnect.succeeded(),
            Err(error) => {
                self.reconnect.failed(&error);
            }
        }
        metrics::gauge!("sfpg_leases_held").set(orgs.holding().len() as f64);
    }

    async fn renew_and_move(&mut self, orgs: &mut Orgs) -> Result<()> {
        let client = self.client().await?;
        let renewed = leases::heartbeat(&**client, &self.name, self.ttl, self.max_orgs).await?;
        orgs.renewed(&renewed);
        let view = leases::view(&**client).await?;
        let holding: BTreeSet<String> = orgs.holding().keys().cloned().collect();
        let moves = placement::decide(
            &self.name,
            &view.workers,
            &view.leases,
            &holding,
            self.moves,
        );
        for org in &moves.release {
            if let Some(held) = orgs.hand_back(org) {
                self.release(&held).await;
            }
        }
        if moves.waiting > 0 {
            // Orgs are on their way to this worker (their holders hand them back at their
            // own heartbeat): look again sooner, so that they arrive within two heartbeats.
            self.next_beat = Instant::now() + self.heartbeat / 4;
        }
        if let Some(expiring) = moves.expiring {
            // A little after the expiry, so that the take finds it expired by the
            // database's clock.
            let at = Instant::now() + expiring + EXPIRY_MARGIN;
            self.next_beat = self.next_beat.min(at);
        }
        let taken = leases::take(&**client, &self.name, &moves.take, self.ttl).await?;
        for held in taken {
            tracing::info!(org = %held.org, epoch = held.epoch, "lease taken");
            metrics::counter!("sfpg_lease_epoch_changes_total", "org" => held.org.clone())
                .increment(1);
            orgs.start(held);
        }
        Ok(())
    }

    /// Hands `held` back (its task has stopped): another worker may take it at once.
    pub(super) async fn release(&self, held: &Held) {
        let released = match self.client().await {
            Ok(client) => leases::release(&**client, &self.name, held).await,
            Err(error) => {
                tracing::warn!(org = %held.org, %error, "cannot hand the org back; its lease will expire");
                return;
            }
        };
        match released {
            Ok(true) => tracing::info!(org = %held.org, epoch = held.epoch, "lease handed back"),
            Ok(false) => {}
            Err(error) => {
                tracing::warn!(org = %held.org, %error, "cannot hand the org back; its lease will expire");
            }
        }
    }

    /// The worker leaves: its leases and its row go, so its orgs move at the others' next
    /// heartbeat rather than when the leases expire.
    pub(super) async fn leave(&self) {
        let left = match self.client().await {
            Ok(client) => leases::leave(&**client, &self.name)
                .await
                .map_err(Into::into),
            Err(error) => Err(error),
        };
        match left {
            Ok(()) => tracing::info!(worker = %self.name, "worker left; its orgs are handed back"),
            Err(error) => {
                tracing::warn!(worker = %self.name, %error, "cannot hand the orgs back; their leases will expire");
            }
        }
    }
}
