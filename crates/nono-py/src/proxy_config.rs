//! The proxy's configuration classes. Each is checked when it is constructed, with the
//! checks and messages of the CLI: a `RouteConfig` becomes a `nono_policy::CredentialService`
//! (a profile's `custom_credentials` entry) and the whole configuration is built by
//! `nono_policy::proxy_config`, the one function `nono run` and `nono proxy` use.

use std::net::IpAddr;
use std::sync::{Arc, OnceLock};

use nono_policy::{CredentialService, ProxyOptions, ResolvedNetwork};
use nono_proxy::{AuthConfig, CredentialSource, SessionToken};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use zeroize::Zeroizing;

use crate::errors::value_error;

/// Largest `max_connections` accepted, as `nono proxy --max-connections` accepts.
const MAX_CONNECTIONS_LIMIT: i64 = 1_000_000;

/// How the credential is put into the upstream request.
#[pyclass(eq, eq_int, frozen, hash, module = "nono_py")]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum InjectMode {
    /// An HTTP header (`inject_header: credential_format`).
    #[pyo3(name = "HEADER")]
    Header,
    /// A pattern in the URL path (`path_pattern` → `path_replacement`).
    #[pyo3(name = "URL_PATH")]
    UrlPath,
    /// A query parameter (`query_param_name`).
    #[pyo3(name = "QUERY_PARAM")]
    QueryParam,
    /// HTTP basic authentication.
    #[pyo3(name = "BASIC_AUTH")]
    BasicAuth,
}

impl InjectMode {
    fn policy(self) -> nono_policy::InjectMode {
        match self {
            InjectMode::Header => nono_policy::InjectMode::Header,
            InjectMode::UrlPath => nono_policy::InjectMode::UrlPath,
            InjectMode::QueryParam => nono_policy::InjectMode::QueryParam,
            InjectMode::BasicAuth => nono_policy::InjectMode::BasicAuth,
        }
    }

    fn label(self) -> &'static str {
        match self {
            InjectMode::Header => "InjectMode.HEADER",
            InjectMode::UrlPath => "InjectMode.URL_PATH",
            InjectMode::QueryParam => "InjectMode.QUERY_PARAM",
            InjectMode::BasicAuth => "InjectMode.BASIC_AUTH",
        }
    }
}

/// A credential route: `http://127.0.0.1:PORT/<prefix>/...` goes to `upstream` with the real
/// credential injected.
#[pyclass(frozen, module = "nono_py")]
#[derive(Clone, Debug)]
pub struct RouteConfig {
    #[pyo3(get)]
    prefix: String,
    #[pyo3(get)]
    upstream: String,
    #[pyo3(get)]
    credential_key: Option<String>,
    #[pyo3(get)]
    inject_mode: InjectMode,
    #[pyo3(get)]
    inject_header: String,
    #[pyo3(get)]
    credential_format: String,
    #[pyo3(get)]
    path_pattern: Option<String>,
    #[pyo3(get)]
    path_replacement: Option<String>,
    #[pyo3(get)]
    query_param_name: Option<String>,
    #[pyo3(get)]
    env_var: Option<String>,
    /// The same route as a profile's credential service.
    service: CredentialService,
}

