//! The connect gate: every `connect(2)` of the child is performed by the supervisor.
//!
//! Landlock (up to ABI 8) does not restrict connecting to a pathname UNIX socket, so a child
//! could reach `/var/run/docker.sock`, an ssh-agent, D-Bus or another program's server
//! anywhere on disk. A seccomp filter turns each `connect` into a user notification. A
//! supervisor thread reads the address from the child's memory once, takes a duplicate of the
//! child's socket (`pidfd_getfd`, same open file), decides, and — when allowed — connects
//! that duplicate itself. It never answers "continue": the kernel would then read the address
//! and the descriptor again, and a second thread in the child could swap either in between.
//!
//! Decisions:
//! - Pathname UNIX sockets: the path is opened with `O_PATH` (from the child's working
//!   directory when relative, magic links refused) and the socket connected through
//!   `/proc/self/fd/N`, so the inode checked is the inode connected (no symlink or rename
//!   race). Allowed: a socket granted by name, or one beneath a read-write grant whose server
//!   is a process of the sandbox (checked with `SO_PEERCRED` after connecting; otherwise the
//!   connection is shut down) — a shared `/tmp` also holds tmux, X11 and agent sockets.
//! - The gate threads block all signals and drop all capabilities, so a root nono does not
//!   lend the child `CAP_DAC_OVERRIDE`; note that servers see nono's pid as the peer.
//! - Abstract UNIX sockets: the abstract namespace belongs to the network namespace, so a
//!   socket living in the child's private network namespace can only reach the sandbox's own
//!   and is connected. In the shared namespace they are refused (`EACCES`): Landlock's scoping,
//!   which would allow only the sandbox's own, is evaluated against the connecting task —
//!   here the supervisor.
//! - TCP sockets: the port rules Landlock applies to the child are applied here (the connect
//!   runs in the supervisor's context, which Landlock does not confine).
//! - Anything else (UDP, netlink): connected as asked; seccomp already limits which sockets
//!   the child can create.

use std::ffi::CString;
use std::io;
use std::net::IpAddr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use crate::plan::Plan;
use crate::policy::FsAccess;

/// `sizeof(struct sockaddr_storage)`: the kernel refuses longer addresses with `EINVAL`.
const MAX_ADDR_LEN: usize = 128;
/// `offsetof(struct sockaddr_un, sun_path)`.
const SUN_PATH_OFFSET: usize = 2;

#[cfg(target_arch = "x86_64")]
const AUDIT_ARCH_NATIVE: u32 = 0xC000_003E;
#[cfg(target_arch = "aarch64")]
const AUDIT_ARCH_NATIVE: u32 = 0xC000_00B7;

/// What the gate allows; built from the plan before fork.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct GatePolicy {
    /// Real paths granted read-write: sockets beneath them may be connected.
    writable: Vec<PathBuf>,
    /// (device, inode) of granted non-directories, taken when the sandbox was planned: a
    /// socket granted by name may be connected, and only that very socket (a rename and a
    /// hard link of another socket in its place does not inherit the grant).
    named: Vec<(u64, u64)>,
    /// TCP ports `connect` may reach, when Landlock handles TCP for the child.
    tcp_connect_ports: Option<Vec<u16>>,
    /// Of those, the ports allowed towards non-loopback addresses.
    tcp_remote_ports: Vec<u16>,
}

impl GatePolicy {
    pub(crate) fn from_plan(plan: &Plan) -> GatePolicy {
        let real = |p: &Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
        GatePolicy {
            writable: plan
                .fs
                .iter()
                .filter(|r| r.access == FsAccess::ReadWrite)
                .map(|r| real(&r.path))
                .collect(),
            named: plan
                .fs
                .iter()
                .filter(|r| !r.is_dir)
                .filter_map(|r| {
                    use std::os::unix::fs::MetadataExt;
                    std::fs::metadata(&r.path).ok().map(|m| (m.dev(), m.ino()))
                })
                .collect(),
            tcp_connect_ports: plan.net.as_ref().map(|n| n.connect_ports.clone()),
            tcp_remote_ports: plan
                .net
                .as_ref()
                .map(|n| n.remote_ports.clone())
                .unwrap_or_default(),
        }
    }

    /// A socket granted by its own path (reachable whoever serves it).
    fn granted_by_name(&self, dev: u64, ino: u64) -> bool {
        self.named.contains(&(dev, ino))
    }

    /// A socket beneath a read-write grant (reachable when the sandbox serves it).
    fn beneath_writable(&self, path: &Path) -> bool {
        self.writable.iter().any(|w| path.starts_with(w))
    }

    /// Whether a TCP connect to `ip`:`port` is allowed: the port as Landlock would decide for
    /// the child, and only loopback for ports that are not open towards other hosts.
    fn allows_tcp(&self, ip: IpAddr, port: u16) -> bool {
        let Some(ports) = &self.tcp_connect_ports else {
            return true;
        };
        // Linux connects the unspecified address (0.0.0.0, ::) to the local host.
        let local = is_loopback(ip) || ip.is_unspecified();
        ports.contains(&port) && (local || self.tcp_remote_ports.contains(&port))
    }
}

