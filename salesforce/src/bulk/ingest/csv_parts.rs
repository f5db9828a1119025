//! The CSV an ingest job uploads, built from records, in parts of at most 100 MB.
//!
//! Bulk API 2.0 reads an empty cell as "leave the field as it is" and `#N/A` as "set it to
//! null" ("Valid CSV Record Rows"). So a field a record holds as JSON `null` (SQL NULL),
//! or as an empty string (which Salesforce stores as null anyway), is written `#N/A`, never
//! as an empty cell, or an update would silently keep the old value. A field a record does
//! not mention at all is written empty: left as it is on an update, unset on an insert.
//! Values are written as they are, never trimmed; strings that need it are quoted, inner
//! quotes doubled. A parent by external id, `{"Account__r": {"External_Id__c": "A-1"}}`,
//! becomes the column `Account__r.External_Id__c`.
//!
//! One upload may hold 150 MB once Salesforce has base64-encoded it, about 100 MB of CSV
//! ("Upload Job Data"), and a job takes one upload only; [`CsvParts`] cuts the rows into
//! parts of at most [`MAX_PART_BYTES`], each with the header, one job each.
//!
//! The columns are gathered first ([`Columns`]), then each record is written as a line on
//! its own ([`CsvParts::push`]): a caller can write records it builds one at a time (the
//! proxy fills in its parents' Ids) without holding them all, and a part keeps of each
//! row only its line and a key its results are joined on ([`PartRows`]). The part being
//! built is held in memory, or written to a temporary file ([`CsvParts::spooled`],
//! [`super::upload`]).

use std::borrow::Cow;
use std::collections::HashMap;
use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::ops::Range;
use std::sync::Arc;

use serde_json::Value as Json;

use super::upload::{CsvData, Sink};
use crate::Record;
use crate::error::{Error, Result};

/// The cell Salesforce reads as null.
pub const NULL_CELL: &str = "#N/A";

/// The largest CSV one job's upload takes: 100 MB, which base64 turns into about 133 MB,
/// within Salesforce's 150 MB.
pub const MAX_PART_BYTES: usize = 100 * 1024 * 1024;

/// The columns of an upload, in the order they first appear in its records
/// (`attributes` left out). Gathered in a first pass over the records, so that each
/// record can then be written as a CSV line on its own.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Columns {
    names: Vec<String>,
    at: HashMap<String, usize>,
}

impl Columns {
    /// The columns of `records`; a value that has no CSV form is refused.
    pub fn of_records(records: &[Record]) -> Result<Columns> {
        let mut columns = Columns::default();
        for (i, record) in records.iter().enumerate() {
            columns
                .add_fields(record_fields(record))
                .map_err(|e| Error::InvalidRequest(format!("record {i}: {e}")))?;
        }
        Ok(columns)
    }

    /// Adds the columns of one record's fields (`attributes` is the caller's to leave
    /// out). `Err` names a value that has no CSV form (an array, an object that is not a
    /// parent reference by one field).
    pub fn add_fields<'a>(
        &mut self,
        fields: impl IntoIterator<Item = (&'a str, &'a Json)>,
    ) -> std::result::Result<(), String> {
        for (name, value) in fields {
            let column = column_of(name, value).ok_or_else(|| no_csv_form(name, value))?;
            if !self.at.contains_key(column.as_ref()) {
                self.at.insert(column.to_string(), self.names.len());
                self.names.push(column.into_owned());
            }
        }
        Ok(())
    }

    /// Adds columns by the names of fields whose values are all scalars (a string, a
    /// number, a boolean or null), whose column is the field's name: a caller that keeps
    /// its values elsewhere names the columns without reading them.
    pub fn add_scalar_fields<'a>(&mut self, names: impl IntoIterator<Item = &'a str>) {
        for name in names {
            if !self.at.contains_key(name) {
                self.at.insert(name.to_owned(), self.names.len());
                self.names.push(name.to_owned());
            }
        }
    }

    /// The column names, in order.
    pub fn names(&self) -> &[String] {
        &self.names
    }
}

/// A record's fields as the CSV carries them: all but `attributes`.
pub fn record_fields(record: &Record) -> impl Iterator<Item = (&str, &Json)> {
    record
        .iter()
        .filter(|(name, _)| name.as_str() != "attributes")
        .map(|(name, value)| (name.as_str(), value))
}

fn no_csv_form(name: &str, value: &Json) -> String {
    format!("{name} holds {value}, which a Bulk API CSV cannot carry")
}

