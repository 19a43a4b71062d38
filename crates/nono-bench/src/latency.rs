//! New-connection cost: connect (+ CONNECT) + a 1-byte echo, as latency and as a rate.

use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::net::{timed, Route, IO_TIMEOUT};

/// Iterations run and discarded before sampling latency.
const WARMUP: usize = 100;

/// Starts a byte echo server on `127.0.0.1:0`; returns its port.
///
/// With `close_first` the server closes each connection after its first echo, so the
/// server side holds the TIME_WAIT state (on its listening port) and clients' ephemeral
/// ports are free again at once; otherwise thousands of cycles exhaust them, which slows
/// later rounds by up to 4x and the proxy route (two connections per cycle) twice as fast.
pub async fn spawn_echo(close_first: bool) -> Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .context("bind echo")?;
    let port = listener.local_addr().context("echo addr")?.port();
    tokio::spawn(async move {
        while let Ok((mut tcp, _)) = listener.accept().await {
            let _ = tcp.set_nodelay(true);
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                loop {
                    match tcp.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => {
                            if tcp.write_all(&buf[..n]).await.is_err() || close_first {
                                break;
                            }
                        }
                    }
                }
            });
        }
    });
    Ok(port)
}

/// Opens a stream along `route` to the echo server and completes one 1-byte round trip.
///
/// Returns the open stream so callers can keep it (idle tunnels) or drop it.
pub async fn open_and_echo(route: &Route, echo_port: u16) -> Result<TcpStream> {
    let fut = async {
        let mut stream = route.open(echo_port).await?;
        stream.write_all(b"x").await.context("write echo byte")?;
        let byte = stream.read_u8().await.context("read echo byte")?;
        if byte != b'x' {
            bail!("echo returned {byte:#x}");
        }
        Ok(stream)
    };
    timed(IO_TIMEOUT, "open + 1-byte echo", fut).await
}

/// Latency percentiles of a sample.
#[derive(Clone, Copy, Debug)]
pub struct Percentiles {
    /// Median.
    pub p50: Duration,
    /// 99th percentile.
    pub p99: Duration,
}

/// Times `iterations` sequential open + echo cycles (after a warm-up).
pub async fn measure_latency(
    route: &Route,
    echo_port: u16,
    iterations: usize,
) -> Result<Percentiles> {
    for _ in 0..WARMUP {
        open_and_echo(route, echo_port).await?;
    }
    let mut samples = Vec::with_capacity(iterations);
    for _ in 0..iterations {
        let start = Instant::now();
        let stream = open_and_echo(route, echo_port).await?;
        samples.push(start.elapsed());
        drop(stream);
    }
    samples.sort_unstable();
    let at = |q: f64| -> Duration {
        let idx = ((samples.len() as f64 - 1.0) * q).round() as usize;
        samples.get(idx).copied().unwrap_or_default()
    };
    Ok(Percentiles {
        p50: at(0.50),
        p99: at(0.99),
    })
}

/// Completes `total` open + echo cycles with `concurrency` in flight; returns cycles per second.
pub async fn measure_rate(
    route: &Route,
    echo_port: u16,
    total: usize,
    concurrency: usize,
) -> Result<f64> {
    let workers = concurrency.max(1);
    let per_worker = total / workers;
    let start = Instant::now();
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..workers {
        let route = route.clone();
        set.spawn(async move {
            for _ in 0..per_worker {
                open_and_echo(&route, echo_port).await?;
            }
            Ok::<(), anyhow::Error>(())
        });
    }
    while let Some(joined) = set.join_next().await {
        joined.context("rate worker panicked")??;
    }
    Ok((per_worker * workers) as f64 / start.elapsed().as_secs_f64())
}
