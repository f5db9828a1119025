//! `INSERT … RETURNING sfid` in autocommit: the row went to Salesforce after the INSERT
//! ran, so the DataRow PostgreSQL sent has the row's provisional `sfid` (or NULL, in a
//! table without the provisional default). The managed unit's replies are held back until
//! the push, and those rows are patched with the new Ids before the client sees them.
//!
//! A provisional sfid is unique and can only stand for its row, so any returned value
//! equal to one the push resolved is replaced, in whatever column (a lookup returned from
//! a child inserted with its parent, `RETURNING accountid`, too). A NULL `sfid` column is
//! recognised by the RowDescription's table OID and column number, so aliases
//! (`RETURNING sfid AS salesforce_id`) are patched too.

use std::collections::HashMap;

use bytes::{BufMut, BytesMut};

use crate::backend::statements::Attnums;
use crate::net::frame::{Frame, body, frame_at};
use crate::net::messages::backend::{self as be, Column};
use crate::push::Created;

/// Replaces provisional sfids the push resolved with their Ids, and fills the NULL `sfid`
/// of rows that came back from tables in `created`: a row that also returned its table's
/// `id` gets the Id of that row; otherwise the n-th such row of a result gets the n-th Id
/// created in its table. `executes` holds, for each Execute of
/// the unit in order, the RowDescription of its statement when the client described the
/// statement rather than the portal (so no RowDescription precedes its rows).
pub fn patch(
    held: &BytesMut,
    created: &[Created],
    attnums: &HashMap<u32, Attnums>,
    executes: &[Option<bytes::Bytes>],
) -> BytesMut {
    let mut out = BytesMut::with_capacity(held.len() + created.len() * 20);
    let columns_of = |description: Option<&bytes::Bytes>| {
        description
            .and_then(|frame| be::decode_row_description(body(frame)).ok())
            .unwrap_or_default()
    };
    let mut execute = 0;
    let mut columns: Vec<Column> = columns_of(executes.first().and_then(Option::as_ref));
    // Per table, how many created Ids this result has used so far.
    let mut used: HashMap<u32, usize> = HashMap::new();
    let mut pos = 0;
    while let Ok(Frame::Complete { tag, len }) = frame_at(&held[pos..]) {
        let frame = &held[pos..pos + len];
        pos += len;
        match tag {
            be::ROW_DESCRIPTION => {
                columns = be::decode_row_description(body(frame)).unwrap_or_default();
                used.clear();
                out.extend_from_slice(frame);
            }
            be::DATA_ROW => match patch_row(frame, &columns, created, attnums, &mut used) {
                Some(patched) => out.extend_from_slice(&patched),
                None => out.extend_from_slice(frame),
            },
            // The end of one Execute's rows: the next one's columns start over.
            be::COMMAND_COMPLETE
            | be::PORTAL_SUSPENDED
            | be::EMPTY_QUERY_RESPONSE
            | be::ERROR_RESPONSE => {
                out.extend_from_slice(frame);
                if !executes.is_empty() {
                    execute += 1;
                    columns = columns_of(executes.get(execute).and_then(Option::as_ref));
                    used.clear();
                }
            }
            _ => out.extend_from_slice(frame),
        }
    }
    out.extend_from_slice(&held[pos..]);
    out
}

/// Whether any RowDescription in `held` or `executes` has a column of one of `tables`.
pub fn mentions(held: &BytesMut, executes: &[Option<bytes::Bytes>], tables: &[u32]) -> bool {
    let described = |frame: &[u8]| {
        be::decode_row_description(body(frame))
            .unwrap_or_default()
            .iter()
            .any(|c| tables.contains(&c.table_oid))
    };
    if executes.iter().flatten().any(|frame| described(frame)) {
        return true;
    }
    let mut pos = 0;
    while let Ok(Frame::Complete { tag, len }) = frame_at(&held[pos..]) {
        if tag == be::ROW_DESCRIPTION && described(&held[pos..pos + len]) {
            return true;
        }
        pos += len;
    }
    false
}

