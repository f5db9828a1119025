//! Query pages read straight into the text the mirror's columns take: one pass over the
//! response body, each value borrowed from it and converted once, with no JSON map per
//! record in between. Parsing maps cost more than everything else the sync does with a
//! backfilled record (see docs/benchmarks.md).
//!
//! A page's values all go into one buffer, each known by its place in it ([`Columns`]):
//! a `String` per value cost an allocation and a free for each of the 100,000 values of a
//! 2,000-record page, more than converting them.

use std::fmt;
use std::ops::Range;

use crate::mapping::ColumnType;
use serde::de::{
    DeserializeSeed, Deserializer, Error as _, IgnoredAny, MapAccess, SeqAccess, Visitor,
};
use serde_json::value::RawValue;
use sfpg_salesforce::RecordsDecoder;

use super::value::push_raw_text;
use crate::plan::MirroredField;

/// Records as text, `width` values per record in the order the fields were asked for;
/// `None` is NULL, as is a field a record does not carry.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Columns {
    /// Values per record.
    width: usize,
    /// Every value's text, one after another.
    text: String,
    /// Where each value is in `text`, record by record: `spans[row * width + column]`.
    spans: Vec<Option<Span>>,
}

/// A value's bytes in [`Columns::text`]. Offsets are 32-bit, which keeps the spans of a
/// page small; a page is a few megabytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Span {
    start: u32,
    end: u32,
}

/// A page's text past 4 GiB, which 32-bit offsets cannot address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the values of one page exceed 4 GiB")]
pub struct PageTooLarge;

impl Columns {
    /// No records, of `width` values each.
    pub fn new(width: usize) -> Self {
        Self {
            width,
            ..Self::default()
        }
    }

    /// Records of `width` values from `rows`, each row's values in column order (missing
    /// ones NULL).
    pub fn from_rows<'a, R>(width: usize, rows: R) -> Result<Self, PageTooLarge>
    where
        R: IntoIterator,
        R::Item: IntoIterator<Item = Option<&'a str>>,
    {
        let mut columns = Self::new(width);
        for row in rows {
            columns.push_null_row();
            for (column, value) in row.into_iter().take(width).enumerate() {
                if let Some(text) = value {
                    let start = columns.text.len();
                    columns.text.push_str(text);
                    columns.end_value(column, start, true)?;
                }
            }
        }
        Ok(columns)
    }

    /// Values per record.
    pub fn width(&self) -> usize {
        self.width
    }

    /// How many records.
    pub fn len(&self) -> usize {
        self.spans.len().checked_div(self.width).unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The value of `column` in record `row`; `None` for NULL or past the end.
    pub fn get(&self, row: usize, column: usize) -> Option<&str> {
        if column >= self.width {
            return None;
        }
        self.text_of(*self.spans.get(row * self.width + column)?)
    }

    /// Record `row`'s values, in column order (none past the end).
    pub fn row(&self, row: usize) -> impl ExactSizeIterator<Item = Option<&str>> + '_ {
        let start = (row * self.width).min(self.spans.len());
        let end = (start + self.width).min(self.spans.len());
        self.spans[start..end]
            .iter()
            .map(|span| self.text_of(*span))
    }

    /// The values of `column`, record by record (none past the last column).
    pub fn column(&self, column: usize) -> impl ExactSizeIterator<Item = Option<&str>> + '_ {
        let rows = if column < self.width { self.len() } else { 0 };
        (0..rows).map(move |row| self.text_of(self.spans[row * self.width + column]))
    }

    /// The records at `rows`, in that order, with their own buffer.
    pub fn subset(&self, rows: &[usize]) -> Result<Self, PageTooLarge> {
        Self::from_rows(self.width, rows.iter().map(|&row| self.row(row)))
    }

    fn text_of(&self, span: Option<Span>) -> Option<&str> {
        let Span { start, end } = span?;
        // Spans are only made by `end_value`, around whole `str`s appended, on char boundaries.
        self.text.get(start as usize..end as usize)
    }

    /// Appends a record whose values are all NULL.
    fn push_null_row(&mut self) {
        self.spans.extend(std::iter::repeat_n(None, self.width));
    }

    /// Makes the text appended to the buffer since `start` the value of `column` in the
    /// last record, or, when `value` is false, leaves that value NULL.
    fn end_value(&mut self, column: usize, start: usize, value: bool) -> Result<(), PageTooLarge> {
        let span = value.then(|| span(start..self.text.len())).transpose()?;
        let last = self.spans.len().saturating_sub(self.width);
        if let Some(slot) = self.spans[last..].get_mut(column) {
            *slot = span;
        }
        Ok(())
    }
}

