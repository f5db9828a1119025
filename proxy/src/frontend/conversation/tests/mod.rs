//! The transaction rules, driven without sockets, PostgreSQL or Salesforce: the client's
//! frames and the server's answers are scripted, the proxy's own statements go to a
//! scripted upstream, and pushes to a scripted org ([`fakes`]). The [`Harness`] turns the
//! conversation as the relay does, and shows what it sent each side as one line per
//! message.

mod autocommit;
mod bulk;
mod cancel;
mod copy;
mod explicit;
mod extended;
mod fakes;
mod refusals;

use bytes::BytesMut;
use tracing::Span;

use self::fakes::{FakeRemote, FakeUpstream};
use super::{Action, Conversation, Out};
use crate::net::frame::{Frame, body, frame_at};
use crate::net::messages::backend::{self as be, Fields, TransactionStatus};
use crate::net::messages::encode;
use crate::net::messages::frontend as fe;

/// A conversation between a scripted client and a scripted server.
pub struct Harness {
    pub conversation: Conversation,
    client_in: BytesMut,
    server_in: BytesMut,
    to_server: BytesMut,
    to_client: BytesMut,
    /// The client's messages last returned by [`Harness::received`].
    received: Vec<Vec<u8>>,
    pub upstream: FakeUpstream,
    pub remote: Option<FakeRemote>,
}

impl Harness {
    /// A session whose server is idle, without a control database.
    pub fn new(upstream: FakeUpstream) -> Self {
        let mut conversation = Conversation::new("127.0.0.1:50000".parse().unwrap(), Span::none());
        conversation.started(TransactionStatus::Idle);
        Harness {
            conversation,
            client_in: BytesMut::new(),
            server_in: BytesMut::new(),
            to_server: BytesMut::new(),
            to_client: BytesMut::new(),
            received: Vec::new(),
            upstream,
            remote: None,
        }
    }

    /// A session that pushes to `remote`.
    pub fn pushing(upstream: FakeUpstream, remote: FakeRemote) -> Self {
        Harness {
            remote: Some(remote),
            ..Harness::new(upstream)
        }
    }

    pub fn remote(&self) -> &FakeRemote {
        self.remote.as_ref().unwrap()
    }

    /// The client sends `frames`.
    pub async fn client(&mut self, frames: &[Vec<u8>]) {
        for frame in frames {
            self.client_in.extend_from_slice(frame);
        }
        self.turn().await;
    }

    /// The server sends `frames`.
    pub async fn server(&mut self, frames: &[Vec<u8>]) {
        for frame in frames {
            self.server_in.extend_from_slice(frame);
        }
        self.turn().await;
    }

    /// One turn of the relay's loop, until nothing is left to do without new input.
    async fn turn(&mut self) {
        loop {
            let mut out = Out {
                server: &mut self.to_server,
                client: &mut self.to_client,
            };
            if let Some(action) = self
                .conversation
                .on_server_input(&mut self.server_in, &mut out)
                .unwrap()
            {
                self.perform(action).await;
                continue;
            }
            let mut out = Out {
                server: &mut self.to_server,
                client: &mut self.to_client,
            };
            if let Some(action) = self
                .conversation
                .on_client_input(&mut self.client_in, &mut out)
                .unwrap()
            {
                self.perform(action).await;
                continue;
            }
            return;
        }
    }

    async fn perform(&mut self, action: Action) {
        let answer = self
            .conversation
            .perform(action, &mut self.upstream, self.remote.as_ref())
            .await
            .unwrap();
        let mut out = Out {
            server: &mut self.to_server,
            client: &mut self.to_client,
        };
        self.conversation.answer(answer, &mut out).unwrap();
    }

    /// What went to the server since last asked, one line per message.
    pub fn sent(&mut self) -> Vec<String> {
        frames(&mut self.to_server)
            .iter()
            .map(|f| client_message(f))
            .collect()
    }

    /// What went to the client since last asked, one line per message.
    pub fn received(&mut self) -> Vec<String> {
        self.received = frames(&mut self.to_client);
        self.received.iter().map(|f| server_message(f)).collect()
    }

    /// The proxy's own statements on the upstream connection since last asked.
    pub fn statements(&mut self) -> Vec<String> {
        std::mem::take(&mut self.upstream.calls)
    }

    /// The ErrorResponse among the messages [`Harness::received`] returned last.
    pub fn error(&self) -> Fields {
        let frame = self
            .received
            .iter()
            .find(|f| f[0] == be::ERROR_RESPONSE)
            .expect("an ErrorResponse");
        Fields::decode(body(frame), "ErrorResponse").unwrap()
    }
}

