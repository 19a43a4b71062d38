//! The credential-injecting reverse proxy: `http://127.0.0.1:PORT/<service>/<rest>` is sent to
//! the route's upstream base + the normalised rest, with the real credential in place of the
//! phantom token.
//!
//! The upstream host always comes from the route, never from the request. Bodies stream both
//! ways (hyper bodies are passed through, never collected); upstream connections are pooled
//! per route, opened through [`Shared::open_upstream`] (deny list, DNS check of every address,
//! upstream chaining) and TLS-verified against the WebPKI roots plus the route's `tls_ca`.
//! Redirects are returned to the client, not followed.

pub(crate) mod conn;
pub mod credential;
pub mod endpoint;
pub mod inject;
pub mod route;

use std::sync::{Arc, Weak};

use http::header::{self, HeaderValue};
use http::{Request, Response, StatusCode, Uri, Version};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use serde::Serialize;
use zeroize::Zeroizing;

use crate::audit::{AuditEvent, Decision, Mode};
use crate::credential::{Credential, CredentialError};
use crate::endpoint::{NormalPath, PathError};
use crate::error::ProxyError;
use crate::filter::Host;
use crate::respond::{self, Body};
use crate::reverse::conn::{ConnectError, RouteConnector};
use crate::route::{validate_routes, RouteConfig, RouteError};
use crate::server::{ConnState, Shared};

/// A route ready to serve.
pub(crate) struct Route {
    cfg: RouteConfig,
    phantom: Zeroizing<String>,
    credential: Arc<Credential>,
    load_error: Option<String>,
    host: Host,
    port: u16,
    base: NormalPath,
    origin: String,
    host_header: HeaderValue,
    /// HTTP/1.1 only (the local URL, upgrades, HTTP/1.1 clients in a tunnel).
    client: Client<RouteConnector, Incoming>,
    /// Offers HTTP/2 upstream, for HTTP/2 clients in an intercepted tunnel.
    client_h2: Client<RouteConnector, Incoming>,
}

/// One route whose credential was loaded (or failed to load, tolerated).
struct LoadedRoute {
    cfg: RouteConfig,
    credential: Arc<Credential>,
    load_error: Option<String>,
    tls: Arc<rustls::ClientConfig>,
}

/// Routes whose credentials are loaded, before the connectors exist.
pub(crate) struct PreparedRoutes {
    routes: Vec<LoadedRoute>,
}

/// Every route, looked up by name.
pub(crate) struct RouteTable {
    routes: Vec<Route>,
}

/// What `nono proxy` prints for one route.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RouteStatus {
    /// Service name.
    pub name: String,
    /// Where clients send requests (`http://127.0.0.1:PORT/<name>`).
    pub local_url: String,
    /// Upstream base URL.
    pub upstream: String,
    /// Description of the credential source (never the secret).
    pub source: String,
    /// Whether the credential is loaded now.
    pub loaded: bool,
    /// Why it could not be loaded at start, if it could not.
    pub error: Option<String>,
    /// Endpoint rules as `METHOD /glob`; empty means every endpoint.
    pub endpoint_rules: Vec<String>,
    /// Endpoints refused unless an endpoint rule names them (`METHOD /glob`).
    pub default_deny: Vec<String>,
}

impl PreparedRoutes {
    /// Validates the routes, loads every credential and builds TLS settings. A credential
    /// that cannot be loaded fails start-up unless the route is optional or `tolerate` is set.
    pub(crate) fn load(
        configs: &[RouteConfig],
        tolerate: bool,
    ) -> Result<PreparedRoutes, ProxyError> {
        validate_routes(configs).map_err(ProxyError::Route)?;
        let mut routes = Vec::new();
        for cfg in configs {
            let tls = crate::reverse::conn::tls_config(cfg)?;
            let cred = Arc::new(Credential::new(cfg.source.clone()));
            let error = match cred.get() {
                Ok(_) => None,
                Err(e) if tolerate || cfg.optional => {
                    tracing::warn!(
                        "credential route `{}`: {} unavailable: {e}",
                        cfg.name,
                        cfg.source.describe()
                    );
                    Some(e.to_string())
                }
                Err(cause) => {
                    return Err(ProxyError::Credential {
                        route: cfg.name.clone(),
                        from: cfg.source.describe(),
                        cause,
                    })
                }
            };
            routes.push(LoadedRoute {
                cfg: cfg.clone(),
                credential: cred,
                load_error: error,
                tls,
            });
        }
        Ok(PreparedRoutes { routes })
    }