/// The column of one field of a record, as [`column_and_cell`] names it, without
/// writing its cell.
fn column_of<'a>(name: &'a str, value: &Json) -> Option<Cow<'a, str>> {
    match value {
        Json::Object(_) => column_and_cell(name, value).map(|(column, _)| Cow::Owned(column)),
        Json::Array(_) => None,
        _ => Some(Cow::Borrowed(name)),
    }
}

/// The column and cell of one field of a record.
fn column_and_cell(name: &str, value: &Json) -> Option<(String, String)> {
    let cell = match value {
        Json::Null => NULL_CELL.to_owned(),
        Json::String(s) if s.is_empty() => NULL_CELL.to_owned(),
        Json::String(s) => s.clone(),
        Json::Bool(b) => b.to_string(),
        Json::Number(n) => n.to_string(),
        Json::Object(parent) => {
            let mut keys = parent.iter().filter(|(k, _)| k.as_str() != "attributes");
            let (Some((ext_field, key)), None) = (keys.next(), keys.next()) else {
                return None;
            };
            let (_, cell) = column_and_cell(ext_field, key).filter(|_| !key.is_object())?;
            return Some((format!("{name}.{ext_field}"), cell));
        }
        Json::Array(_) => return None,
    };
    Some((name.to_owned(), cell))
}

/// What a row's results are matched on: a 128-bit keyed hash of its cells, so that a part
/// keeps 16 bytes per row for its results rather than the cells themselves. The keys are
/// drawn at random per upload, so rows cannot be made to collide on purpose; by chance,
/// two distinct rows of one part share a key about once in 2^100 uploads of 100,000 rows.
#[derive(Debug, Clone)]
pub(crate) struct RowHasher([RandomState; 2]);

impl RowHasher {
    fn new() -> RowHasher {
        RowHasher([RandomState::new(), RandomState::new()])
    }

    fn key<'c>(&self, cells: impl Iterator<Item = &'c str> + Clone) -> u128 {
        let [high, low] = self.0.each_ref().map(|state| {
            let mut hasher = state.build_hasher();
            for cell in cells.clone() {
                // The length first, so that ("ab", "c") and ("a", "bc") differ.
                hasher.write_usize(cell.len());
                hasher.write(cell.as_bytes());
            }
            hasher.finish()
        });
        (u128::from(high) << 64) | u128::from(low)
    }
}

/// What one job's results are joined on: the uploaded columns and each row's key, in
/// upload order ([`Bulk::ingest_outcomes`](crate::bulk::Bulk::ingest_outcomes)).
#[derive(Debug, Clone)]
pub struct PartRows {
    pub(crate) columns: Arc<[String]>,
    pub(crate) hasher: Arc<RowHasher>,
    pub(crate) keys: Vec<u128>,
    /// The first row's position among all the rows given to [`CsvParts`].
    pub(crate) start: usize,
}

impl PartRows {
    /// The key a result row echoing `cells` is matched on.
    pub(crate) fn key_of<'c>(&self, cells: impl Iterator<Item = &'c str> + Clone) -> u128 {
        self.hasher.key(cells)
    }
}

/// One job's upload: the CSV, which rows it holds (positions among the rows given to
/// [`CsvParts`]), and what its results are joined on.
#[derive(Debug, Clone)]
pub struct Part {
    pub csv: CsvData,
    pub rows: Range<usize>,
    pub results: PartRows,
}

/// Writes records as CSV lines, one record at a time, in parts of at most `max_bytes`,
/// each with the header: no record is kept once written, only its line and its key.
#[derive(Debug)]
pub struct CsvParts {
    columns: Columns,
    shared: Arc<[String]>,
    hasher: Arc<RowHasher>,
    header: Vec<u8>,
    max_bytes: usize,
    /// The part being built, its header written.
    csv: Sink,
    keys: Vec<u128>,
    start: usize,
    next: usize,
    cells: Vec<String>,
}

impl CsvParts {
    /// Parts of at most `max_bytes` ([`MAX_PART_BYTES`] for Salesforce) with `columns`,
    /// each held in memory.
    pub fn new(columns: Columns, max_bytes: usize) -> CsvParts {
        let header = line(columns.names());
        let sink = Sink::Memory(header.clone());
        CsvParts::with_sink(columns, max_bytes, header, sink)
    }

    /// Parts as [`CsvParts::new`] makes them, each written to an unnamed temporary file
    /// rather than held: a part of 100 MB costs the process nothing but its keys.
    pub fn spooled(columns: Columns, max_bytes: usize) -> Result<CsvParts> {
        let header = line(columns.names());
        let sink = Sink::new(&header, true)?;
        Ok(CsvParts::with_sink(columns, max_bytes, header, sink))
    }

