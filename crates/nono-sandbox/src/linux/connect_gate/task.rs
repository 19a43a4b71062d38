//! The sandbox's processes as the gate sees them: the calling task (pidfd, memory, working
//! directory), process ancestry, and the orphans nono reaps as their subreaper.

use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use super::{last_errno, sockopt, sockopt_as};

/// The task that made a call, with handles opened before the call is validated, so that
/// everything read through them belongs to that task even if its id is later reused.
pub(super) struct Task {
    pub(super) tid: libc::pid_t,
    pidfd: OwnedFd,
}

impl Task {
    pub(super) fn open(tid: libc::pid_t) -> Result<Task, i32> {
        /// `PIDFD_THREAD` (Linux 6.9+): a pidfd for this thread, not its process.
        const PIDFD_THREAD: libc::c_uint = libc::O_EXCL as libc::c_uint;
        // SAFETY: pidfd_open takes a pid and flags; the result is checked.
        let mut fd = unsafe { libc::syscall(libc::SYS_pidfd_open, tid, PIDFD_THREAD) };
        if fd < 0 && last_errno() == libc::EINVAL {
            // Older kernels: the process's pidfd (its threads share the descriptor table).
            let tgid = thread_group(tid).ok_or(libc::ESRCH)?;
            // SAFETY: as above.
            fd = unsafe { libc::syscall(libc::SYS_pidfd_open, tgid, 0) };
        }
        if fd < 0 {
            return Err(libc::ESRCH);
        }
        // SAFETY: a fresh descriptor we own.
        let pidfd = unsafe { OwnedFd::from_raw_fd(fd as RawFd) };
        Ok(Task { tid, pidfd })
    }

    /// A duplicate of the task's descriptor `fd` (the same open socket).
    pub(super) fn take_socket(&self, fd: i32) -> Result<OwnedFd, i32> {
        // SAFETY: pidfd_getfd takes a pidfd, a descriptor number and flags; checked.
        let dup = unsafe { libc::syscall(libc::SYS_pidfd_getfd, self.pidfd.as_raw_fd(), fd, 0) };
        if dup < 0 {
            return Err(match last_errno() {
                libc::EBADF => libc::EBADF,
                // Not allowed to look into the child: refuse rather than let it through.
                _ => libc::EACCES,
            });
        }
        // SAFETY: a fresh descriptor we own.
        let dup = unsafe { OwnedFd::from_raw_fd(dup as RawFd) };
        sockopt(&dup, libc::SO_TYPE)?; // ENOTSOCK, as the call would say
        Ok(dup)
    }

    /// The task's memory, for reading (and writing, for `accept`'s address).
    pub(super) fn memory(&self, write: bool) -> Result<std::fs::File, i32> {
        std::fs::OpenOptions::new()
            .read(true)
            .write(write)
            .open(format!("/proc/{}/mem", self.tid))
            .map_err(|e| match e.raw_os_error() {
                Some(libc::EACCES | libc::EPERM) => libc::EACCES,
                _ => libc::EFAULT,
            })
    }

    /// The task's working directory, for relative socket paths.
    pub(super) fn cwd(&self) -> Result<OwnedFd, i32> {
        self.open_dir("cwd")
    }

    /// The task's root directory: its own when it lives in the sandbox's mount namespace.
    pub(super) fn root(&self) -> Result<OwnedFd, i32> {
        self.open_dir("root")
    }

    /// Whether the task sees another mount namespace than nono (the sandbox's new root), so
    /// its paths must be resolved beneath its own root, not nono's.
    pub(super) fn in_private_mount_namespace(&self) -> bool {
        self.other_namespace("mnt")
    }

    fn open_dir(&self, which: &str) -> Result<OwnedFd, i32> {
        let path = CString::new(format!("/proc/{}/{which}", self.tid)).map_err(|_| libc::EINVAL)?;
        // SAFETY: NUL-terminated path; the result is checked.
        let fd = unsafe {
            libc::open(
                path.as_ptr(),
                libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC,
            )
        };
        if fd < 0 {
            return Err(libc::EACCES);
        }
        // SAFETY: a fresh descriptor we own.
        Ok(unsafe { OwnedFd::from_raw_fd(fd) })
    }

    /// Whether the task lives in another network namespace than nono (its private one).
    pub(super) fn in_private_network_namespace(&self) -> bool {
        self.other_namespace("net")
    }

