//! The network half of resolution: network profile → hosts, `host:port` → direct endpoints,
//! credential names → services, endpoint rules, upstream proxy, and the mode (unrestricted,
//! blocked or proxied) with the `--block-net` conflict check.

use nono_proxy::filter::HostPattern;

use crate::endpoint::EndpointRule;
use crate::error::PolicyError;
use crate::layer::Layer;
use crate::load::ProfileInfo;
use crate::merge::append;
use crate::network_policy::NetworkPolicy;
use crate::policy::{DirectEndpoint, NetworkMode, PolicyArgs, ProxyCa, ResolvedNetwork};

/// Where a merged setting came from, for error messages.
pub(crate) struct Origin<'a> {
    pub(crate) args: &'a PolicyArgs,
    pub(crate) profile: Option<&'a ProfileInfo>,
}

impl Origin<'_> {
    /// `--flag` when the command line set it, else `key (profile "name")`.
    fn of(&self, from_cli: bool, flag: &str, key: &str) -> String {
        match (from_cli, self.profile) {
            (true, _) | (false, None) => flag.to_string(),
            (false, Some(p)) => format!("{key} (profile \"{}\")", p.name),
        }
    }

    /// An error about a merged setting, as a flag error or a profile error.
    fn error(&self, from_cli: bool, flag: &str, key: &str, message: String) -> PolicyError {
        match (from_cli, self.profile) {
            (false, Some(p)) => PolicyError::invalid(&p.source, key, message),
            _ => PolicyError::flag(flag, message),
        }
    }
}

/// The deny pattern that matches the direct entry `entry` on `port`, if any.
fn denied_direct(deny: &[String], entry: &str, port: u16) -> Option<String> {
    let host = entry.rsplit_once(':').map_or(entry, |(h, _)| h);
    if let Some(suffix) = host.strip_prefix("*.") {
        // A wildcard entry conflicts with any deny inside its domain.
        let suffix = suffix.to_ascii_lowercase();
        return deny
            .iter()
            .find(|d| {
                HostPattern::parse(d).is_ok_and(|p| {
                    let name = match &p.host {
                        nono_proxy::filter::HostMatch::Exact(n)
                        | nono_proxy::filter::HostMatch::Wildcard(n) => n.as_str(),
                        nono_proxy::filter::HostMatch::Ip(_) => return false,
                    };
                    !matches!(p.port, Some(dp) if dp != port)
                        && (name == suffix || name.ends_with(&format!(".{suffix}")))
                })
            })
            .cloned();
    }
    let host = nono_proxy::filter::Host::parse(host).ok()?;
    deny.iter()
        .find(|d| HostPattern::parse(d).is_ok_and(|p| p.matches(&host, port)))
        .cloned()
}

