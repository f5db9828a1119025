//! The Bulk API 2.0 job store, shared by query and ingest jobs: what every job has (Id,
//! state, timestamps, API version, CSV format, counters, `errorMessage`), the job info
//! JSON Salesforce sends, and a table of jobs of one kind.
//!
//! A kind of job brings its own detail (`T`): a query job its SOQL and snapshot, an
//! ingest job its uploaded data and results. The table knows nothing of either.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::ser::SerializeMap;
use serde::{Deserialize, Serialize};

use crate::ids::{DEFAULT_POD, Id, IdError, IdGenerator};
use crate::model::format_datetime;

/// A job's `state`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum JobState {
    Open,
    UploadComplete,
    InProgress,
    JobComplete,
    Failed,
    Aborted,
}

impl JobState {
    /// As job info writes it: `UploadComplete`.
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Open => "Open",
            JobState::UploadComplete => "UploadComplete",
            JobState::InProgress => "InProgress",
            JobState::JobComplete => "JobComplete",
            JobState::Failed => "Failed",
            JobState::Aborted => "Aborted",
        }
    }

    /// As error messages write it: `IN_PROGRESS` (the 412 of the results resource).
    pub fn as_upper(self) -> &'static str {
        match self {
            JobState::Open => "OPEN",
            JobState::UploadComplete => "UPLOAD_COMPLETE",
            JobState::InProgress => "IN_PROGRESS",
            JobState::JobComplete => "JOB_COMPLETE",
            JobState::Failed => "FAILED",
            JobState::Aborted => "ABORTED",
        }
    }

    /// Whether the job has finished, one way or another.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            JobState::JobComplete | JobState::Failed | JobState::Aborted
        )
    }
}

/// `columnDelimiter`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ColumnDelimiter {
    Backquote,
    Caret,
    #[default]
    Comma,
    Pipe,
    Semicolon,
    Tab,
}

impl ColumnDelimiter {
    pub fn parse(text: &str) -> Option<ColumnDelimiter> {
        Some(match text {
            "BACKQUOTE" => ColumnDelimiter::Backquote,
            "CARET" => ColumnDelimiter::Caret,
            "COMMA" => ColumnDelimiter::Comma,
            "PIPE" => ColumnDelimiter::Pipe,
            "SEMICOLON" => ColumnDelimiter::Semicolon,
            "TAB" => ColumnDelimiter::Tab,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ColumnDelimiter::Backquote => "BACKQUOTE",
            ColumnDelimiter::Caret => "CARET",
            ColumnDelimiter::Comma => "COMMA",
            ColumnDelimiter::Pipe => "PIPE",
            ColumnDelimiter::Semicolon => "SEMICOLON",
            ColumnDelimiter::Tab => "TAB",
        }
    }

    /// The byte written between fields.
    pub fn byte(self) -> u8 {
        match self {
            ColumnDelimiter::Backquote => b'`',
            ColumnDelimiter::Caret => b'^',
            ColumnDelimiter::Comma => b',',
            ColumnDelimiter::Pipe => b'|',
            ColumnDelimiter::Semicolon => b';',
            ColumnDelimiter::Tab => b'\t',
        }
    }
}

/// `lineEnding`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LineEnding {
    #[default]
    Lf,
    Crlf,
}

impl LineEnding {
    pub fn parse(text: &str) -> Option<LineEnding> {
        match text {
            "LF" => Some(LineEnding::Lf),
            "CRLF" => Some(LineEnding::Crlf),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            LineEnding::Lf => "LF",
            LineEnding::Crlf => "CRLF",
        }
    }

    pub fn bytes(self) -> &'static [u8] {
        match self {
            LineEnding::Lf => b"\n",
            LineEnding::Crlf => b"\r\n",
        }
    }
}

/// What every job has, whatever its kind.
#[derive(Debug, Clone)]
pub struct Job<T> {
    pub id: Id,
    /// `query`, `queryAll`, `insert`, `upsert`, ...
    pub operation: String,
    pub object: String,
    pub created_by_id: Id,
    pub created_date: DateTime<Utc>,
    pub system_modstamp: DateTime<Utc>,
    pub state: JobState,
    /// The major API version the job was created with (`62` for `v62.0`).
    pub api_version: u16,
    pub column_delimiter: ColumnDelimiter,
    pub line_ending: LineEnding,
    pub number_records_processed: u64,
    pub retries: u32,
    /// Milliseconds the job spent processing.
    pub total_processing_time: u64,
    pub error_message: Option<String>,
    /// What the kind of job adds.
    pub detail: T,
}

