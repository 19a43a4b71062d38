//! Upstream (corporate) proxy chaining: where egress is only allowed through the network's own
//! HTTP proxy, nono sends its already-filtered traffic through it.
//!
//! - CONNECT tunnels (and credential routes, which open their upstream through the same
//!   function) become `CONNECT host:port` to the upstream proxy; a non-2xx answer is a 502
//!   naming the upstream's status (`upstream_proxy_status_407`).
//! - Plain HTTP forwarding sends the absolute-form request (`GET http://host/path`) over a
//!   connection to the upstream proxy, with the upstream's `Proxy-Authorization`, never the
//!   client's.
//! - Bypassed hosts (`--upstream-bypass`) connect directly, exactly as without an upstream.
//!
//! # What the local checks can and cannot see
//!
//! Filtering happens locally, before anything is sent to the upstream proxy. For every target,
//! chained or not:
//!
//! - the allowlist (name or address, and port) and the always-denied names (cloud metadata
//!   names) are checked;
//! - a literal IP target is checked against the whole deny list (metadata, link-local,
//!   unspecified, multicast, loopback unless allowlisted exactly, the proxy's own address).
//!
//! A target refused by these checks never causes a connection to the upstream proxy.
//!
//! A chained *name* is additionally resolved locally, best effort, within
//! [`UpstreamProxyConfig::local_resolve_timeout`] (default
//! [`DEFAULT_LOCAL_RESOLVE_TIMEOUT`]; zero turns it off). If it resolves, every address is
//! checked as for a direct connection and any denied address refuses the request with 403
//! (a name pointing at a metadata, link-local or loopback address is caught). If it does not
//! resolve or the lookup times out (typical when the machine has no public DNS), the request
//! is chained anyway and the upstream proxy resolves the name.
//!
//! What the local checks cannot see: the address the upstream proxy actually connects to. It
//! resolves names itself, with its own DNS view (split horizon, its cache, a record that
//! changes between our lookup and its own), so a name that resolves locally to a public
//! address may reach an internal one from there, and a name that does not resolve locally is
//! checked by name only. Keeping chained requests away from the corporate network's internal
//! addresses (and the upstream proxy's own loopback) is the upstream proxy's job; the
//! allowlist is the local control that always applies.
//!
//! Bypassed hosts are resolved locally, every address is checked, and only checked addresses
//! are connected to, exactly as without an upstream proxy.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use http::{HeaderValue, StatusCode};
use percent_encoding::percent_decode_str;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use zeroize::Zeroizing;

use crate::deny::{self, DenyReason};
use crate::dns::{Resolver, SystemResolver};
use crate::error::ProxyError;
use crate::filter::{parse_port, Host, HostPattern};
use crate::gate::{Gate, Refusal};
use crate::upstream_conn::{connect_checked, ConnectFailure};

/// How long the upstream proxy may take to answer a `CONNECT` (it connects to the target
/// meanwhile, so this covers its own connect time) before the client gets a 504.
pub const DEFAULT_UPSTREAM_RESPONSE_TIMEOUT: Duration = Duration::from_secs(30);
/// How long the best-effort local lookup of a chained name may take before it is skipped.
pub const DEFAULT_LOCAL_RESOLVE_TIMEOUT: Duration = Duration::from_secs(2);
/// Largest `CONNECT` response head accepted from the upstream proxy; bigger is a 502.
pub const MAX_CONNECT_RESPONSE_HEAD: usize = 16 * 1024;
/// Audit reason on allowed requests that went through the upstream proxy.
pub const VIA_UPSTREAM: &str = "via_upstream";
/// Bytes looked at per read of the upstream's response head.
const PEEK_CHUNK: usize = 4096;

/// Basic credentials for the upstream proxy. `Debug` never shows the password.
#[derive(Clone)]
pub struct UpstreamAuth {
    /// User name (percent-decoded).
    pub user: String,
    /// Password (percent-decoded); never logged.
    pub password: Zeroizing<String>,
}

impl UpstreamAuth {
    /// The `Proxy-Authorization` value, `Basic base64(user:password)`.
    fn header_text(&self) -> Zeroizing<String> {
        let mut plain = Zeroizing::new(String::with_capacity(
            self.user.len() + self.password.len() + 1,
        ));
        plain.push_str(&self.user);
        plain.push(':');
        plain.push_str(&self.password);
        let mut out = Zeroizing::new(String::from("Basic "));
        base64::engine::general_purpose::STANDARD.encode_string(plain.as_bytes(), &mut out);
        out
    }
}

impl fmt::Debug for UpstreamAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UpstreamAuth")
            .field("user", &self.user)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// The upstream proxy to chain through, and the hosts that bypass it.
