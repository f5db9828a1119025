//! `sfpg proxy`, the real binary, in a process of its own (so that its memory can be read
//! from `/proc`), and a raw protocol client for what a library client would not send.

// Helpers of a test crate may unwrap: a failure should stop the test where it happened.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::net::SocketAddr;

use sfpg_testkit::TestDatabase;
use sfpg_testkit::binary::Sfpg;
use sfpg_testkit::process::TestProcess;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const SFPG: Sfpg = Sfpg::new(env!("CARGO_BIN_EXE_sfpg")).logging("sfpg=info,sfpg_proxy=info");

/// `sfpg proxy` in a process of its own, killed when dropped.
pub struct ProxyProcess {
    process: TestProcess,
    pub addr: SocketAddr,
}

impl ProxyProcess {
    pub fn start(db: &TestDatabase, flags: &[&str]) -> ProxyProcess {
        let mut args = vec!["proxy", "--listen", "127.0.0.1:0"];
        args.extend_from_slice(flags);
        let (process, addr) = SFPG.start_listening(db.url(), &args);
        ProxyProcess { process, addr }
    }
}

impl std::ops::Deref for ProxyProcess {
    type Target = TestProcess;

    fn deref(&self) -> &TestProcess {
        &self.process
    }
}

pub fn startup_packet(parameters: &[(&str, &str)]) -> Vec<u8> {
    let mut body = vec![0, 3, 0, 0];
    for (name, value) in parameters {
        body.extend_from_slice(name.as_bytes());
        body.push(0);
        body.extend_from_slice(value.as_bytes());
        body.push(0);
    }
    body.push(0);
    let mut packet = u32::try_from(body.len() + 4)
        .unwrap()
        .to_be_bytes()
        .to_vec();
    packet.extend_from_slice(&body);
    packet
}

pub fn login(db: &TestDatabase) -> Vec<u8> {
    startup_packet(&[("user", db.server().user()), ("database", db.name())])
}

/// One server message, or `None` once the connection is closed or reset.
pub async fn read_message(stream: &mut (impl AsyncRead + Unpin)) -> Option<(u8, Vec<u8>)> {
    let mut header = [0u8; 5];
    stream.read_exact(&mut header).await.ok()?;
    let len = u32::from_be_bytes([header[1], header[2], header[3], header[4]]) as usize;
    let mut body = vec![0; len.checked_sub(4)?];
    stream.read_exact(&mut body).await.ok()?;
    Some((header[0], body))
}

/// The fields of an ErrorResponse, by their code letter.
pub fn error_fields(body: &[u8]) -> BTreeMap<char, String> {
    body.split(|&b| b == 0)
        .filter(|field| !field.is_empty())
        .map(|field| {
            (
                char::from(field[0]),
                String::from_utf8_lossy(&field[1..]).into_owned(),
            )
        })
        .collect()
}

/// A raw connection through the proxy, logged in (SCRAM) and ready for queries.
pub async fn logged_in(db: &TestDatabase, addr: SocketAddr) -> TcpStream {
    use postgres_protocol::authentication::sasl::{ChannelBinding, ScramSha256};
    use postgres_protocol::message::frontend;

    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(&login(db)).await.unwrap();
    let password = db.server().password().unwrap_or("").as_bytes().to_vec();
    let mut scram: Option<ScramSha256> = None;
    loop {
        let (tag, body) = read_message(&mut stream)
            .await
            .expect("closed while logging in");
        let mut out = bytes::BytesMut::new();
        match (
            tag,
            body.get(..4)
                .map(|c| i32::from_be_bytes(c.try_into().unwrap())),
        ) {
            (b'R', Some(10)) => {
                let state = ScramSha256::new(&password, ChannelBinding::unsupported());
                frontend::sasl_initial_response("SCRAM-SHA-256", state.message(), &mut out)
                    .unwrap();
                scram = Some(state);
            }
            (b'R', Some(11)) => {
                let state = scram.as_mut().unwrap();
                state.update(&body[4..]).unwrap();
                frontend::sasl_response(state.message(), &mut out).unwrap();
            }
            (b'R', Some(12)) => scram.as_mut().unwrap().finish(&body[4..]).unwrap(),
            (b'E', _) => panic!("login refused: {:?}", error_fields(&body)),
            (b'Z', _) => return stream,
            _ => {}
        }
        stream.write_all(&out).await.unwrap();
    }
}

pub fn message(tag: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    out.extend_from_slice(&u32::try_from(body.len() + 4).unwrap().to_be_bytes());
    out.extend_from_slice(body);
    out
}

/// Sends a simple Query; returns the replies up to ReadyForQuery, or up to a
/// CopyInResponse.
pub async fn simple_query(stream: &mut TcpStream, sql: &str) -> Vec<(u8, Vec<u8>)> {
    let mut text = sql.as_bytes().to_vec();
    text.push(0);
    stream.write_all(&message(b'Q', &text)).await.unwrap();
    replies(stream).await
}

pub async fn replies(stream: &mut TcpStream) -> Vec<(u8, Vec<u8>)> {
    let mut replies = Vec::new();
    loop {
        let (tag, body) = read_message(stream).await.expect("closed while answering");
        replies.push((tag, body));
        if matches!(tag, b'Z' | b'G') {
            return replies;
        }
    }
}

pub fn tags(replies: &[(u8, Vec<u8>)]) -> String {
    replies.iter().map(|(tag, _)| char::from(*tag)).collect()
}
