//! Connecting to checked upstream addresses: in order, next on failure, one overall deadline.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::TcpStream;

/// Why no connection could be made.
#[derive(Debug)]
pub enum ConnectFailure {
    /// The deadline passed (504).
    Timeout,
    /// Every address failed (502); the last error.
    Failed(io::Error),
}

/// Connects to the first address that accepts, never resolving anything again.
pub async fn connect_checked(
    addrs: &[SocketAddr],
    deadline: Duration,
) -> Result<TcpStream, ConnectFailure> {
    let attempt = async {
        let mut last = io::Error::new(io::ErrorKind::NotFound, "no address to connect to");
        for a in addrs {
            match connect_one(*a).await {
                Ok(s) => return Ok(s),
                Err(e) => last = e,
            }
        }
        Err(ConnectFailure::Failed(last))
    };
    match tokio::time::timeout(deadline, attempt).await {
        Ok(r) => r,
        Err(_) => Err(ConnectFailure::Timeout),
    }
}

/// One connection attempt; loopback sockets get their congestion control before the
/// handshake (see [`crate::loopback`]).
async fn connect_one(addr: SocketAddr) -> io::Result<TcpStream> {
    let socket = match addr {
        SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
        SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
    };
    socket.set_nodelay(true)?;
    crate::loopback::tune(&socket, addr.ip());
    socket.connect(addr).await
}
