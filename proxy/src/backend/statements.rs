//! The proxy's own statements on a client's upstream connection: what the commit protocol
//! ([`crate::push::commit`]) runs there through the [`Upstream`] trait (the transaction's
//! id, taking its captured changes, writing back what Salesforce set, COMMIT, ROLLBACK),
//! and what the session needs besides (closing statements a refusal hid from the client,
//! the columns of `RETURNING sfid`). [`Statements`] runs them on the relay's connection.
//!
//! Every statement names only `sfpg` functions, qualified catalog objects and the staging
//! table an `sfpg` function has just made and named (a write-back by `COPY`), so nothing a
//! client created can stand in for them (docs/architecture.md, "The trust boundary").
//!
//! They use a named statement and a named portal, each closed before and after: a client
//! may keep using its unnamed prepared statement across transactions (which a simple Query
//! would discard), and a COMMIT waiting for the push may already have its unnamed portal
//! bound. Closing first as well makes a statement left over by an earlier failure
//! harmless.

use std::collections::HashMap;
use std::future::Future;

use bytes::{Buf, BufMut, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::UpstreamStream;
use crate::error::SessionError;
use crate::net::frame::{body, peek_frame};
use crate::net::messages::backend::{self as be, Fields, ServerError};
use crate::net::messages::encode;
use crate::net::messages::frontend as fe;
use crate::net::stream::ClientStream;
use crate::push::{RowsForm, WriteBack};
use crate::settings::{
    CAPTURE_INSTALLED_SQL, EVENT_WRITE_BACK_SQL, FIRST_PENDING_SQL, PUSH_CONTEXT_SQL,
    RESTORE_REFUSED_SQL, TAKE_PENDING_PAGE_SQL, WRITE_BACK_SQL, WRITE_BACK_STAGED_SQL,
    WRITE_BACK_STAGING_SQL, text_array,
};

/// The name of the proxy's statement and of its portal.
const STATEMENT: &str = "__sfpg_internal";

/// Why one of the proxy's statements did not do its work.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    /// The server refused the statement (its ErrorResponse); the connection goes on.
    #[error("the server refused the proxy's statement: {0}")]
    Refused(#[from] ServerError),
    /// The connection failed: the session cannot go on.
    #[error(transparent)]
    Session(#[from] SessionError),
}

/// Column numbers of a mirrored table's `id` and `sfid`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Attnums {
    pub id: i16,
    pub sfid: i16,
}

/// The proxy's own statements on the client's upstream connection, each run while the
/// server owes the client nothing. Every one ends with the server's ReadyForQuery.
pub trait Upstream {
    /// Whether this database has the capture functions (migration V3). A check the server
    /// refuses finds nothing.
    fn capture_installed(&mut self) -> impl Future<Output = Result<bool, SessionError>> + Send;

    /// The current transaction's id (none for a transaction that wrote nothing), its
    /// `sfpg.bulk_writes` and its role, in one round trip.
    fn push_context(&mut self) -> impl Future<Output = Result<PushContext, UpstreamError>> + Send;

    /// Where the transaction's first captured change is (`{"schema": …, "table": …}`), if
    /// it captured any: what a proxy without a control database refuses by.
    fn first_pending_change(
        &mut self,
    ) -> impl Future<Output = Result<Option<String>, UpstreamError>> + Send;

    /// Takes the captured changes of the transaction's next `rows` changed rows after
    /// `after` (the last row of the page before: table OID and local id), every change of
    /// each, a JSON array, with its push ticket; fewer rows than asked for: the last page.
    fn take_pending_changes(
        &mut self,
        ticket: &str,
        rows: u32,
        after: Option<(u32, i64)>,
    ) -> impl Future<Output = Result<Option<String>, UpstreamError>> + Send;

    /// `SET CONSTRAINTS ALL IMMEDIATE`: deferred constraints are checked now.
    fn set_constraints_immediate(
        &mut self,
    ) -> impl Future<Output = Result<(), UpstreamError>> + Send;

    /// What Salesforce set, into one table's rows, uncaptured: `sfpg.write_back` (or the
    /// events' own) for JSON rows; for `COPY` rows, a staging table, the `COPY` into it,
    /// and `sfpg.write_back_staged`.
    fn write_back(
        &mut self,
        ticket: &str,
        write_back: &WriteBack,
    ) -> impl Future<Output = Result<(), UpstreamError>> + Send;

    /// `sfpg.restore_refused`: one table's refused rows back as they were before the
    /// transaction, uncaptured (a bulk push).
    fn restore_refused(
        &mut self,
        ticket: &str,
        restore: &WriteBack,
    ) -> impl Future<Output = Result<(), UpstreamError>> + Send;

    /// Sends the client a NoticeResponse of `fields` at once (a bulk push's progress),
    /// while the server runs nothing of the client's.
    fn notice(
        &mut self,
        fields: Vec<(u8, String)>,
    ) -> impl Future<Output = Result<(), SessionError>> + Send;

    fn commit(&mut self) -> impl Future<Output = Result<(), UpstreamError>> + Send;

    fn rollback(&mut self) -> impl Future<Output = Result<(), UpstreamError>> + Send;

    /// The column numbers of `id` and `sfid` in each of `tables` (by OID) that has both.
    /// A lookup the server refuses finds nothing.
    fn attnums(
        &mut self,
        tables: &[u32],
    ) -> impl Future<Output = Result<HashMap<u32, Attnums>, SessionError>> + Send;

    /// Closes the client's prepared statements `names` on the server.
    fn close_statements(
        &mut self,
        names: &[Box<[u8]>],
    ) -> impl Future<Output = Result<(), SessionError>> + Send;
}

/// What a push reads first on the client's connection ([`PUSH_CONTEXT_SQL`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PushContext {
    /// The transaction's id; none: it wrote nothing.
    pub txid: Option<String>,
    /// `sfpg.bulk_writes` as the server holds it for this transaction (`SET`, `SET LOCAL`,
    /// `ALTER ROLE … SET`, the connection's options); none: never set.
    pub bulk_writes: Option<String>,
    /// The role the transaction runs as (`current_user`).
    pub role: String,
    /// A `WITH HOLD` cursor declared in this transaction, computed only at COMMIT.
    pub held_cursor: Option<String>,
}

