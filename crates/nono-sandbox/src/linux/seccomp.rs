//! Compiling the seccomp rule table to BPF (with seccompiler, before fork).

use std::collections::BTreeMap;

use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
    SeccompRule, TargetArch,
};

use crate::error::SandboxError;
use crate::seccomp::{seccomp_rules, ArgCmp, DenyErrno, SocketFilter, Syscall};

// Numbers from the unified table (identical on x86_64 and aarch64), newer than some libc
// releases.
const SYS_PROCESS_MADVISE: i64 = 440;
const SYS_FCHMODAT2: i64 = 452;
const SYS_SETXATTRAT: i64 = 463;
const SYS_REMOVEXATTRAT: i64 = 466;
const SYS_FILE_SETATTR: i64 = 469;

/// The syscall number (`c_long` is `i64` on both supported 64-bit architectures); `None` for
/// a legacy call this architecture does not have (aarch64 has no `chmod`, `utimes`, ...).
fn number(syscall: Syscall) -> Option<i64> {
    Some(match syscall {
        Syscall::Prlimit64 => libc::SYS_prlimit64,
        Syscall::Setpriority => libc::SYS_setpriority,
        Syscall::SchedSetaffinity => libc::SYS_sched_setaffinity,
        Syscall::SchedSetscheduler => libc::SYS_sched_setscheduler,
        Syscall::SchedSetparam => libc::SYS_sched_setparam,
        Syscall::SchedSetattr => libc::SYS_sched_setattr,
        Syscall::IoprioSet => libc::SYS_ioprio_set,
        Syscall::ProcessMadvise => SYS_PROCESS_MADVISE,
        Syscall::MigratePages => libc::SYS_migrate_pages,
        Syscall::MovePages => libc::SYS_move_pages,
        Syscall::GetRobustList => libc::SYS_get_robust_list,
        Syscall::Fchmod => libc::SYS_fchmod,
        Syscall::Fchmodat => libc::SYS_fchmodat,
        Syscall::Fchmodat2 => SYS_FCHMODAT2,
        Syscall::Utimensat => libc::SYS_utimensat,
        Syscall::Setxattr => libc::SYS_setxattr,
        Syscall::Lsetxattr => libc::SYS_lsetxattr,
        Syscall::Fsetxattr => libc::SYS_fsetxattr,
        Syscall::Setxattrat => SYS_SETXATTRAT,
        Syscall::Removexattr => libc::SYS_removexattr,
        Syscall::Lremovexattr => libc::SYS_lremovexattr,
        Syscall::Fremovexattr => libc::SYS_fremovexattr,
        Syscall::Removexattrat => SYS_REMOVEXATTRAT,
        Syscall::Fchown => libc::SYS_fchown,
        Syscall::Fchownat => libc::SYS_fchownat,
        Syscall::FileSetattr => SYS_FILE_SETATTR,
        #[cfg(target_arch = "x86_64")]
        Syscall::Chown => libc::SYS_chown,
        #[cfg(target_arch = "x86_64")]
        Syscall::Lchown => libc::SYS_lchown,
        #[cfg(not(target_arch = "x86_64"))]
        Syscall::Chown | Syscall::Lchown => return None,
        #[cfg(target_arch = "x86_64")]
        Syscall::Chmod => libc::SYS_chmod,
        #[cfg(target_arch = "x86_64")]
        Syscall::Utime => libc::SYS_utime,
        #[cfg(target_arch = "x86_64")]
        Syscall::Utimes => libc::SYS_utimes,
        #[cfg(target_arch = "x86_64")]
        Syscall::Futimesat => libc::SYS_futimesat,
        #[cfg(not(target_arch = "x86_64"))]
        Syscall::Chmod | Syscall::Utime | Syscall::Utimes | Syscall::Futimesat => return None,
        Syscall::IoUringSetup => libc::SYS_io_uring_setup,
        Syscall::IoUringEnter => libc::SYS_io_uring_enter,
        Syscall::IoUringRegister => libc::SYS_io_uring_register,
        Syscall::Ptrace => libc::SYS_ptrace,
        Syscall::ProcessVmReadv => libc::SYS_process_vm_readv,
        Syscall::ProcessVmWritev => libc::SYS_process_vm_writev,
        Syscall::Bpf => libc::SYS_bpf,
        Syscall::PerfEventOpen => libc::SYS_perf_event_open,
        Syscall::Keyctl => libc::SYS_keyctl,
        Syscall::AddKey => libc::SYS_add_key,
        Syscall::RequestKey => libc::SYS_request_key,
        Syscall::KexecLoad => libc::SYS_kexec_load,
        Syscall::KexecFileLoad => libc::SYS_kexec_file_load,
        Syscall::InitModule => libc::SYS_init_module,
        Syscall::FinitModule => libc::SYS_finit_module,
        Syscall::DeleteModule => libc::SYS_delete_module,
        Syscall::Mount => libc::SYS_mount,
        Syscall::Umount2 => libc::SYS_umount2,
        Syscall::PivotRoot => libc::SYS_pivot_root,
        Syscall::MoveMount => libc::SYS_move_mount,
        Syscall::OpenTree => libc::SYS_open_tree,
        Syscall::Fsopen => libc::SYS_fsopen,
        Syscall::Fsmount => libc::SYS_fsmount,
        Syscall::Fspick => libc::SYS_fspick,
        Syscall::Unshare => libc::SYS_unshare,
        Syscall::Setns => libc::SYS_setns,
        Syscall::OpenByHandleAt => libc::SYS_open_by_handle_at,
        Syscall::NameToHandleAt => libc::SYS_name_to_handle_at,
        Syscall::Userfaultfd => libc::SYS_userfaultfd,
        Syscall::Clone3 => libc::SYS_clone3,
        Syscall::Clone => libc::SYS_clone,
        Syscall::Ioctl => libc::SYS_ioctl,
        Syscall::Personality => libc::SYS_personality,
        Syscall::Prctl => libc::SYS_prctl,
        Syscall::Socket => libc::SYS_socket,
        Syscall::Socketpair => libc::SYS_socketpair,
        Syscall::Sendto => libc::SYS_sendto,
        Syscall::Sendmsg => libc::SYS_sendmsg,
        Syscall::Sendmmsg => libc::SYS_sendmmsg,
    })
}