#[pymethods]
impl RouteConfig {
    #[new]
    #[pyo3(signature = (prefix, upstream, credential_key=None, inject_mode=InjectMode::Header,
        inject_header="Authorization".to_string(), credential_format="Bearer {}".to_string(),
        path_pattern=None, path_replacement=None, query_param_name=None, env_var=None))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        prefix: String,
        upstream: String,
        credential_key: Option<String>,
        inject_mode: InjectMode,
        inject_header: String,
        credential_format: String,
        path_pattern: Option<String>,
        path_replacement: Option<String>,
        query_param_name: Option<String>,
        env_var: Option<String>,
    ) -> PyResult<RouteConfig> {
        let name = route_name(&prefix)?;
        let bad = |field: &str, reason: String| {
            PyValueError::new_err(format!("credential route `{name}`: {field}: {reason}"))
        };
        // nono-proxy has no route without a credential; fail here rather than at start.
        let Some(key) = credential_key.clone() else {
            return Err(bad(
                "credential_key",
                "required: a keyring key name, `env://VAR`, `file:///abs/path` or `cmd://command`"
                    .into(),
            ));
        };
        CredentialSource::parse(&key).map_err(|e| value_error(&e))?;
        let service = CredentialService {
            name: name.clone(),
            description: None,
            upstream: upstream.clone(),
            credential_key: key,
            inject_mode: inject_mode.policy(),
            inject_header: inject_header.clone(),
            credential_format: credential_format.clone(),
            path_pattern: path_pattern.clone(),
            path_replacement: path_replacement.clone(),
            query_param_name: query_param_name.clone(),
            env_var: env_var.clone(),
            base_url_env: None,
            endpoint_rules: Vec::new(),
            deny_endpoints: Vec::new(),
            tls_ca: None,
            optional: false,
        };
        service.validate().map_err(|(k, m)| bad(&k, m))?;
        let route = RouteConfig {
            prefix,
            upstream,
            credential_key,
            inject_mode,
            inject_header,
            credential_format,
            path_pattern,
            path_replacement,
            query_param_name,
            env_var,
            service,
        };
        // The CLI's mapping to a proxy route, with its checks.
        build(
            &[],
            std::slice::from_ref(&route),
            None,
            default_bind(),
            0,
            1,
        )?;
        Ok(route)
    }

    fn __repr__(&self) -> String {
        format!(
            "RouteConfig(prefix={}, upstream={}, credential_key={}, inject_mode={}, inject_header={}, credential_format={}, path_pattern={}, path_replacement={}, query_param_name={}, env_var={})",
            py_str(&self.prefix),
            py_str(&self.upstream),
            py_opt(&self.credential_key),
            self.inject_mode.label(),
            py_str(&self.inject_header),
            py_str(&self.credential_format),
            py_opt(&self.path_pattern),
            py_opt(&self.path_replacement),
            py_opt(&self.query_param_name),
            py_opt(&self.env_var),
        )
    }
}

impl RouteConfig {
    /// A route of a configuration resolved from a profile, for display.
    fn from_proxy_route(r: &nono_proxy::RouteConfig) -> RouteConfig {
        let credential_key = match &r.source {
            CredentialSource::Keyring { account } => account.clone(),
            CredentialSource::Env { var } => format!("env://{var}"),
            CredentialSource::File { path } => format!("file://{}", path.display()),
            CredentialSource::Command { cmd, .. } => format!("cmd://{cmd}"),
        };
        let (mode, header, format, pattern, replacement, query) = match &r.inject {
            nono_proxy::InjectMode::Header { name, format } => (
                InjectMode::Header,
                name.clone(),
                format.clone(),
                None,
                None,
                None,
            ),
            nono_proxy::InjectMode::UrlPath {
                pattern,
                replacement,
            } => (
                InjectMode::UrlPath,
                "Authorization".into(),
                "Bearer {}".into(),
                Some(pattern.clone()),
                Some(replacement.clone()),
                None,
            ),
            nono_proxy::InjectMode::QueryParam { name } => (
                InjectMode::QueryParam,
                "Authorization".into(),
                "Bearer {}".into(),
                None,
                None,
                Some(name.clone()),
            ),
            nono_proxy::InjectMode::BasicAuth => (
                InjectMode::BasicAuth,
                "Authorization".into(),
                "Bearer {}".into(),
                None,
                None,
                None,
            ),
        };
        RouteConfig {
            prefix: format!("/{}", r.name),
            upstream: r.upstream.to_string(),
            credential_key: Some(credential_key.clone()),
            inject_mode: mode,
            inject_header: header.clone(),
            credential_format: format.clone(),
            path_pattern: pattern.clone(),
            path_replacement: replacement.clone(),
            query_param_name: query.clone(),
            env_var: r.env_var.clone(),
            service: CredentialService {
                name: r.name.clone(),
                description: None,
                upstream: r.upstream.to_string(),
                credential_key,
                inject_mode: mode.policy(),
                inject_header: header,
                credential_format: format,
                path_pattern: pattern,
                path_replacement: replacement,
                query_param_name: query,
                env_var: r.env_var.clone(),
                base_url_env: r.base_url_env.clone(),
                endpoint_rules: Vec::new(),
                deny_endpoints: Vec::new(),
                tls_ca: r.tls_ca.clone(),
                optional: r.optional,
            },
        }
    }
}

/// `/openai` → `openai`: the route name is the prefix's one path segment.
fn route_name(prefix: &str) -> PyResult<String> {
    let Some(rest) = prefix.strip_prefix('/') else {
        return Err(PyValueError::new_err(format!(
            "route prefix `{prefix}` must start with `/`, e.g. \"/openai\""
        )));
    };
    Ok(rest.strip_suffix('/').unwrap_or(rest).to_string())
}

/// An upstream (corporate) proxy that outbound connections are chained through.
#[pyclass(frozen, module = "nono_py")]
#[derive(Clone)]
pub struct ExternalProxyConfig {
    /// As given; may hold `user:password@`.
    address: Zeroizing<String>,
    #[pyo3(get)]
    bypass_hosts: Vec<String>,
}