/// From what size an answer's frame (or a statement sent) leaves the connection's input
/// (or output) buffer to be dropped.
const LARGE_FRAME: usize = 1 << 20;

/// What one of the proxy's statements returned.
#[derive(Debug, Default)]
struct Outcome {
    /// Rows, each value as text (NULL as `None`).
    rows: Vec<Vec<Option<String>>>,
    error: Option<Fields>,
}

impl Outcome {
    /// The first column of the first row.
    fn scalar(&self) -> Option<&str> {
        self.rows.first()?.first()?.as_deref()
    }

    /// The first column of the first row, taken rather than copied: the captured changes
    /// of a large transaction are hundreds of megabytes of text.
    fn into_scalar(self) -> Option<String> {
        self.rows.into_iter().next()?.into_iter().next()?
    }

    fn into_result(self) -> Result<Self, UpstreamError> {
        match self.error {
            Some(error) => Err(ServerError(error).into()),
            None => Ok(self),
        }
    }
}

/// The relay's upstream connection, lent for the proxy's own statements: its stream, the
/// bytes read from it and to write to it, and the client's output, which takes the
/// asynchronous messages (notifications, parameter changes) that arrive meanwhile.
pub struct Statements<'a> {
    stream: &'a mut UpstreamStream,
    input: &'a mut BytesMut,
    output: &'a mut BytesMut,
    to_client: &'a mut BytesMut,
    /// The client's socket, for notices sent while a push runs; none: they wait in
    /// `to_client`.
    client: Option<&'a mut ClientStream>,
}

impl<'a> Statements<'a> {
    pub fn new(
        stream: &'a mut UpstreamStream,
        input: &'a mut BytesMut,
        output: &'a mut BytesMut,
        to_client: &'a mut BytesMut,
    ) -> Self {
        Statements {
            stream,
            input,
            output,
            to_client,
            client: None,
        }
    }

    /// Notices go to `client` as they are made, with whatever `to_client` holds before
    /// them.
    pub fn with_client(mut self, client: &'a mut ClientStream) -> Self {
        self.client = Some(client);
        self
    }

