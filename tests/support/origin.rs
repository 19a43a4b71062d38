//! A minimal recording HTTP/1.1 origin server.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use super::listen::Listener;
use super::TestCa;

/// Largest request head the origin accepts before dropping the connection.
const MAX_HEAD: usize = 64 * 1024;
/// Gap between the events `/sse` streams.
const SSE_INTERVAL: Duration = Duration::from_millis(200);
/// Number of events `/sse` streams.
const SSE_EVENTS: usize = 5;

/// One request as the origin received it.
#[derive(Clone, Debug)]
pub struct RecordedRequest {
    /// The method, e.g. `GET`.
    pub method: String,
    /// The request target exactly as sent (origin-form `/x?y`, or absolute-form if a proxy
    /// forwarded it unchanged).
    pub path: String,
    /// Header names lowercased, values trimmed, in arrival order (duplicates kept).
    pub headers: Vec<(String, String)>,
    /// The body after removing any chunked framing.
    pub body: Vec<u8>,
}

impl RecordedRequest {
    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// HTTP/1.1 origin on `127.0.0.1:0` that records each request.
///
/// Keeps connections alive and reads `Content-Length` and chunked bodies (answering
/// `Expect: 100-continue`). Responses:
/// - `/redirect`: `302` with `Location: http://example.invalid/elsewhere`;
/// - `/proxy-auth`: `407` with a `Proxy-Authenticate` challenge (an origin misbehaving);
/// - `/switch`: `101 Switching Protocols` although nothing asked for it;
/// - `.../echo-location` (under any base path): `302` whose `Location` and `Link` repeat the request target (path and
///   query), as redirecting APIs and paginated ones do;
/// - `/sse`: `200`, `text/event-stream`, chunked, five `data: N\n\n` events 200 ms apart;
/// - anything else: `200` with JSON
///   `{"method", "path", "headers": {lowercased name: value}, "body_len"}`
///   (repeated headers joined with `, `).
pub struct HttpOrigin {
    /// The port it listens on.
    pub port: u16,
    requests: Arc<Mutex<Vec<RecordedRequest>>>,
    listener: Listener,
}

impl HttpOrigin {
    /// A plain-HTTP origin.
    pub fn start() -> Self {
        let requests: Arc<Mutex<Vec<RecordedRequest>>> = Arc::default();
        let log = requests.clone();
        let listener = Listener::spawn(move |mut tcp: TcpStream| {
            serve(&mut tcp, &log);
            let _ = tcp.shutdown(Shutdown::Both);
        });
        HttpOrigin {
            port: listener.port,
            requests,
            listener,
        }
    }

    /// An HTTPS origin whose certificate (from `ca`) is valid for `localhost` and `127.0.0.1`.
    pub fn start_tls(ca: &TestCa) -> Self {
        Self::start_tls_for(ca, &["localhost", "127.0.0.1"])
    }

    /// An HTTPS origin whose certificate is valid for `names`.
    pub fn start_tls_for(ca: &TestCa, names: &[&str]) -> Self {
        let config = ca.server_config(names);
        let requests: Arc<Mutex<Vec<RecordedRequest>>> = Arc::default();
        let log = requests.clone();
        let listener = Listener::spawn(move |tcp| {
            let conn = rustls::ServerConnection::new(config.clone()).expect("server connection");
            let mut tls = rustls::StreamOwned::new(conn, tcp);
            serve(&mut tls, &log);
            tls.conn.send_close_notify();
            let _ = tls.flush();
            let _ = tls.sock.shutdown(Shutdown::Both);
        });
        HttpOrigin {
            port: listener.port,
            requests,
            listener,
        }
    }

    /// Every request received so far, in order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.requests.lock().expect("request log").clone()
    }

    /// Number of connections accepted so far.
    pub fn accepted(&self) -> usize {
        self.listener.accepted()
    }
}

/// A stream with a read buffer, so the head parser can hand leftover bytes to the body.
struct Buffered<'a, S> {
    stream: &'a mut S,
    buf: Vec<u8>,
}

impl<S: Read + Write> Buffered<'_, S> {
    /// Reads more bytes into the buffer; false on EOF or error.
    fn fill(&mut self) -> bool {
        let mut chunk = [0u8; 16 * 1024];
        match self.stream.read(&mut chunk) {
            Ok(0) | Err(_) => false,
            Ok(n) => {
                self.buf.extend_from_slice(&chunk[..n]);
                true
            }
        }
    }

    /// Takes bytes up to and including `delim`, reading as needed; `None` on EOF or overflow.
    fn take_until(&mut self, delim: &[u8]) -> Option<Vec<u8>> {
        loop {
            if let Some(at) = find(&self.buf, delim) {
                return Some(self.buf.drain(..at + delim.len()).collect());
            }
            if self.buf.len() > MAX_HEAD || !self.fill() {
                return None;
            }
        }
    }

    /// Takes exactly `n` bytes; `None` on EOF.
    fn take(&mut self, n: usize) -> Option<Vec<u8>> {
        while self.buf.len() < n {
            if !self.fill() {
                return None;
            }
        }
        Some(self.buf.drain(..n).collect())
    }
}

