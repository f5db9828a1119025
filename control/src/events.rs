//! Platform events in the mirror (V15): the append-only table of each enabled event object
//! (`<schema>.order_event__e`), its triggers, and what the sync and the proxy do to it.
//!
//! - **The table.** `id bigserial` (local), `sfid` (the event's Id, which a publish returns
//!   and the bus does not carry: set for events published through the proxy), `replayid
//!   bigint UNIQUE`, `eventuuid UNIQUE` (the `EventUuid`), `createddate`, `createdbyid`
//!   (the publisher), then one column per field of the event. The capture trigger of every
//!   mirrored table (an INSERT through the proxy is published at COMMIT) and
//!   `sfpg.refuse_event_change` (an UPDATE or DELETE by anyone but the sync or the proxy's
//!   write-back is 0A000: events are immutable).
//! - **In.** The sync inserts each delivered event once: events at or below the topic's
//!   checkpoint (`sfpg.event_streams`) are skipped, and the checkpoint is saved in the same
//!   transaction as the rows. A row the proxy inserted for the same event (same
//!   `eventuuid`) is filled in, not doubled. Each event inserted or filled sends
//!   `NOTIFY <table>, '{"replayid": …, "eventuuid": …}'` at that commit.
//! - **Out.** The proxy's write-back of a published event ([`EVENT_WRITE_BACK_SQL`]) gives
//!   its row the Id and `EventUuid` of the publish, or takes over the delivered row when
//!   the bus was faster than the proxy's commit.
//! - **Retention.** Rows older than the retention (`createddate`) are deleted by the sync.

use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};
use tokio_postgres::GenericClient;

use crate::capture::{SET_SYNC_ORIGIN_SQL, install_capture_trigger};
use crate::error::ControlError;
use crate::mirror::{Column, qualified, quote_ident};

/// Whether `object` is a platform event object: its API name ends in `__e`.
pub fn is_platform_event(object: &str) -> bool {
    object.len() > 3 && object[object.len() - 3..].eq_ignore_ascii_case("__e")
}

/// The columns of an event table that hold the event's standard fields: (field, column).
pub const STANDARD_COLUMNS: [(&str, &str); 5] = [
    ("Id", "sfid"),
    ("ReplayId", "replayid"),
    ("EventUuid", "eventuuid"),
    ("CreatedDate", "createddate"),
    ("CreatedById", "createdbyid"),
];

/// Name of the trigger that refuses UPDATE and DELETE of event rows.
pub const IMMUTABLE_TRIGGER: &str = "sfpg_event_immutable";

/// The proxy's write-back of published events, on the client's connection: `$1` the push
/// ticket, `$2` and `$3` the table's schema and name, `$4` a JSON array of
/// `{"id", "sfid", "eventuuid"}` (see the module's documentation).
pub const EVENT_WRITE_BACK_SQL: &str = "SELECT sfpg.event_write_back($1, $2, $3, $4)";

/// The channel an event table's inserts are announced on: the table's name, as
/// `LISTEN order_event__e` spells it.
pub fn notify_channel(table: &str) -> &str {
    table
}

/// Creates the event table of an object (if it does not exist) with the standard columns
/// and one per `fields` column (standard ones skipped), and installs its triggers. The org's
/// schema too: an event's table may come before any sObject's (the sync sets both up at
/// once), and the first to come creates it.
pub async fn create_event_table(
    client: &impl GenericClient,
    schema: &str,
    table: &str,
    fields: &[Column],
) -> Result<(), ControlError> {
    crate::mirror::create_schema(client, schema).await?;
    let mut ddl = format!(
        "CREATE TABLE IF NOT EXISTS {} (\n  id bigserial PRIMARY KEY,\n  sfid varchar(18) UNIQUE,\n  \
         replayid bigint UNIQUE,\n  eventuuid varchar(36) UNIQUE,\n  createddate timestamptz,\n  \
         createdbyid varchar(18)",
        qualified(schema, table)
    );
    for column in fields
        .iter()
        .filter(|c| !STANDARD_COLUMNS.iter().any(|(_, s)| *s == c.name))
    {
        ddl.push_str(&format!(
            ",\n  {} {}",
            quote_ident(&column.name),
            column.column_type
        ));
    }
    ddl.push_str("\n)");
    client.batch_execute(&ddl).await?;
    client
        .batch_execute(&format!(
            "CREATE INDEX IF NOT EXISTS {} ON {} (createddate);
             CREATE OR REPLACE TRIGGER {} BEFORE UPDATE OR DELETE ON {}
                 FOR EACH ROW EXECUTE FUNCTION sfpg.refuse_event_change();",
            quote_ident(&format!("{table}_createddate_idx")),
            qualified(schema, table),
            quote_ident(IMMUTABLE_TRIGGER),
            qualified(schema, table),
        ))
        .await?;
    crate::mirror::set_provisional_default(client, schema, table).await?;
    install_capture_trigger(client, schema, table).await?;
    Ok(())
}

