//! Request path normalisation and endpoint rules (`SERVICE:METHOD:/path/glob`).
//!
//! A path is split into segments, each percent-decoded; `.` segments are dropped, `..` removes
//! the previous segment (never climbing above the root), empty segments are dropped. A decoded
//! `/`, `\` or NUL inside a segment is refused, and so is a `.`/`..` segment with `;`
//! parameters (`..;`), so no spelling of a path can reach the upstream
//! as something an endpoint rule did not see. Rules and the upstream request both use the
//! normalised form.
//!
//! [`endpoint_decision`] combines a route's explicit rules (an allow list) with its default
//! deny rules (endpoints that mint credentials, which explicit rules can re-open).

use std::fmt;

use percent_encoding::{percent_decode_str, utf8_percent_encode, AsciiSet, CONTROLS};

use crate::route::RouteError;

/// Characters re-encoded when a normalised segment is written back into a path.
const SEGMENT: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'/')
    .add(b'<')
    .add(b'>')
    .add(b'?')
    .add(b'`')
    .add(b'{')
    .add(b'}')
    .add(b'\\')
    .add(b'^')
    .add(b'|')
    .add(b'[')
    .add(b']');

/// Percent-encodes one segment (or a credential written into a path).
pub(crate) fn encode_segment(s: &str) -> String {
    utf8_percent_encode(s, SEGMENT).to_string()
}

/// A path that cannot be normalised safely.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PathError {
    /// A segment decodes to something containing `/`, `\` or NUL.
    #[error("a path segment encodes `/`, `\\` or NUL")]
    EncodedSeparator,
    /// `..` would leave the route.
    #[error("`..` climbs above the route's root")]
    EscapesRoot,
    /// A segment is not valid UTF-8 after decoding.
    #[error("a path segment is not UTF-8")]
    NotUtf8,
    /// A `.` or `..` segment with `;parameters`, which some servers (Tomcat, Jetty, Spring)
    /// resolve as a dot segment after the rules saw an ordinary one.
    #[error("a `.` or `..` path segment carries `;` parameters")]
    DotSegmentParameter,
}

/// A normalised path: decoded segments plus whether it ended with `/`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NormalPath {
    /// Decoded segments, none empty, none `.` or `..`.
    pub segments: Vec<String>,
    /// The original ended with `/` (kept, since APIs distinguish it).
    pub trailing_slash: bool,
}

impl NormalPath {
    /// Normalises a raw (still percent-encoded) path.
    pub fn parse(raw: &str) -> Result<NormalPath, PathError> {
        let mut segments: Vec<String> = Vec::new();
        let mut trailing_slash = false;
        for seg in raw.split('/') {
            trailing_slash = seg.is_empty();
            let decoded = percent_decode_str(seg)
                .decode_utf8()
                .map_err(|_| PathError::NotUtf8)?;
            if decoded.contains(['/', '\\', '\0']) {
                return Err(PathError::EncodedSeparator);
            }
            if decoded
                .split_once(';')
                .is_some_and(|(head, _)| head == "." || head == "..")
            {
                return Err(PathError::DotSegmentParameter);
            }
            match decoded.as_ref() {
                "" | "." => {
                    trailing_slash = true;
                }
                ".." => {
                    trailing_slash = true;
                    if segments.pop().is_none() {
                        return Err(PathError::EscapesRoot);
                    }
                }
                s => segments.push(s.to_string()),
            }
        }
        if segments.is_empty() {
            trailing_slash = raw.ends_with('/');
        }
        Ok(NormalPath {
            segments,
            trailing_slash,
        })
    }

    /// The segments under a base path (`/v1` + `chat/completions`).
    pub fn under(base: &NormalPath, rest: &NormalPath) -> NormalPath {
        let mut segments = base.segments.clone();
        segments.extend(rest.segments.iter().cloned());
        let trailing_slash = if rest.segments.is_empty() {
            rest.trailing_slash || base.trailing_slash
        } else {
            rest.trailing_slash
        };
        NormalPath {
            segments,
            trailing_slash,
        }
    }

    /// The encoded form, always starting with `/`.
    pub fn encoded(&self) -> String {
        let mut out = String::new();
        for s in &self.segments {
            out.push('/');
            out.extend(utf8_percent_encode(s, SEGMENT));
        }
        if out.is_empty() || self.trailing_slash {
            out.push('/');
        }
        out
    }
}

