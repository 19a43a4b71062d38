//! TLS interception: for the hosts where the proxy must see HTTP (credential routes, URL-scoped
//! allow entries), a CONNECT is answered 200, then TLS is terminated here with a leaf for the
//! CONNECT host signed by the session CA, and every inner request goes through the same rules
//! as the reverse proxy before it is sent on over verified TLS. Every other CONNECT stays an
//! end-to-end tunnel, and without such hosts no CA exists at all.
//!
//! - [`ca`]: the session CA (generated or loaded) and leaf issuance.
//! - [`leaf`]: the bounded leaf cache.
//! - [`bundle`]: the trust bundle clients are pointed at.
//! - [`url_rule`]: `[METHOD ]https://host/path/glob` allow entries.
//! - `tunnel`: the TLS handshake (SNI checked against the CONNECT authority) and the inner
//!   HTTP/1.1 or HTTP/2 server; `inner`: one inner request.

pub mod bundle;
pub mod ca;
mod inner;
pub mod leaf;
mod tunnel;
pub mod url_rule;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, Weak};

use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use rustls::ClientConfig;

use crate::error::ProxyError;
use crate::filter::{Host, HostFilter};
use crate::reverse::conn::RouteConnector;
use crate::reverse::RouteTable;
use crate::server::Shared;

pub(crate) use tunnel::start;

use self::bundle::{SystemRoots, DEFAULT_CA_ENV_VARS};
use self::ca::CertAuthority;
use self::leaf::{LeafCache, DEFAULT_LEAF_CACHE};
use self::url_rule::UrlRule;

/// Where the interception CA comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CaSource {
    /// A fresh ECDSA P-256 CA, valid this many days (1-365).
    Generate {
        /// Validity in days.
        validity_days: u32,
    },
    /// An existing CA: PEM certificate and PKCS#8 PEM key.
    Files {
        /// The certificate.
        cert: PathBuf,
        /// The key.
        key: PathBuf,
    },
}

/// TLS interception settings.
#[derive(Debug, Clone)]
pub struct InterceptConfig {
    /// The CA.
    pub ca: CaSource,
    /// URL-scoped allow entries; their hosts are intercepted and only matching requests pass.
    pub url_rules: Vec<UrlRule>,
    /// Host patterns never intercepted (certificate-pinned clients); a credential route there
    /// is reachable only through its local URL.
    pub exclude: Vec<String>,
    /// Variables pointed at the trust bundle in clients' environments.
    pub ca_env_vars: Vec<String>,
    /// The roots to put in the bundle and to verify upstreams with (the parent's
    /// `SSL_CERT_FILE`); `None` uses the distribution's bundle.
    pub roots_file: Option<PathBuf>,
    /// Directory under which the per-session bundle directory is made; `None` is the
    /// system temporary directory.
    pub bundle_parent: Option<PathBuf>,
    /// Leaf certificates kept.
    pub leaf_cache: usize,
}

impl Default for InterceptConfig {
    fn default() -> Self {
        InterceptConfig {
            ca: CaSource::Generate { validity_days: 1 },
            url_rules: Vec::new(),
            exclude: Vec::new(),
            ca_env_vars: DEFAULT_CA_ENV_VARS.iter().map(|s| s.to_string()).collect(),
            roots_file: None,
            bundle_parent: None,
            leaf_cache: DEFAULT_LEAF_CACHE,
        }
    }
}

/// Key of a pooled upstream client: host, port, whether HTTP/2 may be offered.
type ClientKey = (Host, u16, bool);

/// The running interception state.
pub(crate) struct Interceptor {
    leaves: LeafCache,
    url_rules: Vec<UrlRule>,
    exclude: HostFilter,
    /// Upstream TLS for targets that are not routes: WebPKI plus system roots; HTTP/1.1 only
    /// and with HTTP/2 offered.
    tls_h1: Arc<ClientConfig>,
    tls_h2: Arc<ClientConfig>,
    clients: Mutex<HashMap<ClientKey, Client<RouteConnector, Incoming>>>,
}

/// What [`Interceptor::prepare`] produced: the state, the CA in PEM and the roots read.
pub(crate) struct Prepared {
    pub(crate) interceptor: Interceptor,
    pub(crate) ca_pem: String,
    pub(crate) roots: SystemRoots,
}

impl Interceptor {
    /// Whether anything needs interception: a URL-scoped entry, or an HTTPS route whose host
    /// is not excluded.
    pub(crate) fn needed(cfg: &InterceptConfig, routes: &[crate::route::RouteConfig]) -> bool {
        if !cfg.url_rules.is_empty() {
            return true;
        }
        let Ok(exclude) = HostFilter::new(&cfg.exclude) else {
            // The error is reported by `prepare`.
            return true;
        };
        routes.iter().any(|r| {
            r.upstream.scheme() == "https"
                && route_target(r).is_some_and(|(h, p)| !exclude.names(&h, p))
        })
    }

