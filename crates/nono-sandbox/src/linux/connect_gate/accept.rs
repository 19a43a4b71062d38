//! `accept`/`accept4` performed for the child, dropping peers the policy refuses.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use super::task::Task;
use super::{is_nonblocking, last_errno, respond, still_valid, Gate, ACCEPT_RECHECK_MS};

/// `accept`/`accept4` on the child's behalf, dropping connections from other hosts (a
/// server bound to a wildcard address in the shared namespace, or an ephemeral port taken by
/// `listen()` without `bind()`). The accepted socket is installed into the child with
/// `SECCOMP_IOCTL_NOTIF_ADDFD`, which also answers the call.
pub(super) fn accept_for_child(
    gate: &Gate,
    req: &libc::seccomp_notif,
    task: &Task,
    sock: &OwnedFd,
) {
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
