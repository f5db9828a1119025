//! An ingest job's three result files joined back to the rows that were uploaded.
//!
//! `successfulResults/` has `"sf__Id","sf__Created"` then the uploaded columns,
//! `failedResults/` `"sf__Id","sf__Error"` then the uploaded columns (`sf__Id` empty for a
//! failed create), `unprocessedrecords/` the uploaded columns alone. Salesforce does not
//! keep the upload's order ("Row order not guaranteed"), and it accepts no column of the
//! caller's own (an unknown header fails the whole job), so nothing but the row itself can
//! say which result is whose.
//!
//! So rows are joined on their cells: every result row echoes the uploaded values (a
//! captured failed result echoes even a malformed date as sent), and the CSV of a part was
//! built here, so its cells are known exactly. Updates and deletes carry their `Id` among
//! the cells, which makes every such row distinct unless the same record is sent twice; a
//! create's row is told apart by all its values. Rows with the same cells are
//! interchangeable to Salesforce as to anyone: results for them go to those rows in upload
//! order. A result matching no row still waiting for one, or a row left without a result,
//! means the files do not describe the upload, and is an error.
//!
//! `sf__Error` reads `CODE:message:fields --` (`REQUIRED_FIELD_MISSING:Required fields are
//! missing: [Name]:Name --`); the message may itself hold colons, so the code is what comes
//! before the first colon and the fields what comes after the last.

use std::collections::{HashMap, VecDeque};
use std::ops::Range;

use csv::StringRecord;

use super::csv_parts::Table;
use crate::error::RecordError;

/// What became of one record of an ingest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordOutcome {
    /// Saved: the record's Id (`sf__Id`) and whether it was created (`sf__Created`).
    Succeeded { id: String, created: bool },
    /// Refused: the record's Id when the row named an existing record, and why.
    Failed {
        id: Option<String>,
        error: RecordError,
    },
    /// Never processed: the job failed or was aborted before reaching it, or the record's
    /// part was never sent.
    Unprocessed,
    /// Salesforce may or may not have saved it: its job was closed, and then following the
    /// job to its end failed (see [`IngestReport::error`](super::IngestReport::error)).
    Unknown,
}

impl RecordOutcome {
    /// Whether the record was saved.
    pub fn is_success(&self) -> bool {
        matches!(self, RecordOutcome::Succeeded { .. })
    }
}

/// Which of the three files a result row came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ResultsFile {
    Successful,
    Failed,
    Unprocessed,
}

impl ResultsFile {
    /// The path segment after the job's Id.
    pub(crate) fn segment(self) -> &'static str {
        match self {
            ResultsFile::Successful => "successfulResults",
            ResultsFile::Failed => "failedResults",
            ResultsFile::Unprocessed => "unprocessedrecords",
        }
    }

    fn lead(self) -> &'static [&'static str] {
        match self {
            ResultsFile::Successful => &["sf__Id", "sf__Created"],
            ResultsFile::Failed => &["sf__Id", "sf__Error"],
            ResultsFile::Unprocessed => &[],
        }
    }
}

/// Joins result files to the rows `rows` of `table` (one job's part). `Err` says what in
/// the files does not fit the upload.
#[derive(Debug)]
pub(crate) struct Join<'t> {
    table: &'t Table,
    rows: Range<usize>,
    waiting: HashMap<&'t [String], VecDeque<usize>>,
    outcomes: Vec<Option<RecordOutcome>>,
}

