//! `GET /services/data/`: the API versions the instance serves. It needs no token and does
//! not count against the org's limits, so it is the cheap way to check a URL.

use reqwest::Method;
use serde::{Deserialize, Serialize};

use crate::client::{ApiRequest, Client, Target};
use crate::error::Result;

/// One entry of the version list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionInfo {
    /// The release name, such as `Winter '25`.
    pub label: String,
    /// The version's resource path, such as `/services/data/v62.0`.
    pub url: String,
    /// The version, such as `62.0`.
    pub version: String,
}

impl Client {
    /// The API versions the instance serves, oldest first. Asked of the instance once logged
    /// in, of the login URL before.
    pub async fn versions(&self) -> Result<Vec<VersionInfo>> {
        let request = ApiRequest::new(Method::GET, Target::DataRoot).uncounted_and_anonymous();
        self.execute(request).await?.json("version list")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_version_list() {
        let versions: Vec<VersionInfo> = serde_json::from_str(
            r#"[{"label":"Summer '24","url":"/services/data/v61.0","version":"61.0"},
                {"label":"Winter '25","url":"/services/data/v62.0","version":"62.0"}]"#,
        )
        .unwrap();
        assert_eq!(versions[1].version, "62.0");
        assert_eq!(versions[1].label, "Winter '25");
    }
}
