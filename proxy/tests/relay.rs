//! The relay on its own: whatever a client sends reaches PostgreSQL untouched, and whatever
//! PostgreSQL answers reaches the client untouched, including authentication, TLS ended at
//! the proxy, cancel requests, COPY, notifications and errors.

// Helpers below unwrap like the tests they serve.
#![allow(clippy::unwrap_used)]

mod support;

use std::process::Command;
use std::time::Duration;

use sfpg_proxy::TlsConfig;
use sfpg_testkit::TestDatabase;
use support::{
    RawClient, Script, direct_addr, render, start_proxy, start_proxy_on, start_proxy_with,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Runs the scripts on a direct connection, then on one through the proxy, and requires
/// the same replies, byte for byte. One session runs after the other so that neither waits
/// on the other's locks; the scripts leave the database as they found it.
async fn assert_same_replies(db: &TestDatabase, scripts: Vec<Script>) {
    let proxy = start_proxy(db).await;
    let mut expected = Vec::new();
    let mut direct = RawClient::connect(db, direct_addr(db)).await;
    for script in &scripts {
        expected.push(direct.exchange(&script.bytes, script.readies).await);
    }
    drop(direct);
    let mut proxied = RawClient::connect(db, proxy.addr).await;
    for (script, expected) in scripts.iter().zip(expected) {
        let actual = proxied.exchange(&script.bytes, script.readies).await;
        assert_eq!(
            render(&actual),
            render(&expected),
            "replies differ for script {:?}",
            String::from_utf8_lossy(&script.bytes)
        );
    }
}

#[tokio::test]
async fn simple_queries_get_the_same_bytes() {
    let db = TestDatabase::create().await;
    let setup = db.connect().await;
    setup
        .batch_execute("CREATE TABLE t (id int PRIMARY KEY, name text, amount numeric(10,2))")
        .await
        .unwrap();
    assert_same_replies(
        &db,
        vec![
            Script::default().query("SELECT 1 AS one, 'x'::text AS two, 2.50::numeric AS three"),
            Script::default().query("SELECT 1; SELECT 2"),
            Script::default().query(""),
            Script::default().query("SELECT * FROM missing_table"),
            Script::default().query("DO $$ BEGIN RAISE NOTICE 'hello %', 42; END $$"),
            Script::default().query("BEGIN; INSERT INTO t VALUES (1, 'a', 1.5); SELECT * FROM t"),
            Script::default().query("SELECT 1/0"),
            Script::default().query("ROLLBACK"),
            Script::default()
                .query("COPY (SELECT g, g * 2 FROM generate_series(1, 5) g) TO STDOUT"),
            Script::default().query("SET search_path = public, pg_catalog; SHOW search_path"),
        ],
    )
    .await;
}

#[tokio::test]
async fn extended_protocol_gets_the_same_bytes_in_text_and_binary() {
    let db = TestDatabase::create().await;
    let setup = db.connect().await;
    setup
        .batch_execute(
            "CREATE TABLE t (id int PRIMARY KEY, name text, at timestamptz);
             INSERT INTO t SELECT g, 'n' || g, '2024-01-01'::timestamptz + g * interval '1 day'
             FROM generate_series(1, 10) g",
        )
        .await
        .unwrap();
    assert_same_replies(
        &db,
        vec![
            Script::default()
                .parse("", "SELECT * FROM t WHERE id <= $1 ORDER BY id")
                .bind("", "", &[Some("3")], false)
                .describe_portal("")
                .execute("", 0)
                .sync(),
            Script::default()
                .parse("s1", "SELECT * FROM t WHERE id > $1 ORDER BY id")
                .describe_statement("s1")
                .sync()
                .bind("p1", "s1", &[Some("4")], true)
                .execute("p1", 2)
                .execute("p1", 2)
                .sync(),
            // An error part-way: the server skips to Sync.
            Script::default()
                .parse("", "SELECT 1/0")
                .bind("", "", &[], false)
                .execute("", 0)
                .parse("s2", "SELECT 2")
                .sync(),
            Script::default()
                .parse("", "SELECT $1::int + 1")
                .bind("", "", &[Some("41")], true)
                .execute("", 0)
                .flush_expecting(4),
            Script::default().sync(),
            Script::default().close_statement("s1").sync(),
        ],
    )
    .await;
}

#[tokio::test]
async fn tokio_postgres_works_through_the_proxy() {
    let db = TestDatabase::create().await;
    let proxy = start_proxy(&db).await;
    let mut client = db.connect_via(proxy.addr).await;
    client
        .batch_execute("CREATE TABLE t (id int PRIMARY KEY, name text)")
        .await
        .unwrap();
    let insert = client
        .prepare("INSERT INTO t VALUES ($1, $2)")
        .await
        .unwrap();
    let tx = client.transaction().await.unwrap();
    for i in 0..20 {
        tx.execute(&insert, &[&i, &format!("name {i}")])
            .await
            .unwrap();
    }
    tx.commit().await.unwrap();
    let rows = client
        .query("SELECT id, name FROM t WHERE id >= $1 ORDER BY id", &[&15])
        .await
        .unwrap();
    let ids: Vec<i32> = rows.iter().map(|r| r.get(0)).collect();
    assert_eq!(ids, vec![15, 16, 17, 18, 19]);
    let error = client
        .execute("INSERT INTO t VALUES (1, 'again')", &[])
        .await
        .unwrap_err();
    assert_eq!(
        error.code(),
        Some(&tokio_postgres::error::SqlState::UNIQUE_VIOLATION)
    );
}

#[tokio::test]
async fn notifications_reach_the_listening_client() {
    let db = TestDatabase::create().await;
    let proxy = start_proxy(&db).await;
    let (listener, mut connection) = db
        .config_via(proxy.addr)
        .connect(tokio_postgres::NoTls)
        .await
        .unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut messages = futures::stream::poll_fn(move |cx| connection.poll_message(cx));
        while let Some(Ok(message)) = futures::StreamExt::next(&mut messages).await {
            if let tokio_postgres::AsyncMessage::Notification(n) = message {
                let _ = tx.send((n.channel().to_owned(), n.payload().to_owned()));
            }
        }
    });
    listener.batch_execute("LISTEN news").await.unwrap();
    let sender = db.connect_via(proxy.addr).await;
    sender.batch_execute("NOTIFY news, 'hello'").await.unwrap();
    let received = tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(received, ("news".to_owned(), "hello".to_owned()));
}

