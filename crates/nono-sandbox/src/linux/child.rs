//! Forking the confined child and following it through exec to its exit.
//!
//! Everything the child needs is built before `fork`; between `fork` and `execve` the child
//! makes only raw, async-signal-safe system calls and never allocates, locks or unwinds.

use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::sync::Arc;

use nix::fcntl::OFlag;

use crate::error::{ChildStage, SandboxError};
use crate::exec::{ChildExit, ExecSpec};
use crate::PreparedSandbox;

use super::connect_gate;
use super::init;
use super::netns::{self, NetnsOutcome, NetnsPlan, PrivateNetwork};
use super::rootfs::{self, RootSetup};

/// Status the child exits with when it fails before exec (like `env` and `nice`).
const SETUP_FAILED: libc::c_int = 125;
/// `_LINUX_CAPABILITY_VERSION_3`: 64-bit capability sets in two 32-bit words.
const LINUX_CAPABILITY_VERSION_3: u32 = 0x2008_0522;

/// `struct __user_cap_header_struct`.
#[repr(C)]
struct CapHeader {
    version: u32,
    pid: libc::c_int,
}

/// `struct __user_cap_data_struct`; all zero = no capability at all.
#[repr(C)]
#[derive(Clone, Copy, Default)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

/// Stage code the child writes when `execve` itself fails.
const STAGE_EXEC: u32 = 100;
/// Stage codes of the containment steps: identity maps of the user namespace, forking the
/// command under the sandbox's init, the new root's fixed steps and Landlock rules for its
/// fresh objects; planned root steps report `STAGE_ROOT_STEP + index`.
const STAGE_ID_MAPS: u32 = 200;
const STAGE_FORK: u32 = 201;
const STAGE_ROOT_STAGING: u32 = 202;
const STAGE_ROOT_PIVOT: u32 = 203;
const STAGE_ROOT_RULES: u32 = 204;
/// Stage code of changing to [`ExecSpec::cwd`] in the command.
const STAGE_CWD: u32 = 205;
const STAGE_ROOT_STEP: u32 = 1000;
/// Every fork of the sandbox's first process returns a pidfd for it (Linux 5.2+), so signals
/// never reach a recycled PID.
const PIDFD_FLAGS: libc::c_ulong = (libc::CLONE_PIDFD | libc::SIGCHLD) as libc::c_ulong;
/// `CLONE_NEWNS | CLONE_NEWPID`, and `CLONE_NEWUSER` for an unprivileged supervisor.
const NAMESPACE_FLAGS: libc::c_ulong = (libc::CLONE_NEWNS | libc::CLONE_NEWPID) as libc::c_ulong;
const USERNS_FLAG: libc::c_ulong = libc::CLONE_NEWUSER as libc::c_ulong;
/// A child report: stage code then errno, native endian.
const REPORT_LEN: usize = 8;
/// Message kind carrying the connect gate's notification listener.
const MSG_GATE: u8 = b'G';

/// A child that has been forked into the sandbox.
///
/// It waits for [`release`](SandboxedChild::release) before confining itself and executing
/// the program, so the supervisor can finish its own setup (for example loading secrets)
/// after the fork, keeping those out of the child's memory. Dropping an unreleased child makes
/// it exit with status 125 (and reaps it); dropping a released one leaves it running.
#[derive(Debug)]
pub struct SandboxedChild {
    pid: libc::pid_t,
    /// Refers to the sandbox's first process for as long as anyone holds it, reaped or not.
    pidfd: Arc<OwnedFd>,
    program: PathBuf,
    /// [`ExecSpec::cwd`], for errors.
    cwd: Option<PathBuf>,
    go: Option<OwnedFd>,
    exec_errors: Option<OwnedFd>,
    exit: Option<ChildExit>,
    netns: Option<NetnsOutcome>,
    /// Where the child sends its connect-gate listener, and the policy to serve it with.
    gate: Option<(OwnedFd, std::sync::Arc<connect_gate::GatePolicy>)>,
    /// The sandbox's init writes the command's wait status here before it exits.
    status: Option<OwnedFd>,
    /// Which containment is in force.
    containment: Containment,
    /// What each step of the new root did, for errors.
    root: Option<RootSetup>,
}

/// How the sandbox's processes are contained beyond Landlock and seccomp.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Containment {
    /// Own PID and mount namespaces (and a user namespace when nono is unprivileged): a new
    /// root with only the grants, its own `/proc`, `/dev` and `/tmp`; every process of the
    /// sandbox ends with it, even when nono is killed.
    Namespaces {
        /// A user namespace was needed (nono runs unprivileged).
        user: bool,
    },
    /// No namespaces could be created (the OS error says why): seccomp refuses metadata
    /// changes and calls on other processes, and the sandbox's first process sweeps the
    /// tree at exit (a SIGKILL of nono leaves what the sandbox started running).
    Fallback {
        /// Why the namespaces could not be created.
        reason: String,
    },
}

impl std::fmt::Display for Containment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Containment::Namespaces { user: false } => {
                f.write_str("containment: PID and mount namespaces (private root, /proc, /dev, /tmp)")
            }
            Containment::Namespaces { user: true } => f.write_str(
                "containment: user, PID and mount namespaces (private root, /proc, /dev, /tmp)",
            ),
            Containment::Fallback { reason } => write!(
                f,
                "containment: FALLBACK without namespaces ({reason}): seccomp refuses chmod/utimes/xattr and calls on other processes, the process tree is swept at exit"
            ),
        }
    }
}

