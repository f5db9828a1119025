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

use std::ops::Range;

use bytes::Bytes;
use serde_json::Value as Json;

use crate::Record;
use crate::error::{Error, Result};

/// The cell Salesforce reads as null.
pub const NULL_CELL: &str = "#N/A";

/// The largest CSV one job's upload takes: 100 MB, which base64 turns into about 133 MB,
/// within Salesforce's 150 MB.
pub const MAX_PART_BYTES: usize = 100 * 1024 * 1024;

/// The records' cells, column by column, as they go into the CSV: what the results echo
/// back, and what rows are joined on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Table {
    /// Field names, in the order they first appear in the records (`attributes` left out).
    pub columns: Vec<String>,
    /// One row of cells per record, in the records' order.
    pub rows: Vec<Vec<String>>,
}

impl Table {
    /// The cells of `records`; a value that has no CSV form (an array, an object that is
    /// not a parent reference by one field) is refused before anything is sent.
    pub fn from_records(records: &[Record]) -> Result<Table> {
        let mut columns: Vec<String> = Vec::new();
        let mut flat: Vec<Vec<(String, String)>> = Vec::with_capacity(records.len());
        for (i, record) in records.iter().enumerate() {
            let mut cells = Vec::with_capacity(record.len());
            for (name, value) in record {
                if name == "attributes" {
                    continue;
                }
                let (column, cell) = column_and_cell(name, value).ok_or_else(|| {
                    Error::InvalidRequest(format!(
                        "record {i}: {name} holds {value}, which a Bulk API CSV cannot carry"
                    ))
                })?;
                if !columns.contains(&column) {
                    columns.push(column.clone());
                }
                cells.push((column, cell));
            }
            flat.push(cells);
        }
        let rows = flat
            .into_iter()
            .map(|cells| {
                let mut row = vec![String::new(); columns.len()];
                for (column, cell) in cells {
                    if let Some(at) = columns.iter().position(|c| *c == column) {
                        row[at] = cell;
                    }
                }
                row
            })
            .collect();
        Ok(Table { columns, rows })
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

/// One job's upload: the CSV, and which rows of the table it holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part {
    pub csv: Bytes,
    pub rows: Range<usize>,
}

/// The parts of a table's CSV, each at most `max_bytes`, built one at a time.
#[derive(Debug)]
pub struct CsvParts<'t> {
    table: &'t Table,
    header: Vec<u8>,
    next_row: usize,
    max_bytes: usize,
}

impl<'t> CsvParts<'t> {
    /// Parts of at most `max_bytes` ([`MAX_PART_BYTES`] for Salesforce).
    pub fn new(table: &'t Table, max_bytes: usize) -> CsvParts<'t> {
        let header = line(&table.columns);
        CsvParts {
            table,
            header,
            next_row: 0,
            max_bytes,
        }
    }
}

impl Iterator for CsvParts<'_> {
    type Item = Result<Part>;

    fn next(&mut self) -> Option<Result<Part>> {
        let start = self.next_row;
        if start >= self.table.rows.len() {
            return None;
        }
        let mut csv = self.header.clone();
        let mut end = start;
        while let Some(row) = self.table.rows.get(end) {
            let bytes = line(row);
            if csv.len() + bytes.len() > self.max_bytes {
                break;
            }
            csv.extend_from_slice(&bytes);
            end += 1;
        }
        if end == start {
            self.next_row = self.table.rows.len();
            return Some(Err(Error::InvalidRequest(format!(
                "record {start} alone makes a CSV of more than {} bytes",
                self.max_bytes
            ))));
        }
        self.next_row = end;
        Some(Ok(Part {
            csv: Bytes::from(csv),
            rows: start..end,
        }))
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

    fn parts(table: &Table, max: usize) -> Vec<Part> {
        CsvParts::new(table, max).map(Result::unwrap).collect()
    }

    #[test]
    fn null_is_na_and_absent_is_empty() {
        let table = Table::from_records(&records(json!([
            {"attributes": {"type": "Account"}, "Id": "001A", "Name": "Acme, \"Inc\"", "Phone": null},
            {"Id": "001B", "Description": "", "NumberOfEmployees": 12, "IsActive__c": true},
            {"Id": "001C", "Name": "  spaced\nout  ", "Parent": {"External_Id__c": "P-1"}},
        ])))
        .unwrap();
        assert_eq!(
            table.columns,
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
        let csv = parts(&table, MAX_PART_BYTES);
        assert_eq!(csv.len(), 1);
        assert_eq!(
            std::str::from_utf8(&csv[0].csv).unwrap(),
            "Id,Name,Phone,Description,NumberOfEmployees,IsActive__c,Parent.External_Id__c\n\
             001A,\"Acme, \"\"Inc\"\"\",#N/A,,,,\n\
             001B,,,#N/A,12,true,\n\
             001C,\"  spaced\nout  \",,,,,P-1\n"
        );
        assert_eq!(csv[0].rows, 0..3);
    }

    #[test]
    fn values_without_a_csv_form_are_refused() {
        for bad in [
            json!([{"Name": ["a"]}]),
            json!([{"Parent": {"A": "1", "B": "2"}}]),
            json!([{"Parent": {"A": {"B": "1"}}}]),
        ] {
            let e = Table::from_records(&records(bad)).unwrap_err();
            assert!(matches!(e, Error::InvalidRequest(_)), "{e}");
        }
    }

    #[test]
    fn parts_hold_whole_rows_within_the_limit_each_with_the_header() {
        let rows: Vec<Json> = (0..10).map(|i| json!({"Name": format!("n{i}")})).collect();
        let table = Table::from_records(&records(Json::Array(rows))).unwrap();
        // "Name\n" is 5 bytes, each row 3: 5 + 3 * 3 = 14 fits, a fourth row does not.
        let parts = parts(&table, 14);
        let ranges: Vec<_> = parts.iter().map(|p| p.rows.clone()).collect();
        assert_eq!(ranges, vec![0..3, 3..6, 6..9, 9..10]);
        for part in &parts {
            assert!(part.csv.len() <= 14);
            assert!(part.csv.starts_with(b"Name\n"));
        }
        assert_eq!(&parts[3].csv[..], b"Name\nn9\n");
    }

    #[test]
    fn a_row_larger_than_a_part_is_refused() {
        let table = Table::from_records(&records(json!([{"Name": "x".repeat(50)}]))).unwrap();
        let results: Vec<_> = CsvParts::new(&table, 20).collect();
        assert_eq!(results.len(), 1);
        assert!(matches!(results[0], Err(Error::InvalidRequest(_))));
    }
}
