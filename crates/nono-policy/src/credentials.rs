//! Credential services (the built-ins in `network-policy.json` and a profile's
//! `custom_credentials`) and endpoint rules, with the validation of every field.

use std::path::PathBuf;

use nono_proxy::filter::{HostMatch, HostPattern};
use serde::{Deserialize, Serialize};

use crate::endpoint::{is_http_token, EndpointMatch, EndpointRule};

/// How the proxy puts the credential into a request.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InjectMode {
    /// A header, `inject_header: credential_format`.
    #[default]
    Header,
    /// Rewritten into the URL path with `path_pattern` → `path_replacement`.
    UrlPath,
    /// A query parameter named `query_param_name`.
    QueryParam,
    /// HTTP basic authentication (the credential is `user:password`).
    BasicAuth,
}

/// A service whose credential the proxy injects so the sandboxed command never sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CredentialService {
    /// The service's name (the key it is defined under); filled in on resolution.
    #[serde(skip_deserializing)]
    pub name: String,
    /// What the service is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Base URL requests are forwarded to: `https://...`, or `http://` to a loopback host.
    pub upstream: String,
    /// Keyring account name, or `env://VAR`, `file:///abs/path`, `cmd://command`.
    pub credential_key: String,
    /// How the credential is injected.
    #[serde(default)]
    pub inject_mode: InjectMode,
    /// Header that carries the credential (header mode).
    #[serde(default = "default_header")]
    pub inject_header: String,
    /// Header value with `{}` where the credential goes.
    #[serde(default = "default_format")]
    pub credential_format: String,
    /// Path pattern with `{}` for the credential (url_path mode).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path_pattern: Option<String>,
    /// Replacement path with `{}` for the credential (url_path mode).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path_replacement: Option<String>,
    /// Query parameter name (query_param mode).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query_param_name: Option<String>,
    /// Variable the tool reads its key from (set to a placeholder in the child).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env_var: Option<String>,
    /// Variable the tool reads its base URL from (pointed at the proxy); defaults to
    /// `<NAME>_BASE_URL`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_url_env: Option<String>,
    /// When non-empty, only these method + path patterns are forwarded.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub endpoint_rules: Vec<EndpointMatch>,
    /// Method + path patterns refused unless an explicit endpoint rule matches them: the
    /// endpoints that would let the sandboxed command mint a credential or lasting access
    /// that outlives the session (SSH/deploy keys, new tokens). Paths are full upstream
    /// paths, base path included.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub deny_endpoints: Vec<EndpointMatch>,
    /// Extra CA certificate (PEM) trusted for the upstream.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_ca: Option<PathBuf>,
    /// When true, a credential that cannot be loaded is skipped instead of failing.
    #[serde(default)]
    pub optional: bool,
}

fn default_header() -> String {
    "Authorization".to_string()
}

fn default_format() -> String {
    "Bearer {}".to_string()
}

