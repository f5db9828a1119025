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
//! built here, so its cells are known exactly. What is kept of each uploaded row is a
//! 128-bit keyed hash of its cells ([`PartRows`]), not the cells: a result row is hashed the
//! same way and matched on that. Updates and deletes carry their `Id` among
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

use csv::StringRecord;

use super::csv_parts::PartRows;
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

/// The uploaded rows with the same key still waiting for a result, first uploaded first:
/// almost always one.
#[derive(Debug)]
enum Waiting {
    One(usize),
    Many(VecDeque<usize>),
}

impl Waiting {
    fn push(&mut self, row: usize) {
        match self {
            Waiting::One(first) => *self = Waiting::Many(VecDeque::from([*first, row])),
            Waiting::Many(rows) => rows.push_back(row),
        }
    }
}

/// Joins result files to the rows of one job's part. `Err` says what in the files does
/// not fit the upload.
#[derive(Debug)]
pub(crate) struct Join<'p> {
    part: &'p PartRows,
    waiting: HashMap<u128, Waiting>,
    outcomes: Vec<Option<RecordOutcome>>,
}

impl<'p> Join<'p> {
    pub(crate) fn new(part: &'p PartRows) -> Join<'p> {
        let mut waiting: HashMap<u128, Waiting> = HashMap::with_capacity(part.keys.len());
        for (row, key) in part.keys.iter().enumerate() {
            waiting
                .entry(*key)
                .and_modify(|rows| rows.push(row))
                .or_insert(Waiting::One(row));
        }
        Join {
            part,
            outcomes: vec![None; part.keys.len()],
            waiting,
        }
    }

    /// The first row waiting with `key`, taken off the waiting list.
    fn take(&mut self, key: u128) -> Option<usize> {
        let (row, emptied) = match self.waiting.get_mut(&key)? {
            Waiting::One(row) => (Some(*row), true),
            Waiting::Many(rows) => (rows.pop_front(), rows.is_empty()),
        };
        if emptied {
            self.waiting.remove(&key);
        }
        row
    }

    /// Gives the rows of one result file, whole, their outcomes.
    #[cfg(test)]
    pub(crate) fn add(&mut self, file: ResultsFile, csv: &[u8]) -> Result<(), String> {
        self.file(file).run(csv)
    }

    /// Joins one result file read a run of records at a time ([`FileJoin::run`]).
    pub(crate) fn file<'j>(&'j mut self, file: ResultsFile) -> FileJoin<'j, 'p> {
        FileJoin {
            join: self,
            file,
            header_read: false,
        }
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
        let start = self.part.start;
        self.outcomes
            .into_iter()
            .enumerate()
            .map(|(i, outcome)| outcome.ok_or_else(|| format!("row {} has no result", start + i)))
            .collect()
    }
}

/// One result file being joined, a run of whole records at a time, so that the file is
/// never held whole (a part of 100 MB has results of as much).
pub(crate) struct FileJoin<'j, 'p> {
    join: &'j mut Join<'p>,
    file: ResultsFile,
    header_read: bool,
}

