//! Plain-HTTP forwarding: keep-alive GETs to a minimal local origin, directly or via the proxy.
//!
//! Through the proxy the client sends absolute-form `GET http://127.0.0.1:PORT/x` with
//! `Proxy-Authorization`; directly it sends origin-form `GET /x`. Each connection sends one
//! request at a time (no pipelining).

use std::time::Instant;

use anyhow::{bail, Context, Result};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::net::{connect, find, timed, Route, IO_TIMEOUT};

/// The origin's fixed response.
const RESPONSE: &[u8] =
    b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nok";
/// Requests per connection sent before timing starts.
const WARMUP: usize = 100;

/// Starts the origin on `127.0.0.1:0`; returns its port.
pub async fn spawn_origin() -> Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .context("bind origin")?;
    let port = listener.local_addr().context("origin addr")?.port();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let _ = tcp.set_nodelay(true);
            tokio::spawn(serve(tcp));
        }
    });
    Ok(port)
}

/// Answers every request head on the connection with [`RESPONSE`].
async fn serve(mut tcp: TcpStream) {
    let mut buf = Vec::with_capacity(4096);
    let mut chunk = [0u8; 4096];
    loop {
        while let Some(end) = find(&buf, b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
            let body_len = header(&head, "content-length")
                .and_then(|v| v.parse::<usize>().ok())
                .unwrap_or(0);
            if buf.len() < end + 4 + body_len {
                break;
            }
            buf.drain(..end + 4 + body_len);
            if tcp.write_all(RESPONSE).await.is_err() {
                return;
            }
        }
        match tcp.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

/// Result of a request-rate run.
#[derive(Clone, Copy, Debug)]
pub struct Rate {
    /// Completed requests per second.
    pub per_sec: f64,
    /// Times a connection had to be reopened because the server closed it.
    pub reconnects: usize,
}

/// Sends `total` GETs over `connections` kept-alive connections; returns the rate.
pub async fn measure(
    route: &Route,
    origin_port: u16,
    total: usize,
    connections: usize,
) -> Result<Rate> {
    let workers = connections.max(1);
    let per_worker = total / workers;
    let (connect_port, request) = match route {
        Route::Direct => (
            origin_port,
            format!("GET /x HTTP/1.1\r\nHost: 127.0.0.1:{origin_port}\r\n\r\n"),
        ),
        Route::Proxy { port, auth } => (
            *port,
            format!(
                "GET http://127.0.0.1:{origin_port}/x HTTP/1.1\r\nHost: 127.0.0.1:{origin_port}\r\n\
                 Proxy-Authorization: {auth}\r\n\r\n"
            ),
        ),
    };
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..workers {
        let request = request.clone();
        set.spawn(async move {
            let mut client = Client::new(connect_port, request.into_bytes()).await?;
            for _ in 0..WARMUP {
                client.get().await?;
            }
            client.reconnects = 0;
            Ok::<Client, anyhow::Error>(client)
        });
    }
    let mut clients = Vec::with_capacity(workers);
    while let Some(joined) = set.join_next().await {
        clients.push(joined.context("http warm-up panicked")??);
    }
    let start = Instant::now();
    for mut client in clients {
        set.spawn(async move {
            for _ in 0..per_worker {
                client.get().await?;
            }
            Ok::<Client, anyhow::Error>(client)
        });
    }
    let mut reconnects = 0;
    while let Some(joined) = set.join_next().await {
        reconnects += joined.context("http worker panicked")??.reconnects;
    }
    Ok(Rate {
        per_sec: (per_worker * workers) as f64 / start.elapsed().as_secs_f64(),
        reconnects,
    })
}

/// One keep-alive connection sending the same request repeatedly.
struct Client {
    port: u16,
    request: Vec<u8>,
    stream: TcpStream,
    buf: Vec<u8>,
    reconnects: usize,
}

impl Client {
    async fn new(port: u16, request: Vec<u8>) -> Result<Client> {
        let stream = timed(IO_TIMEOUT, "connect for HTTP", connect(port)).await?;
        Ok(Client {
            port,
            request,
            stream,
            buf: Vec::with_capacity(4096),
            reconnects: 0,
        })
    }

    /// Sends the request and reads one `200` response; reconnects if the server closed.
    async fn get(&mut self) -> Result<()> {
        let keep_alive = timed(IO_TIMEOUT, "HTTP request", self.exchange()).await?;
        if !keep_alive {
            self.stream = timed(IO_TIMEOUT, "reconnect for HTTP", connect(self.port)).await?;
            self.buf.clear();
            self.reconnects += 1;
        }
        Ok(())
    }

    /// One request/response; returns whether the connection may be reused.
    async fn exchange(&mut self) -> Result<bool> {
        self.stream
            .write_all(&self.request)
            .await
            .context("write request")?;
        let mut chunk = [0u8; 4096];
        let end = loop {
            if let Some(end) = find(&self.buf, b"\r\n\r\n") {
                break end;
            }
            let n = self
                .stream
                .read(&mut chunk)
                .await
                .context("read response")?;
            if n == 0 {
                bail!("server closed before a response head");
            }
            self.buf.extend_from_slice(&chunk[..n]);
        };
        let head = String::from_utf8_lossy(&self.buf[..end]).to_ascii_lowercase();
        let status = head.split_whitespace().nth(1).unwrap_or("");
        if status != "200" {
            bail!("response status {status}: {head}");
        }
        let len = header(&head, "content-length")
            .and_then(|v| v.parse::<usize>().ok())
            .context("response without Content-Length")?;
        let close = header(&head, "connection").is_some_and(|v| v.contains("close"));
        while self.buf.len() < end + 4 + len {
            let n = self.stream.read(&mut chunk).await.context("read body")?;
            if n == 0 {
                bail!("server closed mid-body");
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
        self.buf.drain(..end + 4 + len);
        Ok(!close)
    }
}

/// The value of header `name` in a lowercased head.
fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.split("\r\n").skip(1).find_map(|line| {
        let (n, v) = line.split_once(':')?;
        (n.trim() == name).then(|| v.trim())
    })
}