#[derive(Clone)]
pub struct UpstreamProxyConfig {
    /// The upstream proxy's host (name or address).
    pub host: Host,
    /// The upstream proxy's port.
    pub port: u16,
    /// Basic credentials for the upstream proxy, if it wants them.
    pub auth: Option<UpstreamAuth>,
    /// Targets reached directly instead: `host`, `*.suffix` (strict subdomains, not the apex)
    /// or an IP literal, without a port; matched case-insensitively, as the allowlist is.
    pub bypass: Vec<HostPattern>,
    /// How long the upstream may take to answer a `CONNECT`.
    pub response_timeout: Duration,
    /// How long the local lookup of a chained name may take (zero: no local lookup).
    pub local_resolve_timeout: Duration,
}

impl UpstreamProxyConfig {
    /// Parses `HOST:PORT` or `http://[user[:password]@]HOST:PORT` (userinfo percent-decoded)
    /// and the bypass patterns.
    ///
    /// `https://` (TLS to the proxy itself) is refused, as are other schemes, a path, and a
    /// missing port. Error messages never contain the password.
    pub fn parse<S: AsRef<str>>(
        spec: &str,
        bypass: &[S],
    ) -> Result<UpstreamProxyConfig, ProxyError> {
        let (host, port, auth) = parse_spec(spec).map_err(|reason| {
            ProxyError::Config(format!("upstream proxy `{}`: {reason}", redact(spec)))
        })?;
        let bypass = bypass
            .iter()
            .map(|p| p.as_ref().trim())
            .filter(|p| !p.is_empty())
            .map(parse_bypass)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(UpstreamProxyConfig {
            host,
            port,
            auth,
            bypass,
            response_timeout: DEFAULT_UPSTREAM_RESPONSE_TIMEOUT,
            local_resolve_timeout: DEFAULT_LOCAL_RESOLVE_TIMEOUT,
        })
    }

    /// Like [`parse`](Self::parse) for optional settings: no proxy and no bypass is `None`; a
    /// bypass list without an upstream proxy is an error, never silently dropped.
    pub fn from_options<S: AsRef<str>>(
        spec: Option<&str>,
        bypass: &[S],
    ) -> Result<Option<UpstreamProxyConfig>, ProxyError> {
        match spec.map(str::trim).filter(|s| !s.is_empty()) {
            Some(s) => Self::parse(s, bypass).map(Some),
            None if bypass.iter().any(|p| !p.as_ref().trim().is_empty()) => Err(ProxyError::Config(
                "an upstream bypass list was given without an upstream proxy; set the upstream proxy or remove the bypass".into(),
            )),
            None => Ok(None),
        }
    }

    /// Whether `host:port` is reached directly rather than through the upstream proxy.
    pub fn bypasses(&self, host: &Host, port: u16) -> bool {
        self.bypass.iter().any(|p| p.matches(host, port))
    }

    /// `host:port` of the upstream proxy, without credentials (for logs).
    pub fn address(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }
}

impl fmt::Debug for UpstreamProxyConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UpstreamProxyConfig")
            .field("address", &self.address())
            .field("auth", &self.auth)
            .field(
                "bypass",
                &self
                    .bypass
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>(),
            )
            .field("response_timeout", &self.response_timeout)
            .field("local_resolve_timeout", &self.local_resolve_timeout)
            .finish()
    }
}

/// One bypass pattern; a port is refused (a bypass decides by host).
fn parse_bypass(p: &str) -> Result<HostPattern, ProxyError> {
    let pattern = HostPattern::parse(p)
        .map_err(|e| ProxyError::Config(format!("upstream bypass pattern: {e}")))?;
    if pattern.port.is_some() {
        return Err(ProxyError::Config(format!(
            "upstream bypass pattern `{p}`: write a host or *.suffix without a port"
        )));
    }
    Ok(pattern)
}