impl<'t> Join<'t> {
    pub(crate) fn new(table: &'t Table, rows: Range<usize>) -> Join<'t> {
        let mut waiting: HashMap<&[String], VecDeque<usize>> = HashMap::new();
        for i in rows.clone() {
            waiting.entry(&table.rows[i][..]).or_default().push_back(i);
        }
        Join {
            table,
            outcomes: vec![None; rows.len()],
            rows,
            waiting,
        }
    }

    /// Gives the rows of one result file their outcomes.
    pub(crate) fn add(&mut self, file: ResultsFile, csv: &[u8]) -> Result<(), String> {
        if csv.iter().all(u8::is_ascii_whitespace) {
            return Ok(());
        }
        let mut reader = csv::ReaderBuilder::new().has_headers(true).from_reader(csv);
        let header = reader
            .headers()
            .map_err(|e| format!("{}: {e}", file.segment()))?
            .clone();
        let lead = file.lead();
        let expected = lead
            .iter()
            .map(|s| (*s).to_owned())
            .chain(self.table.columns.iter().cloned());
        if !header.iter().map(str::to_owned).eq(expected) {
            return Err(format!(
                "{} has the columns {:?}, not those uploaded",
                file.segment(),
                header.iter().collect::<Vec<_>>()
            ));
        }
        let mut record = StringRecord::new();
        while reader
            .read_record(&mut record)
            .map_err(|e| format!("{}: {e}", file.segment()))?
        {
            let cells: Vec<String> = record.iter().skip(lead.len()).map(str::to_owned).collect();
            let row = self
                .waiting
                .get_mut(&cells[..])
                .and_then(VecDeque::pop_front)
                .ok_or_else(|| {
                    format!(
                        "{} has a row matching no uploaded row awaiting a result: {cells:?}",
                        file.segment()
                    )
                })?;
            self.outcomes[row - self.rows.start] = Some(outcome(file, &record));
        }
        Ok(())
    }

    /// Every row's outcome, in upload order; rows without a result are `Unprocessed`, as a
    /// job that ended `Failed` or `Aborted` leaves them.
    pub(crate) fn finish_unprocessed(self) -> Vec<RecordOutcome> {
        self.outcomes
            .into_iter()
            .map(|outcome| outcome.unwrap_or(RecordOutcome::Unprocessed))
            .collect()
    }

    /// Every row's outcome, in upload order.
    pub(crate) fn finish(self) -> Result<Vec<RecordOutcome>, String> {
        let start = self.rows.start;
        self.outcomes
            .into_iter()
            .enumerate()
            .map(|(i, outcome)| outcome.ok_or_else(|| format!("row {} has no result", start + i)))
            .collect()
    }
}

fn outcome(file: ResultsFile, record: &StringRecord) -> RecordOutcome {
    let id = record.get(0).filter(|s| !s.is_empty()).map(str::to_owned);
    match file {
        ResultsFile::Successful => RecordOutcome::Succeeded {
            id: id.unwrap_or_default(),
            created: record.get(1) == Some("true"),
        },
        ResultsFile::Failed => RecordOutcome::Failed {
            id,
            error: parse_error(record.get(1).unwrap_or_default()),
        },
        ResultsFile::Unprocessed => RecordOutcome::Unprocessed,
    }
}

/// `CODE:message:fields --` as a record error.
pub(crate) fn parse_error(text: &str) -> RecordError {
    let text = text.trim_end();
    let text = text.strip_suffix("--").unwrap_or(text).trim_end();
    let (status_code, rest) = text.split_once(':').unwrap_or((text, ""));
    let (message, fields) = rest.rsplit_once(':').unwrap_or((rest, ""));
    RecordError {
        status_code: status_code.to_owned(),
        message: message.to_owned(),
        fields: fields
            .split(',')
            .map(str::trim)
            .filter(|f| !f.is_empty())
            .map(str::to_owned)
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(columns: &[&str], rows: &[&[&str]]) -> Table {
        Table {
            columns: columns.iter().map(|s| (*s).to_owned()).collect(),
            rows: rows
                .iter()
                .map(|r| r.iter().map(|s| (*s).to_owned()).collect())
                .collect(),
        }
    }

    fn error(code: &str, message: &str, fields: &[&str]) -> RecordError {
        RecordError {
            status_code: code.to_owned(),
            message: message.to_owned(),
            fields: fields.iter().map(|s| (*s).to_owned()).collect(),
        }
    }

    #[test]
    fn errors_read_code_message_and_fields() {
        assert_eq!(
            parse_error("REQUIRED_FIELD_MISSING:Required fields are missing: [Name]:Name --"),
            error(
                "REQUIRED_FIELD_MISSING",
                "Required fields are missing: [Name]",
                &["Name"]
            )
        );
        assert_eq!(
            parse_error(
                "INVALID_FIELD:Failed to deserialize field at col 3. Due to, '2003-04-98' is not \
                 a valid value for the type xsd:date:CloseDate --"
            ),
            error(
                "INVALID_FIELD",
                "Failed to deserialize field at col 3. Due to, '2003-04-98' is not a valid value \
                 for the type xsd:date",
                &["CloseDate"]
            )
        );
        assert_eq!(
            parse_error("ENTITY_IS_DELETED:entity is deleted:--"),
            error("ENTITY_IS_DELETED", "entity is deleted", &[])
        );
        assert_eq!(
            parse_error("FIELD_INTEGRITY_EXCEPTION:bad:A,B --"),
            error("FIELD_INTEGRITY_EXCEPTION", "bad", &["A", "B"])
        );
    }

    #[test]
    fn results_in_any_order_go_back_to_their_rows() {
        let t = table(
            &["Name", "Amount__c"],
            &[
                &["a", "1"],
                &["b", "-1"],
                &["a", "1"],
                &["c", "2"],
                &["d", "3"],
            ],
        );
        let mut join = Join::new(&t, 0..5);
        join.add(
            ResultsFile::Successful,
            b"\"sf__Id\",\"sf__Created\",Name,Amount__c\n\"a03\",\"true\",\"c\",\"2\"\n\
              \"a01\",\"true\",\"a\",\"1\"\n\"a02\",\"true\",\"a\",\"1\"\n",
        )
        .unwrap();
        join.add(
            ResultsFile::Failed,
            b"\"sf__Id\",\"sf__Error\",Name,Amount__c\n\"\",\"FIELD_CUSTOM_VALIDATION_EXCEPTION:\
              No negatives:Amount__c --\",\"b\",\"-1\"\n",
        )
        .unwrap();
        join.add(ResultsFile::Unprocessed, b"Name,Amount__c\n\"d\",\"3\"\n")
            .unwrap();
        let ok = |id: &str| RecordOutcome::Succeeded {
            id: id.to_owned(),
            created: true,
        };
        assert_eq!(
            join.finish().unwrap(),
            vec![
                ok("a01"),
                RecordOutcome::Failed {
                    id: None,
                    error: error(
                        "FIELD_CUSTOM_VALIDATION_EXCEPTION",
                        "No negatives",
                        &["Amount__c"]
                    ),
                },
                ok("a02"),
                ok("a03"),
                RecordOutcome::Unprocessed,
            ]
        );
    }

    #[test]
    fn files_that_do_not_describe_the_upload_are_errors() {
        let t = table(&["Name"], &[&["a"], &["b"]]);
        let mut join = Join::new(&t, 0..2);
        assert!(
            join.add(
                ResultsFile::Successful,
                b"\"sf__Id\",\"sf__Created\",Other\n"
            )
            .unwrap_err()
            .contains("not those uploaded")
        );
        join.add(
            ResultsFile::Successful,
            b"\"sf__Id\",\"sf__Created\",Name\n\"1\",\"true\",\"a\"\n",
        )
        .unwrap();
        assert!(
            join.add(
                ResultsFile::Successful,
                b"\"sf__Id\",\"sf__Created\",Name\n\"2\",\"true\",\"a\"\n"
            )
            .unwrap_err()
            .contains("matching no uploaded row")
        );
        join.add(ResultsFile::Failed, b"").unwrap();
        assert_eq!(join.finish().unwrap_err(), "row 1 has no result");
    }

    #[test]
    fn a_later_part_keeps_table_positions() {
        let t = table(&["Id"], &[&["1"], &["2"], &["3"]]);
        let mut join = Join::new(&t, 1..3);
        join.add(
            ResultsFile::Successful,
            b"\"sf__Id\",\"sf__Created\",Id\n\"3\",\"false\",\"3\"\n\"2\",\"false\",\"2\"\n",
        )
        .unwrap();
        let outcomes = join.finish().unwrap();
        assert_eq!(
            outcomes,
            vec![
                RecordOutcome::Succeeded {
                    id: "2".into(),
                    created: false
                },
                RecordOutcome::Succeeded {
                    id: "3".into(),
                    created: false
                },
            ]
        );
    }
}
