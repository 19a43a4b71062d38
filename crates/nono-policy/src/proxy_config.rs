//! The one function that turns a resolved network policy into the proxy's configuration.
//! `nono run` and `nono proxy` both call [`proxy_config`], so the two cannot drift apart.

use std::net::IpAddr;
use std::sync::Arc;

use nono_proxy::dns::Resolver;
use nono_proxy::{
    AuthConfig, EndpointRule as ProxyEndpointRule, ProxyConfig, RouteConfig, Timeouts,
    UpstreamProxyConfig,
};
use zeroize::Zeroizing;

use crate::credentials::{CredentialService, InjectMode};
use crate::policy::{ProxyCa, ResolvedNetwork};

/// Settings that come from the command rather than the policy.
pub struct ProxyOptions {
    /// Listening address.
    pub bind_addr: IpAddr,
    /// Listening port (0 = OS-assigned).
    pub bind_port: u16,
    /// Client authentication.
    pub auth: AuthConfig,
    /// Connection cap (0 = unlimited).
    pub max_connections: usize,
    /// Timeouts.
    pub timeouts: Timeouts,
    /// Name resolution.
    pub resolver: Arc<dyn Resolver>,
    /// Serve 503 for routes whose credential cannot be loaded instead of failing
    /// (`nono proxy`); `nono run` fails instead.
    pub tolerate_unavailable_routes: bool,
    /// The upstream proxy as the user gave it on the command line or in the environment,
    /// possibly with `user:password@`; the policy only carries `host:port`.
    pub upstream_proxy_spec: Option<Zeroizing<String>>,
    /// The roots for the interception trust bundle: the parent's `SSL_CERT_FILE`, when set.
    pub roots_file: Option<std::path::PathBuf>,
    /// Where the per-session trust bundle directory goes (`None`: the temporary directory).
    pub bundle_parent: Option<std::path::PathBuf>,
}

/// The proxy configuration could not be built from the policy.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProxySetupError {
    /// A credential service cannot become a route.
    #[error("credential service `{service}`: {message}")]
    Route {
        /// Service name.
        service: String,
        /// What is wrong.
        message: String,
    },
    /// Allowlist, upstream proxy or route validation refused the configuration.
    #[error(transparent)]
    Proxy(#[from] nono_proxy::ProxyError),
}

/// Builds the proxy configuration for a resolved network policy.
pub fn proxy_config(
    net: &ResolvedNetwork,
    opts: ProxyOptions,
) -> Result<ProxyConfig, ProxySetupError> {
    let routes = net
        .credentials
        .iter()
        .map(|svc| route_for(svc, net))
        .collect::<Result<Vec<_>, _>>()?;
    nono_proxy::validate_routes(&routes)
        .map_err(|e| ProxySetupError::Proxy(nono_proxy::ProxyError::Config(e.to_string())))?;
    let spec = opts
        .upstream_proxy_spec
        .as_ref()
        .map(|s| s.as_str().to_string())
        .map(Zeroizing::new)
        .or_else(|| net.upstream_proxy.clone().map(Zeroizing::new));
    let upstream_proxy =
        UpstreamProxyConfig::from_options(spec.as_ref().map(|s| s.as_str()), &net.upstream_bypass)?;
    // Hosts reached directly (host:port entries) bypass the proxy in clients.
    let no_proxy = net.direct.iter().map(|d| d.host.clone()).collect();
    let url_rules = net
        .url_rules
        .iter()
        .map(|r| nono_proxy::intercept::url_rule::UrlRule::parse(r))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| ProxySetupError::Proxy(nono_proxy::ProxyError::Config(e.to_string())))?;
    let mut ca_env_vars: Vec<String> = nono_proxy::intercept::bundle::DEFAULT_CA_ENV_VARS
        .iter()
        .map(|s| s.to_string())
        .collect();
    for v in &net.ca_env_vars {
        if !ca_env_vars.contains(v) {
            ca_env_vars.push(v.clone());
        }
    }
    let intercept = nono_proxy::intercept::InterceptConfig {
        ca: match &net.proxy_ca {
            ProxyCa::Generate { validity_days } => nono_proxy::intercept::CaSource::Generate {
                validity_days: *validity_days,
            },
            ProxyCa::Files { cert, key } => nono_proxy::intercept::CaSource::Files {
                cert: cert.clone(),
                key: key.clone(),
            },
        },
        url_rules,
        exclude: net.intercept_exclude.clone(),
        ca_env_vars,
        roots_file: opts.roots_file.clone(),
        bundle_parent: opts.bundle_parent.clone(),
        ..Default::default()
    };
    let config = ProxyConfig {
        allowed_hosts: net.allowed_hosts.clone(),
        denied_hosts: net.denied_hosts.clone(),
        bind_addr: opts.bind_addr,
        bind_port: opts.bind_port,
        max_connections: opts.max_connections,
        auth: opts.auth,
        timeouts: opts.timeouts,
        resolver: opts.resolver,
        no_proxy,
        routes,
        tolerate_unavailable_routes: opts.tolerate_unavailable_routes,
        upstream_proxy,
        intercept,
        ..ProxyConfig::default()
    };
    Ok(config)
}