/// Splits a comma-separated bypass list (`NONO_UPSTREAM_BYPASS`), dropping empty entries.
pub fn split_bypass_list(list: &str) -> Vec<String> {
    list.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

/// Checks that a TCP connection to the upstream proxy can be opened (for start-up reports).
/// Resolves its name with the system resolver; does not test its credentials.
pub async fn check_reachable(
    config: &UpstreamProxyConfig,
    timeout: Duration,
) -> Result<(), ProxyError> {
    let context = format!("cannot connect to the upstream proxy {}", config.address());
    let addrs = match tokio::time::timeout(timeout, proxy_addrs(config, &SystemResolver)).await {
        Ok(r) => r.map_err(|source| ProxyError::Io {
            context: context.clone(),
            source,
        })?,
        Err(_) => {
            return Err(ProxyError::Io {
                context,
                source: io::Error::new(io::ErrorKind::TimedOut, "resolving its name timed out"),
            })
        }
    };
    match connect_checked(&addrs, timeout).await {
        Ok(_) => Ok(()),
        Err(ConnectFailure::Timeout) => Err(ProxyError::Io {
            context,
            source: io::Error::new(
                io::ErrorKind::TimedOut,
                format!("no answer within {timeout:?}"),
            ),
        }),
        Err(ConnectFailure::Failed(source)) => Err(ProxyError::Io { context, source }),
    }
}

/// Why chaining through the upstream proxy failed; each maps to a status and a reason.
#[derive(Debug)]
pub(crate) enum ChainError {
    /// No TCP connection to the upstream proxy within the connect timeout (504).
    ConnectTimeout,
    /// The upstream proxy refused the connection or its name did not resolve (502).
    Unreachable(io::Error),
    /// The upstream proxy did not answer the `CONNECT` in time (504).
    ResponseTimeout,
    /// The answer was not an HTTP response head, or too big (502).
    BadResponse(&'static str),
    /// The upstream proxy answered with a non-2xx status (502).
    Status(u16),
    /// The upstream proxy address is this proxy itself (502).
    SelfLoop,
}

impl ChainError {
    /// Status sent to the client.
    pub(crate) fn status(&self) -> StatusCode {
        match self {
            ChainError::ConnectTimeout | ChainError::ResponseTimeout => StatusCode::GATEWAY_TIMEOUT,
            _ => StatusCode::BAD_GATEWAY,
        }
    }

    /// Machine-readable reason for the body and the audit event.
    pub(crate) fn reason(&self) -> String {
        match self {
            ChainError::ConnectTimeout => "upstream_proxy_connect_timeout".into(),
            ChainError::Unreachable(_) => "upstream_proxy_unreachable".into(),
            ChainError::ResponseTimeout => "upstream_proxy_timeout".into(),
            ChainError::BadResponse(_) => "upstream_proxy_bad_response".into(),
            ChainError::Status(code) => format!("upstream_proxy_status_{code}"),
            ChainError::SelfLoop => "upstream_proxy_is_self".into(),
        }
    }
}

impl fmt::Display for ChainError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ChainError::ConnectTimeout => f.write_str("connecting to the upstream proxy timed out"),
            ChainError::Unreachable(e) => write!(f, "upstream proxy unreachable: {e}"),
            ChainError::ResponseTimeout => f.write_str("the upstream proxy did not answer in time"),
            ChainError::BadResponse(why) => write!(f, "bad answer from the upstream proxy: {why}"),
            ChainError::Status(code) => write!(f, "the upstream proxy answered {code}"),
            ChainError::SelfLoop => f.write_str("the upstream proxy is this proxy"),
        }
    }
}

/// The upstream proxy as the running server uses it.
pub(crate) struct Chain {
    config: UpstreamProxyConfig,
    resolver: Arc<dyn Resolver>,
    own_addr: SocketAddr,
    connect_timeout: Duration,
    /// The upstream proxy's addresses as last resolved, for [`Chain::is_itself`] when a
    /// lookup fails.
    known_addrs: std::sync::Mutex<Vec<SocketAddr>>,
}

impl Chain {
    /// Refuses an upstream proxy that is literally this proxy's listening address.
    pub(crate) fn new(
        config: UpstreamProxyConfig,
        resolver: Arc<dyn Resolver>,
        own_addr: SocketAddr,
        connect_timeout: Duration,
    ) -> Result<Chain, ProxyError> {
        if let Host::Ip(ip) = config.host {
            if is_self(SocketAddr::new(ip, config.port), own_addr) {
                return Err(ProxyError::Config(format!(
                    "the upstream proxy {} is this proxy's own listening address",
                    config.address()
                )));
            }
        }
        Ok(Chain {
            config,
            resolver,
            own_addr,
            connect_timeout,
            known_addrs: std::sync::Mutex::new(Vec::new()),
        })
    }

    /// Whether `host:port` goes through the upstream proxy (is not bypassed).
    pub(crate) fn chains(&self, host: &Host, port: u16) -> bool {
        // This machine (loopback, its interface addresses) is reached through the upstream
        // proxy only when that proxy runs here too (cntlm, px, a local tinyproxy); a remote
        // one would reach its own loopback, or take our own address the long way round.
        if host.is_local() && !self.config.host.is_local() {
            return false;
        }
        !self.config.bypasses(host, port)
    }

    /// `host:port` of the upstream proxy, for logs.
    pub(crate) fn address(&self) -> String {
        self.config.address()
    }