/// Raw values the child uses; plain data so nothing is dropped or allocated after fork.
struct ChildContext<'a> {
    parent: libc::pid_t,
    go_read: RawFd,
    go_write: RawFd,
    err_read: RawFd,
    err_write: RawFd,
    ruleset: RawFd,
    filters: &'a [libc::sock_fprog],
    program: &'a CString,
    argv: &'a [*const libc::c_char],
    envp: &'a [*const libc::c_char],
    /// Private network namespace to set up, and the child's / parent's socket-pair ends.
    netns: Option<&'a NetnsPlan>,
    netns_child: RawFd,
    netns_parent: RawFd,
    /// The connect-gate program and the socket-pair ends its listener travels over.
    gate_filter: &'a libc::sock_fprog,
    gate_child: RawFd,
    gate_parent: RawFd,
    /// Extra filters of the fallback containment.
    fallback_filters: &'a std::cell::OnceCell<Vec<libc::sock_fprog>>,
    /// [`ExecSpec::cwd`] for the command, if any.
    cwd: Option<&'a CString>,
    /// Descriptors for the command's 0, 1 and 2; -1 inherits.
    stdio: [RawFd; 3],
    /// The status pipe's ends (the init writes the command's status).
    status_read: RawFd,
    status_write: RawFd,
    /// The new root to build, in the namespace modes.
    root: Option<&'a RootSetup>,
    /// Set for each clone attempt: the child has its own PID/mount namespaces, and a user one.
    namespaces: bool,
    userns: bool,
    /// Landlock can scope signals (ABI 6).
    scopes: bool,
    /// `"UID UID 1"` / `"GID GID 1"` for the user namespace.
    uid_map: &'a [u8],
    gid_map: &'a [u8],
}

fn c_string(what: &'static str, bytes: &[u8]) -> Result<CString, SandboxError> {
    CString::new(bytes).map_err(|_| SandboxError::InvalidExecSpec {
        what,
        detail: format!("{:?} contains a NUL byte", String::from_utf8_lossy(bytes)),
    })
}

fn os_err(operation: &'static str) -> impl FnOnce(nix::Error) -> SandboxError {
    move |e| SandboxError::Os {
        operation,
        source: std::io::Error::from(e),
    }
}

fn null_terminated(strings: &[CString]) -> Vec<*const libc::c_char> {
    strings
        .iter()
        .map(|s| s.as_ptr())
        .chain(std::iter::once(std::ptr::null()))
        .collect()
}

