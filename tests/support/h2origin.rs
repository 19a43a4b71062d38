//! An HTTPS origin that speaks HTTP/1.1 and HTTP/2 (chosen by ALPN), with WebSocket, SSE
//! and streaming routes, built on hyper so both protocols behave like a real server.

use std::convert::Infallible;
use std::net::TcpListener;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{combinators::BoxBody, BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::CertificateDer;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{mpsc, oneshot};

use super::websocket::{
    accept_key, decode_header, encode_frame, extended_len_bytes, payload_len, MAX_PAYLOAD,
    OP_CLOSE, OP_PING, OP_PONG, OP_TEXT,
};
use super::TestCa;

/// Pause between the two events of `/sse`.
pub const SSE_GAP: Duration = Duration::from_millis(500);
/// The text frame `/ws` sends first, before echoing anything.
pub const WS_GREETING: &str = "hello from the origin";
/// Chunk size of `/download`.
const DOWNLOAD_CHUNK: usize = 64 * 1024;
/// Worker threads of the origin's runtime.
const WORKERS: usize = 2;

type Body = BoxBody<Bytes, std::io::Error>;

/// One request as the origin received it.
#[derive(Clone, Debug)]
pub struct H2Request {
    /// `HTTP/1.1` or `HTTP/2`.
    pub version: String,
    /// The method.
    pub method: String,
    /// Path and query.
    pub path: String,
    /// Header names lowercased, in arrival order (for HTTP/2 `host` is the `:authority`).
    pub headers: Vec<(String, String)>,
    /// Bytes of request body read (0 for routes that do not read one).
    pub body_len: u64,
}

impl H2Request {
    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// FNV-1a 64, the checksum `/upload` reports and tests compute for `/download`.
#[derive(Clone, Copy, Debug)]
pub struct Fnv(u64);

impl Fnv {
    /// The initial state.
    pub fn new() -> Fnv {
        Fnv(0xcbf2_9ce4_8422_2325)
    }

    /// Folds `data` in.
    pub fn update(&mut self, data: &[u8]) {
        for b in data {
            self.0 ^= u64::from(*b);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }

    /// The checksum so far.
    pub fn finish(self) -> u64 {
        self.0
    }
}

impl Default for Fnv {
    fn default() -> Self {
        Self::new()
    }
}

/// Byte `i` of the `/download` stream (and of the uploads tests send).
pub fn pattern_byte(i: u64) -> u8 {
    (i % 251) as u8
}

/// HTTPS origin on `127.0.0.1:0`, certificate from a [`TestCa`] for `localhost` and
/// `127.0.0.1`, offering ALPN `h2` and `http/1.1`. Routes, matched on the last path segment
/// (so any base path works):
/// - `.../ws`: WebSocket upgrade (HTTP/1.1); sends [`WS_GREETING`], then echoes every data
///   frame with its opcode, answers pings, and returns a close frame for a close frame;
/// - `.../sse`: `text/event-stream`, `data: first`, a pause of [`SSE_GAP`], `data: second`;
/// - `.../download?bytes=N`: `N` bytes of [`pattern_byte`], streamed in 64 KiB frames;
/// - anything else: reads the whole body and answers JSON `{"version", "method", "path",
///   "headers": {name: value}, "body_len", "body_fnv"}` (`body_fnv` as a decimal string).
pub struct H2Origin {
    /// The port it listens on.
    pub port: u16,
    leaf: CertificateDer<'static>,
    requests: Arc<Mutex<Vec<H2Request>>>,
    accepted: Arc<AtomicUsize>,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<thread::JoinHandle<()>>,
}

impl H2Origin {
    /// Starts the origin; its certificate is signed by `ca`.
    pub fn start(ca: &TestCa) -> H2Origin {
        let (chain, key) = ca.leaf(&["localhost", "127.0.0.1"]);
        let leaf = chain[0].clone();
        let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .expect("server cert");
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));

        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let port = listener.local_addr().expect("local_addr").port();
        listener.set_nonblocking(true).expect("nonblocking");
        let requests: Arc<Mutex<Vec<H2Request>>> = Arc::default();
        let accepted = Arc::new(AtomicUsize::new(0));
        let (stop, stopped) = oneshot::channel();
        let state = State {
            requests: requests.clone(),
        };
        let count = accepted.clone();
        let thread = thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(WORKERS)
                .enable_all()
                .build()
                .expect("origin runtime");
            rt.block_on(accept_loop(listener, acceptor, state, count, stopped));
            // Open connections (a WebSocket, a stalled stream) must not hold up the drop.
            rt.shutdown_background();
        });
        H2Origin {
            port,
            leaf,
            requests,
            accepted,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    /// The origin's own leaf certificate (DER), to tell it apart from a proxy's.
    pub fn leaf_der(&self) -> CertificateDer<'static> {
        self.leaf.clone()
    }

    /// Every request received so far, in order.
    pub fn requests(&self) -> Vec<H2Request> {
        self.requests.lock().expect("request log").clone()
    }

    /// The last request received; panics if there was none.
    pub fn last(&self) -> H2Request {
        self.requests()
            .pop()
            .expect("the origin received no request")
    }

    /// TCP connections accepted so far.
    pub fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }
}

