//! The listener: accepts clients, caps them with a semaphore, dispatches each request to the
//! CONNECT, forwarding or reverse-proxy path, and shuts down gracefully.
//!
//! A connection takes one of the `max_connections` slots only once a request on it has
//! authenticated; until then it waits in the small pool of [`crate::preauth`], so clients
//! without the token can never hold the slots of those with it.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex as StdMutex};
use std::time::Duration;

use http::{HeaderMap, Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch, Mutex, OwnedSemaphorePermit, Semaphore};

use crate::audit::{AuditEvent, AuditLog, Decision, Mode};
use crate::config::{AuthConfig, ProxyConfig, Timeouts};
use crate::env;
use crate::error::ProxyError;
use crate::filter::{Host, HostFilter};
use crate::forward::CachedUpstream;
use crate::gate::{Gate, Refusal};
use crate::intercept::bundle::TrustBundle;
use crate::intercept::Interceptor;
use crate::preauth::{Unauthenticated, Waiting, MAX_UNAUTHENTICATED, UNAUTHENTICATED_TIMEOUT};
use crate::respond::{self, Body};
use crate::reverse::{PreparedRoutes, RouteStatus, RouteTable};
use crate::token::SessionToken;
use crate::upstream::{Chain, ChainError};
use crate::upstream_conn::{connect_checked, ConnectFailure};

/// How long shutdown waits for open connections before dropping them.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// State every connection shares.
pub(crate) struct Shared {
    gate: Gate,
    auth: AuthConfig,
    pub(crate) audit: Arc<AuditLog>,
    timeouts: Timeouts,
    max_header_bytes: usize,
    shutdown: watch::Receiver<bool>,
    /// Cloned by every connection and tunnel; taken at shutdown, so the receiver learns
    /// when the last one has ended.
    tracker: StdMutex<Option<mpsc::Sender<()>>>,
    /// The upstream (corporate) proxy, when traffic is chained.
    upstream: Option<Chain>,
    /// Admission for credential routes: their upstreams are allowed without being on the
    /// allowlist (deny list and address checks still apply).
    route_gate: Gate,
    /// Credential routes.
    routes: Arc<RouteTable>,
    /// TLS interception, when something needs it.
    intercept: Option<Interceptor>,
    /// The `max_connections` slots, taken by connections that have authenticated.
    limit: Option<Arc<Semaphore>>,
    /// Connections that have not authenticated yet.
    waiting: Arc<Waiting>,
    /// The listening port (also of listeners added inside a sandbox's namespace).
    listen_port: u16,
    /// Requests in flight inside intercepted tunnels (`None`: unlimited).
    inner_limit: Option<Arc<Semaphore>>,
}

/// Per-client-connection state.
pub(crate) struct ConnState {
    /// The connection's `max_connections` slot, once it has authenticated.
    permit: StdMutex<Option<OwnedSemaphorePermit>>,
    /// Its place among connections waiting to authenticate, until one of its requests does.
    unauthenticated: Unauthenticated,
    pub(crate) upstream: Mutex<Option<CachedUpstream>>,
    /// Keeps shutdown waiting while the connection, or a tunnel it opened, lives.
    tracker: Option<mpsc::Sender<()>>,
}

impl ConnState {
    /// Moves the connection's slot to a tunnel that outlives hyper's connection task.
    pub(crate) fn take_permit(&self) -> Option<OwnedSemaphorePermit> {
        self.permit.lock().ok().and_then(|mut p| p.take())
    }

    /// A shutdown guard for a tunnel that outlives hyper's connection task.
    pub(crate) fn tracker(&self) -> Option<mpsc::Sender<()>> {
        self.tracker.clone()
    }
}