pub(crate) fn spawn(
    prepared: &PreparedSandbox,
    spec: &ExecSpec,
    private_network: Option<&PrivateNetwork>,
) -> Result<SandboxedChild, SandboxError> {
    let netns_plan = private_network.map(NetnsPlan::new);
    let netns_pair = match netns_plan {
        Some(_) => Some(
            nix::sys::socket::socketpair(
                nix::sys::socket::AddressFamily::Unix,
                nix::sys::socket::SockType::SeqPacket,
                None,
                nix::sys::socket::SockFlag::SOCK_CLOEXEC,
            )
            .map_err(os_err("socketpair"))?,
        ),
        None => None,
    };
    let program = c_string("program path", spec.program.as_os_str().as_bytes())?;
    let argv = spec
        .argv
        .iter()
        .map(|a| c_string("argument", a.as_bytes()))
        .collect::<Result<Vec<_>, _>>()?;
    let mut env = Vec::with_capacity(spec.env.len());
    for (key, value) in &spec.env {
        let key = key.as_bytes();
        if key.is_empty() || key.contains(&b'=') {
            return Err(SandboxError::InvalidExecSpec {
                what: "environment variable name",
                detail: format!(
                    "{:?} is empty or contains '='",
                    String::from_utf8_lossy(key)
                ),
            });
        }
        let mut entry = key.to_vec();
        entry.push(b'=');
        entry.extend_from_slice(value.as_bytes());
        env.push(c_string("environment entry", &entry)?);
    }
    let argv_ptrs = null_terminated(&argv);
    let envp_ptrs = null_terminated(&env);
    let cwd = match &spec.cwd {
        Some(dir) if !dir.is_absolute() => {
            return Err(SandboxError::InvalidExecSpec {
                what: "working directory",
                detail: format!(
                    "{} is relative; give an absolute path as seen inside the sandbox",
                    dir.display()
                ),
            })
        }
        Some(dir) => Some(c_string("working directory", dir.as_os_str().as_bytes())?),
        None => None,
    };
    let raw = |fd: &Option<OwnedFd>| fd.as_ref().map_or(-1, AsRawFd::as_raw_fd);
    let stdio = [
        raw(&spec.stdio.stdin),
        raw(&spec.stdio.stdout),
        raw(&spec.stdio.stderr),
    ];

    let inner = &prepared.inner;
    let fprogs = fprogs_of(&inner.filters)?;
    // Filled only before a fallback fork.
    let fallback_fprogs: std::cell::OnceCell<Vec<libc::sock_fprog>> = std::cell::OnceCell::new();
    let ruleset = inner.take_ruleset()?;
    let force_fallback = std::env::var_os(crate::support::TEST_NO_NAMESPACES_ENV)
        .is_some_and(|v| !v.is_empty() && v != "0");
    let root = if force_fallback {
        None
    } else {
        Some(RootSetup::new(
            &inner.plan.fs,
            inner.share_tmp,
            inner.masks,
        )?)
    };
    let (uid_map, gid_map) = netns::identity_maps();
    let (status_read, status_write) =
        nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(os_err("pipe2"))?;

    let gate_fprog = libc::sock_fprog {
        len: u16::try_from(inner.gate_filter.len()).map_err(|_| SandboxError::InvalidExecSpec {
            what: "seccomp filter",
            detail: "longer than BPF_MAXINSNS".into(),
        })?,
        filter: inner.gate_filter.as_ptr().cast_mut(),
    };
    let (gate_parent, gate_child) = nix::sys::socket::socketpair(
        nix::sys::socket::AddressFamily::Unix,
        nix::sys::socket::SockType::SeqPacket,
        None,
        nix::sys::socket::SockFlag::SOCK_CLOEXEC,
    )
    .map_err(os_err("socketpair"))?;

    let (go_read, go_write) = nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(os_err("pipe2"))?;
    let (err_read, err_write) = nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(os_err("pipe2"))?;

    let mut ctx = ChildContext {
        parent: std::process::id() as libc::pid_t,
        go_read: go_read.as_raw_fd(),
        go_write: go_write.as_raw_fd(),
        err_read: err_read.as_raw_fd(),
        err_write: err_write.as_raw_fd(),
        ruleset: ruleset.as_raw_fd(),
        filters: &fprogs,
        program: &program,
        argv: &argv_ptrs,
        envp: &envp_ptrs,
        netns: netns_plan.as_ref(),
        netns_child: netns_pair.as_ref().map_or(-1, |(_, c)| c.as_raw_fd()),
        netns_parent: netns_pair.as_ref().map_or(-1, |(p, _)| p.as_raw_fd()),
        gate_filter: &gate_fprog,
        gate_child: gate_child.as_raw_fd(),
        gate_parent: gate_parent.as_raw_fd(),
        fallback_filters: &fallback_fprogs,
        cwd: cwd.as_ref(),
        stdio,
        status_read: status_read.as_raw_fd(),
        status_write: status_write.as_raw_fd(),
        root: root.as_ref(),
        namespaces: false,
        userns: false,
        scopes: inner.plan.scopes,
        uid_map: &uid_map,
        gid_map: &gid_map,
    };

    // Orphans of the sandbox (daemons that double-fork) are re-parented to nono rather than
    // init: they stay nono's descendants, which ptrace-based access (pidfd_getfd, /proc/PID/mem
    // under Yama scope 1) needs, and the connect gate can still tell they are the sandbox's.
    // SAFETY: prctl with integer arguments only.
    if unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) } != 0 {
        return Err(SandboxError::Os {
            operation: "prctl(PR_SET_CHILD_SUBREAPER)",
            source: std::io::Error::last_os_error(),
        });
    }

    // Namespaces first: without a user namespace when we may create the others (root), with
    // one otherwise; plain fork (fallback containment) when the kernel refuses both.
    let mut attempts: Vec<(libc::c_ulong, bool)> = Vec::new();
    if root.is_some() {
        if nix::unistd::geteuid().is_root() {
            attempts.push((NAMESPACE_FLAGS, false));
        }
        attempts.push((NAMESPACE_FLAGS | USERNS_FLAG, true));
    }
    let mut refused: Option<std::io::Error> = None;
    let mut pid = -1;
    let mut pidfd: libc::c_int = -1;
    // Until the child has reset its handlers, a signal must not run one of the caller's
    // (a Python or tokio handler would write to descriptors the parent shares).
    let blocked = SignalsBlocked::new()?;
    for (flags, userns) in attempts {
        ctx.namespaces = true;
        ctx.userns = userns;
        pid = clone_child(flags, &mut pidfd, &ctx);
        if pid > 0 {
            break;
        }
        refused = Some(std::io::Error::last_os_error());
    }
    drop(blocked);
    let containment = if pid > 0 {
        Containment::Namespaces { user: ctx.userns }
    } else {
        let _ = fallback_fprogs.set(fprogs_of(inner.fallback_filters()?)?);
        ctx.namespaces = false;
        ctx.userns = false;
        let blocked = SignalsBlocked::new()?;
        pid = clone_child(0, &mut pidfd, &ctx);
        drop(blocked);
        if pid < 0 {
            return Err(SandboxError::Os {
                operation: "fork (clone with CLONE_PIDFD, Linux 5.2+)",
                source: std::io::Error::last_os_error(),
            });
        }
        Containment::Fallback {
            reason: match refused {
                Some(e) => format!("the kernel refused new namespaces: {e}"),
                None => format!("{}=1", crate::support::TEST_NO_NAMESPACES_ENV),
            },
        }
    };
    // SAFETY: clone succeeded, so the kernel stored a new close-on-exec pidfd that nothing
    // else owns.
    let pidfd = Arc::new(unsafe { OwnedFd::from_raw_fd(pidfd) });
    drop(status_write);
    drop(ruleset);
    connect_gate::register_root(pid);
    drop(go_read);
    drop(err_write);
    drop(gate_child);
    // Wait for the namespace report before anything else: the proxy needs the listener.
    let netns = netns_pair.and_then(|(parent_end, child_end)| {
        drop(child_end);
        netns::receive(&parent_end)
    });
    Ok(SandboxedChild {
        pid,
        pidfd,
        program: spec.program.clone(),
        cwd: spec.cwd.clone(),
        go: Some(go_write),
        exec_errors: Some(err_read),
        exit: None,
        netns,
        gate: Some((gate_parent, std::sync::Arc::clone(&inner.gate))),
        status: Some(status_read),
        containment,
        root,
    })
}

