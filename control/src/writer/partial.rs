//! Partial records: records that carry only some of their fields. A field a record does
//! not carry keeps the row's value; one it carries as null sets NULL. Two writers take
//! them:
//!
//! - [`Patches`], applied by [`super::apply`] under the version guard: what an event that
//!   names only the fields that changed (Change Data Capture) becomes;
//! - [`WriteBackRow`], the pure half the proxy's write-back uses: it cannot run statements
//!   of its own on the client's connection, so it hands `sfpg.write_back` (migrations V8,
//!   V11) the rows as JSON, and that function applies the same guard in SQL;
//! - [`WriteBackCopy`], the same for a bulk push's read-back: rows that all carry the same
//!   columns, as `COPY … FROM STDIN` text for `sfpg.write_back_staged` (V25), which applies
//!   the same guard.
//!
//! Values are converted as a query page's are ([`super::value::push_raw_text`]), so every
//! path writes the same text for the same value.

use std::collections::{BTreeMap, HashSet};

use serde_json::{Map, Value};
use sfpg_salesforce::Record;

use super::value::push_raw_text;
use super::{Columns, Rows};
use crate::error::ControlError;
use crate::plan::{ID_FIELD, MirroredField, SYSTEM_MODSTAMP_FIELD};

/// The positions in `fields` of the fields `record` carries, each with the text its column
/// takes (`None`: NULL), in the order of `fields`.
fn carried(
    object: &str,
    fields: &[MirroredField],
    record: &Record,
) -> Result<Vec<(usize, Option<String>)>, ControlError> {
    let mut values = Vec::new();
    for (position, field) in fields.iter().enumerate() {
        let Some(value) = record.get(&field.field) else {
            continue;
        };
        let mut text = String::new();
        let present =
            push_raw_text(&value.to_string(), field.column_type, &mut text).map_err(|e| {
                ControlError::MalformedRecord {
                    object: object.to_owned(),
                    detail: format!("with {}: {e}", field.field),
                }
            })?;
        values.push((position, present.then_some(text)));
    }
    Ok(values)
}

/// Partial records of one object, grouped by the fields they carry: each group is written
/// with one statement, touching only its columns.
#[derive(Debug, Clone, Default)]
pub struct Patches<'p> {
    groups: Vec<Rows<'p>>,
}

impl<'p> Patches<'p> {
    /// `records` as patches of `fields` (which must start with `Id`). Each record must
    /// carry its `Id` and its `SystemModstamp`, the version the guard compares, and may
    /// appear once.
    pub fn from_records(
        object: &str,
        fields: &'p [MirroredField],
        records: &[Record],
    ) -> Result<Self, ControlError> {
        let malformed = |detail: &str| ControlError::MalformedRecord {
            object: object.to_owned(),
            detail: detail.to_owned(),
        };
        // The positions in `fields` a record carries -> the records' values there.
        let mut groups: BTreeMap<Vec<usize>, Vec<Vec<Option<String>>>> = BTreeMap::new();
        let mut seen = HashSet::new();
        for record in records {
            let values = carried(object, fields, record)?;
            let value_of = |name: &str| {
                values
                    .iter()
                    .find(|(i, _)| fields[*i].field == name)
                    .and_then(|(_, v)| v.as_ref())
            };
            let Some(id) = value_of(ID_FIELD) else {
                return Err(malformed("without an Id"));
            };
            if !seen.insert(id.clone()) {
                return Err(ControlError::Unwritable {
                    object: object.to_owned(),
                    detail: format!("record {id} is patched twice at once"),
                });
            }
            if value_of(SYSTEM_MODSTAMP_FIELD).is_none() {
                return Err(malformed("without a SystemModstamp to patch by"));
            }
            let (positions, texts): (Vec<usize>, Vec<Option<String>>) = values.into_iter().unzip();
            groups.entry(positions).or_default().push(texts);
        }
        let groups = groups
            .into_iter()
            .map(|(positions, texts)| {
                let columns = Columns::from_rows(
                    positions.len(),
                    texts.iter().map(|row| row.iter().map(Option::as_deref)),
                )?;
                Rows::new(
                    object,
                    positions.iter().map(|&i| &fields[i]).collect(),
                    columns,
                )
            })
            .collect::<Result<_, _>>()?;
        Ok(Self { groups })
    }

