//! One org's stream: one subscription to `/data/ChangeEvents` for the objects the org both
//! mirrors (live) and selects for Change Data Capture, run beside the org's scheduler on
//! its own database connection.
//!
//! - CDC off, nothing selected, or the selection unreadable: the stream is down with the
//!   reason, and every object polls at its normal rate.
//! - No checkpoint, one older than the retention less 6 h, or one Salesforce refuses
//!   (`ReplayIdInvalid`): subscribe at the tip and buffer, let the scheduler poll the
//!   streamed objects from their watermarks (less the overlap) until each caught up with a
//!   poll started after the subscription, then apply the buffer through the version
//!   guard. Never a silent jump.
//! - Otherwise subscribe after the saved replay id.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use sfpg_control::events::is_platform_event;
use sfpg_control::objects::{ObjectState, Phase};
use sfpg_control::orgs::OrgSettings;
use sfpg_control::streams::{self, Checkpoint, StreamState};
use sfpg_salesforce::Client;
use sfpg_salesforce::streaming::{ReplayFrom, ReplayId};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::apply::Plans;
use super::health::StreamHealth;
use super::received::CatchUp;
use super::session::{Ended, Session};
use super::transport::Transports;
use crate::db::Database;
use crate::error::Result;
use crate::plan::ObjectPlan;
use crate::settings::SyncSettings;
use crate::telemetry;
use sfpg_control::leases::Fence;

/// How often a stream that is down (nothing selected, the selection unreadable, an outage
/// the transport gave up on) looks again.
const RECHECK: Duration = Duration::from_secs(30);

/// The org's stream.
pub struct OrgStream {
    pub org: String,
    pub db: Database,
    /// The org's lease, which every write checks.
    pub fence: Option<Fence>,
    pub client: Client,
    pub transports: Transports,
    pub health: Arc<StreamHealth>,
    pub settings: SyncSettings,
}

/// What the org's last subscription streamed, to tell objects that join.
#[derive(Debug, Default)]
struct Previously(Vec<String>);

impl OrgStream {
    /// Streams until `cancel`. Fails only when the mirror database fails.
    pub async fn run(mut self, cancel: CancellationToken) -> Result<()> {
        let mut reloads = self.health.reloads();
        let mut previously = Previously::default();
        loop {
            let wait = match self.once(&cancel, &mut reloads, &mut previously).await? {
                Ended::Cancelled => {
                    // Stopped: status must not show a stream no one runs as connected.
                    self.down("the sync is stopped").await?;
                    return Ok(());
                }
                Ended::Reload => {
                    telemetry::resubscribed(&self.org, "reload");
                    None
                }
                Ended::Down(reason) => {
                    telemetry::resubscribed(&self.org, "down");
                    self.down(&reason).await?;
                    Some(RECHECK)
                }
                Ended::ReplayInvalid(reason) => {
                    telemetry::resubscribed(&self.org, "replay_invalid");
                    tracing::warn!(org = %self.org, %reason, "replay id refused: catching up by polling");
                    self.db
                        .write(self.fence.as_ref(), async |t| {
                            Checkpoint::clear(t, &self.org).await
                        })
                        .await?;
                    None
                }
            };
            if let Some(wait) = wait {
                tokio::select! {
                    () = cancel.cancelled() => return Ok(()),
                    _ = reloads.changed() => {}
                    () = tokio::time::sleep(wait) => {}
                }
            }
        }
    }

    async fn down(&mut self, reason: &str) -> Result<()> {
        self.health.set_streamed(&[]);
        self.db
            .write(self.fence.as_ref(), async |t| {
                streams::set_state(t, &self.org, StreamState::Down, Some(reason)).await
            })
            .await
    }

    /// Change Data Capture is off for the org: nothing is streamed, and the checkpoint is
    /// forgotten (events missed while off are caught up by polling when it is back on).
    async fn turned_off(&mut self) -> Result<Ended> {
        self.db
            .write(self.fence.as_ref(), async |t| {
                streams::set_streamed_objects(t, &self.org, &[]).await?;
                Checkpoint::clear(t, &self.org).await
            })
            .await?;
        Ok(Ended::Down(
            "Change Data Capture is off (sfpg org set-cdc)".into(),
        ))
    }

