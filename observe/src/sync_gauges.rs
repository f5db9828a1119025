//! The sync's gauges that say where things stand rather than what happened, set at each
//! scrape from the control schema's status rows (`sfpg_control::status::load`, the rows
//! `sfpg status` and the status page show): they agree with them by construction, and a
//! lag keeps growing while the sync is stalled, since nothing in the sync has to run for
//! it to be measured.

use deadpool_postgres::{Manager, Pool};
use sfpg_control::status::OrgStatus;
use sfpg_control::streams::StreamState;

use crate::ObserveError;

/// Every `sfpg_cdc_state` value, so the states an org is not in read 0.
const STREAM_STATES: [StreamState; 3] = [
    StreamState::Connected,
    StreamState::CatchingUp,
    StreamState::Down,
];

/// Reads the status rows through a pool of one connection to the mirror database.
#[derive(Debug, Clone)]
pub struct SyncGauges {
    pool: Pool,
}

impl SyncGauges {
    /// Gauges read from the control schema of `database` (connected at the first scrape).
    pub fn new(database: tokio_postgres::Config) -> Result<SyncGauges, ObserveError> {
        let manager = Manager::new(database, tokio_postgres::NoTls);
        let pool = Pool::builder(manager)
            .max_size(1)
            .build()
            .map_err(|error| ObserveError::Pool(error.to_string()))?;
        Ok(SyncGauges { pool })
    }

    /// Sets the gauges from the rows as they are now; a database that cannot be read
    /// leaves them as they were (and says so in the log).
    pub async fn refresh(&self) {
        let loaded = async {
            let client = self.pool.get().await.map_err(|e| e.to_string())?;
            sfpg_control::status::load(&**client)
                .await
                .map_err(|e| e.to_string())
        };
        match loaded.await {
            Ok(orgs) => set(&orgs),
            Err(error) => tracing::warn!(%error, "cannot read the status rows for /metrics"),
        }
    }
}

/// Sets each org's and object's gauges from `orgs`.
fn set(orgs: &[OrgStatus]) {
    for org in orgs.iter().filter(|org| org.enabled) {
        let name = &org.name;
        metrics::gauge!("sfpg_api_daily_share", "org" => name.clone()).set(org.max_daily_share);
        let mut creating = 0.0;
        let mut running = 0.0;
        for object in org.objects.iter().filter(|object| object.enabled) {
            if let Some(lag) = object.lag_seconds {
                metrics::gauge!(
                    "sfpg_freshness_lag_seconds",
                    "org" => name.clone(),
                    "object" => object.object.clone()
                )
                .set(lag.max(0.0));
            }
            match (&object.bulk_purpose, &object.bulk_job_id) {
                (Some(_), None) => creating += 1.0,
                (Some(_), Some(_)) => running += 1.0,
                (None, _) => {}
            }
        }
        metrics::gauge!("sfpg_bulk_jobs", "org" => name.clone(), "state" => "creating")
            .set(creating);
        metrics::gauge!("sfpg_bulk_jobs", "org" => name.clone(), "state" => "running").set(running);
        let stream = org.stream.as_ref().filter(|stream| stream.cdc_enabled);
        for state in STREAM_STATES {
            let current = stream.is_some_and(|stream| stream.state == state);
            metrics::gauge!("sfpg_cdc_state", "org" => name.clone(), "state" => state.as_str())
                .set(if current { 1.0 } else { 0.0 });
        }
        if let Some(age) = stream.and_then(|stream| stream.replay_age_seconds) {
            metrics::gauge!("sfpg_cdc_last_replay_age_seconds", "org" => name.clone())
                .set(age.max(0.0));
        }
    }
}