impl Shared {
    /// Called when a request on `conn` has authenticated, before anything is done for it: the
    /// first time, the connection leaves the unauthenticated pool and takes a
    /// `max_connections` slot for the rest of its life. With every slot taken the answer is
    /// the 503 to send instead (the connection is closed after it); `None` means go on.
    pub(crate) fn authenticated(
        &self,
        conn: &ConnState,
        mode: Mode,
        target: &str,
        port: u16,
        info: Option<(&str, &str)>,
    ) -> Option<Response<Body>> {
        if conn.unauthenticated.is_authenticated() {
            return None;
        }
        let permit = match &self.limit {
            None => None,
            Some(sem) => match sem.clone().try_acquire_owned() {
                Ok(p) => Some(p),
                Err(_) => {
                    let mut busy = self.refuse(
                        mode,
                        target,
                        port,
                        info,
                        StatusCode::SERVICE_UNAVAILABLE,
                        "max_connections",
                    );
                    busy.headers_mut().insert(
                        http::header::CONNECTION,
                        http::HeaderValue::from_static("close"),
                    );
                    return Some(busy);
                }
            },
        };
        if let Ok(mut slot) = conn.permit.lock() {
            *slot = permit;
        }
        conn.unauthenticated.authenticate();
        None
    }

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
    pub(crate) fn is_route_host(&self, host: &Host) -> bool {
        self.routes.is_route_host(host)
    }

    /// The credential routes.
    pub(crate) fn routes(&self) -> &RouteTable {
        &self.routes
    }

    /// Whether `host:port` is on the deny list (which wins over every allow).
    pub(crate) fn deny_listed(&self, host: &Host, port: u16) -> bool {
        self.gate.deny_listed(host, port)
    }

    /// TLS interception, when configured.
    pub(crate) fn interceptor(&self) -> Option<&Interceptor> {
        self.intercept.as_ref()
    }

    /// Whether a CONNECT to `host:port` is intercepted.
    pub(crate) fn intercepts(&self, host: &Host, port: u16) -> bool {
        self.intercept
            .as_ref()
            .is_some_and(|i| i.intercepts(&self.routes, host, port))
    }

    /// How long a client may take to send a request head (or a TLS ClientHello).
    pub(crate) fn header_read_timeout(&self) -> Duration {
        self.timeouts.header_read
    }

    /// A slot for one request inside an intercepted tunnel; `Err` when all are taken.
    pub(crate) fn inner_slot(&self) -> Result<Option<OwnedSemaphorePermit>, ()> {
        match &self.inner_limit {
            None => Ok(None),
            Some(sem) => sem.clone().try_acquire_owned().map(Some).map_err(|_| ()),
        }
    }

    /// The port the proxy listens on.
    pub(crate) fn listen_port(&self) -> u16 {
        self.listen_port
    }

    /// Largest request head accepted.
    pub(crate) fn max_header_bytes(&self) -> usize {
        self.max_header_bytes
    }

    /// The session token, when auth is on (accepted in `X-Nono-Token` on routes).
    pub(crate) fn session_token(&self) -> Option<&SessionToken> {
        match &self.auth {
            AuthConfig::Token(t) => Some(t),
            AuthConfig::Disabled => None,
        }
    }

    /// The admission policy for `mode`: routes admit exactly their upstreams.
    fn gate_for(&self, mode: Mode) -> &Gate {
        match mode {
            Mode::Reverse => &self.route_gate,
            Mode::Connect | Mode::Forward | Mode::Intercept => &self.gate,
        }
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
        let mut ev = AuditEvent::new(mode, Decision::Deny, target, port, status.as_u16())
            .with_reason(reason);
        if let Some((m, p)) = info {
            ev = ev.with_request(m, Some(p));
        }
        // The body names the reason first (clients and tests match on it), then the fix.
        let body = match crate::audit::explain(&ev, None) {
            Some(x) if x.policy && status == StatusCode::FORBIDDEN => {
                format!("{reason}: {}", x.text)
            }
            _ => reason.to_string(),
        };
        self.audit.record(ev);
        if status == StatusCode::PROXY_AUTHENTICATION_REQUIRED {
            return respond::proxy_auth_required();
        }
        respond::text(status, &body)
    }

    /// Admission only (no connect), mapping refusals to responses.
    pub(crate) async fn admit_only(
        &self,
        host: &Host,
        port: u16,
        mode: Mode,
        info: Option<(&str, &str)>,
    ) -> Result<Vec<SocketAddr>, Response<Body>> {
        let refuse =
            |status, reason: &str| self.refuse(mode, &host.to_string(), port, info, status, reason);
        match self.gate_for(mode).admit(host, port).await {
            Ok(a) => Ok(a),
            Err(Refusal::Denied(r)) => Err(refuse(StatusCode::FORBIDDEN, r.as_str())),
            Err(Refusal::Unresolvable(e)) if e.kind() == std::io::ErrorKind::TimedOut => {
                tracing::debug!("resolving {host} timed out: {e}");
                Err(refuse(StatusCode::GATEWAY_TIMEOUT, "dns_timeout"))
            }
            Err(Refusal::Unresolvable(e)) => {
                tracing::debug!("resolving {host} failed: {e}");
                Err(refuse(StatusCode::BAD_GATEWAY, "dns_failed"))
            }
        }
    }