impl Drop for H2Origin {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[derive(Clone)]
struct State {
    requests: Arc<Mutex<Vec<H2Request>>>,
}

impl State {
    fn record(&self, req: H2Request) {
        self.requests.lock().expect("request log").push(req);
    }
}

async fn accept_loop(
    listener: TcpListener,
    acceptor: tokio_rustls::TlsAcceptor,
    state: State,
    accepted: Arc<AtomicUsize>,
    mut stopped: oneshot::Receiver<()>,
) {
    let listener = tokio::net::TcpListener::from_std(listener).expect("tokio listener");
    loop {
        let tcp = tokio::select! {
            _ = &mut stopped => return,
            r = listener.accept() => match r {
                Ok((tcp, _)) => tcp,
                Err(_) => continue,
            },
        };
        accepted.fetch_add(1, Ordering::SeqCst);
        let (acceptor, state) = (acceptor.clone(), state.clone());
        tokio::spawn(async move {
            let Ok(tls) = acceptor.accept(tcp).await else {
                return;
            };
            let h2 = tls.get_ref().1.alpn_protocol() == Some(b"h2");
            let io = TokioIo::new(tls);
            let service = hyper::service::service_fn(move |req| handle(req, state.clone()));
            if h2 {
                let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                    .serve_connection(io, service)
                    .await;
            } else {
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(io, service)
                    .with_upgrades()
                    .await;
            }
        });
    }
}

fn version_label(v: hyper::Version) -> &'static str {
    match v {
        hyper::Version::HTTP_2 => "HTTP/2",
        hyper::Version::HTTP_11 => "HTTP/1.1",
        hyper::Version::HTTP_10 => "HTTP/1.0",
        _ => "other",
    }
}

