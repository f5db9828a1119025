//! Shared by the proxy's integration tests: a proxy in front of a test database, and a raw
//! protocol client that records every message it receives, so that the same exchange can
//! be compared byte for byte with and without the proxy.

// Test helpers: a failure should stop the test at the line that broke, like the tests
// themselves (clippy.toml allows unwrap in test functions but not in their helpers).
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;

use bytes::{Buf, BytesMut};
use postgres_protocol::authentication::sasl::{ChannelBinding, ScramSha256};
use postgres_protocol::message::frontend;
use sfpg_proxy::TlsConfig;
use sfpg_testkit::TestDatabase;
use sfpg_testkit::proxy::{ProxySetup, start_proxy as start};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

pub use sfpg_testkit::proxy::RunningProxy;

pub async fn start_proxy(db: &TestDatabase) -> RunningProxy {
    start_proxy_with(db, None).await
}

pub async fn start_proxy_with(db: &TestDatabase, tls: Option<TlsConfig>) -> RunningProxy {
    start_proxy_on(db, tls, 1).await
}

/// A proxy whose sessions run on `session_threads` threads (0: the test's runtime), and
/// which pushes nothing.
pub async fn start_proxy_on(
    db: &TestDatabase,
    tls: Option<TlsConfig>,
    session_threads: usize,
) -> RunningProxy {
    let setup = ProxySetup {
        tls,
        push_with: None,
        session_threads,
    };
    start(db, setup).await
}

/// The server's address, as the test database knows it.
pub fn direct_addr(db: &TestDatabase) -> SocketAddr {
    let server = db.server();
    format!("{}:{}", server.host(), server.port())
        .parse()
        .unwrap()
}

/// How long a raw client waits for the next reply.
const REPLY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// One message as received: its tag and body.
pub type Message = (u8, Vec<u8>);

/// Any byte stream a client can talk over: TCP, or TLS over TCP.
pub trait Stream: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send> Stream for T {}

/// A protocol client that sends prepared bytes and records raw replies.
pub struct RawClient {
    stream: Box<dyn Stream>,
    buf: BytesMut,
    /// What the server said between AuthenticationOk and the first ReadyForQuery.
    pub startup: Vec<Message>,
}

impl RawClient {
    /// Connects and logs in as the test database's superuser (SCRAM over TCP).
    pub async fn connect(db: &TestDatabase, addr: SocketAddr) -> RawClient {
        Self::connect_over(db, Box::new(TcpStream::connect(addr).await.unwrap())).await
    }

    /// The same over an already open stream.
    pub async fn connect_over(db: &TestDatabase, stream: Box<dyn Stream>) -> RawClient {
        let server = db.server();
        let mut client = RawClient {
            stream,
            buf: BytesMut::new(),
            startup: Vec::new(),
        };
        let mut out = BytesMut::new();
        frontend::startup_message(
            [
                ("user", server.user()),
                ("database", db.name()),
                ("application_name", "raw"),
            ],
            &mut out,
        )
        .unwrap();
        client.send(&out).await;
        let password = server.password().unwrap_or("").as_bytes().to_vec();
        let mut scram: Option<ScramSha256> = None;
        loop {
            let (tag, body) = client.read_message().await;
            match tag {
                b'R' => {
                    let code = i32::from_be_bytes(body[..4].try_into().unwrap());
                    let mut out = BytesMut::new();
                    match code {
                        0 => {}
                        3 => frontend::password_message(&password, &mut out).unwrap(),
                        10 => {
                            let state = ScramSha256::new(&password, ChannelBinding::unsupported());
                            frontend::sasl_initial_response(
                                "SCRAM-SHA-256",
                                state.message(),
                                &mut out,
                            )
                            .unwrap();
                            scram = Some(state);
                        }
                        11 => {
                            let state = scram.as_mut().unwrap();
                            state.update(&body[4..]).unwrap();
                            frontend::sasl_response(state.message(), &mut out).unwrap();
                        }
                        12 => scram.as_mut().unwrap().finish(&body[4..]).unwrap(),
                        other => panic!("unsupported authentication request {other}"),
                    }
                    if !out.is_empty() {
                        client.send(&out).await;
                    }
                }
                b'E' => panic!("login refused: {}", String::from_utf8_lossy(&body)),
                b'Z' => {
                    client.startup.push((tag, body));
                    return client;
                }
                _ => client.startup.push((tag, body)),
            }
        }
    }