    /// `Proxy-Authorization` for the upstream proxy, marked sensitive.
    pub(crate) fn authorization(&self) -> Option<HeaderValue> {
        let auth = self.config.auth.as_ref()?;
        let mut v = HeaderValue::from_str(&auth.header_text()).ok()?;
        v.set_sensitive(true);
        Some(v)
    }

    /// Local admission of a target that will be chained: precheck always, then a best-effort
    /// local lookup whose every address must pass (see the module documentation).
    pub(crate) async fn admit(
        &self,
        gate: &Gate,
        host: &Host,
        port: u16,
    ) -> Result<(), DenyReason> {
        gate.precheck(host, port)?;
        let outcome = match host {
            // Literal addresses need no lookup: always fully checked.
            Host::Ip(_) => gate.admit(host, port).await,
            Host::Name(_) if self.config.local_resolve_timeout.is_zero() => return Ok(()),
            Host::Name(_) => match tokio::time::timeout(
                self.config.local_resolve_timeout,
                gate.admit(host, port),
            )
            .await
            {
                Ok(r) => r,
                Err(_) => {
                    tracing::debug!(
                        "local lookup of {host} timed out; the upstream proxy resolves it"
                    );
                    return Ok(());
                }
            },
        };
        match outcome {
            Ok(_) => Ok(()),
            Err(Refusal::Unresolvable(e)) => {
                tracing::debug!(
                    "local lookup of {host} failed ({e}); the upstream proxy resolves it"
                );
                Ok(())
            }
            Err(Refusal::Denied(r)) => Err(r),
        }
    }

    /// A TCP connection to the upstream proxy (for absolute-form HTTP requests).
    pub(crate) async fn connect_proxy(&self) -> Result<TcpStream, ChainError> {
        let addrs = match tokio::time::timeout(
            self.connect_timeout,
            proxy_addrs(&self.config, self.resolver.as_ref()),
        )
        .await
        {
            Ok(r) => r.map_err(ChainError::Unreachable)?,
            Err(_) => return Err(ChainError::ConnectTimeout),
        };
        self.remember(&addrs);
        let addrs: Vec<SocketAddr> = addrs
            .into_iter()
            .filter(|a| !is_self(*a, self.own_addr))
            .collect();
        if addrs.is_empty() {
            return Err(ChainError::SelfLoop);
        }
        match connect_checked(&addrs, self.connect_timeout).await {
            Ok(s) => Ok(s),
            Err(ConnectFailure::Timeout) => Err(ChainError::ConnectTimeout),
            Err(ConnectFailure::Failed(e)) => Err(ChainError::Unreachable(e)),
        }
    }

    /// Whether a direct connection to one of `addrs` would reach the upstream proxy itself:
    /// a bypassed target pointing there would hand the client a proxy with nono's network
    /// identity and none of its rules.
    pub(crate) async fn is_itself(&self, addrs: &[SocketAddr]) -> bool {
        if !addrs.iter().any(|a| a.port() == self.config.port) {
            return false;
        }
        let proxy = self.proxy_addrs_now(DEFAULT_LOCAL_RESOLVE_TIMEOUT).await;
        addrs.iter().any(|a| {
            proxy.iter().any(|p| {
                p.port() == a.port()
                    && crate::deny::canonical_ip(p.ip()) == crate::deny::canonical_ip(a.ip())
            })
        })
    }

    /// Adds `addrs` to the proxy addresses seen so far (a round-robin name may answer with a
    /// subset each time).
    fn remember(&self, addrs: &[SocketAddr]) {
        if let Ok(mut known) = self.known_addrs.lock() {
            for a in addrs {
                if !known.contains(a) {
                    known.push(*a);
                }
            }
        }
    }

    /// The upstream proxy's addresses: resolved now (and remembered), or as last resolved
    /// when the lookup fails or takes longer than `wait` (empty if never resolved).
    async fn proxy_addrs_now(&self, wait: Duration) -> Vec<SocketAddr> {
        let lookup = proxy_addrs(&self.config, self.resolver.as_ref());
        if let Ok(Ok(fresh)) = tokio::time::timeout(wait, lookup).await {
            self.remember(&fresh);
        }
        self.known_addrs
            .lock()
            .map(|k| k.clone())
            .unwrap_or_default()
    }