    /// The records, one group per set of fields carried.
    pub fn groups(&self) -> &[Rows<'p>] {
        &self.groups
    }

    /// The records' Ids.
    pub fn ids(&self) -> impl Iterator<Item = &str> {
        self.groups.iter().flat_map(Rows::ids)
    }
}

/// One element of what `sfpg.write_back` takes: the row's local `id` and the columns to
/// set, each as the text its column takes (or null).
///
/// The function writes a row whose element carries `systemmodstamp` only if the row's own
/// stamp is not newer (the version guard); otherwise it sets only the columns that hold a
/// provisional sfid, so that every Id the push resolved reaches the row whatever the guard
/// says. An element without `systemmodstamp` (the read-back failed) is written as it is.
#[derive(Debug, Clone, PartialEq)]
pub struct WriteBackRow {
    columns: Map<String, Value>,
}

impl WriteBackRow {
    /// The row whose local `id` is `row_id`, setting nothing yet.
    pub fn new(row_id: i64) -> Self {
        let mut columns = Map::new();
        columns.insert("id".to_owned(), Value::from(row_id));
        Self { columns }
    }

    /// Sets `column` to `text`: an Id the push resolved (`sfid`, a lookup that held a
    /// provisional sfid).
    pub fn set(&mut self, column: &str, text: &str) {
        self.columns
            .insert(column.to_owned(), Value::String(text.to_owned()));
    }

    /// Sets the columns of the `fields` that `record` carries, as Salesforce has them.
    pub fn copy(
        &mut self,
        object: &str,
        fields: &[MirroredField],
        record: &Record,
    ) -> Result<(), ControlError> {
        for (position, text) in carried(object, fields, record)? {
            self.columns.insert(
                fields[position].column.clone(),
                text.map_or(Value::Null, Value::String),
            );
        }
        Ok(())
    }
}

/// The JSON array `sfpg.write_back` takes as its `rows`, written a row at a time as the
/// rows are made: a statement's rows are never all held as rows (a Contact's row, 52
/// columns, is about 7 KB as a map and 3 KB as JSON), nor copied to be written.
#[derive(Debug, Default)]
pub struct WriteBackText {
    /// UTF-8: serde_json writes only the `str`s it is given, escaped.
    text: Vec<u8>,
    rows: usize,
}

impl WriteBackText {
    /// Adds `row` at the end.
    pub fn push(&mut self, row: WriteBackRow) {
        self.open_row();
        // Infallible: a map of strings into memory.
        let _ = serde_json::to_writer(&mut self.text, &Value::Object(row.columns));
        self.rows += 1;
    }

    /// Adds `row` at the end with the columns of `fields` set from one row of a Bulk API
    /// query's CSV results: `cells` gives each field's cell in the order of `fields`
    /// (`None`: the results have no such column, and the row keeps its value). An empty
    /// cell is NULL, as Salesforce's CSV has it; any other cell is the column's text, as
    /// [`WriteBackRow::copy`] makes of the same value as a string (without NULs, which no
    /// text column takes). A column `row` sets too takes the cell's value (the element's
    /// later key, as `jsonb` reads it). The cells are written as they come, never made
    /// into values: a read-back of 100,000 Contacts made 10 million strings through a
    /// record and a map of each row, a fifth of the proxy's time in a bulk push.
    pub fn push_read<'c>(
        &mut self,
        row: WriteBackRow,
        fields: &[MirroredField],
        cells: impl IntoIterator<Item = Option<&'c str>>,
    ) {
        self.open_row();
        let _ = serde_json::to_writer(&mut self.text, &Value::Object(row.columns));
        // Reopen the object just written: `…}` becomes `…,` and the cells follow.
        self.text.pop();
        let mut empty = self.text.last() == Some(&b'{');
        for (field, cell) in fields.iter().zip(cells) {
            let Some(cell) = cell else {
                continue;
            };
            if !std::mem::take(&mut empty) {
                self.text.push(b',');
            }
            let _ = serde_json::to_writer(&mut self.text, &field.column);
            self.text.push(b':');
            if cell.is_empty() {
                self.text.extend_from_slice(b"null");
            } else if cell.contains('\0') {
                let _ = serde_json::to_writer(&mut self.text, &cell.replace('\0', ""));
            } else {
                let _ = serde_json::to_writer(&mut self.text, cell);
            }
        }
        self.text.push(b'}');
        self.rows += 1;
    }

    fn open_row(&mut self) {
        self.text.push(if self.rows == 0 { b'[' } else { b',' });
    }

    /// How many rows it holds.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// The array's text.
    pub fn finish(mut self) -> String {
        if self.rows == 0 {
            return "[]".to_owned();
        }
        self.text.push(b']');
        // Always UTF-8 (see `text`); a lossy copy would be a bug's only trace.
        String::from_utf8(self.text)
            .unwrap_or_else(|error| String::from_utf8_lossy(error.as_bytes()).into_owned())
    }
}

