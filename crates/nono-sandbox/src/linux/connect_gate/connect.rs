//! `connect` performed for the child: UNIX socket paths, TCP ports and addresses.

use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use super::policy::{inet_destination, GatePolicy};
use super::task::{in_sandbox, peer_pid, Task};
use super::{
    is_nonblocking, last_errno, raw_connect, sockopt, sockopt_as, still_valid, Gate, MAX_ADDR_LEN,
    SUN_PATH_OFFSET,
};

/// Everything about the calling task the decision needs, gathered before validation.
struct Context {
    /// The task's working directory, when the address is a relative socket path.
    cwd: Option<OwnedFd>,
    /// The task's own root, when it lives in the sandbox's mount namespace: socket paths are
    /// resolved beneath it, as the task sees them.
    root: Option<OwnedFd>,
    /// The task lives in its own network namespace.
    private_netns: bool,
    /// The task lives in its own mount namespace.
    private_mounts: bool,
    /// The calling task, its socket's descriptor number, the call's id and the gate's
    /// listener: to put a checked connection in the child's place.
    tid: libc::pid_t,
    fd: i32,
    id: u64,
    listener: RawFd,
}

/// Performs or refuses a `connect`; `None` when it was withdrawn.
pub(super) fn decide(
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
        let is_unix = addr.get(..2) == Some(&(libc::AF_UNIX as u16).to_ne_bytes()[..]);
        let cwd = if relative_unix_path {
            Some(task.cwd()?)
        } else {
            None
        };
        let root = if is_unix && !relative_unix_path && task.in_private_mount_namespace() {
            Some(task.root()?)
        } else {
            None
        };
        let context = Context {
            cwd,
            root,
            private_netns: task.in_private_network_namespace(),
            private_mounts: task.in_private_mount_namespace(),
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
    let pinned = match &context.root {
        Some(root) => open_in_root(root, path)?,
        None => open_beneath(context.cwd.as_ref(), path, context.private_mounts)?,
    };
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
    // itself are reachable there, and the child's socket must not be connected before that is
    // decided (it could send at once). So a socket of nono's connects and is checked, then
    // takes the place of the child's descriptor: the server sees exactly one connection.
    // What the kernel would refuse on the child's socket is refused first.
    if name_len(sock, true).is_some() {
        return Err(libc::EISCONN);
    }
    if sockopt(sock, libc::SO_ACCEPTCONN)? != 0 {
        return Err(libc::EINVAL);
    }
    if name_len(sock, false).is_some_and(|len| len > SUN_PATH_OFFSET) {
        // A bound client socket cannot be replaced without losing its name: check with a
        // probe (the server sees one extra, empty connection), then connect the child's own
        // socket to the same pinned inode, which can only lead to the same listener.
        drop(connect_checked(sock, bytes)?);
        return raw_connect(sock, bytes);
    }
    let conn = connect_checked(sock, bytes)?;
    // The descriptor number must still name the socket the call was made on (another thread
    // may have closed and reused it meanwhile); otherwise the call fails as on a closed fd.
    let current = Task::open(context.tid).and_then(|t| t.take_socket(context.fd));
    if !current.is_ok_and(|c| same_file(&c, sock)) {
        return Err(libc::EBADF);
    }
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

/// The length of the socket's own (`peer` false) or peer's address; `None` when the call
/// fails (for the peer: not connected).
fn name_len(sock: &OwnedFd, peer: bool) -> Option<usize> {
    // SAFETY: sockaddr_storage is plain data.
    let mut addr: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    let call = if peer {
        libc::getpeername
    } else {
        libc::getsockname
    };
    // SAFETY: the kernel writes at most `len` bytes into the live local.
    let rc = unsafe {
        call(
            sock.as_raw_fd(),
            (&mut addr as *mut libc::sockaddr_storage).cast(),
            &mut len,
        )
    };
    (rc == 0).then_some(len as usize)
}

/// Whether two descriptors are the same open socket (socket inodes are unique).
fn same_file(a: &OwnedFd, b: &OwnedFd) -> bool {
    // SAFETY: stat is plain data; fstat writes into the live locals.
    let (mut sa, mut sb): (libc::stat, libc::stat) =
        unsafe { (std::mem::zeroed(), std::mem::zeroed()) };
    // SAFETY: valid descriptors and live out-parameters.
    let ok = unsafe {
        libc::fstat(a.as_raw_fd(), &mut sa) == 0 && libc::fstat(b.as_raw_fd(), &mut sb) == 0
    };
    ok && (sa.st_dev, sa.st_ino) == (sb.st_dev, sb.st_ino)
}

/// Copies the options a client commonly sets before connecting from the child's socket to
/// the one that replaces it (buffer sizes, timeouts, credential passing).
fn copy_options(from: &OwnedFd, to: &OwnedFd) {
    for name in [libc::SO_SNDBUF, libc::SO_RCVBUF] {
        // The kernel reports twice what was set; setting half gives the same value back.
        if let Ok(v) = sockopt(from, name) {
            set_sockopt(to, name, &(v / 2));
        }
    }
    if let Ok(v) = sockopt(from, libc::SO_PASSCRED) {
        set_sockopt(to, libc::SO_PASSCRED, &v);
    }
    for name in [libc::SO_RCVTIMEO, libc::SO_SNDTIMEO] {
        if let Ok(tv) = sockopt_as::<libc::timeval>(from, name) {
            set_sockopt(to, name, &tv);
        }
    }
}

fn set_sockopt<T>(sock: &OwnedFd, name: libc::c_int, value: &T) {
    // SAFETY: the kernel reads size_of::<T>() bytes from the live reference.
    unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            libc::SOL_SOCKET,
            name,
            (value as *const T).cast(),
            std::mem::size_of::<T>() as libc::socklen_t,
        )
    };
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

/// Connects a new socket of the child's type, blocking mode and options to `addr` and checks
/// that the listening process belongs to the sandbox. Errors: the connect's own
/// (`ECONNREFUSED` when nothing listens), `EACCES` for a foreign or vanished listener.
fn connect_checked(sock: &OwnedFd, addr: &[u8]) -> Result<OwnedFd, i32> {
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
    copy_options(sock, &conn);
    raw_connect(&conn, addr)?;
    let got = sockopt_as::<libc::c_int>(&conn, SO_PEERPIDFD);
    let pidfd = match got {
        // SAFETY: a fresh descriptor we own.
        Ok(fd) if fd >= 0 => Some(unsafe { OwnedFd::from_raw_fd(fd) }),
        Err(libc::ENOPROTOOPT) => None, // an older kernel: the pid alone
        _ => return Err(libc::EACCES),  // the listening process is gone
    };
    let pid = peer_pid(&conn).ok_or(libc::EACCES)?;
    if !in_sandbox(pid) {
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

/// Opens `path` with `O_PATH` as the child would resolve it (relative to `cwd` when given),
/// refusing magic links: `/proc/self/...` would otherwise name nono's descriptors, and
/// `/proc/PID/root` other mount namespaces.
///
/// For a task in the sandbox's own mount namespace a relative path must stay beneath its
/// working directory (`RESOLVE_BENEATH`): `..` or an absolute symlink would otherwise be
/// resolved against nono's root, not the task's.
fn open_beneath(cwd: Option<&OwnedFd>, path: &[u8], private_mounts: bool) -> Result<OwnedFd, i32> {
    let dirfd = cwd.map_or(libc::AT_FDCWD, |d| d.as_raw_fd());
    let mut resolve = libc::RESOLVE_NO_MAGICLINKS;
    if private_mounts {
        resolve |= libc::RESOLVE_BENEATH;
    }
    openat2_path(dirfd, path, resolve)
}

/// Opens the absolute `path` beneath the task's own `root`, as the task would resolve it
/// (`RESOLVE_IN_ROOT`: `..` and absolute symlinks stay inside that root).
fn open_in_root(root: &OwnedFd, path: &[u8]) -> Result<OwnedFd, i32> {
    let relative = path.strip_prefix(b"/").unwrap_or(path);
    let relative: &[u8] = if relative.is_empty() { b"." } else { relative };
    openat2_path(
        root.as_raw_fd(),
        relative,
        libc::RESOLVE_IN_ROOT | libc::RESOLVE_NO_MAGICLINKS,
    )
}

fn openat2_path(dirfd: RawFd, path: &[u8], resolve: u64) -> Result<OwnedFd, i32> {
    let cpath = CString::new(path).map_err(|_| libc::EINVAL)?;
    // SAFETY: open_how is plain data.
    let mut how: libc::open_how = unsafe { std::mem::zeroed() };
    how.flags = (libc::O_PATH | libc::O_CLOEXEC) as u64;
    how.resolve = resolve;
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