    /// Decides what to stream, and streams it until something ends the subscription.
    async fn once(
        &mut self,
        cancel: &CancellationToken,
        reloads: &mut watch::Receiver<u64>,
        previously: &mut Previously,
    ) -> Result<Ended> {
        reloads.mark_unchanged();
        let Some(org) = OrgSettings::load(&*self.db.get().await?, &self.org).await? else {
            return Ok(Ended::Cancelled);
        };
        if !org.cdc_enabled {
            return self.turned_off().await;
        }
        let live = live_plans(&*self.db.get().await?, &self.org, &org.schema).await?;
        let selected = match selected_entities(&self.client).await {
            Ok(selected) => selected,
            Err(error) => {
                return Ok(Ended::Down(format!(
                    "cannot read the entities selected for Change Data Capture: {error}"
                )));
            }
        };
        let plans = Plans::new(
            live.into_iter()
                .filter(|p| selected.iter().any(|s| s.eq_ignore_ascii_case(&p.object))),
        );
        let streamed = plans.objects();
        self.db
            .write(self.fence.as_ref(), async |t| {
                streams::set_streamed_objects(t, &self.org, &streamed).await
            })
            .await?;
        if streamed.is_empty() {
            return Ok(Ended::Down(
                "the org selects none of the live mirrored objects for Change Data Capture".into(),
            ));
        }
        let chosen = match self.transports.choose(&org).await {
            Ok(chosen) => chosen,
            Err(reason) => return Ok(Ended::Down(reason)),
        };
        tracing::info!(org = %self.org, transport = chosen.kind.as_str(), reason = %chosen.reason, "stream transport");
        self.db
            .write(self.fence.as_ref(), async |t| {
                streams::set_transport(t, &self.org, chosen.kind, &chosen.reason).await
            })
            .await?;
        let checkpoint = Checkpoint::load(&*self.db.get().await?, &self.org).await?;
        let now = Utc::now();
        let (from, catch_up) = start_point(&checkpoint, self.settings.event_retention, now);
        let joining = streamed
            .iter()
            .filter(|o| catch_up.is_none() && !previously.0.contains(o))
            .map(|o| (o.clone(), now))
            .collect();
        previously.0 = streamed.clone();
        let session = Session {
            joining,
            org: &self.org,
            db: &mut self.db,
            fence: self.fence.as_ref(),
            client: &self.client,
            health: &self.health,
            settings: &self.settings,
            plans,
            streamed,
            echo_client: self.client.config().call_options_client().to_owned(),
        };
        let catch_up = catch_up.map(|reason| CatchUp {
            reason: reason.to_owned(),
            since: now,
        });
        session
            .run(&*chosen.transport, from, catch_up, cancel, reloads)
            .await
    }
}

/// Where a subscription starts: after the checkpoint's replay id while the org still keeps
/// its events (the retention less 6 h of margin), else at the tip, with the reason the
/// objects must then be caught up by polling.
fn start_point(
    checkpoint: &Checkpoint,
    retention: Duration,
    now: chrono::DateTime<Utc>,
) -> (ReplayFrom, Option<&'static str>) {
    let horizon =
        chrono::Duration::from_std(retention.saturating_sub(Duration::from_secs(6 * 3600)))
            .unwrap_or_default();
    match (checkpoint.replay_id, checkpoint.saved_at) {
        (Some(id), Some(saved)) if saved > now - horizon => (ReplayFrom::After(ReplayId(id)), None),
        (Some(_), _) => (
            ReplayFrom::Tip,
            Some("the checkpoint is older than the event retention allows"),
        ),
        (None, _) => (ReplayFrom::Tip, Some("no checkpoint yet")),
    }
}

/// The plans of the org's enabled objects that are live (backfilled).
async fn live_plans(
    db: &tokio_postgres::Client,
    org: &str,
    schema: &str,
) -> Result<Vec<ObjectPlan>> {
    let mut plans = Vec::new();
    for state in ObjectState::load_all(db, org).await? {
        // Platform events have their own streams (`crate::events`).
        if state.enabled
            && state.phase == Phase::Live
            && state.paused_reason.is_none()
            && !is_platform_event(&state.object)
        {
            plans.push(ObjectPlan::from_stored(
                &state.object,
                schema,
                &state.table,
                state.mirrored_fields,
            )?);
        }
    }
    Ok(plans)
}

/// The entities the org selects for Change Data Capture on its standard channel: a Tooling
/// API query of `PlatformEventChannelMember`.
pub async fn selected_entities(client: &Client) -> Result<Vec<String>> {
    let records = client
        .tooling_query(
            "SELECT SelectedEntity FROM PlatformEventChannelMember \
             WHERE EventChannel = 'ChangeEvents'",
        )
        .collect_records()
        .await?;
    Ok(records
        .iter()
        .filter_map(|r| r.get("SelectedEntity").and_then(|v| v.as_str()))
        .map(entity_of_event)
        .collect())
}

/// `AccountChangeEvent` → `Account`, `Invoice__ChangeEvent` → `Invoice__c`.
pub fn entity_of_event(event: &str) -> String {
    if let Some(base) = event.strip_suffix("__ChangeEvent") {
        return format!("{base}__c");
    }
    event
        .strip_suffix("ChangeEvent")
        .unwrap_or(event)
        .to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selected_entities_name_objects() {
        assert_eq!(entity_of_event("AccountChangeEvent"), "Account");
        assert_eq!(entity_of_event("Invoice__ChangeEvent"), "Invoice__c");
    }

    const RETENTION: Duration = Duration::from_secs(72 * 3600);

    fn saved(hours_ago: i64, now: chrono::DateTime<Utc>) -> Checkpoint {
        Checkpoint {
            replay_id: Some(42),
            saved_at: Some(now - chrono::Duration::hours(hours_ago)),
        }
    }

    #[test]
    fn a_checkpoint_is_replayed_from_while_the_org_keeps_its_events_with_six_hours_to_spare() {
        let now = Utc::now();
        let (from, catch_up) = start_point(&saved(65, now), RETENTION, now);
        assert!(matches!(from, ReplayFrom::After(ReplayId(42))));
        assert_eq!(catch_up, None);

        let (from, catch_up) = start_point(&saved(67, now), RETENTION, now);
        assert!(matches!(from, ReplayFrom::Tip));
        assert_eq!(
            catch_up,
            Some("the checkpoint is older than the event retention allows")
        );

        let none = Checkpoint {
            replay_id: None,
            saved_at: None,
        };
        let (from, catch_up) = start_point(&none, RETENTION, now);
        assert!(matches!(from, ReplayFrom::Tip));
        assert_eq!(catch_up, Some("no checkpoint yet"));
    }
}
