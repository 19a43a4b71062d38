//! One profile file (or the command line) checked and expanded: the unit that `merge` stacks.
//!
//! Everything that can be checked in one file is checked here, so the error names that file
//! and key. What needs the merged result (credential names, endpoint services) is checked in
//! `resolve`.

use std::collections::BTreeMap;
use std::path::PathBuf;

use nono_proxy::filter::{HostMatch, HostPattern};

use crate::credentials::{check_name, CredentialService};
use crate::endpoint::EndpointRule;
use crate::error::PolicyError;
use crate::network_policy::NetworkPolicy;
use crate::policy::Wsl2ProxyPolicy;
use crate::raw::RawProfile;
use crate::vars::{expand, Env};

/// A checked profile layer; see `merge` for how layers combine.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Layer {
    /// Description from `meta`.
    pub description: Option<String>,
    /// Writable paths, expanded.
    pub allow: Vec<PathBuf>,
    /// Read-only paths, expanded.
    pub read: Vec<PathBuf>,
    /// Writable paths granted only when they exist.
    pub allow_if_exists: Vec<PathBuf>,
    /// Readable paths granted only when they exist.
    pub read_if_exists: Vec<PathBuf>,
    /// Directories to create when missing.
    pub create_dirs: Vec<PathBuf>,
    /// Files to create when missing, with their first content.
    pub create_files: Vec<(PathBuf, String)>,
    /// Variables set to paths in the child.
    pub path_env: Vec<(String, PathBuf)>,
    /// `network.block`.
    pub block: bool,
    /// Absent / cleared / set.
    pub network_profile: Option<Option<String>>,
    /// Host patterns, normalised.
    pub allow_domain: Vec<String>,
    /// Denied host patterns, normalised.
    pub deny_domain: Vec<String>,
    /// Absent / cleared / names.
    pub credentials: Option<Vec<String>>,
    /// Custom services by name.
    pub custom_credentials: BTreeMap<String, CredentialService>,
    /// Endpoint rules.
    pub allow_endpoint: Vec<EndpointRule>,
    /// `host:port`, normalised.
    pub upstream_proxy: Option<String>,
    /// Bypass patterns, normalised.
    pub upstream_bypass: Vec<String>,
    /// Ports open for connect and listen.
    pub open_port: Vec<u16>,
    /// Ports open for listen.
    pub listen_port: Vec<u16>,
    /// WSL2 policy when set.
    pub wsl2_proxy_policy: Option<Wsl2ProxyPolicy>,
    /// `filesystem.share_tmp`.
    pub share_tmp: Option<bool>,
    /// Hosts never intercepted, normalised.
    pub intercept_exclude: Vec<String>,
    /// The interception CA settings.
    pub proxy_ca: ProxyCaLayer,
    /// Extra CA bundle variables.
    pub ca_env_vars: Vec<String>,
}

/// The interception CA settings of one layer; resolution checks they fit together.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProxyCaLayer {
    /// Validity of a generated CA in days.
    pub validity_days: Option<u32>,
    /// Existing CA certificate.
    pub cert: Option<PathBuf>,
    /// Existing CA key.
    pub key: Option<PathBuf>,
}