#[cfg(test)]
mod tests;

/// The rows of a write-back by `COPY` (migration V25): each row's local `id`, its `sfid`
/// and one cell of a Bulk API query's CSV results for each of the fields given, as `COPY …
/// FROM STDIN` text rows of [`WriteBackCopy::columns`]. Every row sets every column (a
/// staged NULL sets NULL), so only rows that carry all the fields come here; the JSON form
/// ([`WriteBackText`]) keeps a column a row does not carry.
///
/// A cell becomes what [`WriteBackText::push_read`] makes of it: empty is NULL (`\N`),
/// NULs are dropped, anything else is the column's text, given to the same input
/// functions. `COPY`'s text format escapes only the backslash, tab, line feed and carriage
/// return.
#[derive(Debug)]
pub struct WriteBackCopy {
    columns: Vec<String>,
    /// UTF-8: only `str`s and ASCII escapes are written.
    data: Vec<u8>,
    rows: usize,
}

impl WriteBackCopy {
    /// Rows of `id`, `sfid` and the columns of `fields`, in that order.
    pub fn new(fields: &[MirroredField]) -> Self {
        let columns = ["id", "sfid"]
            .into_iter()
            .map(str::to_owned)
            .chain(fields.iter().map(|f| f.column.clone()))
            .collect();
        WriteBackCopy {
            columns,
            data: Vec::new(),
            rows: 0,
        }
    }

    /// The staged columns, in order.
    pub fn columns(&self) -> &[String] {
        &self.columns
    }

    /// Adds the row whose local id is `row_id`, with its `sfid` and `cells`: one for each of
    /// the fields given to [`WriteBackCopy::new`], in their order. A row of more or fewer
    /// cells is written as it is, and `COPY` refuses it ("missing data for column"): a
    /// column left NULL in its place would be committed as Salesforce's value.
    pub fn push_read<'c>(
        &mut self,
        row_id: i64,
        sfid: &str,
        cells: impl IntoIterator<Item = &'c str>,
    ) {
        self.data.extend_from_slice(row_id.to_string().as_bytes());
        self.push_cell(sfid);
        for cell in cells {
            self.push_cell(cell);
        }
        self.data.push(b'\n');
        self.rows += 1;
    }

    fn push_cell(&mut self, cell: &str) {
        self.data.push(b'\t');
        if cell.is_empty() {
            self.data.extend_from_slice(b"\\N");
            return;
        }
        let bytes = cell.as_bytes();
        let mut start = 0;
        for (at, byte) in bytes.iter().enumerate() {
            let escaped: &[u8] = match byte {
                b'\\' => b"\\\\",
                b'\t' => b"\\t",
                b'\n' => b"\\n",
                b'\r' => b"\\r",
                0 => b"",
                _ => continue,
            };
            self.data.extend_from_slice(&bytes[start..at]);
            self.data.extend_from_slice(escaped);
            start = at + 1;
        }
        self.data.extend_from_slice(&bytes[start..]);
    }

    /// How many rows it holds.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// The columns and the `COPY` text of the rows.
    pub fn finish(self) -> (Vec<String>, String) {
        // Always UTF-8 (see `data`); a lossy copy would be a bug's only trace.
        let data = String::from_utf8(self.data)
            .unwrap_or_else(|error| String::from_utf8_lossy(error.as_bytes()).into_owned());
        (self.columns, data)
    }
}
