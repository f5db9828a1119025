//! The CSV of a Bulk API 2.0 ingest job as uploaded, read the way Salesforce reads it
//! ("Prepare CSV Files", "Valid CSV Record Rows" in the Bulk API 2.0 guide): the job's
//! column delimiter (`COMMA`, `TAB`, `PIPE`, `SEMICOLON`, `CARET`, `BACKQUOTE`) and line
//! ending (`LF`, `CRLF`); a first row of field names; fields holding the delimiter, a quote
//! or a line break in double quotes, a quote doubled inside them; values not trimmed.
//!
//! An upload whose lines end otherwise than the job says fails the whole job with
//! Salesforce's `ClientInputError : LineEnding is invalid on user data. Current LineEnding
//! setting is LF` (observed in client reports). What else fails a whole upload (bytes that
//! are not UTF-8, a row with more or fewer fields than the header) is not documented; the
//! emulator fails the job with a `ClientInputError` naming the row, and says so in
//! `emulator/README.md`.

use csv::{ReaderBuilder, StringRecord, Terminator};
use serde::{Deserialize, Serialize};

/// The character between fields (`columnDelimiter`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ColumnDelimiter {
    #[default]
    Comma,
    Tab,
    Pipe,
    Semicolon,
    Caret,
    Backquote,
}

impl ColumnDelimiter {
    pub fn byte(self) -> u8 {
        match self {
            ColumnDelimiter::Comma => b',',
            ColumnDelimiter::Tab => b'\t',
            ColumnDelimiter::Pipe => b'|',
            ColumnDelimiter::Semicolon => b';',
            ColumnDelimiter::Caret => b'^',
            ColumnDelimiter::Backquote => b'`',
        }
    }
}

/// What ends a row (`lineEnding`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum LineEnding {
    #[default]
    Lf,
    Crlf,
}

impl LineEnding {
    pub fn as_str(self) -> &'static str {
        match self {
            LineEnding::Lf => "\n",
            LineEnding::Crlf => "\r\n",
        }
    }

    fn name(self) -> &'static str {
        match self {
            LineEnding::Lf => "LF",
            LineEnding::Crlf => "CRLF",
        }
    }
}

/// The CSV format of a job's data and results.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CsvFormat {
    pub delimiter: ColumnDelimiter,
    pub line_ending: LineEnding,
}

/// An upload that passed the whole-file checks: its header and how many rows follow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckedUpload {
    pub header: StringRecord,
    pub rows: usize,
}

impl CsvFormat {
    /// A reader of `data`'s rows after the header, with this format's delimiter. With
    /// `LF` a carriage return is data (it then ends the last field of each row, as it
    /// would on Salesforce); with `CRLF` a lone line feed ends a row as well, and the
    /// header's own ending is checked by [`CsvFormat::check`].
    pub fn reader<'d>(&self, data: &'d [u8]) -> csv::Reader<&'d [u8]> {
        let terminator = match self.line_ending {
            LineEnding::Lf => Terminator::Any(b'\n'),
            LineEnding::Crlf => Terminator::CRLF,
        };
        ReaderBuilder::new()
            .delimiter(self.delimiter.byte())
            .terminator(terminator)
            .has_headers(true)
            .flexible(true)
            .from_reader(data)
    }

    /// Reads the whole upload once before anything is saved, as Salesforce does before a
    /// job runs: the header's line ending against the job's, UTF-8, and every row's
    /// number of fields. `Err` is the job's `errorMessage`. An empty upload has no header
    /// and no rows.
    pub fn check(&self, data: &[u8]) -> Result<CheckedUpload, String> {
        if data.is_empty() {
            return Ok(CheckedUpload {
                header: StringRecord::new(),
                rows: 0,
            });
        }
        let mut reader = self.reader(data);
        let header = reader.headers().map_err(client_input)?.clone();
        let end = usize::try_from(reader.position().byte()).unwrap_or(data.len());
        let ended = &data[..end.min(data.len())];
        let crlf = ended.ends_with(b"\r\n");
        let lf = !crlf && ended.ends_with(b"\n");
        let wrong = match self.line_ending {
            LineEnding::Lf => crlf,
            LineEnding::Crlf => lf,
        };
        if wrong {
            return Err(format!(
                "ClientInputError : LineEnding is invalid on user data. Current LineEnding \
                 setting is {}",
                self.line_ending.name()
            ));
        }
        let mut rows = 0;
        let mut record = StringRecord::new();
        while reader.read_record(&mut record).map_err(client_input)? {
            rows += 1;
            if record.len() != header.len() {
                return Err(format!(
                    "ClientInputError : Row {rows} has {} fields; the header has {}",
                    record.len(),
                    header.len()
                ));
            }
        }
        Ok(CheckedUpload { header, rows })
    }
}

