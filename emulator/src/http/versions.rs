//! API versions: which ones the emulator serves, which are retired (410 GONE), and the
//! `/services/data/` and `/services/data/vXX.X/` listings.

use axum::Json as JsonResponse;
use axum::extract::{Extension, State};
use serde_json::{Value as Json, json};

use super::auth::Caller;
use super::state::AppState;

/// `GET /services/data/`: needs no session and is not counted.
pub async fn versions() -> JsonResponse<Json> {
    JsonResponse(versions_body())
}

/// `GET /services/data/vXX.X/`.
pub async fn resources(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> JsonResponse<Json> {
    JsonResponse(resources_body(
        caller.version,
        &state.identity_url(&caller.user_id),
    ))
}

/// The oldest version Salesforce still serves (21.0–30.0 retired in Summer '25).
pub const OLDEST: u16 = 31;
/// The newest version the emulator serves.
pub const NEWEST: u16 = 62;

/// A served API version, by its major number (`62` for `v62.0`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ApiVersion(pub u16);

impl ApiVersion {
    /// `62.0`.
    pub fn number(self) -> String {
        format!("{}.0", self.0)
    }

    /// `/services/data/v62.0`.
    pub fn base_path(self) -> String {
        format!("/services/data/v{}.0", self.0)
    }

    /// The release that introduced the version: `Winter '25` for 62.0. Three releases a
    /// year, Spring, Summer and Winter (named after the following year), and 31.0 was
    /// Summer '14.
    pub fn label(self) -> String {
        let since = u32::from(self.0.saturating_sub(OLDEST));
        // Steps from Summer '14: Summer, Winter, Spring, Summer, ...
        let season = ["Summer", "Winter", "Spring"][(since % 3) as usize];
        let year = 14 + since / 3 + u32::from(since % 3 != 0);
        format!("{season} '{year:02}")
    }
}

/// What a `vXX.X` path segment names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VersionCheck {
    Served(ApiVersion),
    /// A version Salesforce has retired: 410 GONE.
    Retired,
    /// Not a version at all, or one that does not exist yet: 404 NOT_FOUND.
    Unknown,
}

/// Reads `v62.0` (the only spelling Salesforce accepts).
pub fn check(segment: &str) -> VersionCheck {
    let Some(number) = segment.strip_prefix('v') else {
        return VersionCheck::Unknown;
    };
    let Some(major) = number.strip_suffix(".0") else {
        return VersionCheck::Unknown;
    };
    if major.is_empty() || !major.bytes().all(|b| b.is_ascii_digit()) || major.starts_with('0') {
        return VersionCheck::Unknown;
    }
    match major.parse::<u16>() {
        Ok(m) if (OLDEST..=NEWEST).contains(&m) => VersionCheck::Served(ApiVersion(m)),
        Ok(m) if (7..OLDEST).contains(&m) => VersionCheck::Retired,
        _ => VersionCheck::Unknown,
    }
}

/// `GET /services/data/`: every served version, oldest first.
pub fn versions_body() -> Json {
    let versions: Vec<Json> = (OLDEST..=NEWEST)
        .map(ApiVersion)
        .map(|v| {
            json!({
                "label": v.label(),
                "url": v.base_path(),
                "version": v.number(),
            })
        })
        .collect();
    Json::Array(versions)
}

/// `GET /services/data/vXX.X/`: the resources this emulator serves under the version.
pub fn resources_body(version: ApiVersion, identity_url: &str) -> Json {
    let base = version.base_path();
    json!({
        "composite": format!("{base}/composite"),
        "identity": identity_url,
        "limits": format!("{base}/limits"),
        "query": format!("{base}/query"),
        "queryAll": format!("{base}/queryAll"),
        "sobjects": format!("{base}/sobjects"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_follow_the_release_train() {
        assert_eq!(ApiVersion(31).label(), "Summer '14");
        assert_eq!(ApiVersion(32).label(), "Winter '15");
        assert_eq!(ApiVersion(58).label(), "Summer '23");
        assert_eq!(ApiVersion(60).label(), "Spring '24");
        assert_eq!(ApiVersion(62).label(), "Winter '25");
    }

    #[test]
    fn classifies_version_segments() {
        assert_eq!(check("v62.0"), VersionCheck::Served(ApiVersion(62)));
        assert_eq!(check("v58.0"), VersionCheck::Served(ApiVersion(58)));
        assert_eq!(check("v25.0"), VersionCheck::Retired);
        assert_eq!(check("v7.0"), VersionCheck::Retired);
        assert_eq!(check("v63.0"), VersionCheck::Unknown);
        assert_eq!(check("v62"), VersionCheck::Unknown);
        assert_eq!(check("62.0"), VersionCheck::Unknown);
        assert_eq!(check("v062.0"), VersionCheck::Unknown);
        assert_eq!(check("sobjects"), VersionCheck::Unknown);
    }

    #[test]
    fn lists_versions_oldest_first() {
        let body = versions_body();
        let list = body.as_array().unwrap();
        assert_eq!(list.len(), usize::from(NEWEST - OLDEST + 1));
        assert_eq!(
            list.last().unwrap(),
            &json!({"label": "Winter '25", "url": "/services/data/v62.0", "version": "62.0"})
        );
    }
}
