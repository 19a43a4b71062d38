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
            match TcpStream::connect(a).await {
                Ok(s) => {
                    let _ = s.set_nodelay(true);
                    crate::loopback::tune(&s, a.ip());
                    return Ok(s);
                }
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