fn client_input(error: csv::Error) -> String {
    match error.kind() {
        csv::ErrorKind::Utf8 { pos, .. } => format!(
            "ClientInputError : Row {} is not valid UTF-8",
            pos.as_ref().map_or(0, |p| p.record())
        ),
        _ => format!("ClientInputError : {error}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(format: CsvFormat, data: &str) -> Vec<Vec<String>> {
        format
            .reader(data.as_bytes())
            .records()
            .map(|r| r.unwrap().iter().map(str::to_owned).collect())
            .collect()
    }

    fn format(delimiter: ColumnDelimiter, line_ending: LineEnding) -> CsvFormat {
        CsvFormat {
            delimiter,
            line_ending,
        }
    }

    #[test]
    fn every_delimiter_separates_fields() {
        for (delimiter, c) in [
            (ColumnDelimiter::Comma, ','),
            (ColumnDelimiter::Tab, '\t'),
            (ColumnDelimiter::Pipe, '|'),
            (ColumnDelimiter::Semicolon, ';'),
            (ColumnDelimiter::Caret, '^'),
            (ColumnDelimiter::Backquote, '`'),
        ] {
            let f = format(delimiter, LineEnding::Lf);
            let data = format!("Name{c}Description\nAcme{c}\"a{c}b \"\"q\"\"\nline\"\n");
            let checked = f.check(data.as_bytes()).unwrap();
            assert_eq!(
                checked.header,
                StringRecord::from(vec!["Name", "Description"])
            );
            assert_eq!(checked.rows, 1);
            assert_eq!(
                rows(f, &data),
                vec![vec!["Acme".to_owned(), format!("a{c}b \"q\"\nline")]]
            );
        }
    }

    #[test]
    fn values_are_not_trimmed_and_quoted_newlines_are_data() {
        let f = CsvFormat::default();
        assert_eq!(
            rows(f, "A,B\nJohn, Smith\n\" x \",\n"),
            vec![vec!["John", " Smith"], vec![" x ", ""]]
        );
    }

    #[test]
    fn line_endings_must_match_the_job() {
        let lf = CsvFormat::default();
        let crlf = format(ColumnDelimiter::Comma, LineEnding::Crlf);
        assert_eq!(
            lf.check(b"Name\r\nAcme\r\n").unwrap_err(),
            "ClientInputError : LineEnding is invalid on user data. Current LineEnding setting \
             is LF"
        );
        assert_eq!(
            crlf.check(b"Name\nAcme\n").unwrap_err(),
            "ClientInputError : LineEnding is invalid on user data. Current LineEnding setting \
             is CRLF"
        );
        let checked = crlf
            .check(b"Name,City\r\nAcme,\"Paris\r\nCedex\"\r\n")
            .unwrap();
        assert_eq!(checked.rows, 1);
        assert_eq!(
            rows(crlf, "Name,City\r\nAcme,\"Paris\r\nCedex\"\r\n"),
            vec![vec!["Acme", "Paris\r\nCedex"]]
        );
        // The last row may go without its line ending; a header alone is no row.
        assert_eq!(lf.check(b"Name\nAcme").unwrap().rows, 1);
        assert_eq!(lf.check(b"Name\n").unwrap().rows, 0);
        assert_eq!(lf.check(b"").unwrap().rows, 0);
    }

    #[test]
    fn ragged_rows_and_bad_bytes_fail_the_upload() {
        let f = CsvFormat::default();
        assert_eq!(
            f.check(b"Name,City\nAcme,Paris\nOther\n").unwrap_err(),
            "ClientInputError : Row 2 has 1 fields; the header has 2"
        );
        assert!(
            f.check(b"Name\n\xff\xfe\n")
                .unwrap_err()
                .starts_with("ClientInputError : Row ")
        );
    }

    #[test]
    fn options_read_as_salesforce_spells_them() {
        let d: ColumnDelimiter = serde_json::from_str("\"BACKQUOTE\"").unwrap();
        assert_eq!(d, ColumnDelimiter::Backquote);
        let l: LineEnding = serde_json::from_str("\"CRLF\"").unwrap();
        assert_eq!(l, LineEnding::Crlf);
        assert_eq!(serde_json::to_string(&LineEnding::Lf).unwrap(), "\"LF\"");
        assert_eq!(
            serde_json::to_string(&ColumnDelimiter::Semicolon).unwrap(),
            "\"SEMICOLON\""
        );
    }
}
