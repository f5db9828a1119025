//! Misbehaviour of query jobs on demand, for testing clients: a job that ends `Failed`
//! (after some records, with an `errorMessage`), slow processing, the "412 poll race"
//! (job info already says `JobComplete` while the results resource still answers 412
//! `JOB_NOT_COMPLETE`), and a results download cut off mid-page.
//!
//! A rule applies to the next `count` query jobs created (on `object`, when it names
//! one); each job keeps what its rule said. Jobs that exist already are failed or
//! expired through the admin API directly (see [`super::admin`]).

use serde::{Deserialize, Serialize};

/// Salesforce's text when a query job gives up after its internal retries ("Bulk API
/// 2.0 Limits": "If you receive a message that the API retried more than 15 times, apply
/// a filter criteria and try again"); the exact wording of `errorMessage` is not
/// documented.
pub const DEFAULT_FAILURE: &str =
    "Retried more than 15 times. Apply a filter criteria to the query and try again.";

/// What happens to the next matching query jobs. `Default` is a rule for one job that
/// changes nothing; set the parts wanted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct QueryJobFault {
    /// Only jobs querying this object (any case); all jobs when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object: Option<String>,
    /// How many jobs the rule applies to.
    #[serde(default = "one")]
    pub count: u32,
    /// End the job `Failed` with this many records processed (at most the result's
    /// size; 0 fails it before any).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fail_after_records: Option<u64>,
    /// The failed job's `errorMessage` (by default [`DEFAULT_FAILURE`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_message: Option<String>,
    /// This job's processing time instead of the emulator's delay.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub processing_delay_ms: Option<u64>,
    /// The first this-many results requests after `JobComplete` still answer `412
    /// JOB_NOT_COMPLETE`.
    #[serde(default)]
    pub results_not_ready: u32,
    /// The next results download of the job stops after this many records: the
    /// connection is cut with the body unfinished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cut_download_after_records: Option<usize>,
}

fn one() -> u32 {
    1
}

impl Default for QueryJobFault {
    fn default() -> Self {
        QueryJobFault {
            object: None,
            count: 1,
            fail_after_records: None,
            error_message: None,
            processing_delay_ms: None,
            results_not_ready: 0,
            cut_download_after_records: None,
        }
    }
}

impl QueryJobFault {
    fn matches(&self, object: &str) -> bool {
        self.object
            .as_deref()
            .is_none_or(|o| o.eq_ignore_ascii_case(object))
    }
}

/// The rules waiting for jobs.
#[derive(Debug, Default)]
pub struct QueryJobFaults {
    rules: Vec<QueryJobFault>,
}

impl QueryJobFaults {
    pub fn add(&mut self, rule: QueryJobFault) {
        if rule.count > 0 {
            self.rules.push(rule);
        }
    }

    pub fn clear(&mut self) {
        self.rules.clear();
    }

    pub fn view(&self) -> Vec<QueryJobFault> {
        self.rules.clone()
    }

    /// Uses up one rule matching a new job on `object`.
    pub fn take(&mut self, object: &str) -> Option<QueryJobFault> {
        let i = self.rules.iter().position(|r| r.matches(object))?;
        let rule = self.rules[i].clone();
        self.rules[i].count -= 1;
        if self.rules[i].count == 0 {
            self.rules.remove(i);
        }
        Some(rule)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_match_objects_and_run_out() {
        let mut faults = QueryJobFaults::default();
        faults.add(QueryJobFault {
            object: Some("Contact".into()),
            count: 2,
            results_not_ready: 1,
            ..QueryJobFault::default()
        });
        assert_eq!(faults.take("Account"), None);
        assert_eq!(faults.take("contact").map(|r| r.results_not_ready), Some(1));
        assert!(faults.take("Contact").is_some());
        assert_eq!(faults.take("Contact"), None);
        let rule: QueryJobFault =
            serde_json::from_str(r#"{"failAfterRecords": 5, "errorMessage": "boom"}"#).unwrap();
        assert_eq!(rule.count, 1);
        assert_eq!(rule.fail_after_records, Some(5));
    }
}