impl fmt::Display for NormalPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.encoded())
    }
}

/// One allowed endpoint of a route: a method (or `*`) and a path glob where `*` is exactly one
/// segment and `**` zero or more segments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointRule {
    /// Upper-case method, or `*` for any.
    pub method: String,
    /// The glob as written, starting with `/`.
    pub path_glob: String,
}

impl EndpointRule {
    /// Builds a rule from a method and a glob, checking both.
    pub fn new(method: &str, path_glob: &str) -> Result<EndpointRule, RouteError> {
        let bad = |reason: &str| RouteError::EndpointRule {
            rule: format!("{method}:{path_glob}"),
            reason: reason.to_string(),
        };
        if method != "*" && !crate::route::is_http_token(method) {
            return Err(bad("the method must be an HTTP method name or `*`"));
        }
        if !path_glob.starts_with('/') {
            return Err(bad("the path must start with `/`"));
        }
        for seg in path_glob.split('/') {
            if seg.contains('*') && seg != "*" && seg != "**" {
                return Err(bad(
                    "`*` and `**` must be whole path segments, e.g. `/repos/*/issues/**`",
                ));
            }
            if matches!(seg, "." | "..") || seg.contains(['%', '?', '#', '\\']) {
                return Err(bad(
                    "write the path normalised: no `.`/`..` segments, `%`, `?`, `#` or `\\`",
                ));
            }
        }
        Ok(EndpointRule {
            method: method.to_ascii_uppercase(),
            path_glob: path_glob.to_string(),
        })
    }

    /// Parses the `--allow-endpoint` form `SERVICE:METHOD:/path/glob` into (service, rule).
    pub fn parse_flag(spec: &str) -> Result<(String, EndpointRule), RouteError> {
        let mut parts = spec.splitn(3, ':');
        match (parts.next(), parts.next(), parts.next()) {
            (Some(service), Some(method), Some(path)) if !service.is_empty() => {
                Ok((service.to_string(), EndpointRule::new(method, path)?))
            }
            _ => Err(RouteError::EndpointRule {
                rule: spec.to_string(),
                reason: "expected SERVICE:METHOD:/path/glob, e.g. `github:GET:/repos/**`".into(),
            }),
        }
    }

    /// Whether a request with `method` and normalised `path` matches.
    pub fn matches(&self, method: &str, path: &NormalPath) -> bool {
        self.matches_with(method, path, exact_segment)
    }

    /// Like [`EndpointRule::matches`], but a literal segment also matches in any letter case
    /// and with a `.suffix` or `;params` tail (`Keys`, `keys.json`, `keys;x`). Used for deny
    /// rules only, where matching too much fails closed: GitHub routes paths
    /// case-insensitively and GitLab's API accepts a `.json` format suffix.
    fn matches_loosely(&self, method: &str, path: &NormalPath) -> bool {
        self.matches_with(method, path, loose_segment)
    }

    fn matches_with(&self, method: &str, path: &NormalPath, same: fn(&str, &str) -> bool) -> bool {
        if self.method != "*" && !self.method.eq_ignore_ascii_case(method) {
            return false;
        }
        let glob: Vec<&str> = self
            .path_glob
            .split('/')
            .filter(|s| !s.is_empty())
            .collect();
        let segs: Vec<&str> = path.segments.iter().map(String::as_str).collect();
        glob_match(&glob, &segs, same)
    }
}

/// Why [`endpoint_decision`] refused a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
#[non_exhaustive]
pub enum EndpointDenial {
    /// The route has explicit endpoint rules and none matches.
    #[error("the request matches none of the route's endpoint rules")]
    EndpointRule,
    /// A default deny rule matches (an endpoint that mints credentials or lasting access) and
    /// no explicit endpoint rule re-opens it.
    #[error("the endpoint is denied by default for this service; allow it with an explicit endpoint rule")]
    DefaultDeny,
}

impl EndpointDenial {
    /// Stable machine-readable reason for 403 bodies and audit events.
    pub fn as_str(self) -> &'static str {
        match self {
            EndpointDenial::EndpointRule => "endpoint_rule",
            EndpointDenial::DefaultDeny => "endpoint_default_deny",
        }
    }
}

