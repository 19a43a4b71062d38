//! The listener: accepts clients, caps them with a semaphore, dispatches each request to the
//! CONNECT, forwarding or reverse-proxy path, and shuts down gracefully.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex as StdMutex};
use std::time::Duration;

use http::{HeaderMap, Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch, Mutex, OwnedSemaphorePermit, Semaphore};

use crate::audit::{AuditEvent, AuditLog, Decision, Mode};
use crate::config::{AuthConfig, ProxyConfig, Timeouts};
use crate::env;
use crate::error::ProxyError;
use crate::filter::{Host, HostFilter};
use crate::forward::CachedUpstream;
use crate::gate::{Gate, Refusal};
use crate::respond::{self, Body};
use crate::token::SessionToken;
use crate::upstream_conn::{connect_checked, ConnectFailure};

/// How long shutdown waits for open connections before dropping them.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);
/// How long a client refused with 503 gets to send its request head before we answer.
const BUSY_READ_WAIT: Duration = Duration::from_millis(500);

/// State every connection shares.
pub(crate) struct Shared {
    gate: Gate,
    auth: AuthConfig,
    pub(crate) audit: Arc<AuditLog>,
    timeouts: Timeouts,
    max_header_bytes: usize,
    shutdown: watch::Receiver<bool>,
    tracker: mpsc::Sender<()>,
}

/// Per-client-connection state.
pub(crate) struct ConnState {
    permit: StdMutex<Option<OwnedSemaphorePermit>>,
    pub(crate) upstream: Mutex<Option<CachedUpstream>>,
}

impl ConnState {
    /// Moves the connection's slot to a tunnel that outlives hyper's connection task.
    pub(crate) fn take_permit(&self) -> Option<OwnedSemaphorePermit> {
        self.permit.lock().ok().and_then(|mut p| p.take())
    }
}

impl Shared {
    /// Checks `Proxy-Authorization` against the session token.
    pub(crate) fn authorized(&self, headers: &HeaderMap) -> bool {
        match &self.auth {
            AuthConfig::Disabled => true,
            AuthConfig::Token(t) => headers
                .get_all(http::header::PROXY_AUTHORIZATION)
                .iter()
                .any(|v| t.verify_proxy_authorization(v.as_bytes())),
        }
    }

    /// Whether `host` belongs to a credential route (CONNECT there would bypass L7 rules).
    pub(crate) fn is_route_host(&self, _host: &Host) -> bool {
        false
    }

    /// Records a refusal and builds its response; the body names the reason.
    pub(crate) fn refuse(
        &self,
        mode: Mode,
        target: &str,
        port: u16,
        info: Option<(&str, &str)>,
        status: StatusCode,
        reason: &str,
    ) -> Response<Body> {
        let mut ev = AuditEvent::new(mode, Decision::Deny, target, port, status.as_u16()).with_reason(reason);
        if let Some((m, p)) = info {
            ev = ev.with_request(m, Some(p));
        }
        self.audit.record(ev);
        if status == StatusCode::PROXY_AUTHENTICATION_REQUIRED {
            return respond::proxy_auth_required();
        }
        respond::text(status, reason)
    }

    /// Admission only (no connect), mapping refusals to responses.
    pub(crate) async fn admit_only(
        &self,
        host: &Host,
        port: u16,
        mode: Mode,
        info: Option<(&str, &str)>,
    ) -> Result<Vec<SocketAddr>, Response<Body>> {
        match self.gate.admit(host, port).await {
            Ok(a) => Ok(a),
            Err(Refusal::Denied(r)) => Err(self.refuse(mode, &host.to_string(), port, info, StatusCode::FORBIDDEN, r.as_str())),
            Err(Refusal::Unresolvable(e)) => {
                tracing::debug!("resolving {host} failed: {e}");
                Err(self.refuse(mode, &host.to_string(), port, info, StatusCode::BAD_GATEWAY, "dns_failed"))
            }
        }
    }

    /// Admission, then a connection to one of the checked addresses.
    pub(crate) async fn open_upstream(
        &self,
        host: &Host,
        port: u16,
        mode: Mode,
        info: Option<(&str, &str)>,
    ) -> Result<TcpStream, Response<Body>> {
        let addrs = self.admit_only(host, port, mode, info).await?;
        match connect_checked(&addrs, self.timeouts.connect).await {
            Ok(s) => Ok(s),
            Err(ConnectFailure::Timeout) => {
                Err(self.refuse(mode, &host.to_string(), port, info, StatusCode::GATEWAY_TIMEOUT, "upstream_connect_timeout"))
            }
            Err(ConnectFailure::Failed(e)) => {
                tracing::debug!("connecting to {host}:{port} failed: {e}");
                Err(self.refuse(mode, &host.to_string(), port, info, StatusCode::BAD_GATEWAY, "upstream_unreachable"))
            }
        }
    }