    fn other_namespace(&self, kind: &str) -> bool {
        use std::os::unix::fs::MetadataExt;
        let theirs = std::fs::metadata(format!("/proc/{}/ns/{kind}", self.tid));
        let ours = std::fs::metadata(format!("/proc/self/ns/{kind}"));
        match (theirs, ours) {
            (Ok(a), Ok(b)) => (a.dev(), a.ino()) != (b.dev(), b.ino()),
            _ => false,
        }
    }
}

/// First processes of the sandboxes this process runs (a library user may run several): their
/// exit status belongs to whoever waits for them, never to the orphan reaper.
static ROOTS: std::sync::Mutex<Vec<libc::pid_t>> = std::sync::Mutex::new(Vec::new());

/// Records a sandbox's first process (at fork, before anything could reap it).
pub(crate) fn register_root(pid: libc::pid_t) {
    if let Ok(mut roots) = ROOTS.lock() {
        roots.push(pid);
    }
}

/// Forgets a sandbox's first process once it has been reaped.
pub(crate) fn unregister_root(pid: libc::pid_t) {
    if let Ok(mut roots) = ROOTS.lock() {
        roots.retain(|&p| p != pid);
    }
}

fn is_root(pid: libc::pid_t) -> bool {
    // A poisoned lock: treat everything as a root, i.e. reap nothing.
    ROOTS.lock().map_or(true, |roots| roots.contains(&pid))
}

/// Reaps exited sandbox processes that were re-parented to nono (it is their subreaper).
/// Never a sandbox's first process, whose status belongs to whoever waits for it, and never
/// nono's own helpers (credential commands), which their spawner reaps.
pub(super) fn reap_orphans() {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return;
    };
    for task in tasks.flatten() {
        let Ok(children) = std::fs::read_to_string(task.path().join("children")) else {
            continue;
        };
        for pid in children.split_whitespace().filter_map(|p| p.parse().ok()) {
            if !is_root(pid)
                && status_field(pid, "State:").is_some_and(|s| s.starts_with('Z'))
                && is_confined(pid)
            {
                // SAFETY: reaps exactly this exited child; its status is not needed.
                unsafe { libc::waitpid(pid, std::ptr::null_mut(), libc::WNOHANG) };
            }
        }
    }
}

/// `Tgid` of a thread, from `/proc/TID/status`.
fn thread_group(tid: libc::pid_t) -> Option<libc::pid_t> {
    proc_status_field(tid, "Tgid:")
}

/// `PPid` of a process.
fn parent_of(pid: libc::pid_t) -> Option<libc::pid_t> {
    proc_status_field(pid, "PPid:")
}

fn proc_status_field(pid: libc::pid_t, field: &str) -> Option<libc::pid_t> {
    status_field(pid, field).and_then(|v| v.parse().ok())
}

/// One field of `/proc/PID/status`, trimmed.
fn status_field(pid: libc::pid_t, field: &str) -> Option<String> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .map(|v| v.trim().to_string())
}

/// The pid of the process at the other end of `sock` (the one that listened).
pub(super) fn peer_pid(sock: &OwnedFd) -> Option<libc::pid_t> {
    let cred: libc::ucred = sockopt_as(sock, libc::SO_PEERCRED).ok()?;
    (cred.pid > 0).then_some(cred.pid)
}

/// Whether `pid` belongs to a sandbox: walking up its parents reaches a confined child of
/// nono (the sandbox's first process, or an orphan nono adopted as subreaper). A bare pid is
/// never trusted on its own: after the first process is gone its number may be reused.
pub(super) fn in_sandbox(mut pid: libc::pid_t) -> bool {
    let supervisor = std::process::id() as libc::pid_t;
    // Bounded: a process tree deeper than this is not worth following.
    for _ in 0..256 {
        match parent_of(pid) {
            Some(parent) if parent == supervisor => return is_confined(pid),
            Some(parent) if parent > 1 && parent != pid => pid = parent,
            _ => return false,
        }
    }
    false
}

/// Whether `pid` carries more seccomp filters than nono: every sandboxed process has nono's
/// filters on top of whatever nono itself runs under, while nono's own helpers inherit exactly
/// nono's.
pub(super) fn is_confined(pid: libc::pid_t) -> bool {
    let count =
        |p: libc::pid_t| -> Option<u32> { status_field(p, "Seccomp_filters:")?.parse().ok() };
    match (count(pid), count(std::process::id() as libc::pid_t)) {
        (Some(theirs), Some(ours)) => theirs > ours,
        _ => false,
    }
}