fn fprogs_of(filters: &[Vec<libc::sock_filter>]) -> Result<Vec<libc::sock_fprog>, SandboxError> {
    filters
        .iter()
        .map(|filter| {
            Ok(libc::sock_fprog {
                len: u16::try_from(filter.len()).map_err(|_| SandboxError::InvalidExecSpec {
                    what: "seccomp filter",
                    detail: "longer than BPF_MAXINSNS".into(),
                })?,
                // The kernel only reads the program; the pointer type is just the C
                // declaration.
                filter: filter.as_ptr().cast_mut(),
            })
        })
        .collect()
}

/// Forks the sandbox's first process with `flags` (namespaces or none) and runs
/// [`child_main`] in it; returns its PID, or -1 with errno set. Stores its pidfd in `pidfd`.
fn clone_child(
    flags: libc::c_ulong,
    pidfd: &mut libc::c_int,
    ctx: &ChildContext<'_>,
) -> libc::pid_t {
    let pidfd: *mut libc::c_int = pidfd;
    // SAFETY: clone without CLONE_VM or a new stack behaves like fork: the child gets a copy
    // of the calling thread only (other threads of the caller simply do not exist there, and
    // whatever locks they held stay held), and runs only `child_main`, which never allocates
    // or locks. CLONE_PIDFD writes one int to `pidfd` (the parent_tid argument on x86_64 and
    // aarch64 alike), which points to the caller's live local.
    let pid = unsafe {
        libc::syscall(
            libc::SYS_clone,
            flags | PIDFD_FLAGS,
            0usize,
            pidfd,
            0usize,
            0usize,
        )
    } as libc::pid_t;
    if pid == 0 {
        // SAFETY: we are the freshly cloned child; see `child_main`.
        unsafe { child_main(ctx) }
    }
    pid
}

/// Every signal blocked in the calling thread, restored on drop; set around the fork.
struct SignalsBlocked(libc::sigset_t);

impl SignalsBlocked {
    fn new() -> Result<Self, SandboxError> {
        // SAFETY: sigset operations on live locals; pthread_sigmask only changes this
        // thread's mask and stores the previous one in `old`.
        unsafe {
            let mut all: libc::sigset_t = std::mem::zeroed();
            let mut old: libc::sigset_t = std::mem::zeroed();
            libc::sigfillset(&mut all);
            let rc = libc::pthread_sigmask(libc::SIG_SETMASK, &all, &mut old);
            if rc != 0 {
                return Err(SandboxError::Os {
                    operation: "pthread_sigmask",
                    source: std::io::Error::from_raw_os_error(rc),
                });
            }
            Ok(SignalsBlocked(old))
        }
    }
}

impl Drop for SignalsBlocked {
    fn drop(&mut self) {
        // SAFETY: restores the mask saved by `new` in the same thread (the guard never leaves
        // `spawn`).
        unsafe {
            libc::pthread_sigmask(libc::SIG_SETMASK, &self.0, std::ptr::null_mut());
        }
    }
}

fn errno() -> libc::c_int {
    // SAFETY: __errno_location always returns a valid pointer to this thread's errno.
    unsafe { *libc::__errno_location() }
}

/// Tells the parent which stage failed and with which errno, then exits with 125.
///
/// # Safety
/// Only for the forked child; `fd` is the write end of the error pipe.
unsafe fn fail(fd: RawFd, stage: u32) -> ! {
    // SAFETY: as documented for `fail_with`.
    unsafe { fail_with(fd, stage, errno()) }
}

/// [`fail`] with an explicit errno.
///
/// # Safety
/// As for [`fail`].
unsafe fn fail_with(fd: RawFd, stage: u32, err: libc::c_int) -> ! {
    let mut report = [0u8; REPORT_LEN];
    report[..4].copy_from_slice(&stage.to_ne_bytes());
    report[4..].copy_from_slice(&err.to_ne_bytes());
    // SAFETY: `report` is a live local buffer of REPORT_LEN bytes; a write of at most
    // PIPE_BUF bytes to a pipe is atomic, so there is nothing to retry but EINTR, and we
    // exit regardless of the result.
    unsafe {
        let _ = libc::write(fd, report.as_ptr().cast(), REPORT_LEN);
        libc::_exit(SETUP_FAILED)
    }
}

