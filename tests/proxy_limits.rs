//! `sfpg proxy`, the real binary, against clients that would exhaust it: messages announcing
//! a gigabyte before authentication, oversized startup packets, connections that never
//! authenticate (idle, or a byte at a time), more connections than allowed, and large
//! messages after authentication. The proxy's memory is read from its process's
//! `/proc/<pid>/status`.

// Helpers of a test crate may unwrap: a failure should stop the test where it happened.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod proxy_process;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use proxy_process::{
    ProxyProcess, error_fields, logged_in, login, message, read_message, replies, simple_query,
    startup_packet, tags,
};

use sfpg_testkit::TestDatabase;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_postgres::error::SqlState;

const MB: u64 = 1024 * 1024;

/// How the proxy ended a connection it refused.
#[derive(Debug)]
struct Ending {
    /// The ErrorResponse it sent, by field.
    error: Option<BTreeMap<char, String>>,
    /// It closed the connection after (within `CLOSE_WITHIN`).
    closed: bool,
    /// From the start of the wait to the error (or the close).
    after: Duration,
}

const CLOSE_WITHIN: Duration = Duration::from_secs(5);

/// Waits up to `within` for an ErrorResponse, skipping other messages, then up to
/// `CLOSE_WITHIN` for the connection to close.
async fn wait_for_ending(stream: &mut (impl AsyncRead + Unpin), within: Duration) -> Ending {
    let start = Instant::now();
    let mut error = None;
    let waited = tokio::time::timeout(within, async {
        while let Some((tag, body)) = read_message(stream).await {
            if tag == b'E' {
                error = Some(error_fields(&body));
                return false;
            }
        }
        true
    })
    .await;
    let after = start.elapsed();
    let closed = match waited {
        Ok(true) => true,
        Ok(false) => {
            let mut rest = Vec::new();
            matches!(
                tokio::time::timeout(CLOSE_WITHIN, stream.read_to_end(&mut rest)).await,
                Ok(Ok(_) | Err(_))
            )
        }
        Err(_) => false,
    };
    Ending {
        error,
        closed,
        after,
    }
}

/// The error's primary message and detail.
fn text(ending: &Ending) -> String {
    let error = ending.error.as_ref().unwrap();
    format!(
        "{} {}",
        error.get(&'M').map_or("", String::as_str),
        error.get(&'D').map_or("", String::as_str)
    )
}

fn assert_refused(ending: &Ending, code: &str, what: &str) {
    let error = ending
        .error
        .as_ref()
        .unwrap_or_else(|| panic!("{what}: no error before {ending:?}"));
    assert_eq!(
        error.get(&'S').map(String::as_str),
        Some("FATAL"),
        "{what}: {error:?}"
    );
    assert_eq!(
        error.get(&'C').map(String::as_str),
        Some(code),
        "{what}: {error:?}"
    );
    assert!(
        ending.closed,
        "{what}: the connection stayed open after {error:?}"
    );
}

/// Sends a StartupMessage, waits for the server's authentication request, then a password
/// message whose length word announces 1 GiB, and streams zeros after it (up to
/// `MAX_SENT`) for as long as the proxy reads them.
async fn announce_a_gigabyte(addr: SocketAddr, startup: Vec<u8>) -> (Ending, u64) {
    const MAX_SENT: u64 = 128 * MB;
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(&startup).await.unwrap();
    let (tag, _) = read_message(&mut stream).await.unwrap();
    assert_eq!(tag, b'R', "expected an authentication request");
    let (mut reader, mut writer) = stream.into_split();
    let writing = tokio::spawn(async move {
        let mut sent = 0u64;
        if writer
            .write_all(&[b'p', 0x3f, 0xff, 0xff, 0xff])
            .await
            .is_err()
        {
            return sent;
        }
        let chunk = vec![0u8; 64 * 1024];
        while sent < MAX_SENT {
            match tokio::time::timeout(Duration::from_secs(10), writer.write_all(&chunk)).await {
                Ok(Ok(())) => sent += chunk.len() as u64,
                _ => break,
            }
        }
        sent
    });
    let ending = wait_for_ending(&mut reader, Duration::from_secs(20)).await;
    writing.abort();
    let sent = writing.await.unwrap_or(0);
    (ending, sent)
}

