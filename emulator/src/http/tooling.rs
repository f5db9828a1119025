//! The Tooling API query, for the one object the emulator keeps there:
//! `PlatformEventChannelMember`, the entities selected for Change Data Capture on the
//! standard `ChangeEvents` channel. `GET /services/data/vXX.X/tooling/query?q=SELECT
//! SelectedEntity FROM PlatformEventChannelMember WHERE EventChannel = 'ChangeEvents'`
//! answers one record per selected entity, `SelectedEntity` being its change event's
//! name (`AccountChangeEvent`, `Employee__ChangeEvent`) and `DeveloperName`
//! `ChangeEvents_<EventName>`, as the Tooling API reference describes the object.
//!
//! Only `SELECT <fields> FROM PlatformEventChannelMember [WHERE EventChannel = '<name>']`
//! is understood; any other object is `INVALID_TYPE`, any other shape `MALFORMED_QUERY`.

use axum::Json;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Map, Value as JsonValue, json};

use super::auth::Caller;
use super::error::RestError;
use super::state::AppState;
use crate::events::event_name;
use crate::ids::{DEFAULT_POD, IdGenerator};

const OBJECT: &str = "PlatformEventChannelMember";
const FIELDS: [&str; 4] = ["Id", "DeveloperName", "EventChannel", "SelectedEntity"];
/// The standard channel of Change Data Capture selections.
const STANDARD_CHANNEL: &str = "ChangeEvents";

#[derive(Debug, Deserialize)]
pub struct QueryParams {
    q: Option<String>,
}

/// What the query asks for.
#[derive(Debug, PartialEq)]
struct MemberQuery {
    fields: Vec<String>,
    channel: Option<String>,
}

fn malformed(message: &str) -> RestError {
    RestError::bad_request("MALFORMED_QUERY", message)
}

/// Reads `SELECT a, b FROM PlatformEventChannelMember [WHERE EventChannel = 'x']`.
fn parse(soql: &str) -> Result<MemberQuery, RestError> {
    let words: Vec<&str> = soql.split_whitespace().collect();
    let text = words.join(" ");
    let upper = text.to_ascii_uppercase();
    let rest = upper
        .strip_prefix("SELECT ")
        .ok_or_else(|| malformed("unexpected token: expected SELECT"))?;
    let from = rest
        .find(" FROM ")
        .ok_or_else(|| malformed("unexpected token: expected FROM"))?;
    let fields_text = &text["SELECT ".len().."SELECT ".len() + from];
    let after_from = &text["SELECT ".len() + from + " FROM ".len()..];
    let (object, condition) = match after_from.split_once(' ') {
        Some((object, condition)) => (object, Some(condition)),
        None => (after_from, None),
    };
    if !object.eq_ignore_ascii_case(OBJECT) {
        return Err(RestError::bad_request(
            "INVALID_TYPE",
            format!("sObject type '{object}' is not supported."),
        ));
    }
    let mut fields = Vec::new();
    for field in fields_text.split(',').map(str::trim) {
        let known = FIELDS
            .iter()
            .find(|f| f.eq_ignore_ascii_case(field))
            .ok_or_else(|| {
                RestError::bad_request(
                    "INVALID_FIELD",
                    format!("No such column '{field}' on entity '{OBJECT}'. If you are attempting to use a custom field, be sure to append the '__c' after the custom field name. Please reference your WSDL or the describe call for the appropriate names."),
                )
            })?;
        fields.push((*known).to_owned());
    }
    let channel = match condition {
        None => None,
        Some(condition) => Some(channel_condition(condition)?),
    };
    Ok(MemberQuery { fields, channel })
}

/// `WHERE EventChannel = 'ChangeEvents'` → `ChangeEvents`.
fn channel_condition(condition: &str) -> Result<String, RestError> {
    let rest = condition
        .strip_prefix("WHERE ")
        .or_else(|| condition.strip_prefix("where "))
        .ok_or_else(|| malformed(&format!("unexpected token: '{condition}'")))?;
    let (field, value) = rest
        .split_once('=')
        .ok_or_else(|| malformed("expected a comparison with ="))?;
    if !field.trim().eq_ignore_ascii_case("EventChannel") {
        return Err(malformed("only EventChannel = '…' can be filtered on"));
    }
    let value = value.trim();
    value
        .strip_prefix('\'')
        .and_then(|v| v.strip_suffix('\''))
        .map(str::to_owned)
        .ok_or_else(|| malformed("expected a quoted string"))
}

/// `GET /services/data/vXX.X/tooling/query?q=…`.
pub async fn query(
    State(state): State<AppState>,
    axum::Extension(caller): axum::Extension<Caller>,
    Query(params): Query<QueryParams>,
) -> Result<(StatusCode, Json<JsonValue>), RestError> {
    let soql = params
        .q
        .ok_or_else(|| malformed("a query is required (q=…)"))?;
    let query = parse(&soql)?;
    let selection = state.bus().selection();
    let mut ids = IdGenerator::new("0v8", DEFAULT_POD)
        .map_err(|e| RestError::bad_request("UNKNOWN_EXCEPTION", e.to_string()))?;
    let members: Vec<(String, String)> = state
        .org()
        .objects()
        // Platform events are not Change Data Capture entities.
        .filter(|def| !def.is_platform_event())
        .map(|def| (ids.next_id().to_string(), def.name.clone()))
        .filter(|(_, name)| selection.includes(name))
        .collect();
    let on_channel = query
        .channel
        .as_deref()
        .is_none_or(|c| c == STANDARD_CHANNEL);
    let records: Vec<JsonValue> = members
        .iter()
        .filter(|_| on_channel)
        .map(|(id, entity)| {
            let event = event_name(entity);
            let mut record = Map::new();
            record.insert(
                "attributes".to_owned(),
                json!({"type": OBJECT,
                       "url": format!("{}/tooling/sobjects/{OBJECT}/{id}", caller.version.base_path())}),
            );
            for field in &query.fields {
                let value = match field.as_str() {
                    "Id" => json!(id),
                    "DeveloperName" => json!(format!("{STANDARD_CHANNEL}_{event}")),
                    "EventChannel" => json!(STANDARD_CHANNEL),
                    _ => json!(event),
                };
                record.insert(field.clone(), value);
            }
            JsonValue::Object(record)
        })
        .collect();
    Ok((
        StatusCode::OK,
        Json(json!({
            "size": records.len(),
            "totalSize": records.len(),
            "done": true,
            "queryLocator": null,
            "entityTypeName": OBJECT,
            "records": records,
        })),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_member_query() {
        let q = parse(
            "SELECT SelectedEntity FROM PlatformEventChannelMember WHERE EventChannel = 'ChangeEvents'",
        )
        .unwrap();
        assert_eq!(q.fields, ["SelectedEntity"]);
        assert_eq!(q.channel.as_deref(), Some("ChangeEvents"));
        let q = parse("select id, selectedentity from platformeventchannelmember").unwrap();
        assert_eq!(q.fields, ["Id", "SelectedEntity"]);
        assert!(parse("SELECT Id FROM Account").is_err());
        assert!(parse("SELECT Nope FROM PlatformEventChannelMember").is_err());
    }
}