#[pymethods]
impl ExternalProxyConfig {
    #[new]
    #[pyo3(signature = (address, bypass_hosts=Vec::new()))]
    fn new(address: String, bypass_hosts: Vec<String>) -> PyResult<ExternalProxyConfig> {
        let address = Zeroizing::new(address);
        // The messages of this parser never contain the password.
        nono_proxy::UpstreamProxyConfig::parse(&address, &bypass_hosts)
            .map_err(|e| value_error(&e))?;
        Ok(ExternalProxyConfig {
            address,
            bypass_hosts,
        })
    }

    /// The address, with any password replaced by `***`.
    #[getter]
    fn address(&self) -> String {
        redact(&self.address)
    }

    fn __repr__(&self) -> String {
        format!(
            "ExternalProxyConfig(address={}, bypass_hosts={})",
            py_str(&redact(&self.address)),
            py_list(&self.bypass_hosts)
        )
    }
}

/// `http://user:pw@host:port` → `http://***@host:port`.
fn redact(spec: &str) -> String {
    match spec.rsplit_once('@') {
        Some((before, host)) => {
            let scheme = before.split_once("://").map_or("", |(s, _)| s);
            if scheme.is_empty() {
                format!("***@{host}")
            } else {
                format!("{scheme}://***@{host}")
            }
        }
        None => spec.to_string(),
    }
}

/// The proxy's configuration, checked and built when constructed.
#[pyclass(frozen, module = "nono_py")]
#[derive(Clone)]
pub struct ProxyConfig {
    allowed_hosts: Vec<String>,
    routes: Vec<RouteConfig>,
    external_proxy: Option<ExternalProxyConfig>,
    bind_addr: IpAddr,
    bind_port: u16,
    max_connections: usize,
    /// The configuration the proxy runs with (its session token is replaced at each start).
    inner: nono_proxy::ProxyConfig,
}

#[pymethods]
impl ProxyConfig {
    #[new]
    #[pyo3(signature = (allowed_hosts=Vec::new(), routes=Vec::new(), external_proxy=None,
        bind_addr="127.0.0.1".to_string(), bind_port=0, max_connections=256))]
    fn new(
        allowed_hosts: Vec<String>,
        routes: Vec<RouteConfig>,
        external_proxy: Option<ExternalProxyConfig>,
        bind_addr: String,
        bind_port: i64,
        max_connections: i64,
    ) -> PyResult<ProxyConfig> {
        let addr: IpAddr = bind_addr.trim().parse().map_err(|_| {
            PyValueError::new_err(format!(
                "bind_addr `{bind_addr}` is not an IP address, e.g. \"127.0.0.1\""
            ))
        })?;
        let port = u16::try_from(bind_port).map_err(|_| {
            PyValueError::new_err(format!(
                "bind_port `{bind_port}` is not a port from 0 (any free port) to 65535"
            ))
        })?;
        let max = match usize::try_from(max_connections) {
            Ok(n) if max_connections <= MAX_CONNECTIONS_LIMIT => n,
            _ => {
                return Err(PyValueError::new_err(format!(
                    "max_connections `{max_connections}` is not a connection count from 0 (unlimited) to {MAX_CONNECTIONS_LIMIT}"
                )))
            }
        };
        let inner = build(
            &allowed_hosts,
            &routes,
            external_proxy.as_ref(),
            addr,
            port,
            max,
        )?;
        Ok(ProxyConfig {
            allowed_hosts,
            routes,
            external_proxy,
            bind_addr: addr,
            bind_port: port,
            max_connections: max,
            inner,
        })
    }

    #[getter]
    fn allowed_hosts(&self) -> Vec<String> {
        self.allowed_hosts.clone()
    }

    #[getter]
    fn routes(&self) -> Vec<RouteConfig> {
        self.routes.clone()
    }

    #[getter]
    fn external_proxy(&self) -> Option<ExternalProxyConfig> {
        self.external_proxy.clone()
    }

    #[getter]
    fn bind_addr(&self) -> String {
        self.bind_addr.to_string()
    }

    #[getter]
    fn bind_port(&self) -> u16 {
        self.bind_port
    }

    #[getter]
    fn max_connections(&self) -> usize {
        self.max_connections
    }

    fn __repr__(&self) -> String {
        let routes: Vec<String> = self.routes.iter().map(RouteConfig::__repr__).collect();
        format!(
            "ProxyConfig(allowed_hosts={}, routes=[{}], external_proxy={}, bind_addr={}, bind_port={}, max_connections={})",
            py_list(&self.allowed_hosts),
            routes.join(", "),
            self.external_proxy
                .as_ref()
                .map_or_else(|| "None".to_string(), ExternalProxyConfig::__repr__),
            py_str(&self.bind_addr.to_string()),
            self.bind_port,
            self.max_connections
        )
    }
}