/// The child side: confine, then exec. Never returns.
///
/// # Safety
/// Must only be called in the child right after `fork` (the parent may have other threads:
/// nothing here allocates, locks or touches state they could have left half-changed), with
/// every signal blocked and every descriptor and pointer in `ctx` valid (they are copies of
/// the parent's).
unsafe fn child_main(ctx: &ChildContext<'_>) -> ! {
    let fd = ctx.err_write;
    // SAFETY: each call below is a plain system call (or glibc's thin async-signal-safe
    // wrapper) on descriptors and buffers owned by this process, as POSIX allows after fork.
    unsafe {
        libc::close(ctx.go_write);
        libc::close(ctx.err_read);
        libc::close(ctx.gate_parent);
        libc::close(ctx.status_read);

        // Die with the supervisor; if it already died, the death signal came too late.
        if libc::prctl(
            libc::PR_SET_PDEATHSIG,
            libc::SIGKILL as libc::c_ulong,
            0,
            0,
            0,
        ) != 0
        {
            fail(fd, ChildStage::DeathSignal.code());
        }
        // In a new PID namespace the parent is outside it and getppid() says 0; a supervisor
        // that died already is noticed at the go pipe (EOF) instead.
        if !ctx.namespaces && libc::getppid() != ctx.parent {
            libc::_exit(SETUP_FAILED);
        }

        // Handlers do not survive exec but ignored signals and the mask do.
        // Real-time signals too (glibc's reserved ones just fail with EINVAL).
        for sig in 1..65 {
            if sig != libc::SIGKILL && sig != libc::SIGSTOP {
                libc::signal(sig, libc::SIG_DFL);
            }
        }
        let mut empty: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut empty);
        // A kill request that arrives before the init loop waits until the loop handles it
        // (its default action would end only this process, not the fallback's command).
        let mut kill_request: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut kill_request);
        libc::sigaddset(&mut kill_request, init::KILL_REQUEST);
        if libc::sigprocmask(libc::SIG_SETMASK, &kill_request, std::ptr::null_mut()) != 0 {
            fail(fd, ChildStage::Signals.code());
        }

        if ctx.userns && !netns::write_id_maps(ctx.uid_map, ctx.gid_map) {
            fail(fd, STAGE_ID_MAPS);
        }
        if !ctx.namespaces {
            // Orphans come to us, not to nono, so the sweep at exit finds them.
            libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
        }

        if let Some(plan) = ctx.netns {
            libc::close(ctx.netns_parent);
            if !netns::setup_in_child(plan, ctx.netns_child) {
                fail(fd, ChildStage::Network.code());
            }
            libc::close(ctx.netns_child);
        }

        if ctx.namespaces {
            if let Some(root) = ctx.root {
                if let Err((step, err)) = rootfs::enter(root) {
                    let stage = match step {
                        rootfs::STEP_STAGING => STAGE_ROOT_STAGING,
                        rootfs::STEP_PIVOT => STAGE_ROOT_PIVOT,
                        i => STAGE_ROOT_STEP
                            .saturating_add(u32::try_from(i).unwrap_or(u32::MAX - STAGE_ROOT_STEP)),
                    };
                    fail_with(fd, stage, err);
                }
                if let Err(err) = rootfs::grant_fresh(root, ctx.ruleset) {
                    fail_with(fd, STAGE_ROOT_RULES, err);
                }
            }
        }

        // Wait for the go byte; EOF means the supervisor gave up on us.
        let mut byte = 0u8;
        loop {
            let n = libc::read(ctx.go_read, (&mut byte as *mut u8).cast(), 1);
            if n == 1 {
                break;
            }
            if n == 0 || errno() != libc::EINTR {
                libc::_exit(SETUP_FAILED);
            }
        }
        libc::close(ctx.go_read);

        // Everything from 3 up closes at exec; the error pipe already does, and must stay
        // open until then.
        if libc::syscall(
            libc::SYS_close_range,
            3u32,
            u32::MAX,
            libc::CLOSE_RANGE_CLOEXEC,
        ) != 0
        {
            let mut limit: libc::rlimit = std::mem::zeroed();
            if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
                fail(fd, ChildStage::CloseFds.code());
            }
            // Bounded, since RLIM_INFINITY would make this loop forever.
            let max = RawFd::try_from(limit.rlim_cur.min(1 << 20)).unwrap_or(1 << 20);
            for other in 3..max {
                libc::fcntl(other, libc::F_SETFD, libc::FD_CLOEXEC);
            }
        }

        if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 {
            fail(fd, ChildStage::NoNewPrivs.code());
        }
        // A child running as root keeps no capability: with them it could read the
        // supervisor's /proc entries (environ, maps) despite Landlock's ptrace scoping.
        // Dropping from the bounding set needs CAP_SETPCAP; without it there is nothing to
        // drop, so EPERM is fine. EINVAL ends the loop past the last capability.
        for cap in 0..64 {
            if libc::prctl(libc::PR_CAPBSET_DROP, cap, 0, 0, 0) != 0
                && *libc::__errno_location() == libc::EINVAL
            {
                break;
            }
        }
        if libc::prctl(
            libc::PR_CAP_AMBIENT,
            libc::PR_CAP_AMBIENT_CLEAR_ALL,
            0,
            0,
            0,
        ) != 0
            && *libc::__errno_location() != libc::EINVAL
        {
            fail(fd, ChildStage::Capabilities.code());
        }
        let header = CapHeader {
            version: LINUX_CAPABILITY_VERSION_3,
            pid: 0,
        };
        let data = [CapData::default(); 2];
        if libc::syscall(libc::SYS_capset, &header as *const CapHeader, data.as_ptr()) != 0 {
            fail(fd, ChildStage::Capabilities.code());
        }
        if libc::syscall(libc::SYS_landlock_restrict_self, ctx.ruleset, 0u32) != 0 {
            fail(fd, ChildStage::Landlock.code());
        }
        // This process stays alive as the sandbox's init with a copy of nono's memory
        // (environment included): non-dumpable, the command cannot read its /proc entries
        // (environ, mem, maps). The command's exec makes it dumpable again for the gate.
        // Before seccomp, which turns PR_SET_DUMPABLE into a no-op.
        if libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) != 0 {
            fail(fd, ChildStage::NoNewPrivs.code());
        }
        let extra: &[libc::sock_fprog] = if ctx.namespaces {
            &[]
        } else {
            match ctx.fallback_filters.get() {
                Some(f) => f.as_slice(),
                // Never without them: fail rather than run with less.
                None => fail_with(fd, ChildStage::Seccomp.code(), libc::EINVAL),
            }
        };
        for prog in ctx.filters.iter().chain(extra) {
            let prog: *const libc::sock_fprog = prog;
            if libc::syscall(libc::SYS_seccomp, libc::SECCOMP_SET_MODE_FILTER, 0u32, prog) != 0 {
                fail(fd, ChildStage::Seccomp.code());
            }
        }
        // Last: from here on every connect() waits for the supervisor, which first needs the
        // listener. The child must not keep it (it could answer its own calls).
        let gate: *const libc::sock_fprog = ctx.gate_filter;
        let listener = libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_SET_MODE_FILTER,
            libc::SECCOMP_FILTER_FLAG_NEW_LISTENER,
            gate,
        );
        // No WAIT_KILLABLE_RECV: a call waiting on the gate stays interruptible (Ctrl-C
        // reaches a server blocked in accept); the gate notices withdrawn calls.
        if listener < 0 {
            fail(fd, ChildStage::ConnectGate.code());
        }
        let listener = listener as RawFd;
        if !netns::send(ctx.gate_child, MSG_GATE, 0, listener) {
            fail(fd, ChildStage::ConnectGate.code());
        }
        libc::close(listener);
        libc::close(ctx.gate_child);

        // This process stays as the sandbox's init; the command is its child. Signals stay
        // blocked here (the init waits for them) and are unblocked in the command.
        let mut all: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut all);
        libc::sigprocmask(libc::SIG_SETMASK, &all, std::ptr::null_mut());
        let command = libc::syscall(
            libc::SYS_clone,
            libc::SIGCHLD as libc::c_ulong,
            0usize,
            0usize,
            0usize,
            0usize,
        );
        if command < 0 {
            fail(fd, STAGE_FORK);
        }
        if command == 0 {
            libc::close(ctx.status_write);
            // In the fallback the init's death does not end the command by itself.
            libc::prctl(
                libc::PR_SET_PDEATHSIG,
                libc::SIGKILL as libc::c_ulong,
                0,
                0,
                0,
            );
            // A Landlock domain of its own that handles no access but scopes signals: the
            // command and everything it starts cannot signal the init (SIGSTOP would stop its
            // teardown; in the fallback SIGKILL would end it), while the init still reaches
            // them (a parent domain may signal nested ones).
            if ctx.scopes && !scope_signals() {
                fail(fd, ChildStage::Landlock.code());
            }
            if !redirect_stdio(&ctx.stdio) {
                fail(fd, ChildStage::Stdio.code());
            }
            if let Some(dir) = ctx.cwd {
                // chdir alone succeeds in a directory Landlock hides; opening it does not.
                if libc::chdir(dir.as_ptr()) != 0 {
                    fail(fd, STAGE_CWD);
                }
                let opened = libc::open(
                    c".".as_ptr(),
                    libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC,
                );
                if opened < 0 {
                    fail(fd, STAGE_CWD);
                }
                libc::close(opened);
            }
            libc::sigprocmask(libc::SIG_SETMASK, &empty, std::ptr::null_mut());
            libc::execve(ctx.program.as_ptr(), ctx.argv.as_ptr(), ctx.envp.as_ptr());
            fail(fd, STAGE_EXEC)
        }
        // The command reports its own exec failure; the pipe must reach EOF once it execs.
        // Nothing else of nono's (its listener, the ruleset, runtime descriptors) stays open
        // in the init either.
        libc::close(fd);
        let keep = ctx.status_write as libc::c_uint;
        if keep > 3 {
            libc::syscall(libc::SYS_close_range, 3u32, keep - 1, 0u32);
        }
        libc::syscall(libc::SYS_close_range, keep + 1, u32::MAX, 0u32);
        init::run(command as libc::pid_t, ctx.status_write, ctx.namespaces)
    }
}

