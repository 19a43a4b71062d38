//! The seccomp rule table: which system calls the child is denied, and with which arguments.
//!
//! This is pure data so it can be unit-tested anywhere; `linux::seccomp` compiles it to BPF.
//! Everything not matched here is allowed: Landlock does the access control, seccomp removes
//! kernel attack surface and escape hatches that Landlock does not cover.

// Linux ABI values, identical on x86_64 and aarch64. Spelled out here because the table is
// built (and tested) on every platform.
/// `AF_UNIX`.
pub const AF_UNIX: u64 = 1;
/// `AF_INET`.
pub const AF_INET: u64 = 2;
/// `AF_INET6`.
pub const AF_INET6: u64 = 10;
/// `AF_NETLINK`.
pub const AF_NETLINK: u64 = 16;
/// `SOCK_STREAM`.
pub const SOCK_STREAM: u64 = 1;
/// `SOCK_DGRAM`.
pub const SOCK_DGRAM: u64 = 2;
/// `SOCK_SEQPACKET`.
pub const SOCK_SEQPACKET: u64 = 5;
/// Mask of the socket type, without `SOCK_NONBLOCK`/`SOCK_CLOEXEC`.
pub const SOCK_TYPE_MASK: u64 = 0xf;
/// `IPPROTO_TCP`.
pub const IPPROTO_TCP: u64 = 6;
/// `IPPROTO_UDP`.
pub const IPPROTO_UDP: u64 = 17;
/// `NETLINK_ROUTE`.
pub const NETLINK_ROUTE: u64 = 0;
/// `MSG_FASTOPEN`: a TCP Fast Open connect carried by `sendto`/`sendmsg`, which the kernel
/// performs without the `socket_connect` LSM hook, so Landlock's port rules never see it.
pub const MSG_FASTOPEN: u64 = 0x2000_0000;
/// `PR_SET_DUMPABLE`.
pub const PR_SET_DUMPABLE: u64 = 4;
/// `TIOCSTI`: push a byte into the terminal's input queue (typing into the parent shell).
pub const TIOCSTI: u64 = 0x5412;
/// `TIOCLINUX`: virtual-console multiplexer, which can also paste into the console's input.
pub const TIOCLINUX: u64 = 0x541c;
/// The `clone` flags that create a namespace (`CLONE_NEWTIME` overlaps the exit-signal bits of
/// `clone`, so it is only meaningful for `clone3` and `unshare`, both denied outright).
pub const CLONE_NEW_FLAGS: &[(&str, u64)] = &[
    ("CLONE_NEWNS", 0x0002_0000),
    ("CLONE_NEWCGROUP", 0x0200_0000),
    ("CLONE_NEWUTS", 0x0400_0000),
    ("CLONE_NEWIPC", 0x0800_0000),
    ("CLONE_NEWUSER", 0x1000_0000),
    ("CLONE_NEWPID", 0x2000_0000),
    ("CLONE_NEWNET", 0x4000_0000),
];

/// A system call the table can name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[allow(missing_docs)]
pub enum Syscall {
    IoUringSetup,
    IoUringEnter,
    IoUringRegister,
    Ptrace,
    ProcessVmReadv,
    ProcessVmWritev,
    Bpf,
    PerfEventOpen,
    Keyctl,
    AddKey,
    RequestKey,
    KexecLoad,
    KexecFileLoad,
    InitModule,
    FinitModule,
    DeleteModule,
    Mount,
    Umount2,
    PivotRoot,
    MoveMount,
    OpenTree,
    Fsopen,
    Fsmount,
    Fspick,
    Unshare,
    Setns,
    OpenByHandleAt,
    NameToHandleAt,
    Userfaultfd,
    Clone3,
    Clone,
    Ioctl,
    Personality,
    Prctl,
    Socket,
    Socketpair,
    Sendto,
    Sendmsg,
    Sendmmsg,
    Prlimit64,
    Setpriority,
    SchedSetaffinity,
    SchedSetscheduler,
    SchedSetparam,
    SchedSetattr,
    IoprioSet,
    ProcessMadvise,
    MigratePages,
    MovePages,
    GetRobustList,
    Chmod,
    Fchmod,
    Fchmodat,
    Fchmodat2,
    Utime,
    Utimes,
    Futimesat,
    Utimensat,
    Setxattr,
    Lsetxattr,
    Fsetxattr,
    Setxattrat,
    Removexattr,
    Lremovexattr,
    Fremovexattr,
    Removexattrat,
    Chown,
    Fchown,
    Lchown,
    Fchownat,
    FileSetattr,
}

