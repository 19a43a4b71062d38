//! How a child layer combines with its base (and the command line with the profile).
//!
//! Lists append without duplicates; `block` is base OR child (a child cannot unblock);
//! `network_profile` and `credentials` have three states (absent inherits, `null`/`[]` clears,
//! a value overrides or, for credentials, adds); `custom_credentials` merge by name with the
//! child's entry winning; single values (`upstream_proxy`, `wsl2_proxy_policy`, the
//! description) take the child's when it has one.

use crate::layer::{Layer, ProxyCaLayer};

/// Merges `child` over `base`.
pub fn merge(base: Layer, child: Layer) -> Layer {
    let mut custom_credentials = base.custom_credentials;
    custom_credentials.extend(child.custom_credentials);
    Layer {
        description: child.description.or(base.description),
        allow: append(base.allow, child.allow),
        read: append(base.read, child.read),
        allow_if_exists: append(base.allow_if_exists, child.allow_if_exists),
        read_if_exists: append(base.read_if_exists, child.read_if_exists),
        create_dirs: append(base.create_dirs, child.create_dirs),
        create_files: append(base.create_files, child.create_files),
        // By name: the child's value for a variable wins.
        path_env: {
            let mut v: Vec<(String, std::path::PathBuf)> = base
                .path_env
                .into_iter()
                .filter(|(k, _)| !child.path_env.iter().any(|(c, _)| c == k))
                .collect();
            v.extend(child.path_env);
            v
        },
        block: base.block || child.block,
        network_profile: child.network_profile.or(base.network_profile),
        allow_domain: append(base.allow_domain, child.allow_domain),
        deny_domain: append(base.deny_domain, child.deny_domain),
        credentials: match child.credentials {
            None => base.credentials,
            Some(c) if c.is_empty() => Some(c),
            Some(c) => Some(append(base.credentials.unwrap_or_default(), c)),
        },
        custom_credentials,
        allow_endpoint: append(base.allow_endpoint, child.allow_endpoint),
        upstream_proxy: child.upstream_proxy.or(base.upstream_proxy),
        upstream_bypass: append(base.upstream_bypass, child.upstream_bypass),
        open_port: append(base.open_port, child.open_port),
        listen_port: append(base.listen_port, child.listen_port),
        wsl2_proxy_policy: child.wsl2_proxy_policy.or(base.wsl2_proxy_policy),
        share_tmp: child.share_tmp.or(base.share_tmp),
        intercept_exclude: append(base.intercept_exclude, child.intercept_exclude),
        // A child's CA replaces the base's whole: a cert from one layer and a key from
        // another would never be a pair.
        proxy_ca: if child.proxy_ca == ProxyCaLayer::default() {
            base.proxy_ca
        } else {
            child.proxy_ca
        },
        ca_env_vars: append(base.ca_env_vars, child.ca_env_vars),
    }
}

