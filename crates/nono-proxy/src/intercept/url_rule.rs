//! URL-scoped allow entries: `https://api.github.com/repos/acme/**`, optionally with a method
//! (`GET https://...`). The host is intercepted and only matching requests go through.

use std::fmt;

use crate::endpoint::{EndpointRule, NormalPath};
use crate::filter::Host;

/// One URL-scoped allow entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UrlRule {
    /// The host, normalised.
    pub host: Host,
    /// The port (443 unless given).
    pub port: u16,
    /// Method and path glob.
    pub rule: EndpointRule,
    text: String,
}

/// A URL-scoped entry that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("allow entry `{entry}`: {reason}")]
pub struct UrlRuleError {
    /// The entry as written.
    pub entry: String,
    /// What is wrong and how to write it.
    pub reason: String,
}

/// Whether an allow entry is URL-scoped (as opposed to a host pattern).
pub fn is_url_entry(entry: &str) -> bool {
    let url = match entry.trim().split_once(' ') {
        Some((_, rest)) => rest.trim_start(),
        None => entry.trim(),
    };
    url.contains("://")
}

impl UrlRule {
    /// Parses `[METHOD ]https://host[:port]/path/glob`.
    pub fn parse(entry: &str) -> Result<UrlRule, UrlRuleError> {
        let bad = |reason: &str| UrlRuleError {
            entry: entry.to_string(),
            reason: reason.to_string(),
        };
        let text = entry.trim();
        let (method, url_text) = match text.split_once(' ') {
            Some((m, rest)) => (m, rest.trim_start()),
            None => ("*", text),
        };
        let url = url::Url::parse(url_text).map_err(|e| bad(&format!("not a URL: {e}")))?;
        if url.scheme() != "https" {
            return Err(bad(
                "only https:// entries can be scoped to paths; for plain HTTP allow the host",
            ));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(bad("remove the user name and password"));
        }
        if url.query().is_some() || url.fragment().is_some() {
            return Err(bad("remove the `?query` or `#fragment`: rules match paths"));
        }
        let host_text = url.host_str().ok_or_else(|| bad("no host"))?;
        if host_text.contains('*') {
            return Err(bad(
                "a URL-scoped entry names one host; wildcards are for plain host entries",
            ));
        }
        let host = Host::parse(host_text).map_err(|e| bad(&e.to_string()))?;
        let port = url.port_or_known_default().unwrap_or(443);
        let path = url.path();
        if path.is_empty() || path == "/" {
            return Err(bad(&format!(
                "no path: write `{host_text}` to allow the whole host, or add a path glob such as `{url_text}/**`"
            )));
        }
        let rule = EndpointRule::new(method, path).map_err(|e| bad(&e.to_string()))?;
        Ok(UrlRule {
            host,
            port,
            rule,
            text: text.to_string(),
        })
    }

    /// Whether this entry is for `host:port`.
    pub fn is_for(&self, host: &Host, port: u16) -> bool {
        self.port == port && self.host.same_as(host)
    }

    /// Whether a request matches.
    pub fn allows(&self, method: &str, path: &NormalPath) -> bool {
        self.rule.matches(method, path)
    }

    /// `host:port`, as an allowlist entry admitting the target.
    pub fn host_port(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }
}

impl fmt::Display for UrlRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> NormalPath {
        NormalPath::parse(s).unwrap()
    }

    #[test]
    fn entries_parse_with_and_without_a_method() {
        let r = UrlRule::parse("https://API.github.com/repos/acme/**").unwrap();
        assert_eq!(r.host, Host::Name("api.github.com".into()));
        assert_eq!(r.port, 443);
        assert!(r.allows("GET", &p("/repos/acme/x/issues")));
        assert!(r.allows("POST", &p("/repos/acme")));
        assert!(!r.allows("GET", &p("/repos/other/x")));
        let g = UrlRule::parse("GET https://localhost:8443/x/*").unwrap();
        assert_eq!(g.port, 8443);
        assert!(g.allows("get", &p("/x/y")));
        assert!(!g.allows("POST", &p("/x/y")));
        assert!(is_url_entry("GET https://a.example/x"));
        assert!(is_url_entry("https://a.example/x"));
        assert!(!is_url_entry("a.example"));
        assert!(!is_url_entry("a.example:443"));
        assert!(UrlRule::parse("https://[::1]:9/a/**")
            .unwrap()
            .is_for(&Host::Ip("::1".parse().unwrap()), 9));
    }

    #[test]
    fn bad_entries_say_how_to_write_them() {
        for (entry, want) in [
            ("http://a.example/x", "only https://"),
            ("https://a.example", "no path"),
            ("https://a.example/", "no path"),
            ("https://u:p@a.example/x", "user name"),
            ("https://a.example/x?y=1", "query"),
            ("https://*.a.example/x", "wildcards"),
            ("https://a.example/x*y", "whole path segments"),
            ("G@T https://a.example/x", "method"),
            ("https://", "not a URL"),
        ] {
            let e = UrlRule::parse(entry).unwrap_err().to_string();
            assert!(e.contains(want), "{entry}: {e}");
        }
    }
}
