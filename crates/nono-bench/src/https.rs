//! The HTTPS client of the interception runs: three ways to reach the origin, and HTTP/1.1
//! GETs over the resulting TLS stream.
//!
//! - [`Via::Direct`]: TLS straight to the origin, trusting the origin's CA.
//! - [`Via::Tunnel`]: CONNECT `127.0.0.1:PORT` (a plain allow entry), then TLS end to end,
//!   trusting the origin's CA.
//! - [`Via::Intercept`]: CONNECT `NAME:PORT` (a credential route or URL-scoped entry), then TLS
//!   to the proxy, trusting the proxy's session CA; the proxy talks TLS to the origin.

use std::sync::Arc;

use anyhow::{bail, Context, Result};
use rustls::pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

use crate::net::{find, timed, Route, IO_TIMEOUT};
use crate::origin::header;

/// Size of each body read.
const READ_CHUNK: usize = 256 * 1024;
/// Largest response head accepted.
const MAX_HEAD: usize = 64 * 1024;

/// How the client reaches the origin.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Via {
    /// No proxy.
    Direct,
    /// A CONNECT tunnel, TLS end to end.
    Tunnel,
    /// A CONNECT the proxy intercepts.
    Intercept,
}

/// Everything needed to open a TLS stream to the origin along any [`Via`].
pub struct Paths {
    /// The origin's port on `127.0.0.1`.
    pub origin_port: u16,
    /// The CONNECT route through the proxy.
    pub proxy: Route,
    /// Trusts the origin's CA; ALPN `http/1.1`.
    pub origin_client: Arc<rustls::ClientConfig>,
    /// Trusts the proxy's session CA; ALPN `http/1.1`.
    pub proxy_client: Arc<rustls::ClientConfig>,
}

impl Paths {
    /// Connects along `via` and completes the TLS handshake for `name` (SNI and certificate).
    ///
    /// With `zero_linger` the client socket resets on close instead of entering TIME_WAIT, so
    /// thousands of new-connection cycles do not use up the client's ephemeral ports.
    pub async fn open(&self, via: Via, name: &str, zero_linger: bool) -> Result<Conn> {
        let fut = async {
            let (tcp, config) = match via {
                Via::Direct => (
                    Route::Direct.open(self.origin_port).await?,
                    &self.origin_client,
                ),
                Via::Tunnel => (
                    self.proxy.open_to("127.0.0.1", self.origin_port).await?,
                    &self.origin_client,
                ),
                Via::Intercept => (
                    self.proxy.open_to(name, self.origin_port).await?,
                    &self.proxy_client,
                ),
            };
            if zero_linger {
                tcp.set_zero_linger().context("SO_LINGER 0")?;
            }
            let server_name = ServerName::try_from(name.to_string())
                .with_context(|| format!("server name {name:?}"))?;
            let stream = TlsConnector::from(config.clone())
                .connect(server_name, tcp)
                .await
                .with_context(|| format!("TLS handshake with {name} via {via:?}"))?;
            Ok(Conn {
                host: format!("{name}:{}", self.origin_port),
                stream,
                buf: Vec::with_capacity(4096),
                scratch: Vec::new(),
            })
        };
        timed(IO_TIMEOUT, "connect + TLS handshake", fut).await
    }
}

/// A TLS client config trusting only `roots`, offering ALPN `http/1.1`.
pub fn client_config(roots: rustls::RootCertStore) -> Result<Arc<rustls::ClientConfig>> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("client protocol versions")?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// What a GET returned.
#[derive(Clone, Copy, Debug)]
pub struct Response {
    /// Body bytes read (and discarded).
    pub body_bytes: u64,
    /// The origin saw the injected credential (`X-Bench-Credential: 1`).
    pub credential: bool,
}

/// An open TLS connection to the origin (possibly through the proxy).
pub struct Conn {
    /// `Host` header value: the CONNECT target, which the intercepting proxy checks.
    host: String,
    stream: TlsStream<TcpStream>,
    /// Bytes read but not yet consumed.
    buf: Vec<u8>,
    /// Body bytes are read here and dropped.
    scratch: Vec<u8>,
}

