//! One change event as the bus keeps it: the `ChangeEventHeader`, the body fields as
//! Salesforce sends them (compound fields nested, explicit nulls kept), and its replay id.

use serde_json::{Map, Value as Json, json};

/// What happened to the records of an event (`changeType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ChangeType {
    Create,
    Update,
    Delete,
    Undelete,
    GapCreate,
    GapUpdate,
    GapDelete,
    GapUndelete,
    GapOverflow,
}

impl ChangeType {
    /// The wire name: `CREATE`, `GAP_OVERFLOW`, ...
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

    /// The type a wire name names (the admin API's gap injection takes these).
    pub fn parse(text: &str) -> Option<ChangeType> {
        [
            ChangeType::Create,
            ChangeType::Update,
            ChangeType::Delete,
            ChangeType::Undelete,
            ChangeType::GapCreate,
            ChangeType::GapUpdate,
            ChangeType::GapDelete,
            ChangeType::GapUndelete,
            ChangeType::GapOverflow,
        ]
        .into_iter()
        .find(|t| t.as_str().eq_ignore_ascii_case(text))
    }
}

/// `ChangeEventHeader`, with every field Salesforce documents. `nulledFields` and
/// `diffFields` are kept for the Pub/Sub API; CometD does not send them.
#[derive(Debug, Clone, PartialEq)]
pub struct ChangeEventHeader {
    pub entity_name: String,
    pub record_ids: Vec<String>,
    pub change_type: ChangeType,
    pub changed_fields: Vec<String>,
    pub nulled_fields: Vec<String>,
    pub diff_fields: Vec<String>,
    pub change_origin: String,
    pub transaction_key: String,
    pub sequence_number: i64,
    /// Milliseconds since the epoch.
    pub commit_timestamp: i64,
    pub commit_number: i64,
    pub commit_user: String,
}

/// One event on the bus.
#[derive(Debug, Clone, PartialEq)]
pub struct ChangeEvent {
    pub replay_id: i64,
    pub header: ChangeEventHeader,
    /// The body: field name to value, compound fields as nested objects, a field set to
    /// null present as `null`.
    pub fields: Map<String, Json>,
}

impl ChangeEvent {
    /// The change event's name: `AccountChangeEvent`, `Employee__ChangeEvent`.
    pub fn event_name(&self) -> String {
        event_name(&self.header.entity_name)
    }

    /// The CometD message for this event on `channel`.
    pub fn cometd_message(&self, channel: &str) -> Json {
        let h = &self.header;
        let mut payload = Map::new();
        payload.insert(
            "ChangeEventHeader".to_owned(),
            json!({
                "entityName": h.entity_name,
                "recordIds": h.record_ids,
                "changeType": h.change_type.as_str(),
                "changeOrigin": h.change_origin,
                "transactionKey": h.transaction_key,
                "sequenceNumber": h.sequence_number,
                "commitTimestamp": h.commit_timestamp,
                "commitNumber": h.commit_number,
                "commitUser": h.commit_user,
                "changedFields": h.changed_fields,
            }),
        );
        payload.extend(self.fields.clone());
        json!({
            "channel": channel,
            "data": {
                "schema": schema_id(&h.entity_name),
                "payload": payload,
                "event": {"replayId": self.replay_id},
            },
        })
    }
}

/// `Account` → `AccountChangeEvent`; `Employee__c` → `Employee__ChangeEvent`.
pub fn event_name(entity: &str) -> String {
    match entity.strip_suffix("__c") {
        Some(base) => format!("{base}__ChangeEvent"),
        None => format!("{entity}ChangeEvent"),
    }
}

/// The channel of one entity's events: `/data/AccountChangeEvent`.
pub fn channel_for(entity: &str) -> String {
    format!("/data/{}", event_name(entity))
}

/// The channel of every selected entity's events.
pub fn all_channel() -> &'static str {
    "/data/ChangeEvents"
}

/// A stable schema id per entity (or event topic), shaped like Salesforce's (22 URL-safe
/// characters).
pub(crate) fn schema_id(entity: &str) -> String {
    use base64::Engine;
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(entity.as_bytes());
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&digest[..16])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channels_follow_salesforce_names() {
        assert_eq!(channel_for("Account"), "/data/AccountChangeEvent");
        assert_eq!(channel_for("Invoice__c"), "/data/Invoice__ChangeEvent");
        assert_eq!(schema_id("Account").len(), 22);
        assert_eq!(
            ChangeType::parse("gap_overflow"),
            Some(ChangeType::GapOverflow)
        );
    }
}