/// Resolves the network settings of the merged layer.
pub(crate) fn resolve_network(
    m: &Layer,
    policy: &NetworkPolicy,
    from: &Origin<'_>,
) -> Result<ResolvedNetwork, PolicyError> {
    let args = from.args;
    let network_profile = m.network_profile.clone().flatten();
    let mut allowed_hosts = match &network_profile {
        Some(np) => policy
            .hosts(np)
            .map_err(|e| PolicyError::flag("--network-profile", e))?,
        None => Vec::new(),
    };
    let (url_rules, host_entries): (Vec<String>, Vec<String>) = m
        .allow_domain
        .iter()
        .cloned()
        .partition(|d| nono_proxy::intercept::url_rule::is_url_entry(d));
    allowed_hosts = append(allowed_hosts, host_entries.clone());
    let mut direct = Vec::new();
    for d in &host_entries {
        let p = HostPattern::parse(d)
            .map_err(|e| PolicyError::flag("--allow-domain", e.to_string()))?;
        if let Some(port) = p.port {
            // A direct entry never passes the proxy, so a deny there could not be enforced:
            // say so instead of letting the allow win.
            if let Some(deny) = denied_direct(&m.deny_domain, d, port) {
                return Err(from.error(
                    !args.allow_domain.is_empty(),
                    "--allow-domain",
                    "network.allow_domain",
                    format!(
                        "`{d}` is a direct connection (it bypasses the proxy), but `{deny}` denies it; remove one of the two"
                    ),
                ));
            }
            direct.push(DirectEndpoint {
                host: p.no_proxy_entry(),
                port,
            });
        }
    }

    let mut credentials = Vec::new();
    for name in m.credentials.clone().unwrap_or_default() {
        let svc = m
            .custom_credentials
            .get(&name)
            .or_else(|| policy.credentials.get(&name));
        let Some(svc) = svc else {
            let mut available: Vec<&String> = policy
                .credentials
                .keys()
                .chain(m.custom_credentials.keys())
                .collect();
            available.sort();
            available.dedup();
            let list = available
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(", ");
            let msg = format!("unknown credential service \"{name}\"; available: {list} (add others under network.custom_credentials)");
            return Err(from.error(
                args.credential.contains(&name),
                "--credential",
                "network.credentials",
                msg,
            ));
        };
        let mut svc = svc.clone();
        svc.name.clone_from(&name);
        svc.base_url_env = Some(svc.base_url_env_or_default());
        credentials.push(svc);
    }

    let mut endpoint_rules = Vec::new();
    for rule in &m.allow_endpoint {
        if !credentials.iter().any(|c| c.name == rule.service) {
            let active = credentials
                .iter()
                .map(|c| c.name.as_str())
                .collect::<Vec<_>>()
                .join(", ");
            let cli = args
                .allow_endpoint
                .iter()
                .any(|s| s.starts_with(&format!("{}:", rule.service)));
            let msg = format!(
                "service \"{}\" is not among the credentials in use ({}); add it with --credential or network.credentials",
                rule.service,
                if active.is_empty() { "none" } else { &active }
            );
            return Err(from.error(cli, "--allow-endpoint", "network.allow_endpoint", msg));
        }
    }
    endpoint_rules = append(endpoint_rules, m.allow_endpoint.clone());
    for svc in &credentials {
        for r in &svc.endpoint_rules {
            let rule = EndpointRule::new(&svc.name, &r.method, &r.path).map_err(|e| {
                PolicyError::flag(
                    "endpoint_rules",
                    format!("credential \"{}\": {e}", svc.name),
                )
            })?;
            endpoint_rules = append(endpoint_rules, vec![rule]);
        }
    }

    if !m.upstream_bypass.is_empty() && m.upstream_proxy.is_none() {
        let msg = "upstream_bypass needs an upstream proxy; set --upstream-proxy or network.upstream_proxy, or drop the bypass".to_string();
        return Err(from.error(
            !args.upstream_bypass.is_empty(),
            "--upstream-bypass",
            "network.upstream_bypass",
            msg,
        ));
    }

    let triggers = [
        network_profile.as_ref().map(|np| {
            let cli = args.network_profile.is_some();
            from.of(
                cli,
                &format!("--network-profile {np}"),
                &format!("network.network_profile \"{np}\""),
            )
        }),
        (!m.allow_domain.is_empty()).then(|| {
            from.of(
                !args.allow_domain.is_empty(),
                "--allow-domain",
                "network.allow_domain",
            )
        }),
        (!credentials.is_empty()).then(|| {
            from.of(
                !args.credential.is_empty(),
                "--credential",
                "network.credentials",
            )
        }),
        m.upstream_proxy.as_ref().map(|_| {
            from.of(
                args.upstream_proxy.is_some(),
                "--upstream-proxy",
                "network.upstream_proxy",
            )
        }),
    ];
    let trigger = triggers.into_iter().flatten().next();
    let mode = match (m.block, trigger) {
        (true, Some(second)) => {
            return Err(PolicyError::Conflict {
                first: from.of(args.block_net, "--block-net", "network.block"),
                second,
                hint: "blocking the network leaves nothing to filter; drop one of them (in a profile that extends \
                       another, `\"network_profile\": null` and `\"credentials\": []` clear inherited values)"
                    .to_string(),
            })
        }
        (true, None) => NetworkMode::Blocked,
        (false, Some(_)) => NetworkMode::Proxy,
        (false, None) => NetworkMode::Unrestricted,
    };
    let proxy_ca = proxy_ca(m, from)?;
    Ok(ResolvedNetwork {
        mode,
        network_profile,
        allowed_hosts,
        direct,
        denied_hosts: m.deny_domain.clone(),
        credentials,
        endpoint_rules,
        upstream_proxy: m.upstream_proxy.clone(),
        upstream_bypass: m.upstream_bypass.clone(),
        open_ports: m.open_port.clone(),
        listen_ports: m.listen_port.clone(),
        url_rules,
        intercept_exclude: m.intercept_exclude.clone(),
        proxy_ca,
        ca_env_vars: m.ca_env_vars.clone(),
    })
}

