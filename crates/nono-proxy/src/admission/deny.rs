//! The always-denied list: cloud metadata endpoints, link-local and unspecified addresses,
//! this machine (loopback and every address of its interfaces) unless allowed explicitly, and
//! the proxy's own listening address.
//!
//! No allowlist entry can override the metadata, range and self checks. IPv4 addresses
//! carried inside IPv6 (mapped, compatible, NAT64, 6to4, Teredo) are checked as the IPv4
//! address they carry.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use crate::filter::Host;

/// Why a request was refused by policy; `as_str` is what 403 bodies and audit events carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DenyReason {
    /// A cloud metadata endpoint, by name or address.
    Metadata,
    /// An address in an always-denied range (link-local, unspecified).
    Cidr,
    /// Loopback, which needs an explicit allowlist entry.
    Loopback,
    /// An address of this machine's own interfaces (a service listening on every interface
    /// is reachable there), which needs an explicit allowlist entry like loopback.
    LocalAddress,
    /// The proxy's own listening address.
    SelfLoop,
    /// Not on the allowlist.
    NotAllowlisted,
    /// CONNECT to a host that has a credential route: it must use the route.
    ConnectBypassesL7,
    /// The request did not match any endpoint rule of its route.
    EndpointRule,
    /// On the operator's deny list (`--deny-domain`), which wins over every allow.
    DenyListed,
}

impl DenyReason {
    /// Stable machine-readable name.
    pub fn as_str(self) -> &'static str {
        match self {
            DenyReason::Metadata => "denied_metadata",
            DenyReason::Cidr => "denied_cidr",
            DenyReason::Loopback => "denied_loopback",
            DenyReason::LocalAddress => "denied_local_address",
            DenyReason::SelfLoop => "denied_self",
            DenyReason::NotAllowlisted => "not_allowlisted",
            DenyReason::ConnectBypassesL7 => "connect_bypasses_l7",
            DenyReason::EndpointRule => "endpoint_rule",
            DenyReason::DenyListed => "denied_domain",
        }
    }
}

impl fmt::Display for DenyReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Metadata service host names, lower-case, without trailing dot.
const METADATA_NAMES: &[&str] = &[
    "metadata.google.internal",
    "metadata.azure.internal",
    "metadata.goog",
    "metadata",
    "instance-data",
    "instance-data.ec2.internal",
];

/// Metadata addresses outside the always-denied ranges.
const METADATA_V4: &[Ipv4Addr] = &[
    Ipv4Addr::new(169, 254, 169, 254),
    Ipv4Addr::new(169, 254, 170, 2),
    Ipv4Addr::new(100, 100, 100, 200),
    Ipv4Addr::new(192, 0, 0, 192),
];

const METADATA_V6: &[Ipv6Addr] = &[Ipv6Addr::new(0xfd00, 0x0ec2, 0, 0, 0, 0, 0, 0x0254)];

/// Checks a target by name before anything is resolved.
pub fn check_host(host: &Host) -> Option<DenyReason> {
    match host {
        Host::Name(n) => METADATA_NAMES
            .contains(&n.as_str())
            .then_some(DenyReason::Metadata),
        Host::Ip(ip) => check_ip(*ip),
    }
}

/// Checks one address against the fixed deny list (metadata, link-local, unspecified).
/// Loopback and the proxy's own address are checked by [`check_addr`].
pub fn check_ip(ip: IpAddr) -> Option<DenyReason> {
    if let IpAddr::V6(v6) = ip {
        if METADATA_V6.contains(&v6) {
            return Some(DenyReason::Metadata);
        }
        if v6.is_unspecified() || (v6.segments()[0] & 0xffc0) == 0xfe80 {
            return Some(DenyReason::Cidr);
        }
        // Deprecated site-local fec0::/10 is link-scoped in practice too.
        if (v6.segments()[0] & 0xffc0) == 0xfec0 {
            return Some(DenyReason::Cidr);
        }
    }
    for v4 in ipv4_views(ip) {
        if METADATA_V4.contains(&v4) {
            return Some(DenyReason::Metadata);
        }
        let o = v4.octets();
        if v4.is_link_local() || o[0] == 0 || v4.is_broadcast() || v4.is_multicast() {
            return Some(DenyReason::Cidr);
        }
    }
    // Readings that may be padding of another layout deny only what must never be reached.
    for v4 in nat64_local_views(ip) {
        if METADATA_V4.contains(&v4) {
            return Some(DenyReason::Metadata);
        }
        if v4.is_link_local() {
            return Some(DenyReason::Cidr);
        }
    }
    if let IpAddr::V6(v6) = ip {
        if v6.segments()[0] & 0xff00 == 0xff00 {
            return Some(DenyReason::Cidr);
        }
    }
    None
}