/// The errno a denied call returns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DenyErrno {
    /// `EPERM`: the call exists but is not permitted.
    Eperm,
    /// `ENOSYS`: pretend the call does not exist, so runtimes fall back (io_uring, clone3).
    Enosys,
    /// Success without effect: the call returns 0 and changes nothing.
    Ignore,
}

/// How one argument is compared. Arguments are compared as 32-bit values, which is what the
/// kernel reads for every `int`-typed argument in this table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ArgCmp {
    /// Equal to the value.
    Eq(u64),
    /// Not equal to the value.
    Ne(u64),
    /// `arg & mask == value`.
    MaskedEq {
        /// Bits to keep.
        mask: u64,
        /// Expected result.
        value: u64,
    },
}

/// A condition on argument `index` (0-based).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ArgCond {
    /// Argument position.
    pub index: u8,
    /// The comparison.
    pub cmp: ArgCmp,
}

/// Deny `syscall` with `errno` when any of `when_any` matches (each an AND of conditions), or
/// always when `when_any` is empty.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SyscallRule {
    /// The system call.
    pub syscall: Syscall,
    /// Returned instead of running it.
    pub errno: DenyErrno,
    /// Alternatives; empty means unconditional.
    pub when_any: Vec<Vec<ArgCond>>,
}

impl SyscallRule {
    /// Whether this rule denies a call with these arguments (as the BPF filter would).
    pub fn denies(&self, args: &[u64; 6]) -> bool {
        self.when_any.is_empty()
            || self
                .when_any
                .iter()
                .any(|all| all.iter().all(|c| c.matches(args)))
    }
}

impl ArgCond {
    fn matches(&self, args: &[u64; 6]) -> bool {
        let arg = args[usize::from(self.index)] & 0xffff_ffff;
        match self.cmp {
            ArgCmp::Eq(v) => arg == v,
            ArgCmp::Ne(v) => arg != v,
            ArgCmp::MaskedEq { mask, value } => arg & mask == value,
        }
    }
}

/// Which sockets the child may create.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SocketFilter {
    /// No socket filtering (unrestricted network).
    Unfiltered,
    /// `AF_UNIX`, `AF_NETLINK`/`NETLINK_ROUTE`, TCP over IPv4/IPv6, and UDP when `allow_udp`;
    /// Landlock then limits TCP ports (TCP Fast Open, which would bypass it, is refused).
    TcpOnly {
        /// Keep `SOCK_DGRAM` over IPv4/IPv6.
        allow_udp: bool,
    },
    /// No IPv4/IPv6 sockets at all (network blocked without Landlock TCP rules).
    NoInet,
}

const ALWAYS_EPERM: &[Syscall] = &[
    Syscall::Ptrace,
    Syscall::ProcessVmReadv,
    Syscall::ProcessVmWritev,
    Syscall::Bpf,
    Syscall::PerfEventOpen,
    // The supervisor's credentials may live in the kernel keyring.
    Syscall::Keyctl,
    Syscall::AddKey,
    Syscall::RequestKey,
    Syscall::KexecLoad,
    Syscall::KexecFileLoad,
    Syscall::InitModule,
    Syscall::FinitModule,
    Syscall::DeleteModule,
    Syscall::Mount,
    Syscall::Umount2,
    Syscall::PivotRoot,
    Syscall::MoveMount,
    Syscall::OpenTree,
    Syscall::Fsopen,
    Syscall::Fsmount,
    Syscall::Fspick,
    Syscall::Unshare,
    Syscall::Setns,
    Syscall::OpenByHandleAt,
    Syscall::NameToHandleAt,
    Syscall::Userfaultfd,
];