/// Puts `stdio[i]` (when not -1) on descriptor `i`; the originals stay close-on-exec.
///
/// # Safety
/// Async-signal-safe; for the forked command before exec.
unsafe fn redirect_stdio(stdio: &[RawFd; 3]) -> bool {
    // First above 2, so that a source that is itself 0, 1 or 2 is not overwritten by an
    // earlier dup2 before it is used.
    let mut high: [RawFd; 3] = [-1; 3];
    for (h, &src) in high.iter_mut().zip(stdio) {
        if src >= 0 {
            // SAFETY: fcntl on a descriptor number; the result is checked.
            *h = unsafe { libc::fcntl(src, libc::F_DUPFD_CLOEXEC, 3) };
            if *h < 0 {
                return false;
            }
        }
    }
    for (target, &h) in (0..).zip(&high) {
        if h >= 0 {
            // SAFETY: dup2 and close on descriptors this process owns.
            unsafe {
                if libc::dup2(h, target) < 0 {
                    return false;
                }
                libc::close(h);
            }
        }
    }
    true
}

/// Kills every process of one sandbox with SIGKILL; cheap to clone and to share between
/// threads.
///
/// It holds a pidfd of the sandbox's first process, so once that process is gone (reaped or
/// not) [`kill`](Killer::kill) does nothing: it never reaches a process that reuses the PID.
///
/// With [`Containment::Namespaces`] it SIGKILLs the PID namespace's init, and the kernel then
/// kills every process in the namespace, daemonised or not. With
/// [`Containment::Fallback`] it asks the sandbox's init (a subreaper) to SIGKILL its whole
/// tree at once, skipping the usual SIGTERM grace; that covers every descendant, since
/// orphans re-parent to the init, but needs the init alive: if the init itself was killed
/// (for example by its parent-death signal), whatever it had not yet swept keeps running.
/// A request sent before [`SandboxedChild::release`] takes effect once the command has
/// started.
#[derive(Clone, Debug)]
pub struct Killer {
    pidfd: Arc<OwnedFd>,
    signal: libc::c_int,
}

