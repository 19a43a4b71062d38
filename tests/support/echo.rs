//! A byte echo server, plain or TLS.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};

use super::listen::Listener;
use super::TestCa;

/// Echo server on `127.0.0.1:0`: echoes every byte until the client closes.
///
/// Half-close is honoured: after the client's EOF (or TLS `close_notify`) the server finishes
/// writing what it read, then closes its side.
pub struct EchoServer {
    /// The port it listens on.
    pub port: u16,
    listener: Listener,
}

impl EchoServer {
    /// A TLS echo server whose certificate (from `ca`) is valid for `localhost` and `127.0.0.1`.
    pub fn tls(ca: &TestCa) -> Self {
        Self::tls_for(ca, &["localhost", "127.0.0.1"])
    }

    /// A TLS echo server whose certificate is valid for `names` (DNS names or IP literals).
    pub fn tls_for(ca: &TestCa, names: &[&str]) -> Self {
        let config = ca.server_config(names);
        let listener = Listener::spawn(move |tcp| {
            let conn = rustls::ServerConnection::new(config.clone()).expect("server connection");
            let mut tls = rustls::StreamOwned::new(conn, tcp);
            echo(&mut tls);
            tls.conn.send_close_notify();
            let _ = tls.flush();
            let _ = tls.sock.shutdown(Shutdown::Write);
        });
        EchoServer {
            port: listener.port,
            listener,
        }
    }

    /// A plain TCP echo server.
    pub fn plain() -> Self {
        let listener = Listener::spawn(|mut tcp: TcpStream| {
            echo(&mut tcp);
            let _ = tcp.shutdown(Shutdown::Write);
        });
        EchoServer {
            port: listener.port,
            listener,
        }
    }

    /// A plain TCP echo server on every interface: `[::]:0` (IPv4 too, dual-stack) where the
    /// machine has IPv6, else `0.0.0.0:0`. The flag says whether IPv6 addresses reach it.
    pub fn plain_on_every_interface() -> (Self, bool) {
        // `[::]` takes IPv4 too unless the system binds IPv6 sockets v6-only.
        let v6only = std::fs::read_to_string("/proc/sys/net/ipv6/bindv6only")
            .map_or(true, |v| v.trim() != "0");
        let dual = (!v6only)
            .then(|| std::net::TcpListener::bind("[::]:0").ok())
            .flatten();
        let (listener, dual_stack) = match dual {
            Some(l) => (l, true),
            None => (
                std::net::TcpListener::bind("0.0.0.0:0").expect("bind 0.0.0.0:0"),
                false,
            ),
        };
        let listener = Listener::serve(listener, |mut tcp: TcpStream| {
            echo(&mut tcp);
            let _ = tcp.shutdown(Shutdown::Write);
        });
        let server = EchoServer {
            port: listener.port,
            listener,
        };
        (server, dual_stack)
    }

    /// Number of connections accepted so far.
    pub fn accepted(&self) -> usize {
        self.listener.accepted()
    }
}

/// Copies everything read back to the writer until EOF or an error.
fn echo<S: Read + Write>(stream: &mut S) {
    let mut buf = [0u8; 16 * 1024];
    loop {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if stream.write_all(&buf[..n]).is_err() || stream.flush().is_err() {
                    break;
                }
            }
        }
    }
}