impl GatePolicy {
    /// Whether the child may accept a connection from `peer` (a raw `AF_INET`/`AF_INET6`
    /// address): from anywhere when TCP is unrestricted, else from loopback only.
    fn allows_peer(&self, peer: &[u8], family: i32) -> bool {
        if self.tcp_connect_ports.is_none() {
            return true;
        }
        inet_destination(peer, family).is_some_and(|(ip, _)| is_loopback(ip))
    }

    /// Whether `accept` must go through the gate.
    pub(crate) fn gates_accept(&self) -> bool {
        self.tcp_connect_ports.is_some()
    }
}

/// Loopback, including IPv4 loopback mapped into IPv6.
fn is_loopback(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_loopback(),
        IpAddr::V6(v6) => {
            v6.is_loopback() || v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
        }
    }
}

/// The destination of an `AF_INET`/`AF_INET6` address, if it is long enough to hold one.
fn inet_destination(addr: &[u8], family: i32) -> Option<(IpAddr, u16)> {
    // sin_port / sin6_port follow the family, in network order; then sin_addr, or
    // sin6_flowinfo and sin6_addr.
    let port = u16::from_be_bytes([*addr.get(2)?, *addr.get(3)?]);
    let ip = if family == libc::AF_INET {
        let b: [u8; 4] = addr.get(4..8)?.try_into().ok()?;
        IpAddr::from(b)
    } else {
        let b: [u8; 16] = addr.get(8..24)?.try_into().ok()?;
        IpAddr::from(b)
    };
    Some((ip, port))
}

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

/// Starts the supervisor thread serving `listener` (the child's notification descriptor) for
/// the sandbox whose first process is `root`. It ends when every process using the filter has
/// exited.
pub(crate) fn serve(listener: OwnedFd, policy: GatePolicy, root: libc::pid_t) -> io::Result<()> {
    let gate = Arc::new(Gate {
        listener,
        policy,
        root,
        workers: AtomicUsize::new(0),
        acceptors: AtomicUsize::new(0),
    });
    std::thread::Builder::new()
        .name("nono-connect-gate".into())
        .spawn(move || {
            harden_thread();
            receive_loop(&gate);
        })?;
    Ok(())
}

/// Shared state of the gate threads.
struct Gate {
    listener: OwnedFd,
    policy: GatePolicy,
    /// The sandbox's first process: a listening peer must descend from it.
    root: libc::pid_t,
    /// Worker threads alive for blocking connects (and path lookups).
    workers: AtomicUsize,
    /// Worker threads alive for blocking accepts.
    acceptors: AtomicUsize,
}

/// Blocking calls served at once; beyond this the receive loop waits for a worker to finish
/// (the calls queue in the kernel) instead of starting more threads.
const MAX_WORKERS: usize = 256;
/// Blocking accepts served at once (each waits for a client, possibly forever).
const MAX_ACCEPTORS: usize = 1024;
/// How often the receive loop reaps orphaned sandbox processes.
const REAP_INTERVAL_MS: libc::c_int = 1000;
/// How often a worker blocked in `accept` checks that its call is still wanted.
const ACCEPT_RECHECK_MS: libc::c_int = 200;

/// Blocks every signal in this thread (nono's handlers must not interrupt a call made for the
/// child) and drops every capability of this thread and the workers it starts: the gate
/// connects with the child's privileges (no `CAP_DAC_OVERRIDE` for a root nono), not nono's.
/// Capabilities are per thread; the rest of nono keeps its own.
fn harden_thread() {
    // SAFETY: sigfillset fills a live local; pthread_sigmask changes only this thread's mask.
    unsafe {
        let mut all: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut all);
        libc::pthread_sigmask(libc::SIG_BLOCK, &all, std::ptr::null_mut());
    }
    #[repr(C)]
    struct Header {
        version: u32,
        pid: libc::c_int,
    }
    #[repr(C)]
    #[derive(Clone, Copy)]
    struct Data {
        effective: u32,
        permitted: u32,
        inheritable: u32,
    }
    let header = Header {
        version: 0x2008_0522, // _LINUX_CAPABILITY_VERSION_3
        pid: 0,
    };
    let none = [Data {
        effective: 0,
        permitted: 0,
        inheritable: 0,
    }; 2];
    // SAFETY: capset reads the live header and two data words; pid 0 is the calling thread.
    // Dropping can only fail for a malformed header; the gate is then merely less hardened.
    unsafe { libc::syscall(libc::SYS_capset, &header as *const Header, none.as_ptr()) };
}

fn last_errno() -> i32 {
    io::Error::last_os_error()
        .raw_os_error()
        .unwrap_or(libc::EIO)
}

