//! What the gate allows: built from the sandbox plan, pure decisions on paths and addresses.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use crate::plan::Plan;
use crate::policy::FsAccess;

/// What the gate allows; built from the plan before fork.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct GatePolicy {
    /// Real paths granted read-write: sockets beneath them may be connected.
    writable: Vec<PathBuf>,
    /// (device, inode) of granted non-directories, taken when the sandbox was planned: a
    /// socket granted by name may be connected, and only that very socket (a rename and a
    /// hard link of another socket in its place does not inherit the grant).
    named: Vec<(u64, u64)>,
    /// TCP ports `connect` may reach, when Landlock handles TCP for the child.
    tcp_connect_ports: Option<Vec<u16>>,
    /// Of those, the ports allowed towards non-loopback addresses.
    tcp_remote_ports: Vec<u16>,
    /// And the ports allowed towards loopback and this machine's own addresses.
    tcp_local_ports: Vec<u16>,
}

impl GatePolicy {
    pub(crate) fn from_plan(plan: &Plan) -> GatePolicy {
        let real = |p: &Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
        GatePolicy {
            writable: plan
                .fs
                .iter()
                .filter(|r| r.access == FsAccess::ReadWrite)
                .map(|r| real(&r.path))
                .collect(),
            named: plan
                .fs
                .iter()
                .filter(|r| !r.is_dir)
                .filter_map(|r| {
                    use std::os::unix::fs::MetadataExt;
                    std::fs::metadata(&r.path).ok().map(|m| (m.dev(), m.ino()))
                })
                .collect(),
            tcp_connect_ports: plan.net.as_ref().map(|n| n.connect_ports.clone()),
            tcp_remote_ports: plan
                .net
                .as_ref()
                .map(|n| n.remote_ports.clone())
                .unwrap_or_default(),
            tcp_local_ports: plan
                .net
                .as_ref()
                .map(|n| n.local_ports.clone())
                .unwrap_or_default(),
        }
    }

    /// A socket granted by its own path (reachable whoever serves it).
    pub(super) fn granted_by_name(&self, dev: u64, ino: u64) -> bool {
        self.named.contains(&(dev, ino))
    }

    /// A socket beneath a read-write grant (reachable when the sandbox serves it).
    pub(super) fn beneath_writable(&self, path: &Path) -> bool {
        self.writable.iter().any(|w| path.starts_with(w))
    }

    /// Whether a TCP connect to `ip`:`port` is allowed: the port as Landlock would decide for
    /// the child; loopback and this machine's own addresses only on local ports (the proxy,
    /// `--open-port`, direct entries naming this machine), other hosts only on the ports of
    /// direct `host:port` entries.
    pub(super) fn allows_tcp(&self, ip: IpAddr, port: u16) -> bool {
        self.allows_tcp_with(ip, port, is_interface_address)
    }

    /// [`GatePolicy::allows_tcp`], with `own` telling this machine's interface addresses
    /// (`None`: unknown, so the address might be one).
    fn allows_tcp_with(&self, ip: IpAddr, port: u16, own: impl Fn(IpAddr) -> Option<bool>) -> bool {
        let Some(ports) = &self.tcp_connect_ports else {
            return true;
        };
        if !ports.contains(&port) {
            return false;
        }
        let local_port = self.tcp_local_ports.contains(&port);
        // Linux connects the unspecified address (0.0.0.0, ::) to the local host. A port
        // opened towards other hosts (`db.example.com:5432`) does not reach this machine's
        // own services on it.
        if is_loopback(ip) || ip.is_unspecified() {
            return local_port;
        }
        let remote_port = self.tcp_remote_ports.contains(&port);
        // This machine's own addresses reach what listens on every interface: they count as
        // local, as loopback does.
        match own(ip) {
            Some(true) => local_port,
            Some(false) => remote_port,
            // Fail closed: without a listing, no address but loopback is known to be safe.
            None => false,
        }
    }
}

impl GatePolicy {
    /// Whether the child may accept a connection from `peer` (a raw `AF_INET`/`AF_INET6`
    /// address): from anywhere when TCP is unrestricted, else from loopback only.
    pub(super) fn allows_peer(&self, peer: &[u8], family: i32) -> bool {
        if self.tcp_connect_ports.is_none() {
            return true;
        }
        inet_destination(peer, family).is_some_and(|(ip, _)| is_loopback(ip))
    }

    /// Whether `accept` must go through the gate.
    pub(crate) fn gates_accept(&self) -> bool {
        self.tcp_connect_ports.is_some()
    }
}

/// Loopback, including IPv4 loopback mapped into IPv6.
pub(super) fn is_loopback(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_loopback(),
        IpAddr::V6(v6) => {
            v6.is_loopback() || v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
        }
    }
}

/// How long one listing of this machine's interface addresses is reused: listing costs a
/// netlink round trip (about 40 µs measured), a connect decision must not; an address added
/// since counts within this time.
const INTERFACE_ADDRESSES_TTL: Duration = Duration::from_secs(1);

