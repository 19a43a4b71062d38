//! The sandbox's init: the first process of the sandbox runs the command as its child, reaps
//! every orphan, forwards the supervisor's signals, and when the command exits ends every
//! process that is left (SIGTERM, a short grace, SIGKILL) before reporting the command's
//! status. Nothing the sandbox starts outlives it.
//!
//! With a PID namespace this process is its PID 1: `kill(-1)` reaches exactly the sandbox, and
//! if this process dies (even by the SIGKILL its parent-death signal sends when nono is
//! killed) the kernel kills every other process of the namespace. Without one (fallback) it
//! is the subreaper of the sandbox's tree and sweeps its children until none is left.
//!
//! Runs between fork and exec rules: raw, async-signal-safe calls only, no allocation.

use std::os::fd::RawFd;

/// How long processes left behind by the command get to exit after SIGTERM.
pub(crate) const TEARDOWN_GRACE_MS: i64 = 500;

/// Sent to this process by [`crate::Killer`] in the fallback containment: SIGKILL everything
/// now, without the SIGTERM grace. `SIGRTMAX` on x86_64 and aarch64; never forwarded.
pub(crate) const KILL_REQUEST: libc::c_int = 64;

/// Signals sent to this process that belong to the command (nono forwards SIGTERM/SIGHUP
/// here). Terminal signals (SIGINT, SIGQUIT, SIGTSTP, SIGWINCH) reach the command directly
/// through the process group and are not forwarded twice.
const FORWARDED: &[libc::c_int] = &[libc::SIGTERM, libc::SIGHUP, libc::SIGUSR1, libc::SIGUSR2];

fn errno() -> libc::c_int {
    // SAFETY: __errno_location always returns a valid pointer to this thread's errno.
    unsafe { *libc::__errno_location() }
}

fn now_ms() -> i64 {
    // SAFETY: clock_gettime writes into the live local.
    unsafe {
        let mut ts: libc::timespec = std::mem::zeroed();
        libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts);
        ts.tv_sec * 1000 + ts.tv_nsec / 1_000_000
    }
}

/// Reaps every exited child; records the command's status. Returns false once there are no
/// children left at all.
unsafe fn reap(command: libc::pid_t, status: &mut Option<libc::c_int>) -> bool {
    loop {
        let mut st = 0;
        // SAFETY: waitpid writes into the live local.
        let pid = unsafe { libc::waitpid(-1, &mut st, libc::WNOHANG) };
        if pid > 0 {
            if pid == command {
                *status = Some(st);
            }
            continue;
        }
        return !(pid < 0 && errno() == libc::ECHILD);
    }
}

/// Signals every process of the sandbox but this one.
unsafe fn signal_all(pidns: bool, sig: libc::c_int) {
    // SAFETY: kill and the sweep only send signals.
    unsafe {
        if pidns {
            // In a PID namespace, -1 means every process of it except its init (us).
            libc::kill(-1, sig);
        } else {
            sweep_children(sig);
        }
    }
}

/// Fallback without a PID namespace: signals each current child, read from
/// `/proc/thread-self/children` (orphans re-parent to us, their subreaper, so repeated
/// sweeps reach the whole tree).
unsafe fn sweep_children(sig: libc::c_int) {
    let mut buf = [0u8; 4096];
    // SAFETY: a NUL-terminated literal path; reads into the live buffer.
    let n = unsafe {
        let fd = libc::open(
            c"/proc/thread-self/children".as_ptr(),
            libc::O_RDONLY | libc::O_CLOEXEC,
        );
        if fd < 0 {
            return;
        }
        let n = libc::read(fd, buf.as_mut_ptr().cast(), buf.len());
        libc::close(fd);
        n
    };
    let Ok(n) = usize::try_from(n) else {
        return;
    };
    let mut pid: libc::pid_t = 0;
    for &b in buf.iter().take(n).chain(std::iter::once(&b' ')) {
        if b.is_ascii_digit() {
            pid = pid
                .saturating_mul(10)
                .saturating_add(libc::pid_t::from(b - b'0'));
        } else {
            if pid > 0 {
                // SAFETY: kill sends a signal to our own child.
                unsafe { libc::kill(pid, sig) };
            }
            pid = 0;
        }
    }
}

/// Waits at most `ms` for a SIGCHLD or a [`KILL_REQUEST`] (all signals are blocked in this
/// process); true for a kill request.
unsafe fn wait_child_signal(ms: i64) -> bool {
    // SAFETY: sigset operations on a live local; sigtimedwait only reads them.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGCHLD);
        libc::sigaddset(&mut set, KILL_REQUEST);
        let ts = libc::timespec {
            tv_sec: ms / 1000,
            tv_nsec: (ms % 1000) * 1_000_000,
        };
        libc::sigtimedwait(&set, std::ptr::null_mut(), &ts) == KILL_REQUEST
    }
}

/// Runs the init loop for `command` and exits; the command's wait status goes to
/// `status_fd` (4 bytes, native endian) so the supervisor sees how it ended.
///
/// # Safety
/// Only in the sandbox's first process after forking the command, with every signal
/// blocked; `status_fd` is the write end of the supervisor's status pipe.
pub(crate) unsafe fn run(command: libc::pid_t, status_fd: RawFd, pidns: bool) -> ! {
    let mut status = None;
    let mut killed = false;
    // SAFETY: raw system calls on live locals, as documented above.
    unsafe {
        let mut all: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut all);
        while status.is_none() {
            if !reap(command, &mut status) {
                break;
            }
            if status.is_some() {
                break;
            }
            let sig = libc::sigwaitinfo(&all, std::ptr::null_mut());
            if sig == KILL_REQUEST {
                killed = true;
                break;
            }
            if FORWARDED.contains(&sig) {
                libc::kill(command, sig);
            }
        }
        if !killed {
            // The command is gone: end whatever it left behind.
            signal_all(pidns, libc::SIGTERM);
        }
        let deadline = now_ms() + TEARDOWN_GRACE_MS;
        while !killed {
            if !reap(command, &mut status) {
                break;
            }
            let left = deadline - now_ms();
            if left <= 0 {
                break;
            }
            if !pidns {
                signal_all(false, libc::SIGTERM);
            }
            killed = wait_child_signal(left.min(50));
        }
        loop {
            signal_all(pidns, libc::SIGKILL);
            if !reap(command, &mut status) {
                break;
            }
            wait_child_signal(10);
        }
        let st = status.unwrap_or(libc::SIGKILL);
        let bytes = st.to_ne_bytes();
        let _ = libc::write(status_fd, bytes.as_ptr().cast(), bytes.len());
        libc::_exit(0)
    }
}
