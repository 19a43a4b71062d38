//! Credential routes: what `http://127.0.0.1:PORT/<name>/...` forwards to, which credential it
//! injects and how, and the checks that make a route configuration safe to serve.
//!
//! Only configuration lives here; [`crate::reverse`] serves routes, [`crate::credential`]
//! loads their secrets and [`crate::endpoint`] matches their endpoint rules.

use std::fmt;
use std::net::IpAddr;
use std::path::PathBuf;

use url::Url;

pub use crate::credential::CredentialSource;
pub use crate::endpoint::EndpointRule;

/// Longest route name accepted.
const MAX_NAME_LEN: usize = 64;

/// Where the real credential goes in the upstream request (and where the client must put the
/// route's phantom token).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InjectMode {
    /// A header; `format` holds `{}` where the credential goes (`Bearer {}`).
    Header {
        /// Header name, e.g. `Authorization` or `x-api-key`.
        name: String,
        /// Value template containing `{}`.
        format: String,
    },
    /// A path fragment: the request path must contain `pattern` with the phantom in place of
    /// `{}`; it is replaced by `replacement` with the credential in place of `{}`.
    UrlPath {
        /// Fragment the client sends, e.g. `/bot{}/`.
        pattern: String,
        /// Fragment sent upstream, e.g. `/bot{}/`.
        replacement: String,
    },
    /// A query parameter whose value is the credential.
    QueryParam {
        /// Parameter name, e.g. `key`.
        name: String,
    },
    /// `Authorization: Basic`: the client's password is the phantom. A credential containing
    /// `:` is sent as `user:password`; otherwise the client's user name is kept.
    BasicAuth,
}

/// One credential route.
#[derive(Clone, PartialEq, Eq)]
pub struct RouteConfig {
    /// Service name: the first path segment of the local URL (`/openai/...`).
    pub name: String,
    /// Where requests go: `https://...`, or `http://` only to a loopback address. Its path is
    /// the prefix the request's rest is appended to (`https://api.openai.com/v1`).
    pub upstream: Url,
    /// How the credential is injected.
    pub inject: InjectMode,
    /// Where the credential comes from.
    pub source: CredentialSource,
    /// Variable the client reads its key from (`OPENAI_API_KEY`); it receives the phantom.
    pub env_var: Option<String>,
    /// Variable the client reads its base URL from (`OPENAI_BASE_URL`); it receives the
    /// route's local URL.
    pub base_url_env: Option<String>,
    /// When non-empty, only requests matching one of these are forwarded.
    pub endpoint_rules: Vec<EndpointRule>,
    /// Requests matching one of these are refused unless an `endpoint_rules` entry matches
    /// them (see [`crate::endpoint::endpoint_decision`]); a built-in service lists the
    /// endpoints that mint credentials or lasting access here.
    pub default_deny: Vec<EndpointRule>,
    /// Extra CA (PEM) trusted for this upstream, on top of the WebPKI roots.
    pub tls_ca: Option<PathBuf>,
    /// When the credential cannot be loaded, serve 503 instead of failing start-up.
    pub optional: bool,
}

impl fmt::Debug for RouteConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // No field holds a secret; listed explicitly so a future one is not printed by accident.
        f.debug_struct("RouteConfig")
            .field("name", &self.name)
            .field("upstream", &self.upstream.as_str())
            .field("inject", &self.inject)
            .field("source", &self.source)
            .field("env_var", &self.env_var)
            .field("base_url_env", &self.base_url_env)
            .field("endpoint_rules", &self.endpoint_rules)
            .field("default_deny", &self.default_deny)
            .field("tls_ca", &self.tls_ca)
            .field("optional", &self.optional)
            .finish()
    }
}

/// A route configuration that cannot be served.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RouteError {
    /// One field of one route is invalid.
    #[error("credential route `{route}`: {field}: {reason}")]
    Invalid {
        /// Route name (as written).
        route: String,
        /// The offending field (`upstream`, `inject_header`, ...).
        field: &'static str,
        /// What is wrong and how to fix it.
        reason: String,
    },
    /// Two routes share a name or a variable.
    #[error("credential routes: {0}")]
    Conflict(String),
    /// A credential source string does not parse.
    #[error("invalid credential source `{source_text}`: {reason}")]
    Source {
        /// The text as written.
        source_text: String,
        /// What is wrong with it.
        reason: String,
    },
    /// An endpoint rule does not parse.
    #[error("invalid endpoint rule `{rule}`: {reason}")]
    EndpointRule {
        /// The rule as written.
        rule: String,
        /// What is wrong with it.
        reason: String,
    },
}

impl RouteConfig {
    /// A route with no endpoint or default deny rules, optional = false, and no variables.
    pub fn new(
        name: &str,
        upstream: Url,
        inject: InjectMode,
        source: CredentialSource,
    ) -> RouteConfig {
        RouteConfig {
            name: name.to_string(),
            upstream,
            inject,
            source,
            env_var: None,
            base_url_env: None,
            endpoint_rules: Vec::new(),
            default_deny: Vec::new(),
            tls_ca: None,
            optional: false,
        }
    }