fn span(range: Range<usize>) -> Result<Span, PageTooLarge> {
    Ok(Span {
        start: u32::try_from(range.start).map_err(|_| PageTooLarge)?,
        end: u32::try_from(range.end).map_err(|_| PageTooLarge)?,
    })
}

/// Reads the records of a query page into [`Columns`] for the given fields.
#[derive(Debug, Clone)]
pub struct TextColumns {
    /// Field API names, as Salesforce spells them in records, and their columns' types.
    fields: Vec<(String, ColumnType)>,
}

impl TextColumns {
    pub fn new(fields: &[&MirroredField]) -> Self {
        Self {
            fields: fields
                .iter()
                .map(|f| (f.field.clone(), f.column_type))
                .collect(),
        }
    }

    /// The column of field `key`. Records carry their fields in the order the query named
    /// them, so the one after `previous` is tried first.
    fn position(&self, key: &[u8], previous: Option<usize>) -> Option<usize> {
        let guess = previous.map_or(0, |p| p + 1);
        match self.fields.get(guess) {
            Some((name, _)) if name.as_bytes() == key => Some(guess),
            _ => self
                .fields
                .iter()
                .position(|(name, _)| name.as_bytes() == key),
        }
    }
}

impl RecordsDecoder for TextColumns {
    type Records = Columns;

    fn decode<'de, D: Deserializer<'de>>(&self, records: D) -> Result<Columns, D::Error> {
        records.deserialize_seq(RecordsVisitor(self))
    }
}

struct RecordsVisitor<'a>(&'a TextColumns);

impl<'de> Visitor<'de> for RecordsVisitor<'_> {
    type Value = Columns;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an array of records")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Columns, A::Error> {
        let mut columns = Columns::new(self.0.fields.len());
        while seq
            .next_element_seed(RecordSeed {
                decoder: self.0,
                columns: &mut columns,
            })?
            .is_some()
        {}
        Ok(columns)
    }
}

/// One record, appended to every column (NULL where it has no value).
struct RecordSeed<'a> {
    decoder: &'a TextColumns,
    columns: &'a mut Columns,
}

impl<'de> DeserializeSeed<'de> for RecordSeed<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for RecordSeed<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a record")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        self.columns.push_null_row();
        let mut previous = None;
        loop {
            let key = KeySeed {
                decoder: self.decoder,
                previous,
            };
            let Some(found) = map.next_key_seed(key)? else {
                break;
            };
            let Some(index) = found else {
                // `attributes`, and anything not asked for.
                map.next_value::<IgnoredAny>()?;
                continue;
            };
            previous = Some(index);
            let raw: &'de RawValue = map.next_value()?;
            let (field, column_type) = &self.decoder.fields[index];
            let start = self.columns.text.len();
            let value = push_raw_text(raw.get(), *column_type, &mut self.columns.text)
                .map_err(|e| A::Error::custom(format!("{field}: {e}")))?;
            self.columns
                .end_value(index, start, value)
                .map_err(A::Error::custom)?;
        }
        Ok(())
    }
}

/// A record's key, looked up as the column it fills (`None`: not asked for) without
/// copying it. It is read as bytes: as text, each key's UTF-8 would be checked, which cost
/// a tenth of reading a page, and a key that is not valid UTF-8 matches no field anyway.
struct KeySeed<'a> {
    decoder: &'a TextColumns,
    previous: Option<usize>,
}

impl<'de> DeserializeSeed<'de> for KeySeed<'_> {
    type Value = Option<usize>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_bytes(self)
    }
}

