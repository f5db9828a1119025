//! The errors of the Pub/Sub API as Salesforce sends them: a gRPC status whose message ends
//! with `rpcId: <id>`, and trailers `error-code` (`sfdc.platform.eventbus.grpc.…`, from the
//! "Handle Errors" table of the Pub/Sub API guide) and `rpc-id`. Every error ends the call.

use tonic::metadata::MetadataValue;
use tonic::{Code, Status};

/// Authentication failed (a token that is not a live session, another org, another
/// instance URL).
pub const AUTH_ERROR: &str = "sfdc.platform.eventbus.grpc.service.auth.error";
/// An auth header is missing or blank.
pub const AUTH_HEADERS_INVALID: &str = "sfdc.platform.eventbus.grpc.service.auth.headers.invalid";
/// The replay id is invalid or outside the retention window.
pub const REPLAY_ID_CORRUPTED: &str =
    "sfdc.platform.eventbus.grpc.subscription.fetch.replayid.corrupted";
/// `CUSTOM` without a replay id.
pub const REPLAY_ID_VALIDATION_FAILED: &str =
    "sfdc.platform.eventbus.grpc.subscription.fetch.replayid.validation.failed";
/// `num_requested` not greater than zero.
pub const REQUESTED_EVENTS_INVALID: &str =
    "sfdc.platform.eventbus.grpc.subscription.fetch.requested.events.invalid";
/// A later FetchRequest names another topic.
pub const FETCH_TOPIC_MISMATCH: &str =
    "sfdc.platform.eventbus.grpc.subscription.fetch.topic.mismatch";
/// A later PublishRequest names another topic.
pub const PUBLISH_TOPIC_MISMATCH: &str = "sfdc.platform.eventbus.grpc.publish.topic.mismatch";
/// A PublishRequest without events.
pub const PUBLISH_EVENT_COUNT_INVALID: &str =
    "sfdc.platform.eventbus.grpc.publish.event.count.invalid";
/// No such topic.
pub const TOPIC_NOT_FOUND: &str = "sfdc.platform.eventbus.grpc.topic.not.found";
/// A blank topic name.
pub const TOPIC_VALIDATION_EMPTY: &str = "sfdc.platform.eventbus.grpc.topic.validation.empty";
/// The topic exists but the call is not allowed on it (publishing change events).
pub const TOPIC_PERMISSION: &str = "sfdc.platform.eventbus.grpc.topic.meta.permission";
/// A blank schema id.
pub const SCHEMA_VALIDATION_FAILED: &str = "sfdc.platform.eventbus.grpc.schema.validation.failed";
/// A schema id the server does not know.
pub const SCHEMA_PERMISSION: &str = "sfdc.platform.eventbus.grpc.schema.meta.permission";
/// The service is going away (the emulator shuts down).
pub const SERVICE_UNAVAILABLE: &str = "sfdc.platform.eventbus.grpc.service.unavailable";
/// Something inside the subscription failed.
pub const SUBSCRIPTION_INTERNAL: &str = "sfdc.platform.eventbus.grpc.subscription.internal.error";

/// A new RPC id (a UUID, as Salesforce's look).
pub fn rpc_id() -> String {
    let bytes: [u8; 16] = rand::random();
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

/// The status `code` with Salesforce's `error_code` trailer and an RPC id.
pub fn error(code: Code, error_code: &str, message: &str) -> Status {
    let rpc_id = rpc_id();
    let mut status = Status::new(code, format!("{message} rpcId: {rpc_id}"));
    let metadata = status.metadata_mut();
    if let Ok(value) = MetadataValue::try_from(error_code) {
        metadata.insert("error-code", value);
    }
    if let Ok(value) = MetadataValue::try_from(rpc_id.as_str()) {
        metadata.insert("rpc-id", value);
    }
    status
}

/// The `error-code` trailer of a status, if any.
pub fn error_code(status: &Status) -> Option<&str> {
    status.metadata().get("error-code")?.to_str().ok()
}

/// A gRPC code by its name (`UNAVAILABLE`, `unauthenticated`) or number, for the admin API.
pub fn code_by_name(name: &str) -> Option<Code> {
    if let Ok(number) = name.parse::<i32>() {
        return Some(Code::from_i32(number));
    }
    let wanted = name.to_ascii_uppercase().replace(['-', ' '], "_");
    (0..=16).map(Code::from_i32).find(|code| {
        format!("{code:?}")
            .chars()
            .flat_map(|c| {
                let upper = c.is_uppercase();
                [
                    if upper { Some('_') } else { None },
                    Some(c.to_ascii_uppercase()),
                ]
            })
            .flatten()
            .collect::<String>()
            .trim_start_matches('_')
            == wanted
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_carry_the_error_code_and_rpc_id() {
        let status = error(Code::InvalidArgument, REPLAY_ID_CORRUPTED, "bad replay id");
        assert_eq!(error_code(&status), Some(REPLAY_ID_CORRUPTED));
        assert!(status.message().starts_with("bad replay id rpcId: "));
        assert!(status.metadata().get("rpc-id").is_some());
    }

    #[test]
    fn codes_by_name() {
        assert_eq!(code_by_name("UNAUTHENTICATED"), Some(Code::Unauthenticated));
        assert_eq!(
            code_by_name("invalid_argument"),
            Some(Code::InvalidArgument)
        );
        assert_eq!(code_by_name("14"), Some(Code::Unavailable));
        assert_eq!(code_by_name("nonsense"), None);
    }
}