    /// Admission, then a connection to `host:port`: a `CONNECT` tunnel through the upstream
    /// proxy when one is configured and the host is not bypassed, otherwise a direct
    /// connection to one of the checked addresses.
    pub(crate) async fn open_upstream(
        &self,
        host: &Host,
        port: u16,
        mode: Mode,
        info: Option<(&str, &str)>,
    ) -> Result<TcpStream, Response<Body>> {
        // A credential route to this machine (loopback, its own addresses) is never chained:
        // the upstream proxy would reach its own loopback, and a plain-HTTP route would show
        // it the key.
        let local_route = mode == Mode::Reverse && host.is_local();
        if let Some(chain) = self.chain_for(host, port).filter(|_| !local_route) {
            self.admit_chained(chain, host, port, mode, info).await?;
            let tunnel = chain.tunnel(host, port).await;
            return tunnel
                .map(|s| chained(chain, host, port, s))
                .map_err(|e| self.chain_refused(chain, host, port, mode, info, e));
        }
        let addrs = self.admit_only(host, port, mode, info).await?;
        let refuse =
            |status, reason: &str| self.refuse(mode, &host.to_string(), port, info, status, reason);
        if let Some(chain) = &self.upstream {
            if chain.is_itself(&addrs).await {
                return Err(refuse(StatusCode::FORBIDDEN, "denied_upstream_proxy"));
            }
        }
        match connect_checked(&addrs, self.timeouts.connect).await {
            Ok(s) => Ok(s),
            Err(ConnectFailure::Timeout) => Err(refuse(
                StatusCode::GATEWAY_TIMEOUT,
                "upstream_connect_timeout",
            )),
            Err(ConnectFailure::Failed(e)) => {
                tracing::debug!("connecting to {host}:{port} failed: {e}");
                Err(refuse(StatusCode::BAD_GATEWAY, "upstream_unreachable"))
            }
        }
    }

    /// The upstream proxy, when `host:port` goes through one (configured, not bypassed).
    pub(crate) fn chain_for(&self, host: &Host, port: u16) -> Option<&Chain> {
        self.upstream.as_ref().filter(|c| c.chains(host, port))
    }

    /// Local admission of a target that will be chained (see [`crate::upstream`]).
    pub(crate) async fn admit_chained(
        &self,
        chain: &Chain,
        host: &Host,
        port: u16,
        mode: Mode,
        info: Option<(&str, &str)>,
    ) -> Result<(), Response<Body>> {
        chain
            .admit(self.gate_for(mode), host, port)
            .await
            .map_err(|r| {
                self.refuse(
                    mode,
                    &host.to_string(),
                    port,
                    info,
                    StatusCode::FORBIDDEN,
                    r.as_str(),
                )
            })
    }

    /// Local admission, then a connection to the upstream proxy itself, for an absolute-form
    /// request to `host:port`.
    pub(crate) async fn open_upstream_proxy(
        &self,
        chain: &Chain,
        host: &Host,
        port: u16,
        mode: Mode,
        info: Option<(&str, &str)>,
    ) -> Result<TcpStream, Response<Body>> {
        self.admit_chained(chain, host, port, mode, info).await?;
        let conn = chain.connect_proxy().await;
        conn.map(|s| chained(chain, host, port, s))
            .map_err(|e| self.chain_refused(chain, host, port, mode, info, e))
    }

    /// Records a failure to chain through the upstream proxy, with the upstream's reason.
    fn chain_refused(
        &self,
        chain: &Chain,
        host: &Host,
        port: u16,
        mode: Mode,
        info: Option<(&str, &str)>,
        e: ChainError,
    ) -> Response<Body> {
        tracing::debug!(
            "chaining {host}:{port} through {} failed: {e}",
            chain.address()
        );
        self.refuse(mode, &host.to_string(), port, info, e.status(), &e.reason())
    }