impl Killer {
    /// Kills the whole sandbox; [`SandboxedChild::wait`] then reports `Signal(SIGKILL)`.
    ///
    /// Returns at once (the processes die asynchronously). A sandbox that has already ended
    /// is not an error.
    pub fn kill(&self) -> Result<(), SandboxError> {
        send_signal(&self.pidfd, self.signal)
    }
}

/// `pidfd_send_signal`, treating a process that has already ended as success.
fn send_signal(pidfd: &OwnedFd, signal: libc::c_int) -> Result<(), SandboxError> {
    // SAFETY: a live pidfd, a NULL siginfo (the kernel fills in a kill()-style one) and no
    // flags; the call has no memory effects.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            pidfd.as_raw_fd(),
            signal,
            std::ptr::null::<libc::siginfo_t>(),
            0u32,
        )
    };
    if rc == 0 {
        return Ok(());
    }
    let source = std::io::Error::last_os_error();
    if source.raw_os_error() == Some(libc::ESRCH) {
        return Ok(());
    }
    Err(SandboxError::Os {
        operation: "pidfd_send_signal",
        source,
    })
}

/// `struct landlock_ruleset_attr` (ABI 6 layout).
#[repr(C)]
struct RulesetAttr {
    handled_access_fs: u64,
    handled_access_net: u64,
    scoped: u64,
}

/// `LANDLOCK_SCOPE_SIGNAL`.
const LANDLOCK_SCOPE_SIGNAL: u64 = 2;

/// Enters a nested Landlock domain that only scopes signals.
///
/// # Safety
/// Async-signal-safe; for the forked command before exec, with no_new_privs set.
unsafe fn scope_signals() -> bool {
    let attr = RulesetAttr {
        handled_access_fs: 0,
        handled_access_net: 0,
        scoped: LANDLOCK_SCOPE_SIGNAL,
    };
    // SAFETY: a live attribute struct of the size passed; the descriptor is closed below.
    unsafe {
        let fd = libc::syscall(
            libc::SYS_landlock_create_ruleset,
            &attr as *const RulesetAttr,
            std::mem::size_of::<RulesetAttr>(),
            0u32,
        );
        if fd < 0 {
            return false;
        }
        let ok = libc::syscall(libc::SYS_landlock_restrict_self, fd, 0u32) == 0;
        libc::close(fd as libc::c_int);
        ok
    }
}

impl SandboxedChild {
    /// What became of the private network namespace, when one was asked for (once).
    pub fn take_network_isolation(&mut self) -> Option<NetnsOutcome> {
        self.netns.take()
    }

    /// The child's process id.
    pub fn pid(&self) -> i32 {
        self.pid
    }

    /// Lets the child go on to confine itself and exec.
    ///
    /// Until this is called the child blocks on a pipe, so the supervisor can finish setting
    /// up after the fork (secrets loaded now never exist in the child's memory). Once the
    /// child has confined itself, this also starts the connect gate, the thread that performs
    /// its `connect`/`accept` calls.
    pub fn release(&mut self) -> Result<(), SandboxError> {
        let go = self
            .go
            .take()
            .ok_or(SandboxError::Usage("release called twice"))?;
        match nix::unistd::write(&go, &[1u8]) {
            // EPIPE: the child is already gone; `wait` reports how it ended.
            Ok(_) | Err(nix::Error::EPIPE) => {}
            Err(e) => return Err(os_err("writing the release byte")(e)),
        }
        // The child sends the gate's listener before exec; serve it from now on, whatever
        // the caller waits on next.
        self.start_gate()
    }

    /// Blocks until the child has executed the program, or reports why it could not.
    ///
    /// Calls [`release`](Self::release) first if needed. On failure the child has exited with
    /// status 125 and is reaped; the error is [`SandboxError::Exec`] for `execve` and
    /// [`SandboxError::ChildSetup`] for the confinement steps before it.
    ///
    pub fn wait_for_exec(&mut self) -> Result<(), SandboxError> {
        if self.go.is_some() {
            self.release()?;
        }
        let Some(pipe) = self.exec_errors.take() else {
            return Ok(());
        };
        let mut report = [0u8; REPORT_LEN];
        let mut got = 0;
        while got < REPORT_LEN {
            match nix::unistd::read(pipe.as_raw_fd(), &mut report[got..]) {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(nix::Error::EINTR) => continue,
                Err(e) => return Err(os_err("reading the exec status pipe")(e)),
            }
        }
        if got < REPORT_LEN {
            // EOF: close-on-exec closed the pipe, so exec succeeded (or the child died, which
            // `wait` reports).
            return Ok(());
        }
        let [s0, s1, s2, s3, e0, e1, e2, e3] = report;
        let stage = u32::from_ne_bytes([s0, s1, s2, s3]);
        let source = std::io::Error::from_raw_os_error(i32::from_ne_bytes([e0, e1, e2, e3]));
        self.reap()?;
        Err(
            if stage == STAGE_EXEC
                && source.raw_os_error() == Some(libc::ENOENT)
                && self.program.exists()
                && matches!(self.containment, Containment::Namespaces { .. })
            {
                SandboxError::ExecOutsideGrants {
                    program: self.program.clone(),
                }
            } else if stage == STAGE_CWD {
                SandboxError::WorkingDirectory {
                    path: self.cwd.clone().unwrap_or_default(),
                    source,
                }
            } else if stage == STAGE_EXEC {
                SandboxError::Exec {
                    program: self.program.clone(),
                    source,
                }
            } else if let Some(step) = self.containment_step(stage) {
                SandboxError::Containment { step, source }
            } else {
                SandboxError::ChildSetup {
                    stage: ChildStage::from_code(stage),
                    source,
                }
            },
        )
    }

