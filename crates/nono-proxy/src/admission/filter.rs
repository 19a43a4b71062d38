//! Host allowlist: parsing of host patterns and matching of request targets.
//!
//! A pattern is an exact name (`api.openai.com`), a wildcard (`*.example.com`, any depth of
//! subdomain but not the apex), an IPv4 or IPv6 literal, each optionally with `:port`
//! (`nats.internal:4222`, `[::1]:8080`). Names compare case-insensitively and ignore one
//! trailing dot.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::error::FilterError;

/// The host part of a request target, normalised.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Host {
    /// A DNS name, lower-cased, without trailing dot.
    Name(String),
    /// An IP literal (non-dotted IPv4 spellings are normalised to this).
    Ip(IpAddr),
}

impl Host {
    /// This machine: a loopback literal or an address of one of its interfaces (in any IPv6
    /// embedding), or a `localhost` name.
    pub fn is_local(&self) -> bool {
        match self {
            Host::Ip(ip) => crate::deny::is_loopback(*ip) || crate::deny::is_interface_address(*ip),
            Host::Name(n) => n == "localhost" || n.ends_with(".localhost"),
        }
    }

    /// Whether both name the same host once IP literals are canonical (an IPv4-mapped IPv6
    /// address is its IPv4 address).
    pub fn same_as(&self, other: &Host) -> bool {
        match (self, other) {
            (Host::Ip(a), Host::Ip(b)) => {
                crate::deny::canonical_ip(*a) == crate::deny::canonical_ip(*b)
            }
            (Host::Name(a), Host::Name(b)) => a == b,
            _ => false,
        }
    }

    /// Parses and normalises a request's host (no port). Brackets around IPv6 are accepted.
    ///
    /// IPv4 written in decimal, octal, hex or short form (`2852039166`, `0xA9FEA9FE`,
    /// `169.254.43518`) is normalised to its address, exactly as `inet_aton` would read it, so
    /// that no spelling reaches a resolver that would silently reinterpret it.
    pub fn parse(raw: &str) -> Result<Host, FilterError> {
        let s = raw
            .strip_prefix('[')
            .and_then(|r| r.strip_suffix(']'))
            .unwrap_or(raw);
        if s.is_empty() {
            return Err(FilterError::InvalidHost {
                host: raw.to_string(),
                reason: "empty host".into(),
            });
        }
        if let Ok(v6) = s.parse::<Ipv6Addr>() {
            return Ok(Host::Ip(IpAddr::V6(v6)));
        }
        if raw.starts_with('[') {
            return Err(FilterError::InvalidHost {
                host: raw.to_string(),
                reason: "brackets hold only an IPv6 address".into(),
            });
        }
        let name = s.strip_suffix('.').unwrap_or(s);
        if let Some(v4) = parse_inet_aton(name) {
            return Ok(Host::Ip(IpAddr::V4(v4)));
        }
        validate_dns_name(name).map_err(|reason| FilterError::InvalidHost {
            host: raw.to_string(),
            reason,
        })?;
        Ok(Host::Name(name.to_ascii_lowercase()))
    }

    /// The IP address, if this host is a literal.
    pub fn ip(&self) -> Option<IpAddr> {
        match self {
            Host::Ip(ip) => Some(*ip),
            Host::Name(_) => None,
        }
    }
}

impl fmt::Display for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Host::Name(n) => f.write_str(n),
            Host::Ip(IpAddr::V4(a)) => write!(f, "{a}"),
            Host::Ip(IpAddr::V6(a)) => write!(f, "[{a}]"),
        }
    }
}

/// What a pattern matches on the host side.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum HostMatch {
    /// Exactly this name.
    Exact(String),
    /// Any strict subdomain of this suffix (stored without the `*.`).
    Wildcard(String),
    /// This address.
    Ip(IpAddr),
}

/// One allowlist entry.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct HostPattern {
    /// Host side of the pattern.
    pub host: HostMatch,
    /// When set, only this port is allowed.
    pub port: Option<u16>,
}