    pub async fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.unwrap();
    }

    pub async fn read_message(&mut self) -> Message {
        loop {
            if self.buf.len() >= 5 {
                let len = u32::from_be_bytes(self.buf[1..5].try_into().unwrap()) as usize;
                if self.buf.len() > len {
                    let tag = self.buf[0];
                    self.buf.advance(5);
                    let body = self.buf.split_to(len - 4).to_vec();
                    return (tag, body);
                }
            }
            // A session that stops answering fails the test instead of hanging it.
            let n = tokio::time::timeout(REPLY_TIMEOUT, self.stream.read_buf(&mut self.buf))
                .await
                .expect("no reply within the time allowed")
                .unwrap();
            assert!(n > 0, "connection closed while reading");
        }
    }

    /// Reads until the other side closes; what arrived before that, unparsed.
    pub async fn read_to_close(&mut self) -> Vec<u8> {
        let mut rest = std::mem::take(&mut self.buf).to_vec();
        self.stream.read_to_end(&mut rest).await.unwrap();
        rest
    }

    /// Sends `bytes` and collects replies up to and including the `readies`-th
    /// ReadyForQuery.
    pub async fn exchange(&mut self, bytes: &[u8], readies: usize) -> Vec<Message> {
        self.exchange_script(bytes, readies, 0).await
    }

    /// Sends `bytes` and collects replies up to the `readies`-th ReadyForQuery, or, with
    /// none expected, `messages` replies.
    pub async fn exchange_script(
        &mut self,
        bytes: &[u8],
        readies: usize,
        messages: usize,
    ) -> Vec<Message> {
        self.send(bytes).await;
        let mut replies = Vec::new();
        while replies.len() < messages {
            replies.push(self.read_message().await);
        }
        let mut seen = 0;
        while seen < readies {
            let message = self.read_message().await;
            if message.0 == b'Z' {
                seen += 1;
            }
            replies.push(message);
        }
        replies
    }
}

/// Builds frontend messages for [`RawClient::exchange`].
#[derive(Default)]
pub struct Script {
    pub bytes: BytesMut,
    pub readies: usize,
    /// With no ReadyForQuery to wait for (a Flush), how many messages to read.
    pub messages: usize,
}

impl Script {
    pub fn query(mut self, sql: &str) -> Self {
        frontend::query(sql, &mut self.bytes).unwrap();
        self.readies += 1;
        self
    }

    pub fn parse(mut self, name: &str, sql: &str) -> Self {
        frontend::parse(name, sql, std::iter::empty(), &mut self.bytes).unwrap();
        self
    }

    /// Binds text parameters; `binary_results` asks for every column in binary.
    pub fn bind(
        mut self,
        portal: &str,
        statement: &str,
        params: &[Option<&str>],
        binary_results: bool,
    ) -> Self {
        let formats: Vec<i16> = if binary_results { vec![1] } else { vec![] };
        frontend::bind(
            portal,
            statement,
            std::iter::empty::<i16>(),
            params.iter(),
            |param, buf| match param {
                Some(value) => {
                    buf.extend_from_slice(value.as_bytes());
                    Ok(postgres_protocol::IsNull::No)
                }
                None => Ok(postgres_protocol::IsNull::Yes),
            },
            formats,
            &mut self.bytes,
        )
        .map_err(|_| "bind")
        .unwrap();
        self
    }

    pub fn describe_statement(mut self, name: &str) -> Self {
        frontend::describe(b'S', name, &mut self.bytes).unwrap();
        self
    }

    pub fn describe_portal(mut self, name: &str) -> Self {
        frontend::describe(b'P', name, &mut self.bytes).unwrap();
        self
    }

    pub fn execute(mut self, portal: &str, max_rows: i32) -> Self {
        frontend::execute(portal, max_rows, &mut self.bytes).unwrap();
        self
    }

    pub fn close_statement(mut self, name: &str) -> Self {
        frontend::close(b'S', name, &mut self.bytes).unwrap();
        self
    }

    pub fn copy_data(mut self, data: &[u8]) -> Self {
        frontend::CopyData::new(data)
            .unwrap()
            .write(&mut self.bytes);
        self
    }

    pub fn copy_done(mut self) -> Self {
        frontend::copy_done(&mut self.bytes);
        self
    }