    /// `host:port` allowlist entries admitting exactly the route upstreams.
    pub(crate) fn gate_patterns(&self) -> Vec<String> {
        self.routes
            .iter()
            .filter_map(|r| {
                let c = &r.cfg;
                let (h, p) = c.upstream_host_port()?;
                Some(format!("{}:{p}", Host::parse(&h).ok()?))
            })
            .collect()
    }

    /// Builds the connectors and clients; `shared` is the proxy state they connect through.
    pub(crate) fn into_table(self, shared: Weak<Shared>) -> Result<RouteTable, RouteError> {
        let mut routes = Vec::new();
        for LoadedRoute {
            cfg,
            credential,
            load_error,
            tls,
        } in self.routes
        {
            let bad = |reason: &str| RouteError::Invalid {
                route: cfg.name.clone(),
                field: "upstream",
                reason: reason.to_string(),
            };
            let (host_str, port) = cfg
                .upstream_host_port()
                .ok_or_else(|| bad("no host or port"))?;
            let host = Host::parse(&host_str).map_err(|e| bad(&e.to_string()))?;
            let base = NormalPath::parse(cfg.upstream.path()).map_err(|e| bad(&e.to_string()))?;
            let authority = match cfg.upstream.port() {
                Some(p) => format!("{host_str}:{p}"),
                None => host_str.clone(),
            };
            let host_header =
                HeaderValue::from_str(&authority).map_err(|_| bad("host is not header-safe"))?;
            let origin = format!("{}://{authority}", cfg.upstream.scheme());
            let https = cfg.upstream.scheme() == "https";
            let tls_h2 = https.then(|| {
                let mut c = (*tls).clone();
                c.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
                Arc::new(c)
            });
            let tls = https.then_some(tls);
            let client_for = |tls| -> Result<Client<RouteConnector, Incoming>, RouteError> {
                let connector = RouteConnector::new(
                    shared.clone(),
                    host.clone(),
                    port,
                    tls,
                    &host_str,
                    Mode::Reverse,
                )
                .map_err(|e| bad(&e))?;
                Ok(Client::builder(TokioExecutor::new())
                    .pool_timer(TokioTimer::new())
                    .pool_max_idle_per_host(crate::config::MAX_IDLE_UPSTREAM_PER_HOST)
                    .timer(TokioTimer::new())
                    .build(connector))
            };
            let client = client_for(tls)?;
            let client_h2 = client_for(tls_h2)?;
            routes.push(Route {
                phantom: inject::generate_phantom(),
                cfg,
                credential,
                load_error,
                host,
                port,
                base,
                origin,
                host_header,
                client,
                client_h2,
            });
        }
        Ok(RouteTable { routes })
    }
}

impl RouteTable {
    /// No routes.
    pub(crate) fn empty() -> RouteTable {
        RouteTable { routes: Vec::new() }
    }

    fn get(&self, name: &str) -> Option<&Route> {
        self.routes.iter().find(|r| r.cfg.name == name)
    }

