//! A local HTTPS origin for the interception runs: HTTP/1.1 keep-alive over TLS.
//!
//! - `GET /small` answers the 2-byte body `ok`.
//! - `GET /bytes?n=N` streams N bytes in [`CHUNK`]-sized writes.
//! - Anything else answers `404`.
//!
//! Every response carries `X-Bench-Credential: 1` or `0`: whether the request had
//! `Authorization: Bearer <expected>`, so the bench can check that interception injected it.
//! A request with `Connection: close` is answered, then the origin closes first (the origin's
//! side then holds TIME_WAIT, not the proxy's or the client's ephemeral port).

use std::sync::Arc;

use anyhow::{bail, Context, Result};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use crate::net::find;

/// Size of each body write.
const CHUNK: usize = 256 * 1024;
/// Largest request head accepted.
const MAX_HEAD: usize = 64 * 1024;

/// Starts the origin on `127.0.0.1:0` with `tls` (ALPN forced to HTTP/1.1); returns its port.
pub async fn spawn(tls: Arc<rustls::ServerConfig>, credential: &str) -> Result<u16> {
    let mut config = (*tls).clone();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let acceptor = TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .context("bind HTTPS origin")?;
    let port = listener.local_addr().context("origin addr")?.port();
    let expected: Arc<str> = format!("bearer {}", credential.to_ascii_lowercase()).into();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let _ = tcp.set_nodelay(true);
            let acceptor = acceptor.clone();
            let expected = expected.clone();
            tokio::spawn(async move {
                // A client that drops mid-handshake or mid-body is normal in these runs.
                if let Ok(tls) = acceptor.accept(tcp).await {
                    let _ = serve(tls, &expected).await;
                }
            });
        }
    });
    Ok(port)
}

/// Answers requests on one connection until the client closes or asks to.
async fn serve<S: AsyncRead + AsyncWrite + Unpin>(mut stream: S, expected: &str) -> Result<()> {
    let body = vec![0x5au8; CHUNK];
    let mut buf = Vec::with_capacity(4096);
    let mut chunk = vec![0u8; 16 * 1024];
    loop {
        let end = loop {
            if let Some(end) = find(&buf, b"\r\n\r\n") {
                break end;
            }
            if buf.len() > MAX_HEAD {
                bail!("request head larger than {MAX_HEAD} bytes");
            }
            let n = stream.read(&mut chunk).await.context("read request")?;
            if n == 0 {
                return Ok(());
            }
            buf.extend_from_slice(&chunk[..n]);
        };
        let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
        buf.drain(..end + 4);
        let target = head.split_whitespace().nth(1).unwrap_or("").to_string();
        let authorized = header(&head, "authorization") == Some(expected);
        let close = header(&head, "connection").is_some_and(|v| v.contains("close"));
        let length = match target.as_str() {
            "/small" => Some(2),
            t => t
                .strip_prefix("/bytes?n=")
                .and_then(|n| n.parse::<u64>().ok()),
        };
        let status = if length.is_some() {
            "200 OK"
        } else {
            "404 Not Found"
        };
        let length = length.unwrap_or(0);
        let response_head = format!(
            "HTTP/1.1 {status}\r\nContent-Type: application/octet-stream\r\n\
             Content-Length: {length}\r\nX-Bench-Credential: {}\r\n{}\r\n",
            u8::from(authorized),
            if close { "Connection: close\r\n" } else { "" }
        );
        stream
            .write_all(response_head.as_bytes())
            .await
            .context("write head")?;
        if target == "/small" {
            stream.write_all(b"ok").await.context("write body")?;
        } else {
            let mut remaining = length;
            while remaining > 0 {
                let n = usize::try_from(remaining).unwrap_or(CHUNK).min(CHUNK);
                stream.write_all(&body[..n]).await.context("write body")?;
                remaining -= n as u64;
            }
        }
        stream.flush().await.context("flush response")?;
        if close {
            let _ = stream.shutdown().await;
            return Ok(());
        }
    }
}

/// The value of header `name` in a lowercased head.
pub fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.split("\r\n").skip(1).find_map(|line| {
        let (n, v) = line.split_once(':')?;
        (n.trim() == name).then(|| v.trim())
    })
}
