//! The seccomp program that hands calls to the gate.

#[cfg(target_arch = "x86_64")]
const AUDIT_ARCH_NATIVE: u32 = 0xC000_003E;
#[cfg(target_arch = "aarch64")]
const AUDIT_ARCH_NATIVE: u32 = 0xC000_00B7;

/// The seccomp program that sends `connect` (and, with `accept`, `accept`/`accept4`) to the
/// supervisor and allows everything else. Calls of another architecture are allowed here; the
/// main filters kill them.
pub(crate) fn notify_filter(accept: bool) -> Vec<libc::sock_filter> {
    const ARCH_OFFSET: u32 = 4; // offsetof(struct seccomp_data, arch)
    const NR_OFFSET: u32 = 0; // offsetof(struct seccomp_data, nr)
    let stmt = |code: u32, k: u32| libc::sock_filter {
        code: code as u16,
        jt: 0,
        jf: 0,
        k,
    };
    let mut calls = vec![libc::SYS_connect as u32];
    if accept {
        calls.extend([libc::SYS_accept as u32, libc::SYS_accept4 as u32]);
    }
    let n = calls.len();
    // Layout: [0] load arch, [1] arch check, [2] load nr, [3..3+n] one jump per call,
    // [3+n] allow, [4+n] notify. Offsets are relative to the next instruction.
    let mut prog = vec![
        stmt(libc::BPF_LD | libc::BPF_W | libc::BPF_ABS, ARCH_OFFSET),
        libc::sock_filter {
            code: (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16,
            jt: 0,
            jf: (n + 1) as u8, // to allow
            k: AUDIT_ARCH_NATIVE,
        },
        stmt(libc::BPF_LD | libc::BPF_W | libc::BPF_ABS, NR_OFFSET),
    ];
    for (i, nr) in calls.iter().enumerate() {
        prog.push(libc::sock_filter {
            code: (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16,
            jt: (n - i) as u8, // to notify
            jf: 0,
            k: *nr,
        });
    }
    prog.push(stmt(libc::BPF_RET | libc::BPF_K, libc::SECCOMP_RET_ALLOW));
    prog.push(stmt(
        libc::BPF_RET | libc::BPF_K,
        libc::SECCOMP_RET_USER_NOTIF,
    ));
    prog
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs the filter program over (arch, nr) like the kernel would; returns the action.
    fn run(prog: &[libc::sock_filter], arch: u32, nr: u32) -> u32 {
        let (mut pc, mut acc) = (0usize, 0u32);
        loop {
            let i = prog[pc];
            let code = u32::from(i.code);
            if code == libc::BPF_LD | libc::BPF_W | libc::BPF_ABS {
                acc = if i.k == 4 { arch } else { nr };
                pc += 1;
            } else if code == libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K {
                pc += 1 + usize::from(if acc == i.k { i.jt } else { i.jf });
            } else {
                return i.k;
            }
        }
    }

    #[test]
    fn filter_notifies_only_native_connect_and_accept() {
        let native = AUDIT_ARCH_NATIVE;
        for accept in [false, true] {
            let f = notify_filter(accept);
            let notify = libc::SECCOMP_RET_USER_NOTIF;
            let allow = libc::SECCOMP_RET_ALLOW;
            assert_eq!(run(&f, native, libc::SYS_connect as u32), notify);
            let want = if accept { notify } else { allow };
            assert_eq!(run(&f, native, libc::SYS_accept as u32), want);
            assert_eq!(run(&f, native, libc::SYS_accept4 as u32), want);
            assert_eq!(run(&f, native, libc::SYS_read as u32), allow);
            assert_eq!(run(&f, native, libc::SYS_sendto as u32), allow);
            // Other architectures are the main filter's business (it kills them).
            assert_eq!(run(&f, 0x4000_0003, libc::SYS_connect as u32), allow);
        }
    }
}