    fn with_sink(columns: Columns, max_bytes: usize, header: Vec<u8>, csv: Sink) -> CsvParts {
        let shared: Arc<[String]> = columns.names().into();
        CsvParts {
            cells: vec![String::new(); shared.len()],
            csv,
            columns,
            shared,
            hasher: Arc::new(RowHasher::new()),
            header,
            max_bytes,
            keys: Vec::new(),
            start: 0,
            next: 0,
        }
    }

    /// Writes the next row, a record's fields (a field not mentioned is an empty cell).
    /// When the row does not fit in the part being built, that part is returned, whole,
    /// and the row starts the next. `Err`: a field outside the columns, a value without a
    /// CSV form, or a row too large for any part; the row is not written.
    pub fn push<'a>(
        &mut self,
        fields: impl IntoIterator<Item = (&'a str, &'a Json)>,
    ) -> Result<Option<Part>> {
        let row = self.next;
        for cell in &mut self.cells {
            cell.clear();
        }
        for (name, value) in fields {
            let refused =
                || Error::InvalidRequest(format!("record {row}: {}", no_csv_form(name, value)));
            let (column, cell) = column_and_cell(name, value).ok_or_else(refused)?;
            let at = *self.columns.at.get(&column).ok_or_else(|| {
                Error::InvalidRequest(format!("record {row}: {column} is not among the columns"))
            })?;
            self.cells[at] = cell;
        }
        let bytes = line(&self.cells);
        if self.header.len() + bytes.len() > self.max_bytes {
            return Err(Error::InvalidRequest(format!(
                "record {row} alone makes a CSV of more than {} bytes",
                self.max_bytes
            )));
        }
        let full = if self.csv.len() + bytes.len() as u64 > self.max_bytes as u64 {
            self.take_part()?
        } else {
            None
        };
        self.csv.write(&bytes)?;
        self.keys
            .push(self.hasher.key(self.cells.iter().map(String::as_str)));
        self.next += 1;
        Ok(full)
    }

    /// The part being built, if it holds a row; the next part starts empty.
    pub fn finish(&mut self) -> Result<Option<Part>> {
        self.take_part()
    }

    fn take_part(&mut self) -> Result<Option<Part>> {
        if self.next == self.start {
            return Ok(None);
        }
        let next = Sink::new(&self.header, self.csv.spooled())?;
        let csv = std::mem::replace(&mut self.csv, next).into_data()?;
        let part = Part {
            csv,
            rows: self.start..self.next,
            results: PartRows {
                columns: Arc::clone(&self.shared),
                hasher: Arc::clone(&self.hasher),
                keys: std::mem::take(&mut self.keys),
                start: self.start,
            },
        };
        self.start = self.next;
        Ok(Some(part))
    }
}

