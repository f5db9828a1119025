//! Routing by what is owed: the proxy's replies consumed and the client's forwarded, skips
//! to Sync after an error, the warnings a BEGIN in the proxy's transaction draws, the Syncs
//! a COPY ignores, and which completions are of statements that may write.

use bytes::BytesMut;

use super::*;
use crate::net::messages::encode;

fn frame(tag: u8, body: &[u8]) -> Vec<u8> {
    let mut f = vec![tag];
    f.extend_from_slice(&((body.len() + 4) as i32).to_be_bytes());
    f.extend_from_slice(body);
    f
}

fn ready(status: TransactionStatus) -> Vec<u8> {
    let mut buf = BytesMut::new();
    encode::ready_for_query(&mut buf, status).unwrap();
    buf.to_vec()
}

fn error(code: &str) -> Vec<u8> {
    let mut buf = BytesMut::new();
    encode::error_response(&mut buf, vec![(b'C', code.into())]).unwrap();
    buf.to_vec()
}

fn route(replies: &mut Replies, bytes: &[u8]) -> Routed {
    replies.route(bytes[0], bytes).unwrap()
}

#[test]
fn the_proxys_replies_are_consumed_and_the_clients_forwarded() {
    let mut replies = Replies::default();
    for request in [
        Request::Close,
        Request::Parse,
        Request::Bind,
        Request::Execute,
    ] {
        replies.push(Owed::ours(request));
    }
    for request in [
        Request::Parse,
        Request::Bind,
        Request::Execute,
        Request::Sync,
    ] {
        replies.push(Owed::client(request));
    }
    assert_eq!(replies.units_in_flight(), 1);
    let ours = Routed::Proxy { error: false };
    let client = Routed::Client {
        error: false,
        write: false,
    };
    assert_eq!(route(&mut replies, &frame(b'3', b"")), ours);
    assert_eq!(route(&mut replies, &frame(b'1', b"")), ours);
    assert_eq!(route(&mut replies, &frame(b'2', b"")), ours);
    assert_eq!(route(&mut replies, &frame(b'C', b"BEGIN\0")), ours);
    assert_eq!(route(&mut replies, &frame(b'1', b"")), client);
    assert_eq!(route(&mut replies, &frame(b'2', b"")), client);
    assert_eq!(route(&mut replies, &frame(b'D', b"\0\0")), client);
    assert_eq!(route(&mut replies, &frame(b'C', b"UPDATE 1\0")), client);
    assert_eq!(
        route(&mut replies, &ready(TransactionStatus::InBlock)),
        Routed::Ready {
            owed: Owed::client(Request::Sync),
            status: TransactionStatus::InBlock
        }
    );
    assert!(replies.is_empty());
}

#[test]
fn an_extended_error_skips_to_sync() {
    let mut replies = Replies::default();
    replies.push(Owed::client(Request::Parse));
    replies.push(Owed::client(Request::Bind));
    replies.push(Owed::ours(Request::Execute));
    replies.push(Owed::client(Request::Sync));
    assert_eq!(
        route(&mut replies, &error("42601")),
        Routed::Client {
            error: true,
            write: false
        }
    );
    assert_eq!(replies.units_in_flight(), 1);
    assert!(!replies.extended_in_flight());
    assert!(matches!(
        route(&mut replies, &ready(TransactionStatus::Idle)),
        Routed::Ready { .. }
    ));
}

#[test]
fn a_query_keeps_its_errors_and_rows_until_ready() {
    let mut replies = Replies::default();
    replies.push(Owed::client(Request::Query));
    assert_eq!(
        route(&mut replies, &frame(b'T', b"\0\0")),
        Routed::Client {
            error: false,
            write: false
        }
    );
    assert_eq!(
        route(&mut replies, &frame(b'C', b"SELECT 0\0")),
        Routed::Client {
            error: false,
            write: false
        }
    );
    assert_eq!(
        route(&mut replies, &error("22012")),
        Routed::Client {
            error: true,
            write: false
        }
    );
    assert_eq!(replies.units_in_flight(), 1);
    assert!(matches!(
        route(&mut replies, &ready(TransactionStatus::Idle)),
        Routed::Ready { .. }
    ));
}

#[test]
fn only_the_announced_begin_warnings_are_consumed() {
    let mut replies = Replies::default();
    let mut owed = Owed::client(Request::Query);
    owed.begin_warnings = 1;
    replies.push(owed);
    let mut warning = BytesMut::new();
    encode::error_response(&mut warning, vec![(b'C', "25001".into())]).unwrap();
    warning[0] = b'N';
    assert_eq!(
        route(&mut replies, &warning),
        Routed::Proxy { error: false }
    );
    assert_eq!(
        route(&mut replies, &warning),
        Routed::Client {
            error: false,
            write: false
        }
    );
}

