//! The benchmark's floor: a relay that only copies bytes between each client and its own
//! upstream connection, nothing decoded. Whatever the proxy costs beyond this is the
//! proxy's own work; what this costs is the extra loopback hop every relay pays.

use std::net::SocketAddr;

use tokio::net::{TcpListener, TcpStream};

/// Serves on `listener`, relaying every connection to `upstream`, until dropped.
pub async fn serve(listener: TcpListener, upstream: SocketAddr) {
    loop {
        let Ok((mut client, _)) = listener.accept().await else {
            continue;
        };
        tokio::spawn(async move {
            let Ok(mut server) = TcpStream::connect(upstream).await else {
                return;
            };
            let _ = client.set_nodelay(true);
            let _ = server.set_nodelay(true);
            let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
        });
    }
}