impl FileJoin<'_, '_> {
    /// Gives the rows of the next run of the file's records their outcomes; the first run
    /// starts with the header, which must name the uploaded columns after the file's own.
    pub(crate) fn run(&mut self, csv: &[u8]) -> Result<(), String> {
        if csv.iter().all(u8::is_ascii_whitespace) {
            return Ok(());
        }
        let file = self.file;
        let join = &mut *self.join;
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .from_reader(csv);
        let lead = file.lead();
        let mut record = StringRecord::new();
        while reader
            .read_record(&mut record)
            .map_err(|e| format!("{}: {e}", file.segment()))?
        {
            if !self.header_read {
                self.header_read = true;
                let expected = lead
                    .iter()
                    .copied()
                    .chain(join.part.columns.iter().map(String::as_str));
                if !record.iter().eq(expected) {
                    return Err(format!(
                        "{} has the columns {:?}, not those uploaded",
                        file.segment(),
                        record.iter().collect::<Vec<_>>()
                    ));
                }
                continue;
            }
            if record.len() != lead.len() + join.part.columns.len() {
                return Err(format!(
                    "{}: a row of {} cells, where the header has {}",
                    file.segment(),
                    record.len(),
                    lead.len() + join.part.columns.len()
                ));
            }
            let key = join.part.key_of(record.iter().skip(lead.len()));
            let row = join.take(key).ok_or_else(|| {
                format!(
                    "{} has a row matching no uploaded row awaiting a result: {:?}",
                    file.segment(),
                    record.iter().skip(lead.len()).collect::<Vec<_>>()
                )
            })?;
            join.outcomes[row] = Some(outcome(file, &record));
        }
        Ok(())
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

/// The `sf__Id` of each row of a `successfulResults/` file, in its order.
pub(crate) fn saved_ids(csv: &[u8]) -> Result<Vec<String>, String> {
    let file = ResultsFile::Successful;
    if csv.iter().all(u8::is_ascii_whitespace) {
        return Ok(Vec::new());
    }
    let mut reader = csv::ReaderBuilder::new().has_headers(true).from_reader(csv);
    let header = reader
        .headers()
        .map_err(|e| format!("{}: {e}", file.segment()))?;
    if !header.iter().take(2).eq(file.lead().iter().copied()) {
        return Err(format!(
            "{} does not begin with the columns {:?}",
            file.segment(),
            file.lead()
        ));
    }
    let mut ids = Vec::new();
    let mut record = StringRecord::new();
    while reader
        .read_record(&mut record)
        .map_err(|e| format!("{}: {e}", file.segment()))?
    {
        ids.push(record.get(0).unwrap_or_default().to_owned());
    }
    Ok(ids)
}

#[cfg(test)]
mod tests {

    #[test]
    fn the_saved_ids_are_the_successful_rows_sf_ids_in_order() {
        let csv = b"\"sf__Id\",\"sf__Created\",\"Name\"\n\
                    \"001000000000001AAA\",\"true\",\"A, Inc.\"\n\
                    \"001000000000002AAA\",\"false\",\"B\"\n";
        assert_eq!(
            saved_ids(csv).unwrap(),
            ["001000000000001AAA", "001000000000002AAA"]
        );
        assert!(saved_ids(b"").unwrap().is_empty());
        assert!(saved_ids(b"\"Id\",\"Name\"\n\"x\",\"y\"\n").is_err());
    }
    use super::super::csv_parts::{Columns, CsvParts, MAX_PART_BYTES, record_fields};
    use super::*;

    /// The part of `rows` under `columns`, built as an upload is.
    fn part(columns: &[&str], rows: &[&[&str]]) -> PartRows {
        let records: Vec<crate::Record> = rows
            .iter()
            .map(|row| {
                columns
                    .iter()
                    .zip(row.iter())
                    .map(|(c, v)| ((*c).to_owned(), serde_json::Value::from(*v)))
                    .collect()
            })
            .collect();
        let mut parts = CsvParts::new(Columns::of_records(&records).unwrap(), MAX_PART_BYTES);
        for record in &records {
            assert!(parts.push(record_fields(record)).unwrap().is_none());
        }
        parts.finish().unwrap().unwrap().results
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
        let t = part(
            &["Name", "Amount__c"],
            &[
                &["a", "1"],
                &["b", "-1"],
                &["a", "1"],
                &["c", "2"],
                &["d", "3"],
            ],
        );
        let mut join = Join::new(&t);
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
    fn a_file_joined_a_run_at_a_time_gives_what_it_gives_whole() {
        let t = part(
            &["Name", "Description"],
            &[&["a", "x,y"], &["b", "two\nlines"], &["a", "x,y"]],
        );
        let file: &[u8] = b"\"sf__Id\",\"sf__Created\",Name,Description\r\n\
            \"a02\",\"false\",\"b\",\"two\nlines\"\r\n\"a01\",\"true\",\"a\",\"x,y\"\r\n\
            \"a03\",\"true\",\"a\",\"x,y\"";
        let mut whole = Join::new(&t);
        whole.add(ResultsFile::Successful, file).unwrap();
        let whole = whole.finish().unwrap();
        for cut in 0..=file.len() {
            let mut join = Join::new(&t);
            let mut file_join = join.file(ResultsFile::Successful);
            // Runs of one record each: the header is a run of its own.
            let mut runs = crate::bulk::csv_body::RecordRuns::new(1);
            for chunk in [&file[..cut], &file[cut..]] {
                if let Some(run) = runs.feed(chunk) {
                    file_join.run(&run).unwrap();
                }
            }
            if let Some(run) = runs.finish() {
                file_join.run(&run).unwrap();
            }
            assert_eq!(join.finish().unwrap(), whole, "cut at {cut}");
        }
        // A row short of a cell is an error, whatever run it comes in.
        let mut join = Join::new(&t);
        let mut file_join = join.file(ResultsFile::Successful);
        file_join
            .run(b"sf__Id,sf__Created,Name,Description\n")
            .unwrap();
        assert!(
            file_join
                .run(b"a01,true,a\n")
                .unwrap_err()
                .contains("a row of 3 cells")
        );
    }

    #[test]
    fn files_that_do_not_describe_the_upload_are_errors() {
        let t = part(&["Name"], &[&["a"], &["b"]]);
        let mut join = Join::new(&t);
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
    fn a_later_part_joins_its_own_rows() {
        let records: Vec<crate::Record> = ["1", "2", "3"]
            .iter()
            .map(|id| {
                [("Id".to_owned(), serde_json::Value::from(*id))]
                    .into_iter()
                    .collect()
            })
            .collect();
        // "Id\n" is 3 bytes, each row 2: a part of 5 bytes holds one row.
        let mut parts = CsvParts::new(Columns::of_records(&records).unwrap(), 7);
        let mut all = Vec::new();
        for record in &records {
            all.extend(parts.push(record_fields(record)).unwrap());
        }
        all.extend(parts.finish().unwrap());
        assert_eq!(all.len(), 2);
        assert_eq!(all[1].rows, 2..3);
        let mut join = Join::new(&all[0].results);
        join.add(
            ResultsFile::Successful,
            b"\"sf__Id\",\"sf__Created\",Id\n\"2\",\"false\",\"2\"\n\"1\",\"false\",\"1\"\n",
        )
        .unwrap();
        let ok = |id: &str| RecordOutcome::Succeeded {
            id: id.into(),
            created: false,
        };
        assert_eq!(join.finish().unwrap(), vec![ok("1"), ok("2")]);
        // The third row belongs to the second part only.
        let mut join = Join::new(&all[0].results);
        assert!(
            join.add(
                ResultsFile::Successful,
                b"\"sf__Id\",\"sf__Created\",Id\n\"3\",\"false\",\"3\"\n"
            )
            .unwrap_err()
            .contains("matching no uploaded row")
        );
        let join = Join::new(&all[1].results);
        assert_eq!(join.finish().unwrap_err(), "row 2 has no result");
    }
}