async fn handle(mut req: Request<Incoming>, state: State) -> Result<Response<Body>, Infallible> {
    let path = req
        .uri()
        .path_and_query()
        .map_or("/".to_string(), |p| p.as_str().to_string());
    let mut headers: Vec<(String, String)> = req
        .headers()
        .iter()
        .map(|(n, v)| {
            (
                n.as_str().to_string(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    if req.version() == hyper::Version::HTTP_2 && !headers.iter().any(|(n, _)| n == "host") {
        if let Some(authority) = req.uri().authority() {
            headers.push(("host".into(), authority.to_string()));
        }
    }
    let mut record = H2Request {
        version: version_label(req.version()).to_string(),
        method: req.method().to_string(),
        path: path.clone(),
        headers,
        body_len: 0,
    };
    let route = req
        .uri()
        .path()
        .rsplit('/')
        .next()
        .unwrap_or("")
        .to_string();
    let response = match route.as_str() {
        "ws" => {
            let key = record.header("sec-websocket-key").map(str::to_string);
            let upgrade = record
                .header("upgrade")
                .is_some_and(|u| u.eq_ignore_ascii_case("websocket"));
            state.record(record);
            match key.filter(|_| upgrade) {
                Some(key) => {
                    let on_upgrade = hyper::upgrade::on(&mut req);
                    tokio::spawn(async move {
                        if let Ok(upgraded) = on_upgrade.await {
                            let _ = ws_echo(TokioIo::new(upgraded)).await;
                        }
                    });
                    Response::builder()
                        .status(StatusCode::SWITCHING_PROTOCOLS)
                        .header("upgrade", "websocket")
                        .header("connection", "Upgrade")
                        .header("sec-websocket-accept", accept_key(&key))
                        .body(empty())
                }
                None => Response::builder()
                    .status(StatusCode::BAD_REQUEST)
                    .body(full("not a websocket upgrade")),
            }
        }
        "sse" => {
            state.record(record);
            let (tx, rx) = mpsc::channel::<Bytes>(4);
            tokio::spawn(async move {
                if tx
                    .send(Bytes::from_static(b"data: first\n\n"))
                    .await
                    .is_ok()
                {
                    tokio::time::sleep(SSE_GAP).await;
                    let _ = tx.send(Bytes::from_static(b"data: second\n\n")).await;
                }
            });
            Response::builder()
                .header("content-type", "text/event-stream")
                .header("cache-control", "no-cache")
                .body(channel_body(rx))
        }
        "download" => {
            let total: u64 = req
                .uri()
                .query()
                .and_then(|q| q.split('&').find_map(|kv| kv.strip_prefix("bytes=")))
                .and_then(|n| n.parse().ok())
                .unwrap_or(0);
            state.record(record);
            let stream = futures_util::stream::unfold(0u64, move |sent| async move {
                if sent >= total {
                    return None;
                }
                let n = (total - sent).min(DOWNLOAD_CHUNK as u64);
                let chunk: Vec<u8> = (sent..sent + n).map(pattern_byte).collect();
                Some((
                    Ok::<_, std::io::Error>(Frame::data(Bytes::from(chunk))),
                    sent + n,
                ))
            });
            Response::builder()
                .header("content-type", "application/octet-stream")
                .header("content-length", total.to_string())
                .body(BodyExt::boxed(StreamBody::new(stream)))
        }
        _ => {
            let mut body = req.into_body();
            let mut fnv = Fnv::new();
            let mut len = 0u64;
            while let Some(frame) = body.frame().await {
                let Ok(frame) = frame else { break };
                if let Ok(data) = frame.into_data() {
                    len += data.len() as u64;
                    fnv.update(&data);
                }
            }
            record.body_len = len;
            let mut map = serde_json::Map::new();
            for (name, value) in &record.headers {
                let joined = match map.get(name).and_then(|v| v.as_str()) {
                    Some(prev) => format!("{prev}, {value}"),
                    None => value.clone(),
                };
                map.insert(name.clone(), serde_json::Value::String(joined));
            }
            let json = serde_json::json!({
                "version": record.version,
                "method": record.method,
                "path": record.path,
                "headers": map,
                "body_len": len,
                "body_fnv": fnv.finish().to_string(),
            })
            .to_string();
            state.record(record);
            Response::builder()
                .header("content-type", "application/json")
                .body(full(json))
        }
    };
    Ok(response.unwrap_or_else(|e| {
        let mut r = Response::new(full(format!("building the response: {e}")));
        *r.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
        r
    }))
}

fn empty() -> Body {
    full(Vec::new())
}

fn full(data: impl Into<Bytes>) -> Body {
    Full::new(data.into())
        .map_err(|never: Infallible| match never {})
        .boxed()
}

/// A body that yields each `Bytes` the channel delivers, as soon as it arrives.
fn channel_body(rx: mpsc::Receiver<Bytes>) -> Body {
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|b| (Ok::<_, std::io::Error>(Frame::data(b)), rx))
    });
    BodyExt::boxed(StreamBody::new(stream))
}

/// Server side of `/ws`: greet, then echo until a close frame or EOF.
async fn ws_echo<S>(mut io: S) -> std::io::Result<()>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    io.write_all(&encode_frame(OP_TEXT, WS_GREETING.as_bytes(), None))
        .await?;
    io.flush().await?;
    loop {
        let mut two = [0u8; 2];
        io.read_exact(&mut two).await?;
        let header = decode_header(two);
        let mut extended = vec![0u8; extended_len_bytes(header.len7)];
        io.read_exact(&mut extended).await?;
        let len = payload_len(header.len7, &extended);
        if len > MAX_PAYLOAD || !header.masked || !header.fin {
            // Client frames must be masked (RFC 6455 5.1); this fixture sends no fragments.
            return Ok(());
        }
        let mut key = [0u8; 4];
        io.read_exact(&mut key).await?;
        let mut payload = vec![0u8; len as usize];
        io.read_exact(&mut payload).await?;
        payload
            .iter_mut()
            .enumerate()
            .for_each(|(i, b)| *b ^= key[i % 4]);
        let reply = match header.opcode {
            OP_CLOSE => {
                io.write_all(&encode_frame(OP_CLOSE, &payload, None))
                    .await?;
                io.flush().await?;
                return Ok(());
            }
            OP_PING => encode_frame(OP_PONG, &payload, None),
            OP_PONG => continue,
            op => encode_frame(op, &payload, None),
        };
        io.write_all(&reply).await?;
        io.flush().await?;
    }
}