/// The interception CA: an existing one needs both files and no validity (its own
/// certificate says how long it is valid); otherwise a fresh one, 1 day by default.
fn proxy_ca(m: &Layer, from: &Origin<'_>) -> Result<ProxyCa, PolicyError> {
    let args = from.args;
    let cli = args.proxy_ca_cert.is_some()
        || args.proxy_ca_key.is_some()
        || args.proxy_ca_validity.is_some();
    let ca = &m.proxy_ca;
    let err = |msg: &str| {
        from.error(
            cli,
            "--proxy-ca-cert/--proxy-ca-key",
            "network.proxy_ca",
            msg.to_string(),
        )
    };
    match (&ca.cert, &ca.key, ca.validity_days) {
        (Some(_), Some(_), Some(_)) => Err(err(
            "an existing CA (cert and key) conflicts with a validity: the certificate sets its own; drop the validity",
        )),
        (Some(cert), Some(key), None) => Ok(ProxyCa::Files {
            cert: cert.clone(),
            key: key.clone(),
        }),
        (Some(_), None, _) => Err(err("the CA certificate is given without its key; give both")),
        (None, Some(_), _) => Err(err("the CA key is given without its certificate; give both")),
        (None, None, days) => Ok(ProxyCa::Generate {
            validity_days: days.unwrap_or(1),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::PolicyArgs;
    use crate::resolve::resolve;
    use crate::test_support::{args, env_in, setup};

    #[test]
    fn each_trigger_turns_the_proxy_on() {
        let (_t, env) = env_in("triggers");
        let cases = [
            PolicyArgs {
                network_profile: Some("minimal".into()),
                ..PolicyArgs::default()
            },
            PolicyArgs {
                allow_domain: vec!["a.example.com".into()],
                ..PolicyArgs::default()
            },
            PolicyArgs {
                credential: vec!["openai".into()],
                ..PolicyArgs::default()
            },
            PolicyArgs {
                upstream_proxy: Some("squid.corp:3128".into()),
                ..PolicyArgs::default()
            },
        ];
        for a in cases {
            assert_eq!(
                resolve(&a, &env).unwrap().network.mode,
                NetworkMode::Proxy,
                "{a:?}"
            );
        }
    }

    #[test]
    fn host_port_entries_are_direct_and_never_urls() {
        let (_t, env) = env_in("direct");
        let a = PolicyArgs {
            allow_domain: vec![
                "nats.internal:4222".into(),
                "[::1]:8080".into(),
                "localhost:3000".into(),
                "*.dev.local".into(),
            ],
            ..PolicyArgs::default()
        };
        let n = resolve(&a, &env).unwrap().network;
        assert_eq!(
            n.allowed_hosts,
            [
                "nats.internal:4222",
                "[::1]:8080",
                "localhost:3000",
                "*.dev.local"
            ]
        );
        let d: Vec<(String, u16)> = n.direct.into_iter().map(|d| (d.host, d.port)).collect();
        assert_eq!(
            d,
            [
                ("nats.internal".into(), 4222),
                ("::1".into(), 8080),
                ("localhost".into(), 3000)
            ]
        );
        let bad = PolicyArgs {
            allow_domain: vec!["http://x.com".into()],
            ..PolicyArgs::default()
        };
        let e = resolve(&bad, &env).unwrap_err().to_string();
        assert!(
            e.starts_with("--allow-domain: allow entry `http://x.com`: only https://"),
            "{e}"
        );
    }

    #[test]
    fn block_with_a_proxy_setting_names_both() {
        let (_t, env) = setup("block", &[("blocked", r#"{"network": {"block": true}}"#)]);
        let a = PolicyArgs {
            block_net: true,
            allow_domain: vec!["x.com".into()],
            ..PolicyArgs::default()
        };
        let e = resolve(&a, &env).unwrap_err().to_string();
        assert!(
            e.starts_with("--block-net cannot be combined with --allow-domain: "),
            "{e}"
        );
        let a = PolicyArgs {
            block_net: true,
            ..args(Some("claude-code"))
        };
        let e = resolve(&a, &env).unwrap_err().to_string();
        assert!(e.starts_with("--block-net cannot be combined with network.network_profile \"claude-code\" (profile \"claude-code\")"), "{e}");
        let a = PolicyArgs {
            credential: vec!["openai".into()],
            ..args(Some("blocked"))
        };
        let e = resolve(&a, &env).unwrap_err().to_string();
        assert!(
            e.starts_with(
                "network.block (profile \"blocked\") cannot be combined with --credential"
            ),
            "{e}"
        );
    }

    #[test]
    fn child_clears_network_profile_and_credentials() {
        let (_t, env) = setup(
            "clear",
            &[
                (
                    "base",
                    r#"{"network": {"network_profile": "developer", "credentials": ["openai"]}}"#,
                ),
                (
                    "np-null",
                    r#"{"extends": "base", "network": {"network_profile": null}}"#,
                ),
                (
                    "both",
                    r#"{"extends": "base", "network": {"network_profile": null, "credentials": []}}"#,
                ),
                (
                    "blocked",
                    r#"{"extends": "both", "network": {"block": true}}"#,
                ),
            ],
        );
        let n = resolve(&args(Some("np-null")), &env).unwrap().network;
        assert_eq!(
            (n.network_profile, n.credentials.len(), n.mode),
            (None, 1, NetworkMode::Proxy)
        );
        let n = resolve(&args(Some("both")), &env).unwrap().network;
        assert_eq!(
            (n.credentials.len(), n.mode),
            (0, NetworkMode::Unrestricted)
        );
        assert_eq!(
            resolve(&args(Some("blocked")), &env).unwrap().network.mode,
            NetworkMode::Blocked
        );
    }

    #[test]
    fn credentials_and_endpoint_rules() {
        let (_t, env) = setup(
            "creds",
            &[(
                "p",
                r#"{"network": {"credentials": ["my-api", "openai"], "allow_endpoint": ["openai:post:/v1/chat/completions"],
                 "custom_credentials": {"my-api": {"upstream": "https://api.example.com", "credential_key": "env://MY_KEY",
                   "endpoint_rules": [{"method": "GET", "path": "/v1/**"}]}}}}"#,
            )],
        );
        let a = PolicyArgs {
            allow_endpoint: vec!["my-api:*:/health".into()],
            ..args(Some("p"))
        };
        let n = resolve(&a, &env).unwrap().network;
        let my = &n.credentials[0];
        assert_eq!(
            (my.name.as_str(), my.base_url_env.as_deref()),
            ("my-api", Some("MY_API_BASE_URL"))
        );
        assert_eq!(
            n.credentials[1].base_url_env.as_deref(),
            Some("OPENAI_BASE_URL")
        );
        let rules: Vec<String> = n
            .endpoint_rules
            .iter()
            .map(|r| format!("{}:{}:{}", r.service, r.method, r.path))
            .collect();
        assert_eq!(
            rules,
            [
                "openai:POST:/v1/chat/completions",
                "my-api:*:/health",
                "my-api:GET:/v1/**"
            ]
        );

        let a = PolicyArgs {
            allow_endpoint: vec!["github:GET:/x".into()],
            ..args(Some("p"))
        };
        let e = resolve(&a, &env).unwrap_err().to_string();
        assert!(e.starts_with("--allow-endpoint: service \"github\" is not among the credentials in use (my-api, openai)"), "{e}");
        let a = PolicyArgs {
            credential: vec!["nope".into()],
            ..PolicyArgs::default()
        };
        let e = resolve(&a, &env).unwrap_err().to_string();
        assert_eq!(e, "--credential: unknown credential service \"nope\"; available: anthropic, gemini, github, gitlab, openai (add others under network.custom_credentials)");
    }

    #[test]
    fn bypass_without_upstream_proxy_is_an_error() {
        let (_t, env) = env_in("bypass");
        let a = PolicyArgs {
            upstream_bypass: vec!["git.internal.corp".into()],
            ..PolicyArgs::default()
        };
        let e = resolve(&a, &env).unwrap_err().to_string();
        assert!(
            e.starts_with("--upstream-bypass: upstream_bypass needs an upstream proxy"),
            "{e}"
        );
        let a = PolicyArgs {
            upstream_proxy: Some("squid.corp:3128".into()),
            ..a
        };
        assert_eq!(
            resolve(&a, &env).unwrap().network.upstream_bypass,
            ["git.internal.corp"]
        );
    }
}