    /// A guard that keeps graceful shutdown waiting while it lives.
    pub(crate) fn tracker(&self) -> mpsc::Sender<()> {
        self.tracker.clone()
    }

    /// Resolves when shutdown starts.
    pub(crate) fn shutdown_signal(&self) -> watch::Receiver<bool> {
        self.shutdown.clone()
    }
}

/// A running proxy.
pub struct ProxyHandle {
    addr: SocketAddr,
    token: Option<SessionToken>,
    no_proxy: String,
    audit: Arc<AuditLog>,
    shutdown_tx: watch::Sender<bool>,
    done_rx: mpsc::Receiver<()>,
    accept_task: tokio::task::JoinHandle<()>,
}

impl ProxyHandle {
    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The bound port.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// The session token, when auth is on.
    pub fn token(&self) -> Option<&SessionToken> {
        self.token.as_ref()
    }

    /// Host clients on this machine should use to reach the proxy.
    pub fn client_host(&self) -> String {
        match self.addr.ip() {
            ip if ip.is_unspecified() && ip.is_ipv4() => "127.0.0.1".into(),
            ip if ip.is_unspecified() => "[::1]".into(),
            std::net::IpAddr::V6(v6) => format!("[{v6}]"),
            ip => ip.to_string(),
        }
    }

    /// The proxy URL, with credentials when auth is on.
    pub fn url(&self) -> String {
        env::proxy_url(&self.client_host(), self.port(), self.token.as_ref().map(|t| t.expose()))
    }

    /// The variables a client needs (`HTTP_PROXY`, `HTTPS_PROXY`, `NO_PROXY`, twins, token).
    pub fn env_vars(&self) -> Vec<(String, String)> {
        env::client_env(&self.url(), self.token.as_ref().map(|t| t.expose()), &self.no_proxy)
    }

    /// The audit buffer.
    pub fn audit(&self) -> &Arc<AuditLog> {
        &self.audit
    }

    /// Stops accepting, lets open connections finish for up to [`SHUTDOWN_GRACE`], then returns.
    pub async fn shutdown(mut self) {
        let _ = self.shutdown_tx.send(true);
        let _ = (&mut self.accept_task).await;
        let _ = tokio::time::timeout(SHUTDOWN_GRACE, self.done_rx.recv()).await;
    }
}

/// Binds the configured address and starts serving.
pub async fn start(config: ProxyConfig) -> Result<ProxyHandle, ProxyError> {
    let addr = SocketAddr::new(config.bind_addr, config.bind_port);
    let listener = TcpListener::bind(addr).await.map_err(|source| ProxyError::Bind { addr, source })?;
    start_with_listener(listener, config)
}

/// Starts serving on an already-bound listener (e.g. one bound before `fork`).
pub fn start_with_listener(listener: TcpListener, config: ProxyConfig) -> Result<ProxyHandle, ProxyError> {
    let addr = listener.local_addr().map_err(|source| ProxyError::Io {
        context: "reading the listening address".into(),
        source,
    })?;
    if matches!(config.auth, AuthConfig::Disabled) && !crate::deny::is_loopback(addr.ip()) {
        return Err(ProxyError::Config(format!(
            "authentication cannot be disabled on the non-loopback address {addr}: any host that can reach it could use the proxy"
        )));
    }
    let filter = HostFilter::new(&config.allowed_hosts)?;
    let gate = Gate::new(filter, Some(addr), config.resolver.clone());
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let (tracker, done_rx) = mpsc::channel(1);
    let audit = Arc::new(AuditLog::new());
    let token = match &config.auth {
        AuthConfig::Token(t) => Some(t.clone()),
        AuthConfig::Disabled => None,
    };
    let shared = Arc::new(Shared {
        gate,
        auth: config.auth.clone(),
        audit: audit.clone(),
        timeouts: config.timeouts,
        max_header_bytes: config.max_header_bytes,
        shutdown: shutdown_rx.clone(),
        tracker,
    });
    let limit = (config.max_connections > 0).then(|| Arc::new(Semaphore::new(config.max_connections)));
    // Slack so the exact check in `dispatch` decides, not hyper's buffer growth.
    let max_header_bytes = config.max_header_bytes.max(8192) + 16 * 1024;
    let accept_task = tokio::spawn(accept_loop(listener, shared, limit, max_header_bytes, shutdown_rx));
    Ok(ProxyHandle {
        addr,
        token,
        no_proxy: env::no_proxy_value(&config.no_proxy),
        audit,
        shutdown_tx,
        done_rx,
        accept_task,
    })
}

