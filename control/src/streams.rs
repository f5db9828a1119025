//! `sfpg.streams` (V13): each org's Change Data Capture stream, as the sync saves it. The
//! checkpoint (the last replay id applied) is written by [`Checkpoint::advance`] inside the
//! transaction that writes the event's rows, so a crash neither loses nor doubles an event;
//! the state (connected, catching up, down and why) and the lag are for `sfpg status`.

use chrono::{DateTime, Utc};
use serde::Serialize;
use tokio_postgres::GenericClient;

use crate::error::ControlError;

mod transport;

pub use transport::{CdcTransport, DEFAULT_PUBSUB_ENDPOINT, StreamTransport, set_transport};

/// Where a stream stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StreamState {
    /// Subscribed; events are applied as they come.
    Connected,
    /// Subscribed, but events are buffered while a catch-up by polling runs (no checkpoint,
    /// an expired or invalid replay id, a checkpoint older than the retention allows).
    CatchingUp,
    /// Not subscribed (with the reason): CDC is off, the org selects none of its objects,
    /// the connection failed.
    Down,
}

impl StreamState {
    /// The text stored in `sfpg.streams.state`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Connected => "connected",
            Self::CatchingUp => "catching_up",
            Self::Down => "down",
        }
    }

    fn parse(text: &str) -> Result<Self, ControlError> {
        match text {
            "connected" => Ok(Self::Connected),
            "catching_up" => Ok(Self::CatchingUp),
            "down" => Ok(Self::Down),
            other => Err(ControlError::Corrupt(format!(
                "sfpg.streams.state {other:?}"
            ))),
        }
    }
}

/// An org's saved checkpoint: the last event applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Checkpoint {
    /// Its replay id; `None` before the first.
    pub replay_id: Option<i64>,
    /// When it was saved.
    pub saved_at: Option<DateTime<Utc>>,
}

/// What one applied Salesforce transaction adds to the stream's row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Advance {
    /// The replay id of its last event.
    pub replay_id: i64,
    /// Its `commitTimestamp`.
    pub commit_at: DateTime<Utc>,
    /// Events it held, and of those how many sfpg's own pushes caused.
    pub events: i64,
    pub echoes: i64,
    /// GAP_* events among them.
    pub gaps: i64,
}

impl Checkpoint {
    /// The org's checkpoint, locking its row until the end of `client`'s transaction (the
    /// apply reads it there, so that the skip test and the advance see one value).
    pub async fn load_for_update(
        client: &impl GenericClient,
        org: &str,
    ) -> Result<Self, ControlError> {
        ensure_row(client, org).await?;
        let row = client
            .query_one(
                "SELECT replay_id, replay_saved_at FROM sfpg.streams WHERE org_name = $1 FOR UPDATE",
                &[&org],
            )
            .await?;
        Ok(Self {
            replay_id: row.try_get(0)?,
            saved_at: row.try_get(1)?,
        })
    }

    /// The org's checkpoint, without locking.
    pub async fn load(client: &impl GenericClient, org: &str) -> Result<Self, ControlError> {
        let row = client
            .query_opt(
                "SELECT replay_id, replay_saved_at FROM sfpg.streams WHERE org_name = $1",
                &[&org],
            )
            .await?;
        Ok(match row {
            Some(row) => Self {
                replay_id: row.try_get(0)?,
                saved_at: row.try_get(1)?,
            },
            None => Self::default(),
        })
    }

    /// Moves the checkpoint to `advance` (never back), in the caller's transaction, and
    /// records the lag from its `commitTimestamp` to now (the mirror's commit follows).
    pub async fn advance(
        client: &impl GenericClient,
        org: &str,
        advance: &Advance,
    ) -> Result<(), ControlError> {
        client
            .execute(
                "UPDATE sfpg.streams
                    SET replay_id = GREATEST(coalesce(replay_id, $2), $2),
                        replay_saved_at = clock_timestamp(),
                        commit_at = $3,
                        last_event_at = clock_timestamp(),
                        last_lag_ms = (extract(epoch FROM clock_timestamp() - $3) * 1000)::bigint,
                        events = events + $4, echoes = echoes + $5, gaps = gaps + $6
                  WHERE org_name = $1",
                &[
                    &org,
                    &advance.replay_id,
                    &advance.commit_at,
                    &advance.events,
                    &advance.echoes,
                    &advance.gaps,
                ],
            )
            .await?;
        Ok(())
    }

    /// Forgets the checkpoint (CDC turned off: a later start catches up by polling first).
    pub async fn clear(client: &impl GenericClient, org: &str) -> Result<(), ControlError> {
        client
            .execute(
                "UPDATE sfpg.streams SET replay_id = NULL, replay_saved_at = NULL WHERE org_name = $1",
                &[&org],
            )
            .await?;
        Ok(())
    }
}