impl Conn {
    /// Sends `GET path` (with `Connection: close` if `close`) and reads the whole response.
    ///
    /// Accepts `Content-Length` and chunked bodies, in case the proxy re-frames the response.
    pub async fn get(&mut self, path: &str, close: bool) -> Result<Response> {
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: {}\r\n{}\r\n",
            self.host,
            if close { "Connection: close\r\n" } else { "" }
        );
        self.stream
            .write_all(request.as_bytes())
            .await
            .context("write request")?;
        self.stream.flush().await.context("flush request")?;
        let head = self.read_head().await?;
        let status = head.split_whitespace().nth(1).unwrap_or("");
        if status != "200" {
            bail!("GET {path}: status {status}: {head}");
        }
        let credential = header(&head, "x-bench-credential") == Some("1");
        let body_bytes = if let Some(len) = header(&head, "content-length") {
            let len: u64 = len.parse().context("bad Content-Length")?;
            self.discard(len).await?;
            len
        } else if header(&head, "transfer-encoding").is_some_and(|v| v.contains("chunked")) {
            self.discard_chunked().await?
        } else {
            bail!("GET {path}: response has neither Content-Length nor chunked body: {head}");
        };
        Ok(Response {
            body_bytes,
            credential,
        })
    }

    /// Sends close_notify and FIN, so the server sees an orderly close after the handshake.
    pub async fn close(mut self) -> Result<()> {
        self.stream.shutdown().await.context("TLS shutdown")
    }

    /// Reads up to and including the blank line; returns the head, lowercased.
    async fn read_head(&mut self) -> Result<String> {
        let end = loop {
            if let Some(end) = find(&self.buf, b"\r\n\r\n") {
                break end;
            }
            if self.buf.len() > MAX_HEAD {
                bail!("response head larger than {MAX_HEAD} bytes");
            }
            self.fill().await?;
        };
        let head = String::from_utf8_lossy(&self.buf[..end]).to_ascii_lowercase();
        self.buf.drain(..end + 4);
        Ok(head)
    }

    /// Reads more bytes into `buf`; a close here is an error.
    async fn fill(&mut self) -> Result<()> {
        let mut chunk = [0u8; 16 * 1024];
        let n = self.stream.read(&mut chunk).await.context("read")?;
        if n == 0 {
            bail!("server closed mid-response");
        }
        self.buf.extend_from_slice(&chunk[..n]);
        Ok(())
    }

    /// Consumes `len` body bytes: the buffered ones, then straight from the stream.
    async fn discard(&mut self, len: u64) -> Result<()> {
        let buffered = usize::try_from(len)
            .unwrap_or(usize::MAX)
            .min(self.buf.len());
        self.buf.drain(..buffered);
        let mut remaining = len - buffered as u64;
        if remaining > 0 && self.scratch.is_empty() {
            self.scratch = vec![0u8; READ_CHUNK];
        }
        while remaining > 0 {
            let want = usize::try_from(remaining)
                .unwrap_or(READ_CHUNK)
                .min(READ_CHUNK);
            let n = self
                .stream
                .read(&mut self.scratch[..want])
                .await
                .context("read body")?;
            if n == 0 {
                bail!("server closed with {remaining} body bytes outstanding");
            }
            remaining -= n as u64;
        }
        Ok(())
    }

    /// Consumes a chunked body (no trailers expected); returns its decoded length.
    async fn discard_chunked(&mut self) -> Result<u64> {
        let mut total = 0u64;
        loop {
            let line = self.read_line().await?;
            let size_text = line.split(';').next().unwrap_or("").trim();
            let size = u64::from_str_radix(size_text, 16)
                .with_context(|| format!("bad chunk size {size_text:?}"))?;
            if size == 0 {
                // Trailers, if any, end with an empty line.
                while !self.read_line().await?.is_empty() {}
                return Ok(total);
            }
            self.discard(size).await?;
            if !self.read_line().await?.is_empty() {
                bail!("chunk not followed by CRLF");
            }
            total += size;
        }
    }

    /// Reads one CRLF-terminated line (without the CRLF).
    async fn read_line(&mut self) -> Result<String> {
        loop {
            if let Some(end) = find(&self.buf, b"\r\n") {
                let line = String::from_utf8_lossy(&self.buf[..end]).into_owned();
                self.buf.drain(..end + 2);
                return Ok(line);
            }
            if self.buf.len() > MAX_HEAD {
                bail!("line longer than {MAX_HEAD} bytes");
            }
            self.fill().await?;
        }
    }
}
