//! Byte relay between a client and an upstream, both directions, with half-close.
//!
//! On Linux bytes move socket → pipe → socket with `splice(2)` and never enter user space;
//! the pipe is created on the first byte, so an idle tunnel costs two sockets and a small
//! task. Elsewhere it falls back to tokio's buffered copy.

use std::io;

use tokio::net::TcpStream;

/// Relays until both directions have ended; returns bytes (client→upstream, upstream→client).
pub async fn relay(client: TcpStream, upstream: TcpStream) -> io::Result<(u64, u64)> {
    imp::relay(client, upstream).await
}

#[cfg(target_os = "linux")]
mod imp {
    use std::io;
    use std::os::fd::{AsFd, AsRawFd};

    use nix::fcntl::{fcntl, splice, FcntlArg, OFlag, SpliceFFlags};
    use nix::sys::socket::{shutdown, Shutdown};
    use tokio::io::Interest;
    use tokio::net::TcpStream;

    /// Pipe capacity we ask for, and bytes moved per splice call: fewer, larger splices
    /// halve the per-byte cost on fast paths. The kernel may grant less; we read it back.
    const PIPE_SIZE: i32 = 1024 * 1024;
    /// Used when the pipe cannot be enlarged (e.g. over /proc/sys/fs/pipe-max-size).
    const DEFAULT_PIPE_SIZE: usize = 64 * 1024;

    pub async fn relay(client: TcpStream, upstream: TcpStream) -> io::Result<(u64, u64)> {
        let up = pump(&client, &upstream);
        let down = pump(&upstream, &client);
        tokio::try_join!(up, down)
    }

    /// Moves one direction: splice what the source has into the (empty) pipe, then drain the
    /// pipe into the destination, repeat.
    ///
    /// The pipe is filled only when empty. A pipe's capacity counts fragments, not bytes, so
    /// one holding many small fragments can be full well below `cap`; `splice` then fails
    /// with EAGAIN, which `try_io` would take as "socket drained" and clear the socket's
    /// readiness, and with the sender waiting on its closed window no new edge would ever
    /// come. An empty pipe cannot be full, so EAGAIN always means the socket is drained.
    /// Empty pipes kept for the next tunnels: creating and sizing one costs four system calls
    /// per direction. Few, since each holds its (small) buffer table.
    const POOLED_PIPES: usize = 16;
    pub(super) static POOL: std::sync::Mutex<Vec<Pipe>> = std::sync::Mutex::new(Vec::new());

    /// A non-blocking pipe and its capacity.
    pub(super) struct Pipe {
        read: std::os::fd::OwnedFd,
        write: std::os::fd::OwnedFd,
        cap: usize,
    }

    impl Pipe {
        /// A pooled pipe, or a new one.
        fn take() -> io::Result<Pipe> {
            if let Some(p) = POOL.lock().ok().and_then(|mut pool| pool.pop()) {
                return Ok(p);
            }
            let (read, write) = nix::unistd::pipe2(OFlag::O_NONBLOCK | OFlag::O_CLOEXEC)?;
            let cap = fcntl(write.as_raw_fd(), FcntlArg::F_SETPIPE_SZ(PIPE_SIZE))
                .ok()
                .and_then(|n| usize::try_from(n).ok())
                .unwrap_or(DEFAULT_PIPE_SIZE);
            Ok(Pipe { read, write, cap })
        }

        /// Returns a pipe that is known to be empty to the pool (or closes it).
        fn give_back(self) {
            if let Ok(mut pool) = POOL.lock() {
                if pool.len() < POOLED_PIPES {
                    pool.push(self);
                }
            }
        }
    }

    async fn pump(src: &TcpStream, dst: &TcpStream) -> io::Result<u64> {
        let flags = SpliceFFlags::SPLICE_F_MOVE | SpliceFFlags::SPLICE_F_NONBLOCK;
        // An idle tunnel holds no pipe: wait for the first byte (or EOF) before making one.
        src.readable().await?;
        let pipe = Pipe::take()?;
        let (pr, pw, cap) = (&pipe.read, &pipe.write, pipe.cap);
        let (mut in_pipe, mut total, mut eof) = (0usize, 0u64, false);
        loop {
            if eof && in_pipe == 0 {
                // Peer finished sending: pass the half-close on. The other side may already
                // be gone, which is not an error for us.
                let _ = shutdown(dst.as_raw_fd(), Shutdown::Write);
                pipe.give_back();
                return Ok(total);
            }
            let can_read = !eof && in_pipe == 0;
            let can_write = in_pipe > 0;
            tokio::select! {
                r = src.readable(), if can_read => {
                    r?;
                    let got = src.try_io(Interest::READABLE, || {
                        splice(src.as_fd(), None, pw.as_fd(), None, cap, flags).map_err(io::Error::from)
                    });
                    match got {
                        Ok(0) => eof = true,
                        Ok(n) => in_pipe += n,
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                        Err(e) => return Err(e),
                    }
                }
                w = dst.writable(), if can_write => {
                    w?;
                    let put = dst.try_io(Interest::WRITABLE, || {
                        splice(pr.as_fd(), None, dst.as_fd(), None, in_pipe, flags).map_err(io::Error::from)
                    });
                    match put {
                        Ok(n) => {
                            in_pipe -= n;
                            total += n as u64;
                        }
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                        Err(e) => return Err(e),
                    }
                }
            }
        }
    }
}