    /// A tunnel to `host:port` through the upstream proxy: `CONNECT`, then its 2xx answer.
    /// Bytes the upstream sends after its response head stay in the socket for the caller.
    pub(crate) async fn tunnel(&self, host: &Host, port: u16) -> Result<TcpStream, ChainError> {
        let mut stream = self.connect_proxy().await?;
        let target = format!("{host}:{port}");
        let mut request =
            Zeroizing::new(format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n"));
        if let Some(auth) = &self.config.auth {
            request.push_str("Proxy-Authorization: ");
            request.push_str(&auth.header_text());
            request.push_str("\r\n");
        }
        request.push_str("\r\n");
        let exchange = async {
            stream
                .write_all(request.as_bytes())
                .await
                .map_err(ChainError::Unreachable)?;
            // Interim 1xx answers (`100 Continue`) come before the real one.
            loop {
                let head = read_response_head(&mut stream, MAX_CONNECT_RESPONSE_HEAD).await?;
                match parse_status(&head)? {
                    100 | 102..=199 => continue,
                    _ => return Ok(head),
                }
            }
        };
        let head = match tokio::time::timeout(self.config.response_timeout, exchange).await {
            Ok(r) => r?,
            Err(_) => return Err(ChainError::ResponseTimeout),
        };
        match parse_status(&head)? {
            200..=299 => Ok(stream),
            code => Err(ChainError::Status(code)),
        }
    }
}

/// Every address of the upstream proxy.
async fn proxy_addrs(
    config: &UpstreamProxyConfig,
    resolver: &dyn Resolver,
) -> io::Result<Vec<SocketAddr>> {
    let ips = match &config.host {
        Host::Ip(ip) => vec![*ip],
        Host::Name(n) => resolver.resolve(n).await?,
    };
    if ips.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::NotFound,
            "the upstream proxy's name resolved to no address",
        ));
    }
    Ok(ips
        .into_iter()
        .map(|ip| SocketAddr::new(ip, config.port))
        .collect())
}

fn is_self(addr: SocketAddr, own: SocketAddr) -> bool {
    deny::check_addr(addr, true, Some(own)) == Some(DenyReason::SelfLoop)
}

/// Reads one response head, ending with the blank line, and not a byte more: data is peeked
/// first and only the head's bytes are consumed, so whatever the target sends right after
/// the upstream's `200` (an SSH banner, say) is left for the tunnel.
async fn read_response_head(stream: &mut TcpStream, limit: usize) -> Result<Vec<u8>, ChainError> {
    let mut head = Vec::new();
    let mut buf = [0u8; PEEK_CHUNK];
    loop {
        let n = stream
            .peek(&mut buf)
            .await
            .map_err(ChainError::Unreachable)?;
        if n == 0 {
            return Err(ChainError::BadResponse(
                "closed before a complete response head",
            ));
        }
        let end = head_end(&head, &buf[..n]);
        let take = end.unwrap_or(n);
        stream
            .read_exact(&mut buf[..take])
            .await
            .map_err(ChainError::Unreachable)?;
        head.extend_from_slice(&buf[..take]);
        if head.len() > limit {
            return Err(ChainError::BadResponse("response head too large"));
        }
        if end.is_some() {
            return Ok(head);
        }
    }
}

/// How many bytes of `more` complete the head whose start is `head` (which holds no blank
/// line yet), or `None` if the blank line is not in `more`.
fn head_end(head: &[u8], more: &[u8]) -> Option<usize> {
    let tail = &head[head.len().saturating_sub(3)..];
    let mut joined = Vec::with_capacity(tail.len() + more.len());
    joined.extend_from_slice(tail);
    joined.extend_from_slice(more);
    // The blank line: LF, then LF or CR LF (bare LF line ends are tolerated, RFC 9112 2.2).
    let end = (0..joined.len()).find_map(|i| match joined.get(i..) {
        Some([b'\n', b'\n', ..]) => Some(i + 2),
        Some([b'\n', b'\r', b'\n', ..]) => Some(i + 3),
        _ => None,
    })?;
    end.checked_sub(tail.len()).filter(|n| *n > 0)
}

/// The status code of `HTTP/1.x NNN reason`.
fn parse_status(head: &[u8]) -> Result<u16, ChainError> {
    let bad = ChainError::BadResponse("not an HTTP/1.x status line");
    let line = head
        .split(|&b| b == b'\n')
        .next()
        .ok_or(ChainError::BadResponse("empty response"))?;
    let line = std::str::from_utf8(line)
        .map_err(|_| ChainError::BadResponse("status line is not text"))?;
    let rest = line
        .strip_prefix("HTTP/1.1 ")
        .or_else(|| line.strip_prefix("HTTP/1.0 "));
    let code = rest
        .and_then(|r| r.get(..3))
        .ok_or(ChainError::BadResponse("not an HTTP/1.x status line"))?;
    let after = rest.and_then(|r| r.get(3..)).unwrap_or("");
    if !code.bytes().all(|b| b.is_ascii_digit())
        || !(after.is_empty() || after.starts_with([' ', '\r']))
    {
        return Err(bad);
    }
    code.parse::<u16>()
        .ok()
        .filter(|c| (100..=599).contains(c))
        .ok_or(bad)
}

