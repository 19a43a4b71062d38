//! Bulk throughput: the client streams N bytes to a local sink, plain TCP or TLS.
//!
//! Protocol: the client sends N as a big-endian u64, then N bytes; the sink reads them all and
//! answers one byte. The clock runs from before the connection is opened until that byte
//! arrives, so it needs no half-close support from the proxy.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio_rustls::{TlsAcceptor, TlsConnector};

use crate::net::{timed, Route, IO_TIMEOUT};
use crate::tls::{TlsPair, SERVER_NAME};

/// Size of each write and read.
const CHUNK: usize = 256 * 1024;
/// Upper bound for one whole transfer (1 GiB at 10 MiB/s would still finish).
const TRANSFER_TIMEOUT: Duration = Duration::from_secs(600);

/// Starts a sink on `127.0.0.1:0`, TLS when `tls` is given; returns its port.
pub async fn spawn_sink(tls: Option<Arc<rustls::ServerConfig>>) -> Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .context("bind sink")?;
    let port = listener.local_addr().context("sink addr")?.port();
    let acceptor = tls.map(TlsAcceptor::from);
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let _ = tcp.set_nodelay(true);
                let result = match acceptor {
                    Some(acceptor) => match acceptor.accept(tcp).await {
                        Ok(tls) => sink(tls).await,
                        Err(e) => Err(e.into()),
                    },
                    None => sink(tcp).await,
                };
                if let Err(e) = result {
                    eprintln!("sink: {e:#}");
                }
            });
        }
    });
    Ok(port)
}

/// Reads the length, discards that many bytes, acknowledges with one byte.
async fn sink<S: AsyncRead + AsyncWrite + Unpin>(mut stream: S) -> Result<()> {
    let mut remaining = stream.read_u64().await.context("read length")?;
    let mut buf = vec![0u8; CHUNK];
    while remaining > 0 {
        let want = usize::try_from(remaining).unwrap_or(CHUNK).min(CHUNK);
        let n = stream
            .read(&mut buf[..want])
            .await
            .context("read payload")?;
        if n == 0 {
            bail!("client closed with {remaining} bytes outstanding");
        }
        remaining -= n as u64;
    }
    stream.write_all(&[1]).await.context("write ack")?;
    stream.flush().await.context("flush ack")?;
    stream.shutdown().await.context("shutdown")?;
    Ok(())
}

/// Sends `bytes` to the sink on `sink_port` along `route`; returns MiB/s.
///
/// With `tls`, the client does a TLS handshake (through the tunnel, if any) first.
pub async fn measure(
    route: &Route,
    sink_port: u16,
    tls: Option<&TlsPair>,
    bytes: u64,
) -> Result<f64> {
    let start = Instant::now();
    let tcp = timed(IO_TIMEOUT, "open stream to sink", route.open(sink_port)).await?;
    let transfer = async {
        match tls {
            Some(pair) => {
                let name = ServerName::try_from(SERVER_NAME).context("server name")?;
                let connector = TlsConnector::from(pair.client.clone());
                let stream = connector
                    .connect(name, tcp)
                    .await
                    .context("TLS handshake")?;
                send(stream, bytes).await
            }
            None => send(tcp, bytes).await,
        }
    };
    timed(TRANSFER_TIMEOUT, "bulk transfer", transfer).await?;
    let secs = start.elapsed().as_secs_f64();
    Ok(bytes as f64 / (1024.0 * 1024.0) / secs)
}

/// The client half of the sink protocol.
async fn send<S: AsyncRead + AsyncWrite + Unpin>(mut stream: S, bytes: u64) -> Result<()> {
    stream.write_u64(bytes).await.context("write length")?;
    let buf = vec![0x5au8; CHUNK];
    let mut remaining = bytes;
    while remaining > 0 {
        let n = usize::try_from(remaining).unwrap_or(CHUNK).min(CHUNK);
        stream.write_all(&buf[..n]).await.context("write payload")?;
        remaining -= n as u64;
    }
    stream.flush().await.context("flush payload")?;
    let ack = stream.read_u8().await.context("read ack")?;
    if ack != 1 {
        bail!("sink answered {ack}, expected 1");
    }
    Ok(())
}
