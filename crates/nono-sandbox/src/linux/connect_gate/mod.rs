//! The connect gate: the supervisor performs the child's `connect(2)` (and, when the network
//! is restricted, `accept(2)`) calls.
//!
//! Landlock (up to ABI 8) does not restrict connecting to a pathname UNIX socket, and its TCP
//! rules name ports, not addresses. A seccomp filter (`filter`) turns each call into a user
//! notification. A thread of nono reads the address from the child's memory once, takes a
//! duplicate of the child's socket (`pidfd_getfd`: the same open file), decides, and performs
//! the call itself. It never answers "continue": the kernel would then read the address and
//! the descriptor again, and a second thread in the child could swap either in between.
//!
//! Decisions (`policy`, `connect`, `accept`):
//! - Pathname UNIX sockets, opened `O_PATH` as the child would resolve them (magic links
//!   refused) and connected through `/proc/self/fd/N`, so the inode checked is the inode
//!   connected: a socket granted by name (device and inode taken at start), or one beneath a
//!   read-write grant whose listening process belongs to the sandbox. For the latter a socket
//!   of nono's connects first, is checked, and replaces the child's descriptor: the child's
//!   own socket is never connected to a server it may not reach.
//! - Abstract UNIX sockets: inside the child's private network namespace only (they belong to
//!   it); elsewhere Landlock's scope would be judged against nono, so they are refused.
//! - TCP: Landlock's port rules; loopback and this machine's own addresses only on local
//!   ports (the proxy, `--open-port`, direct entries naming this machine), other hosts only
//!   on the ports of direct `host:port` entries. Accepted peers: loopback only.
//! - Anything else (UDP, netlink): performed as asked; seccomp limits which sockets exist.
//!
//! The gate threads block signals and drop all capabilities (`mod.rs`); `task` holds what the
//! gate knows of the calling process and reaps the sandbox's orphans (nono is their
//! subreaper).

mod accept;
mod connect;
mod filter;
mod policy;
mod task;

use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use accept::accept_for_child;
use connect::decide;
pub(crate) use filter::notify_filter;
pub(crate) use policy::GatePolicy;
use task::{reap_orphans, Task};
pub(crate) use task::{register_root, unregister_root};

/// `sizeof(struct sockaddr_storage)`: the kernel refuses longer addresses with `EINVAL`.
pub(super) const MAX_ADDR_LEN: usize = 128;
/// `offsetof(struct sockaddr_un, sun_path)`.
pub(super) const SUN_PATH_OFFSET: usize = 2;

/// Starts the supervisor thread serving `listener` (the child's notification descriptor) for
/// the sandbox. It ends when every process using the filter has
/// exited.
pub(crate) fn serve(listener: OwnedFd, policy: GatePolicy) -> io::Result<()> {
    let gate = Arc::new(Gate {
        listener,
        policy,
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
pub(super) struct Gate {
    listener: OwnedFd,
    policy: GatePolicy,
    /// Worker threads alive for blocking connects (and path lookups).
    workers: AtomicUsize,
    /// Worker threads alive for blocking accepts.
    acceptors: AtomicUsize,
}

/// Blocking connects served at once; beyond this they fail with `EAGAIN`.
const MAX_WORKERS: usize = 256;
/// Blocking accepts served at once (each waits for a client, possibly forever).
const MAX_ACCEPTORS: usize = 1024;
/// How often the receive loop reaps orphaned sandbox processes.
const REAP_INTERVAL_MS: libc::c_int = 1000;
/// How often a worker blocked in `accept` checks that its call is still wanted.
pub(super) const ACCEPT_RECHECK_MS: libc::c_int = 200;

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

pub(super) fn last_errno() -> i32 {
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
        // Blocking accepts can wait for ever: they have their own, larger budget, so they
        // never starve connects (over it, the accept fails like one out of descriptors). A
        // UNIX connect to a listener that never accepts can block for ever too: over its
        // budget it fails at once (EAGAIN, as for a full backlog) rather than stalling the
        // gate for everyone.
        let accept = is_accept(&req);
        let (max, over) = if accept {
            (MAX_ACCEPTORS, libc::EMFILE)
        } else {
            (MAX_WORKERS, libc::EAGAIN)
        };
        let counter = gate.slots(accept);
        if counter.load(Ordering::Acquire) >= max {
            respond(fd, req.id, Err(over));
            continue;
        }
        counter.fetch_add(1, Ordering::AcqRel);
        let worker_gate = Arc::clone(gate);
        let spawned = std::thread::Builder::new()
            .name("nono-connect".into())
            .spawn(move || {
                // Given back even if the worker panics.
                let _slot = Slot(worker_gate.slots(accept));
                answer(&worker_gate, &req, task, sock);
            });
        if spawned.is_err() {
            counter.fetch_sub(1, Ordering::AcqRel);
            respond(fd, req.id, Err(libc::EAGAIN));
        }
    }
}

/// Whether the call is `accept`/`accept4` (else `connect`).
fn is_accept(req: &libc::seccomp_notif) -> bool {
    let nr = i64::from(req.data.nr);
    nr == libc::SYS_accept || nr == libc::SYS_accept4
}

impl Gate {
    /// The worker budget of accepts or of connects.
    fn slots(&self, accept: bool) -> &AtomicUsize {
        if accept {
            &self.acceptors
        } else {
            &self.workers
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

pub(super) fn is_nonblocking(sock: &OwnedFd) -> bool {
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
    let result = match (task, sock) {
        (Ok(task), Ok(sock)) if is_accept(req) => {
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

pub(super) fn respond(listener: RawFd, id: u64, result: Result<i64, i32>) {
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
pub(super) fn still_valid(listener: RawFd, id: u64) -> bool {
    let mut id = id;
    // SAFETY: the ioctl reads one u64 from the live local.
    unsafe { libc::ioctl(listener, libc::SECCOMP_IOCTL_NOTIF_ID_VALID, &mut id) == 0 }
}

/// Plain-data option values `getsockopt` may fill (any bit pattern is valid).
pub(super) trait OptionValue: Copy {}
impl OptionValue for libc::c_int {}
impl OptionValue for libc::ucred {}
impl OptionValue for libc::timeval {}

/// `getsockopt(SOL_SOCKET, name)` into a `T`.
pub(super) fn sockopt_as<T: OptionValue>(sock: &OwnedFd, name: libc::c_int) -> Result<T, i32> {
    // SAFETY: T is one of the plain C structs above, for which all zeroes is a valid value.
    let mut value: T = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<T>() as libc::socklen_t;
    // SAFETY: the kernel writes at most `len` bytes into the live local.
    let rc = unsafe {
        libc::getsockopt(
            sock.as_raw_fd(),
            libc::SOL_SOCKET,
            name,
            (&mut value as *mut T).cast(),
            &mut len,
        )
    };
    if rc != 0 {
        return Err(last_errno());
    }
    Ok(value)
}

pub(super) fn sockopt(sock: &OwnedFd, name: libc::c_int) -> Result<libc::c_int, i32> {
    sockopt_as(sock, name)
}

pub(super) fn raw_connect(sock: &OwnedFd, addr: &[u8]) -> Result<i64, i32> {
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