/// Is this address (or the IPv4 it carries) loopback?
pub fn is_loopback(ip: IpAddr) -> bool {
    ip.is_loopback() || ipv4_views(ip).iter().any(|v| v.is_loopback())
}

/// Full check of one address the proxy is about to connect to.
///
/// `local_ok` is true only when the user allowed this target explicitly (by its exact name or
/// address): it unlocks this machine, loopback and its interface addresses alike, on any port.
/// `own` is the proxy's listening address, never a valid destination.
pub fn check_addr(addr: SocketAddr, local_ok: bool, own: Option<SocketAddr>) -> Option<DenyReason> {
    if let Some(r) = check_ip(addr.ip()) {
        return Some(r);
    }
    let ip = addr.ip();
    if let Some(own) = own.filter(|o| o.port() == addr.port()) {
        let own_ip = canonical_ip(own.ip());
        let same_host = canonical_ip(ip) == own_ip
            || (is_loopback(ip) && is_loopback(own_ip))
            || (own_ip.is_unspecified() && is_local_candidate(ip));
        if same_host {
            return Some(DenyReason::SelfLoop);
        }
    }
    if local_ok {
        return None;
    }
    if is_loopback(ip) {
        return Some(DenyReason::Loopback);
    }
    if is_interface_address(ip) {
        return Some(DenyReason::LocalAddress);
    }
    None
}

/// Whether `ip`, on the proxy's port, may be the proxy itself when it listens on every
/// interface: loopback, an address of this machine's interfaces, or any private address (a
/// port mapped from a container host or a NAT in front of us reaches the same socket).
fn is_local_candidate(ip: IpAddr) -> bool {
    is_loopback(ip)
        || ipv4_views(ip).iter().any(|v| v.is_private())
        || matches!(ip, IpAddr::V6(v6) if (v6.segments()[0] & 0xfe00) == 0xfc00)
        || is_interface_address(ip)
}

/// How long one listing of this machine's interface addresses is reused. Listing costs a
/// netlink round trip (tens of microseconds); an address added since counts within this time.
pub const INTERFACE_ADDRESSES_TTL: Duration = Duration::from_secs(1);

/// The last listing of interface addresses and when it was taken.
static INTERFACE_CACHE: RwLock<Option<(Instant, Arc<[IpAddr]>)>> = RwLock::new(None);

/// Whether `ip` (or the IPv4 address it carries) is assigned to one of this machine's
/// interfaces. Uses a listing at most [`INTERFACE_ADDRESSES_TTL`] old.
pub fn is_interface_address(ip: IpAddr) -> bool {
    let views = ipv4_views(ip);
    let canonical = canonical_ip(ip);
    cached_interface_addresses()
        .iter()
        .any(|local| *local == canonical || views.iter().any(|v| *local == IpAddr::V4(*v)))
}

/// [`interface_addresses`], listed again only when the last listing is older than
/// [`INTERFACE_ADDRESSES_TTL`].
fn cached_interface_addresses() -> Arc<[IpAddr]> {
    if let Ok(cache) = INTERFACE_CACHE.read() {
        if let Some((at, list)) = cache.as_ref() {
            if at.elapsed() < INTERFACE_ADDRESSES_TTL {
                return list.clone();
            }
        }
    }
    // Listed outside the lock: concurrent refreshes at expiry cost a listing each, but no
    // decision waits for another's netlink round trip.
    let fresh: Arc<[IpAddr]> = interface_addresses().into();
    if let Ok(mut cache) = INTERFACE_CACHE.write() {
        *cache = Some((Instant::now(), fresh.clone()));
    }
    fresh
}

/// The addresses assigned to this machine's interfaces, read now; empty if they cannot be
/// listed.
#[cfg(unix)]
pub fn interface_addresses() -> Vec<IpAddr> {
    let Ok(list) = nix::ifaddrs::getifaddrs() else {
        static WARNED: std::sync::Once = std::sync::Once::new();
        WARNED.call_once(|| {
            tracing::warn!(
                "cannot list interface addresses; only loopback counts as this machine and the self-loop check uses address classes only"
            );
        });
        return Vec::new();
    };
    list.filter_map(|ifa| {
        let a = ifa.address?;
        if let Some(v4) = a.as_sockaddr_in() {
            return Some(IpAddr::V4(v4.ip()));
        }
        a.as_sockaddr_in6()
            .map(|v6| canonical_ip(IpAddr::V6(v6.ip())))
    })
    .collect()
}

