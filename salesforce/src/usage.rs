//! The org's API consumption, as Salesforce reports it in the `Sforce-Limit-Info` header of
//! every REST response: `api-usage=25/5000; per-app-api-usage=17/250(appName=sample-app)`.
//!
//! Callers read it to pause background work before the daily allocation runs out, which is
//! cheaper than learning about it from a `REQUEST_LIMIT_EXCEEDED`.

use std::fmt;

/// The response header that carries the usage.
pub const LIMIT_INFO_HEADER: &str = "Sforce-Limit-Info";

/// Calls used against an allocation over Salesforce's rolling 24 hours.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Usage {
    /// Calls counted so far.
    pub used: u64,
    /// The allocation.
    pub max: u64,
}

impl Usage {
    /// The share of the allocation used, from 0.0 upwards (it can exceed 1.0 briefly, as
    /// Salesforce enforces the limit with some lag). An allocation of zero counts as exhausted.
    pub fn fraction_used(&self) -> f64 {
        if self.max == 0 {
            return 1.0;
        }
        self.used as f64 / self.max as f64
    }

    /// Calls left before the allocation is reached.
    pub fn remaining(&self) -> u64 {
        self.max.saturating_sub(self.used)
    }
}

impl fmt::Display for Usage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.used, self.max)
    }
}

/// A connected app's own share of the org's calls, when the app has a per-app limit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PerAppUsage {
    /// The connected app's name.
    pub app_name: String,
    /// Its calls and its allocation.
    pub usage: Usage,
}

/// The parsed `Sforce-Limit-Info` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiUsage {
    /// The org-wide `api-usage`.
    pub api: Usage,
    /// The `per-app-api-usage`, when Salesforce sends it.
    pub per_app: Option<PerAppUsage>,
}

impl ApiUsage {
    /// Parses the header's value. Salesforce separates entries with `;` (some captures show
    /// `,`); unknown entries are skipped so a new one does not hide the ones we know. Returns
    /// `None` when there is no well-formed `api-usage` entry.
    pub fn parse(header: &str) -> Option<Self> {
        let mut api = None;
        let mut per_app = None;
        for entry in header.split([';', ',']).map(str::trim) {
            let Some((key, value)) = entry.split_once('=') else {
                continue;
            };
            match key.trim() {
                "api-usage" => api = parse_usage(value),
                "per-app-api-usage" => per_app = parse_per_app(value),
                _ => {}
            }
        }
        api.map(|api| Self { api, per_app })
    }
}

/// `17/250` -> `Usage { used: 17, max: 250 }`.
fn parse_usage(value: &str) -> Option<Usage> {
    let (used, max) = value.trim().split_once('/')?;
    Some(Usage {
        used: used.trim().parse().ok()?,
        max: max.trim().parse().ok()?,
    })
}

/// `17/250(appName=sample-app)`.
fn parse_per_app(value: &str) -> Option<PerAppUsage> {
    let (counts, rest) = value.split_once('(')?;
    let app_name = rest.strip_suffix(')')?.trim().strip_prefix("appName=")?;
    Some(PerAppUsage {
        app_name: app_name.to_owned(),
        usage: parse_usage(counts)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn org_usage_alone() {
        let usage = ApiUsage::parse("api-usage=18/5000").unwrap();
        assert_eq!(
            usage.api,
            Usage {
                used: 18,
                max: 5000
            }
        );
        assert_eq!(usage.per_app, None);
        assert_eq!(usage.api.remaining(), 4982);
        assert!((usage.api.fraction_used() - 0.0036).abs() < 1e-9);
    }

    #[test]
    fn with_per_app_usage() {
        let usage = ApiUsage::parse(
            "api-usage=25/5000; per-app-api-usage=17/250(appName=sample-connected-app)",
        )
        .unwrap();
        assert_eq!(
            usage.api,
            Usage {
                used: 25,
                max: 5000
            }
        );
        assert_eq!(
            usage.per_app,
            Some(PerAppUsage {
                app_name: "sample-connected-app".into(),
                usage: Usage { used: 17, max: 250 },
            })
        );
    }

    #[test]
    fn comma_separated_and_unspaced_variants() {
        let usage =
            ApiUsage::parse("api-usage=150/15000,per-app-api-usage=1/2000(appName=sync)").unwrap();
        assert_eq!(usage.api.used, 150);
        assert_eq!(usage.per_app.unwrap().app_name, "sync");
        let usage = ApiUsage::parse("api-usage=150/15000;per-app-api-usage=50/5000").unwrap();
        assert_eq!(usage.api.max, 15000);
        // Without an app name the per-app entry is not what Salesforce documents: skip it.
        assert_eq!(usage.per_app, None);
    }

    #[test]
    fn order_of_entries_does_not_matter() {
        let usage =
            ApiUsage::parse("per-app-api-usage=2/100(appName=a); api-usage=12/5000").unwrap();
        assert_eq!(
            usage.api,
            Usage {
                used: 12,
                max: 5000
            }
        );
        assert_eq!(usage.per_app.unwrap().usage, Usage { used: 2, max: 100 });
    }

    #[test]
    fn malformed_or_missing() {
        for bad in [
            "",
            "garbage",
            "api-usage=notanumber/15000",
            "api-usage=5",
            "per-app-api-usage=1/2(appName=x)",
        ] {
            assert_eq!(ApiUsage::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn over_the_allocation_and_zero_allocation() {
        let over = Usage {
            used: 5010,
            max: 5000,
        };
        assert_eq!(over.remaining(), 0);
        assert!(over.fraction_used() > 1.0);
        assert_eq!(Usage { used: 0, max: 0 }.fraction_used(), 1.0);
    }
}
