//! The kernel-side half of a resolved policy: which paths and ports the confined child gets.

use nono_sandbox::{FsRule, NetPolicy, SandboxPolicy};

use crate::policy::{NetworkMode, ResolvedPolicy, Wsl2ProxyPolicy};

/// Builds the sandbox policy. `proxy_port` is the port of the in-process proxy (proxy mode).
///
/// Proxy mode: TCP connect only to the proxy and to the ports of `host:port` entries and
/// `open_port`; bind only `listen_port`/`open_port`. A bare hostname opens no direct port (it
/// goes through the proxy). UDP stays open only when direct `host:port` entries need DNS.
pub fn sandbox_policy(p: &ResolvedPolicy, proxy_port: Option<u16>) -> SandboxPolicy {
    let mut fs = nono_sandbox::system_paths();
    fs.extend(p.filesystem.read.iter().map(FsRule::read));
    fs.extend(p.filesystem.allow.iter().map(FsRule::read_write));
    let n = &p.network;
    let mut bind_ports: Vec<u16> = n
        .open_ports
        .iter()
        .chain(&n.listen_ports)
        .copied()
        .collect();
    bind_ports.sort_unstable();
    bind_ports.dedup();
    let net = match (n.mode, proxy_port) {
        (NetworkMode::Proxy, Some(proxy_port)) => {
            let mut connect_ports: Vec<u16> = n.direct.iter().map(|d| d.port).collect();
            connect_ports.sort_unstable();
            connect_ports.dedup();
            // A direct entry whose host is this machine (`localhost:5432`, `127.0.0.1:6379`)
            // is a local port; other direct ports never reach loopback.
            let mut local_ports: Vec<u16> = n.open_ports.clone();
            local_ports.extend(
                n.direct
                    .iter()
                    .filter(|d| {
                        nono_proxy::filter::Host::parse(&d.host).is_ok_and(|h| h.is_local())
                    })
                    .map(|d| d.port),
            );
            local_ports.sort_unstable();
            local_ports.dedup();
            NetPolicy::ProxyOnly {
                proxy_port,
                connect_ports,
                local_ports,
                bind_ports,
                allow_udp: !n.direct.is_empty(),
            }
        }
        (NetworkMode::Blocked, _) => NetPolicy::Blocked {
            connect_ports: n.open_ports.clone(),
            bind_ports,
        },
        // Proxy mode without a port cannot happen; refuse everything rather than open it.
        (NetworkMode::Proxy, None) => NetPolicy::Blocked {
            connect_ports: Vec::new(),
            bind_ports: Vec::new(),
        },
        (NetworkMode::Unrestricted, _) => NetPolicy::Unrestricted,
    };
    SandboxPolicy {
        fs,
        net,
        allow_insecure_proxy: p.security.wsl2_proxy_policy == Wsl2ProxyPolicy::InsecureProxy,
        share_tmp: p.filesystem.share_tmp,
    }
}

/// Whether the child can live in a private network namespace with only loopback.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NetworkIsolation {
    /// The child shares the host's network (it needs direct ports, or no restriction).
    Shared,
    /// The child needs no address but the proxy's (`proxy_port`), or none at all.
    Private {
        /// Port the proxy must also listen on inside the child's namespace.
        proxy_port: Option<u16>,
    },
}