impl Layer {
    /// Checks and expands one parsed profile file.
    pub fn from_raw(
        raw: &RawProfile,
        file: &str,
        env: &Env,
        policy: &NetworkPolicy,
    ) -> Result<Layer, PolicyError> {
        let bad = |key: String, m: String| PolicyError::invalid(file, key, m);
        let paths = |list: &[String], key: &str| -> Result<Vec<PathBuf>, PolicyError> {
            list.iter()
                .enumerate()
                .map(|(i, p)| expand(p, env).map_err(|m| bad(format!("filesystem.{key}[{i}]"), m)))
                .collect()
        };
        let net = &raw.network;
        if let Some(Some(np)) = &net.network_profile {
            policy
                .hosts(np)
                .map_err(|m| bad("network.network_profile".into(), m))?;
        }
        let allow_domain = net
            .allow_domain
            .iter()
            .enumerate()
            .map(|(i, d)| host_pattern(d).map_err(|m| bad(format!("network.allow_domain[{i}]"), m)))
            .collect::<Result<_, _>>()?;
        let deny_domain = net
            .deny_domain
            .iter()
            .enumerate()
            .map(|(i, d)| deny_pattern(d).map_err(|m| bad(format!("network.deny_domain[{i}]"), m)))
            .collect::<Result<_, _>>()?;
        if let Some(names) = &net.credentials {
            for (i, n) in names.iter().enumerate() {
                check_name(n).map_err(|m| bad(format!("network.credentials[{i}]"), m))?;
            }
        }
        let mut custom_credentials = BTreeMap::new();
        for (name, svc) in &net.custom_credentials {
            let key = format!("network.custom_credentials.{name}");
            check_name(name).map_err(|m| bad(key.clone(), m))?;
            let mut svc = svc.clone();
            svc.name.clone_from(name);
            svc.validate()
                .map_err(|(k, m)| bad(format!("{key}.{k}"), m))?;
            if let Some(ca) = &svc.tls_ca {
                let raw_ca = ca.to_string_lossy().into_owned();
                svc.tls_ca =
                    Some(expand(&raw_ca, env).map_err(|m| bad(format!("{key}.tls_ca"), m))?);
            }
            custom_credentials.insert(name.clone(), svc);
        }
        let allow_endpoint = net
            .allow_endpoint
            .iter()
            .enumerate()
            .map(|(i, s)| {
                EndpointRule::parse(s).map_err(|m| bad(format!("network.allow_endpoint[{i}]"), m))
            })
            .collect::<Result<_, _>>()?;
        let upstream_proxy = net
            .upstream_proxy
            .as_deref()
            .map(|p| upstream_proxy(p).map_err(|m| bad("network.upstream_proxy".into(), m)))
            .transpose()?;
        let upstream_bypass = net
            .upstream_bypass
            .iter()
            .enumerate()
            .map(|(i, b)| {
                bypass_pattern(b).map_err(|m| bad(format!("network.upstream_bypass[{i}]"), m))
            })
            .collect::<Result<_, _>>()?;
        let intercept_exclude = net
            .intercept_exclude
            .iter()
            .enumerate()
            .map(|(i, b)| {
                bypass_pattern(b).map_err(|m| bad(format!("network.intercept_exclude[{i}]"), m))
            })
            .collect::<Result<_, _>>()?;
        let ca_env_vars = net
            .ca_env_vars
            .iter()
            .enumerate()
            .map(|(i, v)| env_var_name(v).map_err(|m| bad(format!("network.ca_env_vars[{i}]"), m)))
            .collect::<Result<_, _>>()?;
        if let Some(d) = net.proxy_ca.validity_days {
            check_ca_validity(d).map_err(|m| bad("network.proxy_ca.validity_days".into(), m))?;
        }
        let ca_path = |v: &Option<String>, k: &str| {
            v.as_deref()
                .map(|p| expand(p, env).map_err(|m| bad(format!("network.proxy_ca.{k}"), m)))
                .transpose()
        };
        let proxy_ca = ProxyCaLayer {
            validity_days: net.proxy_ca.validity_days,
            cert: ca_path(&net.proxy_ca.cert, "cert")?,
            key: ca_path(&net.proxy_ca.key, "key")?,
        };
        for (key, ports) in [
            ("open_port", &net.open_port),
            ("listen_port", &net.listen_port),
        ] {
            if let Some(i) = ports.iter().position(|p| *p == 0) {
                return Err(bad(
                    format!("network.{key}[{i}]"),
                    "`0` is not a port (1-65535)".into(),
                ));
            }
        }
        Ok(Layer {
            description: raw.meta.description.clone(),
            allow: paths(&raw.filesystem.allow, "allow")?,
            read: paths(&raw.filesystem.read, "read")?,
            allow_if_exists: paths(&raw.filesystem.allow_if_exists, "allow_if_exists")?,
            read_if_exists: paths(&raw.filesystem.read_if_exists, "read_if_exists")?,
            create_dirs: paths(&raw.filesystem.create_dirs, "create_dirs")?,
            path_env: raw
                .filesystem
                .path_env
                .iter()
                .map(|(k, v)| {
                    let key = format!("filesystem.path_env.{k}");
                    let name = env_var_name(k).map_err(|m| bad(key.clone(), m))?;
                    let path = expand(v, env).map_err(|m| bad(key, m))?;
                    Ok((name, path))
                })
                .collect::<Result<_, PolicyError>>()?,
            create_files: raw
                .filesystem
                .create_files
                .iter()
                .map(|(p, content)| {
                    expand(p, env)
                        .map(|p| (p, content.clone()))
                        .map_err(|m| bad(format!("filesystem.create_files.{p}"), m))
                })
                .collect::<Result<_, _>>()?,
            block: net.block,
            network_profile: net.network_profile.clone(),
            allow_domain,
            deny_domain,
            credentials: net.credentials.clone(),
            custom_credentials,
            allow_endpoint,
            upstream_proxy,
            upstream_bypass,
            open_port: net.open_port.clone(),
            listen_port: net.listen_port.clone(),
            wsl2_proxy_policy: raw.security.wsl2_proxy_policy,
            share_tmp: raw.filesystem.share_tmp,
            intercept_exclude,
            proxy_ca,
            ca_env_vars,
        })
    }
}