impl<T> Job<T> {
    /// Moves the job to `state` at `now`, as Salesforce stamps `systemModstamp`.
    pub fn set_state(&mut self, state: JobState, now: DateTime<Utc>) {
        self.state = state;
        self.system_modstamp = now;
    }
}

/// Which fields a job info answer carries: creating a job (and changing its state)
/// answers with the short form; a job in a list adds `jobType`; getting one job adds
/// the counters too.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InfoForm {
    Short,
    List,
    Full,
}

/// Where in job info a kind of job adds keys of its own. Salesforce interleaves them
/// with the common ones: an ingest job's `externalIdFieldName` follows `state`, its
/// `contentUrl` follows `apiVersion`, its `numberRecordsFailed` follows
/// `numberRecordsProcessed`, and its processing times (a query job's
/// `isPkChunkingSupported`) follow `totalProcessingTime`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeysAt {
    AfterState,
    AfterApiVersion,
    AfterNumberRecordsProcessed,
    AfterTotalProcessingTime,
}

/// The kind-specific part of job info: the `jobType`, and the keys the kind adds.
pub trait JobKind {
    /// `V2Query` or `V2Ingest`.
    const JOB_TYPE: &'static str;

    /// Adds this kind's keys at `at` in the `form` being written, in Salesforce's order.
    /// (The counters, and so the last two places, appear in the full form only.)
    fn keys<M: SerializeMap>(
        &self,
        _at: KeysAt,
        _form: InfoForm,
        _map: &mut M,
    ) -> Result<(), M::Error> {
        Ok(())
    }
}

/// A job rendered as job info JSON, keys in Salesforce's order.
pub struct JobInfo<'a, T> {
    pub job: &'a Job<T>,
    pub form: InfoForm,
}

impl<T: JobKind> Serialize for JobInfo<'_, T> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let (job, form) = (self.job, self.form);
        let mut map = serializer.serialize_map(None)?;
        map.serialize_entry("id", job.id.as_str())?;
        map.serialize_entry("operation", &job.operation)?;
        map.serialize_entry("object", &job.object)?;
        map.serialize_entry("createdById", job.created_by_id.as_str())?;
        map.serialize_entry("createdDate", &format_datetime(&job.created_date))?;
        map.serialize_entry("systemModstamp", &format_datetime(&job.system_modstamp))?;
        map.serialize_entry("state", job.state.as_str())?;
        job.detail.keys(KeysAt::AfterState, form, &mut map)?;
        map.serialize_entry("concurrencyMode", "Parallel")?;
        map.serialize_entry("contentType", "CSV")?;
        // A number, `62.0`, as Salesforce writes it.
        map.serialize_entry("apiVersion", &f64::from(job.api_version))?;
        job.detail.keys(KeysAt::AfterApiVersion, form, &mut map)?;
        if form != InfoForm::Short {
            map.serialize_entry("jobType", T::JOB_TYPE)?;
        }
        map.serialize_entry("lineEnding", job.line_ending.as_str())?;
        map.serialize_entry("columnDelimiter", job.column_delimiter.as_str())?;
        if form == InfoForm::Full {
            map.serialize_entry("numberRecordsProcessed", &job.number_records_processed)?;
            job.detail
                .keys(KeysAt::AfterNumberRecordsProcessed, form, &mut map)?;
            map.serialize_entry("retries", &job.retries)?;
            map.serialize_entry("totalProcessingTime", &job.total_processing_time)?;
            job.detail
                .keys(KeysAt::AfterTotalProcessingTime, form, &mut map)?;
            if let Some(message) = &job.error_message {
                map.serialize_entry("errorMessage", message)?;
            }
        }
        map.end()
    }
}

/// The body of a `PATCH` of a job: the state asked for.
#[derive(Debug, Deserialize)]
pub struct StateBody {
    pub state: Option<String>,
}

/// Mints job Ids: `750` + pod + counter, shared by every kind so Ids never clash.
#[derive(Debug)]
pub struct JobIds(IdGenerator);

impl JobIds {
    pub fn new() -> Result<JobIds, IdError> {
        // "750" is the key prefix of Bulk jobs; the pod is the emulator's.
        Ok(JobIds(IdGenerator::new("750", DEFAULT_POD)?))
    }

    pub fn next_id(&mut self) -> Id {
        self.0.next_id()
    }
}