#[tokio::test]
async fn a_wrong_password_is_refused_by_postgres() {
    let db = TestDatabase::create().await;
    let proxy = start_proxy(&db).await;
    let mut config = db.config_via(proxy.addr);
    config.password("not the password");
    let Err(error) = config.connect(tokio_postgres::NoTls).await else {
        panic!("a wrong password was accepted");
    };
    assert_eq!(
        error.code(),
        Some(&tokio_postgres::error::SqlState::INVALID_PASSWORD),
        "{error}"
    );
}

#[tokio::test]
async fn a_cancel_request_reaches_the_running_query() {
    let db = TestDatabase::create().await;
    let proxy = start_proxy(&db).await;
    let client = db.connect_via(proxy.addr).await;
    let token = client.cancel_token();
    let running = tokio::spawn(async move { client.batch_execute("SELECT pg_sleep(60)").await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    token.cancel_query(tokio_postgres::NoTls).await.unwrap();
    let outcome = tokio::time::timeout(Duration::from_secs(10), running)
        .await
        .expect("the query was not cancelled")
        .unwrap();
    let error = outcome.unwrap_err();
    assert_eq!(
        error.code(),
        Some(&tokio_postgres::error::SqlState::QUERY_CANCELED)
    );
}

/// Sessions spread over several threads, or on the caller's runtime, work alike; a cancel
/// request lands on another thread than its session and still reaches it.
#[tokio::test]
async fn sessions_on_several_threads_or_none_work_alike() {
    let db = TestDatabase::create().await;
    for threads in [0, 3] {
        let proxy = start_proxy_on(&db, None, threads).await;
        let mut clients = Vec::new();
        for _ in 0..6 {
            clients.push(db.connect_via(proxy.addr).await);
        }
        let work = clients.iter().enumerate().map(|(n, client)| async move {
            for round in 0..20 {
                let row = client
                    .query_one("SELECT $1::int * 1000 + $2::int", &[&(n as i32), &round])
                    .await
                    .unwrap();
                assert_eq!(row.get::<_, i32>(0), n as i32 * 1000 + round);
            }
        });
        futures::future::join_all(work).await;

        let sleeper = clients.pop().unwrap();
        let token = sleeper.cancel_token();
        let running =
            tokio::spawn(async move { sleeper.batch_execute("SELECT pg_sleep(60)").await });
        tokio::time::sleep(Duration::from_millis(300)).await;
        token.cancel_query(tokio_postgres::NoTls).await.unwrap();
        let outcome = tokio::time::timeout(Duration::from_secs(10), running)
            .await
            .unwrap_or_else(|_| panic!("the query was not cancelled with {threads} threads"))
            .unwrap();
        assert_eq!(
            outcome.unwrap_err().code(),
            Some(&tokio_postgres::error::SqlState::QUERY_CANCELED)
        );
    }
}

#[tokio::test]
async fn the_client_sees_the_proxys_cancel_key_not_the_servers() {
    let db = TestDatabase::create().await;
    let proxy = start_proxy(&db).await;
    let client = RawClient::connect(&db, proxy.addr).await;
    let key = client.startup.iter().find(|(tag, _)| *tag == b'K').unwrap();
    let pid = i32::from_be_bytes(key.1[..4].try_into().unwrap());
    let mut direct = RawClient::connect(&db, direct_addr(&db)).await;
    let replies = direct
        .exchange(
            &Script::default()
                .query("SELECT pid FROM pg_stat_activity WHERE application_name = 'raw' AND datname = current_database()")
                .bytes,
            1,
        )
        .await;
    let server_pids: Vec<i32> = replies
        .iter()
        .filter(|(tag, _)| *tag == b'D')
        .map(|(_, body)| String::from_utf8_lossy(&body[6..]).parse().unwrap())
        .collect();
    assert_eq!(server_pids.len(), 2, "{replies:?}");
    assert!(!server_pids.contains(&pid));
}

#[tokio::test]
async fn gssapi_encryption_is_declined_and_the_client_goes_on() {
    let db = TestDatabase::create().await;
    let proxy = start_proxy(&db).await;
    let mut tcp = TcpStream::connect(proxy.addr).await.unwrap();
    tcp.write_all(&[0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x30])
        .await
        .unwrap();
    let mut answer = [0u8; 1];
    tcp.read_exact(&mut answer).await.unwrap();
    assert_eq!(&answer, b"N");
    // Without TLS configured, SSLRequest is declined too.
    tcp.write_all(&[0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f])
        .await
        .unwrap();
    tcp.read_exact(&mut answer).await.unwrap();
    assert_eq!(&answer, b"N");
}

#[tokio::test]
async fn replies_far_larger_than_the_buffers_flow_once_the_client_reads() {
    // 64 replies of 256 kB, 16 MiB in all, sent for before the client reads anything: past
    // the kernel's socket buffers and the relay's 1 MiB high-water mark, so the relay's
    // writes to the client block and its reads from the server stop, and both must resume
    // when the client starts reading.
    const QUERIES: usize = 64;
    const WIDTH: usize = 256 * 1024;
    let db = TestDatabase::create().await;
    let proxy = start_proxy(&db).await;
    let mut client = RawClient::connect(&db, proxy.addr).await;
    let mut script = Script::default();
    for _ in 0..QUERIES {
        script = script.query(&format!("SELECT repeat('x', {WIDTH})"));
    }
    client.send(&script.bytes).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let read_all = async {
        let (mut rows, mut readies) = (0, 0);
        while readies < QUERIES {
            let (tag, body) = client.read_message().await;
            match tag {
                // Column count (2 bytes), value length (4), the value.
                b'D' => {
                    assert_eq!(body.len(), 2 + 4 + WIDTH);
                    assert!(body[6..].iter().all(|&b| b == b'x'));
                    rows += 1;
                }
                b'Z' => readies += 1,
                b'E' => panic!("query failed: {}", String::from_utf8_lossy(&body)),
                _ => {}
            }
        }
        rows
    };
    let rows = tokio::time::timeout(Duration::from_secs(60), read_all)
        .await
        .expect("the relay stalled with its buffers full");
    assert_eq!(rows, QUERIES);
}

#[tokio::test]
async fn a_session_the_server_ends_gets_the_servers_last_words_then_closes() {
    let db = TestDatabase::create().await;
    let proxy = start_proxy(&db).await;
    let mut client = RawClient::connect(&db, proxy.addr).await;
    let observer = db.connect().await;
    let ended = observer
        .query_one(
            "SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE application_name = 'raw' AND datname = current_database()) t",
            &[],
        )
        .await
        .unwrap()
        .get::<_, i64>(0);
    assert_eq!(ended, 1);
    let (tag, body) = tokio::time::timeout(Duration::from_secs(10), client.read_message())
        .await
        .expect("the server's FATAL did not reach the client");
    assert_eq!(tag, b'E');
    let fields = String::from_utf8_lossy(&body);
    assert!(
        fields.contains("SFATAL") && fields.contains("C57P01"),
        "{fields}"
    );
    let rest = tokio::time::timeout(Duration::from_secs(10), client.read_to_close())
        .await
        .expect("the proxy kept the client's connection open");
    assert!(rest.is_empty(), "more after the FATAL: {rest:?}");
}

#[tokio::test]
async fn closing_the_client_closes_its_server_connection() {
    let db = TestDatabase::create().await;
    let proxy = start_proxy(&db).await;
    let observer = db.connect().await;
    let count = || async {
        observer
            .query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'raw' AND datname = current_database()",
                &[],
            )
            .await
            .unwrap()
            .get::<_, i64>(0)
    };
    let client = RawClient::connect(&db, proxy.addr).await;
    assert_eq!(count().await, 1);
    drop(client);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while count().await != 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the server connection stayed open"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn psql(db: &TestDatabase) -> std::path::PathBuf {
    db.server()
        .bin_dir()
        .map(|dir| dir.join("psql"))
        .filter(|p| p.is_file())
        .unwrap_or_else(|| "psql".into())
}

#[tokio::test]
async fn tls_ends_at_the_proxy_and_scram_still_passes_through() {
    let db = TestDatabase::create().await;
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    let tls = TlsConfig::from_pem(
        cert.cert.pem().as_bytes(),
        cert.signing_key.serialize_pem().as_bytes(),
    )
    .unwrap();
    let proxy = start_proxy_with(&db, Some(tls)).await;
    let server = db.server();
    let conninfo = format!(
        "host=127.0.0.1 port={} user={} dbname={} sslmode=require",
        proxy.addr.port(),
        server.user(),
        db.name()
    );
    let psql = psql(&db);
    let output = tokio::task::spawn_blocking(move || {
        Command::new(psql)
            .arg(conninfo)
            .args(["-X", "-A", "-t", "-c", "\\conninfo", "-c", "SELECT 40 + 2"])
            .env("PGPASSWORD", server.password().unwrap_or(""))
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "psql failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("SSL connection"), "{stdout}");
    assert!(stdout.contains("42"), "{stdout}");
}

#[tokio::test]
async fn direct_tls_negotiation_opens_a_session() {
    use std::sync::Arc;

    let db = TestDatabase::create().await;
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    let tls = TlsConfig::from_pem(
        cert.cert.pem().as_bytes(),
        cert.signing_key.serialize_pem().as_bytes(),
    )
    .unwrap();
    let proxy = start_proxy_with(&db, Some(tls)).await;

    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert.cert.der().clone()).unwrap();
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"postgresql".to_vec()];
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = TcpStream::connect(proxy.addr).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    // No SSLRequest: the ClientHello is the first thing on the wire, as with libpq's
    // sslnegotiation=direct.
    let stream = connector.connect(name, tcp).await.unwrap();
    let mut client = RawClient::connect_over(&db, Box::new(stream)).await;
    let replies = client
        .exchange(&Script::default().query("SELECT 40 + 2").bytes, 1)
        .await;
    assert!(render(&replies).contains("42"), "{}", render(&replies));
}