impl Visitor<'_> for KeySeed<'_> {
    type Value = Option<usize>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a field name")
    }

    fn visit_bytes<E: serde::de::Error>(self, key: &[u8]) -> Result<Self::Value, E> {
        Ok(self.decoder.position(key, self.previous))
    }

    fn visit_str<E: serde::de::Error>(self, key: &str) -> Result<Self::Value, E> {
        self.visit_bytes(key.as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sfpg_salesforce::QueryPage;

    fn field(name: &str, column_type: ColumnType) -> MirroredField {
        MirroredField {
            field: name.to_owned(),
            column: name.to_lowercase(),
            column_type,
            calculated: false,
        }
    }

    #[test]
    fn records_become_columns_in_the_order_asked() {
        let fields = [
            field("Id", ColumnType::Varchar(18)),
            field("Name", ColumnType::Text),
            field("NumberOfEmployees", ColumnType::Integer),
            field("IsDeleted", ColumnType::Boolean),
        ];
        let decoder = TextColumns::new(&fields.iter().collect::<Vec<_>>());
        let body = br#"{"totalSize": 2, "done": true, "records": [
            {"attributes": {"type": "Account", "url": "/services/data/v62.0/sobjects/Account/001000000000001AAA"},
             "Id": "001000000000001AAA", "Name": "Acme \"Inc\"", "NumberOfEmployees": 1.2E3, "IsDeleted": false,
             "Owner": {"attributes": {"type": "User"}, "Alias": "jdoe"}},
            {"attributes": {"type": "Account", "url": "/x"},
             "IsDeleted": true, "Id": "001000000000002AAA", "Name": null}
        ]}"#;
        let page = QueryPage::decode(body, &decoder).unwrap();
        assert_eq!(page.total_size, 2);
        assert!(page.done);
        assert_eq!(page.records.len(), 2);
        let text = |column: usize, row: usize| page.records.get(row, column);
        assert_eq!(text(0, 0), Some("001000000000001AAA"));
        assert_eq!(text(1, 0), Some("Acme \"Inc\""));
        assert_eq!(text(2, 0), Some("1200"));
        assert_eq!(text(3, 0), Some("false"));
        // Out of order, a null, and a field the record does not carry.
        assert_eq!(text(0, 1), Some("001000000000002AAA"));
        assert_eq!(text(1, 1), None);
        assert_eq!(text(2, 1), None);
        assert_eq!(text(3, 1), Some("true"));
    }

    #[test]
    fn values_share_one_buffer_and_keep_nulls_apart_from_text() {
        let fields = [
            field("Id", ColumnType::Varchar(18)),
            field("Name", ColumnType::Text),
            field("NumberOfEmployees", ColumnType::Integer),
            field("Description", ColumnType::Text),
        ];
        let decoder = TextColumns::new(&fields.iter().collect::<Vec<_>>());
        let body = br#"{"totalSize": 3, "done": true, "records": [
            {"Id": "001A", "Name": "a\tb\u0000c\\", "NumberOfEmployees": 4.0E1, "Description": ""},
            {"Id": "001B", "N\u0061me": "\u00e9t\u00e9", "Description": "\u0000"},
            {"Id": "001C", "Name": null, "NumberOfEmployees": -7, "Description": "x"}
        ]}"#;
        let page = QueryPage::decode(body, &decoder).unwrap();
        let columns = &page.records;
        assert_eq!((columns.len(), columns.width()), (3, 4));
        // Escapes decoded, NULs dropped, integral numbers made integers.
        assert_eq!(
            columns.row(0).collect::<Vec<_>>(),
            [Some("001A"), Some("a\tbc\\"), Some("40"), None]
        );
        // An escaped key; a missing field; a string of NULs only is empty text, not NULL.
        assert_eq!(
            columns.row(1).collect::<Vec<_>>(),
            [Some("001B"), Some("été"), None, Some("")]
        );
        assert_eq!(
            columns.column(2).collect::<Vec<_>>(),
            [Some("40"), None, Some("-7")]
        );
        assert_eq!(columns.get(2, 3), Some("x"));
        assert_eq!(columns.get(3, 0), None);
        assert_eq!(columns.get(0, 4), None);
        assert_eq!(columns.row(3).count(), 0);
        assert_eq!(columns.column(4).count(), 0);
    }

    #[test]
    fn columns_are_built_from_rows_and_subsets_copy_their_values() {
        let columns = Columns::from_rows(
            2,
            [
                vec![Some("a"), None],
                vec![Some("b"), Some("β")],
                vec![None],
                vec![Some("d"), Some("4"), Some("ignored")],
            ],
        )
        .unwrap();
        assert_eq!(columns.len(), 4);
        assert_eq!(
            columns.column(1).collect::<Vec<_>>(),
            [None, Some("β"), None, Some("4")]
        );
        let subset = columns.subset(&[3, 1, 1]).unwrap();
        assert_eq!(subset.width(), 2);
        assert_eq!(
            subset.column(0).collect::<Vec<_>>(),
            [Some("d"), Some("b"), Some("b")]
        );
        assert_eq!(subset.get(1, 1), Some("β"));
        assert!(columns.subset(&[]).unwrap().is_empty());
        assert!(Columns::new(0).is_empty());
        assert_eq!(
            Columns::new(3),
            Columns::from_rows(3, Vec::<Vec<Option<&str>>>::new()).unwrap()
        );
    }

    #[test]
    fn a_malformed_page_is_an_error_not_a_panic() {
        let fields = [field("Id", ColumnType::Varchar(18))];
        let decoder = TextColumns::new(&fields.iter().collect::<Vec<_>>());
        for body in [
            &br#"{"totalSize": 1, "done": true, "records": [{"Id": 7"#[..],
            br#"{"totalSize": 1, "done": true, "records": {"Id": "x"}}"#,
            br#"{"totalSize": 1, "done": true}"#,
            br#"{"totalSize": 1, "done": true, "records": ["x"]}"#,
        ] {
            assert!(
                QueryPage::decode(body, &decoder).is_err(),
                "{}",
                String::from_utf8_lossy(body)
            );
        }
    }
}
