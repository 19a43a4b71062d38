//! Turning a policy plus kernel support into a concrete plan: the Landlock rule list, the
//! seccomp socket mode and the honest report. Pure logic (apart from `stat` on granted paths),
//! shared by every platform and unit-tested without a kernel.

use std::path::PathBuf;

use crate::error::SandboxError;
use crate::paths::is_system_path;
use crate::policy::{FsAccess, FsRule, NetPolicy, SandboxPolicy};
use crate::report::{Enforcement, EnforcementReport};
use crate::seccomp::SocketFilter;
use crate::support::KernelSupport;

/// First Landlock ABI with TCP port rules (Linux 6.7).
pub const LANDLOCK_ABI_NET: u8 = 4;
/// First Landlock ABI with signal and abstract-socket scoping (Linux 6.12).
pub const LANDLOCK_ABI_SCOPE: u8 = 6;
/// First Landlock ABI that restricts `truncate` (Linux 6.2).
const LANDLOCK_ABI_TRUNCATE: u8 = 3;
/// First Landlock ABI that restricts device `ioctl` (Linux 6.10).
const LANDLOCK_ABI_IOCTL_DEV: u8 = 5;

/// A filesystem rule after checking the path on disk.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlannedFsRule {
    /// The path to open with `O_PATH`.
    pub path: PathBuf,
    /// Read or read-write.
    pub access: FsAccess,
    /// Directories get directory rights; other files only the rights that apply to files.
    pub is_dir: bool,
}

/// TCP ports Landlock allows once it handles `BindTcp | ConnectTcp`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlannedNet {
    /// Ports `connect(2)` may reach.
    pub connect_ports: Vec<u16>,
    /// Of those, the ports that may reach other hosts; the rest are for loopback only
    /// (enforced by the connect gate, since Landlock cannot restrict addresses).
    pub remote_ports: Vec<u16>,
    /// The ports that may reach loopback and this machine's own addresses.
    pub local_ports: Vec<u16>,
    /// Ports `bind(2)` may use.
    pub bind_ports: Vec<u16>,
}

/// Everything `prepare` needs to build kernel objects.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    /// The Landlock ABI to build the ruleset for.
    pub abi: u8,
    /// Filesystem rules (missing system paths already dropped).
    pub fs: Vec<PlannedFsRule>,
    /// TCP port rules, `None` when Landlock does not handle the network.
    pub net: Option<PlannedNet>,
    /// Whether to add the ABI 6 scopes.
    pub scopes: bool,
    /// Socket filtering for seccomp.
    pub sockets: SocketFilter,
    /// What will be enforced.
    pub report: EnforcementReport,
}

