//! Proxy configuration. `nono run` and `nono proxy` both build this value through the same
//! function in `nono-policy`; the defaults here are the library's defaults.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::Duration;

use crate::dns::{Resolver, SystemResolver};
use crate::intercept::InterceptConfig;
use crate::route::RouteConfig;
use crate::token::SessionToken;
use crate::upstream::UpstreamProxyConfig;

/// Default cap on simultaneous authenticated client connections (those without a token yet
/// are capped apart, see [`crate::preauth`]).
pub const DEFAULT_MAX_CONNECTIONS: usize = 256;
/// How long a client may take to send a complete request head (slowloris guard). It also
/// closes a kept-alive client connection that sends no next request for this long.
pub const DEFAULT_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// How long connecting to an upstream may take, over all its addresses, before a 504.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Idle upstream connections kept per host by the pooled clients (routes, interception).
pub const MAX_IDLE_UPSTREAM_PER_HOST: usize = 32;
/// Requests in flight inside intercepted tunnels, per `max_connections` slot: HTTP/2 lets one
/// connection carry many, and each may hold an upstream connection.
pub const INTERCEPTED_REQUESTS_PER_SLOT: usize = 4;
/// Largest request head accepted; bigger heads get 431.
pub const DEFAULT_MAX_HEADER_BYTES: usize = 64 * 1024;

/// How clients authenticate to the proxy.
#[derive(Debug, Clone)]
pub enum AuthConfig {
    /// Require this token (a fresh random one by default).
    Token(SessionToken),
    /// No authentication: only for loopback listeners (enforced by the CLI and by `start`).
    Disabled,
}

/// Timeouts, each a named field.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    /// Client request head read timeout; also the longest a kept-alive client connection
    /// waits for its next request.
    pub header_read: Duration,
    /// Upstream connect timeout (all addresses together).
    pub connect: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            header_read: DEFAULT_HEADER_READ_TIMEOUT,
            connect: DEFAULT_CONNECT_TIMEOUT,
        }
    }
}

/// Everything the proxy needs to run.
#[derive(Clone)]
pub struct ProxyConfig {
    /// Host allowlist patterns; empty allows every host not on the deny list.
    pub allowed_hosts: Vec<String>,
    /// Host patterns always refused (`--deny-domain`), whatever allows them: the allowlist,
    /// a wildcard, a network profile's group, a credential route.
    pub denied_hosts: Vec<String>,
    /// Listening address.
    pub bind_addr: IpAddr,
    /// Listening port; 0 lets the OS choose.
    pub bind_port: u16,
    /// Simultaneous authenticated client connections; 0 = unlimited. Connections that have
    /// not authenticated yet never hold one of these (see [`crate::preauth`]).
    pub max_connections: usize,
    /// Client authentication.
    pub auth: AuthConfig,
    /// Timeouts.
    pub timeouts: Timeouts,
    /// Largest request head in bytes.
    pub max_header_bytes: usize,
    /// Name resolution (injectable for tests and `--resolve`).
    pub resolver: Arc<dyn Resolver>,
    /// Extra `NO_PROXY` entries for clients (hosts reached directly, ports stripped).
    pub no_proxy: Vec<String>,
    /// Upstream (corporate) proxy to chain through, with its bypass list; `None` connects
    /// directly.
    pub upstream_proxy: Option<UpstreamProxyConfig>,
    /// Credential routes served as `http://HOST:PORT/<name>/...` (see [`crate::reverse`]).
    pub routes: Vec<RouteConfig>,
    /// Serve a route whose credential cannot be loaded with 503 `credential_unavailable`
    /// instead of failing start-up (`nono proxy` sets it; `nono run` does not).
    pub tolerate_unavailable_routes: bool,
    /// TLS interception (used only when a route or URL-scoped entry needs it).
    pub intercept: InterceptConfig,
}

impl Default for ProxyConfig {
    fn default() -> Self {
        ProxyConfig {
            allowed_hosts: Vec::new(),
            denied_hosts: Vec::new(),
            bind_addr: IpAddr::V4(Ipv4Addr::LOCALHOST),
            bind_port: 0,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            auth: AuthConfig::Token(SessionToken::generate()),
            timeouts: Timeouts::default(),
            max_header_bytes: DEFAULT_MAX_HEADER_BYTES,
            resolver: Arc::new(SystemResolver),
            no_proxy: Vec::new(),
            upstream_proxy: None,
            routes: Vec::new(),
            tolerate_unavailable_routes: false,
            intercept: InterceptConfig::default(),
        }
    }
}

impl std::fmt::Debug for ProxyConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProxyConfig")
            .field("allowed_hosts", &self.allowed_hosts)
            .field("denied_hosts", &self.denied_hosts)
            .field("bind_addr", &self.bind_addr)
            .field("bind_port", &self.bind_port)
            .field("max_connections", &self.max_connections)
            .field("auth", &self.auth)
            .field("timeouts", &self.timeouts)
            .field("max_header_bytes", &self.max_header_bytes)
            .field("no_proxy", &self.no_proxy)
            .field("upstream_proxy", &self.upstream_proxy)
            .field("routes", &self.routes)
            .field(
                "tolerate_unavailable_routes",
                &self.tolerate_unavailable_routes,
            )
            .field("intercept", &self.intercept)
            .finish_non_exhaustive()
    }
}