const ALWAYS_ENOSYS: &[Syscall] = &[
    Syscall::IoUringSetup,
    Syscall::IoUringEnter,
    Syscall::IoUringRegister,
    // glibc and musl fall back to clone(2), whose flags the filter can inspect.
    Syscall::Clone3,
];

/// Calls that act on another process named by its pid in the first argument (0 = the caller).
const PID_FIRST: &[Syscall] = &[
    Syscall::Prlimit64,
    Syscall::SchedSetaffinity,
    Syscall::SchedSetscheduler,
    Syscall::SchedSetparam,
    Syscall::SchedSetattr,
    Syscall::MigratePages,
    Syscall::MovePages,
    Syscall::GetRobustList,
];

/// Calls that change a file's mode, times, extended attributes or POSIX ACLs.
const METADATA: &[Syscall] = &[
    Syscall::Chmod,
    Syscall::Fchmod,
    Syscall::Fchmodat,
    Syscall::Fchmodat2,
    Syscall::Utime,
    Syscall::Utimes,
    Syscall::Futimesat,
    Syscall::Utimensat,
    Syscall::Setxattr,
    Syscall::Lsetxattr,
    Syscall::Fsetxattr,
    Syscall::Setxattrat,
    Syscall::Removexattr,
    Syscall::Lremovexattr,
    Syscall::Fremovexattr,
    Syscall::Removexattrat,
    // chown clears setuid/setgid bits and file capabilities even as chown(f, -1, -1), with no
    // capability, on any file the caller owns; file_setattr (Linux 6.17) sets inode flags.
    Syscall::Chown,
    Syscall::Fchown,
    Syscall::Lchown,
    Syscall::Fchownat,
    Syscall::FileSetattr,
];

/// `FS_IOC_SETFLAGS` and `FS_IOC_FSSETXATTR`: inode flags (append-only, immutable, noatime...)
/// set through a descriptor opened for reading.
const FS_IOC_SETFLAGS: u64 = 0x4008_6602;
const FS_IOC_FSSETXATTR: u64 = 0x401c_5820;

/// `PRIO_PROCESS` (setpriority) and `IOPRIO_WHO_PROCESS` (ioprio_set).
const PRIO_PROCESS: u64 = 0;
const IOPRIO_WHO_PROCESS: u64 = 1;

/// Extra denials when the sandbox runs without its own PID and mount namespaces (fallback
/// containment): nothing outside the sandbox's root then hides other processes or ungranted
/// files, and Landlock covers neither. Calls on another process are refused unless they name
/// the caller (pid 0); metadata changes are refused everywhere (stricter than the grants:
/// `chmod +x` in the working directory fails too).
pub fn fallback_rules() -> Vec<SyscallRule> {
    let mut rules: Vec<SyscallRule> = PID_FIRST
        .iter()
        .map(|&s| deny(s, DenyErrno::Eperm, vec![vec![arg(0, ArgCmp::Ne(0))]]))
        .collect();
    // setpriority(which, who, ..) and ioprio_set(which, who, ..): only "this process".
    rules.push(deny(
        Syscall::Setpriority,
        DenyErrno::Eperm,
        vec![
            vec![arg(0, ArgCmp::Ne(PRIO_PROCESS))],
            vec![arg(1, ArgCmp::Ne(0))],
        ],
    ));
    rules.push(deny(
        Syscall::IoprioSet,
        DenyErrno::Eperm,
        vec![
            vec![arg(0, ArgCmp::Ne(IOPRIO_WHO_PROCESS))],
            vec![arg(1, ArgCmp::Ne(0))],
        ],
    ));
    rules.push(deny(Syscall::ProcessMadvise, DenyErrno::Eperm, vec![]));
    rules.extend(METADATA.iter().map(|&s| deny(s, DenyErrno::Eperm, vec![])));
    rules.push(deny(
        Syscall::Ioctl,
        DenyErrno::Eperm,
        vec![
            vec![arg(1, ArgCmp::Eq(FS_IOC_SETFLAGS))],
            vec![arg(1, ArgCmp::Eq(FS_IOC_FSSETXATTR))],
        ],
    ));
    rules
}

fn arg(index: u8, cmp: ArgCmp) -> ArgCond {
    ArgCond { index, cmp }
}

