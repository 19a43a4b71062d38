//! The Seatbelt (macOS `sandbox_init`) profile for a policy, as SBPL text.
//!
//! Pure string building, so Linux CI tests it. Seatbelt matches resolved paths, so the CLI
//! should pass canonical paths (`/private/tmp`, not `/tmp`).

use std::fmt::Write as _;

use crate::policy::{FsAccess, NetPolicy, SandboxPolicy};

/// Mach services a command-line program needs for user lookup, logging, preferences and TLS
/// trust evaluation. Anything else (notably LaunchServices, which can start apps outside the
/// sandbox) stays denied.
const MACH_SERVICES: &[&str] = &[
    "com.apple.system.opendirectoryd.libinfo",
    "com.apple.system.opendirectoryd.membership",
    "com.apple.system.notification_center",
    "com.apple.system.logger",
    "com.apple.logd",
    "com.apple.cfprefsd.daemon",
    "com.apple.cfprefsd.agent",
    "com.apple.trustd",
    "com.apple.trustd.agent",
    "com.apple.SecurityServer",
    "com.apple.bsd.dirhelper",
];

/// The name-resolution service; reachable only when the policy allows direct DNS.
const DNS_SERVICE: &str = "com.apple.mDNSResponder";

/// Builds the Seatbelt profile text for `policy`.
///
/// Everything is denied by default; file metadata (`stat`) is readable everywhere, as under
/// Landlock; each [`crate::FsRule`] becomes a `subpath` grant; the network section mirrors
/// [`NetPolicy`] with TCP port rules (`localhost` for the proxy port, `*` for other ports).
pub fn seatbelt_profile(policy: &SandboxPolicy) -> String {
    let mut p = String::from("(version 1)\n(deny default)\n");
    p.push_str(
        "(allow process-exec)\n\
         (allow process-fork)\n\
         (allow signal (target same-sandbox))\n\
         (allow process-info* (target same-sandbox))\n\
         (allow sysctl-read)\n\
         (deny sysctl-read (sysctl-name-prefix \"kern.procargs\"))\n\
         (allow user-preference-read)\n\
         (allow pseudo-tty)\n\
         (allow ipc-posix-sem)\n\
         (allow ipc-posix-shm)\n\
         (allow file-read-metadata)\n",
    );
    for service in MACH_SERVICES {
        let _ = writeln!(
            p,
            "(allow mach-lookup (global-name {}))",
            scheme_string(service)
        );
    }

    for rule in &policy.fs {
        let path = scheme_string(&rule.path.to_string_lossy());
        let _ = writeln!(p, "(allow file-read* (subpath {path}))");
        if rule.access == FsAccess::ReadWrite {
            let _ = writeln!(p, "(allow file-write* (subpath {path}))");
        }
    }

    match &policy.net {
        NetPolicy::Unrestricted => {
            p.push_str("(allow network*)\n");
            allow_dns(&mut p);
        }
        NetPolicy::ProxyOnly {
            proxy_port,
            connect_ports,
            local_ports,
            bind_ports,
            allow_udp,
        } => {
            p.push_str("(deny network*)\n");
            let _ = writeln!(
                p,
                "(allow network-outbound (remote tcp \"localhost:{proxy_port}\"))"
            );
            tcp_ports(&mut p, connect_ports, local_ports, bind_ports);
            if *allow_udp {
                p.push_str(
                    "(allow network-outbound (remote udp \"*:*\"))\n\
                     (allow network-bind (local udp \"*:*\"))\n\
                     (allow network-inbound (local udp \"*:*\"))\n",
                );
                allow_dns(&mut p);
            }
        }
        NetPolicy::Blocked {
            connect_ports,
            bind_ports,
        } => {
            p.push_str("(deny network*)\n");
            tcp_ports(&mut p, &[], connect_ports, bind_ports);
        }
    }
    unix_sockets(&mut p, policy);
    p
}