#[test]
fn asynchronous_messages_go_to_the_client_even_during_the_proxys_statements() {
    let mut replies = Replies::default();
    replies.push(Owed::ours(Request::Sync));
    assert_eq!(
        route(&mut replies, &frame(b'A', b"\0\0\0\x01news\0hi\0")),
        Routed::Client {
            error: false,
            write: false
        }
    );
    assert_eq!(
        route(&mut replies, &frame(b'N', b"SNOTICE\0\0")),
        Routed::Proxy { error: false }
    );
}

#[test]
fn the_syncs_a_copy_ignores_are_dropped() {
    let ready = ready(TransactionStatus::Idle);
    let copy_in = frame(b'G', b"\0\0\0");
    // tokio-postgres: Bind, Execute, Sync; then the data, CopyDone, Sync.
    let mut replies = Replies::default();
    replies.push(Owed::client(Request::Bind));
    replies.push(Owed::client(Request::Execute));
    let mut sync = Owed::client(Request::Sync);
    sync.on_ready = OnReady::EndManaged {
        last: true,
        query: false,
    };
    replies.push(sync);
    assert!(matches!(
        route(&mut replies, &frame(b'2', b"")),
        Routed::Client { .. }
    ));
    assert_eq!(
        route(&mut replies, &copy_in),
        Routed::CopyIn {
            released: true,
            extended: true
        }
    );
    assert_eq!(replies.units_in_flight(), 0);
    assert!(replies.in_copy());
    replies.client_ended_copy();
    assert!(!replies.in_copy());
    replies.push(Owed::client(Request::Sync));
    assert!(matches!(
        route(&mut replies, &frame(b'C', b"COPY 1\0")),
        Routed::Client { .. }
    ));
    assert!(matches!(route(&mut replies, &ready), Routed::Ready { .. }));
    assert!(replies.is_empty());

    // Everything sent before the COPY was seen to start: only the Sync before the
    // CopyDone is ignored.
    let mut replies = Replies::default();
    replies.push(Owed::client(Request::Execute));
    replies.push(Owed::client(Request::Sync));
    replies.client_ended_copy();
    replies.push(Owed::client(Request::Sync));
    assert_eq!(
        route(&mut replies, &copy_in),
        Routed::CopyIn {
            released: false,
            extended: true
        }
    );
    assert!(!replies.in_copy());
    assert_eq!(replies.units_in_flight(), 1);
    route(&mut replies, &frame(b'C', b"COPY 1\0"));
    assert!(matches!(route(&mut replies, &ready), Routed::Ready { .. }));
    assert!(replies.is_empty());
}

#[test]
fn a_copy_that_does_not_start_leaves_both_syncs_answered() {
    let mut replies = Replies::default();
    replies.push(Owed::client(Request::Execute));
    replies.push(Owed::client(Request::Sync));
    replies.client_ended_copy();
    replies.push(Owed::client(Request::Sync));
    route(&mut replies, &error("42P01"));
    let ready = ready(TransactionStatus::Idle);
    assert!(matches!(route(&mut replies, &ready), Routed::Ready { .. }));
    // The mark of the CopyDone went with the first Sync; the second is next.
    assert_eq!(replies.units_in_flight(), 1);
    assert!(matches!(route(&mut replies, &ready), Routed::Ready { .. }));
    assert!(replies.is_empty());
    // With nothing owed, a CopyDone (of a COPY that failed) leaves no mark.
    replies.client_ended_copy();
    assert!(replies.is_empty());
}

#[test]
fn completions_of_statements_that_may_write_are_told_apart() {
    let complete = |tag: &[u8]| frame(b'C', tag);
    let mut replies = Replies::default();
    let mut write = Owed::client(Request::Execute);
    write.writes = Writes::Execute;
    replies.push(write);
    replies.push(Owed::client(Request::Execute));
    let mut query = Owed::client(Request::Query);
    query.writes = Writes::Query(vec![false, true].into());
    replies.push(query);
    let written = Routed::Client {
        error: false,
        write: true,
    };
    let read = Routed::Client {
        error: false,
        write: false,
    };
    assert_eq!(route(&mut replies, &complete(b"INSERT 0 1\0")), written);
    assert_eq!(route(&mut replies, &complete(b"SELECT 1\0")), read);
    assert_eq!(route(&mut replies, &complete(b"SELECT 1\0")), read);
    assert_eq!(route(&mut replies, &complete(b"UPDATE 2\0")), written);
    match route(&mut replies, &ready(TransactionStatus::Idle)) {
        Routed::Ready { owed, .. } => assert!(owed.statements_accounted_for()),
        other => panic!("{other:?}"),
    }
}