/// One event as the bus delivered it, with its values under their columns.
#[derive(Debug, Clone, PartialEq)]
pub struct DeliveredEvent {
    pub replay_id: i64,
    pub event_uuid: Option<String>,
    /// `CreatedDate`, as the bus carries it (ISO 8601).
    pub created_date: String,
    pub created_by_id: String,
    /// The event's own fields, by column (`order_number__c`), as JSON values
    /// (`jsonb_populate_record` converts them to the columns' types).
    pub values: Map<String, Value>,
}

impl DeliveredEvent {
    /// The row as JSON, by column.
    fn row(&self) -> Value {
        let mut row = self.values.clone();
        row.insert("replayid".into(), json!(self.replay_id));
        row.insert("eventuuid".into(), json!(self.event_uuid));
        row.insert("createddate".into(), json!(self.created_date));
        row.insert("createdbyid".into(), json!(self.created_by_id));
        Value::Object(row)
    }

    /// The `NOTIFY` payload that names its row: `{"replayid": …, "eventuuid": …}`.
    pub fn notify_payload(&self) -> String {
        // Written out so the keys keep this order, whatever serde_json's map is.
        format!(
            r#"{{"replayid":{},"eventuuid":{}}}"#,
            self.replay_id,
            json!(self.event_uuid)
        )
    }
}

/// What [`apply_delivered`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Applied {
    /// Events inserted (or filled into the proxy's row of the same event).
    pub inserted: usize,
    /// Events at or below the checkpoint: already in the table.
    pub skipped: usize,
    /// The checkpoint after.
    pub replay_id: Option<i64>,
}

/// Inserts `events` (in replay order) into the event table, each exactly once, and moves
/// the topic's checkpoint, all in the caller's transaction (on a connection of the control
/// schema's owner). `columns` are the table's columns besides `id` and `sfid`.
pub async fn apply_delivered(
    client: &impl GenericClient,
    org: &str,
    event_name: &str,
    (schema, table): (&str, &str),
    columns: &[String],
    events: &[DeliveredEvent],
) -> Result<Applied, ControlError> {
    client.batch_execute(SET_SYNC_ORIGIN_SQL).await?;
    let saved = EventCheckpoint::load_for_update(client, org, event_name)
        .await?
        .replay_id;
    let insert = insert_sql(schema, table, columns);
    let statement = client.prepare(&insert).await?;
    let mut applied = Applied {
        replay_id: saved,
        ..Applied::default()
    };
    for event in events {
        if saved.is_some_and(|saved| event.replay_id <= saved) {
            applied.skipped += 1;
            continue;
        }
        let row = event.row().to_string();
        let inserted = client.query_opt(&statement, &[&row]).await?;
        if inserted.is_some() {
            client
                .execute(
                    "SELECT pg_catalog.pg_notify($1, $2)",
                    &[&notify_channel(table), &event.notify_payload()],
                )
                .await?;
            applied.inserted += 1;
        }
        applied.replay_id = Some(event.replay_id.max(applied.replay_id.unwrap_or(i64::MIN)));
    }
    if let Some(replay_id) = applied.replay_id.filter(|id| Some(*id) != saved) {
        EventCheckpoint::advance(client, org, event_name, replay_id, applied.inserted).await?;
    }
    Ok(applied)
}

/// The insert of one delivered event: a new row (with no `sfid`: the bus does not carry
/// the event's Id, and the column's provisional default is for the proxy's rows), or the
/// proxy's row of the same event (same `eventuuid`, no replay id yet) filled in with what
/// the bus delivered.
fn insert_sql(schema: &str, table: &str, columns: &[String]) -> String {
    let list = columns
        .iter()
        .map(|c| quote_ident(c))
        .collect::<Vec<_>>()
        .join(", ");
    let excluded = columns
        .iter()
        .map(|c| format!("EXCLUDED.{}", quote_ident(c)))
        .collect::<Vec<_>>()
        .join(", ");
    let target = qualified(schema, table);
    format!(
        "INSERT INTO {target} AS t (sfid, {list})
         SELECT NULL, {list} FROM pg_catalog.jsonb_populate_record(NULL::{target}, $1::pg_catalog.text::pg_catalog.jsonb)
         ON CONFLICT (eventuuid) DO UPDATE SET ({list}) = ROW({excluded})
          WHERE t.replayid IS NULL
         RETURNING t.id"
    )
}

