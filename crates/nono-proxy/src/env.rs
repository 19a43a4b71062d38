//! The environment a client needs to use the proxy.

/// Hosts that always bypass the proxy.
const LOCAL_NO_PROXY: [&str; 3] = ["localhost", "127.0.0.1", "::1"];

/// `NO_PROXY` value: local hosts plus `direct` hosts (ports stripped, IPv6 unbracketed,
/// duplicates removed, order kept).
pub fn no_proxy_value(direct: &[String]) -> String {
    let mut out: Vec<String> = LOCAL_NO_PROXY.iter().map(|s| s.to_string()).collect();
    for d in direct {
        let h = strip_port(d);
        if !h.is_empty() && !out.iter().any(|o| o.eq_ignore_ascii_case(&h)) {
            out.push(h);
        }
    }
    out.join(",")
}

/// `host:port` → `host`, `[v6]:port` → `v6`, bare IPv6 stays.
fn strip_port(entry: &str) -> String {
    let e = entry.trim();
    if let Some(rest) = e.strip_prefix('[') {
        return rest.split(']').next().unwrap_or("").to_string();
    }
    if e.matches(':').count() == 1 {
        return e.split(':').next().unwrap_or("").to_string();
    }
    e.to_string()
}

/// Variables for a client: `HTTP_PROXY`, `HTTPS_PROXY`, `ALL_PROXY`, `NO_PROXY`, their
/// lower-case twins, `NONO_PROXY_TOKEN` (when auth is on) and `NODE_USE_ENV_PROXY`.
pub fn client_env(proxy_url: &str, token: Option<&str>, no_proxy: &str) -> Vec<(String, String)> {
    let mut v = Vec::new();
    for name in ["HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"] {
        v.push((name.to_string(), proxy_url.to_string()));
        v.push((name.to_ascii_lowercase(), proxy_url.to_string()));
    }
    v.push(("NO_PROXY".into(), no_proxy.to_string()));
    v.push(("no_proxy".into(), no_proxy.to_string()));
    if let Some(t) = token {
        v.push(("NONO_PROXY_TOKEN".into(), t.to_string()));
    }
    v.push(("NODE_USE_ENV_PROXY".into(), "1".into()));
    v
}

/// nono's own variables a child must not inherit (any case): they may carry passwords.
const NONO_VARS: [&str; 3] = [
    "nono_upstream_proxy",
    "nono_upstream_bypass",
    "nono_proxy_pass",
];

/// Whether the child must not inherit the variable `name`: any proxy setting (every name
/// ending in `proxy`, any case: `HTTPS_PROXY`, `socks_proxy`, `npm_config_https_proxy`,
/// `PIP_PROXY`, `GLOBAL_AGENT_NO_PROXY`, ...) and gcloud's `CLOUDSDK_PROXY_*` credentials,
/// which may carry the corporate proxy's password and would point tools past nono, and nono's
/// own settings. A name list cannot be complete (`JAVA_TOOL_OPTIONS=-Dhttp.proxyPassword=`).
fn withheld(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    // Go's module mirror settings, not network proxies: a corporate mirror or `off` must
    // reach the child.
    const NOT_NETWORK: [&str; 2] = ["goproxy", "gonoproxy"];
    (lower.ends_with("proxy") && !NOT_NETWORK.contains(&lower.as_str()))
        || lower.starts_with("cloudsdk_proxy_")
        || NONO_VARS.contains(&lower.as_str())
}

/// The child's environment: the parent's, without its proxy variables and without any
/// variable `add` sets, followed by `add`.
pub fn child_env(
    parent: impl IntoIterator<Item = (std::ffi::OsString, std::ffi::OsString)>,
    add: &[(String, String)],
) -> Vec<(std::ffi::OsString, std::ffi::OsString)> {
    let mut out: Vec<(std::ffi::OsString, std::ffi::OsString)> = parent
        .into_iter()
        .filter(|(k, _)| {
            let name = k.to_string_lossy();
            !withheld(&name) && !add.iter().any(|(a, _)| a.as_str() == name)
        })
        .collect();
    out.extend(add.iter().map(|(k, v)| (k.into(), v.into())));
    out
}