async fn ensure_row(client: &impl GenericClient, org: &str) -> Result<(), ControlError> {
    client
        .execute(
            "INSERT INTO sfpg.streams (org_name) VALUES ($1) ON CONFLICT DO NOTHING",
            &[&org],
        )
        .await?;
    Ok(())
}

/// Records the stream's state, and why (for `down`, and what a catch-up is for).
pub async fn set_state(
    client: &impl GenericClient,
    org: &str,
    state: StreamState,
    reason: Option<&str>,
) -> Result<(), ControlError> {
    ensure_row(client, org).await?;
    client
        .execute(
            "UPDATE sfpg.streams SET state = $2, state_reason = $3, state_at = now()
              WHERE org_name = $1 AND (state <> $2 OR state_reason IS DISTINCT FROM $3)",
            &[&org, &state.as_str(), &reason],
        )
        .await?;
    Ok(())
}

/// Records which of the org's objects stream (the rest poll).
pub async fn set_streamed_objects(
    client: &impl GenericClient,
    org: &str,
    streamed: &[String],
) -> Result<(), ControlError> {
    client
        .execute(
            "UPDATE sfpg.objects
                SET source = CASE WHEN object_name = ANY($2) THEN 'stream' ELSE 'poll' END
              WHERE org_name = $1
                AND source <> CASE WHEN object_name = ANY($2) THEN 'stream' ELSE 'poll' END",
            &[&org, &streamed],
        )
        .await?;
    Ok(())
}

/// Records that the stream has applied every change to `objects` committed up to
/// `through` (V18 `sfpg.objects.streamed_through`): the `commitTimestamp` of the last event
/// applied, in that event's transaction, or the arrival of a keepalive with nothing held
/// back. Never moves back, and a row is rewritten only once `through` is a second past it,
/// so a busy stream does not rewrite the objects' rows with every batch.
pub async fn mark_current(
    client: &impl GenericClient,
    org: &str,
    objects: &[String],
    through: DateTime<Utc>,
) -> Result<(), ControlError> {
    if objects.is_empty() {
        return Ok(());
    }
    client
        .execute(
            "UPDATE sfpg.objects SET streamed_through = $3::timestamptz
              WHERE org_name = $1 AND object_name = ANY($2)
                AND (streamed_through IS NULL OR streamed_through < $3::timestamptz - interval '1 second')",
            &[&org, &objects, &through],
        )
        .await?;
    Ok(())
}

/// An org's stream as `sfpg status` shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StreamStatus {
    pub cdc_enabled: bool,
    /// The transport the org asks for.
    pub cdc_transport: CdcTransport,
    /// The transport the stream runs on, and why; `None` before it first ran.
    pub transport: Option<StreamTransport>,
    pub transport_reason: Option<String>,
    pub state: StreamState,
    pub reason: Option<String>,
    pub since: Option<DateTime<Utc>>,
    pub replay_id: Option<i64>,
    /// Now less when the replay id was saved, in seconds.
    pub replay_age_seconds: Option<f64>,
    /// The mirror's commit less `commitTimestamp`, for the last transaction applied.
    pub last_lag_ms: Option<i64>,
    pub events: i64,
    pub echoes: i64,
    pub gaps: i64,
}

/// Every org's stream, by org name (an org that never streamed is `down`).
pub async fn load_status(
    client: &impl GenericClient,
) -> Result<Vec<(String, StreamStatus)>, ControlError> {
    let rows = client
        .query(
            "SELECT o.name, o.cdc_enabled, coalesce(s.state, 'down'), s.state_reason, s.state_at,
                    s.replay_id, extract(epoch FROM now() - s.replay_saved_at)::float8,
                    s.last_lag_ms, coalesce(s.events, 0), coalesce(s.echoes, 0),
                    coalesce(s.gaps, 0), o.cdc_transport, s.transport, s.transport_reason
               FROM sfpg.orgs o LEFT JOIN sfpg.streams s ON s.org_name = o.name
              ORDER BY o.name",
            &[],
        )
        .await?;
    rows.iter()
        .map(|row| {
            let state: String = row.try_get(2)?;
            let cdc_transport: String = row.try_get(11)?;
            let transport: Option<String> = row.try_get(12)?;
            Ok((
                row.try_get(0)?,
                StreamStatus {
                    cdc_enabled: row.try_get(1)?,
                    cdc_transport: cdc_transport.parse().map_err(ControlError::Corrupt)?,
                    transport: transport
                        .as_deref()
                        .map(StreamTransport::parse)
                        .transpose()?,
                    transport_reason: row.try_get(13)?,
                    state: StreamState::parse(&state)?,
                    reason: row.try_get(3)?,
                    since: row.try_get(4)?,
                    replay_id: row.try_get(5)?,
                    replay_age_seconds: row.try_get(6)?,
                    last_lag_ms: row.try_get(7)?,
                    events: row.try_get(8)?,
                    echoes: row.try_get(9)?,
                    gaps: row.try_get(10)?,
                },
            ))
        })
        .collect()
}

#[cfg(test)]
mod tests;