/// Decides whether a request may use a route, from the route's explicit `rules`
/// ([`RouteConfig::endpoint_rules`](crate::route::RouteConfig::endpoint_rules)) and its
/// `default_deny` rules ([`RouteConfig::default_deny`](crate::route::RouteConfig::default_deny)).
///
/// `method` is the request method as sent; `path` is the full normalised upstream path, i.e.
/// the route's base joined with the request's rest (`NormalPath::under(&base, &rest)`, which
/// includes `/api/v4` for GitLab). Call it wherever a route's request is about to be forwarded
/// (the reverse proxy and intercepted TLS alike) and refuse with 403 and
/// [`EndpointDenial::as_str`] on `Err`.
///
/// In order: an explicit rule that matches allows the request, even if a default deny rule
/// matches too (that is how a user re-opens a denied endpoint); otherwise non-empty explicit
/// rules refuse it ([`EndpointDenial::EndpointRule`]); otherwise a matching default deny rule
/// refuses it ([`EndpointDenial::DefaultDeny`]); otherwise it is allowed. Explicit rules match
/// segments exactly; default deny rules match loosely (any case, `.json`/`;x` tails).
pub fn endpoint_decision(
    rules: &[EndpointRule],
    default_deny: &[EndpointRule],
    method: &str,
    path: &NormalPath,
) -> Result<(), EndpointDenial> {
    if rules.iter().any(|r| r.matches(method, path)) {
        return Ok(());
    }
    if !rules.is_empty() {
        return Err(EndpointDenial::EndpointRule);
    }
    if default_deny.iter().any(|r| r.matches_loosely(method, path)) {
        return Err(EndpointDenial::DefaultDeny);
    }
    Ok(())
}

/// Segment-wise glob match; `**` backtracks over zero or more segments, `*` is any one
/// segment and a literal is compared with `same`.
fn glob_match(glob: &[&str], segs: &[&str], same: fn(&str, &str) -> bool) -> bool {
    match glob.split_first() {
        None => segs.is_empty(),
        Some((&"**", rest)) => (0..=segs.len()).any(|skip| glob_match(rest, &segs[skip..], same)),
        Some((g, rest)) => match segs.split_first() {
            Some((s, srest)) => (*g == "*" || same(g, s)) && glob_match(rest, srest, same),
            None => false,
        },
    }
}

fn exact_segment(glob: &str, seg: &str) -> bool {
    glob == seg
}