/// The last listing of interface addresses and when it was taken.
static INTERFACE_CACHE: RwLock<Option<(Instant, Arc<[IpAddr]>)>> = RwLock::new(None);

/// Whether `ip` (IPv4-mapped spellings as their IPv4) is assigned to one of this machine's
/// interfaces, by a listing at most [`INTERFACE_ADDRESSES_TTL`] old; `None` when the
/// interfaces have never been listed successfully. The gate threads list nono's own
/// namespace: a child in a private one has only loopback, so nothing else of this machine is
/// reachable from there anyway.
fn is_interface_address(ip: IpAddr) -> Option<bool> {
    let ip = canonical(ip);
    cached_interface_addresses().map(|list| list.contains(&ip))
}

/// The interface addresses, listed again once the last listing has expired. A failed listing
/// (say, out of descriptors) keeps the previous one.
fn cached_interface_addresses() -> Option<Arc<[IpAddr]>> {
    let previous = match INTERFACE_CACHE.read() {
        Ok(cache) => match cache.as_ref() {
            Some((at, list)) if at.elapsed() < INTERFACE_ADDRESSES_TTL => {
                return Some(list.clone())
            }
            other => other.map(|(_, list)| list.clone()),
        },
        Err(_) => None,
    };
    let Ok(fresh) = interface_addresses() else {
        return previous;
    };
    let fresh: Arc<[IpAddr]> = fresh.into();
    if let Ok(mut cache) = INTERFACE_CACHE.write() {
        *cache = Some((Instant::now(), fresh.clone()));
    }
    Some(fresh)
}

/// The addresses of this machine's interfaces, read now.
fn interface_addresses() -> nix::Result<Vec<IpAddr>> {
    Ok(nix::ifaddrs::getifaddrs()?
        .filter_map(|ifa| {
            let a = ifa.address?;
            if let Some(v4) = a.as_sockaddr_in() {
                return Some(IpAddr::V4(v4.ip()));
            }
            a.as_sockaddr_in6().map(|v6| canonical(IpAddr::V6(v6.ip())))
        })
        .collect())
}

