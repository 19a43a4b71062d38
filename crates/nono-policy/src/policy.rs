//! The resolved policy and the flags it is resolved from: the types `nono run`, `nono proxy`
//! and `nono profile show` consume.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::credentials::CredentialService;
use crate::endpoint::EndpointRule;
use crate::load::ProfileInfo;

/// The flags `nono run` and `nono proxy` share (fs fields are ignored by `nono proxy`).
#[derive(Debug, Clone, Default)]
pub struct PolicyArgs {
    /// `--profile`: a name or a path.
    pub profile: Option<String>,
    /// `--network-profile`: overrides the profile's.
    pub network_profile: Option<String>,
    /// `--allow-domain`: added to the profile's.
    pub allow_domain: Vec<String>,
    /// `--deny-domain`: added to the profile's.
    pub deny_domain: Vec<String>,
    /// `--credential`: added to the profile's.
    pub credential: Vec<String>,
    /// `--allow-endpoint SERVICE:METHOD:/path/glob`: added to the profile's.
    pub allow_endpoint: Vec<String>,
    /// `--upstream-proxy host:port`: overrides the profile's.
    pub upstream_proxy: Option<String>,
    /// `--upstream-bypass`: added to the profile's.
    pub upstream_bypass: Vec<String>,
    /// `--open-port`: added to the profile's.
    pub open_port: Vec<u16>,
    /// `--listen-port`: added to the profile's.
    pub listen_port: Vec<u16>,
    /// `--block-net`.
    pub block_net: bool,
    /// `--allow PATH` (relative paths are taken from the working directory).
    pub allow: Vec<PathBuf>,
    /// `--read PATH`.
    pub read: Vec<PathBuf>,
    /// `--allow-cwd`: the working directory is writable.
    pub allow_cwd: bool,
    /// `--proxy-ca-validity DAYS`.
    pub proxy_ca_validity: Option<u32>,
    /// `--proxy-ca-cert FILE`.
    pub proxy_ca_cert: Option<PathBuf>,
    /// `--proxy-ca-key FILE`.
    pub proxy_ca_key: Option<PathBuf>,
}

/// The policy the sandbox and the proxy enforce.
#[derive(Debug, Clone, Serialize)]
pub struct ResolvedPolicy {
    /// The profile used, if any.
    pub profile: Option<ProfileInfo>,
    /// Filesystem access.
    pub filesystem: ResolvedFs,
    /// Network access.
    pub network: ResolvedNetwork,
    /// Security options.
    pub security: Security,
}

/// Filesystem access: expanded, absolute, canonical where the path exists.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ResolvedFs {
    /// Readable and writable.
    pub allow: Vec<PathBuf>,
    /// Readable only.
    pub read: Vec<PathBuf>,
    /// The host's `/tmp` is shown instead of a private one.
    pub share_tmp: bool,
    /// Directories `nono run` creates (0700) before the sandbox starts, when missing.
    pub create_dirs: Vec<PathBuf>,
    /// Files `nono run` creates (0600, with this content) before the sandbox starts, when
    /// missing.
    pub create_files: Vec<(PathBuf, String)>,
    /// Variables set to these paths in the child (tools' caches).
    pub path_env: Vec<(String, PathBuf)>,
}

/// How outbound network access is handled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum NetworkMode {
    /// No restriction.
    Unrestricted,
    /// No outbound access (open/listen ports excepted).
    Blocked,
    /// Only through the filtering proxy.
    Proxy,
}

/// A `host:port` from `allow_domain`: direct TCP to that port is allowed and the host goes
/// into `NO_PROXY`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DirectEndpoint {
    /// Host in `NO_PROXY` form (IPv6 without brackets, wildcard as `.suffix`).
    pub host: String,
    /// The port.
    pub port: u16,
}

/// Network access, resolved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ResolvedNetwork {
    /// Unrestricted, blocked or proxied.
    pub mode: NetworkMode,
    /// The network profile in effect.
    pub network_profile: Option<String>,
    /// Every host pattern the proxy allows: the network profile's groups, then `allow_domain`.
    pub allowed_hosts: Vec<String>,
    /// `allow_domain` entries with a port.
    pub direct: Vec<DirectEndpoint>,
    /// Host patterns always refused (`deny_domain`), winning over every allow.
    pub denied_hosts: Vec<String>,
    /// Credential services to inject, with defaults filled in.
    pub credentials: Vec<CredentialService>,
    /// Method + path restrictions per credential service.
    pub endpoint_rules: Vec<EndpointRule>,
    /// Upstream proxy, `host:port`.
    pub upstream_proxy: Option<String>,
    /// Hosts that skip the upstream proxy.
    pub upstream_bypass: Vec<String>,
    /// Localhost ports open for connect and listen.
    pub open_ports: Vec<u16>,
    /// Localhost ports open for listen only.
    pub listen_ports: Vec<u16>,
    /// URL-scoped allow entries (`[METHOD ]https://host/path/glob`): their hosts are
    /// TLS-intercepted and only matching requests pass.
    pub url_rules: Vec<String>,
    /// Hosts never TLS-intercepted.
    pub intercept_exclude: Vec<String>,
    /// Where the interception CA comes from.
    pub proxy_ca: ProxyCa,
    /// Extra variables pointed at the trust bundle.
    pub ca_env_vars: Vec<String>,
}

/// The TLS interception CA.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ProxyCa {
    /// A fresh CA for the session, valid this many days.
    Generate {
        /// Days.
        validity_days: u32,
    },
    /// An existing CA.
    Files {
        /// PEM certificate.
        cert: PathBuf,
        /// PKCS#8 PEM key.
        key: PathBuf,
    },
}

/// Security options.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Security {
    /// What to do on WSL2.
    pub wsl2_proxy_policy: Wsl2ProxyPolicy,
}

/// WSL2 cannot enforce proxy-only networking in the kernel; what to do about it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Wsl2ProxyPolicy {
    /// Refuse to run with a proxy on WSL2.
    #[default]
    Error,
    /// Run with the proxy set in the environment but not enforced.
    InsecureProxy,
}
