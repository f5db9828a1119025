//! The transcoder without a database: what it sends for a page, in any chunks; when it
//! turns to text, and that the text is exactly the page's rows from the batch in hand on;
//! the header and record bounds.

use super::*;
use crate::plan::{MirroredField, ObjectPlan};

fn plan() -> ObjectPlan {
    ObjectPlan {
        object: "Account".to_owned(),
        schema: "acme".to_owned(),
        table: "account".to_owned(),
        fields: vec![
            MirroredField::new("Id", ColumnType::Varchar(18)),
            MirroredField::new("Founded__c", ColumnType::Date),
            MirroredField::new("Name", ColumnType::Text),
        ],
    }
}

/// Feeds `csv` in `chunk`-byte pieces and finishes.
fn run(csv: &str, chunk: usize) -> Result<Vec<Piece>, ControlError> {
    let plan = plan();
    let fields: Vec<&MirroredField> = plan.fields.iter().collect();
    let types = fields.iter().map(|f| f.column_type).collect();
    let mut page = Transcoder::new(HeaderCheck::new(&plan, &fields), types);
    let mut pieces = Vec::new();
    for part in csv.as_bytes().chunks(chunk.max(1)) {
        pieces.extend(page.feed(part)?);
    }
    pieces.extend(page.finish()?);
    Ok(pieces)
}

/// The binary stream the pieces make, or the CSV, each joined.
fn joined(pieces: &[Piece]) -> (Vec<u8>, String) {
    let (mut binary, mut text) = (Vec::new(), String::new());
    for piece in pieces {
        match piece {
            Piece::Binary(b) => binary.extend_from_slice(b),
            Piece::Csv(c) => text.push_str(std::str::from_utf8(c).unwrap()),
        }
    }
    (binary, text)
}

/// One row as PostgreSQL's binary format lays it out: a field count, then each field's
/// length and bytes (-1 for NULL).
fn binary_row(values: &[Option<&[u8]>]) -> Vec<u8> {
    let mut row = i16::try_from(values.len()).unwrap().to_be_bytes().to_vec();
    for value in values {
        match value {
            None => row.extend_from_slice(&(-1i32).to_be_bytes()),
            Some(bytes) => {
                row.extend_from_slice(&i32::try_from(bytes.len()).unwrap().to_be_bytes());
                row.extend_from_slice(bytes);
            }
        }
    }
    row
}

const HEADER_ROW: &str = "\"Id\",\"Founded__c\",\"Name\"\n";

#[test]
fn a_page_becomes_binary_rows_with_empty_cells_null_in_any_chunks() {
    let csv = format!(
        "{HEADER_ROW}\"001A\",\"2000-01-02\",\"Acme, \"\"Inc.\"\"\nline two\"\n\"001B\",\"\",\"\"\r\n001C,,x"
    );
    let mut expected = binary::HEADER.to_vec();
    expected.extend(binary_row(&[
        Some(b"001A"),
        Some(&1i32.to_be_bytes()),
        Some(b"Acme, \"Inc.\"\nline two"),
    ]));
    expected.extend(binary_row(&[Some(b"001B"), None, None]));
    expected.extend(binary_row(&[Some(b"001C"), None, Some(b"x")]));
    for chunk in [1, 2, 7, 64, csv.len()] {
        let pieces = run(&csv, chunk).unwrap();
        assert_eq!(
            joined(&pieces),
            (expected.clone(), String::new()),
            "chunk {chunk}"
        );
    }
}

#[test]
fn a_value_out_of_layout_sends_the_rest_of_the_page_as_its_csv() {
    // PostgreSQL reads `2021-1-6` as a date; the encoder knows only Salesforce's layout.
    let rows = "\"001A\",\"2000-01-02\",\"a\"\n\"001B\",\"2021-1-6\",\"b\"\n\"001C\",\"2000-01-03\",\"c\"\n";
    for chunk in [1, 5, 1000] {
        let pieces = run(&format!("{HEADER_ROW}{rows}"), chunk).unwrap();
        let (binary, text) = joined(&pieces);
        // Nothing of the batch in hand went as binary: the whole page is text, headless.
        assert!(binary.is_empty(), "chunk {chunk}");
        assert_eq!(text, rows, "chunk {chunk}");
    }
}