impl HostPattern {
    /// Parses `host`, `*.suffix`, `host:port`, `1.2.3.4`, `::1`, `[::1]:443`.
    ///
    /// A URL (`https://...`) is refused rather than guessed at: `host:port` is always a host
    /// and a port.
    pub fn parse(pattern: &str) -> Result<HostPattern, FilterError> {
        let bad = |reason: &str| FilterError::InvalidPattern {
            pattern: pattern.to_string(),
            reason: reason.to_string(),
        };
        let p = pattern.trim();
        if p.is_empty() {
            return Err(bad("empty pattern"));
        }
        if p.contains("://") || p.contains('/') {
            return Err(bad("write a host or host:port, not a URL or path"));
        }
        if p.contains('@') {
            return Err(bad("credentials have no place in a host pattern"));
        }
        let (host, port) = split_host_port(p).map_err(|r| bad(&r))?;
        if let Some(suffix) = host.strip_prefix("*.") {
            let suffix = suffix.strip_suffix('.').unwrap_or(suffix);
            if suffix.contains('*') {
                return Err(bad("only one leading `*.` is supported"));
            }
            validate_dns_name(suffix).map_err(|r| bad(&r))?;
            if !suffix.contains('.') {
                return Err(bad(
                    "a wildcard needs at least two labels, e.g. `*.example.com`",
                ));
            }
            return Ok(HostPattern {
                host: HostMatch::Wildcard(suffix.to_ascii_lowercase()),
                port,
            });
        }
        if host.contains('*') {
            return Err(bad("`*` is allowed only as a leading `*.` label"));
        }
        let h = Host::parse(host).map_err(|e| bad(&e.to_string()))?;
        let host = match h {
            Host::Ip(ip) => HostMatch::Ip(crate::deny::canonical_ip(ip)),
            Host::Name(n) => HostMatch::Exact(n),
        };
        Ok(HostPattern { host, port })
    }

    /// Whether `host:port` matches this pattern.
    pub fn matches(&self, host: &Host, port: u16) -> bool {
        if self.port.is_some_and(|p| p != port) {
            return false;
        }
        match (&self.host, host) {
            (HostMatch::Exact(e), Host::Name(n)) => e == n,
            (HostMatch::Wildcard(s), Host::Name(n)) => {
                n.len() > s.len() + 1
                    && n.ends_with(s.as_str())
                    && n[..n.len() - s.len()].ends_with('.')
            }
            (HostMatch::Ip(a), Host::Ip(b)) => *a == crate::deny::canonical_ip(*b),
            _ => false,
        }
    }

    /// True when the pattern names one host exactly (not a wildcard): such an entry counts as
    /// the user allowing that host explicitly, which unlocks loopback for it.
    pub fn is_exact(&self) -> bool {
        !matches!(self.host, HostMatch::Wildcard(_))
    }

    /// The host part as written for `NO_PROXY` (IPv6 without brackets, wildcard as `.suffix`).
    pub fn no_proxy_entry(&self) -> String {
        match &self.host {
            HostMatch::Exact(n) => n.clone(),
            HostMatch::Wildcard(s) => format!(".{s}"),
            HostMatch::Ip(ip) => ip.to_string(),
        }
    }
}

impl fmt::Display for HostPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.host {
            HostMatch::Exact(n) => f.write_str(n)?,
            HostMatch::Wildcard(s) => write!(f, "*.{s}")?,
            HostMatch::Ip(IpAddr::V4(a)) => write!(f, "{a}")?,
            HostMatch::Ip(IpAddr::V6(a)) if self.port.is_some() => write!(f, "[{a}]")?,
            HostMatch::Ip(IpAddr::V6(a)) => write!(f, "{a}")?,
        }
        if let Some(p) = self.port {
            write!(f, ":{p}")?;
        }
        Ok(())
    }
}

/// The allowlist: empty means every host not on the deny list.
#[derive(Debug, Clone, Default)]
pub struct HostFilter {
    patterns: Vec<HostPattern>,
}

/// Outcome of checking a target against the allowlist.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AllowMatch {
    /// Allowed because the list is empty (allow all but the deny list).
    AllowAll,
    /// Allowed by an entry that names the host exactly.
    Explicit,
    /// Allowed by a wildcard entry.
    Wildcard,
    /// Not on the list.
    NotListed,
}

impl HostFilter {
    /// Parses every pattern; the first that does not parse is the error.
    pub fn new<S: AsRef<str>>(patterns: &[S]) -> Result<HostFilter, FilterError> {
        let patterns = patterns
            .iter()
            .map(|p| HostPattern::parse(p.as_ref()))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(HostFilter { patterns })
    }

    /// The parsed patterns.
    pub fn patterns(&self) -> &[HostPattern] {
        &self.patterns
    }

    /// Whether some pattern names `host:port` (an empty filter names nothing, unlike
    /// [`HostFilter::check`], for which empty allows everything): for deny and exclusion lists.
    pub fn names(&self, host: &Host, port: u16) -> bool {
        self.patterns.iter().any(|p| p.matches(host, port))
    }

