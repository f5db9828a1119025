//! Gzip on the wire between the client and the emulator: a page of results crosses the
//! network compressed and comes out of the client as the CSV the emulator wrote.
//!
//! The bytes on the wire are counted by a TCP relay in front of the emulator. The client
//! must reach the emulator through it for every call, and it follows the token's
//! `instance_url`, so the emulator announces the relay's address as its own: it listens
//! on 127.0.0.1:P and names its public host 127.0.0.2, where the relay listens on the same
//! port P (every 127.x address is the loopback on Linux).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use sfpg_salesforce::bulk::QueryOperation;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::bulk::{csv_rows, read_page};
use super::*;

/// Relays connections from `listener` to `target`, adding the bytes that come back from
/// `target` to the returned counter.
fn relay(listener: TcpListener, target: SocketAddr) -> Arc<AtomicU64> {
    let received = Arc::new(AtomicU64::new(0));
    let counter = Arc::clone(&received);
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let counter = Arc::clone(&counter);
            tokio::spawn(async move {
                let server = TcpStream::connect(target).await.unwrap();
                let (mut client_read, mut client_write) = client.into_split();
                let (mut server_read, mut server_write) = server.into_split();
                tokio::spawn(async move {
                    let _ = tokio::io::copy(&mut client_read, &mut server_write).await;
                    let _ = server_write.shutdown().await;
                });
                let mut buffer = vec![0u8; 16 * 1024];
                loop {
                    let n = match server_read.read(&mut buffer).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => n,
                    };
                    counter.fetch_add(n as u64, Ordering::Relaxed);
                    if client_write.write_all(&buffer[..n]).await.is_err() {
                        break;
                    }
                }
                let _ = client_write.shutdown().await;
            });
        }
    });
    received
}

#[tokio::test]
async fn a_page_crosses_the_wire_gzipped_and_reads_as_csv() {
    let emulator = emulator::start(EmulatorConfig {
        org: OrgSource::Generated {
            records: 3000,
            seed: 7,
        },
        bulk_processing_delay: Duration::ZERO,
        public_host: Some("127.0.0.2".into()),
        ..EmulatorConfig::default()
    })
    .await
    .unwrap();
    let port = emulator.local_addr().port();
    let listener = TcpListener::bind(("127.0.0.2", port)).await.unwrap();
    let received = relay(listener, emulator.local_addr());
    assert!(emulator.login_url().starts_with("http://127.0.0.2:"));
    let client = client(&emulator);
    let bulk = client.bulk();
    let job = bulk
        .create_query_job(
            "SELECT Id, Name, Description, BillingCity, Industry, CreatedDate FROM Account",
            QueryOperation::Query,
        )
        .await
        .unwrap();
    let job = bulk
        .wait_for_query_job(&job.id, Duration::from_secs(1))
        .await
        .unwrap();
    let before = received.load(Ordering::Relaxed);

    let mut page = bulk.query_results(&job.id, None, None).await.unwrap();
    let csv = read_page(&mut page).await.unwrap();

    let on_the_wire = received.load(Ordering::Relaxed) - before;
    let rows = csv_rows(&csv);
    assert_eq!(rows.len() as u64 - 1, job.number_records_processed);
    assert!(job.number_records_processed > 100);
    assert!(
        on_the_wire * 2 < csv.len() as u64,
        "{on_the_wire} bytes on the wire for {} bytes of CSV",
        csv.len()
    );
}