#[tokio::test]
async fn unauthenticated_clients_announcing_a_gigabyte_get_an_error_in_bounded_memory() {
    let db = TestDatabase::create().await;
    let proxy = ProxyProcess::start(&db, &[]);
    let before = proxy.memory("VmRSS");
    let clients: Vec<_> = (0..3)
        .map(|_| tokio::spawn(announce_a_gigabyte(proxy.addr, login(&db))))
        .collect();
    let mut endings = Vec::new();
    for client in clients {
        endings.push(client.await.unwrap());
    }
    let peak = proxy.memory("VmHWM");
    eprintln!(
        "RSS before {} MB, peak {} MB; sent {:?} MB",
        before / MB,
        peak / MB,
        endings
            .iter()
            .map(|(_, sent)| sent / MB)
            .collect::<Vec<_>>()
    );
    assert!(peak < 50 * MB, "the proxy's RSS peaked at {} MB", peak / MB);
    for (ending, _) in &endings {
        assert_refused(ending, "08P01", "a password message announcing 1 GiB");
        let text = text(ending);
        assert!(text.contains("65535"), "the limit is not named: {text}");
    }
}

/// A StartupMessage of exactly `total` bytes, padded in its `application_name`.
fn startup_packet_of(db: &TestDatabase, total: usize) -> Vec<u8> {
    let base = startup_packet(&[("user", db.server().user()), ("application_name", "")]);
    let padding = "x".repeat(total - base.len());
    let packet = startup_packet(&[("user", db.server().user()), ("application_name", &padding)]);
    assert_eq!(packet.len(), total);
    packet
}

#[tokio::test]
async fn a_startup_packet_over_10000_bytes_is_refused() {
    let db = TestDatabase::create().await;
    let proxy = ProxyProcess::start(&db, &[]);
    let mut stream = TcpStream::connect(proxy.addr).await.unwrap();
    stream
        .write_all(&startup_packet_of(&db, 9_900))
        .await
        .unwrap();
    let (tag, _) = read_message(&mut stream).await.unwrap();
    assert_eq!(
        tag, b'R',
        "a 9,900-byte startup packet is the server's to answer"
    );

    // PostgreSQL's limit, MAX_STARTUP_PACKET_LENGTH, allows 10,000 bytes; the `options`
    // the proxy adds take this one past it on its way to the server.
    let mut stream = TcpStream::connect(proxy.addr).await.unwrap();
    stream
        .write_all(&startup_packet_of(&db, 10_000))
        .await
        .unwrap();
    let ending = wait_for_ending(&mut stream, Duration::from_secs(10)).await;
    assert_refused(&ending, "08P01", "a 10,000-byte startup packet");
    let text = text(&ending);
    assert!(text.contains("10000"), "the limit is not named: {text}");

    let mut stream = TcpStream::connect(proxy.addr).await.unwrap();
    stream
        .write_all(&startup_packet_of(&db, 10_001))
        .await
        .unwrap();
    let ending = wait_for_ending(&mut stream, Duration::from_secs(10)).await;
    assert_refused(&ending, "08P01", "a 10,001-byte startup packet");

    // A length word alone is refused at once, before the packet's bytes come.
    let mut stream = TcpStream::connect(proxy.addr).await.unwrap();
    stream.write_all(&[0x3f, 0xff, 0xff, 0xff]).await.unwrap();
    let ending = wait_for_ending(&mut stream, Duration::from_secs(10)).await;
    assert_refused(&ending, "08P01", "a startup packet announcing 1 GiB");
}