fn patch_row(
    frame: &[u8],
    columns: &[Column],
    created: &[Created],
    attnums: &HashMap<u32, Attnums>,
    used: &mut HashMap<u32, usize>,
) -> Option<BytesMut> {
    let values = be::decode_data_row(body(frame)).ok()?;
    let mut replacements: Vec<(usize, &str)> = Vec::new();
    // varchar's and text's binary form is their text, so either format compares.
    for (i, value) in values.iter().enumerate() {
        let Some(value) = value.and_then(|v| std::str::from_utf8(v).ok()) else {
            continue;
        };
        if !sfpg_control::mirror::is_provisional_sfid(value) {
            continue;
        }
        if let Some(created) = created
            .iter()
            .find(|c| c.provisional.as_deref() == Some(value))
        {
            replacements.push((i, created.sfid.as_str()));
        }
    }
    for (i, column) in columns.iter().enumerate() {
        let Some(numbers) = attnums.get(&column.table_oid) else {
            continue;
        };
        if column.attnum != numbers.sfid || values.get(i).copied().flatten().is_some() {
            continue;
        }
        let row_id = columns.iter().zip(&values).find_map(|(c, v)| {
            (c.table_oid == column.table_oid && c.attnum == numbers.id && c.format == 0)
                .then(|| std::str::from_utf8((*v)?).ok()?.parse::<i64>().ok())
                .flatten()
        });
        let of_table = created.iter().filter(|c| c.table_oid == column.table_oid);
        let found = match row_id {
            Some(row_id) => created
                .iter()
                .find(|c| c.table_oid == column.table_oid && c.row_id == row_id),
            None => {
                let n = used.entry(column.table_oid).or_default();
                let found = of_table.clone().nth(*n);
                *n += 1;
                found
            }
        };
        if let Some(created) = found {
            replacements.push((i, created.sfid.as_str()));
        }
    }
    if replacements.is_empty() {
        return None;
    }
    // varchar's text and binary forms are the same bytes.
    let mut row_body = BytesMut::new();
    row_body.put_i16(i16::try_from(values.len()).ok()?);
    for (i, value) in values.iter().enumerate() {
        let value = replacements
            .iter()
            .find(|(index, _)| *index == i)
            .map(|(_, sfid)| Some(sfid.as_bytes()))
            .unwrap_or(*value);
        match value {
            Some(bytes) => {
                row_body.put_i32(i32::try_from(bytes.len()).ok()?);
                row_body.put_slice(bytes);
            }
            None => row_body.put_i32(-1),
        }
    }
    let mut frame = BytesMut::with_capacity(row_body.len() + 5);
    frame.put_u8(be::DATA_ROW);
    frame.put_i32(i32::try_from(row_body.len() + 4).ok()?);
    frame.put_slice(&row_body);
    Some(frame)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frontend::conversation::tests::{data_row, frame, row_description};

    fn created(row_id: i64, sfid: &str) -> Created {
        Created {
            table_oid: 100,
            row_id,
            sfid: sfid.into(),
            provisional: None,
        }
    }

    fn attnums() -> HashMap<u32, Attnums> {
        HashMap::from([(100, Attnums { id: 1, sfid: 2 })])
    }

    #[test]
    fn fills_returned_sfids_in_order_or_by_id() {
        let mut held = BytesMut::new();
        held.extend_from_slice(&row_description(&[("sfid", 100, 2), ("name", 100, 5)]));
        held.extend_from_slice(&data_row(&[None, Some("A")]));
        held.extend_from_slice(&data_row(&[None, Some("B")]));
        held.extend_from_slice(&frame(b'C', b"INSERT 0 2\0"));
        let created = [
            created(7, "001000000000007AAA"),
            created(8, "001000000000008AAA"),
        ];
        let patched = patch(&held, &created, &attnums(), &[]);
        let mut expected = BytesMut::new();
        expected.extend_from_slice(&row_description(&[("sfid", 100, 2), ("name", 100, 5)]));
        expected.extend_from_slice(&data_row(&[Some("001000000000007AAA"), Some("A")]));
        expected.extend_from_slice(&data_row(&[Some("001000000000008AAA"), Some("B")]));
        expected.extend_from_slice(&frame(b'C', b"INSERT 0 2\0"));
        assert_eq!(patched, expected);

        // With the id returned too, rows are matched by id whatever their order.
        let mut held = BytesMut::new();
        held.extend_from_slice(&row_description(&[("id", 100, 1), ("x", 100, 2)]));
        held.extend_from_slice(&data_row(&[Some("8"), None]));
        let patched = patch(&held, &created, &attnums(), &[]);
        let mut expected = BytesMut::new();
        expected.extend_from_slice(&row_description(&[("id", 100, 1), ("x", 100, 2)]));
        expected.extend_from_slice(&data_row(&[Some("8"), Some("001000000000008AAA")]));
        assert_eq!(patched, expected);
    }

    #[test]
    fn uses_the_statements_description_when_the_portal_was_not_described() {
        let description = bytes::Bytes::from(row_description(&[("sfid", 100, 2)]));
        let mut held = BytesMut::new();
        held.extend_from_slice(&frame(b'2', b""));
        held.extend_from_slice(&data_row(&[None]));
        held.extend_from_slice(&frame(b'C', b"INSERT 0 1\0"));
        let patched = patch(
            &held,
            &[created(7, "001000000000007AAA")],
            &attnums(),
            &[Some(description)],
        );
        let mut expected = BytesMut::new();
        expected.extend_from_slice(&frame(b'2', b""));
        expected.extend_from_slice(&data_row(&[Some("001000000000007AAA")]));
        expected.extend_from_slice(&frame(b'C', b"INSERT 0 1\0"));
        assert_eq!(patched, expected);
    }

    #[test]
    fn leaves_other_columns_and_tables_alone() {
        let mut held = BytesMut::new();
        held.extend_from_slice(&row_description(&[("sfid", 200, 2), ("name", 100, 5)]));
        held.extend_from_slice(&data_row(&[None, None]));
        let patched = patch(&held, &[created(7, "001000000000007AAA")], &attnums(), &[]);
        assert_eq!(patched, held);
    }

    #[test]
    fn provisional_sfids_become_their_ids_in_any_column() {
        let mut parent = created(7, "001000000000007AAA");
        parent.provisional = Some("~00000000000000042".into());
        let mut held = BytesMut::new();
        // A child's lookup (table 300) and the parent's own sfid, both provisional.
        held.extend_from_slice(&row_description(&[
            ("accountid", 300, 4),
            ("sfid", 100, 2),
            ("note", 300, 5),
        ]));
        held.extend_from_slice(&data_row(&[
            Some("~00000000000000042"),
            Some("~00000000000000042"),
            Some("~00000000000000043"),
        ]));
        let patched = patch(&held, &[parent], &attnums(), &[]);
        let mut expected = BytesMut::new();
        expected.extend_from_slice(&row_description(&[
            ("accountid", 300, 4),
            ("sfid", 100, 2),
            ("note", 300, 5),
        ]));
        // A provisional value the push did not resolve stays as it was.
        expected.extend_from_slice(&data_row(&[
            Some("001000000000007AAA"),
            Some("001000000000007AAA"),
            Some("~00000000000000043"),
        ]));
        assert_eq!(patched, expected);
    }
}