    /// Checks a target. Exact matches win over wildcards.
    pub fn check(&self, host: &Host, port: u16) -> AllowMatch {
        if self.patterns.is_empty() {
            return AllowMatch::AllowAll;
        }
        let mut best = AllowMatch::NotListed;
        for p in &self.patterns {
            if p.matches(host, port) {
                if p.is_exact() {
                    return AllowMatch::Explicit;
                }
                best = AllowMatch::Wildcard;
            }
        }
        best
    }
}

/// Splits `host[:port]`, `[v6]:port`, or a bare IPv6 literal.
/// Splits `host`, `host:port`, `[v6]` or `[v6]:port`; the port must be plain digits, 1-65535.
pub(crate) fn split_host_port(p: &str) -> Result<(&str, Option<u16>), String> {
    if let Some(rest) = p.strip_prefix('[') {
        let end = rest.find(']').ok_or("missing `]` after IPv6 address")?;
        let host = &p[..end + 2];
        let after = &rest[end + 1..];
        if after.is_empty() {
            return Ok((host, None));
        }
        let port = after
            .strip_prefix(':')
            .ok_or("expected `:port` after `]`")?;
        return Ok((host, Some(parse_port(port)?)));
    }
    match p.matches(':').count() {
        0 => Ok((p, None)),
        1 => {
            let (h, port) = p.split_once(':').ok_or("missing port")?;
            Ok((h, Some(parse_port(port)?)))
        }
        // More than one colon and no brackets: a bare IPv6 literal.
        _ => {
            p.parse::<Ipv6Addr>()
                .map_err(|_| "IPv6 with a port must be written `[addr]:port`".to_string())?;
            Ok((p, None))
        }
    }
}

/// Parses a TCP port (1-65535).
pub fn parse_port(s: &str) -> Result<u16, String> {
    match s.parse::<u16>() {
        Ok(0) | Err(_) => Err(format!("`{s}` is not a port (1-65535)")),
        Ok(p) if !s.bytes().all(|b| b.is_ascii_digit()) => {
            Err(format!("`{p}` must be plain digits"))
        }
        Ok(p) => Ok(p),
    }
}

/// DNS name syntax: labels of letters, digits, `-` and `_`, 1-63 bytes, total ≤ 253.
fn validate_dns_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > 253 {
        return Err("a host name must be 1-253 characters".into());
    }
    for label in name.split('.') {
        if label.is_empty() || label.len() > 63 {
            return Err("empty or over-long label".into());
        }
        if !label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(format!(
                "label `{label}` has characters a host name cannot contain"
            ));
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err(format!("label `{label}` starts or ends with `-`"));
        }
    }
    // An all-numeric last label is not a name; it is a malformed address (e.g. `1.2.3.4.5`).
    if name
        .rsplit('.')
        .next()
        .is_some_and(|l| l.bytes().all(|b| b.is_ascii_digit()))
    {
        return Err("looks like a malformed IPv4 address".into());
    }
    Ok(())
}

/// Reads IPv4 the way `inet_aton(3)` does: 1-4 parts, each decimal, octal (`0` prefix) or hex
/// (`0x` prefix); the last part fills the remaining bytes.
pub fn parse_inet_aton(s: &str) -> Option<Ipv4Addr> {
    let parts: Vec<&str> = s.split('.').collect();
    if parts.is_empty() || parts.len() > 4 {
        return None;
    }
    let mut nums = Vec::with_capacity(4);
    for part in &parts {
        nums.push(parse_aton_part(part)?);
    }
    let (last, init) = nums.split_last()?;
    let mut value: u64 = 0;
    for (i, n) in init.iter().enumerate() {
        if *n > 0xff {
            return None;
        }
        value |= n << (8 * (3 - i));
    }
    let rest_bits = 8 * (4 - init.len());
    if rest_bits < 64 && *last >= (1u64 << rest_bits) {
        return None;
    }
    value |= last;
    u32::try_from(value).ok().map(Ipv4Addr::from)
}

