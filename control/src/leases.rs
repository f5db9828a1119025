//! Workers and leases (V17): which sync process runs which org, with PostgreSQL as the only
//! coordinator. A worker registers with a heartbeat (`sfpg.workers`); it holds an org by its
//! lease (`sfpg.leases`: owner, expiry, epoch), taken with `FOR UPDATE SKIP LOCKED` and
//! renewed by the heartbeat; and every write it makes for the org opens its transaction
//! through the org's [`Fence`], which refuses it unless the lease still has the epoch the
//! worker took.
//!
//! Everything here is one statement outside a transaction, sent as an unnamed statement
//! (`query_typed`: parse, bind and execute in one round trip), or runs inside the caller's
//! transaction: no session state, so it works through PgBouncer in transaction mode.

use std::time::Duration;

use tokio_postgres::types::{ToSql, Type};
use tokio_postgres::{GenericClient, Transaction};

use crate::error::ControlError;

/// An org held by a worker, at the epoch it took it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Held {
    pub org: String,
    pub epoch: i64,
}

/// A live worker, as placement sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Worker {
    pub name: String,
    pub max_orgs: u32,
}

/// An enabled org's lease, as placement sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub org: String,
    /// The holder, if the lease is held and not expired.
    pub owner: Option<String>,
    pub epoch: i64,
    /// Its holder let it expire without handing it back (killed, or cut off from the
    /// database): the org runs nowhere now, unlike one handed back or never taken.
    pub expired: bool,
    /// How long until it expires, while it is held: a holder that keeps renewing keeps
    /// this near the TTL; one that died lets it run down.
    pub expires_in: Option<Duration>,
}

/// What placement decides from: the live workers and the enabled orgs' leases.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct View {
    pub workers: Vec<Worker>,
    pub leases: Vec<Lease>,
}

fn seconds(ttl: Duration) -> f64 {
    ttl.as_secs_f64()
}

fn max_orgs(max: u32) -> i32 {
    i32::try_from(max).unwrap_or(i32::MAX)
}

async fn rows(
    client: &impl GenericClient,
    sql: &str,
    params: &[(&(dyn ToSql + Sync), Type)],
) -> Result<Vec<tokio_postgres::Row>, ControlError> {
    Ok(client.query_typed(sql, params).await?)
}

/// Rows of `(org_name, epoch)` as the leases they are.
fn held(rows: &[tokio_postgres::Row]) -> Result<Vec<Held>, ControlError> {
    rows.iter()
        .map(|r| {
            Ok(Held {
                org: r.try_get(0)?,
                epoch: r.try_get(1)?,
            })
        })
        .collect()
}

/// Registers `worker` (or renews it) and starts it afresh: leases left by an earlier
/// process of the same name are let go, so they are taken again with a new epoch.
pub async fn register(
    client: &impl GenericClient,
    worker: &str,
    ttl: Duration,
    max: u32,
) -> Result<(), ControlError> {
    rows(
        client,
        "WITH freed AS (
              UPDATE sfpg.leases SET owner = NULL, expires_at = NULL
               WHERE owner = $1)
         INSERT INTO sfpg.workers (name, expires_at, max_orgs)
         VALUES ($1, now() + make_interval(secs => $2), $3)
         ON CONFLICT (name) DO UPDATE
            SET started_at = now(), heartbeat_at = now(),
                expires_at = EXCLUDED.expires_at, max_orgs = EXCLUDED.max_orgs",
        &[
            (&worker, Type::TEXT),
            (&seconds(ttl), Type::FLOAT8),
            (&max_orgs(max), Type::INT4),
        ],
    )
    .await?;
    Ok(())
}