impl CredentialService {
    /// Checks every field; errors are `(key, message)` with the key relative to the service.
    pub fn validate(&self) -> Result<(), (String, String)> {
        let err = |k: &str, m: String| Err((k.to_string(), m));
        if let Err(m) = check_upstream(&self.upstream) {
            return err("upstream", m);
        }
        if let Err(m) = check_credential_key(&self.credential_key) {
            return err("credential_key", m);
        }
        if !is_http_token(&self.inject_header) {
            return err(
                "inject_header",
                format!("`{}` is not a valid HTTP header name", self.inject_header),
            );
        }
        if let Err(m) = check_template(&self.credential_format) {
            return err("credential_format", m);
        }
        match self.inject_mode {
            InjectMode::UrlPath => {
                for (key, v) in [
                    ("path_pattern", &self.path_pattern),
                    ("path_replacement", &self.path_replacement),
                ] {
                    match v {
                        None => {
                            return err(key, "required when inject_mode is \"url_path\"".into())
                        }
                        Some(p) if !p.starts_with('/') => {
                            return err(key, format!("`{p}` must start with `/`"))
                        }
                        Some(p) => check_template(p).or_else(|m| err(key, m))?,
                    }
                }
            }
            InjectMode::QueryParam => match &self.query_param_name {
                None => {
                    return err(
                        "query_param_name",
                        "required when inject_mode is \"query_param\"".into(),
                    )
                }
                Some(q)
                    if q.is_empty()
                        || !q
                            .bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b"-_.~".contains(&b)) =>
                {
                    return err(
                        "query_param_name",
                        format!("`{q}` must be letters, digits, `-`, `_`, `.` or `~`"),
                    )
                }
                Some(_) => {}
            },
            InjectMode::Header | InjectMode::BasicAuth => {}
        }
        for (key, v) in [
            ("env_var", &self.env_var),
            ("base_url_env", &self.base_url_env),
        ] {
            if let Some(v) = v.as_deref().filter(|v| !is_env_name(v)) {
                return err(
                    key,
                    format!(
                        "`{v}` is not a valid environment variable name ([A-Za-z_][A-Za-z0-9_]*)"
                    ),
                );
            }
        }
        for (i, r) in self.endpoint_rules.iter().enumerate() {
            if let Err(m) = EndpointRule::new(&self.name, &r.method, &r.path) {
                return err(&format!("endpoint_rules[{i}]"), m);
            }
        }
        for (i, r) in self.deny_endpoints.iter().enumerate() {
            if let Err(m) = EndpointRule::new(&self.name, &r.method, &r.path) {
                return err(&format!("deny_endpoints[{i}]"), m);
            }
        }
        Ok(())
    }

    /// The variable the tool reads its base URL from: `base_url_env`, or `<NAME>_BASE_URL`.
    pub fn base_url_env_or_default(&self) -> String {
        self.base_url_env.clone().unwrap_or_else(|| {
            let upper: String = self
                .name
                .chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() {
                        c.to_ascii_uppercase()
                    } else {
                        '_'
                    }
                })
                .collect();
            format!("{upper}_BASE_URL")
        })
    }
}

/// Checks a service name: letters, digits, `-`, `_`, `.` (no `:`, which separates endpoint rules).
pub fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty()
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
    {
        return Err(format!(
            "name `{name}` must be letters, digits, `-`, `_` or `.`"
        ));
    }
    Ok(())
}

/// `https://host[:port][/path]`, or `http://` to a loopback host.
fn check_upstream(url: &str) -> Result<(), String> {
    let (https, rest) = if let Some(r) = url.strip_prefix("https://") {
        (true, r)
    } else if let Some(r) = url.strip_prefix("http://") {
        (false, r)
    } else {
        return Err(format!(
            "`{url}` must start with https:// (or http:// to a loopback host)"
        ));
    };
    let (authority, path) = rest.find('/').map_or((rest, ""), |i| rest.split_at(i));
    let host = HostPattern::parse(authority).map_err(|e| format!("`{url}`: {e}"))?;
    if matches!(host.host, HostMatch::Wildcard(_)) {
        return Err(format!(
            "`{url}`: the upstream must name one host, not a wildcard"
        ));
    }
    if path
        .chars()
        .any(|c| c.is_whitespace() || c.is_control() || c == '?' || c == '#')
    {
        return Err(format!(
            "`{url}`: the path may not contain spaces, `?` or `#`"
        ));
    }
    let loopback = match &host.host {
        HostMatch::Exact(n) => n == "localhost",
        HostMatch::Ip(ip) => ip.is_loopback(),
        HostMatch::Wildcard(_) => false,
    };
    if !https && !loopback {
        return Err(format!(
            "`{url}`: plain http:// is allowed only to localhost, 127.0.0.1 or ::1; use https://"
        ));
    }
    Ok(())
}

/// A keyring account name or `env://VAR`, `file:///abs/path`, `cmd://command`.
fn check_credential_key(key: &str) -> Result<(), String> {
    if let Some(var) = key.strip_prefix("env://") {
        return if is_env_name(var) {
            Ok(())
        } else {
            Err(format!(
                "`{key}`: `{var}` is not a valid environment variable name"
            ))
        };
    }
    if let Some(path) = key.strip_prefix("file://") {
        return if path.starts_with('/') {
            Ok(())
        } else {
            Err(format!(
                "`{key}`: a file source needs an absolute path, file:///abs/path"
            ))
        };
    }
    if let Some(cmd) = key.strip_prefix("cmd://") {
        return if cmd.trim().is_empty() {
            Err(format!("`{key}`: the command is empty"))
        } else {
            Ok(())
        };
    }
    if key.contains("://") {
        return Err(format!("`{key}`: unknown source; use a keyring account name, env://VAR, file:///abs/path or cmd://command"));
    }
    if key.is_empty()
        || !key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.@".contains(&b))
    {
        return Err(format!(
            "`{key}`: a keyring account name is letters, digits, `-`, `_`, `.` or `@`"
        ));
    }
    Ok(())
}

