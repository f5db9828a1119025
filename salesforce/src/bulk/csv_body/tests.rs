//! The record counter across chunk boundaries, NUL stripping, and the body's count check.

use futures::{StreamExt, TryStreamExt, stream};
use reqwest::Method;

use super::*;

/// A page as Bulk API 2.0 writes it, with what a naive line count gets wrong: a quoted
/// value holding LF and CRLF line breaks, doubled quotes, a delimiter inside quotes, and
/// empty values.
const PAGE: &str = concat!(
    "\"Id\",\"Name\",\"Description\"\n",
    "\"001000000000001AAA\",\"Acme, Inc.\",\"two\nlines\"\n",
    "\"001000000000002AAA\",\"Say \"\"hi\"\"\",\"\"\n",
    "\"001000000000003AAA\",\"\",\"crlf\r\ninside\r\n\"\"quoted\"\"\"\n",
    "\"001000000000004AAA\",\"Last\",\"\"\n",
);

fn count(chunks: &[&[u8]]) -> u64 {
    let mut counter = RecordCounter::default();
    for chunk in chunks {
        counter.feed(chunk);
    }
    counter.finish()
}

#[test]
fn counts_records_not_lines() {
    assert_eq!(count(&[PAGE.as_bytes()]), 5);
    assert_eq!(data_records(count(&[PAGE.as_bytes()])), 4);
}

#[test]
fn counts_the_same_wherever_the_chunks_are_cut() {
    let page = PAGE.as_bytes();
    for first in 0..=page.len() {
        for second in first..=page.len() {
            let rows = count(&[&page[..first], &page[first..second], &page[second..]]);
            assert_eq!(rows, 5, "cut at {first} and {second}");
        }
    }
    // One byte at a time.
    let bytes: Vec<&[u8]> = page.chunks(1).collect();
    assert_eq!(count(&bytes), 5);
}

/// The records of a CSV document, parsed whole.
fn parsed(csv: &[u8]) -> Vec<Vec<String>> {
    csv::ReaderBuilder::new()
        .has_headers(false)
        .from_reader(csv)
        .records()
        .map(|r| r.unwrap().iter().map(str::to_owned).collect())
        .collect()
}

#[test]
fn runs_hold_whole_records_wherever_the_chunks_are_cut() {
    let crlf = PAGE.replace('\n', "\r\n");
    let unterminated = PAGE.trim_end();
    for page in [PAGE, crlf.as_str(), unterminated] {
        let page = page.as_bytes();
        let whole = parsed(page);
        for run_bytes in [1, 20, 64, 10_000] {
            for cut in 0..=page.len() {
                let mut runs = RecordRuns::new(run_bytes);
                let mut records = Vec::new();
                for chunk in [&page[..cut], &page[cut..]] {
                    if let Some(run) = runs.feed(chunk) {
                        assert!(run.len() >= run_bytes);
                        records.extend(parsed(&run));
                    }
                }
                records.extend(runs.finish().map(|run| parsed(&run)).unwrap_or_default());
                assert_eq!(records, whole, "runs of {run_bytes}, cut at {cut}");
            }
        }
    }
    let mut empty = RecordRuns::new(1);
    assert_eq!(empty.feed(b""), None);
    assert_eq!(empty.feed(b"\n"), None);
    assert_eq!(empty.finish(), None);
}

#[test]
fn crlf_line_endings_and_a_missing_last_line_ending() {
    let crlf = PAGE.replace("AAA\",\"Last\",\"\"\n", "AAA\",\"Last\",\"\"");
    assert_eq!(count(&[crlf.as_bytes()]), 5);
    let crlf = "\"Id\"\r\n\"a\"\r\n\"b\"\r\n";
    for cut in 0..=crlf.len() {
        assert_eq!(
            count(&[&crlf.as_bytes()[..cut], &crlf.as_bytes()[cut..]]),
            3,
            "{cut}"
        );
    }
}