impl ProxyConfig {
    /// Wraps a configuration built by `nono_policy::proxy_config` (from a profile).
    pub fn from_ready(inner: nono_proxy::ProxyConfig) -> ProxyConfig {
        ProxyConfig {
            allowed_hosts: inner.allowed_hosts.clone(),
            routes: inner
                .routes
                .iter()
                .map(RouteConfig::from_proxy_route)
                .collect(),
            external_proxy: None,
            bind_addr: inner.bind_addr,
            bind_port: inner.bind_port,
            max_connections: inner.max_connections,
            inner,
        }
    }

    /// The configuration to start, with a fresh session token so that two proxies started
    /// from one `ProxyConfig` never share one.
    pub fn for_start(&self) -> nono_proxy::ProxyConfig {
        let mut c = self.inner.clone();
        c.auth = AuthConfig::Token(SessionToken::generate());
        c
    }
}

/// The options the CLI passes to `nono_policy::proxy_config`, for these settings.
pub fn options(
    bind_addr: IpAddr,
    bind_port: u16,
    max_connections: usize,
    upstream_proxy_spec: Option<Zeroizing<String>>,
) -> ProxyOptions {
    ProxyOptions {
        bind_addr,
        bind_port,
        auth: AuthConfig::Token(SessionToken::generate()),
        max_connections,
        timeouts: nono_proxy::Timeouts::default(),
        resolver: Arc::new(nono_proxy::dns::SystemResolver),
        tolerate_unavailable_routes: false,
        upstream_proxy_spec,
        // As the CLI does: the parent's SSL_CERT_FILE roots the interception trust bundle.
        roots_file: std::env::var_os("SSL_CERT_FILE")
            .filter(|v| !v.is_empty())
            .map(std::path::PathBuf::from),
        bundle_parent: None,
    }
}

fn default_bind() -> IpAddr {
    IpAddr::V4(std::net::Ipv4Addr::LOCALHOST)
}

/// Builds the proxy configuration through the CLI's function.
fn build(
    allowed_hosts: &[String],
    routes: &[RouteConfig],
    external: Option<&ExternalProxyConfig>,
    bind_addr: IpAddr,
    bind_port: u16,
    max_connections: usize,
) -> PyResult<nono_proxy::ProxyConfig> {
    // The proxy parses the allowlist only when it starts; a bad pattern is refused now.
    nono_proxy::filter::HostFilter::new(allowed_hosts).map_err(|e| value_error(&e))?;
    let mut net = base_network()?;
    net.allowed_hosts = allowed_hosts.to_vec();
    net.credentials = routes.iter().map(|r| r.service.clone()).collect();
    net.upstream_proxy = None;
    net.upstream_bypass = external.map(|e| e.bypass_hosts.clone()).unwrap_or_default();
    let spec = external.map(|e| e.address.clone());
    let opts = options(bind_addr, bind_port, max_connections, spec);
    nono_policy::proxy_config(&net, opts).map_err(|e| value_error(&e))
}

/// A resolved network policy with nothing in it, which `build` fills in.
///
/// nono-policy does not export a constructor (nor its `ProxyCa` type), so it comes from
/// resolving no flags and no profile in a fixed environment, which reads no file.
fn base_network() -> PyResult<ResolvedNetwork> {
    static BASE: OnceLock<Result<ResolvedNetwork, String>> = OnceLock::new();
    let base = BASE.get_or_init(|| {
        let env = nono_policy::Env {
            workdir: "/".into(),
            home: "/".into(),
            tmpdir: std::env::temp_dir(),
            xdg_config_home: None,
            xdg_cache_home: None,
        };
        nono_policy::resolve(&nono_policy::PolicyArgs::default(), &env)
            .map(|p| p.network)
            .map_err(|e| crate::errors::chain(&e))
    });
    base.clone().map_err(PyValueError::new_err)
}

/// A Python string literal for reprs.
pub fn py_str(s: &str) -> String {
    format!("'{}'", s.replace('\\', "\\\\").replace('\'', "\\'"))
}

fn py_opt(s: &Option<String>) -> String {
    s.as_deref().map_or_else(|| "None".to_string(), py_str)
}

fn py_list(items: &[String]) -> String {
    let parts: Vec<String> = items.iter().map(|s| py_str(s)).collect();
    format!("[{}]", parts.join(", "))
}