/// `seg` is `glob` in any ASCII case, optionally followed by `.` or `;` and anything.
fn loose_segment(glob: &str, seg: &str) -> bool {
    let (g, s) = (glob.as_bytes(), seg.as_bytes());
    s.get(..g.len())
        .is_some_and(|head| head.eq_ignore_ascii_case(g))
        && matches!(s.get(g.len()), None | Some(b'.' | b';'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn norm(s: &str) -> Result<String, PathError> {
        NormalPath::parse(s).map(|p| p.encoded())
    }

    #[test]
    fn dot_segments_and_empty_segments_are_resolved() {
        assert_eq!(norm("/chat/completions").unwrap(), "/chat/completions");
        assert_eq!(norm("/a/./b/../c").unwrap(), "/a/c");
        assert_eq!(norm("/a/%2e%2E/c").unwrap(), "/c");
        assert_eq!(norm("/a/%2e/c").unwrap(), "/a/c");
        assert_eq!(norm("//evil.com/x").unwrap(), "/evil.com/x");
        assert_eq!(norm("/repos/").unwrap(), "/repos/");
        assert_eq!(norm("").unwrap(), "/");
        assert_eq!(norm("/").unwrap(), "/");
        assert_eq!(norm("/a/..").unwrap(), "/");
        assert_eq!(norm("/user@host/x").unwrap(), "/user@host/x");
    }

    #[test]
    fn escapes_and_encoded_separators_are_refused() {
        assert_eq!(norm("/.."), Err(PathError::EscapesRoot));
        assert_eq!(norm("/a/../../b"), Err(PathError::EscapesRoot));
        assert_eq!(norm("/%2e%2e/x"), Err(PathError::EscapesRoot));
        assert_eq!(norm("/a%2fb"), Err(PathError::EncodedSeparator));
        assert_eq!(norm("/a%2Fb"), Err(PathError::EncodedSeparator));
        assert_eq!(norm("/a%5cb"), Err(PathError::EncodedSeparator));
        assert_eq!(norm("/a%00b"), Err(PathError::EncodedSeparator));
        assert_eq!(norm("/a%ffb"), Err(PathError::NotUtf8));
    }

    #[test]
    fn decoding_is_reencoded_consistently() {
        assert_eq!(norm("/a%20b/%41").unwrap(), "/a%20b/A");
        assert_eq!(norm("/q%3Fx").unwrap(), "/q%3Fx");
    }

    #[test]
    fn base_paths_join() {
        let base = NormalPath::parse("/v1").unwrap();
        let rest = NormalPath::parse("/chat/completions").unwrap();
        assert_eq!(
            NormalPath::under(&base, &rest).encoded(),
            "/v1/chat/completions"
        );
        let empty = NormalPath::parse("").unwrap();
        assert_eq!(NormalPath::under(&base, &empty).encoded(), "/v1");
        let slash = NormalPath::parse("/").unwrap();
        assert_eq!(NormalPath::under(&base, &slash).encoded(), "/v1/");
        let root = NormalPath::parse("/").unwrap();
        assert_eq!(NormalPath::under(&root, &empty).encoded(), "/");
    }

    fn rule(m: &str, p: &str) -> EndpointRule {
        EndpointRule::new(m, p).unwrap()
    }

    fn path(p: &str) -> NormalPath {
        NormalPath::parse(p).unwrap()
    }

    #[test]
    fn globs_match_whole_segments() {
        let r = rule("GET", "/repos/*/issues");
        assert!(r.matches("GET", &path("/repos/x/issues")));
        assert!(r.matches("get", &path("/repos/x/issues/")));
        assert!(!r.matches("POST", &path("/repos/x/issues")));
        assert!(!r.matches("GET", &path("/repos/x/y/issues")));
        assert!(!r.matches("GET", &path("/repos/issues")));
        let any = rule("*", "/v1/**");
        assert!(any.matches("DELETE", &path("/v1")));
        assert!(any.matches("POST", &path("/v1/a/b/c")));
        assert!(!any.matches("POST", &path("/v2/a")));
        let mid = rule("POST", "/a/**/z");
        assert!(mid.matches("POST", &path("/a/z")));
        assert!(mid.matches("POST", &path("/a/b/c/z")));
        assert!(!mid.matches("POST", &path("/a/b/c")));
    }

    #[test]
    fn no_spelling_slips_past_a_rule() {
        let r = rule("GET", "/public/**");
        for sneaky in [
            "/public/../admin",
            "/public/%2e%2e/admin",
            "/public/./../admin",
        ] {
            assert!(!r.matches("GET", &path(sneaky)), "{sneaky}");
        }
        assert!(r.matches("GET", &path("/admin/../public/x")));
    }

    #[test]
    fn flag_form_parses_and_rejects_partial_wildcards() {
        let (svc, r) = EndpointRule::parse_flag("github:get:/repos/**").unwrap();
        assert_eq!(svc, "github");
        assert_eq!(r.method, "GET");
        assert!(EndpointRule::parse_flag("github:/repos").is_err());
        assert!(EndpointRule::parse_flag("github:GET:repos").is_err());
        assert!(EndpointRule::parse_flag("github:GET:/repos/a*").is_err());
        assert!(EndpointRule::parse_flag("github:G T:/x").is_err());
        assert!(EndpointRule::parse_flag("github:GET:/a/../b").is_err());
    }

    #[test]
    fn dot_segments_with_parameters_are_refused() {
        for raw in [
            "/public/..;/admin",
            "/public/%2e%2e;/admin",
            "/public/..%3B/admin",
            "/a/.;x/b",
            "/a/..;jsessionid=1/b",
        ] {
            assert_eq!(
                NormalPath::parse(raw),
                Err(PathError::DotSegmentParameter),
                "{raw}"
            );
        }
        // Parameters on ordinary segments are data.
        assert!(NormalPath::parse("/a/b;c=1/d").is_ok());
        assert!(NormalPath::parse("/a/...;x").is_ok());
    }

    fn github_deny() -> Vec<EndpointRule> {
        vec![
            rule("POST", "/user/keys"),
            rule("*", "/authorizations/**"),
            rule("POST", "/repos/*/*/keys"),
        ]
    }

    #[test]
    fn default_deny_refuses_only_when_no_explicit_rules_exist() {
        let deny = github_deny();
        let decide =
            |rules: &[EndpointRule], m: &str, p: &str| endpoint_decision(rules, &deny, m, &path(p));
        assert_eq!(
            decide(&[], "POST", "/user/keys"),
            Err(EndpointDenial::DefaultDeny)
        );
        assert_eq!(decide(&[], "GET", "/user/keys"), Ok(()));
        assert_eq!(decide(&[], "POST", "/user/repos"), Ok(()));
        assert_eq!(
            decide(&[], "POST", "/repos/o/r/keys"),
            Err(EndpointDenial::DefaultDeny)
        );
        assert_eq!(decide(&[], "POST", "/repos/o/r/issues"), Ok(()));
        // Method `*` and `/**` also cover the bare prefix.
        for (m, p) in [
            ("GET", "/authorizations"),
            ("PUT", "/authorizations/clients/x"),
            ("delete", "/authorizations/1"),
        ] {
            assert_eq!(
                decide(&[], m, p),
                Err(EndpointDenial::DefaultDeny),
                "{m} {p}"
            );
        }
        // No default deny at all: everything passes.
        assert_eq!(
            endpoint_decision(&[], &[], "POST", &path("/user/keys")),
            Ok(())
        );
    }

    #[test]
    fn an_explicit_rule_overrides_a_default_deny() {
        let deny = github_deny();
        let rules = [rule("POST", "/user/keys"), rule("GET", "/repos/**")];
        let decide = |m: &str, p: &str| endpoint_decision(&rules, &deny, m, &path(p));
        assert_eq!(decide("POST", "/user/keys"), Ok(()));
        assert_eq!(decide("GET", "/repos/o/r"), Ok(()));
        // Explicit rules are an allow list: the rest is refused as `endpoint_rule`, default
        // denied or not.
        assert_eq!(
            decide("POST", "/user/repos"),
            Err(EndpointDenial::EndpointRule)
        );
        assert_eq!(
            decide("POST", "/repos/o/r/keys"),
            Err(EndpointDenial::EndpointRule)
        );
        assert_eq!(EndpointDenial::EndpointRule.as_str(), "endpoint_rule");
        assert_eq!(
            EndpointDenial::DefaultDeny.as_str(),
            "endpoint_default_deny"
        );
    }

    #[test]
    fn default_deny_survives_every_spelling_of_the_path() {
        let deny = github_deny();
        for p in [
            "/user//keys",
            "/user/./keys",
            "//user/keys/",
            "/user/x/../keys",
            "/user/%6beys",
            "/USER/keys",
            "/User/Keys",
            "/user/keys.json",
            "/user/keys;x=1",
            "/Repos/o/r/KEYS",
            "/AUTHORIZATIONS",
        ] {
            assert_eq!(
                endpoint_decision(&[], &deny, "POST", &path(p)),
                Err(EndpointDenial::DefaultDeny),
                "{p}"
            );
        }
        for p in ["/user/keysx", "/user/key", "/users/keys", "/user/keys/1/x"] {
            assert_eq!(
                endpoint_decision(&[], &deny, "POST", &path(p)),
                Ok(()),
                "{p}"
            );
        }
    }

    #[test]
    fn explicit_rules_stay_case_sensitive() {
        // Loosening an allow rule would forward what its author did not write.
        let rules = [rule("POST", "/user/keys")];
        let deny = github_deny();
        assert_eq!(
            endpoint_decision(&rules, &deny, "POST", &path("/User/Keys")),
            Err(EndpointDenial::EndpointRule)
        );
        assert_eq!(
            endpoint_decision(&rules, &deny, "post", &path("/user//keys/")),
            Ok(())
        );
    }

    #[test]
    fn default_deny_on_a_base_path_route_sees_the_full_path() {
        let deny = [rule("POST", "/api/v4/user/keys")];
        let base = path("/api/v4");
        let full = NormalPath::under(&base, &path("/user/./keys"));
        assert_eq!(
            endpoint_decision(&[], &deny, "POST", &full),
            Err(EndpointDenial::DefaultDeny)
        );
        assert_eq!(
            endpoint_decision(&[], &deny, "POST", &path("/user/keys")),
            Ok(())
        );
    }
}