/// The spec with any userinfo replaced, for error messages. Only a well-formed scheme is
/// kept (a password may contain `://`), and a spec without `@` that does not look like
/// `host:port` with a numeric port is not shown at all (it may be `user:password`).
fn redact(spec: &str) -> String {
    let s = spec.trim();
    let (scheme, rest) = split_scheme(s);
    // Only `host:port` with a real port is shown; anything else may be a password that
    // lost its `@` (`user:password`, `user:pass@word`, an all-digit password).
    let host_port = |r: &str| {
        // A path after the port is shown too (a refusal names it); it never holds userinfo.
        let r = r.split('/').next().unwrap_or(r);
        let port = match r.rsplit_once(':') {
            Some((host, port)) if !host.contains(':') || host.starts_with('[') => port,
            Some(_) => return false,
            None => return !r.is_empty(),
        };
        port.len() <= 5
            && port.bytes().all(|b| b.is_ascii_digit())
            && port.parse::<u16>().is_ok_and(|p| p > 0)
    };
    let shown = match rest.rsplit_once('@') {
        Some((_, host)) if host_port(host) => format!("***@{host}"),
        None if host_port(rest) => rest.to_string(),
        _ => "***".to_string(),
    };
    match scheme {
        Some(scheme) => format!("{scheme}://{shown}"),
        None => shown,
    }
}

/// `(scheme, rest)` when `s` starts with a well-formed URL scheme and `://`.
fn split_scheme(s: &str) -> (Option<&str>, &str) {
    match s.split_once("://") {
        Some((scheme, rest))
            if scheme.starts_with(|c: char| c.is_ascii_alphabetic())
                && scheme
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.')) =>
        {
            (Some(scheme), rest)
        }
        _ => (None, s),
    }
}

/// `(host, port, auth)` from a proxy spec; the reason on failure never quotes the userinfo.
fn parse_spec(spec: &str) -> Result<(Host, u16, Option<UpstreamAuth>), String> {
    let s = spec.trim();
    if s.is_empty() {
        return Err("empty address".into());
    }
    let rest = match split_scheme(s) {
        (None, rest) => rest,
        (Some(scheme), rest) => match scheme.to_ascii_lowercase().as_str() {
            "http" => rest,
            "https" => {
                return Err("https:// (TLS to the proxy itself) is not supported; use http://HOST:PORT \
                            (HTTPS traffic through it stays end-to-end encrypted)"
                    .into())
            }
            other => return Err(format!("unsupported scheme `{other}://`; use HOST:PORT or http://[user:password@]HOST:PORT")),
        },
    };
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    let (userinfo, hostport) = match rest.rsplit_once('@') {
        Some((u, h)) => (Some(u), h),
        None => (None, rest),
    };
    if hostport.contains(['/', '?', '#']) {
        return Err(
            "a path has no meaning in a proxy address; write HOST:PORT or http://HOST:PORT".into(),
        );
    }
    let auth = userinfo.map(parse_userinfo).transpose()?;
    let (host_raw, port_raw) = match hostport.strip_prefix('[') {
        Some(v6) => {
            let (addr, after) = v6
                .split_once(']')
                .ok_or("missing `]` after the IPv6 address")?;
            (&hostport[..addr.len() + 2], after.strip_prefix(':'))
        }
        None => match hostport.split_once(':') {
            Some((h, p)) if !p.contains(':') => (h, Some(p)),
            Some(_) => return Err("write an IPv6 proxy address as [ADDR]:PORT".into()),
            None => (hostport, None),
        },
    };
    let port_raw = port_raw.ok_or("the port is required, e.g. proxy.corp.example:3128")?;
    // Not quoted: `http://user:password` (the `@host` forgotten) puts a password here.
    let port = parse_port(port_raw).map_err(|_| {
        "the port must be 1-65535 in digits (credentials go before an `@`: http://user:password@HOST:PORT)"
            .to_string()
    })?;
    let host = Host::parse(host_raw)
        .map_err(|_| "the host is not a valid name or IP address".to_string())?;
    Ok((host, port, auth))
}