fn receive_loop(gate: &Arc<Gate>) {
    let fd = gate.listener.as_raw_fd();
    let mut last_reap = std::time::Instant::now();
    loop {
        // At least once a second, busy or not, so zombies cannot pile up.
        if last_reap.elapsed() >= std::time::Duration::from_millis(REAP_INTERVAL_MS as u64) {
            reap_orphans();
            last_reap = std::time::Instant::now();
        }
        let mut pfd = libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one live pollfd, count 1.
        let n = unsafe { libc::poll(&mut pfd, 1, REAP_INTERVAL_MS) };
        if n <= 0 {
            if n == 0 || last_errno() == libc::EINTR {
                continue;
            }
            return;
        }
        if pfd.revents & libc::POLLIN == 0 {
            // POLLHUP: no process uses the filter any more.
            return;
        }
        // SAFETY: seccomp_notif is plain data; the kernel wants it zeroed.
        let mut req: libc::seccomp_notif = unsafe { std::mem::zeroed() };
        // SAFETY: the ioctl writes one seccomp_notif into the live local.
        if unsafe { libc::ioctl(fd, libc::SECCOMP_IOCTL_NOTIF_RECV, &mut req) } != 0 {
            match last_errno() {
                // The caller died or was interrupted before we took the notification.
                libc::ENOENT | libc::EINTR => continue,
                _ => return,
            }
        }
        // The socket is taken once, here, and used for the decision and the call.
        let task = Task::open(req.pid as libc::pid_t);
        let sock = task
            .as_ref()
            .map_err(|&e| e)
            .and_then(|t| t.take_socket(req.data.args[0] as u32 as i32));
        // A non-blocking IP socket answers at once: handle it here, sparing a thread start
        // and a wake-up. Anything that may block (a blocking connect or accept, a path lookup
        // on a slow filesystem) gets its own thread so it cannot stall the others.
        let quick = match &sock {
            Ok(s) => is_nonblocking(s) && is_inet(s),
            Err(_) => true,
        };
        if quick {
            answer(gate, &req, task, sock);
            continue;
        }
        // Blocking accepts can wait forever: they have their own, larger budget, so they
        // can never starve connects (over it, the accept fails like one out of descriptors).
        let nr = i64::from(req.data.nr);
        let counter = if nr == libc::SYS_accept || nr == libc::SYS_accept4 {
            if gate.acceptors.load(Ordering::Acquire) >= MAX_ACCEPTORS {
                respond(fd, req.id, Err(libc::EMFILE));
                continue;
            }
            &gate.acceptors
        } else {
            // Connects end (they time out): wait for a slot, the calls queue meanwhile.
            while gate.workers.load(Ordering::Acquire) >= MAX_WORKERS {
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
            &gate.workers
        };
        counter.fetch_add(1, Ordering::AcqRel);
        let worker_gate = Arc::clone(gate);
        let is_accept = std::ptr::eq(counter, &gate.acceptors);
        let spawned = std::thread::Builder::new()
            .name("nono-connect".into())
            .spawn(move || {
                let counter = if is_accept {
                    &worker_gate.acceptors
                } else {
                    &worker_gate.workers
                };
                // Given back even if the worker panics.
                let _slot = Slot(counter);
                answer(&worker_gate, &req, task, sock);
            });
        if spawned.is_err() {
            counter.fetch_sub(1, Ordering::AcqRel);
            respond(fd, req.id, Err(libc::EAGAIN));
        }
    }
}

/// A taken worker slot, given back on drop.
struct Slot<'a>(&'a AtomicUsize);

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The task that made a call, with handles opened before the call is validated, so that
/// everything read through them belongs to that task even if its id is later reused.
struct Task {
    tid: libc::pid_t,
    pidfd: OwnedFd,
}