/// Seatbelt governs UNIX sockets with its network rules, not its file rules: without these
/// lines `(deny network*)` would refuse the sandbox's own servers and `(allow network*)`
/// would open every socket on disk (the Docker socket, an ssh-agent). As on Linux: sockets
/// beneath a read-write grant, and sockets granted by name. Later rules take precedence.
fn unix_sockets(p: &mut String, policy: &SandboxPolicy) {
    p.push_str("(deny network-outbound (remote unix-socket))\n");
    p.push_str("(deny network-bind (local unix-socket))\n");
    for rule in &policy.fs {
        let path = scheme_string(&rule.path.to_string_lossy());
        match rule.access {
            FsAccess::ReadWrite => {
                let _ = writeln!(
                    p,
                    "(allow network-outbound (remote unix-socket (subpath {path})))"
                );
                let _ = writeln!(
                    p,
                    "(allow network-bind (local unix-socket (subpath {path})))"
                );
            }
            FsAccess::Read => {
                let _ = writeln!(
                    p,
                    "(allow network-outbound (remote unix-socket (path-literal {path})))"
                );
            }
        }
    }
}

/// `remote`: reachable on any host; `local`: on localhost only.
fn tcp_ports(p: &mut String, remote: &[u16], local: &[u16], bind_ports: &[u16]) {
    for port in remote {
        let _ = writeln!(p, "(allow network-outbound (remote tcp \"*:{port}\"))");
    }
    for port in local {
        let _ = writeln!(
            p,
            "(allow network-outbound (remote tcp \"localhost:{port}\"))"
        );
    }
    for port in bind_ports {
        let _ = writeln!(p, "(allow network-bind (local tcp \"*:{port}\"))");
        let _ = writeln!(p, "(allow network-inbound (local tcp \"*:{port}\"))");
    }
}

fn allow_dns(p: &mut String) {
    let _ = writeln!(
        p,
        "(allow mach-lookup (global-name {}))",
        scheme_string(DNS_SERVICE)
    );
}