/// A client that writes its whole message before it reads (as tokio-postgres and libpq
/// do with a long query) must still get the refusal: a proxy that closed the socket with
/// the message unread would reset the connection under the client's write, and the client
/// would see "connection closed" instead of the error.
#[tokio::test]
async fn a_client_that_sends_its_whole_oversized_message_before_reading_gets_the_error() {
    let db = TestDatabase::create().await;
    let proxy = ProxyProcess::start(&db, &[]);
    let mut stream = TcpStream::connect(proxy.addr).await.unwrap();
    // A startup packet announcing, and carrying, 64 MiB: far more than socket buffers hold.
    let total: u32 = 64 * 1024 * 1024;
    let mut packet = total.to_be_bytes().to_vec();
    packet.resize(total as usize, 0);
    let written = stream.write_all(&packet).await;
    assert!(
        written.is_ok(),
        "the proxy reset the connection while the client was still writing: {written:?}"
    );
    let ending = wait_for_ending(&mut stream, Duration::from_secs(10)).await;
    assert_refused(&ending, "08P01", "a 64 MiB startup packet sent whole");
}

/// Sends `bytes` one at a time, a second apart, until the proxy stops taking them.
fn trickle(mut writer: tokio::net::tcp::OwnedWriteHalf, bytes: Vec<u8>) {
    tokio::spawn(async move {
        for byte in bytes {
            if writer.write_all(&[byte]).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        // Then nothing more, with the connection kept open.
        std::future::pending::<()>().await;
    });
}

#[tokio::test]
async fn connections_that_do_not_authenticate_in_time_are_closed() {
    const TIMEOUT: Duration = Duration::from_secs(3);
    let db = TestDatabase::create().await;
    let proxy = ProxyProcess::start(&db, &["--auth-timeout", "3s"]);
    // A session that authenticated is not bound by the timeout.
    let (session, connection) = db
        .config_via(proxy.addr)
        .connect(tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);

    let idle = TcpStream::connect(proxy.addr).await.unwrap();
    let (mut idle, _idle_writer) = idle.into_split();

    let slow_startup = TcpStream::connect(proxy.addr).await.unwrap();
    let (mut slow_startup, writer) = slow_startup.into_split();
    trickle(writer, login(&db));

    let mut slow_password = TcpStream::connect(proxy.addr).await.unwrap();
    slow_password.write_all(&login(&db)).await.unwrap();
    let (tag, _) = read_message(&mut slow_password).await.unwrap();
    assert_eq!(tag, b'R');
    let (mut slow_password, writer) = slow_password.into_split();
    let mut answer = vec![b'p', 0, 0, 0, 40];
    answer.extend_from_slice(b"SCRAM-SHA-256\0");
    answer.resize(41, b'x');
    trickle(writer, answer);

    let within = TIMEOUT + Duration::from_secs(10);
    let (idle, slow_startup, slow_password) = tokio::join!(
        wait_for_ending(&mut idle, within),
        wait_for_ending(&mut slow_startup, within),
        wait_for_ending(&mut slow_password, within),
    );
    for (ending, what) in [
        (&idle, "an idle connection"),
        (&slow_startup, "a startup packet a byte a second"),
        (&slow_password, "a password message a byte a second"),
    ] {
        assert_refused(ending, "57014", what);
        let text = text(ending);
        assert!(
            text.contains("canceling authentication due to timeout")
                && text.contains("--auth-timeout"),
            "{what}: {text}"
        );
        assert!(
            ending.after >= TIMEOUT - Duration::from_millis(500),
            "{what}: closed after {:?}, before the timeout",
            ending.after
        );
    }
    let row = session.query_one("SELECT 1", &[]).await.unwrap();
    assert_eq!(row.get::<_, i32>(0), 1);
}

async fn connect_through(
    db: &TestDatabase,
    addr: SocketAddr,
) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
    let (client, connection) = db.config_via(addr).connect(tokio_postgres::NoTls).await?;
    tokio::spawn(connection);
    Ok(client)
}

