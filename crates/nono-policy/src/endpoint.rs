//! Endpoint rules: which method + path a credential service may be used for
//! (`--allow-endpoint SERVICE:METHOD:/path/glob`, `network.allow_endpoint`, and a service's
//! `endpoint_rules`), and the same shape for the endpoints it refuses by default
//! (a service's `deny_endpoints`).

use serde::{Deserialize, Serialize};

use crate::credentials::check_name;

/// A method + path pattern: one entry of a service's `endpoint_rules` or `deny_endpoints`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EndpointMatch {
    /// `*` or an HTTP method.
    pub method: String,
    /// A glob over the request path, starting with `/`.
    pub path: String,
}

/// A resolved endpoint rule: `service` may be used only for `method` on `path`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EndpointRule {
    /// The credential service.
    pub service: String,
    /// `*` or an upper-cased HTTP method.
    pub method: String,
    /// Path glob, starting with `/`.
    pub path: String,
}

impl EndpointRule {
    /// Parses `SERVICE:METHOD:/path/glob` (the path may contain `:`).
    pub fn parse(spec: &str) -> Result<EndpointRule, String> {
        let mut parts = spec.splitn(3, ':');
        let (Some(service), Some(method), Some(path)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(format!(
                "`{spec}` is not SERVICE:METHOD:/path (e.g. openai:POST:/v1/chat/completions)"
            ));
        };
        check_name(service).map_err(|e| format!("`{spec}`: service {e}"))?;
        EndpointRule::new(service, method, path).map_err(|e| format!("`{spec}`: {e}"))
    }

    /// Validates the method and path of a rule for `service`.
    pub fn new(service: &str, method: &str, path: &str) -> Result<EndpointRule, String> {
        if method != "*" && !is_http_token(method) {
            return Err(format!("method `{method}` is not `*` or an HTTP method"));
        }
        if !path.starts_with('/') {
            return Err(format!("path `{path}` must start with `/`"));
        }
        if path
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || c == '?' || c == '#')
        {
            return Err(format!(
                "path `{path}` may not contain spaces, control characters, `?` or `#`"
            ));
        }
        // The proxy's own checks, repeated so a bad glob is refused with its file and key.
        for seg in path.split('/') {
            if seg.contains('*') && seg != "*" && seg != "**" {
                return Err(format!(
                    "path `{path}`: `*` and `**` must be whole segments, e.g. `/repos/*/issues/**`"
                ));
            }
            if matches!(seg, "." | "..") || seg.contains(['%', '\\']) {
                return Err(format!(
                    "path `{path}` must be written normalised: no `.`/`..` segments, `%` or `\\`"
                ));
            }
        }
        Ok(EndpointRule {
            service: service.to_string(),
            method: method.to_ascii_uppercase(),
            path: path.to_string(),
        })
    }
}

/// RFC 9110 token: header names and methods.
pub fn is_http_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_rule_specs() {
        let r = EndpointRule::parse("github:get:/repos/*/issues/**").unwrap();
        assert_eq!(
            (r.service.as_str(), r.method.as_str(), r.path.as_str()),
            ("github", "GET", "/repos/*/issues/**")
        );
        assert_eq!(EndpointRule::parse("x:*:/a:b").unwrap().path, "/a:b");
        for no in [
            "openai",
            "openai:POST",
            "openai:POST:v1",
            "openai:PO ST:/v1",
            ":GET:/",
            "openai:GET:/a?b",
            "openai:GET:/v1/chat*",
            "openai:GET:/v1/../admin",
            "openai:GET:/v1/%2e",
        ] {
            assert!(EndpointRule::parse(no).is_err(), "{no}");
        }
    }
}
