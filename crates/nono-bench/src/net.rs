//! Socket helpers shared by the measurements: timeouts, connecting, opening a CONNECT tunnel.

use std::future::Future;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Upper bound for any single connect, handshake or small read; a stall fails the run.
pub const IO_TIMEOUT: Duration = Duration::from_secs(30);

/// Largest CONNECT response head accepted from the proxy.
const MAX_HEAD: usize = 16 * 1024;

/// Awaits `fut`, failing with `what` if it takes longer than `limit`.
pub async fn timed<T>(
    limit: Duration,
    what: &str,
    fut: impl Future<Output = Result<T>>,
) -> Result<T> {
    match tokio::time::timeout(limit, fut).await {
        Ok(result) => result.with_context(|| what.to_string()),
        Err(_) => bail!("{what}: timed out after {limit:?}"),
    }
}

/// Connects to `127.0.0.1:port` with Nagle off, as latency-sensitive clients do.
pub async fn connect(port: u16) -> Result<TcpStream> {
    let stream = TcpStream::connect(("127.0.0.1", port))
        .await
        .with_context(|| format!("connect 127.0.0.1:{port}"))?;
    stream.set_nodelay(true).context("TCP_NODELAY")?;
    Ok(stream)
}

/// How a client reaches a local server: directly, or through the proxy with this
/// `Proxy-Authorization` value.
#[derive(Clone, Debug)]
pub enum Route {
    /// Connect straight to the server.
    Direct,
    /// CONNECT through the proxy on `port`.
    Proxy {
        /// The proxy's listening port.
        port: u16,
        /// The full `Proxy-Authorization` header value.
        auth: String,
    },
}

impl Route {
    /// Opens a byte stream to `127.0.0.1:target_port` along this route.
    ///
    /// Through the proxy, the stream is returned once the `200` head has been read. The servers
    /// used here never speak first, so any byte after the head is a protocol error.
    pub async fn open(&self, target_port: u16) -> Result<TcpStream> {
        self.open_to("127.0.0.1", target_port).await
    }

    /// Like [`Route::open`], but the CONNECT names `host:target_port`; directly, the stream
    /// still goes to `127.0.0.1:target_port` (every server here is local).
    pub async fn open_to(&self, host: &str, target_port: u16) -> Result<TcpStream> {
        match self {
            Route::Direct => connect(target_port).await,
            Route::Proxy { port, auth } => {
                let mut stream = connect(*port).await?;
                let request = format!(
                    "CONNECT {host}:{target_port} HTTP/1.1\r\nHost: {host}:{target_port}\r\n\
                     Proxy-Authorization: {auth}\r\n\r\n"
                );
                stream
                    .write_all(request.as_bytes())
                    .await
                    .context("write CONNECT")?;
                let mut head = Vec::with_capacity(256);
                let mut buf = [0u8; 1024];
                loop {
                    let n = stream
                        .read(&mut buf)
                        .await
                        .context("read CONNECT response")?;
                    if n == 0 {
                        bail!(
                            "proxy closed before answering CONNECT: {:?}",
                            String::from_utf8_lossy(&head)
                        );
                    }
                    head.extend_from_slice(&buf[..n]);
                    if let Some(end) = find(&head, b"\r\n\r\n") {
                        let status_line = String::from_utf8_lossy(&head[..end]);
                        let ok = status_line
                            .split_whitespace()
                            .nth(1)
                            .is_some_and(|code| code == "200");
                        if !ok {
                            bail!("CONNECT refused: {status_line}");
                        }
                        if end + 4 != head.len() {
                            bail!("proxy sent bytes after the CONNECT response head");
                        }
                        return Ok(stream);
                    }
                    if head.len() > MAX_HEAD {
                        bail!("CONNECT response head larger than {MAX_HEAD} bytes");
                    }
                }
            }
        }
    }
}

/// Position of `needle` in `haystack`.
pub fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}