async fn accept_loop(
    listener: TcpListener,
    shared: Arc<Shared>,
    limit: Option<Arc<Semaphore>>,
    max_header_bytes: usize,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        let accepted = tokio::select! {
            _ = shutdown.changed() => break,
            a = listener.accept() => a,
        };
        let (stream, _peer) = match accepted {
            Ok(x) => x,
            Err(e) => {
                // EMFILE and friends: back off instead of spinning.
                tracing::warn!("accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            }
        };
        let permit = match &limit {
            None => None,
            Some(sem) => match sem.clone().try_acquire_owned() {
                Ok(p) => Some(p),
                Err(_) => {
                    tokio::spawn(reject_busy(stream, shared.clone()));
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let shared = shared.clone();
        tokio::spawn(serve_connection(stream, shared, permit, max_header_bytes));
    }
}

/// Answers 503 to a client over `max_connections`, after reading its head so the answer is
/// not lost to a reset.
async fn reject_busy(mut stream: TcpStream, shared: Arc<Shared>) {
    let mut buf = [0u8; 4096];
    let _ = tokio::time::timeout(BUSY_READ_WAIT, stream.read(&mut buf)).await;
    shared.audit.record(
        AuditEvent::new(Mode::Connect, Decision::Deny, "-", 0, 503).with_reason("max_connections"),
    );
    let body = "too many connections\n";
    let msg = format!(
        "HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.write_all(msg.as_bytes()).await;
    let _ = stream.shutdown().await;
}

async fn serve_connection(
    stream: TcpStream,
    shared: Arc<Shared>,
    permit: Option<OwnedSemaphorePermit>,
    max_header_bytes: usize,
) {
    let _tracker = shared.tracker();
    let mut stop = shared.shutdown_signal();
    let conn_state = Arc::new(ConnState {
        permit: StdMutex::new(permit),
        upstream: Mutex::new(None),
    });
    let svc_shared = shared.clone();
    let svc = service_fn(move |req: Request<Incoming>| {
        let shared = svc_shared.clone();
        let conn = conn_state.clone();
        async move { Ok::<_, std::convert::Infallible>(dispatch(req, shared, conn).await) }
    });
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(shared.timeouts.header_read)
        .max_buf_size(max_header_bytes)
        .keep_alive(true);
    let conn = builder.serve_connection(TokioIo::new(stream), svc).with_upgrades();
    tokio::pin!(conn);
    let idle = shared.timeouts.idle;
    let result = tokio::select! {
        r = conn.as_mut() => r,
        _ = stop.changed() => {
            conn.as_mut().graceful_shutdown();
            tokio::time::timeout(idle, conn.as_mut()).await.unwrap_or(Ok(()))
        }
    };
    if let Err(e) = result {
        tracing::debug!("client connection ended: {e}");
    }
}

async fn dispatch(req: Request<Incoming>, shared: Arc<Shared>, conn: Arc<ConnState>) -> Response<Body> {
    // hyper's buffer limit is approximate; the documented limit is enforced exactly here.
    if head_size(&req) > shared.max_header_bytes {
        return shared.refuse(Mode::Forward, "-", 0, None, StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE, "header_too_large");
    }
    if req.method() == Method::CONNECT {
        return crate::connect::handle(req, shared, conn).await;
    }
    if req.uri().authority().is_some() || req.uri().scheme().is_some() {
        return crate::forward::handle(req, shared, conn).await;
    }
    let path = req.uri().path().to_string();
    shared.refuse(
        Mode::Reverse,
        &path,
        0,
        Some((req.method().as_str(), &path)),
        StatusCode::BAD_REQUEST,
        "not_a_proxy_request",
    )
}

/// Approximate wire size of a request head.
fn head_size(req: &Request<Incoming>) -> usize {
    let line = req.method().as_str().len() + req.uri().to_string().len() + 12;
    req.headers().iter().fold(line, |n, (k, v)| n + k.as_str().len() + v.len() + 4)
}