fn parse_aton_part(p: &str) -> Option<u64> {
    if p.is_empty() {
        return None;
    }
    let (digits, radix) = if let Some(h) = p.strip_prefix("0x").or_else(|| p.strip_prefix("0X")) {
        (h, 16)
    } else if p.len() > 1 && p.starts_with('0') {
        (&p[1..], 8)
    } else {
        (p, 10)
    };
    if digits.is_empty() {
        // `0x` alone is 0 for inet_aton.
        return if radix == 16 { Some(0) } else { None };
    }
    // Leading zeros change nothing for inet_aton; drop them so a padded spelling
    // (`0x00000000000a9fea9fe`) is still read as the address it is.
    let significant = digits.trim_start_matches('0');
    let significant = if significant.is_empty() {
        "0"
    } else {
        significant
    };
    if significant.len() > 12 {
        return None;
    }
    u64::from_str_radix(significant, radix).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(s: &str) -> Host {
        Host::parse(s).unwrap()
    }

    #[test]
    fn exact_is_case_insensitive_and_ignores_trailing_dot() {
        let p = HostPattern::parse("API.OpenAI.com.").unwrap();
        assert!(p.matches(&host("api.openai.com"), 443));
        assert!(p.matches(&host("api.openai.COM."), 80));
        assert!(!p.matches(&host("xapi.openai.com"), 443));
    }

    #[test]
    fn wildcard_matches_any_depth_but_not_apex() {
        let p = HostPattern::parse("*.example.com").unwrap();
        assert!(p.matches(&host("a.example.com"), 443));
        assert!(p.matches(&host("a.b.c.example.com"), 443));
        assert!(!p.matches(&host("example.com"), 443));
        assert!(!p.matches(&host("badexample.com"), 443));
        assert!(!p.is_exact());
    }

    #[test]
    fn port_entries_allow_only_that_port() {
        let p = HostPattern::parse("nats.internal:4222").unwrap();
        assert!(p.matches(&host("nats.internal"), 4222));
        assert!(!p.matches(&host("nats.internal"), 443));
        let v6 = HostPattern::parse("[::1]:8080").unwrap();
        assert_eq!(v6.port, Some(8080));
        assert!(v6.matches(&host("[::1]"), 8080));
        assert_eq!(v6.to_string(), "[::1]:8080");
        let bare = HostPattern::parse("2001:db8::1").unwrap();
        assert_eq!(bare.port, None);
    }

    #[test]
    fn bad_patterns_name_themselves() {
        for bad in [
            "",
            "https://x.com",
            "x.com/path",
            "*.com",
            "a.*.com",
            "x.com:0",
            "x.com:99999",
            "x.com:http",
            "[::1",
            "2001:db8::1:443x",
            "bad host",
            "-x.com",
            "user@x.com",
            "1.2.3.4.5",
        ] {
            let err = HostPattern::parse(bad).unwrap_err().to_string();
            assert!(err.contains(&format!("`{bad}`")), "{bad}: {err}");
        }
    }

    #[test]
    fn inet_aton_spellings_normalise() {
        let m = Ipv4Addr::new(169, 254, 169, 254);
        for s in [
            "2852039166",
            "0xA9FEA9FE",
            "0251.0376.0251.0376",
            "169.254.43518",
            "169.16689662",
            "0xa9.0xfe.0xa9.0xfe",
        ] {
            assert_eq!(host(s), Host::Ip(IpAddr::V4(m)), "{s}");
        }
        assert_eq!(host("0x0000000000000a9fea9fe"), Host::Ip(IpAddr::V4(m)));
        // Octal with digits 8/9 is no address and no name: refused, never passed on.
        assert!(Host::parse("000000000000000000002852039166").is_err());
        assert_eq!(
            host("0000000000000000000025177524776"),
            Host::Ip(IpAddr::V4(m))
        );
        assert_eq!(parse_inet_aton("256.1.1.1"), None);
        assert_eq!(parse_inet_aton("1.2.3.256"), None);
        assert_eq!(parse_inet_aton("09"), None);
    }

    #[test]
    fn filter_prefers_exact_over_wildcard() {
        let f = HostFilter::new(&["*.example.com", "api.example.com"]).unwrap();
        assert_eq!(f.check(&host("api.example.com"), 443), AllowMatch::Explicit);
        assert_eq!(f.check(&host("x.example.com"), 443), AllowMatch::Wildcard);
        assert_eq!(f.check(&host("other.com"), 443), AllowMatch::NotListed);
        assert_eq!(
            HostFilter::default().check(&host("x"), 1),
            AllowMatch::AllowAll
        );
    }

    #[test]
    fn ip_patterns_match_normalised_spellings() {
        let f = HostFilter::new(&["10.0.0.1"]).unwrap();
        assert_eq!(f.check(&host("167772161"), 80), AllowMatch::Explicit);
        assert_eq!(
            f.check(&host("[::ffff:10.0.0.1]"), 80),
            AllowMatch::Explicit
        );
    }
}