    /// The hosts of routes whose CONNECTs `shared` intercepts.
    pub(crate) fn hosts_intercepted<'a>(
        &'a self,
        shared: &'a Shared,
    ) -> impl Iterator<Item = &'a Host> + 'a {
        self.routes
            .iter()
            .filter(|r| shared.intercepts(&r.host, r.port))
            .map(|r| &r.host)
    }

    /// Whether some route's upstream is at `host:port`.
    pub(crate) fn has_route_at(&self, host: &Host, port: u16) -> bool {
        self.routes
            .iter()
            .any(|r| r.port == port && r.host.same_as(host))
    }

    /// The route at `host:port` whose base path covers `path` (the longest base wins).
    pub(crate) fn route_at(&self, host: &Host, port: u16, path: &NormalPath) -> Option<&Route> {
        self.routes
            .iter()
            .filter(|r| r.port == port && r.host.same_as(host))
            .filter(|r| path.segments.starts_with(&r.base.segments))
            .max_by_key(|r| r.base.segments.len())
    }

    /// Whether `host` is some route's upstream host (any port).
    pub(crate) fn is_route_host(&self, host: &Host) -> bool {
        self.routes.iter().any(|r| r.host.same_as(host))
    }

    /// `BASE_URL` and phantom variables for a client of the proxy at `base` (`http://h:p`).
    pub(crate) fn env(&self, base: &str) -> Vec<(String, String)> {
        let mut v = Vec::new();
        for r in &self.routes {
            if let Some(name) = &r.cfg.base_url_env {
                v.push((name.clone(), format!("{base}/{}", r.cfg.name)));
            }
            if let Some(name) = &r.cfg.env_var {
                v.push((name.clone(), r.phantom.to_string()));
            }
        }
        v
    }

    /// Diagnostics for every route.
    pub(crate) fn status(&self, base: &str) -> Vec<RouteStatus> {
        self.routes
            .iter()
            .map(|r| RouteStatus {
                name: r.cfg.name.clone(),
                local_url: format!("{base}/{}", r.cfg.name),
                upstream: r.cfg.upstream.to_string(),
                source: r.cfg.source.describe(),
                loaded: r.credential.is_loaded(),
                error: r.load_error.clone(),
                endpoint_rules: r
                    .cfg
                    .endpoint_rules
                    .iter()
                    .map(|e| format!("{} {}", e.method, e.path_glob))
                    .collect(),
                default_deny: r
                    .cfg
                    .default_deny
                    .iter()
                    .map(|e| format!("{} {}", e.method, e.path_glob))
                    .collect(),
            })
            .collect()
    }

    /// Whether a `NO_PROXY` entry (`host`, `host:port`, `.suffix`, `*.suffix`) would send a
    /// route's upstream host around the proxy; such entries are dropped.
    pub(crate) fn covers_no_proxy_entry(&self, entry: &str) -> bool {
        let e = entry.trim();
        let bare = match e.strip_prefix('[') {
            Some(rest) => rest.split(']').next().unwrap_or(""),
            None if e.matches(':').count() == 1 => e.split(':').next().unwrap_or(""),
            None => e,
        };
        let suffix = bare.strip_prefix("*.").or_else(|| bare.strip_prefix('.'));
        self.routes.iter().any(|r| match (&r.host, suffix) {
            (Host::Name(n), Some(s)) => {
                let s = s.to_ascii_lowercase();
                *n == s || n.ends_with(&format!(".{s}"))
            }
            (h, None) => Host::parse(bare).is_ok_and(|b| b.same_as(h)),
            _ => false,
        })
    }
}

pub(crate) fn path_reason(e: &PathError) -> &'static str {
    match e {
        PathError::EncodedSeparator => "path_encoded_separator",
        PathError::EscapesRoot => "path_escapes_route",
        PathError::NotUtf8 => "path_not_utf8",
        PathError::DotSegmentParameter => "path_dot_segment_parameter",
    }
}

/// How a route request arrived: through the route's local URL, or inside an intercepted
/// tunnel to the route's host.
pub(crate) struct RouteCall<'a> {
    /// `Reverse` or `Intercept`.
    pub(crate) mode: Mode,
    /// Audit target: the service name, or the tunnel's host.
    pub(crate) target: &'a str,
    /// Audit port (0 for the local URL).
    pub(crate) port: u16,
    /// The client must present the phantom (or session token): on the local URL, which needs
    /// no proxy authentication. A tunnel authenticated with the session token at CONNECT.
    pub(crate) require_phantom: bool,
    /// Offer HTTP/2 upstream (the client negotiated it).
    pub(crate) h2: bool,
    /// What keeps the client connection's slot while a WebSocket it upgraded lives (`None`:
    /// taken from the connection itself).
    pub(crate) guard: Option<crate::upgrade::Guard>,
}

