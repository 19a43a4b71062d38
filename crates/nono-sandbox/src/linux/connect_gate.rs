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
//!   directory when relative), its real path must lie beneath a read-write grant or be granted
//!   itself, and the socket is connected through `/proc/self/fd/N`, so the inode checked is the
//!   inode connected (no symlink or rename race).
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
    /// Real paths of granted non-directories: a socket granted by name may be connected.
    files: Vec<PathBuf>,
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
            files: plan
                .fs
                .iter()
                .filter(|r| !r.is_dir)
                .map(|r| real(&r.path))
                .collect(),
            tcp_connect_ports: plan.net.as_ref().map(|n| n.connect_ports.clone()),
            tcp_remote_ports: plan
                .net
                .as_ref()
                .map(|n| n.remote_ports.clone())
                .unwrap_or_default(),
        }
    }

    /// Whether a UNIX socket whose real path is `path` may be connected.
    fn allows_socket(&self, path: &Path) -> bool {
        self.files.iter().any(|f| f == path) || self.writable.iter().any(|w| path.starts_with(w))
    }

    /// Whether a TCP connect to `ip`:`port` is allowed: the port as Landlock would decide for
    /// the child, and only loopback for ports that are not open towards other hosts.
    fn allows_tcp(&self, ip: IpAddr, port: u16) -> bool {
        let Some(ports) = &self.tcp_connect_ports else {
            return true;
        };
        ports.contains(&port) && (is_loopback(ip) || self.tcp_remote_ports.contains(&port))
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

/// Starts the supervisor thread serving `listener` (the child's notification descriptor).
/// It ends when every process using the filter has exited.
pub(crate) fn serve(listener: OwnedFd, policy: Arc<GatePolicy>) -> io::Result<()> {
    let listener = Arc::new(listener);
    std::thread::Builder::new()
        .name("nono-connect-gate".into())
        .spawn(move || receive_loop(&listener, &policy))?;
    Ok(())
}

fn last_errno() -> i32 {
    io::Error::last_os_error()
        .raw_os_error()
        .unwrap_or(libc::EIO)
}

fn receive_loop(listener: &Arc<OwnedFd>, policy: &Arc<GatePolicy>) {
    let fd = listener.as_raw_fd();
    loop {
        let mut pfd = libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one live pollfd, count 1.
        let n = unsafe { libc::poll(&mut pfd, 1, -1) };
        if n < 0 {
            if last_errno() == libc::EINTR {
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
        // A non-blocking socket answers at once: handle it here, sparing a thread start and
        // a wake-up. A blocking connect or accept can take minutes: it gets its own thread.
        if is_nonblocking(req.pid as libc::pid_t, req.data.args[0] as u32 as i32) {
            answer(listener, &req, policy);
            continue;
        }
        let listener = Arc::clone(listener);
        let policy = Arc::clone(policy);
        let spawned = std::thread::Builder::new()
            .name("nono-connect".into())
            .spawn(move || answer(&listener, &req, &policy));
        if spawned.is_err() {
            respond(fd, req.id, Err(libc::EAGAIN));
        }
    }
}

/// Whether the child's descriptor `fd` is a non-blocking socket (false when unsure).
fn is_nonblocking(pid: libc::pid_t, fd: i32) -> bool {
    let Ok(sock) = take_socket(pid, fd) else {
        return false;
    };
    // SAFETY: F_GETFL on a descriptor we own.
    let flags = unsafe { libc::fcntl(sock.as_raw_fd(), libc::F_GETFL) };
    flags >= 0 && flags & libc::O_NONBLOCK != 0
}

fn answer(listener: &OwnedFd, req: &libc::seccomp_notif, policy: &GatePolicy) {
    let fd = listener.as_raw_fd();
    let nr = i64::from(req.data.nr);
    if nr == libc::SYS_accept || nr == libc::SYS_accept4 {
        accept_for_child(fd, req, policy);
        return;
    }
    // None: the notification is no longer valid (the task is gone), nobody to answer.
    if let Some(result) = decide(fd, req, policy) {
        respond(fd, req.id, result);
    }
}

/// `accept`/`accept4` on the child's behalf, dropping connections from other hosts when the
/// policy restricts TCP (a server bound to a wildcard address in the shared namespace, or an
/// ephemeral port taken by `listen()` without `bind()`). The accepted socket is installed
/// into the child with `SECCOMP_IOCTL_NOTIF_ADDFD`, which also answers the call.
fn accept_for_child(listener: RawFd, req: &libc::seccomp_notif, policy: &GatePolicy) {
    let pid = req.pid as libc::pid_t;
    let [sockfd, addr_ptr, len_ptr, flags, ..] = req.data.args;
    let flags = if i64::from(req.data.nr) == libc::SYS_accept4 {
        flags as u32 as i32
    } else {
        0
    };
    if flags & !(libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK) != 0 {
        respond(listener, req.id, Err(libc::EINVAL));
        return;
    }
    let sock = take_socket(pid, sockfd as u32 as i32);
    if !still_valid(listener, req.id) {
        return;
    }
    let result = sock.and_then(|sock| accept_allowed(&sock, policy));
    let (conn, peer) = match result {
        Ok(accepted) => accepted,
        Err(e) => return respond(listener, req.id, Err(e)),
    };
    if flags & libc::SOCK_NONBLOCK != 0 {
        // SAFETY: F_SETFL on a descriptor we own.
        unsafe { libc::fcntl(conn.as_raw_fd(), libc::F_SETFL, libc::O_NONBLOCK) };
    }
    if addr_ptr != 0 {
        if let Err(e) = write_peer_address(pid, addr_ptr, len_ptr, &peer) {
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

/// Accepts on the child's listening socket until a connection the policy allows arrives (or
/// the socket reports an error such as `EAGAIN`).
fn accept_allowed(sock: &OwnedFd, policy: &GatePolicy) -> Result<(OwnedFd, Vec<u8>), i32> {
    loop {
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
            return Err(e);
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
            && !policy.allows_peer(&peer, family)
        {
            // Dropped: the remote side sees the connection closed.
            continue;
        }
        return Ok((conn, peer));
    }
}

/// Writes the peer address to the child's `addr`/`*addrlen` as `accept` would: truncated to
/// the buffer size the child gave, with the full length stored back.
fn write_peer_address(
    pid: libc::pid_t,
    addr_ptr: u64,
    len_ptr: u64,
    peer: &[u8],
) -> Result<(), i32> {
    use std::os::unix::fs::FileExt;
    if len_ptr == 0 {
        return Err(libc::EFAULT);
    }
    let mem = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(format!("/proc/{pid}/mem"))
        .map_err(|_| libc::EFAULT)?;
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

/// Performs or refuses the call; `None` when it was withdrawn.
fn decide(
    listener: RawFd,
    req: &libc::seccomp_notif,
    policy: &GatePolicy,
) -> Option<Result<i64, i32>> {
    let pid = req.pid as libc::pid_t;
    let [sockfd, addr_ptr, addr_len, ..] = req.data.args;
    // connect's descriptor and length are ints: only the low 32 bits count.
    let sockfd = sockfd as u32 as i32;
    let addr_len = addr_len as u32 as usize;
    if addr_len > MAX_ADDR_LEN {
        return Some(Err(libc::EINVAL));
    }
    let addr = match read_child_memory(pid, addr_ptr, addr_len) {
        Ok(a) => a,
        Err(e) => return still_valid(listener, req.id).then_some(Err(e)),
    };
    let sock = take_socket(pid, sockfd);
    // Everything read so far belongs to this call only if it is still pending.
    if !still_valid(listener, req.id) {
        return None;
    }
    let sock = match sock {
        Ok(s) => s,
        Err(e) => return Some(Err(e)),
    };
    Some(connect_for_child(&sock, &addr, pid, policy))
}

fn connect_for_child(
    sock: &OwnedFd,
    addr: &[u8],
    pid: libc::pid_t,
    policy: &GatePolicy,
) -> Result<i64, i32> {
    let domain = sockopt(sock, libc::SO_DOMAIN)?;
    let family = addr
        .get(..2)
        .map(|b| i32::from(u16::from_ne_bytes([b[0], b[1]])));
    match domain {
        libc::AF_UNIX if family == Some(libc::AF_UNIX) && addr.len() > SUN_PATH_OFFSET => {
            connect_unix(sock, &addr[SUN_PATH_OFFSET..], pid, policy)
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
    pid: libc::pid_t,
    policy: &GatePolicy,
) -> Result<i64, i32> {
    let path = match sun_path.iter().position(|&b| b == 0) {
        Some(0) if in_private_network_namespace(sock) => {
            let mut addr = (libc::AF_UNIX as u16).to_ne_bytes().to_vec();
            addr.extend_from_slice(sun_path);
            return raw_connect(sock, &addr);
        }
        Some(0) => return Err(libc::EACCES),
        Some(end) => &sun_path[..end],
        None => sun_path,
    };
    let pinned = open_in_child_view(pid, path)?;
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
    let real = std::fs::read_link(&magic).map_err(|e| e.raw_os_error().unwrap_or(libc::EACCES))?;
    if !policy.allows_socket(&real) {
        return Err(libc::EACCES);
    }
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
    raw_connect(sock, bytes)
}

/// Whether `sock` was created in another network namespace than the supervisor's (the
/// child's private one).
fn in_private_network_namespace(sock: &OwnedFd) -> bool {
    /// `SIOCGSKNS`: a descriptor for the socket's network namespace.
    const SIOCGSKNS: libc::c_ulong = 0x894C;
    // SAFETY: SIOCGSKNS takes no argument and returns a new descriptor or -1.
    let ns = unsafe { libc::ioctl(sock.as_raw_fd(), SIOCGSKNS as _) };
    if ns < 0 {
        return false;
    }
    // SAFETY: a fresh descriptor we own.
    let ns = unsafe { OwnedFd::from_raw_fd(ns) };
    let theirs = std::fs::metadata(format!("/proc/self/fd/{}", ns.as_raw_fd()));
    let ours = std::fs::metadata("/proc/self/ns/net");
    use std::os::unix::fs::MetadataExt;
    match (theirs, ours) {
        (Ok(a), Ok(b)) => (a.dev(), a.ino()) != (b.dev(), b.ino()),
        _ => false,
    }
}

/// Opens `path` with `O_PATH` as the child would resolve it: relative to its working directory.
fn open_in_child_view(pid: libc::pid_t, path: &[u8]) -> Result<OwnedFd, i32> {
    let cpath = CString::new(path).map_err(|_| libc::EINVAL)?;
    let base = if path.first() == Some(&b'/') {
        None
    } else {
        let cwd = CString::new(format!("/proc/{pid}/cwd")).map_err(|_| libc::EINVAL)?;
        // SAFETY: NUL-terminated path; the result is checked.
        let fd = unsafe {
            libc::open(
                cwd.as_ptr(),
                libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC,
            )
        };
        if fd < 0 {
            return Err(last_errno());
        }
        // SAFETY: a fresh descriptor we own.
        Some(unsafe { OwnedFd::from_raw_fd(fd) })
    };
    let dirfd = base.as_ref().map_or(libc::AT_FDCWD, |b| b.as_raw_fd());
    // SAFETY: NUL-terminated path and a valid directory descriptor (or AT_FDCWD).
    let fd = unsafe { libc::openat(dirfd, cpath.as_ptr(), libc::O_PATH | libc::O_CLOEXEC) };
    if fd < 0 {
        return Err(last_errno());
    }
    // SAFETY: a fresh descriptor we own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn read_child_memory(pid: libc::pid_t, addr: u64, len: usize) -> Result<Vec<u8>, i32> {
    use std::os::unix::fs::FileExt;
    let mut buf = vec![0u8; len];
    if len == 0 {
        return Ok(buf);
    }
    let mem = std::fs::File::open(format!("/proc/{pid}/mem")).map_err(|_| libc::EFAULT)?;
    mem.read_exact_at(&mut buf, addr)
        .map_err(|_| libc::EFAULT)?;
    Ok(buf)
}

/// A duplicate of the child's descriptor `fd` (the same open socket).
fn take_socket(pid: libc::pid_t, fd: i32) -> Result<OwnedFd, i32> {
    // SAFETY: pidfd_open takes a pid and flags; the result is checked.
    let pidfd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if pidfd < 0 {
        return Err(libc::ESRCH);
    }
    // SAFETY: a fresh descriptor we own.
    let pidfd = unsafe { OwnedFd::from_raw_fd(pidfd as RawFd) };
    // SAFETY: pidfd_getfd takes a pidfd, a descriptor number and flags; the result is checked.
    let dup = unsafe { libc::syscall(libc::SYS_pidfd_getfd, pidfd.as_raw_fd(), fd, 0) };
    if dup < 0 {
        return Err(match last_errno() {
            libc::EBADF => libc::EBADF,
            // Not allowed to look into the child: refuse rather than let it through.
            _ => libc::EACCES,
        });
    }
    // SAFETY: a fresh descriptor we own.
    let dup = unsafe { OwnedFd::from_raw_fd(dup as RawFd) };
    sockopt(&dup, libc::SO_TYPE)?; // ENOTSOCK, as connect would say
    Ok(dup)
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
            files: vec![PathBuf::from("/run/user/1000/ssh-agent.sock")],
            tcp_connect_ports: Some(vec![22, 3000, 8080]),
            tcp_remote_ports: vec![22],
        }
    }

    #[test]
    fn sockets_beneath_writable_grants_or_granted_by_name() {
        let p = policy();
        assert!(p.allows_socket(Path::new("/work/project/app.sock")));
        assert!(p.allows_socket(Path::new("/run/user/1000/ssh-agent.sock")));
        assert!(!p.allows_socket(Path::new("/work/project-other/app.sock")));
        assert!(!p.allows_socket(Path::new("/var/run/docker.sock")));
        assert!(!p.allows_socket(Path::new("/run/user/1000/bus")));
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
        for ip in [lo, lo2, lo6, mapped] {
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