    /// Which containment is in force for this child.
    pub fn containment(&self) -> &Containment {
        &self.containment
    }

    /// What a containment stage code was doing, `None` for the other stages.
    fn containment_step(&self, stage: u32) -> Option<String> {
        Some(match stage {
            STAGE_ID_MAPS => "write the identity maps of the user namespace".into(),
            STAGE_FORK => "fork the command under the sandbox's init".into(),
            STAGE_ROOT_STAGING => {
                "prepare the new root (a private mount namespace, a tmpfs over /tmp)".into()
            }
            STAGE_ROOT_PIVOT => "enter the new root (pivot_root)".into(),
            STAGE_ROOT_RULES => "add the Landlock rules of the new /proc, /dev/pts and /tmp".into(),
            s if s >= STAGE_ROOT_STEP => {
                let i = usize::try_from(s - STAGE_ROOT_STEP).unwrap_or(usize::MAX);
                self.root
                    .as_ref()
                    .map_or_else(|| "build the new root".into(), |r| r.label(i))
            }
            _ => return None,
        })
    }

    /// Takes the connect-gate listener the child sent before exec and serves it.
    fn start_gate(&mut self) -> Result<(), SandboxError> {
        let Some((sock, policy)) = self.gate.take() else {
            return Ok(());
        };
        match netns::receive_message(&sock) {
            Some((MSG_GATE, _, Some(listener))) => connect_gate::serve(listener, (*policy).clone())
                .map_err(|source| SandboxError::Os {
                    operation: "starting the connect gate thread",
                    source,
                }),
            // The child died before exec (its status tells how): nothing to serve.
            None => Ok(()),
            Some(_) => Err(SandboxError::Os {
                operation: "receiving the connect gate listener",
                source: std::io::Error::other("unexpected message from the child"),
            }),
        }
    }

    /// Waits for the program to start (see [`wait_for_exec`](Self::wait_for_exec)) and then
    /// for it to end, returning its exit code or the signal that killed it.
    pub fn wait(&mut self) -> Result<ChildExit, SandboxError> {
        self.wait_for_exec()?;
        self.reap()
    }

    /// Sends `signal` to the child (for forwarding signals the supervisor receives).
    pub fn signal(&self, signal: i32) -> Result<(), SandboxError> {
        if self.exit.is_some() {
            return Ok(());
        }
        send_signal(&self.pidfd, signal)
    }

    /// A handle that kills the whole sandbox from any thread, even while another one is
    /// blocked in [`wait`](Self::wait); see [`Killer`].
    pub fn killer(&self) -> Killer {
        Killer {
            pidfd: Arc::clone(&self.pidfd),
            signal: match self.containment {
                Containment::Namespaces { .. } => libc::SIGKILL,
                Containment::Fallback { .. } => init::KILL_REQUEST,
            },
        }
    }

    fn reap(&mut self) -> Result<ChildExit, SandboxError> {
        if let Some(exit) = self.exit {
            return Ok(exit);
        }
        let mut status = 0;
        loop {
            // SAFETY: `status` is a live local the kernel writes the wait status into.
            let rc = unsafe { libc::waitpid(self.pid, &mut status, 0) };
            if rc == self.pid {
                break;
            }
            let err = std::io::Error::last_os_error();
            if err.raw_os_error() != Some(libc::EINTR) {
                return Err(SandboxError::Os {
                    operation: "waitpid",
                    source: err,
                });
            }
        }
        connect_gate::unregister_root(self.pid);
        // The init reports the command's own status; without a report (it died during
        // set-up, or was killed) its own status stands.
        if let Some(pipe) = self.status.take() {
            let mut buf = [0u8; 4];
            if matches!(nix::unistd::read(pipe.as_raw_fd(), &mut buf), Ok(4)) {
                status = i32::from_ne_bytes(buf);
            }
        }
        let exit = if libc::WIFSIGNALED(status) {
            ChildExit::Signal(libc::WTERMSIG(status))
        } else {
            ChildExit::Code(libc::WEXITSTATUS(status))
        };
        self.exit = Some(exit);
        Ok(exit)
    }
}

impl Drop for SandboxedChild {
    fn drop(&mut self) {
        let unreleased = self.go.take().is_some();
        if unreleased && self.exit.is_none() {
            // The go pipe is closed now, so the unreleased child exits at once; reap it.
            let _ = self.reap();
        }
    }
}