    /// Runs `sql` with text `params` and waits for its ReadyForQuery. Only call when the
    /// server owes the client nothing, so that every reply is this statement's.
    async fn run(&mut self, sql: &str, params: &[Option<&str>]) -> Result<Outcome, SessionError> {
        self.open(sql, params)?;
        self.close()?;
        self.answer(sql).await
    }

    /// Runs `sql`, a `COPY … FROM STDIN`, with `data` as its rows, and waits for its
    /// ReadyForQuery. Everything goes in one flight: should the server refuse the `COPY`
    /// before it reads the data, it passes over the CopyData and CopyDone that follow until
    /// the Sync, as the protocol has it.
    async fn copy_in(&mut self, sql: &str, data: &[u8]) -> Result<Outcome, SessionError> {
        self.open(sql, &[])?;
        encode::copy_data(self.output, data)?;
        encode::copy_done(self.output)?;
        self.close()?;
        self.answer(sql).await
    }

    /// The proxy's statement and portal, closed first, then parsed, bound and executed.
    fn open(&mut self, sql: &str, params: &[Option<&str>]) -> Result<(), SessionError> {
        encode::close_statement(self.output, STATEMENT)?;
        encode::close_portal(self.output, STATEMENT)?;
        encode::parse(self.output, STATEMENT, sql)?;
        encode::bind(self.output, STATEMENT, STATEMENT, params)?;
        encode::execute(self.output, STATEMENT)?;
        Ok(())
    }

    /// The proxy's portal and statement closed, and the Sync.
    fn close(&mut self) -> Result<(), SessionError> {
        encode::close_portal(self.output, STATEMENT)?;
        encode::close_statement(self.output, STATEMENT)?;
        encode::sync(self.output)?;
        Ok(())
    }

    /// Sends what [`Self::open`] and [`Self::close`] wrote and reads the answer up to its
    /// ReadyForQuery.
    async fn answer(&mut self, sql: &str) -> Result<Outcome, SessionError> {
        flush(self.stream, self.output).await?;
        // The room made for a large statement (a write-back of 5,000 rows, 15 MB) would stay
        // with the connection for the session's life: it goes once sent.
        if self.output.capacity() > LARGE_FRAME && self.output.is_empty() {
            *self.output = BytesMut::with_capacity(8192);
        }
        let mut outcome = Outcome::default();
        let mut largest = 0;
        loop {
            let (tag, frame) = read_frame(self.stream, self.input).await?;
            largest = largest.max(frame.len());
            match tag {
                be::DATA_ROW if frame.len() > LARGE_FRAME => {
                    outcome.rows.push(self.large_row(frame)?);
                }
                be::DATA_ROW => {
                    let values = be::decode_data_row(body(&frame))?;
                    outcome.rows.push(
                        values
                            .into_iter()
                            .map(|v| v.map(|v| String::from_utf8_lossy(v).into_owned()))
                            .collect(),
                    );
                }
                be::ERROR_RESPONSE => {
                    let fields = Fields::decode(body(&frame), "ErrorResponse")?;
                    tracing::debug!(sql, error = fields.message(), "proxy statement failed");
                    // No ReadyForQuery follows a FATAL: the connection is gone, and the
                    // server's words say why.
                    if fields.is_fatal() {
                        return Err(SessionError::ServerEnded(ServerError(fields)));
                    }
                    outcome.error = Some(fields);
                }
                be::READY_FOR_QUERY => {
                    // The room made for a large answer (a transaction's captured changes)
                    // would stay with the connection: it goes, if nothing else is in it.
                    if largest > LARGE_FRAME && self.input.is_empty() {
                        *self.input = BytesMut::with_capacity(8192);
                    }
                    return Ok(outcome);
                }
                // Asynchronous messages are the client's, whoever's statement is running.
                be::NOTIFICATION_RESPONSE | be::PARAMETER_STATUS => {
                    self.to_client.extend_from_slice(&frame);
                }
                _ => {}
            }
        }
    }