/// A value larger than the counter's scratch buffer and a record with more fields than its
/// ends buffer take several calls each and still count once.
#[test]
fn records_larger_than_the_buffers_count_once() {
    let long_value = "x\n".repeat(100_000);
    let many_fields = vec!["\"v\""; 2_000].join(",");
    let page = format!("\"Id\",\"Body\"\n\"a\",\"{long_value}\"\n{many_fields}\n\"b\",\"\"\n");
    let bytes = page.as_bytes();
    assert_eq!(count(&[bytes]), 4);
    let chunks: Vec<&[u8]> = bytes.chunks(7_919).collect();
    assert_eq!(count(&chunks), 4);
}

#[test]
fn an_empty_page_has_no_records_with_or_without_its_header() {
    assert_eq!(data_records(count(&[])), 0);
    assert_eq!(data_records(count(&[b"\"Id\",\"Name\"\n"])), 0);
    assert_eq!(data_records(count(&[b"\"Id\",\"Name\""])), 0);
}

#[test]
fn finishing_twice_counts_once() {
    let mut counter = RecordCounter::default();
    counter.feed(b"\"Id\"\n\"a\"");
    assert_eq!(counter.finish(), 2);
    assert_eq!(counter.finish(), 2);
}

#[test]
fn strips_nul_bytes_anywhere() {
    assert_eq!(strip_nul(Bytes::from_static(b"a\0b\0\0c\0")), "abc");
    assert_eq!(strip_nul(Bytes::from_static(b"\0\0")), "");
    assert_eq!(strip_nul(Bytes::new()), "");
    let clean = Bytes::from_static(b"\"Id\"\n");
    let kept = strip_nul(clean.clone());
    assert_eq!(
        kept.as_ptr(),
        clean.as_ptr(),
        "a clean chunk is passed on, not copied"
    );
}

fn page(number_of_records: u64) -> PageIdentity {
    PageIdentity {
        endpoint: Endpoint {
            method: Method::GET,
            path: "/services/data/v62.0/jobs/query/750000000000001AAA/results".into(),
        },
        job_id: "750000000000001AAA".into(),
        locator: Some("MTAwMDA".into()),
        number_of_records,
    }
}

fn body(chunks: &[&'static [u8]], number_of_records: u64) -> CsvBody {
    let chunks: Vec<reqwest::Result<Bytes>> =
        chunks.iter().map(|c| Ok(Bytes::from_static(c))).collect();
    let inner = stream::iter(chunks).boxed();
    CsvBody::new(BodyStream(inner), page(number_of_records))
}

#[tokio::test]
async fn the_body_passes_chunks_without_nul_and_checks_the_count_at_its_end() {
    let chunks: &[&[u8]] = &[
        b"\"Id\",\"Na",
        b"me\"\n\"a\0\",\"x\ny\"\n\0",
        b"\0",
        b"\"b\",\"z\"\n",
    ];
    let read: Vec<Bytes> = body(chunks, 2).try_collect().await.unwrap();
    let text: Vec<u8> = read.iter().flat_map(|c| c.iter().copied()).collect();
    assert_eq!(text, b"\"Id\",\"Name\"\n\"a\",\"x\ny\"\n\"b\",\"z\"\n");
    assert!(read.iter().all(|c| !c.is_empty()), "{read:?}");
}

#[tokio::test]
async fn a_page_short_of_its_announced_records_ends_in_an_error() {
    let chunks: &[&[u8]] = &[b"\"Id\"\n\"a\"\n\"b\"\n"];
    let items: Vec<Result<Bytes>> = body(chunks, 3).collect().await;
    assert_eq!(items.len(), 2, "the data, then the error");
    assert!(items[0].is_ok());
    let error = items[1].as_ref().unwrap_err();
    match error {
        Error::BulkPageCount {
            job_id,
            locator,
            number_of_records,
            counted,
        } => {
            assert_eq!(job_id, "750000000000001AAA");
            assert_eq!(locator.as_deref(), Some("MTAwMDA"));
            assert_eq!((*number_of_records, *counted), (3, 2));
        }
        other => panic!("{other:?}"),
    }
    // More records than announced fail too.
    let items: Vec<Result<Bytes>> = body(chunks, 1).collect().await;
    assert!(matches!(
        items.last(),
        Some(Err(Error::BulkPageCount { counted: 2, .. }))
    ));
}
