//! The auth metadata every Pub/Sub call carries (`accesstoken`, `instanceurl`, `tenantid`),
//! checked against the REST side's sessions: the token must be a live session, the
//! instance URL this emulator's, the tenant this org (its 18- or 15-character Id).

use tonic::metadata::MetadataMap;
use tonic::{Code, Status};

use super::status::{AUTH_ERROR, AUTH_HEADERS_INVALID, error};
use crate::http::sessions::Session;
use crate::http::state::Shared;

/// The session a call's metadata authenticates, or the error Salesforce answers.
pub fn check(state: &Shared, metadata: &MetadataMap) -> Result<Session, Status> {
    let header = |name: &str| {
        metadata
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .filter(|v| !v.is_empty())
    };
    let (Some(token), Some(instance_url), Some(tenant)) = (
        header("accesstoken"),
        header("instanceurl"),
        header("tenantid"),
    ) else {
        return Err(error(
            Code::Unauthenticated,
            AUTH_HEADERS_INVALID,
            "The accesstoken, instanceurl and tenantid headers are required.",
        ));
    };
    let denied = || {
        error(
            Code::Unauthenticated,
            AUTH_ERROR,
            "An authentication exception occurred. Provide valid authentication via metadata headers.",
        )
    };
    let session = state.sessions().session(token).ok_or_else(denied)?;
    let org_id15: String = state.org_id.chars().take(15).collect();
    if tenant != state.org_id && tenant != org_id15 {
        return Err(denied());
    }
    if instance_url.trim_end_matches('/') != state.instance_url.trim_end_matches('/') {
        return Err(denied());
    }
    Ok(session)
}