    /// The values of a large DataRow (a transaction's captured changes). A row of one
    /// value is moved out of its frame rather than copied: the input buffer first copies
    /// off the few bytes after the frame, so that the frame holds its allocation alone.
    fn large_row(&mut self, mut frame: BytesMut) -> Result<Vec<Option<String>>, SessionError> {
        let values = be::decode_data_row(body(&frame))?;
        let (start, len) = match values.as_slice() {
            [Some(value)] => (
                value.as_ptr() as usize - frame.as_ptr() as usize,
                value.len(),
            ),
            _ => {
                return Ok(values
                    .into_iter()
                    .map(|v| v.map(|v| String::from_utf8_lossy(v).into_owned()))
                    .collect());
            }
        };
        drop(values);
        *self.input = BytesMut::from(&self.input[..]);
        frame.advance(start);
        frame.truncate(len);
        let text = String::from_utf8(Vec::from(frame))
            .unwrap_or_else(|error| String::from_utf8_lossy(error.as_bytes()).into_owned());
        Ok(vec![Some(text)])
    }

    /// [`Self::run`], with the server's refusal as an error.
    async fn run_ok(
        &mut self,
        sql: &str,
        params: &[Option<&str>],
    ) -> Result<Outcome, UpstreamError> {
        self.run(sql, params).await?.into_result()
    }

    /// A write-back of `COPY` rows (V25): the staging table made, the rows copied into it
    /// as the client's role, then written into the mirrored table and the table dropped.
    async fn write_back_staged(
        &mut self,
        ticket: &str,
        write_back: &WriteBack,
        columns: &[String],
    ) -> Result<(), UpstreamError> {
        let (schema, table) = (write_back.schema.as_str(), write_back.table.as_str());
        let columns = text_array(columns);
        let staging = self
            .run_ok(
                WRITE_BACK_STAGING_SQL,
                &[Some(ticket), Some(schema), Some(table), Some(&columns)],
            )
            .await?
            .into_scalar()
            .unwrap_or_default();
        // The name comes from sfpg's function (`pg_temp.` and a quoted random name).
        self.copy_in(
            &format!("COPY {staging} FROM STDIN"),
            write_back.rows.as_bytes(),
        )
        .await?
        .into_result()?;
        self.run_ok(
            WRITE_BACK_STAGED_SQL,
            &[Some(ticket), Some(schema), Some(table), Some(&staging)],
        )
        .await?;
        Ok(())
    }
}