/// A template must hold `{}` exactly once and no CR or LF (header injection).
fn check_template(t: &str) -> Result<(), String> {
    if t.matches("{}").count() != 1 {
        return Err(format!("`{t}` must contain `{{}}` exactly once"));
    }
    if t.contains(['\r', '\n']) {
        return Err("must not contain CR or LF".to_string());
    }
    Ok(())
}

/// `[A-Za-z_][A-Za-z0-9_]*`.
pub fn is_env_name(s: &str) -> bool {
    let mut b = s.bytes();
    b.next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == b'_')
        && b.all(|c| c.is_ascii_alphanumeric() || c == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn svc(json: &str) -> CredentialService {
        let mut s: CredentialService = serde_json::from_str(json).unwrap();
        s.name = "my-svc".into();
        s
    }

    fn bad(json: &str) -> (String, String) {
        svc(json).validate().unwrap_err()
    }

    #[test]
    fn defaults_are_bearer_authorization_header() {
        let s = svc(r#"{"upstream": "https://api.example.com/v1", "credential_key": "k"}"#);
        assert_eq!(s.inject_mode, InjectMode::Header);
        assert_eq!(s.inject_header, "Authorization");
        assert_eq!(s.credential_format, "Bearer {}");
        assert_eq!(s.base_url_env_or_default(), "MY_SVC_BASE_URL");
        s.validate().unwrap();
    }

    #[test]
    fn upstream_must_be_https_or_loopback_http() {
        for ok in [
            "https://a.example.com",
            "http://127.0.0.1:8080/x",
            "http://localhost:1234",
            "http://[::1]:9/",
        ] {
            svc(&format!(r#"{{"upstream": "{ok}", "credential_key": "k"}}"#))
                .validate()
                .unwrap();
        }
        for no in [
            "http://a.example.com",
            "ftp://x.com",
            "a.example.com",
            "https://*.x.com",
            "https://u@x.com",
            "https://x.com/a b",
        ] {
            let (k, m) = bad(&format!(r#"{{"upstream": "{no}", "credential_key": "k"}}"#));
            assert_eq!(k, "upstream", "{no}: {m}");
        }
    }

    #[test]
    fn credential_key_sources() {
        for ok in [
            "openai_api_key",
            "env://OPENAI_API_KEY",
            "file:///run/secrets/k",
            "cmd://pass show x",
        ] {
            svc(&format!(
                r#"{{"upstream": "https://a.b", "credential_key": "{ok}"}}"#
            ))
            .validate()
            .unwrap();
        }
        for no in [
            "",
            "env://1X",
            "file://rel/path",
            "cmd://",
            "vault://x",
            "a b",
        ] {
            let (k, _) = bad(&format!(
                r#"{{"upstream": "https://a.b", "credential_key": "{no}"}}"#
            ));
            assert_eq!(k, "credential_key", "{no}");
        }
    }

    #[test]
    fn templates_headers_and_modes_are_checked() {
        let base = r#""upstream": "https://a.b", "credential_key": "k""#;
        assert_eq!(
            bad(&format!(r#"{{{base}, "credential_format": "Bearer"}}"#)).0,
            "credential_format"
        );
        assert_eq!(
            bad(&format!(r#"{{{base}, "credential_format": "{{}} {{}}"}}"#)).0,
            "credential_format"
        );
        assert_eq!(
            bad(&format!(
                r#"{{{base}, "credential_format": "x {{}}\r\nX: y"}}"#
            ))
            .0,
            "credential_format"
        );
        assert_eq!(
            bad(&format!(r#"{{{base}, "inject_header": "X Key"}}"#)).0,
            "inject_header"
        );
        assert_eq!(
            bad(&format!(r#"{{{base}, "inject_mode": "url_path"}}"#)).0,
            "path_pattern"
        );
        assert_eq!(
            bad(&format!(r#"{{{base}, "inject_mode": "url_path", "path_pattern": "/bot{{}}/", "path_replacement": "/x/"}}"#)).0,
            "path_replacement"
        );
        assert_eq!(
            bad(&format!(r#"{{{base}, "inject_mode": "query_param"}}"#)).0,
            "query_param_name"
        );
        assert_eq!(
            bad(&format!(r#"{{{base}, "env_var": "MY-KEY"}}"#)).0,
            "env_var"
        );
        assert_eq!(
            bad(&format!(r#"{{{base}, "base_url_env": ""}}"#)).0,
            "base_url_env"
        );
        assert_eq!(
            bad(&format!(
                r#"{{{base}, "endpoint_rules": [{{"method": "GET", "path": "v1"}}]}}"#
            ))
            .0,
            "endpoint_rules[0]"
        );
        svc(&format!(
            r#"{{{base}, "inject_mode": "query_param", "query_param_name": "key"}}"#
        ))
        .validate()
        .unwrap();
    }

    #[test]
    fn deny_endpoints_are_validated_like_endpoint_rules() {
        let base = r#""upstream": "https://a.b", "credential_key": "k""#;
        let s = svc(&format!(
            r#"{{{base}, "deny_endpoints": [{{"method": "post", "path": "/v1/keys/**"}}]}}"#
        ));
        s.validate().unwrap();
        assert_eq!(s.deny_endpoints[0].path, "/v1/keys/**");
        for (rule, why) in [
            (r#"{"method": "POST", "path": "v1"}"#, "must start with `/`"),
            (r#"{"method": "P T", "path": "/v1"}"#, "HTTP method"),
            (
                r#"{"method": "POST", "path": "/v1/key*"}"#,
                "whole segments",
            ),
            (r#"{"method": "POST", "path": "/v1/../x"}"#, "normalised"),
        ] {
            let (k, m) = bad(&format!(
                r#"{{{base}, "deny_endpoints": [{{"method": "GET", "path": "/ok"}}, {rule}]}}"#
            ));
            assert_eq!(k, "deny_endpoints[1]", "{rule}");
            assert!(m.contains(why), "{rule}: {m}");
        }
    }

    /// The routes `nono run` would serve for `credentials` under profile `p` written as `json`.
    fn routes(
        test: &str,
        json: &str,
        credentials: &[&str],
    ) -> Result<Vec<nono_proxy::RouteConfig>, String> {
        use crate::test_support::{args, setup};
        let (_t, env) = setup(test, &[("p", json)]);
        let a = crate::PolicyArgs {
            credential: credentials.iter().map(|c| c.to_string()).collect(),
            ..args(Some("p"))
        };
        let net = crate::resolve(&a, &env).map_err(|e| e.to_string())?.network;
        let opts = crate::ProxyOptions {
            bind_addr: std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST),
            bind_port: 0,
            auth: nono_proxy::AuthConfig::Disabled,
            max_connections: 0,
            timeouts: nono_proxy::Timeouts::default(),
            resolver: std::sync::Arc::new(nono_proxy::dns::SystemResolver),
            tolerate_unavailable_routes: false,
            upstream_proxy_spec: None,
            roots_file: None,
            bundle_parent: None,
        };
        let config = crate::proxy_config(&net, opts).map_err(|e| e.to_string())?;
        Ok(config.routes)
    }

    /// What the proxy decides for `method` on `rest` under the route's upstream base path.
    fn decide(
        r: &nono_proxy::RouteConfig,
        method: &str,
        rest: &str,
    ) -> Result<(), nono_proxy::endpoint::EndpointDenial> {
        use nono_proxy::endpoint::{endpoint_decision, NormalPath};
        let base = NormalPath::parse(r.upstream.path()).unwrap();
        let full = NormalPath::under(&base, &NormalPath::parse(rest).unwrap());
        endpoint_decision(&r.endpoint_rules, &r.default_deny, method, &full)
    }

    #[test]
    fn builtin_github_and_gitlab_deny_credential_minting_endpoints() {
        use nono_proxy::endpoint::EndpointDenial::{DefaultDeny, EndpointRule};
        let rs = routes("deny-builtin", "{}", &["github", "gitlab", "openai"]).unwrap();
        let route = |n: &str| rs.iter().find(|r| r.name == n).unwrap();
        let (gh, gl) = (route("github"), route("gitlab"));
        assert!(route("openai").default_deny.is_empty());
        assert_eq!(gh.default_deny.len(), 10);
        assert_eq!(gl.default_deny.len(), 16);
        // Every listed rule refuses a request spelled from its own glob.
        for r in [gh, gl] {
            let base = r.upstream.path().trim_end_matches('/').to_string();
            for d in &r.default_deny {
                let rest = d.path_glob.strip_prefix(&base).unwrap();
                let rest = rest.replace("/**", "/x/y").replace('*', "1");
                let method = if d.method == "*" { "GET" } else { &d.method };
                assert_eq!(
                    decide(r, method, &rest),
                    Err(DefaultDeny),
                    "{}: {rest}",
                    r.name
                );
            }
        }
        for (m, p) in [
            ("POST", "/user/keys"),
            ("POST", "/User//Keys/"),
            ("POST", "/repos/o/r/keys"),
            ("PUT", "/authorizations/clients/c"),
            ("GET", "/authorizations"),
            ("POST", "/app/installations/7/access_tokens"),
        ] {
            assert_eq!(decide(gh, m, p), Err(DefaultDeny), "github {m} {p}");
        }
        for (m, p) in [
            ("GET", "/user/keys"),
            ("GET", "/repos/o/r/keys"),
            ("POST", "/repos/o/r/issues"),
            ("POST", "/repos/o/r/pulls"),
            ("GET", "/user"),
        ] {
            assert_eq!(decide(gh, m, p), Ok(()), "github {m} {p}");
        }
        for (m, p) in [
            ("POST", "/personal_access_tokens/self/rotate"),
            ("POST", "/user/personal_access_tokens"),
            ("POST", "/users/5/personal_access_tokens"),
            ("POST", "/user/keys"),
            ("POST", "/user/keys.json"),
            ("POST", "/users/5/keys"),
            ("POST", "/projects/9/deploy_tokens"),
            ("POST", "/groups/9/deploy_tokens/"),
            ("POST", "/projects/9/access_tokens/3/rotate"),
            ("POST", "/groups/9/access_tokens"),
        ] {
            assert_eq!(decide(gl, m, p), Err(DefaultDeny), "gitlab {m} {p}");
        }
        for (m, p) in [
            ("GET", "/user/keys"),
            ("GET", "/personal_access_tokens/self"),
            ("POST", "/projects/9/issues"),
            ("POST", "/projects/9/merge_requests"),
        ] {
            assert_eq!(decide(gl, m, p), Ok(()), "gitlab {m} {p}");
        }

        // An explicit rule re-opens one endpoint and makes the route an allow list.
        let json = r#"{"network": {"allow_endpoint": ["github:POST:/user/keys"]}}"#;
        let rs = routes("deny-override", json, &["github"]).unwrap();
        assert_eq!(decide(&rs[0], "POST", "/user/keys"), Ok(()));
        assert_eq!(decide(&rs[0], "POST", "/repos/o/r/keys"), Err(EndpointRule));
    }

    #[test]
    fn custom_credentials_carry_their_deny_endpoints() {
        let json = r#"{"network": {"custom_credentials": {"my-api": {
            "upstream": "https://api.example.com/v2", "credential_key": "env://MY_KEY",
            "deny_endpoints": [{"method": "*", "path": "/v2/tokens/**"}]}}}}"#;
        let rs = routes("deny-custom", json, &["my-api"]).unwrap();
        assert_eq!(rs[0].default_deny.len(), 1);
        assert_eq!(rs[0].default_deny[0].method, "*");
        assert!(decide(&rs[0], "DELETE", "/tokens/1").is_err());
        assert!(decide(&rs[0], "GET", "/items").is_ok());

        let json = r#"{"network": {"custom_credentials": {"my-api": {
            "upstream": "https://api.example.com", "credential_key": "env://MY_KEY",
            "deny_endpoints": [{"method": "POST", "path": "tokens"}]}}}}"#;
        let e = routes("deny-custom-bad", json, &["my-api"]).unwrap_err();
        assert!(
            e.contains("network.custom_credentials.my-api.deny_endpoints[0]")
                && e.contains("must start with `/`"),
            "{e}"
        );
        let json = r#"{"network": {"custom_credentials": {"my-api": {
            "upstream": "https://api.example.com", "credential_key": "env://MY_KEY",
            "deny_endpoints": [{"method": "POST", "paths": "/tokens"}]}}}}"#;
        let e = routes("deny-custom-field", json, &["my-api"]).unwrap_err();
        assert!(e.contains("paths"), "{e}");
    }
}