    /// Checks the settings, creates or loads the CA and reads the roots.
    pub(crate) fn prepare(
        cfg: &InterceptConfig,
        routes: &[crate::route::RouteConfig],
    ) -> Result<Prepared, ProxyError> {
        let exclude = HostFilter::new(&cfg.exclude)?;
        for rule in &cfg.url_rules {
            if exclude.names(&rule.host, rule.port) {
                return Err(ProxyError::Config(format!(
                    "allow entry `{rule}` needs interception, but {} is excluded from interception; remove one of the two",
                    rule.host
                )));
            }
            let on_route = routes
                .iter()
                .find(|r| route_target(r).is_some_and(|(h, p)| rule.is_for(&h, p)));
            if let Some(r) = on_route {
                return Err(ProxyError::Config(format!(
                    "allow entry `{rule}` is on the host of credential route `{}`; restrict the route with an endpoint rule (--allow-endpoint {}:METHOD:/path) instead",
                    r.name, r.name
                )));
            }
        }
        let ca = match &cfg.ca {
            CaSource::Generate { validity_days } => CertAuthority::generate(*validity_days),
            CaSource::Files { cert, key } => CertAuthority::load(cert, key),
        }
        .map_err(|e| ProxyError::Config(e.to_string()))?;
        let roots = SystemRoots::load(cfg.roots_file.as_deref())
            .map_err(|e| ProxyError::Config(e.to_string()))?;
        let tls = |alpn: &[&[u8]]| -> Result<Arc<ClientConfig>, ProxyError> {
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            let mut c = ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .map_err(|e| ProxyError::Config(format!("TLS setup failed: {e}")))?
                .with_root_certificates(roots.root_store())
                .with_no_client_auth();
            c.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
            Ok(Arc::new(c))
        };
        let ca_pem = ca.cert_pem().to_string();
        Ok(Prepared {
            interceptor: Interceptor {
                leaves: LeafCache::new(ca, cfg.leaf_cache),
                url_rules: cfg.url_rules.clone(),
                exclude,
                tls_h1: tls(&[b"http/1.1"])?,
                tls_h2: tls(&[b"h2", b"http/1.1"])?,
                clients: Mutex::new(HashMap::new()),
            },
            ca_pem,
            roots,
        })
    }

    /// Whether a CONNECT to `host:port` is intercepted.
    pub(crate) fn intercepts(&self, routes: &RouteTable, host: &Host, port: u16) -> bool {
        if self.exclude.names(host, port) {
            return false;
        }
        routes.has_route_at(host, port) || self.url_rules.iter().any(|r| r.is_for(host, port))
    }

    /// The URL-scoped entries for `host:port`.
    pub(crate) fn url_rules_for<'a>(
        &'a self,
        host: &'a Host,
        port: u16,
    ) -> impl Iterator<Item = &'a UrlRule> + 'a {
        self.url_rules.iter().filter(move |r| r.is_for(host, port))
    }

    /// Whether `host` has URL-scoped entries (on any port).
    pub(crate) fn has_url_rules_on(&self, host: &Host) -> bool {
        self.url_rules.iter().any(|r| r.host.same_as(host))
    }

    /// `host:port` entries admitting the URL-scoped targets.
    pub(crate) fn gate_patterns(cfg: &InterceptConfig) -> Vec<String> {
        cfg.url_rules.iter().map(UrlRule::host_port).collect()
    }

    /// The leaf cache.
    pub(crate) fn leaves(&self) -> &LeafCache {
        &self.leaves
    }

    /// The pooled client for a non-route target.
    pub(crate) fn client(
        &self,
        shared: &Arc<Shared>,
        host: &Host,
        port: u16,
        h2: bool,
    ) -> Result<Client<RouteConnector, Incoming>, String> {
        let key = (host.clone(), port, h2);
        if let Ok(map) = self.clients.lock() {
            if let Some(c) = map.get(&key) {
                return Ok(c.clone());
            }
        }
        let tls = if h2 { &self.tls_h2 } else { &self.tls_h1 };
        let weak: Weak<Shared> = Arc::downgrade(shared);
        let connector = RouteConnector::new(
            weak,
            host.clone(),
            port,
            Some(tls.clone()),
            &host.to_string(),
            crate::audit::Mode::Intercept,
        )?;
        let client = Client::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .pool_max_idle_per_host(crate::config::MAX_IDLE_UPSTREAM_PER_HOST)
            .timer(TokioTimer::new())
            .build(connector);
        if let Ok(mut map) = self.clients.lock() {
            map.insert(key, client.clone());
        }
        Ok(client)
    }
}

/// A route's upstream host and port.
fn route_target(r: &crate::route::RouteConfig) -> Option<(Host, u16)> {
    let (h, p) = r.upstream_host_port()?;
    Some((Host::parse(&h).ok()?, p))
}