    /// Checks every field; the error names the route, the field and the fix.
    pub fn validate(&self) -> Result<(), RouteError> {
        let bad = |field: &'static str, reason: String| RouteError::Invalid {
            route: self.name.clone(),
            field,
            reason,
        };
        check_name(&self.name).map_err(|r| bad("name", r))?;
        check_upstream(&self.upstream).map_err(|r| bad("upstream", r))?;
        match &self.inject {
            InjectMode::Header { name, format } => {
                check_header_name(name).map_err(|r| bad("inject_header", r))?;
                check_template(format, false).map_err(|r| bad("credential_format", r))?;
            }
            InjectMode::UrlPath {
                pattern,
                replacement,
            } => {
                check_template(pattern, true).map_err(|r| bad("path_pattern", r))?;
                check_template(replacement, true).map_err(|r| bad("path_replacement", r))?;
            }
            InjectMode::QueryParam { name } => {
                if name.is_empty()
                    || !name
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b))
                {
                    return Err(bad(
                        "query_param_name",
                        format!("`{name}` must be non-empty and use only letters, digits, `-`, `.`, `_`, `~`"),
                    ));
                }
            }
            InjectMode::BasicAuth => {}
        }
        for (field, v) in [
            ("env_var", &self.env_var),
            ("base_url_env", &self.base_url_env),
        ] {
            if let Some(v) = v {
                if !is_env_name(v) {
                    return Err(bad(
                        field,
                        format!("`{v}` is not a variable name (letters, digits, `_`, not starting with a digit)"),
                    ));
                }
            }
        }
        if let Some(ca) = &self.tls_ca {
            if !ca.is_absolute() {
                return Err(bad(
                    "tls_ca",
                    format!("`{}` must be an absolute path", ca.display()),
                ));
            }
        }
        Ok(())
    }

    /// The upstream host and port (default port from the scheme).
    pub(crate) fn upstream_host_port(&self) -> Option<(String, u16)> {
        let host = self.upstream.host_str()?.to_string();
        let port = self.upstream.port_or_known_default()?;
        Some((host, port))
    }
}

/// Validates a set of routes: each one, then unique names and variables.
pub fn validate_routes(routes: &[RouteConfig]) -> Result<(), RouteError> {
    let mut names: Vec<&str> = Vec::new();
    let mut vars: Vec<&str> = Vec::new();
    for r in routes {
        r.validate()?;
        if names.contains(&r.name.as_str()) {
            return Err(RouteError::Conflict(format!(
                "two routes are named `{}`; give each service one route",
                r.name
            )));
        }
        names.push(&r.name);
        for v in [&r.env_var, &r.base_url_env].into_iter().flatten() {
            if vars.contains(&v.as_str()) {
                return Err(RouteError::Conflict(format!(
                    "variable `{v}` is set by two routes; each route needs its own variables"
                )));
            }
            vars.push(v);
        }
    }
    Ok(())
}

/// Route names become a path segment: lower-case letters, digits, `-`, `_`.
fn check_name(name: &str) -> Result<(), String> {
    let ok_char = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_';
    if name.is_empty()
        || name.len() > MAX_NAME_LEN
        || !name.bytes().all(ok_char)
        || !name.as_bytes()[0].is_ascii_alphanumeric()
    {
        return Err(format!(
            "`{name}` must be 1 to {MAX_NAME_LEN} lower-case letters, digits, `-` or `_`, starting with a letter or digit"
        ));
    }
    Ok(())
}

fn check_upstream(u: &Url) -> Result<(), String> {
    if !u.username().is_empty() || u.password().is_some() {
        return Err(
            "credentials in the upstream URL are not allowed; use the credential source".into(),
        );
    }
    if u.query().is_some() || u.fragment().is_some() {
        return Err(format!("`{u}` must not have a query or fragment"));
    }
    let Some(host) = u.host() else {
        return Err(format!("`{u}` has no host"));
    };
    match u.scheme() {
        "https" => Ok(()),
        "http" => {
            let loopback = match host {
                url::Host::Domain(d) => d.eq_ignore_ascii_case("localhost"),
                url::Host::Ipv4(a) => IpAddr::V4(a).is_loopback(),
                url::Host::Ipv6(a) => IpAddr::V6(a).is_loopback(),
            };
            if loopback {
                Ok(())
            } else {
                Err(format!("`{u}` uses plain http to a non-loopback host; the credential would cross the network unencrypted: use https"))
            }
        }
        s => Err(format!(
            "scheme `{s}` is not supported; use https (or http to a loopback address)"
        )),
    }
}

/// Header names the proxy manages itself or that frame the message.
const RESERVED_HEADERS: [&str; 9] = [
    "host",
    "content-length",
    "transfer-encoding",
    "connection",
    "upgrade",
    "te",
    "trailer",
    "proxy-authorization",
    "x-nono-token",
];

fn check_header_name(name: &str) -> Result<(), String> {
    if !is_http_token(name) {
        return Err(format!(
            "`{name}` is not a valid header name (an HTTP token: letters, digits, `!#$%&'*+-.^_`|~`)"
        ));
    }
    if RESERVED_HEADERS
        .iter()
        .any(|r| r.eq_ignore_ascii_case(name))
    {
        return Err(format!(
            "`{name}` is managed by the proxy and cannot carry a credential"
        ));
    }
    Ok(())
}

