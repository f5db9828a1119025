//! A query string split into steps, each sent as a Query of its own: before a COMMIT that
//! may have to push (so the push can come between), and after a COMMIT or ROLLBACK that
//! something needing a decision follows.

use bytes::{Bytes, BytesMut};

use crate::classify::{Classified, Kind};
use crate::error::SessionError;
use crate::net::frame::body;
use crate::net::messages::encode;
use crate::net::messages::frontend as fe;

/// One step of a query string split at its COMMITs, sent as a Query of its own.
#[derive(Debug)]
pub struct Step {
    /// The Query message.
    pub frame: Bytes,
    /// The kinds of its statements, in order.
    pub kinds: Vec<Kind>,
    /// Starts with a COMMIT: push first.
    pub commit: bool,
    /// Part of a string of several statements, which PostgreSQL runs in an implicit
    /// transaction.
    pub implicit: bool,
    /// The client's query string ends with this step: its ReadyForQuery is the client's.
    pub last: bool,
}

/// Splits a query string into steps: before a COMMIT that may have to push (so the push
/// can come between), and after a COMMIT or ROLLBACK that something needing a decision
/// follows (so that it starts from a known state). Statements between stay together,
/// keeping PostgreSQL's implicit transaction around them. Each later step is padded with
/// spaces where the earlier text was, so that error positions still count from the start
/// of the client's string. `written`: the current transaction may already have written.
pub(super) fn plan_steps(
    frame: &[u8],
    sql: &[u8],
    classified: &Classified,
    written: bool,
) -> Result<Vec<Step>, SessionError> {
    let statements = &classified.statements;
    let kinds: Vec<Kind> = statements.iter().map(|s| s.kind).collect();
    let mut starts = vec![0];
    let mut may_push = written;
    for (i, kind) in kinds.iter().enumerate() {
        match kind {
            Kind::MayWrite => may_push = true,
            Kind::Commit if i > 0 && may_push => starts.push(i),
            _ => {}
        }
        let decisions_follow = kinds[i + 1..]
            .iter()
            .any(|k| matches!(k, Kind::MayWrite | Kind::Commit));
        if matches!(kind, Kind::Commit | Kind::Rollback) && decisions_follow {
            starts.push(i + 1);
            may_push = false;
        }
    }
    starts.dedup();
    let several = statements.len() > 1;
    let starts_with_commit = |first: usize| kinds.get(first) == Some(&Kind::Commit);
    if starts.len() == 1 {
        let commit = starts_with_commit(0);
        return Ok(vec![Step {
            frame: Bytes::copy_from_slice(frame),
            kinds,
            commit,
            implicit: several,
            last: true,
        }]);
    }
    let mut steps = Vec::with_capacity(starts.len());
    for (j, &first) in starts.iter().enumerate() {
        let end = starts.get(j + 1).copied().unwrap_or(statements.len());
        let from = if j == 0 {
            0
        } else {
            statements[first].range.start
        };
        let to = if end == statements.len() {
            sql.len()
        } else {
            statements[end].range.start
        };
        let padding = String::from_utf8_lossy(&sql[..from]).chars().count();
        let mut text = " ".repeat(padding);
        text.push_str(&String::from_utf8_lossy(&sql[from..to]));
        let mut frame = BytesMut::new();
        encode::query(&mut frame, &text)?;
        steps.push(Step {
            frame: frame.freeze(),
            kinds: kinds[first..end].to_vec(),
            commit: starts_with_commit(first),
            implicit: several,
            last: end == statements.len(),
        });
    }
    Ok(steps)
}

/// A statement whose only reply is one CommandComplete and that changes nothing.
const NO_OP: &str = "DO $$BEGIN END$$;";

