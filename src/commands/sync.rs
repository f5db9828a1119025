//! `sfpg sync`: keeps the mirror of every enabled org, until SIGINT or SIGTERM. Orgs added,
//! enabled, disabled or re-rated while it runs are picked up at once (`sfpg_org_changed`).
//! On a terminal, running backfills show progress bars.

use std::time::Duration;

use clap::Args;
use sfpg_sync::{SyncSettings, WriteStrategy};

use crate::commands::observe::ObserveOptions;
use crate::commands::run;
use crate::errors::UserError;

#[derive(Debug, Args)]
pub struct SyncArgs {
    /// The mirror database, as a `postgres://` URL or a `key=value` connection string.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: String,
    #[command(flatten)]
    pub sync: SyncOptions,
    #[command(flatten)]
    pub observe: ObserveOptions,
}

/// How the sync paces itself; the flags of `sfpg sync`, which `sfpg run` takes too.
#[derive(Debug, Args)]
pub struct SyncOptions {
    /// How far the incremental cursor trails the newest SystemModstamp seen, to catch
    /// records whose transactions committed late.
    #[arg(long, default_value = "5m", value_parser = humantime::parse_duration)]
    pub overlap: Duration,
    /// How often each object is described again (with If-Modified-Since) to follow new,
    /// removed and retyped fields.
    #[arg(long, default_value = "15m", value_parser = humantime::parse_duration)]
    pub describe_every: Duration,
    /// How often each object's deleted/ list is read, for deletes polling did not see.
    #[arg(long, default_value = "10m", value_parser = humantime::parse_duration)]
    pub deleted_every: Duration,
    /// How often each object's Ids are compared in full with the mirror's.
    #[arg(long, default_value = "24h", value_parser = humantime::parse_duration)]
    pub reconcile_every: Duration,
    /// Re-read formula fields this often (their changes do not bump SystemModstamp).
    /// Off unless given.
    #[arg(long, value_parser = humantime::parse_duration)]
    pub formulas_every: Option<Duration>,
    /// How long a mirror write waits for a lock before it gives up and tries again. A row
    /// a client holds locked is not waited for: its record is left out of the write and
    /// written once the row is free.
    #[arg(long, default_value = "2s", value_parser = humantime::parse_duration)]
    pub lock_timeout: Duration,
    /// While polling is paused for the daily API budget, how often one request checks
    /// whether usage has come down.
    #[arg(long, default_value = "5m", value_parser = humantime::parse_duration)]
    pub budget_probe_every: Duration,
    /// How long an object rests after a failed turn.
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    pub retry_after: Duration,
    /// The most records asked for in one result page of a Bulk API 2.0 query job
    /// (maxRecords); each page is one request and one transaction, streamed into COPY.
    /// `auto` lets Salesforce choose.
    #[arg(long, default_value = "100000", value_parser = parse_page_size)]
    pub bulk_page_size: PageSize,
    /// The longest wait between two polls of a running Bulk API 2.0 query job (the waits
    /// start at 0.2 s and double).
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    pub bulk_poll_cap: Duration,
    /// How often an object the org's Change Data Capture stream keeps current is still
    /// polled, as a safety net; it polls at its normal rate whenever the stream is down.
    #[arg(long, default_value = "10m", value_parser = humantime::parse_duration)]
    pub poll_while_streaming: Duration,
    /// How long the org keeps change events (Salesforce: 72 h). A checkpoint older than
    /// this less 6 h is not replayed from: the stream catches up by polling first.
    #[arg(long, default_value = "72h", value_parser = humantime::parse_duration)]
    pub event_retention: Duration,
    /// How long rows stay in platform event tables (`<schema>.order_event__e`): older
    /// ones are deleted.
    #[arg(long, default_value = "7d", value_parser = humantime::parse_duration)]
    pub event_table_retention: Duration,
    /// How long this worker's lease on an org lasts without renewal: a worker killed
    /// without leaving has its orgs taken by others this long after its last heartbeat.
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    pub lease_ttl: Duration,
    /// How often this worker renews its leases and looks at the placement of the orgs
    /// again (new workers, workers gone, orgs enabled). Well below --lease-ttl.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    pub heartbeat: Duration,
    /// The most orgs this worker runs; the others go to other workers.
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_orgs: u32,
    /// The most orgs this worker takes, and the most it hands back, at one heartbeat, so
    /// that a restart moves orgs gradually. Orgs whose leases expired without being handed
    /// back (their worker died) are taken at once, beyond it.
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..))]
    pub lease_moves: u32,
    /// Database connections this worker's orgs share (their schedulers and streams take
    /// one for a turn or a batch). The heartbeat and the change listener have one each
    /// besides.
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub db_pool_size: u32,
    /// Never draw progress bars, even on a terminal.
    #[arg(long)]
    pub no_progress: bool,
}

/// A page size as typed: a number of records, or `auto` (`None`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageSize(pub Option<u32>);

/// `100000`, `100_000` or `auto`.
fn parse_page_size(text: &str) -> Result<PageSize, String> {
    let text = text.trim();
    if text.eq_ignore_ascii_case("auto") {
        return Ok(PageSize(None));
    }
    text.replace('_', "")
        .parse::<u32>()
        .ok()
        .filter(|n| *n > 0)
        .map(|n| PageSize(Some(n)))
        .ok_or_else(|| format!("{text:?} is not a number of records of at least 1, or auto"))
}

impl SyncOptions {
    /// Refuses timings that cannot hold a lease: a heartbeat must come well within the
    /// lease's time to live.
    pub fn check(&self) -> anyhow::Result<()> {
        if self.heartbeat.is_zero() || self.heartbeat * 2 > self.lease_ttl {
            return Err(UserError::new(format!(
                "--heartbeat ({}) must be above 0 and at most half of --lease-ttl ({})",
                humantime::format_duration(self.heartbeat),
                humantime::format_duration(self.lease_ttl)
            ))
            .into());
        }
        Ok(())
    }

    pub fn settings(&self) -> SyncSettings {
        SyncSettings {
            overlap: self.overlap,
            describe_interval: self.describe_every,
            deleted_interval: self.deleted_every,
            reconcile_interval: self.reconcile_every,
            formula_interval: self.formulas_every,
            lock_timeout: self.lock_timeout,
            budget_probe_interval: self.budget_probe_every,
            error_backoff: self.retry_after,
            write_strategy: WriteStrategy::default(),
            bulk_page_size: self.bulk_page_size.0,
            bulk_poll_cap: self.bulk_poll_cap,
            poll_while_streaming: self.poll_while_streaming,
            event_retention: self.event_retention,
            event_table_retention: self.event_table_retention,
            lease_ttl: self.lease_ttl,
            heartbeat: self.heartbeat,
            max_orgs: self.max_orgs,
            lease_moves: self.lease_moves,
            db_pool_size: usize::try_from(self.db_pool_size).unwrap_or(16),
            ..SyncSettings::default()
        }
    }
}

pub async fn run(args: SyncArgs) -> anyhow::Result<()> {
    run::serve(&args.database_url, Some(&args.sync), None, &args.observe).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_sizes_parse_from_counts_or_auto() {
        assert_eq!(parse_page_size("100000"), Ok(PageSize(Some(100_000))));
        assert_eq!(parse_page_size("50_000"), Ok(PageSize(Some(50_000))));
        assert_eq!(parse_page_size("Auto"), Ok(PageSize(None)));
        for bad in ["0", "-1", "lots", "99999999999"] {
            assert!(parse_page_size(bad).is_err(), "{bad:?}");
        }
    }
}
