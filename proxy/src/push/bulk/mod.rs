//! Large writes: a transaction pushed through Bulk API 2.0 ingest jobs instead of one
//! atomic Composite request (issue 25; docs/architecture.md, "Large writes").
//!
//! The session chooses with `sfpg.bulk_writes` ([`BulkWrites`]): `off` (the default)
//! refuses a transaction beyond one atomic request with 54000, `auto` sends such a
//! transaction through ingest jobs and smaller ones as before, `on` sends every
//! transaction through ingest jobs. The push reads the setting as the server holds it, in
//! the query that reads the transaction's id (`PUSH_CONTEXT_SQL`), so `SET`, `SET LOCAL`,
//! `set_config`, `RESET`, `ALTER ROLE … SET` and the connection's options all count, and no
//! round trip is added.
//!
//! Ingest jobs are not atomic: [`jobs`] runs one job per object and operation in the
//! plan's order (each level of creates, parents first, with the Ids of the parents Salesforce
//! created filled into their children; then updates; then deletes) and learns each record's
//! [`Fate`]; [`outcome`] turns the fates into what the client's transaction keeps (the
//! accepted records, read back), what it restores (every refused row as it was before the
//! transaction), the rows of `sfpg.write_failures` and the COMMIT's WARNING.

pub mod budget;
pub mod jobs;
pub mod outcome;
pub mod read_back;
pub mod send;

use sfpg_salesforce::RecordError;
use sfpg_salesforce::bulk::JobInfo;
use tokio_postgres::error::SqlState;

use super::Refusal;

/// The setting's name, as clients write it.
pub const SETTING: &str = "sfpg.bulk_writes";

/// How a session's large transactions are pushed: `sfpg.bulk_writes`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum BulkWrites {
    /// Only atomic pushes; a larger transaction is refused with 54000.
    #[default]
    Off,
    /// Atomic when one Composite request carries the transaction, ingest jobs beyond.
    Auto,
    /// Always ingest jobs.
    On,
}

impl BulkWrites {
    /// The setting as the server holds it: unset or empty is `off`; anything but the
    /// three values (and PostgreSQL's boolean spellings of on and off) is refused with
    /// 22023 before anything is sent.
    pub fn parse(value: Option<&str>) -> Result<BulkWrites, Refusal> {
        let value = value.unwrap_or_default().trim().to_ascii_lowercase();
        match value.as_str() {
            "" | "off" | "false" | "no" | "0" => Ok(BulkWrites::Off),
            "auto" => Ok(BulkWrites::Auto),
            "on" | "true" | "yes" | "1" => Ok(BulkWrites::On),
            _ => Err(Refusal::new(
                SqlState::INVALID_PARAMETER_VALUE,
                format!("invalid value for parameter \"{SETTING}\": \"{value}\""),
            )
            .hint("Available values: off, auto, on.")),
        }
    }

    /// Whether a plan goes through ingest jobs; `fits`: one atomic request carries it.
    pub fn uses_bulk(self, fits: bool) -> bool {
        match self {
            BulkWrites::Off => false,
            BulkWrites::Auto => !fits,
            BulkWrites::On => true,
        }
    }
}

/// What became of one record of the plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fate {
    /// Salesforce saved it: its Id (a create's new one).
    Accepted { id: String },
    /// It was not saved: refused by Salesforce in job `job`, or never sent (no job: its
    /// parent was refused, the push was cancelled or stopped before its job).
    Refused {
        job: Option<String>,
        /// Boxed: a push holds a fate per record, and most are `Accepted`.
        error: Box<RecordError>,
    },
    /// Its job was closed, then could not be followed: Salesforce may have saved it.
    Unknown,
}

/// What the ingest jobs did with a plan.
#[derive(Debug)]
pub struct BulkSent {
    /// One fate per record of the plan, in plan order.
    pub fates: Vec<Fate>,
    /// The jobs, as they ended.
    pub jobs: Vec<JobInfo>,
    /// The write journal's entry of the push.
    pub journal_id: Option<i64>,
}

impl BulkSent {
    /// Whether some record may or may not have been saved.
    pub fn uncertain(&self) -> bool {
        self.fates.iter().any(|f| matches!(f, Fate::Unknown))
    }
}

/// A job's progress, for the client's NOTICE while the push runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Progress {
    pub job_id: String,
    pub object: String,
    pub operation: &'static str,
    pub state: String,
    pub records: usize,
    pub processed: u64,
    pub failed: u64,
}

impl Progress {
    /// The NoticeResponse's fields.
    pub fn notice(&self) -> Vec<(u8, String)> {
        vec![
            (b'S', "NOTICE".to_owned()),
            (b'V', "NOTICE".to_owned()),
            (b'C', "00000".to_owned()),
            (
                b'M',
                format!(
                    "Bulk {} of {} (job {}): {} of {} records processed, {} failed ({})",
                    self.operation,
                    self.object,
                    self.job_id,
                    self.processed,
                    self.records,
                    self.failed,
                    self.state
                ),
            ),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_setting_reads_its_three_values_and_refuses_others() {
        assert_eq!(BulkWrites::parse(None).unwrap(), BulkWrites::Off);
        assert_eq!(BulkWrites::parse(Some("")).unwrap(), BulkWrites::Off);
        assert_eq!(BulkWrites::parse(Some("AUTO")).unwrap(), BulkWrites::Auto);
        assert_eq!(BulkWrites::parse(Some("on")).unwrap(), BulkWrites::On);
        assert_eq!(BulkWrites::parse(Some("true")).unwrap(), BulkWrites::On);
        let refusal = BulkWrites::parse(Some("sometimes")).unwrap_err();
        assert_eq!(refusal.sqlstate, SqlState::INVALID_PARAMETER_VALUE);
        assert!(!BulkWrites::Off.uses_bulk(false));
        assert!(BulkWrites::Auto.uses_bulk(false));
        assert!(!BulkWrites::Auto.uses_bulk(true));
        assert!(BulkWrites::On.uses_bulk(true));
    }
}