/// The addresses assigned to this machine's interfaces (not listed on this platform).
#[cfg(not(unix))]
pub fn interface_addresses() -> Vec<IpAddr> {
    Vec::new()
}

/// The IPv4 addresses a NAT64 local-use address (`64:ff9b:1::/48`) may carry. The operator
/// picks the prefix length inside it (RFC 6052: /48, /56, /64 or /96), which the address does
/// not tell, so every layout is read (bits 64-71 skipped); each reading but one is the padding
/// or the prefix of another layout, so callers deny on these only what must never be reached.
/// A reading starting with 0 is padding, not an address.
pub fn nat64_local_views(ip: IpAddr) -> Vec<Ipv4Addr> {
    let IpAddr::V6(v6) = ip else {
        return Vec::new();
    };
    let s = v6.segments();
    if !(s[0] == 0x64 && s[1] == 0xff9b && s[2] == 1) {
        return Vec::new();
    }
    let b = v6.octets();
    [
        Ipv4Addr::new(b[6], b[7], b[9], b[10]),    // /48
        Ipv4Addr::new(b[7], b[9], b[10], b[11]),   // /56
        Ipv4Addr::new(b[9], b[10], b[11], b[12]),  // /64
        Ipv4Addr::new(b[12], b[13], b[14], b[15]), // /96
    ]
    .into_iter()
    .filter(|v| v.octets()[0] != 0)
    .collect()
}

/// Maps an IPv4-mapped IPv6 address to IPv4 so that both spellings compare equal.
pub fn canonical_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => ip,
        },
        v4 => v4,
    }
}

