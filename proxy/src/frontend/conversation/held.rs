//! The replies of a managed unit, held back until its push decides what the client sees,
//! and what the proxy knows of them: the columns of each Execute's rows (for `RETURNING
//! sfid`), where the statements that may write completed, and which named statements the
//! unit prepared.
//!
//! A refused push answers the unit as PostgreSQL answers a statement that fails: the error
//! takes the place of that statement's CommandComplete, and the rest of the unit is
//! skipped. Clients that pipeline count on one answer per statement, a CommandComplete or
//! an error; an error after the statement's CommandComplete (PostgreSQL's answer to a
//! deferred constraint that fails at the implicit commit) breaks psycopg 3's pipeline mode
//! and `executemany`, and others put it on the next statement.

use bytes::{Bytes, BytesMut};

use crate::net::frame::{Frame, frame_at};
use crate::net::messages::backend as be;

#[derive(Debug, Default)]
pub(super) struct Held {
    pub replies: BytesMut,
    /// For each Execute of the unit, its statement's RowDescription if known.
    pub executes: Vec<Option<Bytes>>,
    /// Where in `replies` the statements that may write completed.
    writes: Vec<usize>,
    /// Named statements prepared in the unit: where their ParseComplete is, and the name.
    parsed: Vec<(usize, Box<[u8]>)>,
}

impl Held {
    /// Holds one reply. `write`: it completes a statement that may write; `parsed`: it is
    /// the ParseComplete of this named statement.
    pub fn push(&mut self, frame: &[u8], write: bool, parsed: Option<Box<[u8]>>) {
        if write {
            self.writes.push(self.replies.len());
        }
        if let Some(name) = parsed {
            self.parsed.push((self.replies.len(), name));
        }
        self.replies.extend_from_slice(frame);
    }

    /// A CopyInResponse (`frame`) for the client: what was held goes out with it, since the
    /// client must now send its data, and the COPY's own completion is held again.
    /// `extended`: the COPY is an Execute.
    pub fn copy_starts(held: &mut Option<Held>, out: &mut BytesMut, frame: &[u8], extended: bool) {
        if let Some(before) = held.take() {
            out.extend_from_slice(&before.replies);
            let mut again = Held::default();
            if extended {
                // The COPY's Execute, whose completion comes next.
                again.executes.push(None);
            }
            *held = Some(again);
        }
        out.extend_from_slice(frame);
    }

    /// Which completion belongs to which statement is not known after all.
    pub fn forget_writes(&mut self) {
        self.writes.clear();
    }

    /// Ends the replies where a refused push's error goes: in place of the completion of
    /// the last statement that may have written, with what followed it dropped. The
    /// refusal does not say which statement wrote the record Salesforce refused, so the
    /// last one that may have written takes the error. `query`: the unit is a simple Query.
    ///
    /// Returns the named statements whose ParseComplete was dropped: the client sees them
    /// skipped, so they must not exist on the server either.
    pub fn make_room_for_error(&mut self, query: bool) -> Vec<Box<[u8]>> {
        match self.writes.last() {
            Some(&at) => self.replies.truncate(at),
            // A query string the server split otherwise than the proxy: as PostgreSQL
            // answers a failed implicit commit, the last statement loses its completion.
            None if query => drop_last_command_complete(&mut self.replies),
            None => {}
        }
        let end = self.replies.len();
        self.writes.clear();
        self.parsed
            .drain(..)
            .filter(|(at, _)| *at >= end)
            .map(|(_, name)| name)
            .collect()
    }
}

/// Removes the last CommandComplete from `replies` (whole backend frames), if any.
fn drop_last_command_complete(replies: &mut BytesMut) {
    let mut pos = 0;
    let mut last = None;
    while let Ok(Frame::Complete { tag, len }) = frame_at(&replies[pos..]) {
        if tag == be::COMMAND_COMPLETE {
            last = Some((pos, len));
        }
        pos += len;
    }
    if let Some((at, len)) = last {
        let rest = replies.split_off(at);
        replies.extend_from_slice(&rest[len..]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(tag: u8, body: &[u8]) -> Vec<u8> {
        let mut out = vec![tag];
        out.extend_from_slice(&(i32::try_from(body.len() + 4).unwrap()).to_be_bytes());
        out.extend_from_slice(body);
        out
    }

    #[test]
    fn only_the_last_command_complete_is_dropped() {
        let first = frame(b'C', b"UPDATE 1\0");
        let row = frame(b'D', &[0, 1, 0, 0, 0, 1, b'x']);
        let last = frame(b'C', b"INSERT 0 1\0");
        let notice = frame(b'N', b"Mhi\0\0");
        let mut replies = BytesMut::new();
        for f in [&first, &row, &last, &notice] {
            replies.extend_from_slice(f);
        }
        drop_last_command_complete(&mut replies);
        assert_eq!(
            &replies[..],
            [&first[..], &row[..], &notice[..]].concat().as_slice()
        );
        let mut none = BytesMut::from(&row[..]);
        drop_last_command_complete(&mut none);
        assert_eq!(&none[..], &row[..]);
    }

    #[test]
    fn the_error_replaces_the_last_writes_completion_and_what_follows() {
        let parsed = frame(b'1', b"");
        let bound = frame(b'2', b"");
        let inserted = frame(b'C', b"INSERT 0 1\0");
        let selected = frame(b'C', b"SELECT 1\0");
        let mut held = Held::default();
        held.push(&parsed, false, Some(b"early".as_slice().into()));
        held.push(&bound, false, None);
        held.push(&inserted, true, None);
        held.push(&parsed, false, None);
        held.push(&bound, false, None);
        held.push(&inserted, true, None);
        held.push(&parsed, false, Some(b"late".as_slice().into()));
        held.push(&bound, false, None);
        held.push(&selected, false, None);
        let skipped = held.make_room_for_error(false);
        assert_eq!(skipped, vec![Box::<[u8]>::from(b"late".as_slice())]);
        assert_eq!(
            &held.replies[..],
            [&parsed, &bound, &inserted, &parsed, &bound]
                .map(|f| f.as_slice())
                .concat()
                .as_slice()
        );
    }

    #[test]
    fn without_known_writes_a_query_loses_its_last_completion_and_a_unit_nothing() {
        let described = frame(b'T', b"\0\0");
        let completed = frame(b'C', b"INSERT 0 1\0");
        let mut held = Held::default();
        held.push(&described, false, None);
        held.push(&completed, true, None);
        held.forget_writes();
        let mut unit = Held::default();
        unit.push(&completed, false, None);
        assert!(held.make_room_for_error(true).is_empty());
        assert_eq!(&held.replies[..], &described[..]);
        assert!(unit.make_room_for_error(false).is_empty());
        assert_eq!(&unit.replies[..], &completed[..]);
    }
}