/// Serves one origin-form request.
pub(crate) async fn handle(
    req: Request<Incoming>,
    shared: Arc<Shared>,
    conn: Arc<ConnState>,
) -> Response<Body> {
    let method = req.method().as_str().to_string();
    let raw_path = req.uri().path().to_string();
    let info = Some((method.as_str(), raw_path.as_str()));
    let after = raw_path.strip_prefix('/').unwrap_or(&raw_path);
    let (name, rest) = match after.find('/') {
        Some(i) => (&after[..i], &after[i..]),
        None => (after, ""),
    };
    let table = shared.routes();
    let Some(route) = table.get(name) else {
        return shared.refuse(
            Mode::Reverse,
            name,
            0,
            info,
            StatusCode::NOT_FOUND,
            "unknown_service",
        );
    };
    let rest = match NormalPath::parse(rest) {
        Ok(p) => p,
        Err(e) => {
            return shared.refuse(
                Mode::Reverse,
                name,
                0,
                info,
                StatusCode::BAD_REQUEST,
                path_reason(&e),
            )
        }
    };
    let full = NormalPath::under(&route.base, &rest);
    let call = RouteCall {
        mode: Mode::Reverse,
        target: name,
        port: 0,
        require_phantom: true,
        h2: false,
        guard: None,
    };
    serve_route(&shared, &conn, route, req, full, &call).await
}

/// Sends one request to `route`'s upstream at the normalised `full` path (base included) with
/// the real credential, after the phantom, method and endpoint checks.
pub(crate) async fn serve_route(
    shared: &Shared,
    conn: &ConnState,
    route: &Route,
    mut req: Request<Incoming>,
    full: NormalPath,
    call: &RouteCall<'_>,
) -> Response<Body> {
    let (mode, name, port) = (call.mode, call.target, call.port);
    let method = req.method().as_str().to_string();
    let mut path = full.encoded();
    let mut query = req.uri().query().map(str::to_string);
    let audit_path = path.clone();
    let info = Some((method.as_str(), audit_path.as_str()));
    let refuse = |status, reason: &str| shared.refuse(mode, name, port, info, status, reason);

    if call.require_phantom
        && !inject::authenticate(
            &route.cfg.inject,
            &route.phantom,
            shared.session_token(),
            req.headers(),
            &path,
            query.as_deref(),
        )
    {
        return refuse(StatusCode::UNAUTHORIZED, "phantom_token_required");
    }
    if let Some(busy) = shared.authenticated(conn, mode, name, port, info) {
        return busy;
    }
    // TRACE echoes the request, injected credential included, back to the client.
    if method.eq_ignore_ascii_case("TRACE") || method.eq_ignore_ascii_case("TRACK") {
        return refuse(StatusCode::METHOD_NOT_ALLOWED, "method_echoes_credential");
    }
    if let Err(d) = crate::endpoint::endpoint_decision(
        &route.cfg.endpoint_rules,
        &route.cfg.default_deny,
        &method,
        &full,
    ) {
        return refuse(StatusCode::FORBIDDEN, d.as_str());
    }
    let cred = route.credential.clone();
    let secret = match tokio::task::spawn_blocking(move || cred.get()).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => return unavailable(shared, route, call, info, &e),
        Err(_) => return refuse(StatusCode::SERVICE_UNAVAILABLE, "credential_unavailable"),
    };

    let upgrade = match crate::upgrade::take(&mut req) {
        Ok(u) => u,
        Err(reason) => return refuse(StatusCode::BAD_REQUEST, reason),
    };
    let (mut parts, body) = req.into_parts();
    crate::upgrade::clean_request(&mut parts.headers, upgrade.as_ref());
    if let Err(e) = inject::inject(
        &route.cfg.inject,
        &route.phantom,
        &secret,
        &mut parts.headers,
        &mut path,
        &mut query,
    ) {
        return refuse(StatusCode::BAD_REQUEST, e.as_str());
    }
    parts
        .headers
        .insert(header::HOST, route.host_header.clone());
    let target = Zeroizing::new(match &query {
        Some(q) => format!("{}{path}?{q}", route.origin),
        None => format!("{}{path}", route.origin),
    });
    // The URI may hold the credential (query/path modes): it is never logged.
    parts.uri = match target.parse::<Uri>() {
        Ok(u) => u,
        Err(_) => return refuse(StatusCode::BAD_REQUEST, "malformed_path"),
    };
    parts.version = Version::HTTP_11;
    // An upgrade needs HTTP/1.1 upstream; otherwise the client's protocol choice is offered.
    let client = if call.h2 && upgrade.is_none() {
        &route.client_h2
    } else {
        &route.client
    };
    let mut resp = match client.request(Request::from_parts(parts, body)).await {
        Ok(r) => r,
        Err(e) => return upstream_error(shared, mode, name, port, info, &e),
    };
    let upgraded = match upgrade {
        Some(u) => {
            let guard = call
                .guard
                .clone()
                .unwrap_or_else(|| crate::upgrade::guard_of(conn));
            u.finish(&mut resp, guard, shared.shutdown_signal())
        }
        None if crate::upgrade::unasked(&resp) => Err("upstream_bad_upgrade"),
        None => Ok(None),
    };
    let upgraded = match upgraded {
        Ok(u) => u,
        Err(reason) => return refuse(StatusCode::BAD_GATEWAY, reason),
    };
    shared.audit.record(
        AuditEvent::new(mode, Decision::Allow, name, port, resp.status().as_u16())
            .with_request(&method, Some(&audit_path)),
    );
    let (mut parts, body) = resp.into_parts();
    crate::upgrade::clean_response(&mut parts.headers, upgraded);
    inject::scrub_response_headers(&mut parts.headers, &secret, &route.phantom);
    drop(secret);
    Response::from_parts(parts, body.boxed())
}