/// Takes the whole frames out of `buf`.
fn frames(buf: &mut BytesMut) -> Vec<Vec<u8>> {
    let mut frames = Vec::new();
    while let Ok(Frame::Complete { len, .. }) = frame_at(buf) {
        frames.push(buf.split_to(len).to_vec());
    }
    assert!(buf.is_empty(), "a partial frame was sent");
    frames
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A client message as one line: its type, with the names and SQL that tell it apart.
fn client_message(frame: &[u8]) -> String {
    let body = body(frame);
    match frame[0] {
        fe::QUERY => format!("Query {}", text(fe::Query::decode(body).unwrap().sql)),
        fe::PARSE => {
            let parse = fe::Parse::decode(body).unwrap();
            format!("Parse {:?} {}", text(parse.statement), text(parse.sql))
        }
        fe::BIND => format!("Bind {:?}", text(fe::Bind::decode(body).unwrap().portal)),
        fe::EXECUTE => format!(
            "Execute {:?}",
            text(fe::Execute::decode(body).unwrap().portal)
        ),
        fe::CLOSE => match fe::Target::decode(body, "Close").unwrap() {
            fe::Target::Statement(name) => format!("Close statement {:?}", text(name)),
            fe::Target::Portal(name) => format!("Close portal {:?}", text(name)),
        },
        fe::SYNC => "Sync".into(),
        fe::FLUSH => "Flush".into(),
        fe::COPY_DATA => format!("CopyData {}", text(body)),
        fe::COPY_DONE => "CopyDone".into(),
        other => format!("message {:?}", char::from(other)),
    }
}

/// A server message as one line.
fn server_message(frame: &[u8]) -> String {
    let body = body(frame);
    match frame[0] {
        be::PARSE_COMPLETE => "ParseComplete".into(),
        be::BIND_COMPLETE => "BindComplete".into(),
        be::CLOSE_COMPLETE => "CloseComplete".into(),
        be::COMMAND_COMPLETE => {
            format!(
                "CommandComplete {}",
                text(be::decode_command_tag(body).unwrap())
            )
        }
        be::READY_FOR_QUERY => format!("ReadyForQuery {}", char::from(body[0])),
        be::ERROR_RESPONSE => {
            format!(
                "Error {}",
                Fields::decode(body, "ErrorResponse").unwrap().code()
            )
        }
        be::NOTICE_RESPONSE => {
            format!(
                "Notice {}",
                Fields::decode(body, "NoticeResponse").unwrap().code()
            )
        }
        be::ROW_DESCRIPTION => "RowDescription".into(),
        be::DATA_ROW => {
            let values = be::decode_data_row(body).unwrap();
            let values: Vec<_> = values
                .iter()
                .map(|v| v.map_or("NULL".into(), text))
                .collect();
            format!("DataRow {}", values.join("|"))
        }
        be::COPY_IN_RESPONSE => "CopyInResponse".into(),
        other => format!("message {:?}", char::from(other)),
    }
}

/// A message with `tag` and `body`.
pub fn frame(tag: u8, body: &[u8]) -> Vec<u8> {
    let mut frame = vec![tag];
    frame.extend_from_slice(&u32::try_from(body.len() + 4).unwrap().to_be_bytes());
    frame.extend_from_slice(body);
    frame
}

fn encoded(write: impl FnOnce(&mut BytesMut)) -> Vec<u8> {
    let mut buf = BytesMut::new();
    write(&mut buf);
    buf.to_vec()
}

// What a client sends.

pub fn query(sql: &str) -> Vec<u8> {
    encoded(|buf| encode::query(buf, sql).unwrap())
}

/// Parse, Bind and Execute of `sql` through the unnamed statement and portal.
pub fn execute(sql: &str) -> Vec<Vec<u8>> {
    vec![
        encoded(|buf| encode::parse(buf, "", sql).unwrap()),
        encoded(|buf| encode::bind(buf, "", "", &[]).unwrap()),
        encoded(|buf| encode::execute(buf, "").unwrap()),
    ]
}

pub fn sync() -> Vec<u8> {
    encoded(|buf| encode::sync(buf).unwrap())
}

pub fn copy_data(data: &str) -> Vec<u8> {
    frame(fe::COPY_DATA, data.as_bytes())
}

pub fn copy_done() -> Vec<u8> {
    frame(fe::COPY_DONE, b"")
}

// What a server sends.

pub fn parse_complete() -> Vec<u8> {
    frame(be::PARSE_COMPLETE, b"")
}

pub fn bind_complete() -> Vec<u8> {
    frame(be::BIND_COMPLETE, b"")
}

pub fn complete(tag: &str) -> Vec<u8> {
    frame(be::COMMAND_COMPLETE, format!("{tag}\0").as_bytes())
}

pub fn ready(status: u8) -> Vec<u8> {
    frame(be::READY_FOR_QUERY, &[status])
}

pub fn error(code: &str) -> Vec<u8> {
    encoded(|buf| {
        encode::error_response(buf, vec![(b'S', "ERROR".into()), (b'C', code.into())]).unwrap();
    })
}

pub fn copy_in_response() -> Vec<u8> {
    frame(be::COPY_IN_RESPONSE, &[0, 0, 0])
}

/// The server's answers to the BEGIN the proxy injects: Close, Parse, Bind, Execute.
pub fn begun() -> Vec<Vec<u8>> {
    vec![
        frame(be::CLOSE_COMPLETE, b""),
        parse_complete(),
        bind_complete(),
        complete("BEGIN"),
    ]
}

/// The server's answers to a unit the proxy wrapped in its transaction: those of its
/// BEGIN, then `replies`.
pub fn managed(replies: &[Vec<u8>]) -> Vec<Vec<u8>> {
    let mut all = begun();
    all.extend_from_slice(replies);
    all
}

/// The autocommit write most scripts send.
pub const UPDATE: &str = "UPDATE salesforce.account SET name = 'New' WHERE id = 1";

/// The proxy's statements before a push reaches the org, for transaction 745.
pub const BEFORE_THE_ORG: [&str; 4] = [
    "capture_installed",
    "push_context",
    "take_pending_changes ticket-745",
    "set_constraints_immediate",
];

/// The proxy's statements for a unit it wrapped that captured nothing, without a control
/// database: the capture functions looked for, nothing pending found, COMMIT.
pub const COMMITTED: [&str; 3] = ["capture_installed", "first_pending_change", "commit"];

/// An explicit transaction opened and written in one pipelined unit, answered.
pub async fn began_and_wrote_in_a_pipeline(h: &mut Harness) {
    let mut unit = execute("BEGIN");
    unit.extend(execute(UPDATE));
    unit.push(sync());
    h.client(&unit).await;
    h.server(&[
        parse_complete(),
        bind_complete(),
        complete("BEGIN"),
        parse_complete(),
        bind_complete(),
        complete("UPDATE 1"),
        ready(b'T'),
    ])
    .await;
    h.sent();
    h.received();
}

/// The BEGIN the proxy injects, as sent.
pub fn injected_begin() -> Vec<String> {
    [
        "Close statement \"__sfpg_begin\"",
        "Parse \"__sfpg_begin\" BEGIN",
        "Bind \"__sfpg_begin\"",
        "Execute \"__sfpg_begin\"",
    ]
    .map(String::from)
    .to_vec()
}

/// `lines` then `more`, as one list.
pub fn then(lines: Vec<String>, more: &[&str]) -> Vec<String> {
    lines
        .into_iter()
        .chain(more.iter().map(|l| l.to_string()))
        .collect()
}

/// A RowDescription of text columns: name, table OID, column number.
pub fn row_description(columns: &[(&str, u32, i16)]) -> Vec<u8> {
    let mut body = i16::try_from(columns.len()).unwrap().to_be_bytes().to_vec();
    for (name, table, attnum) in columns {
        body.extend_from_slice(name.as_bytes());
        body.push(0);
        body.extend_from_slice(&table.to_be_bytes());
        body.extend_from_slice(&attnum.to_be_bytes());
        body.extend_from_slice(&1043u32.to_be_bytes());
        body.extend_from_slice(&(-1i16).to_be_bytes());
        body.extend_from_slice(&(-1i32).to_be_bytes());
        body.extend_from_slice(&0i16.to_be_bytes());
    }
    frame(be::ROW_DESCRIPTION, &body)
}

/// A DataRow of text values (`None` for NULL).
pub fn data_row(values: &[Option<&str>]) -> Vec<u8> {
    let mut body = i16::try_from(values.len()).unwrap().to_be_bytes().to_vec();
    for value in values {
        match value {
            Some(value) => {
                body.extend_from_slice(&i32::try_from(value.len()).unwrap().to_be_bytes());
                body.extend_from_slice(value.as_bytes());
            }
            None => body.extend_from_slice(&(-1i32).to_be_bytes()),
        }
    }
    frame(be::DATA_ROW, &body)
}

/// The OID of `salesforce.account` in these scripts.
pub const ACCOUNT_OID: u32 = 100;

/// The captured change of an UPDATE of account row 1's name, as the trigger records it.
pub fn account_renamed() -> serde_json::Value {
    serde_json::json!([{
        "seq": 1, "schema_name": "salesforce", "table_name": "account", "table_oid": ACCOUNT_OID,
        "operation": "UPDATE", "row_id": 1,
        "old_row": {"id": 1, "sfid": "001000000000001AAA", "name": "Old"},
        "new_row": {"id": 1, "sfid": "001000000000001AAA", "name": "New"},
        "changed": ["name"]
    }])
}

/// The captured change of an INSERT of account row 7, with its provisional sfid.
pub fn account_inserted(provisional: &str) -> serde_json::Value {
    serde_json::json!([{
        "seq": 1, "schema_name": "salesforce", "table_name": "account", "table_oid": ACCOUNT_OID,
        "operation": "INSERT", "row_id": 7, "old_row": null,
        "new_row": {"id": 7, "sfid": provisional, "name": "New Co"}
    }])
}