/// Serves requests on one connection until the client closes or asks to.
fn serve<S: Read + Write>(stream: &mut S, log: &Mutex<Vec<RecordedRequest>>) {
    let mut conn = Buffered {
        stream,
        buf: Vec::new(),
    };
    while let Some(head) = conn.take_until(b"\r\n\r\n") {
        let head = String::from_utf8_lossy(&head).into_owned();
        let mut lines = head.split("\r\n");
        let mut parts = lines.next().unwrap_or("").split_whitespace();
        let method = parts.next().unwrap_or("").to_string();
        let path = parts.next().unwrap_or("").to_string();
        let version = parts.next().unwrap_or("").to_string();
        let headers: Vec<(String, String)> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
            .collect();
        let get = |name: &str| {
            headers
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.to_ascii_lowercase())
        };
        if get("expect").as_deref() == Some("100-continue") {
            let _ = conn.stream.write_all(b"HTTP/1.1 100 Continue\r\n\r\n");
        }
        let body = if get("transfer-encoding").is_some_and(|te| te.contains("chunked")) {
            read_chunked(&mut conn)
        } else {
            let len = get("content-length")
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            conn.take(len)
        };
        let Some(body) = body else { return };
        let connection = get("connection").unwrap_or_default();
        let keep_alive = if version == "HTTP/1.0" {
            connection.contains("keep-alive")
        } else {
            !connection.contains("close")
        };
        let request = RecordedRequest {
            method,
            path,
            headers,
            body,
        };
        log.lock().expect("request log").push(request.clone());
        if respond(conn.stream, &request, keep_alive).is_err() || !keep_alive {
            return;
        }
    }
}

/// Reads a chunked body (discarding trailers); `None` on EOF or bad framing.
fn read_chunked<S: Read + Write>(conn: &mut Buffered<'_, S>) -> Option<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let line = conn.take_until(b"\r\n")?;
        let line = String::from_utf8_lossy(&line);
        let size = line.trim().split(';').next().unwrap_or("").trim();
        let size = usize::from_str_radix(size, 16).ok()?;
        if size == 0 {
            // Trailer fields, then the empty line.
            loop {
                if conn.take_until(b"\r\n")?.len() == 2 {
                    return Some(body);
                }
            }
        }
        body.extend_from_slice(&conn.take(size)?);
        conn.take(2)?;
    }
}

/// Writes the response for `request`.
fn respond<S: Write>(
    stream: &mut S,
    request: &RecordedRequest,
    keep_alive: bool,
) -> std::io::Result<()> {
    let connection = if keep_alive { "keep-alive" } else { "close" };
    match route(&request.path) {
        "/redirect" => {
            let head = format!(
                "HTTP/1.1 302 Found\r\nLocation: http://example.invalid/elsewhere\r\n\
                 Content-Length: 0\r\nConnection: {connection}\r\n\r\n"
            );
            stream.write_all(head.as_bytes())?;
        }
        p if p.ends_with("/echo-location") => {
            let head = format!(
                "HTTP/1.1 302 Found\r\nLocation: {0}\r\nLink: <{0}&page=2>; rel=next\r\n\
                 Content-Length: 0\r\nConnection: {connection}\r\n\r\n",
                request.path
            );
            stream.write_all(head.as_bytes())?;
        }
        "/proxy-auth" => {
            let head = format!(
                "HTTP/1.1 407 Proxy Authentication Required\r\n\
                 Proxy-Authenticate: Basic realm=\"origin\"\r\n\
                 Content-Length: 0\r\nConnection: {connection}\r\n\r\n"
            );
            stream.write_all(head.as_bytes())?;
        }
        "/switch" => {
            stream.write_all(
                b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: raw\r\nConnection: upgrade\r\n\r\nraw bytes",
            )?;
        }
        "/sse" => {
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n\
                 Transfer-Encoding: chunked\r\nConnection: {connection}\r\n\r\n"
            );
            stream.write_all(head.as_bytes())?;
            stream.flush()?;
            for i in 0..SSE_EVENTS {
                if i > 0 {
                    thread::sleep(SSE_INTERVAL);
                }
                let event = format!("data: {i}\n\n");
                write!(stream, "{:x}\r\n{event}\r\n", event.len())?;
                stream.flush()?;
            }
            stream.write_all(b"0\r\n\r\n")?;
        }
        _ => {
            let mut headers = serde_json::Map::new();
            for (name, value) in &request.headers {
                let joined = match headers.get(name).and_then(|v| v.as_str()) {
                    Some(prev) => format!("{prev}, {value}"),
                    None => value.clone(),
                };
                headers.insert(name.clone(), serde_json::Value::String(joined));
            }
            let body = serde_json::json!({
                "method": request.method,
                "path": request.path,
                "headers": headers,
                "body_len": request.body.len(),
            })
            .to_string();
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\
                 Connection: {connection}\r\n\r\n",
                body.len()
            );
            stream.write_all(head.as_bytes())?;
            stream.write_all(body.as_bytes())?;
        }
    }
    stream.flush()
}

/// The path part of a request target, without query, for routing (accepts absolute-form).
fn route(target: &str) -> &str {
    let path = match target.split_once("://") {
        Some((_, rest)) => rest.find('/').map_or("/", |i| &rest[i..]),
        None => target,
    };
    path.split(['?', '#']).next().unwrap_or(path)
}

/// Position of `needle` in `haystack`.
pub(super) fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}