/// Headers some upstreams read as a different method, path or host than the ones the
/// endpoint rules checked (`X-HTTP-Method-Override: DELETE` on an allowed POST,
/// `X-Original-URL: /admin` on an allowed GET, `X-Forwarded-Host`).
pub(crate) fn strip_rerouting_headers(headers: &mut http::HeaderMap) {
    const OVERRIDES: [&str; 7] = [
        "x-http-method-override",
        "x-http-method",
        "x-method-override",
        "x-original-method",
        "x-original-url",
        "x-rewrite-url",
        "forwarded",
    ];
    for name in OVERRIDES {
        headers.remove(name);
    }
    let forwarded: Vec<http::HeaderName> = headers
        .keys()
        .filter(|k| k.as_str().starts_with("x-forwarded-"))
        .cloned()
        .collect();
    for name in forwarded {
        headers.remove(name);
    }
}

fn unavailable(
    shared: &Shared,
    route: &Route,
    call: &RouteCall<'_>,
    info: Option<(&str, &str)>,
    e: &CredentialError,
) -> Response<Body> {
    tracing::warn!(
        "credential route `{}`: {} unavailable: {e}",
        route.cfg.name,
        route.cfg.source.describe()
    );
    shared.refuse(
        call.mode,
        call.target,
        call.port,
        info,
        StatusCode::SERVICE_UNAVAILABLE,
        "credential_unavailable",
    )
}

/// Maps a client error to the answer: the connector's refusal keeps its status and reason.
pub(crate) fn upstream_error(
    shared: &Shared,
    mode: Mode,
    name: &str,
    port: u16,
    info: Option<(&str, &str)>,
    e: &hyper_util::client::legacy::Error,
) -> Response<Body> {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(e);
    while let Some(c) = cause {
        if let Some(ce) = c.downcast_ref::<ConnectError>() {
            return match ce {
                // Already audited by the admission code.
                ConnectError::Refused { status, reason } => respond::text(*status, reason),
                ConnectError::Tls(err) => {
                    tracing::warn!("{name}: TLS with the upstream failed: {err}");
                    shared.refuse(
                        mode,
                        name,
                        port,
                        info,
                        StatusCode::BAD_GATEWAY,
                        "upstream_tls_failed",
                    )
                }
                ConnectError::ShuttingDown => shared.refuse(
                    mode,
                    name,
                    port,
                    info,
                    StatusCode::SERVICE_UNAVAILABLE,
                    "shutting_down",
                ),
            };
        }
        cause = c.source();
    }
    tracing::debug!("{name}: upstream request failed: {e}");
    shared.refuse(
        mode,
        name,
        port,
        info,
        StatusCode::BAD_GATEWAY,
        "upstream_failed",
    )
}
