//! A private network namespace for the child: only a loopback interface, so no address of
//! this machine or any other host is reachable, whatever ports Landlock allows.
//!
//! Landlock's TCP rules restrict ports, not addresses: a child allowed to connect to the
//! proxy port could reach that port on any host, and `listen()` without `bind()` takes an
//! ephemeral port Landlock never sees. In its own namespace neither leads anywhere. For proxy
//! mode the child binds the proxy's listening socket inside its namespace and hands it to the
//! supervisor over a socket pair (`SCM_RIGHTS`); the supervisor accepts on it from its own
//! namespace, so the proxy stays the only way out.
//!
//! Creating a network namespace needs `CAP_SYS_ADMIN` or an unprivileged user namespace; when
//! neither is allowed the outcome says so and the caller decides.

use std::net::TcpListener;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};

/// What the child should set up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PrivateNetwork {
    /// Bind and listen on `127.0.0.1:PORT` inside the namespace and hand the socket over.
    pub loopback_listener_port: Option<u16>,
}

/// What the child managed to set up.
#[derive(Debug)]
#[non_exhaustive]
pub enum NetnsOutcome {
    /// The child has its own namespace (with the listener, when one was asked for).
    Isolated {
        /// The listening socket inside the child's namespace.
        listener: Option<TcpListener>,
    },
    /// No namespace could be created; `errno` from the last `unshare` attempt.
    Unavailable {
        /// OS error number.
        errno: i32,
    },
}

/// Message bytes the child sends.
const MSG_ISOLATED: u8 = b'I';
const MSG_UNAVAILABLE: u8 = b'U';

/// Pre-formatted data for the child (no allocation after fork).
pub(crate) struct NetnsPlan {
    pub(crate) listener_port: Option<u16>,
    /// `"UID UID 1"` and `"GID GID 1"` for a user namespace.
    pub(crate) uid_map: Vec<u8>,
    pub(crate) gid_map: Vec<u8>,
}

impl NetnsPlan {
    pub(crate) fn new(net: &PrivateNetwork) -> NetnsPlan {
        let (uid_map, gid_map) = identity_maps();
        NetnsPlan {
            listener_port: net.loopback_listener_port,
            uid_map,
            gid_map,
        }
    }
}

/// `"UID UID 1"` and `"GID GID 1"`: a user namespace that maps only our own ids.
pub(super) fn identity_maps() -> (Vec<u8>, Vec<u8>) {
    let uid = nix::unistd::getuid().as_raw();
    let gid = nix::unistd::getgid().as_raw();
    (
        format!("{uid} {uid} 1").into_bytes(),
        format!("{gid} {gid} 1").into_bytes(),
    )
}

fn errno() -> libc::c_int {
    // SAFETY: __errno_location always returns a valid pointer to this thread's errno.
    unsafe { *libc::__errno_location() }
}

/// Child side: enter a private namespace, bring `lo` up, optionally bind the listener, and
/// report to the parent on `sock`. Returns false when a step after `unshare` failed (the
/// caller aborts the child).
///
/// # Safety
/// Only in the freshly forked child of a single-threaded parent; `sock` is the child's end of
/// the socket pair.
pub(crate) unsafe fn setup_in_child(plan: &NetnsPlan, sock: RawFd) -> bool {
    // SAFETY: raw system calls on locals and descriptors this process owns.
    unsafe {
        if libc::unshare(libc::CLONE_NEWNET) != 0 {
            let first = errno();
            if libc::unshare(libc::CLONE_NEWUSER | libc::CLONE_NEWNET) != 0
                || !write_id_maps(&plan.uid_map, &plan.gid_map)
            {
                let e = if first == libc::EPERM { errno() } else { first };
                send(sock, MSG_UNAVAILABLE, e, -1);
                return true;
            }
        }
        if !loopback_up() {
            return false;
        }
        let mut listener = -1;
        if let Some(port) = plan.listener_port {
            listener = bind_loopback(port);
            if listener < 0 {
                return false;
            }
        }
        let ok = send(sock, MSG_ISOLATED, 0, listener);
        if listener >= 0 {
            libc::close(listener);
        }
        ok
    }
}

/// Writes the identity maps of a fresh user namespace (see [`identity_maps`]).
///
/// # Safety
/// Async-signal-safe; for the forked child.
pub(super) unsafe fn write_id_maps(uid_map: &[u8], gid_map: &[u8]) -> bool {
    // SAFETY: the paths are NUL-terminated literals and the buffers are live.
    unsafe {
        write_file(c"/proc/self/setgroups".as_ptr(), b"deny")
            && write_file(c"/proc/self/uid_map".as_ptr(), uid_map)
            && write_file(c"/proc/self/gid_map".as_ptr(), gid_map)
    }
}

unsafe fn write_file(path: *const libc::c_char, data: &[u8]) -> bool {
    // SAFETY: `path` is a valid C string, `data` a live buffer.
    unsafe {
        let fd = libc::open(path, libc::O_WRONLY | libc::O_CLOEXEC);
        if fd < 0 {
            return false;
        }
        let n = libc::write(fd, data.as_ptr().cast(), data.len());
        libc::close(fd);
        n == data.len() as isize
    }
}