fn compile_err(source: seccompiler::BackendError) -> SandboxError {
    SandboxError::SeccompCompile { source }
}

/// Compiles the table for `sockets` into the programs the child loads, in order.
///
/// seccompiler gives one action per filter, so EPERM and ENOSYS rules become two filters; the
/// kernel runs every filter and a syscall matched by one gets that filter's errno. On x86_64 a
/// third, hand-written filter refuses x32-ABI syscall numbers, which share the x86_64 audit
/// architecture and would otherwise slip past the number checks.
pub(super) fn compile(sockets: SocketFilter) -> Result<Vec<Vec<libc::sock_filter>>, SandboxError> {
    compile_rules(seccomp_rules(sockets), true)
}

/// The fallback-containment denials ([`crate::seccomp::fallback_rules`]) as extra programs.
pub(super) fn compile_fallback() -> Result<Vec<Vec<libc::sock_filter>>, SandboxError> {
    compile_rules(crate::seccomp::fallback_rules(), false)
}

fn compile_rules(
    table: Vec<crate::seccomp::SyscallRule>,
    with_x32_guard: bool,
) -> Result<Vec<Vec<libc::sock_filter>>, SandboxError> {
    let arch = TargetArch::try_from(std::env::consts::ARCH).map_err(|_| {
        SandboxError::UnsupportedArch {
            arch: std::env::consts::ARCH,
        }
    })?;
    let mut by_errno: [(DenyErrno, BTreeMap<i64, Vec<SeccompRule>>); 3] = [
        (DenyErrno::Eperm, BTreeMap::new()),
        (DenyErrno::Enosys, BTreeMap::new()),
        (DenyErrno::Ignore, BTreeMap::new()),
    ];
    for rule in table {
        let Some(nr) = number(rule.syscall) else {
            continue;
        };
        let mut alternatives = Vec::with_capacity(rule.when_any.len());
        for conds in &rule.when_any {
            let conds = conds
                .iter()
                .map(|c| {
                    let (op, value) = match c.cmp {
                        ArgCmp::Eq(v) => (SeccompCmpOp::Eq, v),
                        ArgCmp::Ne(v) => (SeccompCmpOp::Ne, v),
                        ArgCmp::MaskedEq { mask, value } => (SeccompCmpOp::MaskedEq(mask), value),
                    };
                    SeccompCondition::new(c.index, SeccompCmpArgLen::Dword, op, value)
                })
                .collect::<Result<Vec<_>, _>>()
                .map_err(compile_err)?;
            alternatives.push(SeccompRule::new(conds).map_err(compile_err)?);
        }
        let slot = by_errno
            .iter_mut()
            .find(|(errno, _)| *errno == rule.errno)
            .map(|(_, map)| map);
        if let Some(map) = slot {
            map.insert(nr, alternatives);
        }
    }

    let mut programs = Vec::with_capacity(3);
    if with_x32_guard {
        if let Some(guard) = x32_guard() {
            programs.push(guard);
        }
    }
    for (errno, rules) in by_errno {
        if rules.is_empty() {
            continue;
        }
        let code = match errno {
            DenyErrno::Eperm => libc::EPERM,
            DenyErrno::Enosys => libc::ENOSYS,
            DenyErrno::Ignore => 0,
        };
        let filter = SeccompFilter::new(
            rules,
            SeccompAction::Allow,
            SeccompAction::Errno(code.unsigned_abs()),
            arch,
        )
        .map_err(compile_err)?;
        let program: BpfProgram = filter.try_into().map_err(compile_err)?;
        programs.push(
            program
                .into_iter()
                .map(|i| libc::sock_filter {
                    code: i.code,
                    jt: i.jt,
                    jf: i.jf,
                    k: i.k,
                })
                .collect(),
        );
    }
    Ok(programs)
}