    /// A guard that keeps graceful shutdown waiting while it lives; `None` once shutdown
    /// has begun (accept loops take theirs at start and hand clones to their connections).
    fn tracker(&self) -> Option<mpsc::Sender<()>> {
        self.tracker.lock().ok().and_then(|t| t.clone())
    }

    /// Drops the shared sender: from now on only open connections keep shutdown waiting.
    fn release_tracker(&self) {
        if let Ok(mut t) = self.tracker.lock() {
            t.take();
        }
    }

    /// Resolves when shutdown starts.
    pub(crate) fn shutdown_signal(&self) -> watch::Receiver<bool> {
        self.shutdown.clone()
    }
}

/// Logs a connection chained through the upstream proxy (never with its credentials).
fn chained(chain: &Chain, host: &Host, port: u16, stream: TcpStream) -> TcpStream {
    tracing::info!(target: "nono::audit", "CHAIN {host}:{port} via upstream proxy {}", chain.address());
    stream
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
    routes: Arc<RouteTable>,
    /// What another accept loop needs (see [`ProxyHandle::add_listener`]).
    extra: ExtraListenerState,
    /// The interception trust bundle, removed when the handle goes.
    bundle: Option<TrustBundle>,
    /// Variables pointed at the bundle.
    ca_env_vars: Vec<String>,
}

/// Shared state for additional listeners.
struct ExtraListenerState {
    shared: Arc<Shared>,
    max_header_bytes: usize,
    shutdown_rx: watch::Receiver<bool>,
}

impl ProxyHandle {
    /// Serves a second listening socket with the same policy, token and connection cap; for
    /// example one bound inside a sandboxed child's private network namespace. Must be called
    /// within the runtime.
    pub fn add_listener(&self, listener: std::net::TcpListener) -> Result<(), ProxyError> {
        let io = |source| ProxyError::Io {
            context: "serving an additional listener".into(),
            source,
        };
        listener.set_nonblocking(true).map_err(io)?;
        let listener = TcpListener::from_std(listener).map_err(io)?;
        let e = &self.extra;
        tokio::spawn(accept_loop(
            listener,
            e.shared.clone(),
            e.max_header_bytes,
            e.shutdown_rx.clone(),
        ));
        Ok(())
    }

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
        env::proxy_url(
            &self.client_host(),
            self.port(),
            self.token.as_ref().map(|t| t.expose()),
        )
    }

    /// The variables a client needs (`HTTP_PROXY`, `HTTPS_PROXY`, `NO_PROXY`, twins, token,
    /// and with interception the CA variables pointing at the trust bundle).
    pub fn env_vars(&self) -> Vec<(String, String)> {
        let mut v = env::client_env(
            &self.url(),
            self.token.as_ref().map(|t| t.expose()),
            &self.no_proxy,
        );
        if let Some(b) = &self.bundle {
            let path = b.bundle_path().display().to_string();
            v.extend(self.ca_env_vars.iter().map(|k| (k.clone(), path.clone())));
        }
        v
    }

    /// The interception CA certificate (PEM file), when something is intercepted.
    pub fn ca_cert_path(&self) -> Option<&std::path::Path> {
        self.bundle.as_ref().map(|b| b.ca_path())
    }

    /// The trust bundle (system roots + the CA), when something is intercepted.
    pub fn trust_bundle_path(&self) -> Option<&std::path::Path> {
        self.bundle.as_ref().map(|b| b.bundle_path())
    }

    /// The per-session directory holding both, for a sandbox to be granted read access.
    pub fn trust_bundle_dir(&self) -> Option<&std::path::Path> {
        self.bundle.as_ref().map(|b| b.dir())
    }

    /// Leaf certificate cache `(hits, misses)`, when something is intercepted.
    pub fn leaf_cache_stats(&self) -> Option<(u64, u64)> {
        self.extra.shared.interceptor().map(|i| i.leaves().stats())
    }

    /// Per credential route: `<base_url_env>=http://HOST:PORT/<name>` and
    /// `<env_var>=<phantom token>`, for the client's environment.
    pub fn route_env(&self) -> Vec<(String, String)> {
        self.routes
            .env(&format!("http://{}:{}", self.client_host(), self.port()))
    }

    /// Each credential route's local URL, upstream, source and whether it is loaded.
    pub fn routes_status(&self) -> Vec<RouteStatus> {
        self.routes
            .status(&format!("http://{}:{}", self.client_host(), self.port()))
    }

    /// The audit buffer.
    pub fn audit(&self) -> &Arc<AuditLog> {
        &self.audit
    }

    /// Stops accepting, lets open connections finish for up to [`SHUTDOWN_GRACE`], then returns.
    pub async fn shutdown(mut self) {
        let _ = self.shutdown_tx.send(true);
        let _ = (&mut self.accept_task).await;
        self.extra.shared.release_tracker();
        // Ends as soon as every connection is gone (recv yields None), at the latest after
        // the grace period.
        let _ = tokio::time::timeout(SHUTDOWN_GRACE, self.done_rx.recv()).await;
        drop(self.bundle.take());
    }
}