/// Decides what to enforce, failing closed where the kernel cannot enforce the policy.
pub fn plan(policy: &SandboxPolicy, support: &KernelSupport) -> Result<Plan, SandboxError> {
    let abi = match support.landlock_abi {
        Some(abi) if abi >= 1 => abi,
        _ => {
            return Err(SandboxError::LandlockUnavailable {
                simulated: support.simulated,
            })
        }
    };
    if !support.seccomp {
        return Err(SandboxError::SeccompUnavailable);
    }
    let landlock_net = abi >= LANDLOCK_ABI_NET;
    let mut warnings = Vec::new();

    let (net, sockets, network) = match &policy.net {
        NetPolicy::Unrestricted => (None, SocketFilter::Unfiltered, Enforcement::Full),
        NetPolicy::ProxyOnly { allow_udp, .. } => {
            let sockets = SocketFilter::TcpOnly {
                allow_udp: *allow_udp,
            };
            if landlock_net {
                (Some(planned_net(&policy.net)), sockets, Enforcement::Full)
            } else if policy.allow_insecure_proxy {
                let why = format!(
                    "Landlock ABI {abi} lacks TCP port rules (needs ABI 4, Linux 6.7+): the \
                     sandboxed program can connect anywhere and bypass the proxy; only raw, \
                     packet{udp} sockets are blocked",
                    udp = if *allow_udp { "" } else { " and UDP" }
                );
                warnings.push(format!(
                    "INSECURE: network confinement is NOT enforced ({why}); enabled by \
                     security.wsl2_proxy_policy = \"insecure_proxy\""
                ));
                (None, sockets, Enforcement::NotEnforced(why))
            } else {
                return Err(SandboxError::ProxyNeedsLandlockNet {
                    found: abi,
                    wsl2: support.wsl2,
                    simulated: support.simulated,
                });
            }
        }
        NetPolicy::Blocked {
            connect_ports,
            bind_ports,
        } => {
            if landlock_net {
                let sockets = SocketFilter::TcpOnly { allow_udp: false };
                (Some(planned_net(&policy.net)), sockets, Enforcement::Full)
            } else if connect_ports.is_empty() && bind_ports.is_empty() {
                // seccomp alone removes every IPv4/IPv6 socket.
                (None, SocketFilter::NoInet, Enforcement::Full)
            } else {
                let mut ports: Vec<u16> = connect_ports.iter().chain(bind_ports).copied().collect();
                ports.sort_unstable();
                ports.dedup();
                return Err(SandboxError::BlockedPortsNeedLandlockNet {
                    found: abi,
                    ports,
                    simulated: support.simulated,
                });
            }
        }
    };

    let filesystem = if abi < LANDLOCK_ABI_TRUNCATE {
        Enforcement::Partial(format!(
            "Landlock ABI {abi} cannot restrict truncate(2) (needs ABI 3, Linux 6.2+): files in \
             read-only paths can be emptied"
        ))
    } else if abi < LANDLOCK_ABI_IOCTL_DEV {
        Enforcement::Partial(format!(
            "Landlock ABI {abi} cannot restrict ioctl on device files (needs ABI 5, Linux 6.10+)"
        ))
    } else {
        Enforcement::Full
    };
    let scopes = abi >= LANDLOCK_ABI_SCOPE;
    let ipc = if scopes {
        Enforcement::Full
    } else {
        Enforcement::NotEnforced(format!(
            "Landlock ABI {abi} has no scoping (needs ABI 6, Linux 6.12+): the program can \
             signal processes of the same user and reach abstract UNIX sockets outside"
        ))
    };
    if support.simulated {
        warnings.push(format!(
            "Landlock ABI lowered to {abi} by NONO_TEST_LANDLOCK_ABI (testing only)"
        ));
    }

    Ok(Plan {
        abi,
        fs: plan_fs(&policy.fs)?,
        net,
        scopes,
        sockets,
        report: EnforcementReport {
            landlock_abi: abi,
            filesystem,
            network,
            ipc,
            seccomp: Enforcement::Full,
            warnings,
        },
    })
}

fn planned_net(net: &NetPolicy) -> PlannedNet {
    PlannedNet {
        connect_ports: net.connect_ports().unwrap_or_default(),
        remote_ports: net.remote_connect_ports().unwrap_or_default(),
        local_ports: net.local_connect_ports().unwrap_or_default(),
        bind_ports: net.bind_ports().unwrap_or_default(),
    }
}

