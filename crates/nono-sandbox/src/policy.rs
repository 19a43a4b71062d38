//! The resolved policy the sandbox enforces: filesystem grants and the network mode.
//!
//! These are plain values with no platform code; the CLI builds one [`SandboxPolicy`] after
//! resolving profiles and flags, and [`crate::prepare`] turns it into kernel objects.

use std::path::PathBuf;

/// How much a [`FsRule`] grants beneath its path.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FsAccess {
    /// Read files, list directories and execute programs.
    Read,
    /// Everything in [`FsAccess::Read`] plus create, write, truncate, rename and delete.
    ReadWrite,
}

/// One filesystem grant: `access` to `path` and everything beneath it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct FsRule {
    /// The file or directory granted; should already be absolute and canonical.
    pub path: PathBuf,
    /// What the child may do there.
    pub access: FsAccess,
}

impl FsRule {
    /// A read-only grant for `path`.
    pub fn read(path: impl Into<PathBuf>) -> Self {
        Self {
            path: path.into(),
            access: FsAccess::Read,
        }
    }

    /// A read-write grant for `path`.
    pub fn read_write(path: impl Into<PathBuf>) -> Self {
        Self {
            path: path.into(),
            access: FsAccess::ReadWrite,
        }
    }
}

/// What the child may do on the network.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NetPolicy {
    /// No network restriction at all (no proxy, no `--block-net`).
    Unrestricted,
    /// Proxy mode: TCP connect only to port `proxy_port` (meant for the supervisor's proxy on
    /// 127.0.0.1; Landlock restricts ports, not addresses) and to `connect_ports`; TCP bind only
    /// on `bind_ports`.
    ///
    /// `allow_udp` keeps `AF_INET`/`AF_INET6` `SOCK_DGRAM` sockets usable (needed for DNS when
    /// the policy has direct host:port entries); otherwise UDP is blocked.
    ProxyOnly {
        /// Port of the supervisor's proxy on localhost.
        proxy_port: u16,
        /// Extra TCP ports the child may connect to directly, on any host.
        connect_ports: Vec<u16>,
        /// TCP ports the child may connect to on loopback only (`--open-port`).
        local_ports: Vec<u16>,
        /// TCP ports the child may bind (and listen on).
        bind_ports: Vec<u16>,
        /// Whether UDP sockets may be created.
        allow_udp: bool,
    },
    /// `--block-net`: no TCP connect or bind except the listed ports, no UDP.
    Blocked {
        /// TCP ports the child may still connect to, on loopback only.
        connect_ports: Vec<u16>,
        /// TCP ports the child may still bind.
        bind_ports: Vec<u16>,
    },
}

impl NetPolicy {
    /// The TCP ports the child may connect to, or `None` when TCP connect is unrestricted.
    pub fn connect_ports(&self) -> Option<Vec<u16>> {
        match self {
            NetPolicy::Unrestricted => None,
            NetPolicy::ProxyOnly {
                proxy_port,
                connect_ports,
                local_ports,
                ..
            } => Some(sorted_unique(
                std::iter::once(*proxy_port)
                    .chain(connect_ports.iter().copied())
                    .chain(local_ports.iter().copied()),
            )),
            NetPolicy::Blocked { connect_ports, .. } => {
                Some(sorted_unique(connect_ports.iter().copied()))
            }
        }
    }

    /// The TCP ports the child may connect to on any host; every other allowed port (the
    /// proxy, `--open-port`) is reachable on loopback addresses only. `None`: unrestricted.
    pub fn remote_connect_ports(&self) -> Option<Vec<u16>> {
        match self {
            NetPolicy::Unrestricted => None,
            NetPolicy::ProxyOnly { connect_ports, .. } => {
                Some(sorted_unique(connect_ports.iter().copied()))
            }
            NetPolicy::Blocked { .. } => Some(Vec::new()),
        }
    }

    /// The TCP ports the child may connect to on loopback and this machine's own addresses
    /// (the proxy, `--open-port`). Direct `host:port` ports are not among them unless the
    /// host itself is local. `None`: unrestricted.
    pub fn local_connect_ports(&self) -> Option<Vec<u16>> {
        match self {
            NetPolicy::Unrestricted => None,
            NetPolicy::ProxyOnly {
                proxy_port,
                local_ports,
                ..
            } => Some(sorted_unique(
                std::iter::once(*proxy_port).chain(local_ports.iter().copied()),
            )),
            NetPolicy::Blocked { connect_ports, .. } => {
                Some(sorted_unique(connect_ports.iter().copied()))
            }
        }
    }

    /// The TCP ports the child may bind, or `None` when binding is unrestricted.
    pub fn bind_ports(&self) -> Option<Vec<u16>> {
        match self {
            NetPolicy::Unrestricted => None,
            NetPolicy::ProxyOnly { bind_ports, .. } | NetPolicy::Blocked { bind_ports, .. } => {
                Some(sorted_unique(bind_ports.iter().copied()))
            }
        }
    }

    /// Whether UDP (`SOCK_DGRAM` on `AF_INET`/`AF_INET6`) stays usable.
    pub fn allows_udp(&self) -> bool {
        match self {
            NetPolicy::Unrestricted => true,
            NetPolicy::ProxyOnly { allow_udp, .. } => *allow_udp,
            NetPolicy::Blocked { .. } => false,
        }
    }
}

fn sorted_unique(ports: impl Iterator<Item = u16>) -> Vec<u16> {
    let mut ports: Vec<u16> = ports.collect();
    ports.sort_unstable();
    ports.dedup();
    ports
}

/// The complete, resolved confinement for one child.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SandboxPolicy {
    /// Filesystem grants; anything not beneath one of them is denied. Include
    /// [`crate::system_paths`] for a program to be able to run at all.
    pub fs: Vec<FsRule>,
    /// Network confinement.
    pub net: NetPolicy,
    /// The user opted in (`security.wsl2_proxy_policy = "insecure_proxy"`) to run proxy mode
    /// without kernel-enforced port rules when the kernel lacks Landlock ABI 4.
    pub allow_insecure_proxy: bool,
    /// Show the host's `/tmp` (when granted) instead of a private, per-session one.
    pub share_tmp: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proxy_connect_ports_include_proxy_once_sorted() {
        let net = NetPolicy::ProxyOnly {
            proxy_port: 8080,
            connect_ports: vec![443, 8080, 22],
            local_ports: vec![],
            bind_ports: vec![],
            allow_udp: false,
        };
        assert_eq!(net.connect_ports(), Some(vec![22, 443, 8080]));
        assert_eq!(net.bind_ports(), Some(vec![]));
        assert!(!net.allows_udp());
    }

    #[test]
    fn unrestricted_has_no_port_lists() {
        assert_eq!(NetPolicy::Unrestricted.connect_ports(), None);
        assert_eq!(NetPolicy::Unrestricted.bind_ports(), None);
        assert!(NetPolicy::Unrestricted.allows_udp());
    }
}