    pub fn copy_fail(mut self, message: &str) -> Self {
        frontend::copy_fail(message, &mut self.bytes).unwrap();
        self
    }

    /// Expects `readies` ReadyForQuery in the replies, or with none, `messages` replies: for
    /// a script whose Syncs the server ignores (those sent during a COPY).
    pub fn expecting(mut self, readies: usize, messages: usize) -> Self {
        self.readies = readies;
        self.messages = messages;
        self
    }

    /// Flushes, then expects `messages` replies without a ReadyForQuery.
    pub fn flush_expecting(mut self, messages: usize) -> Self {
        frontend::flush(&mut self.bytes);
        self.messages = messages;
        self
    }

    pub fn sync(mut self) -> Self {
        frontend::sync(&mut self.bytes);
        self.readies += 1;
        self
    }
}

/// Runs `scripts` on a direct connection, then (after `reset`) through the proxy, on the
/// same database (so that table OIDs match), and requires the same replies, byte for
/// byte, and the same result of `check` after each run.
pub async fn assert_same_after_reset(setup: &str, reset: &str, scripts: Vec<Script>, check: &str) {
    let db = TestDatabase::create().await;
    let admin = db.connect().await;
    admin.batch_execute(setup).await.unwrap();
    let proxy = start_proxy(&db).await;
    let mut expected = Vec::new();
    admin.batch_execute(reset).await.unwrap();
    let mut direct = RawClient::connect(&db, direct_addr(&db)).await;
    for script in &scripts {
        expected.push(
            direct
                .exchange_script(&script.bytes, script.readies, script.messages)
                .await,
        );
    }
    drop(direct);
    let expected_rows = rows(&admin, check).await;
    admin.batch_execute(reset).await.unwrap();
    let mut proxied = RawClient::connect(&db, proxy.addr).await;
    for (script, expected) in scripts.iter().zip(expected) {
        let actual = proxied
            .exchange_script(&script.bytes, script.readies, script.messages)
            .await;
        assert_eq!(
            render(&actual),
            render(&expected),
            "replies differ for script {:?}",
            String::from_utf8_lossy(&script.bytes)
        );
    }
    drop(proxied);
    assert_eq!(
        rows(&admin, check).await,
        expected_rows,
        "the tables differ after the scripts"
    );
}

/// A database with the control schema and one mirrored table, `salesforce.account`
/// (with its capture triggers), and a plain table `notes`. Without an org for the proxy,
/// every push of a captured change is refused (55000).
pub async fn mirrored() -> TestDatabase {
    let db = TestDatabase::create().await;
    let mut client = db.connect().await;
    sfpg_control::apply_control_schema(&mut client)
        .await
        .unwrap();
    client
        .batch_execute(
            "CREATE SCHEMA salesforce;
             CREATE TABLE salesforce.account (id bigserial PRIMARY KEY, sfid varchar(18) UNIQUE,
                 systemmodstamp timestamptz, isdeleted boolean NOT NULL DEFAULT false, name text);
             CREATE TABLE notes (id serial PRIMARY KEY, body text);",
        )
        .await
        .unwrap();
    sfpg_control::capture::install_capture_trigger(&client, "salesforce", "account")
        .await
        .unwrap();
    db
}

/// How many rows `table` holds, read directly.
pub async fn count(db: &TestDatabase, table: &str) -> i64 {
    db.connect()
        .await
        .query_one(&format!("SELECT count(*) FROM {table}"), &[])
        .await
        .unwrap()
        .get(0)
}

/// The tags of `messages`, without their bodies.
pub fn tags(messages: &[Message]) -> String {
    messages.iter().map(|(tag, _)| char::from(*tag)).collect()
}

/// The rows of a query, as text.
pub async fn rows(client: &tokio_postgres::Client, sql: &str) -> Vec<String> {
    client
        .simple_query(sql)
        .await
        .unwrap()
        .iter()
        .filter_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(row) => Some(
                (0..row.len())
                    .map(|i| row.get(i).unwrap_or("NULL").to_owned())
                    .collect::<Vec<_>>()
                    .join(","),
            ),
            _ => None,
        })
        .collect()
}

/// Shows messages readably when a comparison fails.
pub fn render(messages: &[Message]) -> String {
    messages
        .iter()
        .map(|(tag, body)| {
            format!(
                "{} {}\n",
                char::from(*tag),
                String::from_utf8_lossy(body).replace('\0', "|")
            )
        })
        .collect()
}