/// `ifconfig lo up` through `SIOCSIFFLAGS`.
unsafe fn loopback_up() -> bool {
    // SAFETY: `ifreq` is plain data zero-initialised here; the ioctls read and write it.
    unsafe {
        let s = libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0);
        if s < 0 {
            return false;
        }
        let mut req: libc::ifreq = std::mem::zeroed();
        for (dst, src) in req.ifr_name.iter_mut().zip(b"lo\0") {
            *dst = *src as libc::c_char;
        }
        let mut ok = libc::ioctl(s, libc::SIOCGIFFLAGS, &mut req) == 0;
        if ok {
            req.ifr_ifru.ifru_flags |= (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short;
            ok = libc::ioctl(s, libc::SIOCSIFFLAGS, &req) == 0;
        }
        libc::close(s);
        ok
    }
}

/// A TCP listener on `127.0.0.1:port`, or -1.
unsafe fn bind_loopback(port: u16) -> RawFd {
    // SAFETY: `addr` is a fully initialised sockaddr_in of the size we pass.
    unsafe {
        let s = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
        if s < 0 {
            return -1;
        }
        let mut addr: libc::sockaddr_in = std::mem::zeroed();
        addr.sin_family = libc::AF_INET as libc::sa_family_t;
        addr.sin_port = port.to_be();
        addr.sin_addr.s_addr = u32::from(std::net::Ipv4Addr::LOCALHOST).to_be();
        let len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
        if libc::bind(s, (&addr as *const libc::sockaddr_in).cast(), len) != 0
            || libc::listen(s, 1024) != 0
        {
            libc::close(s);
            return -1;
        }
        s
    }
}

/// Sends `[kind, errno(4 bytes)]`, with `fd` attached when it is not -1.
///
/// # Safety
/// Async-signal-safe; `sock` and `fd` must be descriptors this process owns.
pub(super) unsafe fn send(sock: RawFd, kind: u8, err: i32, fd: RawFd) -> bool {
    let mut payload = [0u8; 5];
    payload[0] = kind;
    payload[1..].copy_from_slice(&err.to_ne_bytes());
    // SAFETY: every pointer refers to a live local of the size given; the control buffer is
    // large and aligned enough for one descriptor (u64 array).
    unsafe {
        let mut iov = libc::iovec {
            iov_base: payload.as_mut_ptr().cast(),
            iov_len: payload.len(),
        };
        let mut control = [0u64; 4];
        let mut msg: libc::msghdr = std::mem::zeroed();
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        if fd >= 0 {
            let space = libc::CMSG_SPACE(std::mem::size_of::<RawFd>() as u32) as usize;
            msg.msg_control = control.as_mut_ptr().cast();
            msg.msg_controllen = space;
            let cmsg = libc::CMSG_FIRSTHDR(&msg);
            (*cmsg).cmsg_level = libc::SOL_SOCKET;
            (*cmsg).cmsg_type = libc::SCM_RIGHTS;
            (*cmsg).cmsg_len = libc::CMSG_LEN(std::mem::size_of::<RawFd>() as u32) as usize;
            std::ptr::copy_nonoverlapping(
                (&fd as *const RawFd).cast::<u8>(),
                libc::CMSG_DATA(cmsg),
                std::mem::size_of::<RawFd>(),
            );
        }
        libc::sendmsg(sock, &msg, 0) == payload.len() as isize
    }
}

/// Parent side: reads the child's report. `None` when the child died before reporting (its
/// setup failure then arrives through the exec error pipe).
pub(crate) fn receive(sock: &OwnedFd) -> Option<NetnsOutcome> {
    let (kind, err, received) = receive_message(sock)?;
    match kind {
        MSG_ISOLATED => Some(NetnsOutcome::Isolated {
            listener: received.map(TcpListener::from),
        }),
        MSG_UNAVAILABLE => Some(NetnsOutcome::Unavailable { errno: err }),
        _ => None,
    }
}

/// Reads one message sent with [`send`]: its kind, errno and the descriptor, if one came.
/// `None` when the peer closed without sending.
pub(super) fn receive_message(sock: &OwnedFd) -> Option<(u8, i32, Option<OwnedFd>)> {
    use std::os::fd::AsRawFd;
    let mut payload = [0u8; 5];
    let mut control = [0u64; 4];
    // SAFETY: as in `send`; we read at most one descriptor and take ownership of it.
    unsafe {
        let mut iov = libc::iovec {
            iov_base: payload.as_mut_ptr().cast(),
            iov_len: payload.len(),
        };
        let mut msg: libc::msghdr = std::mem::zeroed();
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control.as_mut_ptr().cast();
        msg.msg_controllen = std::mem::size_of_val(&control);
        let n = loop {
            let n = libc::recvmsg(sock.as_raw_fd(), &mut msg, libc::MSG_CMSG_CLOEXEC);
            if n >= 0 || errno() != libc::EINTR {
                break n;
            }
        };
        if n != payload.len() as isize {
            return None;
        }
        let mut received: Option<OwnedFd> = None;
        let cmsg = libc::CMSG_FIRSTHDR(&msg);
        if !cmsg.is_null()
            && (*cmsg).cmsg_level == libc::SOL_SOCKET
            && (*cmsg).cmsg_type == libc::SCM_RIGHTS
        {
            let mut fd: RawFd = -1;
            std::ptr::copy_nonoverlapping(
                libc::CMSG_DATA(cmsg),
                (&mut fd as *mut RawFd).cast::<u8>(),
                std::mem::size_of::<RawFd>(),
            );
            if fd >= 0 {
                received = Some(OwnedFd::from_raw_fd(fd));
            }
        }
        let err = i32::from_ne_bytes([payload[1], payload[2], payload[3], payload[4]]);
        Some((payload[0], err, received))
    }
}
