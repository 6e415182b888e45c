//! Sockets: a free loopback port, and a TCP connection from a chosen source address.

use std::net::{IpAddr, SocketAddr};

use tokio::net::{TcpSocket, TcpStream};

use super::*;

/// A free loopback TCP port (bound, then released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free loopback port")
        .port()
}

/// A TCP connection to `addr` from `local` (port chosen by the kernel).
pub async fn connect_from(local: IpAddr, addr: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().expect("socket");
    socket
        .bind(SocketAddr::new(local, 0))
        .unwrap_or_else(|e| panic!("bind {local}: {e}"));
    let stream = within("TCP connect", socket.connect(addr))
        .await
        .unwrap_or_else(|e| panic!("connect {addr} from {local}: {e}"));
    stream.set_nodelay(true).expect("nodelay");
    stream
}