impl Task {
    fn open(tid: libc::pid_t) -> Result<Task, i32> {
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
    fn take_socket(&self, fd: i32) -> Result<OwnedFd, i32> {
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
    fn memory(&self, write: bool) -> Result<std::fs::File, i32> {
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
    fn cwd(&self) -> Result<OwnedFd, i32> {
        let path = CString::new(format!("/proc/{}/cwd", self.tid)).map_err(|_| libc::EINVAL)?;
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
    fn in_private_network_namespace(&self) -> bool {
        use std::os::unix::fs::MetadataExt;
        let theirs = std::fs::metadata(format!("/proc/{}/ns/net", self.tid));
        let ours = std::fs::metadata("/proc/self/ns/net");
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
fn reap_orphans() {
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

fn is_nonblocking(sock: &OwnedFd) -> bool {
    // SAFETY: F_GETFL on a descriptor we own.
    let flags = unsafe { libc::fcntl(sock.as_raw_fd(), libc::F_GETFL) };
    flags >= 0 && flags & libc::O_NONBLOCK != 0
}

fn is_inet(sock: &OwnedFd) -> bool {
    matches!(
        sockopt(sock, libc::SO_DOMAIN),
        Ok(libc::AF_INET | libc::AF_INET6)
    )
}

fn answer(
    gate: &Gate,
    req: &libc::seccomp_notif,
    task: Result<Task, i32>,
    sock: Result<OwnedFd, i32>,
) {
    let fd = gate.listener.as_raw_fd();
    let nr = i64::from(req.data.nr);
    let result = match (task, sock) {
        (Ok(task), Ok(sock)) if nr == libc::SYS_accept || nr == libc::SYS_accept4 => {
            accept_for_child(gate, req, &task, &sock);
            return;
        }
        (Ok(task), Ok(sock)) => decide(gate, req, &task, &sock),
        (Err(e), _) | (_, Err(e)) => Some(Err(e)),
    };
    // None: the notification is no longer valid (the task is gone), nobody to answer.
    if let Some(result) = result {
        respond(fd, req.id, result);
    }
}

/// `accept`/`accept4` on the child's behalf, dropping connections from other hosts (a
/// server bound to a wildcard address in the shared namespace, or an ephemeral port taken by
/// `listen()` without `bind()`). The accepted socket is installed into the child with
/// `SECCOMP_IOCTL_NOTIF_ADDFD`, which also answers the call.
fn accept_for_child(gate: &Gate, req: &libc::seccomp_notif, task: &Task, sock: &OwnedFd) {
    let listener = gate.listener.as_raw_fd();
    let [_, addr_ptr, len_ptr, flags, ..] = req.data.args;
    let flags = if i64::from(req.data.nr) == libc::SYS_accept4 {
        flags as u32 as i32
    } else {
        0
    };
    if flags & !(libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK) != 0 {
        respond(listener, req.id, Err(libc::EINVAL));
        return;
    }
    // Opened before validation: writes go to this task's memory or nowhere.
    let mem = if addr_ptr != 0 {
        match task.memory(true) {
            Ok(m) => Some(m),
            Err(e) => return respond(listener, req.id, Err(e)),
        }
    } else {
        None
    };
    if !still_valid(listener, req.id) {
        return;
    }
    let (conn, peer) = match accept_allowed(gate, req.id, sock) {
        Some(Ok(accepted)) => accepted,
        Some(Err(e)) => return respond(listener, req.id, Err(e)),
        None => return, // the call was withdrawn (signal, exit)
    };
    if flags & libc::SOCK_NONBLOCK != 0 {
        // SAFETY: F_SETFL on a descriptor we own.
        unsafe { libc::fcntl(conn.as_raw_fd(), libc::F_SETFL, libc::O_NONBLOCK) };
    }
    if let Some(mem) = &mem {
        if let Err(e) = write_peer_address(mem, addr_ptr, len_ptr, &peer) {
            // As the kernel does when it cannot copy the address out: the connection is lost.
            return respond(listener, req.id, Err(e));
        }
    }
    let mut addfd = libc::seccomp_notif_addfd {
        id: req.id,
        flags: libc::SECCOMP_ADDFD_FLAG_SEND as u32,
        srcfd: conn.as_raw_fd() as u32,
        newfd: 0,
        newfd_flags: if flags & libc::SOCK_CLOEXEC != 0 {
            libc::O_CLOEXEC as u32
        } else {
            0
        },
    };
    // SAFETY: the ioctl reads one seccomp_notif_addfd from the live local; on success the
    // call is answered with the child's new descriptor number.
    let rc = unsafe { libc::ioctl(listener, libc::SECCOMP_IOCTL_NOTIF_ADDFD, &mut addfd) };
    if rc < 0 {
        let e = last_errno();
        if e != libc::ENOENT {
            respond(listener, req.id, Err(e));
        }
    }
}

/// Accepts on the child's listening socket until a connection the policy allows arrives, the
/// socket reports an error such as `EAGAIN`, or the call is withdrawn (`None`): a blocked
/// child that takes a signal or exits must not leave nono holding its socket.
fn accept_allowed(gate: &Gate, id: u64, sock: &OwnedFd) -> Option<Result<(OwnedFd, Vec<u8>), i32>> {
    let blocking = !is_nonblocking(sock);
    loop {
        if blocking {
            let mut pfd = libc::pollfd {
                fd: sock.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: one live pollfd, count 1.
            let n = unsafe { libc::poll(&mut pfd, 1, ACCEPT_RECHECK_MS) };
            if n <= 0 {
                if !still_valid(gate.listener.as_raw_fd(), id) {
                    return None;
                }
                continue;
            }
        }
        // SAFETY: sockaddr_storage is plain data.
        let mut storage: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
        let mut len = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
        // SAFETY: the kernel writes at most `len` bytes into the live local.
        let fd = unsafe {
            libc::accept4(
                sock.as_raw_fd(),
                (&mut storage as *mut libc::sockaddr_storage).cast(),
                &mut len,
                libc::SOCK_CLOEXEC,
            )
        };
        if fd < 0 {
            let e = last_errno();
            if e == libc::EINTR || e == libc::ECONNABORTED {
                continue;
            }
            return Some(Err(e));
        }
        // SAFETY: a fresh descriptor we own.
        let conn = unsafe { OwnedFd::from_raw_fd(fd) };
        let len = (len as usize).min(std::mem::size_of::<libc::sockaddr_storage>());
        // SAFETY: the first `len` bytes of the local were written by the kernel.
        let peer = unsafe {
            std::slice::from_raw_parts(
                (&storage as *const libc::sockaddr_storage).cast::<u8>(),
                len,
            )
        }
        .to_vec();
        let family = i32::from(storage.ss_family);
        if (family == libc::AF_INET || family == libc::AF_INET6)
            && !gate.policy.allows_peer(&peer, family)
        {
            // Dropped: the remote side sees the connection closed.
            continue;
        }
        return Some(Ok((conn, peer)));
    }
}

/// Writes the peer address to the child's `addr`/`*addrlen` as `accept` would: truncated to
/// the buffer size the child gave, with the full length stored back.
fn write_peer_address(
    mem: &std::fs::File,
    addr_ptr: u64,
    len_ptr: u64,
    peer: &[u8],
) -> Result<(), i32> {
    use std::os::unix::fs::FileExt;
    if len_ptr == 0 {
        return Err(libc::EFAULT);
    }
    let mut len_bytes = [0u8; 4];
    mem.read_exact_at(&mut len_bytes, len_ptr)
        .map_err(|_| libc::EFAULT)?;
    let given = i32::from_ne_bytes(len_bytes);
    if given < 0 {
        return Err(libc::EINVAL);
    }
    let n = (given as usize).min(peer.len());
    mem.write_all_at(&peer[..n], addr_ptr)
        .map_err(|_| libc::EFAULT)?;
    mem.write_all_at(&(peer.len() as u32).to_ne_bytes(), len_ptr)
        .map_err(|_| libc::EFAULT)?;
    Ok(())
}

fn respond(listener: RawFd, id: u64, result: Result<i64, i32>) {
    let (val, error) = match result {
        Ok(v) => (v, 0),
        Err(e) => (0, -e),
    };
    let mut resp = libc::seccomp_notif_resp {
        id,
        val,
        error,
        flags: 0,
    };
    // SAFETY: the ioctl reads one seccomp_notif_resp from the live local. ENOENT (the task
    // died meanwhile) needs no handling.
    unsafe {
        libc::ioctl(listener, libc::SECCOMP_IOCTL_NOTIF_SEND, &mut resp);
    }
}

/// Still the same call of the same task (guards against pid reuse after reading its memory).
fn still_valid(listener: RawFd, id: u64) -> bool {
    let mut id = id;
    // SAFETY: the ioctl reads one u64 from the live local.
    unsafe { libc::ioctl(listener, libc::SECCOMP_IOCTL_NOTIF_ID_VALID, &mut id) == 0 }
}

/// Everything about the calling task the decision needs, gathered before validation.
struct Context {
    /// The task's working directory, when the address is a relative socket path.
    cwd: Option<OwnedFd>,
    /// The task lives in its own network namespace.
    private_netns: bool,
    /// The sandbox's first process.
    root: libc::pid_t,
    /// The calling task, its socket's descriptor number, the call's id and the gate's
    /// listener: to put a checked connection in the child's place.
    tid: libc::pid_t,
    fd: i32,
    id: u64,
    listener: RawFd,
}

/// Performs or refuses a `connect`; `None` when it was withdrawn.
fn decide(
    gate: &Gate,
    req: &libc::seccomp_notif,
    task: &Task,
    sock: &OwnedFd,
) -> Option<Result<i64, i32>> {
    let [_, addr_ptr, addr_len, ..] = req.data.args;
    // connect's length is an int: only the low 32 bits count.
    let addr_len = addr_len as u32 as usize;
    if addr_len > MAX_ADDR_LEN {
        return Some(Err(libc::EINVAL));
    }
    let gather = || -> Result<(Vec<u8>, Context), i32> {
        let addr = read_memory(&task.memory(false)?, addr_ptr, addr_len)?;
        let relative_unix_path = addr.len() > SUN_PATH_OFFSET
            && addr.get(..2) == Some(&(libc::AF_UNIX as u16).to_ne_bytes()[..])
            && !matches!(addr[SUN_PATH_OFFSET], b'/' | 0);
        let cwd = if relative_unix_path {
            Some(task.cwd()?)
        } else {
            None
        };
        let context = Context {
            cwd,
            private_netns: task.in_private_network_namespace(),
            root: gate.root,
            tid: task.tid,
            fd: req.data.args[0] as u32 as i32,
            id: req.id,
            listener: gate.listener.as_raw_fd(),
        };
        Ok((addr, context))
    };
    let gathered = gather();
    // Everything read so far belongs to this call only if it is still pending.
    if !still_valid(gate.listener.as_raw_fd(), req.id) {
        return None;
    }
    Some(
        gathered.and_then(|(addr, context)| connect_for_child(sock, &addr, &context, &gate.policy)),
    )
}

fn connect_for_child(
    sock: &OwnedFd,
    addr: &[u8],
    context: &Context,
    policy: &GatePolicy,
) -> Result<i64, i32> {
    let domain = sockopt(sock, libc::SO_DOMAIN)?;
    let family = addr
        .get(..2)
        .map(|b| i32::from(u16::from_ne_bytes([b[0], b[1]])));
    match domain {
        libc::AF_UNIX if family == Some(libc::AF_UNIX) && addr.len() > SUN_PATH_OFFSET => {
            if addr.len() > std::mem::size_of::<libc::sockaddr_un>() {
                return Err(libc::EINVAL);
            }
            connect_unix(sock, &addr[SUN_PATH_OFFSET..], context, policy)
        }
        // Every stream socket of these families is TCP (MPTCP sockets are not allowed).
        libc::AF_INET | libc::AF_INET6
            if (family == Some(libc::AF_INET) || family == Some(libc::AF_INET6))
                && sockopt(sock, libc::SO_TYPE)? == libc::SOCK_STREAM =>
        {
            let Some(family) = family else {
                return Err(libc::EINVAL);
            };
            // Too short for its family: the kernel says EINVAL without connecting.
            let Some((ip, port)) = inet_destination(addr, family) else {
                return raw_connect(sock, addr);
            };
            if !policy.allows_tcp(ip, port) {
                return Err(libc::EACCES);
            }
            raw_connect(sock, addr)
        }
        // Unnamed UNIX addresses, AF_UNSPEC, UDP, netlink: nothing to check; the kernel
        // answers as it would have.
        _ => raw_connect(sock, addr),
    }
}

fn connect_unix(
    sock: &OwnedFd,
    sun_path: &[u8],
    context: &Context,
    policy: &GatePolicy,
) -> Result<i64, i32> {
    let path = match sun_path.iter().position(|&b| b == 0) {
        Some(0) if context.private_netns => {
            let mut addr = (libc::AF_UNIX as u16).to_ne_bytes().to_vec();
            addr.extend_from_slice(sun_path);
            return raw_connect(sock, &addr);
        }
        // What Landlock's scope answers for an abstract socket outside the sandbox.
        Some(0) => return Err(libc::EPERM),
        Some(end) => &sun_path[..end],
        None => sun_path,
    };
    let pinned = open_beneath(context.cwd.as_ref(), path)?;
    // SAFETY: fstat writes into the live local.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: valid descriptor, live out-parameter.
    if unsafe { libc::fstat(pinned.as_raw_fd(), &mut st) } != 0 {
        return Err(last_errno());
    }
    if st.st_mode & libc::S_IFMT != libc::S_IFSOCK {
        return Err(libc::ECONNREFUSED);
    }
    let magic = format!("/proc/self/fd/{}", pinned.as_raw_fd());
    // SAFETY: sockaddr_un is plain data.
    let mut sun: libc::sockaddr_un = unsafe { std::mem::zeroed() };
    sun.sun_family = libc::AF_UNIX as libc::sa_family_t;
    for (dst, src) in sun.sun_path.iter_mut().zip(magic.as_bytes()) {
        *dst = *src as libc::c_char;
    }
    let len = SUN_PATH_OFFSET + magic.len() + 1;
    // SAFETY: the pointer covers `len` initialised bytes of the live local.
    let bytes =
        unsafe { std::slice::from_raw_parts((&sun as *const libc::sockaddr_un).cast::<u8>(), len) };
    if policy.granted_by_name(st.st_dev, st.st_ino) {
        return raw_connect(sock, bytes);
    }
    let real = std::fs::read_link(&magic).map_err(|_| libc::EACCES)?;
    if !policy.beneath_writable(&real) {
        return Err(libc::EACCES);
    }
    // Beneath a writable grant (a shared /tmp, say) lie other programs' servers too: a tmux or
    // X11 socket would let the child type commands outside. Only servers the sandbox runs
    // itself are reachable there. The child's socket must not be connected before that is
    // decided (it could send at once), so a socket of ours connects, is checked, and then
    // takes the place of the child's descriptor.
    let conn = connect_checked(sock, bytes, context.root)?;
    let cloexec = fd_cloexec(context.tid, context.fd);
    let mut addfd = libc::seccomp_notif_addfd {
        id: context.id,
        flags: libc::SECCOMP_ADDFD_FLAG_SETFD as u32,
        srcfd: conn.as_raw_fd() as u32,
        newfd: context.fd as u32,
        newfd_flags: if cloexec { libc::O_CLOEXEC as u32 } else { 0 },
    };
    // SAFETY: the ioctl reads one seccomp_notif_addfd from the live local; it replaces the
    // child's descriptor like dup2 and leaves the call pending (answered with 0 next).
    if unsafe {
        libc::ioctl(
            context.listener,
            libc::SECCOMP_IOCTL_NOTIF_ADDFD,
            &mut addfd,
        )
    } < 0
    {
        return Err(last_errno());
    }
    Ok(0)
}

/// Whether the child's descriptor `fd` is close-on-exec, from `/proc/TID/fdinfo/FD`.
fn fd_cloexec(tid: libc::pid_t, fd: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{tid}/fdinfo/{fd}"))
        .ok()
        .and_then(|info| {
            info.lines()
                .find_map(|l| l.strip_prefix("flags:"))
                .and_then(|f| i64::from_str_radix(f.trim(), 8).ok())
        })
        .is_some_and(|flags| flags & i64::from(libc::O_CLOEXEC) != 0)
}

/// Connects a new socket of the child's type (and blocking mode) to `addr` and checks that
/// the listening process descends from `root`. Errors: the connect's own (`ECONNREFUSED`
/// when nothing listens), `EACCES` for a foreign or vanished listener.
fn connect_checked(sock: &OwnedFd, addr: &[u8], root: libc::pid_t) -> Result<OwnedFd, i32> {
    /// `SO_PEERPIDFD` (Linux 6.5+): a pidfd of the listening process.
    const SO_PEERPIDFD: libc::c_int = 77;
    let ty = sockopt(sock, libc::SO_TYPE)?;
    let nonblock = if is_nonblocking(sock) {
        libc::SOCK_NONBLOCK
    } else {
        0
    };
    // SAFETY: socket takes integers; the result is checked.
    let conn = unsafe { libc::socket(libc::AF_UNIX, ty | libc::SOCK_CLOEXEC | nonblock, 0) };
    if conn < 0 {
        return Err(last_errno());
    }
    // SAFETY: a fresh descriptor we own.
    let conn = unsafe { OwnedFd::from_raw_fd(conn) };
    raw_connect(&conn, addr)?;
    let mut pidfd: libc::c_int = -1;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: the kernel writes at most `len` bytes into the live local.
    let rc = unsafe {
        libc::getsockopt(
            conn.as_raw_fd(),
            libc::SOL_SOCKET,
            SO_PEERPIDFD,
            (&mut pidfd as *mut libc::c_int).cast(),
            &mut len,
        )
    };
    let pidfd = if rc == 0 && pidfd >= 0 {
        // SAFETY: a fresh descriptor we own.
        Some(unsafe { OwnedFd::from_raw_fd(pidfd) })
    } else if last_errno() == libc::ENOPROTOOPT {
        None // an older kernel: the pid alone
    } else {
        return Err(libc::EACCES); // the listening process is gone
    };
    let pid = peer_pid(&conn).ok_or(libc::EACCES)?;
    if !descends_from(pid, root) {
        return Err(libc::EACCES);
    }
    // The ancestry was read from /proc while the pidfd pinned the process: if it still
    // lives, its pid was not reused in between.
    if let Some(pidfd) = pidfd {
        // SAFETY: pidfd_send_signal with signal 0 only checks; no memory is passed.
        let alive = unsafe {
            libc::syscall(
                libc::SYS_pidfd_send_signal,
                pidfd.as_raw_fd(),
                0,
                std::ptr::null::<libc::siginfo_t>(),
                0,
            )
        } == 0;
        if !alive {
            return Err(libc::EACCES);
        }
    }
    Ok(conn)
}

/// The pid of the process at the other end of `sock` (the one that listened).
fn peer_pid(sock: &OwnedFd) -> Option<libc::pid_t> {
    // SAFETY: ucred is plain data.
    let mut cred: libc::ucred = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::ucred>() as libc::socklen_t;
    // SAFETY: the kernel writes at most `len` bytes into the live local.
    let rc = unsafe {
        libc::getsockopt(
            sock.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            (&mut cred as *mut libc::ucred).cast(),
            &mut len,
        )
    };
    (rc == 0 && cred.pid > 0).then_some(cred.pid)
}

/// Whether `pid` is `root` or descends from it (nono adopts the sandbox's orphans as their
/// subreaper; its other children, credential commands, are not confined).
fn descends_from(mut pid: libc::pid_t, root: libc::pid_t) -> bool {
    let supervisor = std::process::id() as libc::pid_t;
    // Bounded: a process tree deeper than this is not worth following.
    for _ in 0..256 {
        if pid == root {
            return true;
        }
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
fn is_confined(pid: libc::pid_t) -> bool {
    let count = |p: &str| -> Option<u32> {
        std::fs::read_to_string(format!("/proc/{p}/status"))
            .ok()?
            .lines()
            .find_map(|l| l.strip_prefix("Seccomp_filters:"))?
            .trim()
            .parse()
            .ok()
    };
    match (count(&pid.to_string()), count("self")) {
        (Some(theirs), Some(ours)) => theirs > ours,
        _ => false,
    }
}

/// Opens `path` with `O_PATH` as the child would resolve it (relative to `cwd` when given),
/// refusing magic links: `/proc/self/...` would otherwise name nono's descriptors, and
/// `/proc/PID/root` other mount namespaces.
fn open_beneath(cwd: Option<&OwnedFd>, path: &[u8]) -> Result<OwnedFd, i32> {
    let cpath = CString::new(path).map_err(|_| libc::EINVAL)?;
    let dirfd = cwd.map_or(libc::AT_FDCWD, |d| d.as_raw_fd());
    // SAFETY: open_how is plain data.
    let mut how: libc::open_how = unsafe { std::mem::zeroed() };
    how.flags = (libc::O_PATH | libc::O_CLOEXEC) as u64;
    how.resolve = libc::RESOLVE_NO_MAGICLINKS;
    // SAFETY: NUL-terminated path, a live open_how of the given size, a valid dirfd.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_openat2,
            dirfd,
            cpath.as_ptr(),
            &how as *const libc::open_how,
            std::mem::size_of::<libc::open_how>(),
        )
    };
    if fd < 0 {
        return Err(match last_errno() {
            // No openat2 (before Linux 5.6): refuse rather than resolve unsafely.
            libc::ENOSYS => libc::EACCES,
            e => e,
        });
    }
    // SAFETY: a fresh descriptor we own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

fn read_memory(mem: &std::fs::File, addr: u64, len: usize) -> Result<Vec<u8>, i32> {
    use std::os::unix::fs::FileExt;
    let mut buf = vec![0u8; len];
    if len > 0 {
        mem.read_exact_at(&mut buf, addr)
            .map_err(|_| libc::EFAULT)?;
    }
    Ok(buf)
}

fn sockopt(sock: &OwnedFd, name: libc::c_int) -> Result<libc::c_int, i32> {
    let mut value: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: the kernel writes at most `len` bytes into the live local.
    let rc = unsafe {
        libc::getsockopt(
            sock.as_raw_fd(),
            libc::SOL_SOCKET,
            name,
            (&mut value as *mut libc::c_int).cast(),
            &mut len,
        )
    };
    if rc != 0 {
        return Err(last_errno());
    }
    Ok(value)
}

fn raw_connect(sock: &OwnedFd, addr: &[u8]) -> Result<i64, i32> {
    // SAFETY: `addr` is a live buffer of the given length; the kernel copies it.
    let rc = unsafe {
        libc::connect(
            sock.as_raw_fd(),
            addr.as_ptr().cast(),
            addr.len() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(0)
    } else {
        Err(last_errno())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> GatePolicy {
        GatePolicy {
            writable: vec![PathBuf::from("/work/project")],
            named: vec![(7, 42)],
            tcp_connect_ports: Some(vec![22, 3000, 8080]),
            tcp_remote_ports: vec![22],
        }
    }

    #[test]
    fn sockets_beneath_writable_grants_or_granted_by_name() {
        let p = policy();
        assert!(p.beneath_writable(Path::new("/work/project/app.sock")));
        assert!(p.granted_by_name(7, 42));
        assert!(!p.granted_by_name(7, 43));
        assert!(!p.beneath_writable(Path::new("/run/user/1000/ssh-agent.sock")));
        assert!(!p.beneath_writable(Path::new("/work/project-other/app.sock")));
        for denied in ["/var/run/docker.sock", "/run/user/1000/bus"] {
            assert!(!p.beneath_writable(Path::new(denied)));
        }
    }

    #[test]
    fn tcp_ports_follow_landlock_and_local_ports_stay_on_loopback() {
        let p = policy();
        let lo: IpAddr = "127.0.0.1".parse().unwrap();
        let lo2: IpAddr = "127.3.4.5".parse().unwrap();
        let lo6: IpAddr = "::1".parse().unwrap();
        let mapped: IpAddr = "::ffff:127.0.0.1".parse().unwrap();
        let remote: IpAddr = "10.0.0.7".parse().unwrap();
        let remote6: IpAddr = "2001:db8::1".parse().unwrap();
        let any: IpAddr = "0.0.0.0".parse().unwrap();
        let any6: IpAddr = "::".parse().unwrap();
        for ip in [lo, lo2, lo6, mapped, any, any6] {
            assert!(p.allows_tcp(ip, 8080), "{ip}");
            assert!(p.allows_tcp(ip, 3000), "{ip}");
            assert!(!p.allows_tcp(ip, 443), "{ip}");
        }
        for ip in [remote, remote6] {
            assert!(!p.allows_tcp(ip, 8080), "{ip}");
            assert!(!p.allows_tcp(ip, 3000), "{ip}");
            assert!(p.allows_tcp(ip, 22), "{ip}");
            assert!(!p.allows_tcp(ip, 443), "{ip}");
        }
        let open = GatePolicy {
            tcp_connect_ports: None,
            ..policy()
        };
        assert!(open.allows_tcp(remote, 443));
    }

    #[test]
    fn inet_destinations_are_parsed_from_raw_addresses() {
        let mut v4 = vec![0u8; 16];
        v4[..2].copy_from_slice(&(libc::AF_INET as u16).to_ne_bytes());
        v4[2..4].copy_from_slice(&3000u16.to_be_bytes());
        v4[4..8].copy_from_slice(&[10, 0, 0, 7]);
        assert_eq!(
            inet_destination(&v4, libc::AF_INET),
            Some(("10.0.0.7".parse().unwrap(), 3000))
        );
        let mut v6 = vec![0u8; 28];
        v6[2..4].copy_from_slice(&22u16.to_be_bytes());
        v6[8..24].copy_from_slice(&"::1".parse::<std::net::Ipv6Addr>().unwrap().octets());
        assert_eq!(
            inet_destination(&v6, libc::AF_INET6),
            Some(("::1".parse().unwrap(), 22))
        );
        assert_eq!(inet_destination(&v4[..6], libc::AF_INET), None);
        assert_eq!(inet_destination(&v6[..20], libc::AF_INET6), None);
    }

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

    #[test]
    fn accepted_peers_are_loopback_only_when_tcp_is_restricted() {
        let mut v4 = vec![0u8; 16];
        v4[..2].copy_from_slice(&(libc::AF_INET as u16).to_ne_bytes());
        v4[4..8].copy_from_slice(&[127, 0, 0, 1]);
        assert!(policy().allows_peer(&v4, libc::AF_INET));
        v4[4..8].copy_from_slice(&[10, 1, 2, 3]);
        assert!(!policy().allows_peer(&v4, libc::AF_INET));
        let open = GatePolicy {
            tcp_connect_ports: None,
            ..policy()
        };
        assert!(open.allows_peer(&v4, libc::AF_INET));
        assert!(!policy().allows_peer(&v4[..3], libc::AF_INET));
    }
}