/// Deletes the rows of an event table whose `createddate` is before `cutoff` (the
/// retention), in the caller's transaction. Returns how many.
pub async fn delete_older_than(
    client: &impl GenericClient,
    schema: &str,
    table: &str,
    cutoff: DateTime<Utc>,
) -> Result<u64, ControlError> {
    client.batch_execute(SET_SYNC_ORIGIN_SQL).await?;
    Ok(client
        .execute(
            &format!(
                "DELETE FROM {} WHERE createddate < $1",
                qualified(schema, table)
            ),
            &[&cutoff],
        )
        .await?)
}

/// A topic's saved checkpoint and counts (`sfpg.event_streams`).
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize)]
pub struct EventCheckpoint {
    pub event_name: String,
    pub replay_id: Option<i64>,
    pub saved_at: Option<DateTime<Utc>>,
    pub state: String,
    pub state_reason: Option<String>,
    pub events: i64,
    pub last_event_at: Option<DateTime<Utc>>,
}

impl EventCheckpoint {
    /// The topic's checkpoint, locking its row until the end of the caller's transaction.
    pub async fn load_for_update(
        client: &impl GenericClient,
        org: &str,
        event_name: &str,
    ) -> Result<Self, ControlError> {
        ensure_row(client, org, event_name).await?;
        let row = client
            .query_one(
                &format!("{SELECT_CHECKPOINT} WHERE org_name = $1 AND event_name = $2 FOR UPDATE"),
                &[&org, &event_name],
            )
            .await?;
        Self::from_row(&row)
    }

    /// Every topic of the org, by name.
    pub async fn load_all(
        client: &impl GenericClient,
        org: &str,
    ) -> Result<Vec<Self>, ControlError> {
        let rows = client
            .query(
                &format!("{SELECT_CHECKPOINT} WHERE org_name = $1 ORDER BY event_name"),
                &[&org],
            )
            .await?;
        rows.iter().map(Self::from_row).collect()
    }

    fn from_row(row: &tokio_postgres::Row) -> Result<Self, ControlError> {
        Ok(Self {
            event_name: row.try_get(0)?,
            replay_id: row.try_get(1)?,
            saved_at: row.try_get(2)?,
            state: row.try_get(3)?,
            state_reason: row.try_get(4)?,
            events: row.try_get(5)?,
            last_event_at: row.try_get(6)?,
        })
    }

    async fn advance(
        client: &impl GenericClient,
        org: &str,
        event_name: &str,
        replay_id: i64,
        inserted: usize,
    ) -> Result<(), ControlError> {
        let inserted = i64::try_from(inserted).unwrap_or(i64::MAX);
        client
            .execute(
                "UPDATE sfpg.event_streams
                    SET replay_id = GREATEST(coalesce(replay_id, $3), $3),
                        replay_saved_at = clock_timestamp(),
                        events = events + $4,
                        last_event_at = CASE WHEN $4 > 0 THEN clock_timestamp() ELSE last_event_at END
                  WHERE org_name = $1 AND event_name = $2",
                &[&org, &event_name, &replay_id, &inserted],
            )
            .await?;
        Ok(())
    }

    /// Records whether the topic's subscription is connected, and why not.
    pub async fn set_state(
        client: &impl GenericClient,
        org: &str,
        event_name: &str,
        connected: bool,
        reason: Option<&str>,
    ) -> Result<(), ControlError> {
        ensure_row(client, org, event_name).await?;
        let state = if connected { "connected" } else { "down" };
        client
            .execute(
                "UPDATE sfpg.event_streams SET state = $3, state_reason = $4, state_at = now()
                  WHERE org_name = $1 AND event_name = $2
                    AND (state, coalesce(state_reason, '')) IS DISTINCT FROM ($3, coalesce($4, ''))",
                &[&org, &event_name, &state, &reason],
            )
            .await?;
        Ok(())
    }
}

const SELECT_CHECKPOINT: &str = "SELECT event_name, replay_id, replay_saved_at, state, state_reason, events, last_event_at FROM sfpg.event_streams";

async fn ensure_row(
    client: &impl GenericClient,
    org: &str,
    event_name: &str,
) -> Result<(), ControlError> {
    client
        .execute(
            "INSERT INTO sfpg.event_streams (org_name, event_name) VALUES ($1, $2) ON CONFLICT DO NOTHING",
            &[&org, &event_name],
        )
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests;