impl Upstream for Statements<'_> {
    async fn capture_installed(&mut self) -> Result<bool, SessionError> {
        let found = self.run(CAPTURE_INSTALLED_SQL, &[]).await?;
        Ok(found.scalar() == Some("t"))
    }

    async fn push_context(&mut self) -> Result<PushContext, UpstreamError> {
        let found = self.run_ok(PUSH_CONTEXT_SQL, &[]).await?;
        let column = |i: usize| {
            found
                .rows
                .first()
                .and_then(|row| row.get(i).cloned().flatten())
        };
        Ok(PushContext {
            txid: column(0),
            bulk_writes: column(1),
            role: column(2).unwrap_or_default(),
            held_cursor: column(3),
        })
    }

    async fn first_pending_change(&mut self) -> Result<Option<String>, UpstreamError> {
        let first = self.run_ok(FIRST_PENDING_SQL, &[]).await?;
        Ok(first.scalar().map(str::to_owned))
    }

    async fn take_pending_changes(
        &mut self,
        ticket: &str,
        rows: u32,
        after: Option<(u32, i64)>,
    ) -> Result<Option<String>, UpstreamError> {
        let rows = rows.to_string();
        let after_table = after.map(|(table, _)| table.to_string());
        let after_row = after.map(|(_, row)| row.to_string());
        let params = [
            Some(ticket),
            Some(rows.as_str()),
            after_table.as_deref(),
            after_row.as_deref(),
        ];
        let taken = self.run_ok(TAKE_PENDING_PAGE_SQL, &params).await?;
        Ok(taken.into_scalar())
    }

    async fn set_constraints_immediate(&mut self) -> Result<(), UpstreamError> {
        self.run_ok("SET CONSTRAINTS ALL IMMEDIATE", &[]).await?;
        Ok(())
    }

    async fn write_back(
        &mut self,
        ticket: &str,
        write_back: &WriteBack,
    ) -> Result<(), UpstreamError> {
        let params = [
            Some(ticket),
            Some(write_back.schema.as_str()),
            Some(write_back.table.as_str()),
            Some(write_back.rows.as_str()),
        ];
        let sql = match &write_back.form {
            // A platform event's row gets its Id and EventUuid, or takes over the delivered
            // row of the same event (V15); a record's, what was read back (V8, V11).
            RowsForm::Events => EVENT_WRITE_BACK_SQL,
            RowsForm::Json => WRITE_BACK_SQL,
            RowsForm::Copy { columns } => {
                return self.write_back_staged(ticket, write_back, columns).await;
            }
        };
        self.run_ok(sql, &params).await?;
        Ok(())
    }

    async fn restore_refused(
        &mut self,
        ticket: &str,
        restore: &WriteBack,
    ) -> Result<(), UpstreamError> {
        let params = [
            Some(ticket),
            Some(restore.schema.as_str()),
            Some(restore.table.as_str()),
            Some(restore.rows.as_str()),
        ];
        self.run_ok(RESTORE_REFUSED_SQL, &params).await?;
        Ok(())
    }

    async fn notice(&mut self, fields: Vec<(u8, String)>) -> Result<(), SessionError> {
        encode::notice_response(self.to_client, fields)?;
        if let Some(client) = self.client.as_deref_mut() {
            client.write_all_buf(self.to_client).await?;
        }
        Ok(())
    }

    async fn commit(&mut self) -> Result<(), UpstreamError> {
        self.run_ok("COMMIT", &[]).await?;
        Ok(())
    }

    async fn rollback(&mut self) -> Result<(), UpstreamError> {
        self.run_ok("ROLLBACK", &[]).await?;
        Ok(())
    }

    async fn attnums(&mut self, tables: &[u32]) -> Result<HashMap<u32, Attnums>, SessionError> {
        let list = tables
            .iter()
            .map(u32::to_string)
            .collect::<Vec<_>>()
            .join(",");
        let found = self
            .run(
                "SELECT attrelid::pg_catalog.oid::pg_catalog.int8, \
                        pg_catalog.max(attnum) FILTER (WHERE attname OPERATOR(pg_catalog.=) 'id'), \
                        pg_catalog.max(attnum) FILTER (WHERE attname OPERATOR(pg_catalog.=) 'sfid') \
                   FROM pg_catalog.pg_attribute \
                  WHERE attrelid OPERATOR(pg_catalog.=) ANY($1::pg_catalog.oid[]) \
                    AND attname OPERATOR(pg_catalog.=) ANY('{id,sfid}'::pg_catalog.name[]) \
                  GROUP BY attrelid",
                &[Some(&format!("{{{list}}}"))],
            )
            .await?;
        Ok(found
            .rows
            .iter()
            .filter_map(|row| {
                let number = |i: usize| row.get(i)?.as_deref()?.parse::<i64>().ok();
                Some((
                    u32::try_from(number(0)?).ok()?,
                    Attnums {
                        id: i16::try_from(number(1)?).ok()?,
                        sfid: i16::try_from(number(2)?).ok()?,
                    },
                ))
            })
            .collect())
    }

    async fn close_statements(&mut self, names: &[Box<[u8]>]) -> Result<(), SessionError> {
        for name in names {
            close_statement(self.output, name);
        }
        encode::sync(self.output)?;
        flush(self.stream, self.output).await?;
        loop {
            let (tag, frame) = read_frame(self.stream, self.input).await?;
            match tag {
                be::READY_FOR_QUERY => return Ok(()),
                // Asynchronous messages are the client's, whoever's statement is running.
                be::NOTIFICATION_RESPONSE | be::PARAMETER_STATUS => {
                    self.to_client.extend_from_slice(&frame);
                }
                _ => {}
            }
        }
    }
}

/// The next whole frame from the server, reading as needed.
pub async fn read_frame(
    stream: &mut UpstreamStream,
    input: &mut BytesMut,
) -> Result<(u8, BytesMut), SessionError> {
    loop {
        if let Some((tag, len)) = peek_frame(input)? {
            return Ok((tag, input.split_to(len)));
        }
        if stream.read_buf(input).await? == 0 {
            return Err(SessionError::ServerClosed);
        }
    }
}

/// Writes all of `output` to the server.
pub async fn flush(stream: &mut UpstreamStream, output: &mut BytesMut) -> Result<(), SessionError> {
    stream.write_all_buf(output).await?;
    Ok(())
}