#[cfg(not(target_os = "linux"))]
mod imp {
    use std::io;
    use tokio::net::TcpStream;

    pub async fn relay(mut client: TcpStream, mut upstream: TcpStream) -> io::Result<(u64, u64)> {
        tokio::io::copy_bidirectional(&mut client, &mut upstream).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    async fn pair() -> (TcpStream, TcpStream) {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let a = TcpStream::connect(l.local_addr().unwrap()).await.unwrap();
        let (b, _) = l.accept().await.unwrap();
        (a, b)
    }

    /// Large socket buffers, TLS-record-sized writes and a reader that starts late: the
    /// conditions under which a pipe full of fragments once stalled tunnels in the benchmark.
    #[tokio::test]
    async fn large_buffers_and_tls_sized_writes_are_relayed() {
        use nix::sys::socket::{setsockopt, sockopt};
        let (mut client, client_side) = pair().await;
        let (upstream_side, mut server) = pair().await;
        for s in [&client_side, &upstream_side] {
            setsockopt(s, sockopt::RcvBuf, &(4usize << 20)).unwrap();
            setsockopt(s, sockopt::SndBuf, &(4usize << 20)).unwrap();
        }
        tokio::spawn(relay(client_side, upstream_side));
        const TOTAL: usize = 64 << 20;
        let reader = tokio::spawn(async move {
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            let mut buf = vec![0u8; 7000];
            let mut got = 0;
            while got < TOTAL {
                let n = server.read(&mut buf).await.unwrap();
                assert!(n > 0, "early EOF at {got}");
                got += n;
            }
            got
        });
        let chunk = vec![0x17u8; 16_413];
        let writer = async {
            let mut sent = 0;
            while sent < TOTAL {
                let n = chunk.len().min(TOTAL - sent);
                client.write_all(&chunk[..n]).await.unwrap();
                sent += n;
            }
        };
        tokio::time::timeout(std::time::Duration::from_secs(30), async {
            writer.await;
            reader.await.unwrap()
        })
        .await
        .expect("tunnel stalled");
    }

    /// A pipe comes back to the pool only empty, and the next tunnel that takes it relays its
    /// own bytes and nothing of the previous one.
    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn pooled_pipes_carry_nothing_over() {
        for round in 0..3u8 {
            let (mut client, client_side) = pair().await;
            let (upstream_side, mut server) = pair().await;
            let task = tokio::spawn(relay(client_side, upstream_side));
            let payload = vec![round; 70_000];
            client.write_all(&payload).await.unwrap();
            client.shutdown().await.unwrap();
            let mut got = Vec::new();
            server.read_to_end(&mut got).await.unwrap();
            assert_eq!(got, payload, "round {round}");
            drop(server);
            let mut rest = Vec::new();
            client.read_to_end(&mut rest).await.unwrap();
            assert!(rest.is_empty());
            task.await.unwrap().unwrap();
        }
        assert!(!imp::POOL.lock().unwrap().is_empty(), "no pipe was pooled");
    }

    #[tokio::test]
    async fn many_small_segments_are_relayed() {
        let (mut client, client_side) = pair().await;
        let (upstream_side, mut server) = pair().await;
        client.set_nodelay(true).unwrap();
        tokio::spawn(relay(client_side, upstream_side));
        let echo = tokio::spawn(async move {
            let mut buf = vec![0u8; 20_000];
            server.read_exact(&mut buf).await.unwrap();
            server.write_all(&buf).await.unwrap();
        });
        for i in 0..2000u32 {
            client.write_all(&[(i % 251) as u8; 10]).await.unwrap();
            if i % 64 == 0 {
                tokio::task::yield_now().await;
            }
        }
        let mut back = vec![0u8; 20_000];
        tokio::time::timeout(
            std::time::Duration::from_secs(10),
            client.read_exact(&mut back),
        )
        .await
        .expect("tunnel stalled")
        .unwrap();
        echo.await.unwrap();
        assert_eq!(back[10], 1);
    }

    #[tokio::test]
    async fn relays_both_ways_with_half_close() {
        let (mut client, client_side) = pair().await;
        let (upstream_side, mut server) = pair().await;
        let task = tokio::spawn(relay(client_side, upstream_side));
        let payload: Vec<u8> = (0..1_000_000u32).map(|i| (i % 251) as u8).collect();
        let p2 = payload.clone();
        let writer = tokio::spawn(async move {
            client.write_all(&p2).await.unwrap();
            client.shutdown().await.unwrap();
            let mut back = Vec::new();
            client.read_to_end(&mut back).await.unwrap();
            back
        });
        let mut got = Vec::new();
        server.read_to_end(&mut got).await.unwrap();
        assert_eq!(got, payload);
        // Upstream still answers after the client's half-close.
        server.write_all(b"reply after half-close").await.unwrap();
        server.shutdown().await.unwrap();
        drop(server);
        assert_eq!(writer.await.unwrap(), b"reply after half-close");
        let (up, down) = task.await.unwrap().unwrap();
        assert_eq!(up, 1_000_000);
        assert_eq!(down, 22);
    }
}