/// The jobs of one kind, by Id, in creation order (Ids grow).
#[derive(Debug)]
pub struct JobTable<T> {
    jobs: BTreeMap<Id, Job<T>>,
}

impl<T> Default for JobTable<T> {
    fn default() -> Self {
        JobTable {
            jobs: BTreeMap::new(),
        }
    }
}

impl<T> JobTable<T> {
    pub fn insert(&mut self, job: Job<T>) {
        self.jobs.insert(job.id, job);
    }

    /// The job with this Id (15 or 18 characters), if it exists.
    pub fn get(&self, id: &str) -> Option<&Job<T>> {
        self.jobs.get(&Id::parse(id).ok()?)
    }

    pub fn get_mut(&mut self, id: &str) -> Option<&mut Job<T>> {
        self.jobs.get_mut(&Id::parse(id).ok()?)
    }

    pub fn remove(&mut self, id: &str) -> Option<Job<T>> {
        self.jobs.remove(&Id::parse(id).ok()?)
    }

    /// Deletes the jobs that ended (`JobComplete`, `Failed`, `Aborted`) more than
    /// `lifespan` before `now`, as Salesforce deletes jobs 7 days after they end ("Bulk
    /// API 2.0 Limits": results lifespan). Returns how many went.
    pub fn expire_ended(&mut self, now: DateTime<Utc>, lifespan: chrono::Duration) -> usize {
        let before = self.jobs.len();
        self.jobs
            .retain(|_, job| !(job.state.is_terminal() && now - job.system_modstamp > lifespan));
        before - self.jobs.len()
    }

    /// Every job, oldest first.
    pub fn iter(&self) -> impl Iterator<Item = &Job<T>> {
        self.jobs.values()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    /// A kind shaped like an ingest job, to show where its keys go.
    struct Upsert;

    impl JobKind for Upsert {
        const JOB_TYPE: &'static str = "V2Ingest";

        fn keys<M: SerializeMap>(
            &self,
            at: KeysAt,
            form: InfoForm,
            map: &mut M,
        ) -> Result<(), M::Error> {
            match (at, form) {
                (KeysAt::AfterState, _) => map.serialize_entry("externalIdFieldName", "Ext__c"),
                (KeysAt::AfterApiVersion, InfoForm::Short) => map.serialize_entry(
                    "contentUrl",
                    "services/data/v62.0/jobs/ingest/7508d0000000001AAA/batches",
                ),
                (KeysAt::AfterNumberRecordsProcessed, _) => {
                    map.serialize_entry("numberRecordsFailed", &0)
                }
                _ => Ok(()),
            }
        }
    }

    fn keys(form: InfoForm) -> Vec<String> {
        let date = Utc.with_ymd_and_hms(2021, 11, 6, 17, 38, 40).unwrap();
        let id = Id::parse("7508d0000000001AAA").unwrap();
        let job = Job {
            id,
            operation: "upsert".to_owned(),
            object: "Account".to_owned(),
            created_by_id: Id::parse("0058d0000000001AAA").unwrap(),
            created_date: date,
            system_modstamp: date,
            state: JobState::Open,
            api_version: 62,
            column_delimiter: ColumnDelimiter::Comma,
            line_ending: LineEnding::Lf,
            number_records_processed: 0,
            retries: 0,
            total_processing_time: 0,
            error_message: None,
            detail: Upsert,
        };
        let json = serde_json::to_value(JobInfo { job: &job, form }).unwrap();
        assert_eq!(json["createdDate"], "2021-11-06T17:38:40.000+0000");
        assert_eq!(json["apiVersion"], serde_json::json!(62.0));
        json.as_object().unwrap().keys().cloned().collect()
    }

    #[test]
    fn a_kind_adds_its_keys_where_salesforce_puts_them() {
        assert_eq!(
            keys(InfoForm::Short),
            [
                "id",
                "operation",
                "object",
                "createdById",
                "createdDate",
                "systemModstamp",
                "state",
                "externalIdFieldName",
                "concurrencyMode",
                "contentType",
                "apiVersion",
                "contentUrl",
                "lineEnding",
                "columnDelimiter"
            ]
        );
        let full = keys(InfoForm::Full);
        let at = |key: &str| full.iter().position(|k| k == key).unwrap();
        assert_eq!(at("jobType"), at("apiVersion") + 1);
        assert_eq!(at("numberRecordsFailed"), at("numberRecordsProcessed") + 1);
        assert_eq!(full.last().map(String::as_str), Some("totalProcessingTime"));
    }
}