fn deny(syscall: Syscall, errno: DenyErrno, when_any: Vec<Vec<ArgCond>>) -> SyscallRule {
    SyscallRule {
        syscall,
        errno,
        when_any,
    }
}

/// The full deny table for a socket filter mode.
pub fn seccomp_rules(sockets: SocketFilter) -> Vec<SyscallRule> {
    let mut rules: Vec<SyscallRule> = ALWAYS_ENOSYS
        .iter()
        .map(|&s| deny(s, DenyErrno::Enosys, vec![]))
        .chain(
            ALWAYS_EPERM
                .iter()
                .map(|&s| deny(s, DenyErrno::Eperm, vec![])),
        )
        .collect();

    let namespace_clones = CLONE_NEW_FLAGS
        .iter()
        .map(|&(_, flag)| {
            vec![arg(
                0,
                ArgCmp::MaskedEq {
                    mask: flag,
                    value: flag,
                },
            )]
        })
        .collect();
    rules.push(deny(Syscall::Clone, DenyErrno::Eperm, namespace_clones));

    let tty_injection = [TIOCSTI, TIOCLINUX]
        .iter()
        .map(|&req| vec![arg(1, ArgCmp::Eq(req))])
        .collect();
    rules.push(deny(Syscall::Ioctl, DenyErrno::Eperm, tty_injection));

    // A non-dumpable process is out of the connect gate's reach (pidfd_getfd and /proc/PID/mem
    // need ptrace access), so every connect it made would fail. Agents (ssh-agent, gpg-agent)
    // set it to keep other processes out of their memory; here that protection is lost
    // against processes of the same sandbox (Landlock still keeps everything outside out).
    rules.push(deny(
        Syscall::Prctl,
        DenyErrno::Ignore,
        vec![vec![arg(0, ArgCmp::Eq(PR_SET_DUMPABLE))]],
    ));

    // 0 is PER_LINUX and 0xffffffff only queries the current persona.
    rules.push(deny(
        Syscall::Personality,
        DenyErrno::Eperm,
        vec![vec![arg(0, ArgCmp::Ne(0)), arg(0, ArgCmp::Ne(0xffff_ffff))]],
    ));

    if let Some(socket_rules) = socket_rules(sockets) {
        rules.push(deny(Syscall::Socket, DenyErrno::Eperm, socket_rules));
        rules.push(deny(
            Syscall::Socketpair,
            DenyErrno::Eperm,
            std::iter::once(vec![arg(0, ArgCmp::Ne(AF_UNIX))])
                .chain(unix_non_stream())
                .collect(),
        ));
        // The flags argument: sendto(fd, buf, len, flags, ..), sendmsg(fd, msg, flags),
        // sendmmsg(fd, vec, vlen, flags).
        for (syscall, index) in [
            (Syscall::Sendto, 3),
            (Syscall::Sendmsg, 2),
            (Syscall::Sendmmsg, 3),
        ] {
            let fast_open = ArgCmp::MaskedEq {
                mask: MSG_FASTOPEN,
                value: MSG_FASTOPEN,
            };
            rules.push(deny(
                syscall,
                DenyErrno::Eperm,
                vec![vec![arg(index, fast_open)]],
            ));
        }
    }
    rules
}

/// `AF_UNIX` sockets other than stream and seqpacket. Datagram sockets (and `SOCK_RAW`, which
/// the kernel turns into datagram for `AF_UNIX`) name their destination per message in
/// `sendto`/`sendmsg` — any socket path, in a `msghdr` out of seccomp's reach — and never pass
/// the connect gate.
fn unix_non_stream() -> Vec<Vec<ArgCond>> {
    (0..=SOCK_TYPE_MASK)
        .filter(|&ty| ty != SOCK_STREAM && ty != SOCK_SEQPACKET)
        .map(|ty| {
            vec![
                arg(0, ArgCmp::Eq(AF_UNIX)),
                arg(
                    1,
                    ArgCmp::MaskedEq {
                        mask: SOCK_TYPE_MASK,
                        value: ty,
                    },
                ),
            ]
        })
        .collect()
}