/// The heartbeat: renews `worker` and every lease it holds, in one statement, for `ttl`
/// from now. Returns the leases it still holds: one missing from them was taken over.
pub async fn heartbeat(
    client: &impl GenericClient,
    worker: &str,
    ttl: Duration,
    max: u32,
) -> Result<Vec<Held>, ControlError> {
    let renewed = rows(
        client,
        "WITH alive AS (
              INSERT INTO sfpg.workers (name, expires_at, max_orgs)
              VALUES ($1, now() + make_interval(secs => $2), $3)
              ON CONFLICT (name) DO UPDATE
                 SET heartbeat_at = now(), expires_at = EXCLUDED.expires_at,
                     max_orgs = EXCLUDED.max_orgs)
         UPDATE sfpg.leases SET expires_at = now() + make_interval(secs => $2)
          WHERE owner = $1
         RETURNING org_name, epoch",
        &[
            (&worker, Type::TEXT),
            (&seconds(ttl), Type::FLOAT8),
            (&max_orgs(max), Type::INT4),
        ],
    )
    .await?;
    held(&renewed)
}

/// The live workers and the enabled orgs' leases, in name order.
pub async fn view(client: &impl GenericClient) -> Result<View, ControlError> {
    let workers = rows(
        client,
        "SELECT name, max_orgs FROM sfpg.workers WHERE expires_at > now() ORDER BY name",
        &[],
    )
    .await?
    .iter()
    .map(|r| {
        let max: i32 = r.try_get(1)?;
        Ok(Worker {
            name: r.try_get(0)?,
            max_orgs: u32::try_from(max).unwrap_or(1),
        })
    })
    .collect::<Result<_, ControlError>>()?;
    let leases = rows(
        client,
        "SELECT l.org_name, CASE WHEN l.expires_at > now() THEN l.owner END, l.epoch,
                l.owner IS NOT NULL AND l.expires_at <= now(),
                CASE WHEN l.expires_at > now()
                     THEN extract(epoch FROM l.expires_at - now())::float8 END
           FROM sfpg.leases l JOIN sfpg.orgs o ON o.name = l.org_name
          WHERE o.enabled ORDER BY l.org_name",
        &[],
    )
    .await?
    .iter()
    .map(|r| {
        Ok(Lease {
            org: r.try_get(0)?,
            owner: r.try_get(1)?,
            epoch: r.try_get(2)?,
            expired: r.try_get(3)?,
            expires_in: r
                .try_get::<_, Option<f64>>(4)?
                .and_then(|s| Duration::try_from_secs_f64(s).ok()),
        })
    })
    .collect::<Result<_, ControlError>>()?;
    Ok(View { workers, leases })
}

/// Takes, for `worker` and `ttl` from now, those of `orgs` whose lease is free or expired
/// and not being written under right now (rows another transaction locks are skipped, to
/// be tried at the next heartbeat). Each taken lease gets a new epoch. Returns what was
/// taken.
pub async fn take(
    client: &impl GenericClient,
    worker: &str,
    orgs: &[String],
    ttl: Duration,
) -> Result<Vec<Held>, ControlError> {
    if orgs.is_empty() {
        return Ok(Vec::new());
    }
    let taken = rows(
        client,
        "WITH free AS (
              SELECT l.org_name FROM sfpg.leases l JOIN sfpg.orgs o ON o.name = l.org_name
               WHERE l.org_name = ANY($2) AND o.enabled
                 AND (l.owner IS NULL OR l.expires_at <= now())
                 FOR UPDATE OF l SKIP LOCKED),
              taken AS (
              UPDATE sfpg.leases l
                 SET owner = $1, epoch = l.epoch + 1, taken_at = now(),
                     expires_at = now() + make_interval(secs => $3)
                FROM free WHERE l.org_name = free.org_name
              RETURNING l.org_name, l.epoch)
         SELECT org_name, epoch FROM taken ORDER BY org_name",
        &[
            (&worker, Type::TEXT),
            (&orgs, Type::TEXT_ARRAY),
            (&seconds(ttl), Type::FLOAT8),
        ],
    )
    .await?;
    held(&taken)
}

