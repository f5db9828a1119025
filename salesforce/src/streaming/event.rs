//! Typed change events: the `ChangeEventHeader`, the changed values as Salesforce sent them,
//! and their decoding from a CometD event message's `data` (reference §6.3, §6.4).

use serde::de::Error as _;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::ReplayId;
use crate::Record;

/// What happened to the records of an event (`changeType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ChangeType {
    /// `CREATE`: every non-null field.
    Create,
    /// `UPDATE`: the changed fields and `LastModifiedDate`; a field set to null is `null`.
    Update,
    /// `DELETE`: no fields.
    Delete,
    /// `UNDELETE`: every non-null field.
    Undelete,
    /// `GAP_CREATE`: a create whose event could not be produced; re-read the records.
    GapCreate,
    /// `GAP_UPDATE`: an update whose event could not be produced; re-read the records.
    GapUpdate,
    /// `GAP_DELETE`: a delete whose event could not be produced; re-read the records.
    GapDelete,
    /// `GAP_UNDELETE`: an undelete whose event could not be produced; re-read the records.
    GapUndelete,
    /// `GAP_OVERFLOW`: a transaction over the overflow threshold; the rest of its changes to
    /// this entity are not published, and no record ids are given. Re-read the entity.
    GapOverflow,
}

impl ChangeType {
    /// Whether the event carries no values and the records must be read again: the `GAP_*`
    /// types and `GAP_OVERFLOW`.
    pub fn is_gap(self) -> bool {
        !matches!(
            self,
            ChangeType::Create | ChangeType::Update | ChangeType::Delete | ChangeType::Undelete
        )
    }

    /// Salesforce's name (`GAP_UPDATE`).
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeType::Create => "CREATE",
            ChangeType::Update => "UPDATE",
            ChangeType::Delete => "DELETE",
            ChangeType::Undelete => "UNDELETE",
            ChangeType::GapCreate => "GAP_CREATE",
            ChangeType::GapUpdate => "GAP_UPDATE",
            ChangeType::GapDelete => "GAP_DELETE",
            ChangeType::GapUndelete => "GAP_UNDELETE",
            ChangeType::GapOverflow => "GAP_OVERFLOW",
        }
    }
}

/// The `ChangeEventHeader`. Lists CometD leaves out (`nulledFields`, `diffFields`) are empty.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChangeEventHeader {
    /// The object, such as `Account`.
    pub entity_name: String,
    /// The records changed; several when one transaction changed several records of one
    /// object the same way; none for `GAP_OVERFLOW`.
    #[serde(default, deserialize_with = "crate::error::null_as_default")]
    pub record_ids: Vec<String>,
    /// What happened.
    pub change_type: ChangeType,
    /// The fields changed (compound ones as `BillingAddress.City`).
    #[serde(default, deserialize_with = "crate::error::null_as_default")]
    pub changed_fields: Vec<String>,
    /// The fields set to null (Pub/Sub only; CometD sends the value `null` instead).
    #[serde(default, deserialize_with = "crate::error::null_as_default")]
    pub nulled_fields: Vec<String>,
    /// The fields sent as a diff (Pub/Sub only).
    #[serde(default, deserialize_with = "crate::error::null_as_default")]
    pub diff_fields: Vec<String>,
    /// `com/salesforce/api/rest/62.0;client=sfpg`, or empty.
    #[serde(default, deserialize_with = "crate::error::null_as_default")]
    pub change_origin: String,
    /// The Salesforce transaction; its events share it.
    #[serde(default, deserialize_with = "crate::error::null_as_default")]
    pub transaction_key: String,
    /// The order of this event within its transaction.
    #[serde(default)]
    pub sequence_number: i64,
    /// When the transaction committed, in milliseconds since the epoch.
    pub commit_timestamp: i64,
    /// The commit's system change number: for diagnostics, never a key.
    #[serde(default)]
    pub commit_number: i64,
    /// The user who made the change.
    #[serde(default, deserialize_with = "crate::error::null_as_default")]
    pub commit_user: String,
}

/// One change event.
#[derive(Debug, Clone, PartialEq)]
pub struct ChangeEvent {
    /// Its position on the event bus.
    pub replay_id: ReplayId,
    /// The channel it arrived on.
    pub channel: String,
    /// The event schema's id, when the transport gave one.
    pub schema: Option<String>,
    /// The header.
    pub header: ChangeEventHeader,
    /// The values as sent, the header left out: compound fields nested
    /// (`"BillingAddress": {"City": …}`), a field set to null present as `null`.
    pub fields: Record,
}

/// `data` of a CometD event message.
#[derive(Deserialize)]
struct CometdData {
    #[serde(default)]
    schema: Option<String>,
    payload: Record,
    event: CometdEventInfo,
}

#[derive(Deserialize)]
struct CometdEventInfo {
    #[serde(rename = "replayId")]
    replay_id: i64,
}

impl ChangeEvent {
    /// The event in a CometD message's `data`:
    /// `{"schema": …, "payload": {"ChangeEventHeader": {…}, <fields>}, "event": {"replayId": n}}`.
    pub fn from_cometd(channel: &str, data: Value) -> Result<Self, serde_json::Error> {
        let CometdData {
            schema,
            mut payload,
            event,
        } = serde_json::from_value(data)?;
        let header = payload
            .remove("ChangeEventHeader")
            .ok_or_else(|| serde_json::Error::missing_field("ChangeEventHeader"))?;
        Ok(ChangeEvent {
            replay_id: ReplayId(event.replay_id),
            channel: channel.to_owned(),
            schema,
            header: serde_json::from_value(header)?,
            fields: payload,
        })
    }

    /// The changed values under their REST field names: compound fields spread out
    /// (`BillingAddress.City` → `BillingCity`, `Name.FirstName` → `FirstName`, a custom
    /// compound `Place__c.Latitude` → `Place__Latitude__s`); explicit `null`s kept. A
    /// compound field sent as a whole `null` stays under its own name.
    pub fn flattened_fields(&self) -> Record {
        let mut flat = Record::new();
        for (name, value) in &self.fields {
            match value {
                Value::Object(parts) => {
                    for (part, value) in parts {
                        flat.insert(component_name(name, part), value.clone());
                    }
                }
                _ => {
                    flat.insert(name.clone(), value.clone());
                }
            }
        }
        flat
    }

    /// The fields set to null: the header's `nulledFields` and every value sent as `null`,
    /// under REST field names (see [`ChangeEvent::flattened_fields`]).
    pub fn nulled_fields(&self) -> Vec<String> {
        // Pub/Sub names a compound's part `BillingAddress.City`.
        let mut nulled: Vec<String> = self
            .header
            .nulled_fields
            .iter()
            .map(|name| match name.split_once('.') {
                Some((compound, part)) => component_name(compound, part),
                None => name.clone(),
            })
            .collect();
        for (name, value) in self.flattened_fields() {
            if value.is_null() && !nulled.contains(&name) {
                nulled.push(name);
            }
        }
        nulled
    }
}

/// The REST name of `part` of the compound field `compound`.
fn component_name(compound: &str, part: &str) -> String {
    if let Some(base) = compound.strip_suffix("__c") {
        return format!("{base}__{part}__s");
    }
    if compound == "Name" {
        return part.to_owned();
    }
    match compound.strip_suffix("Address") {
        Some(prefix) => format!("{prefix}{part}"),
        None => format!("{compound}.{part}"),
    }
}

#[cfg(test)]
mod tests;