/// A COMMIT step to run where the proxy has already committed: PostgreSQL warns that
/// there is no transaction in progress, and the warning's source line differs between a
/// lone COMMIT and one inside a multi-statement string's implicit transaction. When the
/// padding has room, a no-op statement in it puts this COMMIT in an implicit transaction
/// too, so the warning is the one the client would have had; its reply is consumed.
pub(super) fn in_implicit_transaction(frame: &[u8]) -> Option<Bytes> {
    let sql = fe::Query::decode(body(frame)).ok()?.sql;
    let padding = sql.iter().take_while(|&&b| b == b' ').count();
    if padding <= NO_OP.len() {
        return None;
    }
    let mut text = String::with_capacity(sql.len());
    text.push_str(NO_OP);
    text.push_str(&" ".repeat(padding - NO_OP.len()));
    text.push_str(&String::from_utf8_lossy(&sql[padding..]));
    let mut frame = BytesMut::new();
    encode::query(&mut frame, &text).ok()?;
    Some(frame.freeze())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::classify::classify;

    fn steps(sql: &str) -> Vec<(String, bool, bool)> {
        let mut frame = BytesMut::new();
        encode::query(&mut frame, sql).unwrap();
        plan_steps(&frame, sql.as_bytes(), &classify(sql.as_bytes()), false)
            .unwrap()
            .into_iter()
            .map(|s| {
                let text = fe::Query::decode(body(&s.frame)).unwrap().sql;
                (String::from_utf8(text.to_vec()).unwrap(), s.commit, s.last)
            })
            .collect()
    }

    #[test]
    fn a_string_without_commit_stays_whole() {
        assert_eq!(
            steps("UPDATE a SET x = 1; UPDATE b SET y = 2"),
            vec![("UPDATE a SET x = 1; UPDATE b SET y = 2".into(), false, true)]
        );
        assert_eq!(steps("COMMIT"), vec![("COMMIT".into(), true, true)]);
    }

    #[test]
    fn splits_around_commit_keeping_positions() {
        assert_eq!(
            steps("BEGIN; UPDATE t SET x = 1; COMMIT; SELECT é"),
            vec![
                ("BEGIN; UPDATE t SET x = 1; ".into(), false, false),
                (format!("{}COMMIT; SELECT é", " ".repeat(27)), true, true),
            ]
        );
        assert_eq!(
            steps("BEGIN; UPDATE t SET x = 1; COMMIT; DELETE FROM t"),
            vec![
                ("BEGIN; UPDATE t SET x = 1; ".into(), false, false),
                (format!("{}COMMIT; ", " ".repeat(27)), true, false),
                (format!("{}DELETE FROM t", " ".repeat(35)), false, true),
            ]
        );
    }

    #[test]
    fn does_not_split_where_nothing_is_decided() {
        assert_eq!(steps("SELECT 1; COMMIT; SELECT 2").len(), 1);
        assert_eq!(steps("BEGIN; SELECT 1; ROLLBACK; SELECT 2").len(), 1);
    }

    #[test]
    fn a_commit_after_the_proxys_own_gets_a_no_op_in_its_padding() {
        let mut frame = BytesMut::new();
        encode::query(&mut frame, &format!("{}COMMIT", " ".repeat(27))).unwrap();
        let moved = in_implicit_transaction(&frame).unwrap();
        let sql = fe::Query::decode(body(&moved)).unwrap().sql;
        assert_eq!(sql.len(), 33);
        assert!(sql.starts_with(NO_OP.as_bytes()) && sql.ends_with(b" COMMIT"));
        let mut short = BytesMut::new();
        encode::query(&mut short, "  COMMIT").unwrap();
        assert!(in_implicit_transaction(&short).is_none());
    }

    #[test]
    fn splits_after_rollback() {
        assert_eq!(
            steps("BEGIN; DELETE FROM t; ROLLBACK; DELETE FROM u"),
            vec![
                ("BEGIN; DELETE FROM t; ROLLBACK; ".into(), false, false),
                (format!("{}DELETE FROM u", " ".repeat(32)), false, true),
            ]
        );
    }
}