/// Lets `held` go, if `worker` still holds it at that epoch: another worker may take it at
/// once. Returns whether it was held.
pub async fn release(
    client: &impl GenericClient,
    worker: &str,
    held: &Held,
) -> Result<bool, ControlError> {
    let released = rows(
        client,
        "WITH released AS (
              UPDATE sfpg.leases SET owner = NULL, expires_at = NULL
               WHERE org_name = $2 AND owner = $1 AND epoch = $3
              RETURNING org_name)
         SELECT count(*) FROM released",
        &[
            (&worker, Type::TEXT),
            (&held.org, Type::TEXT),
            (&held.epoch, Type::INT8),
        ],
    )
    .await?;
    let count: i64 = released.first().map_or(Ok(0), |r| r.try_get(0))?;
    Ok(count > 0)
}

/// `worker` leaves: every lease it holds is let go and its row removed, so the other
/// workers take its orgs at their next heartbeat instead of after the leases expire.
pub async fn leave(client: &impl GenericClient, worker: &str) -> Result<(), ControlError> {
    rows(
        client,
        "WITH freed AS (
              UPDATE sfpg.leases SET owner = NULL, expires_at = NULL
               WHERE owner = $1)
         DELETE FROM sfpg.workers WHERE name = $1",
        &[(&worker, Type::TEXT)],
    )
    .await?;
    Ok(())
}

/// A worker's right to write for one org: the lease it took, at its epoch. The one place
/// every write of a worker for an org is checked ([`Fence::begin`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fence {
    org: String,
    owner: String,
    epoch: i64,
}

impl Fence {
    pub fn new(org: impl Into<String>, owner: impl Into<String>, epoch: i64) -> Self {
        Self {
            org: org.into(),
            owner: owner.into(),
            epoch,
        }
    }

    pub fn org(&self) -> &str {
        &self.org
    }

    pub fn owner(&self) -> &str {
        &self.owner
    }

    pub fn epoch(&self) -> i64 {
        self.epoch
    }

    /// Checks, inside `transaction`, that the lease is still this one, and keeps it so
    /// until the transaction ends: the row is locked `FOR KEY SHARE`, which a take-over's
    /// `FOR UPDATE` waits for (or skips), while the owner's own renewals do not.
    /// [`ControlError::Fenced`] otherwise: the caller rolls back.
    pub async fn check(&self, transaction: &impl GenericClient) -> Result<(), ControlError> {
        let row = transaction
            .query_typed(
                "SELECT owner, epoch FROM sfpg.leases WHERE org_name = $1 FOR KEY SHARE",
                &[(&self.org, Type::TEXT)],
            )
            .await?;
        let (owner, epoch): (Option<String>, i64) = match row.first() {
            Some(row) => (row.try_get(0)?, row.try_get(1)?),
            None => (None, 0),
        };
        if owner.as_deref() == Some(self.owner.as_str()) && epoch == self.epoch {
            return Ok(());
        }
        Err(ControlError::Fenced {
            org: self.org.clone(),
            epoch: self.epoch,
            now: match owner {
                Some(owner) => format!("{owner} holds it at epoch {epoch}"),
                None => format!("released at epoch {epoch}"),
            },
        })
    }

    /// Opens a transaction for writing the org's mirror and control rows: the writer's
    /// ([`crate::writer::begin`]: sync origin, `lock_timeout`), checked by this fence
    /// first. Every write a worker makes for an org goes through here.
    pub async fn begin<'c, C: GenericClient>(
        &self,
        client: &'c mut C,
        lock_timeout: Option<Duration>,
    ) -> Result<Transaction<'c>, ControlError> {
        let transaction = crate::writer::begin(client, lock_timeout).await?;
        self.check(&transaction).await?;
        Ok(transaction)
    }
}

/// Opens a transaction for a worker's write for an org: through `fence` when the org runs
/// under a lease (the sync's supervisor), plainly when the caller is the org's only writer
/// by construction (a test or a benchmark driving one scheduler). The one transaction opener
/// of the sync's writes.
pub async fn begin<'c, C: GenericClient>(
    client: &'c mut C,
    fence: Option<&Fence>,
    lock_timeout: Option<Duration>,
) -> Result<Transaction<'c>, ControlError> {
    match fence {
        Some(fence) => fence.begin(client, lock_timeout).await,
        None => crate::writer::begin(client, lock_timeout).await,
    }
}

#[cfg(test)]
mod tests;
