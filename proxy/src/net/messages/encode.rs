//! Messages the proxy writes itself, encoded with `pgwire`'s codecs: its own cancel key,
//! the errors and ReadyForQuery it answers with when it stands in for the server, and the
//! statements it runs on a client's upstream connection.

use bytes::BytesMut;
use pgwire::error::PgWireError;
use pgwire::messages::Message;
use pgwire::messages::cancel::CancelRequest;
use pgwire::messages::copy::{CopyData, CopyDone};
use pgwire::messages::extendedquery::{Bind, Close, Execute, Parse, Sync};
use pgwire::messages::response::{
    ErrorResponse, NoticeResponse, ReadyForQuery, TransactionStatus as PgStatus,
};
use pgwire::messages::simplequery::Query;
use pgwire::messages::startup::{BackendKeyData, SecretKey};

use super::backend::TransactionStatus;

/// A message too large for the protocol.
#[derive(Debug, thiserror::Error)]
#[error("cannot encode a protocol message: {0}")]
pub struct EncodeError(#[from] PgWireError);

pub fn backend_key_data(buf: &mut BytesMut, pid: i32, secret: &[u8]) -> Result<(), EncodeError> {
    BackendKeyData::new(pid, secret_key(secret)).encode(buf)?;
    Ok(())
}

pub fn cancel_request(buf: &mut BytesMut, pid: i32, secret: &[u8]) -> Result<(), EncodeError> {
    CancelRequest::new(pid, secret_key(secret)).encode(buf)?;
    Ok(())
}

fn secret_key(secret: &[u8]) -> SecretKey {
    SecretKey::Bytes(bytes::Bytes::copy_from_slice(secret))
}

pub fn ready_for_query(buf: &mut BytesMut, status: TransactionStatus) -> Result<(), EncodeError> {
    let status = match status {
        TransactionStatus::Idle => PgStatus::Idle,
        TransactionStatus::InBlock => PgStatus::Transaction,
        TransactionStatus::Failed => PgStatus::Error,
    };
    ReadyForQuery::new(status).encode(buf)?;
    Ok(())
}

/// An ErrorResponse with the given fields, in the order given.
pub fn error_response(buf: &mut BytesMut, fields: Vec<(u8, String)>) -> Result<(), EncodeError> {
    ErrorResponse::new(fields).encode(buf)?;
    Ok(())
}

/// A NoticeResponse with the given fields (severity first), in the order given.
pub fn notice_response(buf: &mut BytesMut, fields: Vec<(u8, String)>) -> Result<(), EncodeError> {
    NoticeResponse::new(fields).encode(buf)?;
    Ok(())
}

pub fn query(buf: &mut BytesMut, sql: &str) -> Result<(), EncodeError> {
    Query::new(sql.to_owned()).encode(buf)?;
    Ok(())
}

pub fn parse(buf: &mut BytesMut, statement: &str, sql: &str) -> Result<(), EncodeError> {
    Parse::new(named(statement), sql.to_owned(), Vec::new()).encode(buf)?;
    Ok(())
}

/// A Bind of text parameters (`None` for NULL) with text results.
pub fn bind(
    buf: &mut BytesMut,
    portal: &str,
    statement: &str,
    parameters: &[Option<&str>],
) -> Result<(), EncodeError> {
    let values = parameters
        .iter()
        .map(|p| p.map(|v| bytes::Bytes::copy_from_slice(v.as_bytes())))
        .collect();
    Bind::new(
        named(portal),
        named(statement),
        Vec::new(),
        values,
        Vec::new(),
    )
    .encode(buf)?;
    Ok(())
}

pub fn execute(buf: &mut BytesMut, portal: &str) -> Result<(), EncodeError> {
    Execute::new(named(portal), 0).encode(buf)?;
    Ok(())
}

pub fn close_statement(buf: &mut BytesMut, statement: &str) -> Result<(), EncodeError> {
    Close::new(b'S', named(statement)).encode(buf)?;
    Ok(())
}

pub fn close_portal(buf: &mut BytesMut, portal: &str) -> Result<(), EncodeError> {
    Close::new(b'P', named(portal)).encode(buf)?;
    Ok(())
}

/// `data` as CopyData messages of at most [`COPY_DATA_CHUNK`] bytes each.
pub fn copy_data(buf: &mut BytesMut, data: &[u8]) -> Result<(), EncodeError> {
    for chunk in data.chunks(COPY_DATA_CHUNK) {
        CopyData::new(bytes::Bytes::copy_from_slice(chunk)).encode(buf)?;
    }
    Ok(())
}

/// The size of each CopyData message [`copy_data`] writes: rows may straddle two, as the
/// protocol allows.
pub const COPY_DATA_CHUNK: usize = 64 * 1024;

pub fn copy_done(buf: &mut BytesMut) -> Result<(), EncodeError> {
    CopyDone::new().encode(buf)?;
    Ok(())
}

pub fn sync(buf: &mut BytesMut) -> Result<(), EncodeError> {
    Sync::new().encode(buf)?;
    Ok(())
}

fn named(name: &str) -> Option<String> {
    (!name.is_empty()).then(|| name.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::frame::{body, peek_frame};
    use crate::net::messages::backend::{BackendKey, Fields};
    use crate::net::messages::frontend;

    #[test]
    fn round_trips_through_our_own_decoders() {
        let mut buf = BytesMut::new();
        backend_key_data(&mut buf, 42, &[1, 2, 3, 4]).unwrap();
        let (tag, len) = peek_frame(&mut buf).unwrap().unwrap();
        assert_eq!(tag, b'K');
        let key = BackendKey::decode(body(&buf[..len])).unwrap();
        assert_eq!((key.pid, key.secret), (42, vec![1, 2, 3, 4]));

        let mut buf = BytesMut::new();
        error_response(
            &mut buf,
            vec![(b'S', "ERROR".into()), (b'C', "23505".into())],
        )
        .unwrap();
        let (_, len) = peek_frame(&mut buf).unwrap().unwrap();
        assert_eq!(
            Fields::decode(body(&buf[..len]), "ErrorResponse")
                .unwrap()
                .code(),
            "23505"
        );

        let mut buf = BytesMut::new();
        parse(&mut buf, "sfpg", "SELECT $1").unwrap();
        let (_, len) = peek_frame(&mut buf).unwrap().unwrap();
        let parsed = frontend::Parse::decode(body(&buf[..len])).unwrap();
        assert_eq!(
            (parsed.statement, parsed.sql),
            (&b"sfpg"[..], &b"SELECT $1"[..])
        );
    }
}