/// Checks each rule's path: missing system paths are dropped, missing user paths are errors.
pub fn plan_fs(rules: &[FsRule]) -> Result<Vec<PlannedFsRule>, SandboxError> {
    let mut planned = Vec::with_capacity(rules.len());
    for rule in rules {
        match std::fs::metadata(&rule.path) {
            Ok(meta) => planned.push(PlannedFsRule {
                path: rule.path.clone(),
                access: rule.access,
                is_dir: meta.is_dir(),
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && is_system_path(rule) => {}
            Err(source) => {
                return Err(SandboxError::GrantedPath {
                    path: rule.path.clone(),
                    source,
                })
            }
        }
    }
    Ok(planned)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn support(abi: u8) -> KernelSupport {
        KernelSupport {
            landlock_abi: Some(abi),
            simulated: false,
            wsl2: false,
            seccomp: true,
        }
    }

    fn policy(net: NetPolicy) -> SandboxPolicy {
        SandboxPolicy {
            fs: vec![FsRule::read("/")],
            net,
            allow_insecure_proxy: false,
            share_tmp: false,
        }
    }

    fn proxy(port: u16) -> NetPolicy {
        NetPolicy::ProxyOnly {
            proxy_port: port,
            connect_ports: vec![443],
            local_ports: vec![],
            bind_ports: vec![3000],
            allow_udp: false,
        }
    }

    #[test]
    fn proxy_with_net_abi_adds_port_rules() {
        let plan = plan(&policy(proxy(9000)), &support(7)).expect("plan");
        let net = plan.net.expect("net rules");
        assert_eq!(net.connect_ports, vec![443, 9000]);
        assert_eq!(net.bind_ports, vec![3000]);
        assert!(plan.scopes);
        assert!(plan.report.is_fully_enforced());
    }

    #[test]
    fn proxy_without_net_abi_fails_closed() {
        let err = plan(&policy(proxy(9000)), &support(3)).expect_err("must refuse");
        assert!(matches!(
            err,
            SandboxError::ProxyNeedsLandlockNet { found: 3, .. }
        ));
    }

    #[test]
    fn insecure_proxy_opt_in_warns_and_reports_not_enforced() {
        let mut p = policy(proxy(9000));
        p.allow_insecure_proxy = true;
        let plan = plan(&p, &support(3)).expect("plan");
        assert!(plan.net.is_none());
        assert!(matches!(plan.report.network, Enforcement::NotEnforced(_)));
        assert!(plan.report.warnings.iter().any(|w| w.contains("INSECURE")));
        assert_eq!(plan.sockets, SocketFilter::TcpOnly { allow_udp: false });
    }

    #[test]
    fn blocked_without_net_abi_uses_seccomp_only() {
        let blocked = NetPolicy::Blocked {
            connect_ports: vec![],
            bind_ports: vec![],
        };
        let plan = plan(&policy(blocked), &support(3)).expect("plan");
        assert_eq!(plan.sockets, SocketFilter::NoInet);
        assert!(plan.report.network.is_full());
    }

    #[test]
    fn blocked_with_ports_without_net_abi_fails() {
        let blocked = NetPolicy::Blocked {
            connect_ports: vec![22],
            bind_ports: vec![],
        };
        let err = plan(&policy(blocked), &support(3)).expect_err("must refuse");
        assert!(matches!(
            err,
            SandboxError::BlockedPortsNeedLandlockNet { .. }
        ));
    }

    #[test]
    fn no_landlock_is_an_error() {
        let mut s = support(1);
        s.landlock_abi = None;
        let err = plan(&policy(NetPolicy::Unrestricted), &s).expect_err("must refuse");
        assert!(matches!(err, SandboxError::LandlockUnavailable { .. }));
    }

    #[test]
    fn unrestricted_has_no_net_rules_and_no_socket_filter() {
        let plan = plan(&policy(NetPolicy::Unrestricted), &support(7)).expect("plan");
        assert!(plan.net.is_none());
        assert_eq!(plan.sockets, SocketFilter::Unfiltered);
    }

    #[test]
    fn missing_user_path_is_an_error_naming_it() {
        let rules = [FsRule::read("/nonexistent/nono-test-path")];
        let err = plan_fs(&rules).expect_err("must fail");
        assert!(err.to_string().contains("/nonexistent/nono-test-path"));
    }

    #[test]
    fn missing_system_paths_are_skipped() {
        let planned = plan_fs(&crate::paths::system_paths()).expect("plan");
        assert!(planned.len() <= crate::paths::system_paths().len());
        assert!(planned.iter().all(|r| r.path.exists()));
    }

    #[test]
    fn old_abi_is_partial_for_filesystem() {
        let plan = plan(&policy(NetPolicy::Unrestricted), &support(2)).expect("plan");
        assert!(matches!(plan.report.filesystem, Enforcement::Partial(_)));
        assert!(matches!(plan.report.ipc, Enforcement::NotEnforced(_)));
    }
}