/// The `socket(domain, type, protocol)` alternatives to deny, `None` when unfiltered.
fn socket_rules(sockets: SocketFilter) -> Option<Vec<Vec<ArgCond>>> {
    let allow_udp = match sockets {
        SocketFilter::Unfiltered => return None,
        SocketFilter::TcpOnly { allow_udp } => allow_udp,
        SocketFilter::NoInet => false,
    };
    let mut alts = vec![
        // Any family other than the four known ones (packet, raw-capable, vsock, ...).
        vec![
            arg(0, ArgCmp::Ne(AF_UNIX)),
            arg(0, ArgCmp::Ne(AF_INET)),
            arg(0, ArgCmp::Ne(AF_INET6)),
            arg(0, ArgCmp::Ne(AF_NETLINK)),
        ],
        vec![
            arg(0, ArgCmp::Eq(AF_NETLINK)),
            arg(2, ArgCmp::Ne(NETLINK_ROUTE)),
        ],
    ];
    alts.extend(unix_non_stream());
    for family in [AF_INET, AF_INET6] {
        if sockets == SocketFilter::NoInet {
            alts.push(vec![arg(0, ArgCmp::Eq(family))]);
            continue;
        }
        // The masked type has no "not equal" form, so deny each disallowed type value.
        for ty in 0..=SOCK_TYPE_MASK {
            if ty == SOCK_STREAM || (allow_udp && ty == SOCK_DGRAM) {
                continue;
            }
            alts.push(vec![
                arg(0, ArgCmp::Eq(family)),
                arg(
                    1,
                    ArgCmp::MaskedEq {
                        mask: SOCK_TYPE_MASK,
                        value: ty,
                    },
                ),
            ]);
        }
        // TCP only as protocol 0 or IPPROTO_TCP: no MPTCP (262), SCTP or others.
        alts.push(vec![
            arg(0, ArgCmp::Eq(family)),
            arg(
                1,
                ArgCmp::MaskedEq {
                    mask: SOCK_TYPE_MASK,
                    value: SOCK_STREAM,
                },
            ),
            arg(2, ArgCmp::Ne(0)),
            arg(2, ArgCmp::Ne(IPPROTO_TCP)),
        ]);
        if allow_udp {
            alts.push(vec![
                arg(0, ArgCmp::Eq(family)),
                arg(
                    1,
                    ArgCmp::MaskedEq {
                        mask: SOCK_TYPE_MASK,
                        value: SOCK_DGRAM,
                    },
                ),
                arg(2, ArgCmp::Ne(0)),
                arg(2, ArgCmp::Ne(IPPROTO_UDP)),
            ]);
        }
    }
    Some(alts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fallback_refuses_other_processes_and_every_metadata_change() {
        let rules = fallback_rules();
        let outside = [4242, 0, 0, 0, 0, 0];
        let own = [0; 6];
        assert_eq!(
            denied(&rules, Syscall::Prlimit64, outside),
            Some(DenyErrno::Eperm)
        );
        assert_eq!(denied(&rules, Syscall::Prlimit64, own), None);
        // PRIO_USER with who 0 is every process of the user.
        assert!(denied(&rules, Syscall::Setpriority, [2, 0, 5, 0, 0, 0]).is_some());
        assert!(denied(&rules, Syscall::Setpriority, [0, 4242, 5, 0, 0, 0]).is_some());
        assert!(denied(&rules, Syscall::Setpriority, [0, 0, 5, 0, 0, 0]).is_none());
        assert!(denied(&rules, Syscall::IoprioSet, [1, 0, 0, 0, 0, 0]).is_none());
        assert!(denied(&rules, Syscall::IoprioSet, [2, 0, 0, 0, 0, 0]).is_some());
        assert!(denied(&rules, Syscall::Ioctl, [3, FS_IOC_SETFLAGS, 0, 0, 0, 0]).is_some());
        assert!(denied(&rules, Syscall::Ioctl, [3, 0x5401, 0, 0, 0, 0]).is_none());
        for s in [
            Syscall::Fchmodat,
            Syscall::Utimensat,
            Syscall::Fsetxattr,
            Syscall::Fchmod,
            Syscall::Fchownat,
            Syscall::Fchown,
        ] {
            assert_eq!(denied(&rules, s, own), Some(DenyErrno::Eperm), "{s:?}");
        }
    }

    const SOCK_NONBLOCK_CLOEXEC: u64 = 0o4000 | 0o2000000;
    const SOCK_RAW: u64 = 3;
    const AF_PACKET: u64 = 17;
    const IPPROTO_MPTCP: u64 = 262;

    fn denied(rules: &[SyscallRule], syscall: Syscall, args: [u64; 6]) -> Option<DenyErrno> {
        rules
            .iter()
            .find(|r| r.syscall == syscall && r.denies(&args))
            .map(|r| r.errno)
    }

    fn socket(rules: &[SyscallRule], family: u64, ty: u64, proto: u64) -> bool {
        denied(rules, Syscall::Socket, [family, ty, proto, 0, 0, 0]).is_some()
    }

    #[test]
    fn udp_is_denied_when_blocked() {
        let rules = seccomp_rules(SocketFilter::TcpOnly { allow_udp: false });
        assert!(socket(&rules, AF_INET, SOCK_DGRAM, 0));
        assert!(socket(
            &rules,
            AF_INET6,
            SOCK_DGRAM | SOCK_NONBLOCK_CLOEXEC,
            IPPROTO_UDP
        ));
        assert!(!socket(
            &rules,
            AF_INET,
            SOCK_STREAM | SOCK_NONBLOCK_CLOEXEC,
            0
        ));
        assert!(!socket(&rules, AF_INET6, SOCK_STREAM, IPPROTO_TCP));
    }

    #[test]
    fn udp_allowed_only_with_udp_protocols() {
        let rules = seccomp_rules(SocketFilter::TcpOnly { allow_udp: true });
        assert!(!socket(&rules, AF_INET, SOCK_DGRAM, 0));
        assert!(!socket(&rules, AF_INET6, SOCK_DGRAM, IPPROTO_UDP));
        // ICMP datagram sockets are not UDP.
        assert!(socket(&rules, AF_INET, SOCK_DGRAM, 1));
    }

    #[test]
    fn raw_packet_and_mptcp_are_denied() {
        let rules = seccomp_rules(SocketFilter::TcpOnly { allow_udp: true });
        assert!(socket(&rules, AF_INET, SOCK_RAW, 0));
        assert!(socket(&rules, AF_PACKET, SOCK_RAW, 0));
        assert!(socket(&rules, AF_INET, SOCK_STREAM, IPPROTO_MPTCP));
        assert!(socket(&rules, AF_NETLINK, SOCK_DGRAM, 9));
        assert!(!socket(&rules, AF_NETLINK, SOCK_DGRAM, NETLINK_ROUTE));
        assert!(socket(&rules, AF_UNIX, SOCK_DGRAM, 0));
        assert!(!socket(&rules, AF_UNIX, SOCK_STREAM, 0));
        assert!(!socket(&rules, AF_UNIX, SOCK_SEQPACKET, 0));
        assert!(
            socket(&rules, AF_UNIX, SOCK_RAW, 0),
            "AF_UNIX SOCK_RAW is a datagram socket"
        );
        assert!(denied(
            &rules,
            Syscall::Socketpair,
            [AF_UNIX, SOCK_DGRAM | 0x80000, 0, 0, 0, 0]
        )
        .is_some());
        assert!(denied(
            &rules,
            Syscall::Socketpair,
            [AF_INET, SOCK_STREAM, 0, 0, 0, 0]
        )
        .is_some());
        assert!(denied(
            &rules,
            Syscall::Socketpair,
            [AF_UNIX, SOCK_STREAM, 0, 0, 0, 0]
        )
        .is_none());
    }

    #[test]
    fn no_inet_denies_tcp_too() {
        let rules = seccomp_rules(SocketFilter::NoInet);
        assert!(socket(&rules, AF_INET, SOCK_STREAM, 0));
        assert!(socket(&rules, AF_INET6, SOCK_STREAM, 0));
        assert!(!socket(&rules, AF_UNIX, SOCK_STREAM, 0));
    }

    #[test]
    fn unrestricted_has_only_the_always_list() {
        let rules = seccomp_rules(SocketFilter::Unfiltered);
        assert!(rules.iter().all(|r| r.syscall != Syscall::Socket));
        assert!(!socket(&rules, AF_PACKET, SOCK_RAW, 0));
        assert_eq!(
            denied(&rules, Syscall::IoUringSetup, [0; 6]),
            Some(DenyErrno::Enosys)
        );
        assert_eq!(
            denied(&rules, Syscall::Clone3, [0; 6]),
            Some(DenyErrno::Enosys)
        );
        assert_eq!(
            denied(&rules, Syscall::Keyctl, [0; 6]),
            Some(DenyErrno::Eperm)
        );
    }

    #[test]
    fn clone_denied_only_with_namespace_flags() {
        let rules = seccomp_rules(SocketFilter::Unfiltered);
        // What fork() and pthread_create() pass.
        let fork_flags = 0x0120_0011;
        let thread_flags = 0x003d_0f00;
        assert!(denied(&rules, Syscall::Clone, [fork_flags, 0, 0, 0, 0, 0]).is_none());
        assert!(denied(&rules, Syscall::Clone, [thread_flags, 0, 0, 0, 0, 0]).is_none());
        for &(name, flag) in CLONE_NEW_FLAGS {
            assert!(
                denied(&rules, Syscall::Clone, [fork_flags | flag, 0, 0, 0, 0, 0]).is_some(),
                "{name}"
            );
        }
    }

    #[test]
    fn terminal_injection_and_personality() {
        let rules = seccomp_rules(SocketFilter::Unfiltered);
        assert!(denied(&rules, Syscall::Ioctl, [0, TIOCSTI, 0, 0, 0, 0]).is_some());
        assert!(denied(&rules, Syscall::Ioctl, [0, TIOCLINUX, 0, 0, 0, 0]).is_some());
        // TCGETS stays allowed.
        assert!(denied(&rules, Syscall::Ioctl, [0, 0x5401, 0, 0, 0, 0]).is_none());
        assert!(denied(&rules, Syscall::Personality, [0, 0, 0, 0, 0, 0]).is_none());
        assert!(denied(&rules, Syscall::Personality, [0xffff_ffff, 0, 0, 0, 0, 0]).is_none());
        // ADDR_NO_RANDOMIZE.
        assert!(denied(&rules, Syscall::Personality, [0x0004_0000, 0, 0, 0, 0, 0]).is_some());
    }

    /// Regression: `bug_tcp_fast_open_bypasses_landlock_connect_rules` (tests/run.rs).
    #[test]
    fn tcp_fast_open_is_denied_whenever_sockets_are_filtered() {
        const MSG_DONTWAIT: u64 = 0x40;
        for sockets in [
            SocketFilter::TcpOnly { allow_udp: true },
            SocketFilter::TcpOnly { allow_udp: false },
            SocketFilter::NoInet,
        ] {
            let rules = seccomp_rules(sockets);
            let flags = MSG_FASTOPEN | MSG_DONTWAIT;
            assert!(denied(&rules, Syscall::Sendto, [3, 0, 5, flags, 0, 16]).is_some());
            assert!(denied(&rules, Syscall::Sendmsg, [3, 0, flags, 0, 0, 0]).is_some());
            assert!(denied(&rules, Syscall::Sendmmsg, [3, 0, 1, flags, 0, 0]).is_some());
            // Ordinary sends stay allowed.
            assert!(denied(&rules, Syscall::Sendto, [3, 0, 5, MSG_DONTWAIT, 0, 0]).is_none());
            assert!(denied(&rules, Syscall::Sendmsg, [3, 0, 0, 0, 0, 0]).is_none());
            assert!(denied(&rules, Syscall::Sendmmsg, [3, 0, 1, 0, 0, 0]).is_none());
        }
        let open = seccomp_rules(SocketFilter::Unfiltered);
        assert!(denied(&open, Syscall::Sendto, [3, 0, 5, MSG_FASTOPEN, 0, 16]).is_none());
    }

    #[test]
    fn upper_argument_bits_are_ignored() {
        let rules = seccomp_rules(SocketFilter::NoInet);
        assert!(socket(&rules, AF_INET | (1 << 32), SOCK_STREAM, 0));
    }
}
