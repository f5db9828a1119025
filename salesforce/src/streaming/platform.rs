//! Typed platform events (`/event/<Name>__e`) and their decoding from a CometD event
//! message's `data`.
//!
//! Salesforce's CometD message of a platform event (Platform Events Developer Guide,
//! "Subscribe to Platform Event Notifications with CometD", API 52.0 and later):
//!
//! ```json
//! {"channel": "/event/Low_Ink__e",
//!  "data": {"schema": "dffQ2QLzDNHqwB8_sHMxdA",
//!           "payload": {"CreatedDate": "2017-04-09T18:31:40.517Z", "CreatedById": "005D0000001cSZs",
//!                       "Printer_Model__c": "XZO-5", "Ink_Percentage__c": 0.2},
//!           "event": {"EventUuid": "2ec0e371-1395-457f-9275-be1b527a72f7", "replayId": 2}}}
//! ```
//!
//! `EventUuid` sits beside `replayId` under `event`; older payloads carried `ReplayId` and
//! `Id` as `null` inside `payload`, and some clients see `EventUuid` there, so both places
//! are read and those system names never count as the event's own fields.

use serde::Deserialize;
use serde_json::{Map, Value};

use super::ReplayId;

/// The channel of the platform event `name`: `Order_Event__e` → `/event/Order_Event__e`.
pub fn platform_event_channel(name: &str) -> String {
    format!("/event/{name}")
}

/// Whether `channel` carries platform events (`/event/…`) rather than change events.
pub fn is_platform_event_channel(channel: &str) -> bool {
    channel.starts_with("/event/")
}

/// The platform event named by `channel` (`/event/Order_Event__e` → `Order_Event__e`).
pub fn platform_event_name(channel: &str) -> Option<&str> {
    channel
        .strip_prefix("/event/")
        .filter(|name| !name.is_empty())
}

/// One platform event message, as delivered.
#[derive(Debug, Clone, PartialEq)]
pub struct PlatformEvent {
    /// Its position on the event bus of its channel.
    pub replay_id: ReplayId,
    /// The channel it arrived on (`/event/Order_Event__e`).
    pub channel: String,
    /// The message's UUID (`EventUuid`; the Pub/Sub API's event `id`): the same value a
    /// REST publish returned in its `OPERATION_ENQUEUED` result, so a publisher can match
    /// what it sent with what arrives. `None` from servers older than API 52.0.
    pub event_uuid: Option<String>,
    /// `CreatedDate`: when it was published, the ISO text CometD carries.
    pub created_date: String,
    /// `CreatedById`: the user who published it.
    pub created_by_id: String,
    /// The event's own fields (`Order_Number__c`, …), as sent; the system fields
    /// (`CreatedDate`, `CreatedById`, `EventUuid`, `ReplayId`, `Id`) left out.
    pub fields: Map<String, Value>,
}

/// `data` of a CometD platform event message.
#[derive(Deserialize)]
struct CometdData {
    payload: Map<String, Value>,
    event: CometdEventInfo,
}

#[derive(Deserialize)]
struct CometdEventInfo {
    #[serde(rename = "replayId")]
    replay_id: i64,
    #[serde(rename = "EventUuid", default)]
    event_uuid: Option<String>,
}

/// The system fields a payload may carry besides the event's own.
const SYSTEM_FIELDS: [&str; 5] = ["CreatedDate", "CreatedById", "EventUuid", "ReplayId", "Id"];

impl PlatformEvent {
    /// The event in a CometD message's `data`:
    /// `{"schema": …, "payload": {"CreatedDate": …, "CreatedById": …, <fields>},
    ///   "event": {"EventUuid": …, "replayId": n}}`.
    pub fn from_cometd(channel: &str, data: Value) -> Result<Self, serde_json::Error> {
        let CometdData { mut payload, event } = serde_json::from_value(data)?;
        let text = |payload: &mut Map<String, Value>, name: &str| match payload.remove(name) {
            Some(Value::String(text)) => Some(text),
            _ => None,
        };
        let created_date = text(&mut payload, "CreatedDate").unwrap_or_default();
        let created_by_id = text(&mut payload, "CreatedById").unwrap_or_default();
        let payload_uuid = text(&mut payload, "EventUuid");
        for name in SYSTEM_FIELDS {
            payload.remove(name);
        }
        Ok(PlatformEvent {
            replay_id: ReplayId(event.replay_id),
            channel: channel.to_owned(),
            event_uuid: event.event_uuid.or(payload_uuid),
            created_date,
            created_by_id,
            fields: payload,
        })
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn channels_of_platform_events() {
        assert_eq!(
            platform_event_channel("Order_Event__e"),
            "/event/Order_Event__e"
        );
        assert!(is_platform_event_channel("/event/Order_Event__e"));
        assert!(!is_platform_event_channel("/data/ChangeEvents"));
        assert_eq!(
            platform_event_name("/event/Order_Event__e"),
            Some("Order_Event__e")
        );
        assert_eq!(platform_event_name("/data/AccountChangeEvent"), None);
    }

    /// The documented message of API 54.0 (`EventUuid` under `event`).
    #[test]
    fn decodes_the_documented_message() {
        let data = json!({
            "schema": "dffQ2QLzDNHqwB8_sHMxdA",
            "payload": {
                "CreatedDate": "2017-04-09T18:31:40.517Z",
                "CreatedById": "005D0000001cSZs",
                "Printer_Model__c": "XZO-5",
                "Serial_Number__c": "12345",
                "Ink_Percentage__c": 0.2
            },
            "event": {"EventUuid": "2ec0e371-1395-457f-9275-be1b527a72f7", "replayId": 2}
        });
        let event = PlatformEvent::from_cometd("/event/Low_Ink__e", data).unwrap();
        assert_eq!(event.replay_id, ReplayId(2));
        assert_eq!(event.channel, "/event/Low_Ink__e");
        assert_eq!(
            event.event_uuid.as_deref(),
            Some("2ec0e371-1395-457f-9275-be1b527a72f7")
        );
        assert_eq!(event.created_date, "2017-04-09T18:31:40.517Z");
        assert_eq!(event.created_by_id, "005D0000001cSZs");
        assert_eq!(
            serde_json::Value::Object(event.fields),
            json!({"Printer_Model__c": "XZO-5", "Serial_Number__c": "12345", "Ink_Percentage__c": 0.2})
        );
    }

    /// The older shape: `ReplayId` and `Id` null in the payload, no UUID.
    #[test]
    fn decodes_the_older_message_without_a_uuid() {
        let data = json!({
            "payload": {
                "CreatedById": "005D0000001WHiZ", "ReplayId": null,
                "CreatedDate": "2016-12-14T20:08:19Z", "Printer_Model__c": "MN-123", "Id": null
            },
            "event": {"schema": "_c1_d37defc8cfbf44229cbd4fe82167be19", "replayId": 7}
        });
        let event = PlatformEvent::from_cometd("/event/Low_Ink__e", data).unwrap();
        assert_eq!(event.replay_id, ReplayId(7));
        assert_eq!(event.event_uuid, None);
        assert_eq!(
            serde_json::Value::Object(event.fields),
            json!({"Printer_Model__c": "MN-123"})
        );
    }
}