/// Bytes a URL's userinfo cannot carry as they are: everything but RFC 3986's unreserved
/// characters is percent-encoded.
const USERINFO: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// The proxy URL clients use, with credentials when auth is on (percent-encoded, so a
/// `--pass` with `@`, `/`, `#` or spaces still gives a URL clients accept).
pub fn proxy_url(host: &str, port: u16, token: Option<&str>) -> String {
    match token {
        Some(t) => {
            let t = percent_encoding::utf8_percent_encode(t, USERINFO);
            format!("http://nono:{t}@{host}:{port}")
        }
        None => format!("http://{host}:{port}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_percent_encoded_in_the_url() {
        assert_eq!(
            proxy_url("127.0.0.1", 8080, Some("p@ss/w#rd x%")),
            "http://nono:p%40ss%2Fw%23rd%20x%25@127.0.0.1:8080"
        );
        assert_eq!(
            proxy_url("127.0.0.1", 1, Some("ab12-._~")),
            "http://nono:ab12-._~@127.0.0.1:1"
        );
    }

    #[test]
    fn no_proxy_strips_ports_and_handles_ipv6() {
        let v = no_proxy_value(&[
            "nats.internal:4222".into(),
            "[fd00::5]:8080".into(),
            "NATS.internal:1".into(),
            "10.0.0.1".into(),
        ]);
        assert_eq!(v, "localhost,127.0.0.1,::1,nats.internal,fd00::5,10.0.0.1");
    }

    #[test]
    fn child_env_replaces_proxy_vars_and_real_keys() {
        let parent = vec![
            ("PATH".into(), "/bin".into()),
            ("Http_Proxy".into(), "http://corp:3128".into()),
            ("OPENAI_API_KEY".into(), "sk-real".into()),
        ];
        let add = vec![
            ("OPENAI_API_KEY".to_string(), "phantom".to_string()),
            ("HTTP_PROXY".to_string(), "http://p".to_string()),
        ];
        let env = child_env(parent, &add);
        let s: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string_lossy().into(), v.to_string_lossy().into()))
            .collect();
        assert!(s.contains(&("PATH".into(), "/bin".into())));
        assert!(!s.iter().any(|(k, _)| k == "Http_Proxy"));
        assert!(!s.iter().any(|(_, v)| v == "sk-real"));
        assert!(s.contains(&("OPENAI_API_KEY".into(), "phantom".into())));
    }

    #[test]
    fn env_has_twins_and_token() {
        let env = client_env("http://nono:t@127.0.0.1:1", Some("t"), "localhost");
        for k in [
            "HTTP_PROXY",
            "http_proxy",
            "HTTPS_PROXY",
            "https_proxy",
            "ALL_PROXY",
            "NO_PROXY",
            "no_proxy",
            "NONO_PROXY_TOKEN",
        ] {
            assert!(env.iter().any(|(n, _)| n == k), "{k}");
        }
    }

    #[test]
    fn every_proxy_variable_and_nonos_own_are_withheld() {
        for name in [
            "HTTP_PROXY",
            "socks_proxy",
            "npm_config_https_proxy",
            "PIP_PROXY",
            "GLOBAL_AGENT_NO_PROXY",
            "NONO_UPSTREAM_BYPASS",
            "nono_proxy_pass",
        ] {
            assert!(withheld(name), "{name}");
        }
        assert!(withheld("CLOUDSDK_PROXY_PASSWORD"));
        for name in [
            "PATH",
            "HOME",
            "PROXY_ENABLED_FEATURE",
            "GOPROXY",
            "GONOPROXY",
            "CI_DEPENDENCY_PROXY_PASSWORD",
        ] {
            assert!(!withheld(name), "{name}");
        }
    }
}