/// `base` then the items of `extra` not seen yet; duplicates within either are dropped too.
pub fn append<T: PartialEq>(base: Vec<T>, extra: Vec<T>) -> Vec<T> {
    let mut out: Vec<T> = Vec::with_capacity(base.len() + extra.len());
    for item in base.into_iter().chain(extra) {
        if !out.contains(&item) {
            out.push(item);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::credentials::CredentialService;
    use crate::endpoint::EndpointRule;
    use crate::policy::Wsl2ProxyPolicy;

    fn svc(name: &str, upstream: &str) -> CredentialService {
        let mut s: CredentialService = serde_json::from_str(&format!(
            r#"{{"upstream": "{upstream}", "credential_key": "k"}}"#
        ))
        .unwrap();
        s.name = name.into();
        s
    }

    fn creds(v: Option<&[&str]>) -> Layer {
        Layer {
            credentials: v.map(|v| v.iter().map(|s| s.to_string()).collect()),
            ..Layer::default()
        }
    }

    fn np(v: Option<Option<&str>>) -> Layer {
        Layer {
            network_profile: v.map(|o| o.map(str::to_string)),
            ..Layer::default()
        }
    }

    #[test]
    fn lists_append_without_duplicates() {
        let base = Layer {
            allow: vec!["/a".into(), "/b".into()],
            open_port: vec![1, 2],
            ..Layer::default()
        };
        let child = Layer {
            allow: vec!["/b".into(), "/c".into()],
            open_port: vec![2, 3, 3],
            ..Layer::default()
        };
        let m = merge(base, child);
        assert_eq!(m.allow, ["/a", "/b", "/c"].map(std::path::PathBuf::from));
        assert_eq!(m.open_port, [1, 2, 3]);
    }

    #[test]
    fn block_is_sticky() {
        let blocked = Layer {
            block: true,
            ..Layer::default()
        };
        assert!(merge(blocked.clone(), Layer::default()).block);
        assert!(merge(Layer::default(), blocked.clone()).block);
        assert!(!merge(Layer::default(), Layer::default()).block);
    }

    #[test]
    fn network_profile_three_states() {
        let base = np(Some(Some("developer")));
        assert_eq!(
            merge(base.clone(), np(None)).network_profile,
            Some(Some("developer".into()))
        );
        assert_eq!(
            merge(base.clone(), np(Some(None))).network_profile,
            Some(None)
        );
        assert_eq!(
            merge(base, np(Some(Some("minimal")))).network_profile,
            Some(Some("minimal".into()))
        );
        // A cleared profile stays cleared for a grandchild that says nothing.
        let cleared = merge(np(Some(Some("developer"))), np(Some(None)));
        assert_eq!(merge(cleared, np(None)).network_profile, Some(None));
    }

    #[test]
    fn credentials_three_states() {
        let base = creds(Some(&["openai", "github"]));
        assert_eq!(
            merge(base.clone(), creds(None)).credentials,
            Some(vec!["openai".into(), "github".into()])
        );
        assert_eq!(
            merge(base.clone(), creds(Some(&[]))).credentials,
            Some(vec![])
        );
        assert_eq!(
            merge(base, creds(Some(&["github", "anthropic"]))).credentials,
            Some(vec!["openai".into(), "github".into(), "anthropic".into()])
        );
        assert_eq!(
            merge(creds(None), creds(Some(&["x"]))).credentials,
            Some(vec!["x".into()])
        );
        assert_eq!(
            merge(creds(Some(&[])), creds(Some(&["x"]))).credentials,
            Some(vec!["x".into()])
        );
    }

    #[test]
    fn custom_credentials_merge_by_name_child_wins() {
        let mut base = Layer::default();
        base.custom_credentials
            .insert("a".into(), svc("a", "https://base.a"));
        base.custom_credentials
            .insert("b".into(), svc("b", "https://base.b"));
        let mut child = Layer::default();
        child
            .custom_credentials
            .insert("a".into(), svc("a", "https://child.a"));
        let m = merge(base, child);
        assert_eq!(m.custom_credentials["a"].upstream, "https://child.a");
        assert_eq!(m.custom_credentials["b"].upstream, "https://base.b");
    }

    #[test]
    fn single_values_child_wins_else_inherit() {
        let base = Layer {
            upstream_proxy: Some("a:1".into()),
            wsl2_proxy_policy: Some(Wsl2ProxyPolicy::InsecureProxy),
            description: Some("base".into()),
            ..Layer::default()
        };
        let m = merge(base.clone(), Layer::default());
        assert_eq!(m.upstream_proxy.as_deref(), Some("a:1"));
        assert_eq!(m.wsl2_proxy_policy, Some(Wsl2ProxyPolicy::InsecureProxy));
        let child = Layer {
            upstream_proxy: Some("b:2".into()),
            wsl2_proxy_policy: Some(Wsl2ProxyPolicy::Error),
            ..Layer::default()
        };
        let m = merge(base, child);
        assert_eq!(m.upstream_proxy.as_deref(), Some("b:2"));
        assert_eq!(m.wsl2_proxy_policy, Some(Wsl2ProxyPolicy::Error));
        assert_eq!(m.description.as_deref(), Some("base"));
    }

    #[test]
    fn endpoint_rules_append() {
        let r = |p: &str| EndpointRule::new("s", "GET", p).unwrap();
        let base = Layer {
            allow_endpoint: vec![r("/a")],
            ..Layer::default()
        };
        let child = Layer {
            allow_endpoint: vec![r("/a"), r("/b")],
            ..Layer::default()
        };
        assert_eq!(merge(base, child).allow_endpoint, [r("/a"), r("/b")]);
    }
}
