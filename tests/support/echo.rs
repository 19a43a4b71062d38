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
