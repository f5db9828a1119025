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

use crate::org::CsvFormat;

/// An upload that passed the whole-file checks: its header and how many rows follow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckedUpload {
    pub header: StringRecord,
    pub rows: usize,
}

/// A reader of `data`'s rows after the header, with the job's delimiter. With `LF` a
/// carriage return is data (it then ends the last field of each row, as it would on
/// Salesforce); with `CRLF` a lone line feed ends a row as well, and the header's own
/// ending is checked by [`check`].
pub fn reader(format: CsvFormat, data: &[u8]) -> csv::Reader<&[u8]> {
    let terminator = if crlf(format) {
        Terminator::CRLF
    } else {
        Terminator::Any(b'\n')
    };
    ReaderBuilder::new()
        .delimiter(format.delimiter)
        .terminator(terminator)
        .has_headers(true)
        .flexible(true)
        .from_reader(data)
}

fn crlf(format: CsvFormat) -> bool {
    format.line_ending == b"\r\n"
}

/// Reads the whole upload once before anything is saved, as Salesforce does before a
/// job runs: the header's line ending against the job's, UTF-8, and every row's
/// number of fields. `Err` is the job's `errorMessage`. An empty upload has no header
/// and no rows.
pub fn check(format: CsvFormat, data: &[u8]) -> Result<CheckedUpload, String> {
    if data.is_empty() {
        return Ok(CheckedUpload {
            header: StringRecord::new(),
            rows: 0,
        });
    }
    let mut reader = reader(format, data);
    let header = reader.headers().map_err(client_input)?.clone();
    let end = usize::try_from(reader.position().byte()).unwrap_or(data.len());
    let ended = &data[..end.min(data.len())];
    let crlf = ended.ends_with(b"\r\n");
    let lf = !crlf && ended.ends_with(b"\n");
    let wrong = if self::crlf(format) { lf } else { crlf };
    if wrong {
        return Err(format!(
            "ClientInputError : LineEnding is invalid on user data. Current LineEnding \
                 setting is {}",
            if self::crlf(format) { "CRLF" } else { "LF" }
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

    const LF: CsvFormat = CsvFormat {
        delimiter: b',',
        line_ending: b"\n",
    };
    const CRLF: CsvFormat = CsvFormat {
        delimiter: b',',
        line_ending: b"\r\n",
    };

    fn rows(format: CsvFormat, data: &str) -> Vec<Vec<String>> {
        reader(format, data.as_bytes())
            .records()
            .map(|r| r.unwrap().iter().map(str::to_owned).collect())
            .collect()
    }

    #[test]
    fn every_delimiter_separates_fields() {
        for c in [',', '\t', '|', ';', '^', '`'] {
            let f = CsvFormat {
                delimiter: c as u8,
                line_ending: b"\n",
            };
            let data = format!("Name{c}Description\nAcme{c}\"a{c}b \"\"q\"\"\nline\"\n");
            let checked = check(f, data.as_bytes()).unwrap();
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
        assert_eq!(
            rows(LF, "A,B\nJohn, Smith\n\" x \",\n"),
            vec![vec!["John", " Smith"], vec![" x ", ""]]
        );
    }

    #[test]
    fn line_endings_must_match_the_job() {
        assert_eq!(
            check(LF, b"Name\r\nAcme\r\n").unwrap_err(),
            "ClientInputError : LineEnding is invalid on user data. Current LineEnding setting \
             is LF"
        );
        assert_eq!(
            check(CRLF, b"Name\nAcme\n").unwrap_err(),
            "ClientInputError : LineEnding is invalid on user data. Current LineEnding setting \
             is CRLF"
        );
        let data = "Name,City\r\nAcme,\"Paris\r\nCedex\"\r\n";
        assert_eq!(check(CRLF, data.as_bytes()).unwrap().rows, 1);
        assert_eq!(rows(CRLF, data), vec![vec!["Acme", "Paris\r\nCedex"]]);
        // The last row may go without its line ending; a header alone is no row.
        assert_eq!(check(LF, b"Name\nAcme").unwrap().rows, 1);
        assert_eq!(check(LF, b"Name\n").unwrap().rows, 0);
        assert_eq!(check(LF, b"").unwrap().rows, 0);
    }

    #[test]
    fn ragged_rows_and_bad_bytes_fail_the_upload() {
        assert_eq!(
            check(LF, b"Name,City\nAcme,Paris\nOther\n").unwrap_err(),
            "ClientInputError : Row 2 has 1 fields; the header has 2"
        );
        assert!(
            check(LF, b"Name\n\xff\xfe\n")
                .unwrap_err()
                .starts_with("ClientInputError : Row ")
        );
    }
}