/// Proxy mode and `--block-net` without any direct, open or listen port need no address of
/// this machine or another host: a private namespace then closes what Landlock's port rules
/// cannot (the proxy port on other addresses, `listen()` autobind).
pub fn network_isolation(p: &ResolvedPolicy, proxy_port: Option<u16>) -> NetworkIsolation {
    let n = &p.network;
    let no_ports = n.direct.is_empty() && n.open_ports.is_empty() && n.listen_ports.is_empty();
    match (n.mode, proxy_port) {
        (NetworkMode::Proxy, Some(port)) if no_ports => NetworkIsolation::Private {
            proxy_port: Some(port),
        },
        (NetworkMode::Blocked, _) if no_ports => NetworkIsolation::Private { proxy_port: None },
        _ => NetworkIsolation::Shared,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::{DirectEndpoint, PolicyArgs};
    use crate::vars::Env;

    fn resolved(args: PolicyArgs) -> ResolvedPolicy {
        let env = Env {
            workdir: "/w".into(),
            home: "/h".into(),
            tmpdir: "/t".into(),
            xdg_config_home: Some("/nonexistent-xdg".into()),
            xdg_cache_home: None,
        };
        crate::resolve(&args, &env).unwrap()
    }

    #[test]
    fn proxy_mode_opens_proxy_direct_and_open_ports_only() {
        let mut p = resolved(PolicyArgs {
            allow_domain: vec!["api.example.com".into(), "nats.internal:4222".into()],
            open_port: vec![3000],
            listen_port: vec![8080],
            ..Default::default()
        });
        assert_eq!(
            p.network.direct,
            vec![DirectEndpoint {
                host: "nats.internal".into(),
                port: 4222
            }]
        );
        match sandbox_policy(&p, Some(40000)).net {
            NetPolicy::ProxyOnly {
                proxy_port,
                connect_ports,
                local_ports,
                bind_ports,
                allow_udp,
            } => {
                assert_eq!(proxy_port, 40000);
                assert_eq!(
                    connect_ports,
                    vec![4222],
                    "only direct entries reach other hosts"
                );
                assert_eq!(local_ports, vec![3000], "--open-port is loopback only");
                assert_eq!(bind_ports, vec![3000, 8080]);
                assert!(allow_udp, "direct host:port entries need DNS");
            }
            other => panic!("{other:?}"),
        }
        p.network.direct.clear();
        assert!(!sandbox_policy(&p, Some(1)).net.allows_udp());
    }

    #[test]
    fn private_namespace_only_without_direct_ports() {
        let p = resolved(PolicyArgs {
            allow_domain: vec!["api.example.com".into()],
            ..Default::default()
        });
        assert_eq!(
            network_isolation(&p, Some(9)),
            NetworkIsolation::Private {
                proxy_port: Some(9)
            }
        );
        let d = resolved(PolicyArgs {
            allow_domain: vec!["db.internal:5432".into()],
            ..Default::default()
        });
        assert_eq!(network_isolation(&d, Some(9)), NetworkIsolation::Shared);
        let b = resolved(PolicyArgs {
            block_net: true,
            ..Default::default()
        });
        assert_eq!(
            network_isolation(&b, None),
            NetworkIsolation::Private { proxy_port: None }
        );
        let o = resolved(PolicyArgs {
            block_net: true,
            open_port: vec![3000],
            ..Default::default()
        });
        assert_eq!(network_isolation(&o, None), NetworkIsolation::Shared);
        let u = resolved(PolicyArgs::default());
        assert_eq!(network_isolation(&u, None), NetworkIsolation::Shared);
    }

    #[test]
    fn bare_hosts_open_no_direct_port_and_block_net_blocks() {
        let p = resolved(PolicyArgs {
            allow_domain: vec!["api.example.com".into()],
            ..Default::default()
        });
        match sandbox_policy(&p, Some(5)).net {
            NetPolicy::ProxyOnly {
                connect_ports,
                allow_udp,
                ..
            } => {
                assert!(connect_ports.is_empty());
                assert!(!allow_udp);
            }
            other => panic!("{other:?}"),
        }
        let b = resolved(PolicyArgs {
            block_net: true,
            open_port: vec![3000],
            ..Default::default()
        });
        match sandbox_policy(&b, None).net {
            NetPolicy::Blocked {
                connect_ports,
                bind_ports,
            } => {
                assert_eq!(connect_ports, vec![3000]);
                assert_eq!(bind_ports, vec![3000]);
            }
            other => panic!("{other:?}"),
        }
    }
}
