//! Query pages read straight into the text the mirror's columns take: one pass over the
//! response body, each value borrowed from it and converted once, with no JSON map per
//! record in between. Parsing maps cost more than everything else the sync does with a
//! backfilled record (see docs/benchmarks.md).

use std::fmt;

use serde::de::{
    DeserializeSeed, Deserializer, Error as _, IgnoredAny, MapAccess, SeqAccess, Visitor,
};
use serde_json::value::RawValue;
use sfpg_salesforce::RecordsDecoder;
use sfpg_schema::mapping::ColumnType;

use crate::plan::MirroredField;
use crate::value::raw_to_text;

/// Records as columns of text, `values[column][row]`, in the order the fields were asked
/// for; `None` is NULL, as is a field a record does not carry.
pub type Columns = Vec<Vec<Option<String>>>;

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
    fn position(&self, key: &str, previous: Option<usize>) -> Option<usize> {
        let guess = previous.map_or(0, |p| p + 1);
        match self.fields.get(guess) {
            Some((name, _)) if name == key => Some(guess),
            _ => self.fields.iter().position(|(name, _)| name == key),
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
        let rows = seq.size_hint().unwrap_or(0);
        let mut columns: Columns = self
            .0
            .fields
            .iter()
            .map(|_| Vec::with_capacity(rows))
            .collect();
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
        for column in self.columns.iter_mut() {
            column.push(None);
        }
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
            let value = raw_to_text(raw.get(), *column_type)
                .map_err(|e| A::Error::custom(format!("{field}: {e}")))?;
            if let Some(slot) = self.columns[index].last_mut() {
                *slot = value;
            }
        }
        Ok(())
    }
}

/// A record's key, looked up as the column it fills (`None`: not asked for) without
/// copying it.
struct KeySeed<'a> {
    decoder: &'a TextColumns,
    previous: Option<usize>,
}

impl<'de> DeserializeSeed<'de> for KeySeed<'_> {
    type Value = Option<usize>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl Visitor<'_> for KeySeed<'_> {
    type Value = Option<usize>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a field name")
    }

    fn visit_str<E: serde::de::Error>(self, key: &str) -> Result<Self::Value, E> {
        Ok(self.decoder.position(key, self.previous))
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
        let text = |column: usize, row: usize| page.records[column][row].as_deref();
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