/// IPv4-mapped IPv6 as its IPv4 address, so both spellings compare equal.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// The destination of an `AF_INET`/`AF_INET6` address, if it is long enough to hold one.
pub(super) fn inet_destination(addr: &[u8], family: i32) -> Option<(IpAddr, u16)> {
    // sin_port / sin6_port follow the family, in network order; then sin_addr, or
    // sin6_flowinfo and sin6_addr.
    let port = u16::from_be_bytes([*addr.get(2)?, *addr.get(3)?]);
    let ip = if family == libc::AF_INET {
        let b: [u8; 4] = addr.get(4..8)?.try_into().ok()?;
        IpAddr::from(b)
    } else {
        let b: [u8; 16] = addr.get(8..24)?.try_into().ok()?;
        IpAddr::from(b)
    };
    Some((ip, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> GatePolicy {
        GatePolicy {
            writable: vec![PathBuf::from("/work/project")],
            named: vec![(7, 42)],
            tcp_connect_ports: Some(vec![22, 3000, 8080]),
            tcp_remote_ports: vec![22],
            tcp_local_ports: vec![3000, 8080],
        }
    }

    #[test]
    fn sockets_beneath_writable_grants_or_granted_by_name() {
        let p = policy();
        assert!(p.beneath_writable(Path::new("/work/project/app.sock")));
        assert!(p.granted_by_name(7, 42));
        assert!(!p.granted_by_name(7, 43));
        assert!(!p.beneath_writable(Path::new("/run/user/1000/ssh-agent.sock")));
        assert!(!p.beneath_writable(Path::new("/work/project-other/app.sock")));
        for denied in ["/var/run/docker.sock", "/run/user/1000/bus"] {
            assert!(!p.beneath_writable(Path::new(denied)));
        }
    }

    #[test]
    fn tcp_ports_follow_landlock_and_local_ports_stay_on_loopback() {
        let p = policy();
        let lo: IpAddr = "127.0.0.1".parse().unwrap();
        let lo2: IpAddr = "127.3.4.5".parse().unwrap();
        let lo6: IpAddr = "::1".parse().unwrap();
        let mapped: IpAddr = "::ffff:127.0.0.1".parse().unwrap();
        let remote: IpAddr = "10.0.0.7".parse().unwrap();
        let remote6: IpAddr = "2001:db8::1".parse().unwrap();
        let any: IpAddr = "0.0.0.0".parse().unwrap();
        let any6: IpAddr = "::".parse().unwrap();
        for ip in [lo, lo2, lo6, mapped, any, any6] {
            assert!(p.allows_tcp(ip, 8080), "{ip}");
            assert!(p.allows_tcp(ip, 3000), "{ip}");
            assert!(!p.allows_tcp(ip, 443), "{ip}");
            // A direct port (towards other hosts) does not reach this machine's services.
            assert!(!p.allows_tcp(ip, 22), "{ip}");
        }
        for ip in [remote, remote6] {
            assert!(!p.allows_tcp(ip, 8080), "{ip}");
            assert!(!p.allows_tcp(ip, 3000), "{ip}");
            assert!(p.allows_tcp(ip, 22), "{ip}");
            assert!(!p.allows_tcp(ip, 443), "{ip}");
        }
        let open = GatePolicy {
            tcp_connect_ports: None,
            ..policy()
        };
        assert!(open.allows_tcp(remote, 443));
    }

    /// Regression (issue "Containment", item 7): a direct `host:port` entry opened its port
    /// towards every address, this machine's own interface addresses included, so the child
    /// reached a local service listening on every interface on that port.
    #[test]
    fn bug_direct_ports_reached_this_machines_own_addresses() {
        let p = policy();
        let me: IpAddr = "192.0.2.2".parse().unwrap();
        let me6: IpAddr = "fd00::2".parse().unwrap();
        let mapped: IpAddr = "::ffff:192.0.2.2".parse().unwrap();
        let other: IpAddr = "192.0.2.99".parse().unwrap();
        let own = |ip: IpAddr| Some(canonical(ip) == me || ip == me6);
        for ip in [me, me6, mapped] {
            assert!(!p.allows_tcp_with(ip, 22, own), "{ip} on the direct port");
            // Local ports (the proxy, `--open-port`) reach them, as they reach loopback.
            assert!(p.allows_tcp_with(ip, 8080, own), "{ip}");
            assert!(p.allows_tcp_with(ip, 3000, own), "{ip}");
            assert!(!p.allows_tcp_with(ip, 443, own), "{ip}");
        }
        assert!(p.allows_tcp_with(other, 22, own));
        assert!(!p.allows_tcp_with(other, 8080, own));
        // Not knowing this machine's addresses, a direct port reaches none but loopback.
        let unknown = |_| None;
        assert!(!p.allows_tcp_with(other, 22, unknown));
        assert!(!p.allows_tcp_with("127.0.0.1".parse().unwrap(), 22, unknown));
        assert!(p.allows_tcp_with("127.0.0.1".parse().unwrap(), 3000, unknown));
        let open = GatePolicy {
            tcp_connect_ports: None,
            ..policy()
        };
        assert!(open.allows_tcp_with(me, 22, own));
    }

    /// The real listing: every non-loopback address of this machine is refused on the direct
    /// port and allowed on a local one.
    #[test]
    fn this_machines_listed_addresses_are_local() {
        let p = policy();
        let locals = interface_addresses().expect("getifaddrs");
        assert!(locals.iter().any(|a| a.is_loopback()), "{locals:?}");
        for ip in locals.into_iter().filter(|a| !is_loopback(*a)) {
            assert_eq!(is_interface_address(ip), Some(true), "{ip}");
            assert!(!p.allows_tcp(ip, 22), "{ip}");
            assert!(p.allows_tcp(ip, 8080), "{ip}");
            if let IpAddr::V4(v4) = ip {
                assert!(!p.allows_tcp(IpAddr::V6(v4.to_ipv6_mapped()), 22), "{ip}");
            }
        }
    }

    #[test]
    fn inet_destinations_are_parsed_from_raw_addresses() {
        let mut v4 = vec![0u8; 16];
        v4[..2].copy_from_slice(&(libc::AF_INET as u16).to_ne_bytes());
        v4[2..4].copy_from_slice(&3000u16.to_be_bytes());
        v4[4..8].copy_from_slice(&[10, 0, 0, 7]);
        assert_eq!(
            inet_destination(&v4, libc::AF_INET),
            Some(("10.0.0.7".parse().unwrap(), 3000))
        );
        let mut v6 = vec![0u8; 28];
        v6[2..4].copy_from_slice(&22u16.to_be_bytes());
        v6[8..24].copy_from_slice(&"::1".parse::<std::net::Ipv6Addr>().unwrap().octets());
        assert_eq!(
            inet_destination(&v6, libc::AF_INET6),
            Some(("::1".parse().unwrap(), 22))
        );
        assert_eq!(inet_destination(&v4[..6], libc::AF_INET), None);
        assert_eq!(inet_destination(&v6[..20], libc::AF_INET6), None);
    }

    #[test]
    fn accepted_peers_are_loopback_only_when_tcp_is_restricted() {
        let mut v4 = vec![0u8; 16];
        v4[..2].copy_from_slice(&(libc::AF_INET as u16).to_ne_bytes());
        v4[4..8].copy_from_slice(&[127, 0, 0, 1]);
        assert!(policy().allows_peer(&v4, libc::AF_INET));
        v4[4..8].copy_from_slice(&[10, 1, 2, 3]);
        assert!(!policy().allows_peer(&v4, libc::AF_INET));
        let open = GatePolicy {
            tcp_connect_ports: None,
            ..policy()
        };
        assert!(open.allows_peer(&v4, libc::AF_INET));
        assert!(!policy().allows_peer(&v4[..3], libc::AF_INET));
    }
}