fn route_for(
    svc: &CredentialService,
    net: &ResolvedNetwork,
) -> Result<RouteConfig, ProxySetupError> {
    let bad = |message: String| ProxySetupError::Route {
        service: svc.name.clone(),
        message,
    };
    let upstream = url::Url::parse(&svc.upstream)
        .map_err(|e| bad(format!("upstream `{}`: {e}", svc.upstream)))?;
    let inject = match svc.inject_mode {
        InjectMode::Header => nono_proxy::InjectMode::Header {
            name: svc.inject_header.clone(),
            format: svc.credential_format.clone(),
        },
        InjectMode::UrlPath => nono_proxy::InjectMode::UrlPath {
            pattern: svc
                .path_pattern
                .clone()
                .ok_or_else(|| bad("url_path needs path_pattern".into()))?,
            replacement: svc
                .path_replacement
                .clone()
                .ok_or_else(|| bad("url_path needs path_replacement".into()))?,
        },
        InjectMode::QueryParam => nono_proxy::InjectMode::QueryParam {
            name: svc
                .query_param_name
                .clone()
                .ok_or_else(|| bad("query_param needs query_param_name".into()))?,
        },
        InjectMode::BasicAuth => nono_proxy::InjectMode::BasicAuth,
    };
    let source =
        nono_proxy::CredentialSource::parse(&svc.credential_key).map_err(|e| bad(e.to_string()))?;
    let mut rules = Vec::new();
    for m in &svc.endpoint_rules {
        rules.push(ProxyEndpointRule::new(&m.method, &m.path).map_err(|e| bad(e.to_string()))?);
    }
    for r in net.endpoint_rules.iter().filter(|r| r.service == svc.name) {
        // The service's own rules are in the resolved list too; each counts once.
        let rule = ProxyEndpointRule::new(&r.method, &r.path).map_err(|e| bad(e.to_string()))?;
        if !rules.contains(&rule) {
            rules.push(rule);
        }
    }
    let default_deny = svc
        .deny_endpoints
        .iter()
        .map(|m| ProxyEndpointRule::new(&m.method, &m.path).map_err(|e| bad(e.to_string())))
        .collect::<Result<Vec<_>, _>>()?;
    let mut route = RouteConfig::new(&svc.name, upstream, inject, source);
    route.env_var = svc.env_var.clone();
    route.base_url_env = Some(svc.base_url_env_or_default());
    route.endpoint_rules = rules;
    route.default_deny = default_deny;
    route.tls_ca = svc.tls_ca.clone();
    route.optional = svc.optional;
    route.validate().map_err(|e| bad(e.to_string()))?;
    Ok(route)
}