/// Every IPv4 address an address stands for: itself, or the IPv4 embedded in an IPv6 address
/// by mapping, compatibility form, SIIT translation, the well-known NAT64 prefix, 6to4, ISATAP
/// or Teredo (server and de-obfuscated client). NAT64 local-use: [`nat64_local_views`].
pub fn ipv4_views(ip: IpAddr) -> Vec<Ipv4Addr> {
    let v6 = match ip {
        IpAddr::V4(v4) => return vec![v4],
        IpAddr::V6(v6) => v6,
    };
    let s = v6.segments();
    let low = Ipv4Addr::new((s[6] >> 8) as u8, s[6] as u8, (s[7] >> 8) as u8, s[7] as u8);
    let mut out = Vec::new();
    if let Some(v4) = v6.to_ipv4_mapped() {
        out.push(v4);
    }
    // IPv4-compatible ::a.b.c.d (excluding :: and ::1 themselves).
    if s[..6].iter().all(|&x| x == 0) && !(s[6] == 0 && s[7] <= 1) {
        out.push(low);
    }
    // IPv4-translated ::ffff:0:a.b.c.d (SIIT).
    if s[..4].iter().all(|&x| x == 0) && s[4] == 0xffff && s[5] == 0 {
        out.push(low);
    }
    // NAT64 well-known 64:ff9b::/96.
    if s[0] == 0x64 && s[1] == 0xff9b && s[2..6].iter().all(|&x| x == 0) {
        out.push(low);
    }
    // ISATAP interface identifier ::0:5efe:a.b.c.d (or ::200:5efe:... ) in any /64.
    if s[4] & 0xfdff == 0 && s[5] == 0x5efe {
        out.push(low);
    }
    // 6to4 2002:AABB:CCDD::/48.
    if s[0] == 0x2002 {
        out.push(Ipv4Addr::new(
            (s[1] >> 8) as u8,
            s[1] as u8,
            (s[2] >> 8) as u8,
            s[2] as u8,
        ));
    }
    // Teredo 2001:0::/32: server in bits 32-63, client obfuscated in the last 32 bits.
    if s[0] == 0x2001 && s[1] == 0 {
        out.push(Ipv4Addr::new(
            (s[2] >> 8) as u8,
            s[2] as u8,
            (s[3] >> 8) as u8,
            s[3] as u8,
        ));
        out.push(Ipv4Addr::from(!u32::from(low)));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn metadata_names_any_case_and_trailing_dot() {
        for n in [
            "metadata.google.internal",
            "METADATA.Google.Internal.",
            "metadata.azure.internal",
            "metadata.goog",
        ] {
            assert_eq!(
                check_host(&Host::parse(n).unwrap()),
                Some(DenyReason::Metadata),
                "{n}"
            );
        }
        assert_eq!(check_host(&Host::parse("api.openai.com").unwrap()), None);
    }

    #[test]
    fn metadata_and_link_local_addresses() {
        for a in [
            "169.254.169.254",
            "fd00:ec2::254",
            "100.100.100.200",
            "192.0.0.192",
        ] {
            assert_eq!(check_ip(ip(a)), Some(DenyReason::Metadata), "{a}");
        }
        for a in [
            "169.254.1.1",
            "fe80::1",
            "febf::1",
            "0.0.0.0",
            "::",
            "0.1.2.3",
        ] {
            assert_eq!(check_ip(ip(a)), Some(DenyReason::Cidr), "{a}");
        }
        for a in [
            "10.0.0.1",
            "192.168.1.1",
            "172.16.0.1",
            "8.8.8.8",
            "2606:4700::1",
        ] {
            assert_eq!(check_ip(ip(a)), None, "{a}");
        }
    }

    #[test]
    fn embedded_ipv4_is_checked_as_ipv4() {
        for a in [
            "::ffff:169.254.169.254",
            "::169.254.169.254",
            "64:ff9b::169.254.169.254",
            "64:ff9b:1::a9fe:a9fe",
            "2002:a9fe:a9fe::1",
            "2001:0:a9fe:a9fe::1",
            // Teredo client 169.254.169.254 obfuscated (bitwise not).
            "2001:0:102:304::5601:5601",
        ] {
            assert_eq!(check_ip(ip(a)), Some(DenyReason::Metadata), "{a}");
        }
        assert_eq!(check_ip(ip("::ffff:169.254.1.1")), Some(DenyReason::Cidr));
        assert!(is_loopback(ip("::ffff:127.0.0.1")));
        assert!(is_loopback(ip("64:ff9b::127.0.0.1")));
    }

    #[test]
    fn translated_isatap_and_local_nat64_forms_carry_their_ipv4() {
        for spelled in [
            "::ffff:0:169.254.169.254",
            "fe80::5efe:169.254.169.254",
            "2001:db8::200:5efe:169.254.169.254",
            "64:ff9b:1::169.254.169.254",
        ] {
            assert!(check_ip(ip(spelled)).is_some(), "{spelled}");
        }
        // 169.254.169.254 in the /48, /56 and /64 layouts (bits 64-71 zero), with suffix
        // bits that make the /96 reading a harmless 8.8.8.8.
        for spelled in [
            "64:ff9b:1:a9fe:a9:fe00:808:808",
            "64:ff9b:1:a9:fe:a9fe:808:808",
            "64:ff9b:1:0:a9:fea9:fe00:808",
        ] {
            assert_eq!(
                check_ip(ip(spelled)),
                Some(DenyReason::Metadata),
                "{spelled}"
            );
        }
        assert!(is_loopback(ip("::ffff:0:127.0.0.1")));
        assert_eq!(check_ip(ip("2001:db8::1:5eff:a9fe:a9fe")), None);
        // Ordinary destinations in every layout stay usable, zero suffix and all.
        for ok in [
            "64:ff9b:1::8.8.8.8",      // /96
            "64:ff9b:1:808:8:800::",   // 8.8.8.8 in /48
            "64:ff9b:1:8:8:808::",     // /56
            "64:ff9b:1:0:8:808:800:0", // /64
            "64:ff9b:1:0:a:b00:0:0",   // 10.11.0.0 in /64: its /96 reading is padding
            "64:ff9b:1:e000::1.2.3.4", // /96 under a sub-prefix that reads 224.0.0.0 as /48
            "64:ff9b:1::10.0.0.0",
            "64:ff9b:1::224.0.0.1",
        ] {
            assert_eq!(check_ip(ip(ok)), None, "{ok}");
        }
    }

    #[test]
    fn loopback_needs_explicit_allow_and_self_is_never_ok() {
        let own: SocketAddr = "127.0.0.1:3128".parse().unwrap();
        let lo: SocketAddr = "127.0.0.1:8080".parse().unwrap();
        assert_eq!(check_addr(lo, false, Some(own)), Some(DenyReason::Loopback));
        assert_eq!(check_addr(lo, true, Some(own)), None);
        assert_eq!(check_addr(own, true, Some(own)), Some(DenyReason::SelfLoop));
        let mapped: SocketAddr = "[::ffff:127.0.0.1]:3128".parse().unwrap();
        assert_eq!(
            check_addr(mapped, true, Some(own)),
            Some(DenyReason::SelfLoop)
        );
        let v6lo: SocketAddr = "[::1]:3128".parse().unwrap();
        assert_eq!(
            check_addr(v6lo, true, Some(own)),
            Some(DenyReason::SelfLoop)
        );
        let any: SocketAddr = "0.0.0.0:3128".parse().unwrap();
        let lan: SocketAddr = "192.168.1.5:3128".parse().unwrap();
        assert_eq!(check_addr(lan, true, Some(any)), Some(DenyReason::SelfLoop));
    }

    /// Listening on every interface, each of this machine's addresses (public ones too, in
    /// any spelling) on the proxy's port is the proxy; a foreign address is not.
    #[test]
    fn a_wildcard_listener_knows_every_local_address() {
        let any: SocketAddr = "0.0.0.0:3128".parse().unwrap();
        let locals = interface_addresses();
        assert!(locals.iter().any(|a| a.is_loopback()), "{locals:?}");
        for local in locals {
            let target = SocketAddr::new(local, 3128);
            if check_ip(local).is_some() {
                continue; // denied anyway (link-local etc.)
            }
            assert_eq!(
                check_addr(target, true, Some(any)),
                Some(DenyReason::SelfLoop),
                "{target}"
            );
            if let IpAddr::V4(v4) = local {
                let mapped = SocketAddr::new(IpAddr::V6(v4.to_ipv6_mapped()), 3128);
                assert_eq!(
                    check_addr(mapped, true, Some(any)),
                    Some(DenyReason::SelfLoop)
                );
            }
        }
        let foreign = SocketAddr::new(foreign_address(), 3128);
        assert_eq!(check_addr(foreign, true, Some(any)), None);
        let other_port: SocketAddr = "192.168.1.5:3129".parse().unwrap();
        assert_eq!(check_addr(other_port, true, Some(any)), None);
    }

    /// A documentation address not assigned to this machine (test machines may use some).
    fn foreign_address() -> IpAddr {
        let locals = interface_addresses();
        ["192.0.2.77", "198.51.100.77", "203.0.113.77"]
            .into_iter()
            .map(ip)
            .find(|a| !locals.contains(a))
            .expect("a documentation address this machine does not have")
    }

    /// This machine's addresses other than loopback, that no fixed range denies anyway.
    fn interface_addresses_beyond_loopback() -> Vec<IpAddr> {
        interface_addresses()
            .into_iter()
            .filter(|a| !is_loopback(*a) && check_ip(*a).is_none())
            .collect()
    }

    /// Regression (issue "Containment", item 6): a service listening on every interface was
    /// reachable through this machine's own address, by a name resolving to it or under an
    /// allow-all or wildcard policy, on any port but the proxy's.
    #[test]
    fn bug_this_machines_addresses_are_local_on_every_port() {
        let locals = interface_addresses_beyond_loopback();
        if locals.is_empty() {
            eprintln!("this machine has no address beyond loopback and link-local; skipped");
        }
        let own: SocketAddr = "127.0.0.1:3128".parse().unwrap();
        for local in locals {
            let mut spellings = vec![local];
            if let IpAddr::V4(v4) = local {
                spellings.push(IpAddr::V6(v4.to_ipv6_mapped()));
                spellings.push(ip(&format!("64:ff9b::{v4}")));
            }
            for spelled in spellings {
                for port in [22, 80, 443, 5432, 3128, 65535] {
                    let target = SocketAddr::new(spelled, port);
                    assert_eq!(
                        check_addr(target, false, Some(own)),
                        Some(DenyReason::LocalAddress),
                        "{target}"
                    );
                    assert_eq!(
                        check_addr(target, false, None),
                        Some(DenyReason::LocalAddress)
                    );
                    // Allowed by its exact name or address, like loopback.
                    assert_eq!(check_addr(target, true, Some(own)), None, "{target}");
                }
            }
            assert!(Host::Ip(local).is_local(), "{local}");
        }
        let foreign = SocketAddr::new(foreign_address(), 5432);
        assert_eq!(check_addr(foreign, false, Some(own)), None);
        assert!(!Host::Ip(foreign.ip()).is_local());
        // Loopback keeps its own reason.
        let lo: SocketAddr = "127.0.0.1:5432".parse().unwrap();
        assert_eq!(check_addr(lo, false, None), Some(DenyReason::Loopback));
    }

    /// The cached listing holds what a fresh one does.
    #[test]
    fn the_cached_interface_listing_matches_a_fresh_one() {
        let fresh = interface_addresses();
        let mut a = fresh.clone();
        let mut b = cached_interface_addresses().to_vec();
        a.sort();
        b.sort();
        assert_eq!(a, b);
        for local in fresh {
            assert!(is_interface_address(local), "{local}");
        }
    }
}