/// Quotes `s` as an SBPL (TinyScheme) string literal: backslash and double quote are escaped
/// and control characters written as `\xHH`, so no input can end the string early.
pub fn scheme_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() && (c as u32) < 0x100 => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::FsRule;

    fn policy(net: NetPolicy) -> SandboxPolicy {
        SandboxPolicy {
            fs: vec![
                FsRule::read("/usr"),
                FsRule::read_write("/Users/me/project"),
            ],
            net,
            allow_insecure_proxy: false,
            share_tmp: false,
        }
    }

    /// The TCP/IP network lines (UNIX socket rules are tested on their own).
    fn network_lines(profile: &str) -> Vec<&str> {
        profile
            .lines()
            .filter(|l| l.contains("network") && !l.contains("unix-socket"))
            .collect()
    }

    #[test]
    fn unix_sockets_only_beneath_writable_grants_or_by_name_in_every_mode() {
        for net in [
            NetPolicy::Unrestricted,
            NetPolicy::Blocked {
                connect_ports: vec![],
                bind_ports: vec![],
            },
        ] {
            let p = seatbelt_profile(&policy(net));
            let unix: Vec<&str> = p.lines().filter(|l| l.contains("unix-socket")).collect();
            assert_eq!(unix[0], "(deny network-outbound (remote unix-socket))");
            assert_eq!(unix[1], "(deny network-bind (local unix-socket))");
            assert!(unix.contains(
                &"(allow network-outbound (remote unix-socket (subpath \"/Users/me/project\")))"
            ));
            assert!(unix.contains(
                &"(allow network-bind (local unix-socket (subpath \"/Users/me/project\")))"
            ));
            assert!(unix.contains(
                &"(allow network-outbound (remote unix-socket (path-literal \"/usr\")))"
            ));
            // The denials come after the blanket network rules, so they take precedence.
            let allow_all = p.find("(allow network*)").unwrap_or(0);
            assert!(
                p.find("(deny network-outbound (remote unix-socket))")
                    .unwrap()
                    > allow_all
            );
        }
    }

    /// KERN_PROCARGS2 hands any same-user process another's arguments and environment, where
    /// nono keeps the upstream proxy URL and `env://` credentials.
    #[test]
    fn other_processes_arguments_and_environment_are_not_readable() {
        let p = seatbelt_profile(&policy(NetPolicy::Unrestricted));
        let allow = p.find("(allow sysctl-read)\n").expect("sysctl allowed");
        let deny = p
            .find("(deny sysctl-read (sysctl-name-prefix \"kern.procargs\"))")
            .expect("procargs denied");
        assert!(deny > allow, "the denial must come last to win");
    }

    #[test]
    fn header_and_filesystem_grants() {
        let p = seatbelt_profile(&policy(NetPolicy::Unrestricted));
        assert!(p.starts_with("(version 1)\n(deny default)\n"));
        assert!(p.contains("(allow file-read* (subpath \"/usr\"))"));
        assert!(!p.contains("(allow file-write* (subpath \"/usr\"))"));
        assert!(p.contains("(allow file-read* (subpath \"/Users/me/project\"))"));
        assert!(p.contains("(allow file-write* (subpath \"/Users/me/project\"))"));
    }

    #[test]
    fn unrestricted_allows_all_network() {
        let p = seatbelt_profile(&policy(NetPolicy::Unrestricted));
        assert_eq!(network_lines(&p), vec!["(allow network*)"]);
        assert!(p.contains(DNS_SERVICE));
    }

    #[test]
    fn proxy_only_allows_proxy_and_listed_ports() {
        let p = seatbelt_profile(&policy(NetPolicy::ProxyOnly {
            proxy_port: 41234,
            connect_ports: vec![22],
            local_ports: vec![3000],
            bind_ports: vec![3000],
            allow_udp: false,
        }));
        assert_eq!(
            network_lines(&p),
            vec![
                "(deny network*)",
                "(allow network-outbound (remote tcp \"localhost:41234\"))",
                "(allow network-outbound (remote tcp \"*:22\"))",
                "(allow network-outbound (remote tcp \"localhost:3000\"))",
                "(allow network-bind (local tcp \"*:3000\"))",
                "(allow network-inbound (local tcp \"*:3000\"))",
            ]
        );
        assert!(!p.contains(DNS_SERVICE));
    }

    #[test]
    fn proxy_only_with_udp_allows_dns() {
        let p = seatbelt_profile(&policy(NetPolicy::ProxyOnly {
            proxy_port: 1,
            connect_ports: vec![],
            local_ports: vec![],
            bind_ports: vec![],
            allow_udp: true,
        }));
        assert!(p.contains("(allow network-outbound (remote udp \"*:*\"))"));
        assert!(p.contains(DNS_SERVICE));
    }

    #[test]
    fn blocked_allows_only_listed_ports() {
        let p = seatbelt_profile(&policy(NetPolicy::Blocked {
            connect_ports: vec![],
            bind_ports: vec![],
        }));
        assert_eq!(network_lines(&p), vec!["(deny network*)"]);
        let p = seatbelt_profile(&policy(NetPolicy::Blocked {
            connect_ports: vec![5432],
            bind_ports: vec![],
        }));
        assert_eq!(
            network_lines(&p),
            vec![
                "(deny network*)",
                "(allow network-outbound (remote tcp \"localhost:5432\"))"
            ]
        );
    }

    #[test]
    fn quotes_and_backslashes_are_escaped() {
        assert_eq!(scheme_string(r#"a"b\c"#), r#""a\"b\\c""#);
        assert_eq!(scheme_string("x\ny\u{1}"), "\"x\\ny\\x01\"");
    }

    #[test]
    fn path_with_quote_cannot_break_out() {
        let evil = "/tmp/x\")) (allow file-write* (subpath \"/";
        let p = seatbelt_profile(&SandboxPolicy {
            fs: vec![FsRule::read(evil)],
            net: NetPolicy::Blocked {
                connect_ports: vec![],
                bind_ports: vec![],
            },
            allow_insecure_proxy: false,
            share_tmp: false,
        });
        assert!(!p.contains("(allow file-write* (subpath \"/\"))"));
        let line = p.lines().find(|l| l.contains("/tmp/x")).expect("rule line");
        // The whole path stays inside one string literal: the only unescaped quotes are the
        // literal's own two.
        let unescaped = line
            .char_indices()
            .filter(|&(i, c)| c == '"' && !line[..i].ends_with('\\'))
            .count();
        assert_eq!(unescaped, 2, "{line}");
        assert!(line.starts_with("(allow file-read* (subpath \"") && line.ends_with("\"))"));
    }
}