/// A Close of prepared statement `name`, whose bytes (a client's name, not necessarily
/// UTF-8) go as they came.
fn close_statement(buf: &mut BytesMut, name: &[u8]) {
    buf.put_u8(fe::CLOSE);
    // Length, kind, name and its terminating NUL; a client's name came in a frame whose
    // length fit, so this does too.
    buf.put_u32(u32::try_from(4 + 1 + name.len() + 1).unwrap_or(u32::MAX));
    buf.put_u8(b'S');
    buf.put_slice(name);
    buf.put_u8(0);
}

#[cfg(test)]
mod tests {
    use tokio::net::UnixStream;

    use super::*;

    /// A server that reads one statement (up to its Sync) for each of `replies`, answers it
    /// with the reply, and gives back the bytes of each statement.
    fn server(mut end: UnixStream, replies: Vec<Vec<u8>>) -> tokio::task::JoinHandle<Vec<Vec<u8>>> {
        const SYNC: [u8; 5] = [fe::SYNC, 0, 0, 0, 4];
        tokio::spawn(async move {
            let mut statements = Vec::new();
            for reply in replies {
                let mut received = Vec::new();
                let mut chunk = vec![0; 64 * 1024];
                while !received.ends_with(&SYNC) {
                    let n = end.read(&mut chunk).await.unwrap();
                    assert!(n > 0, "the proxy closed before its Sync");
                    received.extend_from_slice(&chunk[..n]);
                }
                end.write_all(&reply).await.unwrap();
                statements.push(received);
            }
            statements
        })
    }

    /// A fresh connection: the proxy's end and the server's.
    fn connection() -> (UpstreamStream, UnixStream) {
        let (proxy_end, server_end) = UnixStream::pair().unwrap();
        (UpstreamStream::Unix(proxy_end), server_end)
    }

    fn ready_for_query() -> Vec<u8> {
        vec![be::READY_FOR_QUERY, 0, 0, 0, 5, b'I']
    }

    /// A DataRow of one text value.
    fn data_row(value: &str) -> Vec<u8> {
        let mut row = vec![be::DATA_ROW];
        let len = 4 + 2 + 4 + value.len();
        row.extend_from_slice(&u32::try_from(len).unwrap().to_be_bytes());
        row.extend_from_slice(&1u16.to_be_bytes());
        row.extend_from_slice(&u32::try_from(value.len()).unwrap().to_be_bytes());
        row.extend_from_slice(value.as_bytes());
        row
    }

    /// The frontend messages of a statement, as (tag, body).
    fn messages(bytes: &[u8]) -> Vec<(u8, Vec<u8>)> {
        let mut bytes = BytesMut::from(bytes);
        let mut messages = Vec::new();
        while let Some((tag, len)) = peek_frame(&mut bytes).unwrap() {
            messages.push((tag, body(&bytes.split_to(len)).to_vec()));
        }
        messages
    }