/// One CSV line (comma, LF): a cell holding a comma, a quote, a line break or nothing but
/// being the only cell is quoted, with inner quotes doubled.
fn line(cells: &[String]) -> Vec<u8> {
    let mut out = Vec::new();
    for (i, cell) in cells.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        let quote = cell.contains([',', '"', '\n', '\r']) || (cells.len() == 1 && cell.is_empty());
        if quote {
            out.push(b'"');
            out.extend_from_slice(cell.replace('"', "\"\"").as_bytes());
            out.push(b'"');
        } else {
            out.extend_from_slice(cell.as_bytes());
        }
    }
    out.push(b'\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn records(values: Json) -> Vec<Record> {
        values
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_object().unwrap().clone())
            .collect()
    }

    /// The parts of `records`, each held in memory; the same parts spooled to files are
    /// checked to hold the same bytes and rows.
    fn parts(records: &[Record], max: usize) -> Result<Vec<Part>> {
        let mut held = CsvParts::new(Columns::of_records(records)?, max);
        let mut spooled = CsvParts::spooled(Columns::of_records(records)?, max)?;
        let (mut out, mut out_spooled) = (Vec::new(), Vec::new());
        for record in records {
            out.extend(held.push(record_fields(record))?);
            out_spooled.extend(spooled.push(record_fields(record))?);
        }
        out.extend(held.finish()?);
        out_spooled.extend(spooled.finish()?);
        assert_eq!(out.len(), out_spooled.len());
        for (part, from_file) in out.iter().zip(&out_spooled) {
            assert!(matches!(part.csv, CsvData::Memory(_)));
            assert!(matches!(from_file.csv, CsvData::Spooled(_)));
            assert_eq!(
                part.csv.to_bytes().unwrap(),
                from_file.csv.to_bytes().unwrap()
            );
            assert_eq!(part.csv.len(), from_file.csv.len());
            assert_eq!(part.rows, from_file.rows);
        }
        Ok(out)
    }

    #[test]
    fn null_is_na_and_absent_is_empty() {
        let records = records(json!([
            {"attributes": {"type": "Account"}, "Id": "001A", "Name": "Acme, \"Inc\"", "Phone": null},
            {"Id": "001B", "Description": "", "NumberOfEmployees": 12, "IsActive__c": true},
            {"Id": "001C", "Name": "  spaced\nout  ", "Parent": {"External_Id__c": "P-1"}},
        ]));
        assert_eq!(
            Columns::of_records(&records).unwrap().names(),
            [
                "Id",
                "Name",
                "Phone",
                "Description",
                "NumberOfEmployees",
                "IsActive__c",
                "Parent.External_Id__c"
            ]
        );
        let csv = parts(&records, MAX_PART_BYTES).unwrap();
        assert_eq!(csv.len(), 1);
        assert_eq!(
            std::str::from_utf8(&csv[0].csv.to_bytes().unwrap()).unwrap(),
            "Id,Name,Phone,Description,NumberOfEmployees,IsActive__c,Parent.External_Id__c\n\
             001A,\"Acme, \"\"Inc\"\"\",#N/A,,,,\n\
             001B,,,#N/A,12,true,\n\
             001C,\"  spaced\nout  \",,,,,P-1\n"
        );
        assert_eq!(csv[0].rows, 0..3);
        assert_eq!(csv[0].results.keys.len(), 3);
    }

    #[test]
    fn scalar_fields_name_the_columns_their_values_would() {
        let records = records(json!([
            {"Id": "001A", "Name": "Acme", "Phone": null},
            {"NumberOfEmployees": 12, "Name": "B", "IsActive__c": true},
        ]));
        let mut by_names = Columns::default();
        for record in &records {
            by_names.add_scalar_fields(record.keys().map(String::as_str));
        }
        assert_eq!(
            by_names.names(),
            Columns::of_records(&records).unwrap().names()
        );
    }

    #[test]
    fn values_without_a_csv_form_are_refused() {
        for bad in [
            json!([{"Name": ["a"]}]),
            json!([{"Parent": {"A": "1", "B": "2"}}]),
            json!([{"Parent": {"A": {"B": "1"}}}]),
        ] {
            let e = Columns::of_records(&records(bad)).unwrap_err();
            assert!(matches!(e, Error::InvalidRequest(_)), "{e}");
        }
        // A field the columns were not gathered from is refused too, not dropped.
        let mut parts = CsvParts::new(Columns::default(), MAX_PART_BYTES);
        let name = json!("a");
        assert!(matches!(
            parts.push([("Name", &name)]),
            Err(Error::InvalidRequest(_))
        ));
    }

    #[test]
    fn parts_hold_whole_rows_within_the_limit_each_with_the_header() {
        let rows: Vec<Json> = (0..10).map(|i| json!({"Name": format!("n{i}")})).collect();
        // "Name\n" is 5 bytes, each row 3: 5 + 3 * 3 = 14 fits, a fourth row does not.
        let parts = parts(&records(Json::Array(rows)), 14).unwrap();
        let ranges: Vec<_> = parts.iter().map(|p| p.rows.clone()).collect();
        assert_eq!(ranges, vec![0..3, 3..6, 6..9, 9..10]);
        for part in &parts {
            assert!(part.csv.len() <= 14);
            assert!(part.csv.to_bytes().unwrap().starts_with(b"Name\n"));
            assert_eq!(part.results.keys.len(), part.rows.len());
            assert_eq!(part.results.start, part.rows.start);
        }
        assert_eq!(&parts[3].csv.to_bytes().unwrap()[..], b"Name\nn9\n");
    }

    #[test]
    fn a_row_larger_than_a_part_is_refused() {
        let e = parts(&records(json!([{"Name": "x".repeat(50)}])), 20).unwrap_err();
        assert!(matches!(e, Error::InvalidRequest(_)));
    }

    #[test]
    fn equal_rows_share_a_key_and_others_do_not() {
        let parts = parts(
            &records(json!([
                {"A": "ab", "B": "c"},
                {"A": "a", "B": "bc"},
                {"A": "ab", "B": "c"},
                {"B": "c"},
            ])),
            MAX_PART_BYTES,
        )
        .unwrap();
        let keys = &parts[0].results.keys;
        assert_eq!(keys[0], keys[2]);
        assert_ne!(keys[0], keys[1]);
        assert_ne!(keys[0], keys[3]);
        assert_eq!(keys[0], parts[0].results.key_of(["ab", "c"].into_iter()));
    }
}