#[test]
fn rows_sent_before_the_fall_back_stay_binary_and_are_not_sent_twice() {
    let row = format!("\"001A\",\"2000-01-02\",\"{}\"\n", "n".repeat(1000));
    let before = row.repeat(BATCH / row.len() + 10);
    let odd = "\"001Z\",\"2021-1-6\",\"z\"\n";
    let after = row.repeat(3);
    let pieces = run(&format!("{HEADER_ROW}{before}{odd}{after}"), 4096).unwrap();
    let (binary, text) = joined(&pieces);
    let row_bytes = binary_row(&[
        Some(b"001A"),
        Some(&1i32.to_be_bytes()),
        Some(&[b'n'; 1000]),
    ]);
    let sent_binary = (binary.len() - binary::HEADER.len()) / row_bytes.len();
    assert_eq!((binary.len() - binary::HEADER.len()) % row_bytes.len(), 0);
    assert!(sent_binary > 0, "the first batch went as binary");
    // Every row is sent once: the binary ones, then the rest as the CSV they came in.
    let text_rows = text.lines().count();
    assert_eq!(sent_binary + text_rows, before.lines().count() + 1 + 3);
    assert!(text.ends_with(&format!("{odd}{after}")));
    // Binary pieces all come before the first text piece.
    let first_text = pieces
        .iter()
        .position(|p| matches!(p, Piece::Csv(_)))
        .unwrap();
    assert!(
        pieces[first_text..]
            .iter()
            .all(|p| matches!(p, Piece::Csv(_)))
    );
}

#[test]
fn a_row_of_another_width_or_not_utf8_goes_as_text() {
    let short_row = "\"001A\",\"2000-01-02\"\n";
    let (binary, text) = joined(&run(&format!("{HEADER_ROW}{short_row}"), 3).unwrap());
    assert!(binary.is_empty());
    assert_eq!(text, short_row);

    let plan = plan();
    let fields: Vec<&MirroredField> = plan.fields.iter().collect();
    let types = fields.iter().map(|f| f.column_type).collect();
    let mut page = Transcoder::new(HeaderCheck::new(&plan, &fields), types);
    let mut pieces = page.feed(HEADER_ROW.as_bytes()).unwrap();
    pieces.extend(page.feed(b"\"001A\",\"2000-01-02\",\"\xff\"\n").unwrap());
    pieces.extend(page.finish().unwrap());
    assert_eq!(
        pieces,
        vec![Piece::Csv(Bytes::from_static(
            b"\"001A\",\"2000-01-02\",\"\xff\"\n"
        ))]
    );
}

#[test]
fn the_header_is_checked_with_or_without_quotes_a_bom_or_a_carriage_return() {
    for header in [
        "Id,Founded__c,Name\r\n",
        "\u{feff}\"ID\",\"founded__c\",\"NAME\"\n",
    ] {
        let pieces = run(&format!("{header}001A,2000-01-02,x\n"), 2).unwrap();
        assert_eq!(pieces.len(), 1, "{header:?}");
    }
    let error = run("\"Id\",\"Name\",\"Founded__c\"\n001A,x,2000-01-02\n", 4).unwrap_err();
    let ControlError::CsvColumns {
        found, expected, ..
    } = error
    else {
        panic!("{error:?}");
    };
    assert_eq!(found, "the columns Id, Name, Founded__c");
    assert_eq!(expected, "Id, Founded__c, Name");
    // An empty body is a page of no records; a header alone too.
    assert!(run("", 1).unwrap().is_empty());
    assert!(run(HEADER_ROW.trim_end(), 3).unwrap().is_empty());
}

#[test]
fn a_record_longer_than_the_bound_is_refused_not_held() {
    let plan = plan();
    let fields: Vec<&MirroredField> = plan.fields.iter().collect();
    let types = fields.iter().map(|f| f.column_type).collect();
    let mut page = Transcoder::new(HeaderCheck::new(&plan, &fields), types);
    page.feed(HEADER_ROW.as_bytes()).unwrap();
    page.feed(b"\"001A\",\"2000-01-02\",\"").unwrap();
    let chunk = vec![b'x'; 1024 * 1024];
    let error = (0..=MAX_RECORD / chunk.len())
        .find_map(|_| page.feed(&chunk).err())
        .expect("refused before the bound is passed");
    assert!(
        error.to_string().contains("a record longer than 64 MiB"),
        "{error}"
    );
}