    /// A write-back of `COPY` rows is three statements: the staging table made by sfpg's
    /// function, whose answer names it; the `COPY` into that table with the rows in
    /// CopyData messages and a CopyDone before the Sync, in one flight; and the staged
    /// write-back, given the same name.
    #[tokio::test]
    async fn copy_rows_are_staged_copied_and_written_back() {
        let (mut stream, server_end) = connection();
        let staging = "pg_temp.sfpg_write_back_0f";
        let rows = "1\t003000000000001AAA\tx\n".repeat(10_000);
        let expected = rows.clone();
        let replies = vec![
            [data_row(staging), ready_for_query()].concat(),
            ready_for_query(),
            ready_for_query(),
        ];
        let server = server(server_end, replies);
        let (mut input, mut output, mut to_client) =
            (BytesMut::new(), BytesMut::new(), BytesMut::new());
        let write_back = WriteBack {
            schema: "salesforce".into(),
            table: "contact".into(),
            rows,
            form: RowsForm::Copy {
                columns: vec!["id".into(), "sfid".into(), "title".into()],
            },
        };
        Statements::new(&mut stream, &mut input, &mut output, &mut to_client)
            .write_back("ticket", &write_back)
            .await
            .unwrap();
        let statements: Vec<_> = server.await.unwrap().iter().map(|s| messages(s)).collect();
        let text = |body: &[u8]| String::from_utf8_lossy(body).into_owned();
        let parsed = |messages: &[(u8, Vec<u8>)]| {
            messages
                .iter()
                .find(|(tag, _)| *tag == fe::PARSE)
                .map(|(_, body)| text(body))
                .unwrap()
        };
        assert!(parsed(&statements[0]).contains("sfpg.write_back_staging("));
        let bound = text(
            &statements[0]
                .iter()
                .find(|(t, _)| *t == fe::BIND)
                .unwrap()
                .1,
        );
        assert!(bound.contains(r#"{"id","sfid","title"}"#), "{bound}");
        assert!(parsed(&statements[1]).contains(&format!("COPY {staging} FROM STDIN")));
        let tags: Vec<u8> = statements[1].iter().map(|(tag, _)| *tag).collect();
        let first_data = tags.iter().position(|&t| t == fe::COPY_DATA).unwrap();
        let done = tags.iter().position(|&t| t == fe::COPY_DONE).unwrap();
        assert!(tags[..first_data].contains(&fe::EXECUTE), "{tags:?}");
        assert!(
            done < tags.len() - 1 && tags.last() == Some(&fe::SYNC),
            "{tags:?}"
        );
        let copied: Vec<u8> = statements[1]
            .iter()
            .filter(|(tag, _)| *tag == fe::COPY_DATA)
            .flat_map(|(_, body)| body.clone())
            .collect();
        assert_eq!(copied, expected.as_bytes());
        assert!(parsed(&statements[2]).contains("sfpg.write_back_staged("));
        let bound = text(
            &statements[2]
                .iter()
                .find(|(t, _)| *t == fe::BIND)
                .unwrap()
                .1,
        );
        assert!(bound.contains(staging), "{bound}");
    }

    /// A write-back of 15 MB left its room in the connection's output buffer for the
    /// session's life; a page of captured changes, or any large answer, its room in the input
    /// buffer. Each goes once the statement is done.
    #[tokio::test]
    async fn the_room_of_a_large_statement_and_of_a_large_answer_is_not_kept() {
        let (mut stream, server_end) = connection();
        let (mut input, mut output, mut to_client) =
            (BytesMut::new(), BytesMut::new(), BytesMut::new());

        let rows = format!("[{}]", "{\"id\": 1},".repeat(300_000).trim_end_matches(','));
        let answered = server(server_end, vec![ready_for_query()]);
        let write_back = WriteBack {
            schema: "salesforce".into(),
            table: "contact".into(),
            rows,
            form: RowsForm::Json,
        };
        Statements::new(&mut stream, &mut input, &mut output, &mut to_client)
            .write_back("ticket", &write_back)
            .await
            .unwrap();
        assert!(answered.await.unwrap()[0].len() > write_back.rows.len());
        assert!(output.capacity() <= 8192, "{}", output.capacity());

        let (mut stream, server_end) = connection();
        let page = "x".repeat(2 << 20);
        let mut reply = data_row(&page);
        reply.extend(ready_for_query());
        let answered = server(server_end, vec![reply]);
        let taken = Statements::new(&mut stream, &mut input, &mut output, &mut to_client)
            .take_pending_changes("ticket", 1_000, None)
            .await
            .unwrap();
        answered.await.unwrap();
        assert_eq!(taken.as_deref(), Some(page.as_str()));
        assert!(input.capacity() <= 8192, "{}", input.capacity());

        // Any other large frame (here a NoticeResponse, which the proxy's statements pass
        // over) leaves its room in the input buffer until the ReadyForQuery.
        let (mut stream, server_end) = connection();
        let mut reply = vec![b'N'];
        reply.extend_from_slice(&u32::try_from(4 + page.len() + 1).unwrap().to_be_bytes());
        reply.extend_from_slice(page.as_bytes());
        reply.push(0);
        reply.extend(ready_for_query());
        let answered = server(server_end, vec![reply]);
        Statements::new(&mut stream, &mut input, &mut output, &mut to_client)
            .set_constraints_immediate()
            .await
            .unwrap();
        answered.await.unwrap();
        assert!(input.capacity() <= 8192, "{}", input.capacity());
        assert!(to_client.is_empty());
    }
}