/// An allowed-domain entry: a host pattern, normalised as `HostPattern` displays it, or a
/// URL-scoped entry (`[METHOD ]https://host/path/glob`), checked and kept as written.
pub fn host_pattern(s: &str) -> Result<String, String> {
    if nono_proxy::intercept::url_rule::is_url_entry(s) {
        return nono_proxy::intercept::url_rule::UrlRule::parse(s)
            .map(|r| r.to_string())
            .map_err(|e| e.to_string());
    }
    HostPattern::parse(s)
        .map(|p| p.to_string())
        .map_err(|e| e.to_string())
}

/// A deny entry: a host pattern (`host`, `*.suffix`, `host:port`, an IP); URL-scoped entries
/// are for allowing paths, not for denying.
pub fn deny_pattern(s: &str) -> Result<String, String> {
    if nono_proxy::intercept::url_rule::is_url_entry(s) {
        return Err(format!(
            "`{s}`: a deny entry is a host pattern (host, *.suffix, host:port); to allow only some paths of a host use a URL-scoped --allow-domain"
        ));
    }
    HostPattern::parse(s)
        .map(|p| p.to_string())
        .map_err(|e| e.to_string())
}

/// A generated CA's validity: 1 to 365 days.
pub fn check_ca_validity(days: u32) -> Result<(), String> {
    let max = nono_proxy::intercept::ca::MAX_CA_VALIDITY_DAYS;
    if (1..=max).contains(&days) {
        Ok(())
    } else {
        Err(format!("{days} days is out of range: use 1 to {max}"))
    }
}

/// An environment variable name: letters, digits and `_`, not starting with a digit.
pub fn env_var_name(s: &str) -> Result<String, String> {
    let ok = !s.is_empty()
        && !s.starts_with(|c: char| c.is_ascii_digit())
        && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if ok {
        Ok(s.to_string())
    } else {
        Err(format!(
            "`{s}` is not a variable name (letters, digits and `_`, not starting with a digit)"
        ))
    }
}

/// An upstream proxy, `host:port` (an `http://` prefix is accepted and dropped).
pub fn upstream_proxy(s: &str) -> Result<String, String> {
    let hint = "write the upstream proxy as host:port, e.g. squid.corp:3128";
    if s.starts_with("https://") {
        return Err(format!(
            "`{s}`: a TLS upstream proxy is not supported; {hint}"
        ));
    }
    let bare = s.strip_prefix("http://").unwrap_or(s);
    let bare = bare.strip_suffix('/').unwrap_or(bare);
    let p = HostPattern::parse(bare).map_err(|e| format!("{e}; {hint}"))?;
    if matches!(p.host, HostMatch::Wildcard(_)) {
        return Err(format!("`{s}`: a wildcard cannot be a proxy; {hint}"));
    }
    if p.port.is_none() {
        return Err(format!("`{s}`: the port is missing; {hint}"));
    }
    Ok(p.to_string())
}