/// `user[:password]`, percent-decoded.
fn parse_userinfo(userinfo: &str) -> Result<UpstreamAuth, String> {
    let (user, password) = userinfo.split_once(':').unwrap_or((userinfo, ""));
    let user = percent_decode_str(user)
        .decode_utf8()
        .map_err(|_| "the user name is not valid percent-encoded UTF-8")?
        .into_owned();
    if user.is_empty() || user.contains(':') || user.chars().any(char::is_control) {
        return Err("the user name must be non-empty, without `:` or control characters".into());
    }
    let password = Zeroizing::new(
        percent_decode_str(password)
            .decode_utf8()
            .map_err(|_| "the password is not valid percent-encoded UTF-8")?
            .into_owned(),
    );
    Ok(UpstreamAuth { user, password })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(r: Result<UpstreamProxyConfig, ProxyError>) -> String {
        match r {
            Ok(c) => panic!("expected an error, got {c:?}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn parses_plain_and_url_forms() {
        let none: &[&str] = &[];
        let c = UpstreamProxyConfig::parse("proxy.corp.example:3128", none).unwrap();
        assert_eq!(c.address(), "proxy.corp.example:3128");
        assert!(c.auth.is_none());
        let c = UpstreamProxyConfig::parse("HTTP://Proxy.Corp.Example:8080/", none).unwrap();
        assert_eq!(c.address(), "proxy.corp.example:8080");
        let c = UpstreamProxyConfig::parse("[fd00::1]:3128", none).unwrap();
        assert_eq!(c.address(), "[fd00::1]:3128");
        let c = UpstreamProxyConfig::parse("http://al%40ice:p%3Ass%40w0rd@10.0.0.1:3128", none)
            .unwrap();
        let auth = c.auth.unwrap();
        assert_eq!(auth.user, "al@ice");
        assert_eq!(auth.password.as_str(), "p:ss@w0rd");
        // An unencoded `@` in the password: the host is after the last one.
        let c = UpstreamProxyConfig::parse("http://bob:a@b@proxy:3128", none).unwrap();
        assert_eq!(c.auth.unwrap().password.as_str(), "a@b");
    }

    #[test]
    fn refuses_https_paths_missing_ports_and_never_echoes_the_password() {
        let none: &[&str] = &[];
        assert!(
            msg(UpstreamProxyConfig::parse("https://proxy:3128", none)).contains("not supported")
        );
        assert!(msg(UpstreamProxyConfig::parse("socks5://proxy:1080", none))
            .contains("unsupported scheme"));
        assert!(msg(UpstreamProxyConfig::parse("http://proxy:3128/pac", none)).contains("path"));
        assert!(msg(UpstreamProxyConfig::parse("proxy", none)).contains("port is required"));
        assert!(msg(UpstreamProxyConfig::parse("proxy:0", none)).contains("port must be 1-65535"));
        assert!(msg(UpstreamProxyConfig::parse("fd00::1:3128", none)).contains("[ADDR]:PORT"));
        for bad in [
            "http://u:hunter2@bad host:1",
            "http://u:hunter2@proxy",
            "http://u:hunter2@p:3128/x",
        ] {
            let m = msg(UpstreamProxyConfig::parse(bad, none));
            assert!(!m.contains("hunter2"), "{m}");
            assert!(m.contains("***@"), "{m}");
        }
    }

    #[test]
    fn debug_and_header_never_show_the_password_in_clear() {
        let c =
            UpstreamProxyConfig::parse("http://u:hunter2@proxy:3128", &["*.corp.example"]).unwrap();
        let d = format!("{c:?}");
        assert!(
            !d.contains("hunter2") && d.contains("<redacted>") && d.contains("*.corp.example"),
            "{d}"
        );
        let auth = c.auth.as_ref().unwrap();
        assert_eq!(auth.header_text().as_str(), "Basic dTpodW50ZXIy");
    }

    #[test]
    fn bypass_patterns_match_case_insensitively_and_need_a_proxy() {
        let c = UpstreamProxyConfig::parse("proxy:3128", &["*.Corp.Example", "build.local", " "])
            .unwrap();
        assert_eq!(c.bypass.len(), 2);
        let h = |s: &str| Host::parse(s).unwrap();
        assert!(c.bypasses(&h("git.CORP.example"), 443));
        assert!(c.bypasses(&h("BUILD.local"), 80));
        assert!(
            !c.bypasses(&h("corp.example"), 443),
            "a wildcard does not match the apex"
        );
        assert!(!c.bypasses(&h("example.com"), 443));
        assert!(
            msg(UpstreamProxyConfig::parse("proxy:3128", &["http://x/"]))
                .contains("upstream bypass pattern")
        );
        assert!(msg(UpstreamProxyConfig::parse(
            "proxy:3128",
            &["git.corp.example:22"]
        ))
        .contains("without a port"));
        let none: &[&str] = &[];
        assert!(UpstreamProxyConfig::from_options(None, none)
            .unwrap()
            .is_none());
        assert!(UpstreamProxyConfig::from_options(Some(" "), &[""])
            .unwrap()
            .is_none());
        let err = UpstreamProxyConfig::from_options(None, &["*.corp.example"])
            .unwrap_err()
            .to_string();
        assert!(err.contains("without an upstream proxy"), "{err}");
        assert_eq!(
            split_bypass_list(" a.example, *.b.example,,"),
            vec!["a.example", "*.b.example"]
        );
    }

    #[test]
    fn head_end_finds_the_blank_line_across_reads() {
        assert_eq!(head_end(b"", b"HTTP/1.1 200 OK\r\n\r\nSSH-2.0"), Some(19));
        assert_eq!(head_end(b"", b"HTTP/1.1 200 OK\n\nSSH-2.0"), Some(17));
        assert_eq!(head_end(b"HTTP/1.1 200 OK\r\n", b"\r\nx"), Some(2));
        assert_eq!(head_end(b"HTTP/1.1 200 OK\n", b"\nx"), Some(1));
        assert_eq!(head_end(b"HTTP/1.1 200 OK\r\n\r", b"\nrest"), Some(1));
        assert_eq!(head_end(b"HTTP/1.1 200 OK\r", b"\n\r\n"), Some(3));
        assert_eq!(head_end(b"HTTP/1.1 200 OK", b"\r\nX: y\r\n"), None);
    }

    #[test]
    fn status_lines() {
        assert_eq!(
            parse_status(b"HTTP/1.0 200 Connection established\r\n\r\n").unwrap(),
            200
        );
        assert_eq!(
            parse_status(b"HTTP/1.1 407 Proxy Authentication Required\r\n\r\n").unwrap(),
            407
        );
        assert_eq!(parse_status(b"HTTP/1.1 200\r\n\r\n").unwrap(), 200);
        for bad in [
            &b"garbage\r\n\r\n"[..],
            b"HTTP/2 200\r\n\r\n",
            b"HTTP/1.1 2000 x\r\n\r\n",
            b"HTTP/1.1 abc\r\n\r\n",
        ] {
            assert!(
                matches!(parse_status(bad), Err(ChainError::BadResponse(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn chain_errors_map_to_statuses_and_reasons() {
        assert_eq!(
            ChainError::Status(407).reason(),
            "upstream_proxy_status_407"
        );
        assert_eq!(ChainError::Status(407).status(), StatusCode::BAD_GATEWAY);
        assert_eq!(
            ChainError::ResponseTimeout.status(),
            StatusCode::GATEWAY_TIMEOUT
        );
        let e = ChainError::Unreachable(io::Error::from(io::ErrorKind::ConnectionRefused));
        assert_eq!(
            (e.status(), e.reason().as_str()),
            (StatusCode::BAD_GATEWAY, "upstream_proxy_unreachable")
        );
    }

    #[test]
    fn an_upstream_at_our_own_address_is_refused() {
        let none: &[&str] = &[];
        let c = UpstreamProxyConfig::parse("127.0.0.1:3128", none).unwrap();
        let own: SocketAddr = "127.0.0.1:3128".parse().unwrap();
        assert!(Chain::new(
            c.clone(),
            Arc::new(SystemResolver),
            own,
            Duration::from_secs(1)
        )
        .is_err());
        let other: SocketAddr = "127.0.0.1:3129".parse().unwrap();
        assert!(Chain::new(c, Arc::new(SystemResolver), other, Duration::from_secs(1)).is_ok());
    }

    #[test]
    fn errors_never_show_a_password_whatever_the_spec_looks_like() {
        assert_eq!(redact("u:Pa55://word@proxy:3128"), "***@proxy:3128");
        assert_eq!(redact("http://u:pw@proxy:3128"), "http://***@proxy:3128");
        assert_eq!(redact("http://u:pw:3128"), "http://***");
        assert_eq!(redact("http://alice:S3cretPw"), "http://***");
        assert_eq!(redact("http://alice:p@ss:w0rd"), "http://***");
        assert_eq!(redact("http://alice:p@ssw0rd"), "http://***@ssw0rd");
        assert_eq!(redact("http://alice:123456"), "http://***");
        let e = msg(UpstreamProxyConfig::parse(
            "http://alice:S3cretPw",
            &[] as &[&str],
        ));
        assert!(!e.contains("S3cretPw"), "{e}");
        assert_eq!(redact("http://proxy.corp:3128"), "http://proxy.corp:3128");
        assert_eq!(redact("[::1]:3128"), "[::1]:3128");
        // A password with `://` is userinfo, not a scheme (and so never in an error).
        let c = UpstreamProxyConfig::parse("u:Pa55://word@proxy:3128", &[] as &[&str])
            .expect("a password with `://` parses");
        assert_eq!(
            c.auth.expect("credentials").password.as_str(),
            "Pa55://word"
        );
    }
}