/// A template must contain exactly one `{}` and only visible ASCII or spaces (no CR/LF/NUL).
fn check_template(t: &str, path: bool) -> Result<(), String> {
    if t.matches("{}").count() != 1 {
        return Err(format!(
            "`{}` must contain `{{}}` exactly once (where the credential goes)",
            t.escape_debug()
        ));
    }
    if let Some(c) = t.chars().find(|c| !(c.is_ascii_graphic() || *c == ' ')) {
        return Err(format!(
            "`{}` contains the forbidden character {:?}",
            t.escape_debug(),
            c
        ));
    }
    if path {
        if !t.starts_with('/') {
            return Err(format!("`{t}` must start with `/`"));
        }
        if t.contains(['?', '#', ' ', '%']) {
            return Err(format!("`{t}` must not contain `?`, `#`, `%` or spaces"));
        }
    }
    Ok(())
}

/// RFC 9110 token.
pub(crate) fn is_http_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// A portable environment variable name.
pub(crate) fn is_env_name(s: &str) -> bool {
    let mut b = s.bytes();
    matches!(b.next(), Some(c) if c.is_ascii_alphabetic() || c == b'_')
        && b.all(|c| c.is_ascii_alphanumeric() || c == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(upstream: &str, inject: InjectMode) -> RouteConfig {
        RouteConfig::new(
            "svc",
            Url::parse(upstream).unwrap(),
            inject,
            CredentialSource::Env { var: "K".into() },
        )
    }

    fn header(name: &str, format: &str) -> InjectMode {
        InjectMode::Header {
            name: name.into(),
            format: format.into(),
        }
    }

    #[test]
    fn upstream_must_be_https_or_loopback_http() {
        assert!(route(
            "https://api.openai.com/v1",
            header("Authorization", "Bearer {}")
        )
        .validate()
        .is_ok());
        assert!(route(
            "http://127.0.0.1:8080",
            header("Authorization", "Bearer {}")
        )
        .validate()
        .is_ok());
        assert!(
            route("http://[::1]:8080", header("Authorization", "Bearer {}"))
                .validate()
                .is_ok()
        );
        assert!(
            route("http://localhost:1", header("Authorization", "Bearer {}"))
                .validate()
                .is_ok()
        );
        for bad in [
            "http://api.openai.com",
            "ftp://x.com",
            "https://u:p@x.com",
            "https://x.com/?a=1",
        ] {
            let e = route(bad, header("Authorization", "Bearer {}"))
                .validate()
                .unwrap_err();
            assert!(e.to_string().contains("upstream"), "{bad}: {e}");
        }
    }

    #[test]
    fn header_names_must_be_tokens_and_formats_hold_one_placeholder() {
        for (name, format) in [
            ("Bad Header", "{}"),
            ("x:y", "{}"),
            ("Host", "{}"),
            ("X-Nono-Token", "{}"),
            ("Authorization", "Bearer"),
            ("Authorization", "{} {}"),
            ("Authorization", "Bearer {}\r\nX-Evil: 1"),
            ("Authorization", "Bearer {}\n"),
        ] {
            assert!(
                route("https://a.com", header(name, format))
                    .validate()
                    .is_err(),
                "{name:?} {format:?}"
            );
        }
        assert!(route("https://a.com", header("x-api-key", "{}"))
            .validate()
            .is_ok());
        assert!(route("https://a.com", header("Authorization", "token {}"))
            .validate()
            .is_ok());
    }

    #[test]
    fn url_path_and_query_modes_are_checked() {
        let ok = InjectMode::UrlPath {
            pattern: "/bot{}/".into(),
            replacement: "/bot{}/".into(),
        };
        assert!(route("https://a.com", ok).validate().is_ok());
        let bad = InjectMode::UrlPath {
            pattern: "bot{}".into(),
            replacement: "/bot{}/".into(),
        };
        assert!(route("https://a.com", bad).validate().is_err());
        assert!(route(
            "https://a.com",
            InjectMode::QueryParam { name: "key".into() }
        )
        .validate()
        .is_ok());
        assert!(route(
            "https://a.com",
            InjectMode::QueryParam { name: "k&x".into() }
        )
        .validate()
        .is_err());
    }

    #[test]
    fn names_and_variables_are_unique_and_well_formed() {
        let mut a = route("https://a.com", InjectMode::BasicAuth);
        a.env_var = Some("A_KEY".into());
        let mut b = a.clone();
        b.name = "other".into();
        assert!(matches!(
            validate_routes(&[a.clone(), b.clone()]),
            Err(RouteError::Conflict(_))
        ));
        b.env_var = Some("B_KEY".into());
        assert!(validate_routes(&[a.clone(), b]).is_ok());
        let mut c = a.clone();
        c.name = "Bad/Name".into();
        assert!(c.validate().is_err());
        let mut d = a;
        d.base_url_env = Some("1X".into());
        assert!(d.validate().is_err());
    }
}