/// x86_64 only: `ENOSYS` for syscall numbers with the x32 bit (`__X32_SYSCALL_BIT`) set.
/// The architecture itself is checked (and mismatches killed) by the seccompiler filters.
#[cfg(target_arch = "x86_64")]
fn x32_guard() -> Option<Vec<libc::sock_filter>> {
    const X32_SYSCALL_BIT: u32 = 0x4000_0000;
    const NR_OFFSET: u32 = 0; // offsetof(struct seccomp_data, nr)
    let stmt = |code: u32, k: u32| libc::sock_filter {
        code: code as u16,
        jt: 0,
        jf: 0,
        k,
    };
    let jump = |code: u32, k: u32, jt: u8, jf: u8| libc::sock_filter {
        code: code as u16,
        jt,
        jf,
        k,
    };
    Some(vec![
        stmt(libc::BPF_LD | libc::BPF_W | libc::BPF_ABS, NR_OFFSET),
        jump(
            libc::BPF_JMP | libc::BPF_JSET | libc::BPF_K,
            X32_SYSCALL_BIT,
            0,
            1,
        ),
        stmt(
            libc::BPF_RET | libc::BPF_K,
            libc::SECCOMP_RET_ERRNO | libc::ENOSYS.unsigned_abs(),
        ),
        stmt(libc::BPF_RET | libc::BPF_K, libc::SECCOMP_RET_ALLOW),
    ])
}

#[cfg(not(target_arch = "x86_64"))]
fn x32_guard() -> Option<Vec<libc::sock_filter>> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_mode_compiles_within_bpf_limits() {
        for sockets in [
            SocketFilter::Unfiltered,
            SocketFilter::TcpOnly { allow_udp: false },
            SocketFilter::TcpOnly { allow_udp: true },
            SocketFilter::NoInet,
        ] {
            let programs = compile(sockets).expect("compile");
            assert!(programs.len() >= 2);
            // BPF_MAXINSNS.
            assert!(programs.iter().all(|p| !p.is_empty() && p.len() <= 4096));
        }
    }

    #[test]
    fn pure_constants_match_libc() {
        use crate::seccomp as s;
        assert_eq!(s::AF_UNIX, libc::AF_UNIX as u64);
        assert_eq!(s::AF_INET, libc::AF_INET as u64);
        assert_eq!(s::AF_INET6, libc::AF_INET6 as u64);
        assert_eq!(s::AF_NETLINK, libc::AF_NETLINK as u64);
        assert_eq!(s::SOCK_STREAM, libc::SOCK_STREAM as u64);
        assert_eq!(s::SOCK_DGRAM, libc::SOCK_DGRAM as u64);
        assert_eq!(s::IPPROTO_TCP, libc::IPPROTO_TCP as u64);
        assert_eq!(s::IPPROTO_UDP, libc::IPPROTO_UDP as u64);
        assert_eq!(s::TIOCSTI, libc::TIOCSTI);
        assert_eq!(s::MSG_FASTOPEN, libc::MSG_FASTOPEN as u64);
        assert_eq!(s::TIOCLINUX, libc::TIOCLINUX);
        for &(name, flag) in s::CLONE_NEW_FLAGS {
            let expected = match name {
                "CLONE_NEWNS" => libc::CLONE_NEWNS,
                "CLONE_NEWCGROUP" => libc::CLONE_NEWCGROUP,
                "CLONE_NEWUTS" => libc::CLONE_NEWUTS,
                "CLONE_NEWIPC" => libc::CLONE_NEWIPC,
                "CLONE_NEWUSER" => libc::CLONE_NEWUSER,
                "CLONE_NEWPID" => libc::CLONE_NEWPID,
                "CLONE_NEWNET" => libc::CLONE_NEWNET,
                other => panic!("unexpected {other}"),
            };
            assert_eq!(flag, expected as u64, "{name}");
        }
    }
}