/// An upstream-bypass pattern: an exact host or `*.suffix`, without a port.
pub fn bypass_pattern(s: &str) -> Result<String, String> {
    let p = HostPattern::parse(s).map_err(|e| e.to_string())?;
    if p.port.is_some() {
        return Err(format!(
            "`{s}`: a bypass pattern is a host or *.suffix, without a port"
        ));
    }
    Ok(p.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::raw::parse_profile;

    fn env() -> Env {
        Env {
            workdir: "/w".into(),
            home: "/h".into(),
            tmpdir: "/t".into(),
            xdg_config_home: None,
            xdg_cache_home: None,
        }
    }

    fn layer(text: &str) -> Result<Layer, String> {
        let raw = parse_profile("p.json", text).map_err(|e| e.to_string())?;
        Layer::from_raw(&raw, "p.json", &env(), &NetworkPolicy::builtin().unwrap())
            .map_err(|e| e.to_string())
    }

    #[test]
    fn expands_and_normalises() {
        let l = layer(
            r#"{"filesystem": {"allow": ["$WORKDIR", "~/.x"]},
                "network": {"allow_domain": ["API.Example.com", "nats.internal:4222", "[::1]:80"],
                            "upstream_proxy": "http://squid.corp:3128/", "upstream_bypass": ["*.Dev.Local"],
                            "custom_credentials": {"svc": {"upstream": "https://a.b", "credential_key": "k", "tls_ca": "~/ca.pem"}}}}"#,
        )
        .unwrap();
        assert_eq!(l.allow, [PathBuf::from("/w"), PathBuf::from("/h/.x")]);
        assert_eq!(
            l.allow_domain,
            ["api.example.com", "nats.internal:4222", "[::1]:80"]
        );
        assert_eq!(l.upstream_proxy.as_deref(), Some("squid.corp:3128"));
        assert_eq!(l.upstream_bypass, ["*.dev.local"]);
        let svc = &l.custom_credentials["svc"];
        assert_eq!(
            (svc.name.as_str(), svc.tls_ca.clone()),
            ("svc", Some(PathBuf::from("/h/ca.pem")))
        );
    }

    #[test]
    fn each_error_names_file_and_key() {
        let cases = [
            (r#"{"filesystem": {"read": ["/a", "$NOPE/x"]}}"#, "p.json: filesystem.read[1]: `$NOPE/x`: unknown variable $NOPE"),
            (r#"{"network": {"network_profile": "devloper"}}"#, "p.json: network.network_profile: unknown network profile \"devloper\"; available: claude-code, codex, developer,"),
            (r#"{"network": {"allow_domain": ["ok.com", "https://x.com"]}}"#, "p.json: network.allow_domain[1]: allow entry `https://x.com`: no path: write `x.com`"),
            (r#"{"network": {"allow_domain": ["x.com:0"]}}"#, "p.json: network.allow_domain[0]: invalid host pattern `x.com:0`"),
            (r#"{"network": {"open_port": [3000, 0]}}"#, "p.json: network.open_port[1]: `0` is not a port"),
            (r#"{"network": {"upstream_proxy": "squid.corp"}}"#, "p.json: network.upstream_proxy: `squid.corp`: the port is missing"),
            (r#"{"network": {"upstream_bypass": ["x.corp:443"]}}"#, "p.json: network.upstream_bypass[0]: `x.corp:443`: a bypass pattern"),
            (r#"{"network": {"credentials": ["a:b"]}}"#, "p.json: network.credentials[0]: name `a:b`"),
            (r#"{"network": {"allow_endpoint": ["openai:GET"]}}"#, "p.json: network.allow_endpoint[0]: `openai:GET` is not SERVICE:METHOD:/path"),
            (r#"{"network": {"custom_credentials": {"s": {"upstream": "http://x.com", "credential_key": "k"}}}}"#, "p.json: network.custom_credentials.s.upstream: `http://x.com`: plain http://"),
            (r#"{"network": {"custom_credentials": {"s": {"upstream": "https://x.com", "credential_key": "k", "tls_ca": "ca.pem"}}}}"#, "p.json: network.custom_credentials.s.tls_ca: `ca.pem` is not absolute"),
        ];
        for (text, want) in cases {
            let got = layer(text).unwrap_err();
            assert!(got.starts_with(want), "got: {got}\nwant: {want}");
        }
    }
}