/// Binds the configured address and starts serving.
pub async fn start(config: ProxyConfig) -> Result<ProxyHandle, ProxyError> {
    check_limits(&config)?;
    let addr = SocketAddr::new(config.bind_addr, config.bind_port);
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| ProxyError::Bind { addr, source })?;
    serve_on(listener, config)
}

/// Starts serving on an already-bound listener (e.g. one bound before `fork`).
pub fn start_with_listener(
    listener: TcpListener,
    config: ProxyConfig,
) -> Result<ProxyHandle, ProxyError> {
    check_limits(&config)?;
    serve_on(listener, config)
}

/// Serves `listener` with `config`, whose limits were checked.
fn serve_on(listener: TcpListener, config: ProxyConfig) -> Result<ProxyHandle, ProxyError> {
    let addr = listener.local_addr().map_err(|source| ProxyError::Io {
        context: "reading the listening address".into(),
        source,
    })?;
    if matches!(config.auth, AuthConfig::Disabled) && !crate::deny::is_loopback(addr.ip()) {
        return Err(ProxyError::Config(format!(
            "authentication cannot be disabled on the non-loopback address {addr}: any host that can reach it could use the proxy"
        )));
    }
    // URL-scoped entries are allow entries too: their hosts join the allowlist (so an
    // allowlist of only such entries admits only their hosts, never every host), and the
    // path rules are enforced inside the interception.
    let mut patterns = config.allowed_hosts.clone();
    patterns.extend(Interceptor::gate_patterns(&config.intercept));
    let filter = HostFilter::new(&patterns)?;
    let denied = Arc::new(HostFilter::new(&config.denied_hosts)?);
    let gate = Gate::new(
        filter,
        Some(addr),
        config.resolver.clone(),
        config.timeouts.connect,
    )
    .with_denied(denied.clone());
    let upstream = config
        .upstream_proxy
        .clone()
        .map(|u| Chain::new(u, config.resolver.clone(), addr, config.timeouts.connect))
        .transpose()?;
    let prepared = PreparedRoutes::load(&config.routes, config.tolerate_unavailable_routes)?;
    let route_gate = Gate::new(
        HostFilter::new(&prepared.gate_patterns())?,
        Some(addr),
        config.resolver.clone(),
        config.timeouts.connect,
    )
    .with_denied(denied);
    let intercept_cfg = &config.intercept;
    let (interceptor, bundle) = if Interceptor::needed(intercept_cfg, &config.routes) {
        let prepared = Interceptor::prepare(intercept_cfg, &config.routes)?;
        let parent = intercept_cfg
            .bundle_parent
            .clone()
            .unwrap_or_else(std::env::temp_dir);
        let bundle = TrustBundle::write(&parent, &prepared.roots, &prepared.ca_pem)
            .map_err(|e| ProxyError::Config(e.to_string()))?;
        if prepared.roots.path.is_none() {
            tracing::warn!(
                "no system CA bundle found; the trust bundle {} holds only the proxy CA, so tunnelled HTTPS clients that use it will not trust other hosts (set SSL_CERT_FILE to your roots)",
                bundle.bundle_path().display()
            );
        }
        (Some(prepared.interceptor), Some(bundle))
    } else {
        (None, None)
    };
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let (tracker, done_rx) = mpsc::channel(1);
    let audit = Arc::new(AuditLog::new());
    let token = match &config.auth {
        AuthConfig::Token(t) => Some(t.clone()),
        AuthConfig::Disabled => None,
    };
    let limit =
        (config.max_connections > 0).then(|| Arc::new(Semaphore::new(config.max_connections)));
    // Route connectors hold a weak reference back to `Shared` to connect through its admission.
    let mut table_error = None;
    let shared = Arc::new_cyclic(|weak| {
        let routes = prepared.into_table(weak.clone()).unwrap_or_else(|e| {
            table_error = Some(e);
            RouteTable::empty()
        });
        Shared {
            gate,
            auth: config.auth.clone(),
            audit: audit.clone(),
            timeouts: config.timeouts,
            max_header_bytes: config.max_header_bytes,
            shutdown: shutdown_rx.clone(),
            tracker: StdMutex::new(Some(tracker)),
            upstream,
            route_gate,
            routes: Arc::new(routes),
            intercept: interceptor,
            limit,
            waiting: Waiting::new(MAX_UNAUTHENTICATED, UNAUTHENTICATED_TIMEOUT),
            listen_port: addr.port(),
            inner_limit: (config.max_connections > 0).then(|| {
                Arc::new(Semaphore::new(
                    config
                        .max_connections
                        .saturating_mul(crate::config::INTERCEPTED_REQUESTS_PER_SLOT)
                        .min(Semaphore::MAX_PERMITS),
                ))
            }),
        }
    });
    if let Some(e) = table_error {
        return Err(ProxyError::Route(e));
    }
    let routes = shared.routes.clone();
    let shared_for_env = shared.clone();
    let no_proxy: Vec<String> = config
        .no_proxy
        .iter()
        .filter(|e| !routes.covers_no_proxy_entry(e))
        .cloned()
        .collect();
    // `dispatch` enforces the limit on the head as parsed; hyper's buffer limit (431 for an
    // unfinished head that fills it; floor 8 KiB) bounds what parsing drops, such as
    // whitespace around values, to about twice the limit (measured).
    let max_header_bytes = config.max_header_bytes.max(8192);
    let extra = ExtraListenerState {
        shared: shared.clone(),
        max_header_bytes,
        shutdown_rx: shutdown_rx.clone(),
    };
    let accept_task = tokio::spawn(accept_loop(listener, shared, max_header_bytes, shutdown_rx));
    Ok(ProxyHandle {
        addr,
        token,
        no_proxy: without_intercepted(&env::no_proxy_value(&no_proxy), &shared_for_env),
        audit,
        shutdown_tx,
        done_rx,
        accept_task,
        routes,
        extra,
        bundle,
        ca_env_vars: config.intercept.ca_env_vars.clone(),
    })
}