#[tokio::test]
async fn connections_past_the_limit_are_refused_while_the_others_keep_working() {
    let db = TestDatabase::create().await;
    let proxy = ProxyProcess::start(&db, &["--max-client-connections", "3"]);
    let mut sessions = Vec::new();
    for _ in 0..3 {
        sessions.push(connect_through(&db, proxy.addr).await.unwrap());
    }
    let refused = connect_through(&db, proxy.addr).await.err().unwrap();
    let error = refused.as_db_error().unwrap();
    assert_eq!(error.code(), &SqlState::TOO_MANY_CONNECTIONS);
    assert_eq!(error.message(), "sorry, too many clients already");
    let detail = error.detail().unwrap_or_default();
    assert!(
        detail.contains("at most 3") && detail.contains("--max-client-connections"),
        "{detail}"
    );
    for session in &sessions {
        let row = session.query_one("SELECT 1", &[]).await.unwrap();
        assert_eq!(row.get::<_, i32>(0), 1);
    }

    // A cancel request still gets through at the limit.
    let cancel = sessions[0].cancel_token();
    let sleeping = {
        let session = &sessions[0];
        async move { session.simple_query("SELECT pg_sleep(30)").await }
    };
    let cancelling = async {
        tokio::time::sleep(Duration::from_millis(500)).await;
        cancel.cancel_query(tokio_postgres::NoTls).await
    };
    let (slept, cancelled) = tokio::join!(sleeping, cancelling);
    cancelled.unwrap();
    let error = slept.err().unwrap();
    assert_eq!(error.code(), Some(&SqlState::QUERY_CANCELED), "{error}");

    // Many refusals make a few log lines, not one each.
    let mut refused = Vec::new();
    for _ in 0..30 {
        let mut stream = TcpStream::connect(proxy.addr).await.unwrap();
        stream.write_all(&login(&db)).await.unwrap();
        refused.push(stream);
    }
    for stream in &mut refused {
        let ending = wait_for_ending(stream, Duration::from_secs(10)).await;
        assert_refused(&ending, "53300", "a connection past the limit");
    }
    let lines = proxy.logged("too many clients");
    assert!(
        (1..=3).contains(&lines),
        "{lines} log lines for 31 refusals"
    );

    // A closed session frees its place.
    drop(sessions.pop());
    let deadline = Instant::now() + Duration::from_secs(10);
    let again = loop {
        match connect_through(&db, proxy.addr).await {
            Ok(client) => break client,
            Err(error) if Instant::now() < deadline => {
                assert_eq!(error.code(), Some(&SqlState::TOO_MANY_CONNECTIONS));
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(error) => panic!("no place freed: {error}"),
        }
    };
    again.simple_query("SELECT 1").await.unwrap();
}

/// `count` rows of about 100 bytes each, as COPY text.
fn copy_rows(count: usize) -> Vec<u8> {
    let mut data = Vec::with_capacity(count * 100);
    let filler = "y".repeat(90);
    for id in 0..count {
        data.extend_from_slice(format!("{id}\t{filler}\n").as_bytes());
    }
    data
}

#[tokio::test]
async fn a_copy_data_message_of_200_mb_streams_through_in_bounded_memory() {
    let db = TestDatabase::create().await;
    let proxy = ProxyProcess::start(&db, &["--max-message-size", "4MB"]);
    let mut stream = logged_in(&db, proxy.addr).await;
    let created = simple_query(&mut stream, "CREATE TEMP TABLE bulk (id int, filler text)").await;
    assert_eq!(tags(&created), "CZ");
    let rows = 2_200_000;
    let data = copy_rows(rows);
    assert!(data.len() as u64 > 200 * MB);
    let before = proxy.memory("VmRSS");
    let started = simple_query(&mut stream, "COPY bulk FROM STDIN").await;
    assert_eq!(tags(&started), "G");
    // All the rows in one CopyData message, its length word first.
    let header = [
        &[b'd'][..],
        &u32::try_from(data.len() + 4).unwrap().to_be_bytes(),
    ]
    .concat();
    stream.write_all(&header).await.unwrap();
    stream.write_all(&data).await.unwrap();
    stream.write_all(&message(b'c', b"")).await.unwrap();
    let copied = replies(&mut stream).await;
    let peak = proxy.memory("VmHWM");
    eprintln!(
        "RSS before the COPY {} MB, peak {} MB",
        before / MB,
        peak / MB
    );
    assert_eq!(tags(&copied), "CZ", "{copied:?}");
    assert_eq!(copied[0].1, format!("COPY {rows}\0").into_bytes());
    let counted = simple_query(
        &mut stream,
        "SELECT count(*), sum(length(filler)) FROM bulk",
    )
    .await;
    assert_eq!(tags(&counted), "TDCZ");
    let expected = format!("{rows}{}", rows * 90);
    let row: Vec<u8> = counted[1]
        .1
        .iter()
        .copied()
        .filter(u8::is_ascii_digit)
        .collect();
    assert!(row.ends_with(expected.as_bytes()), "{:?}", counted[1]);
    assert!(peak < 50 * MB, "the proxy's RSS peaked at {} MB", peak / MB);
    assert!(
        peak - before < 20 * MB,
        "the COPY took the proxy's RSS from {} MB to {} MB",
        before / MB,
        peak / MB
    );
}

#[tokio::test]
async fn a_query_over_the_maximum_message_size_is_refused_naming_the_limit() {
    let db = TestDatabase::create().await;
    let proxy = ProxyProcess::start(&db, &["--max-message-size", "4MB"]);
    let client = connect_through(&db, proxy.addr).await.unwrap();
    // Longer than the relay's 1 MiB read-ahead, within the limit: held whole and run.
    let within = format!("SELECT length('{}')", "z".repeat(3 * 1024 * 1024));
    let row = client.query_one(within.as_str(), &[]).await.unwrap();
    assert_eq!(row.get::<_, i32>(0), 3 * 1024 * 1024);
    // A write the proxy must classify, over the limit.
    let over = format!(
        "INSERT INTO nowhere VALUES ('{}')",
        "z".repeat(5 * 1024 * 1024)
    );
    let error = client.batch_execute(over.as_str()).await.err().unwrap();
    let db_error = error
        .as_db_error()
        .unwrap_or_else(|| panic!("not an error from the proxy: {error}"));
    assert_eq!(db_error.code(), &SqlState::PROTOCOL_VIOLATION, "{db_error}");
    assert!(
        db_error.message().contains("4194304")
            && db_error
                .detail()
                .unwrap_or_default()
                .contains("--max-message-size"),
        "the limit is not named: {db_error}"
    );
    assert!(client.is_closed() || client.simple_query("SELECT 1").await.is_err());
}

/// Messages PostgreSQL would answer with FATAL 08P01 get it from the proxy too, naming
/// what is wrong, before the connection closes: a Query whose text has no terminating NUL,
/// and a simple Query sent before the Sync of an extended-protocol unit that may write
/// (PostgreSQL would commit the unit with the Query; the proxy pushes the unit at its
/// Sync, so it refuses rather than leave the unit neither pushed nor answered).
#[tokio::test]
async fn malformed_or_misplaced_messages_get_fatal_08p01_naming_them() {
    let db = TestDatabase::create().await;
    let proxy = ProxyProcess::start(&db, &[]);

    let mut stream = logged_in(&db, proxy.addr).await;
    stream.write_all(&message(b'Q', b"SELECT 1")).await.unwrap();
    let ending = wait_for_ending(&mut stream, Duration::from_secs(10)).await;
    assert_refused(&ending, "08P01", "a Query without its NUL");

    let mut stream = logged_in(&db, proxy.addr).await;
    let mut unit = message(b'P', b"\0INSERT INTO nowhere VALUES (1)\0\0\0");
    unit.extend(message(b'B', b"\0\0\0\0\0\0\0\0"));
    unit.extend(message(b'E', b"\0\0\0\0\0"));
    unit.extend(message(b'Q', b"SELECT 1\0"));
    stream.write_all(&unit).await.unwrap();
    let ending = wait_for_ending(&mut stream, Duration::from_secs(10)).await;
    assert_refused(&ending, "08P01", "a Query before the Sync");
    assert!(text(&ending).contains("send the Sync first"), "{ending:?}");
}