/// `NO_PROXY` without entries naming an intercepted host, or a local name the allowlist lets
/// through the proxy on every port (`--allow-domain 127.0.0.1`): a client must send those
/// through the proxy, even when they are this machine — inside a sandbox's own network
/// namespace, "direct" would reach its empty loopback instead.
fn without_intercepted(no_proxy: &str, shared: &Shared) -> String {
    no_proxy
        .split(',')
        .filter(|e| {
            let Ok(h) = Host::parse(e.trim()) else {
                return true;
            };
            let intercepted = shared
                .routes
                .hosts_intercepted(shared)
                .any(|r| r.same_as(&h))
                || shared.interceptor().is_some_and(|i| i.has_url_rules_on(&h));
            let proxied_local = h.is_local()
                && shared
                    .gate
                    .filter()
                    .patterns()
                    .iter()
                    .any(|p| p.port.is_none() && p.is_exact() && p.matches(&h, 0));
            !intercepted && !proxied_local
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// Refuses limits the runtime cannot represent (checked before binding).
fn check_limits(config: &ProxyConfig) -> Result<(), ProxyError> {
    if config.max_connections > Semaphore::MAX_PERMITS {
        return Err(ProxyError::Config(format!(
            "max_connections {} is above the largest supported value {}; use 0 for no limit",
            config.max_connections,
            Semaphore::MAX_PERMITS
        )));
    }
    Ok(())
}

async fn accept_loop(
    listener: TcpListener,
    shared: Arc<Shared>,
    max_header_bytes: usize,
    mut shutdown: watch::Receiver<bool>,
) {
    // On a loopback listener every client is local: accepted sockets inherit the listener's
    // congestion control from the handshake on, which a later switch cannot fully undo.
    let local_listener = listener
        .local_addr()
        .is_ok_and(|a| crate::loopback::is_loopback(a.ip()));
    if local_listener {
        crate::loopback::set_unpaced(&listener);
    }
    // Held for the loop's life and cloned into each connection before it is spawned, so
    // no connection accepted before the loop stops can miss it.
    let tracker = shared.tracker();
    loop {
        let accepted = tokio::select! {
            _ = shutdown.changed() => break,
            a = listener.accept() => a,
        };
        let (stream, peer) = match accepted {
            Ok(x) => x,
            Err(e) => {
                // EMFILE and friends: back off instead of spinning.
                tracing::warn!("accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        if !local_listener {
            crate::loopback::tune(&stream, peer.ip());
        }
        let shared = shared.clone();
        let conn = ConnState {
            permit: StdMutex::new(None),
            unauthenticated: shared.waiting.enter(),
            upstream: Mutex::new(None),
            tracker: tracker.clone(),
        };
        tokio::spawn(serve_connection(stream, shared, conn, max_header_bytes));
    }
}

async fn serve_connection(
    stream: TcpStream,
    shared: Arc<Shared>,
    conn: ConnState,
    max_header_bytes: usize,
) {
    let mut stop = shared.shutdown_signal();
    let conn_state = Arc::new(conn);
    let state = conn_state.clone();
    let unauthenticated = state.unauthenticated.closed();
    tokio::pin!(unauthenticated);
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
    let conn = builder
        .serve_connection(TokioIo::new(stream), svc)
        .with_upgrades();
    tokio::pin!(conn);
    // The connection is polled first, so a request already buffered when the connection is
    // evicted or reaches its deadline still gets to authenticate.
    let result = tokio::select! {
        biased;
        r = conn.as_mut() => r,
        _ = stop.changed() => {
            conn.as_mut().graceful_shutdown();
            tokio::time::timeout(SHUTDOWN_GRACE, conn.as_mut()).await.unwrap_or(Ok(()))
        }
        _ = &mut unauthenticated => {
            tracing::debug!("closing a connection that did not authenticate in time");
            Ok(())
        }
    };
    if let Err(e) = result {
        tracing::debug!("client connection ended: {e}");
        // hyper answered these itself (431 / 400); they are decisions like any other.
        // hyper has no predicate for its 414; its message names it.
        let refused = if e.is_parse_too_large() && e.to_string().contains("URI too long") {
            Some((StatusCode::URI_TOO_LONG, "uri_too_long"))
        } else if e.is_parse_too_large() {
            Some((
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                "header_too_large",
            ))
        } else if e.is_parse() {
            Some((StatusCode::BAD_REQUEST, "malformed_request"))
        } else {
            None
        };
        if let Some((status, reason)) = refused {
            shared.audit.record(
                AuditEvent::new(Mode::Forward, Decision::Deny, "-", 0, status.as_u16())
                    .with_reason(reason),
            );
        }
    }
}

async fn dispatch(
    req: Request<Incoming>,
    shared: Arc<Shared>,
    conn: Arc<ConnState>,
) -> Response<Body> {
    // hyper's buffer limit is approximate; the documented limit is enforced exactly here.
    if head_size(&req) > shared.max_header_bytes {
        return shared.refuse(
            Mode::Forward,
            "-",
            0,
            None,
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "header_too_large",
        );
    }
    if req.method() == Method::CONNECT {
        return crate::connect::handle(req, shared, conn).await;
    }
    if req.uri().authority().is_some() || req.uri().scheme().is_some() {
        return crate::forward::handle(req, shared, conn).await;
    }
    crate::reverse::handle(req, shared, conn).await
}

/// Wire size of a request head as parsed, at least: request line, `name:value` lines and the
/// empty line that ends the head. Optional whitespace around values is not kept by the
/// parser, so it is not counted here (never refusing a head within the limit); hyper's
/// buffer limit counts it.
fn head_size(req: &Request<Incoming>) -> usize {
    // "METHOD SP URI SP HTTP/1.1 CRLF" plus the final CRLF.
    let line = req.method().as_str().len() + req.uri().to_string().len() + 12 + 2;
    req.headers()
        .iter()
        .fold(line, |n, (k, v)| n + k.as_str().len() + v.len() + 3)
}
