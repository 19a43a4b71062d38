//! Running `nono proxy` and talking to it over raw sockets.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use super::origin::find;
use super::{nono_bin, wait_with_deadline, TempDir};

/// How long `nono proxy --json` may take to print its first line.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(10);
/// How long [`ProxyProcess::terminate`] waits after SIGTERM.
const TERMINATE_TIMEOUT: Duration = Duration::from_secs(10);
/// Read timeout for [`raw_request`] and [`connect_tunnel`].
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(10);

/// A running `nono proxy --json ...`, killed (SIGKILL) on drop.
pub struct ProxyProcess {
    /// The `port` field of the startup JSON.
    pub port: u16,
    /// The `token` field of the startup JSON, if any.
    pub token: Option<String>,
    /// The `url` field of the startup JSON, or `http://127.0.0.1:PORT` if it has none.
    pub url: String,
    /// The whole startup JSON line.
    pub json: serde_json::Value,
    child: Option<Child>,
    stderr_path: std::path::PathBuf,
    _dir: TempDir,
}

impl ProxyProcess {
    /// Runs `nono proxy --json <args>` and parses the first line it prints.
    ///
    /// Stderr goes to a file ([`ProxyProcess::stderr`]); stdout after the first line is drained
    /// and discarded. Panics, showing stderr, if the process exits or prints no JSON line within
    /// 10 s.
    pub fn start(args: &[&str]) -> ProxyProcess {
        ProxyProcess::start_command(super::nono_command(), args)
    }

    /// [`ProxyProcess::start`] with `env` added to the inherited environment.
    pub fn start_with_env(args: &[&str], env: &[(&str, &str)]) -> ProxyProcess {
        let mut cmd = super::nono_command();
        cmd.envs(env.iter().copied());
        ProxyProcess::start_command(cmd, args)
    }

    /// [`ProxyProcess::start`] from `cmd`: the `nono` binary with its environment prepared
    /// and no arguments yet; `proxy --json <args>` are appended.
    pub fn start_command(mut cmd: Command, args: &[&str]) -> ProxyProcess {
        let dir = TempDir::new("proxy");
        let stderr_path = dir.path().join("stderr.log");
        let stderr_file = std::fs::File::create(&stderr_path).expect("create stderr log");
        super::default_signals(&mut cmd);
        let mut child = cmd
            .args(["proxy", "--json"])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr_file)
            .spawn()
            .expect("spawn nono proxy");
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            let mut reader = BufReader::new(stdout);
            let mut line = String::new();
            let _ = reader.read_line(&mut line);
            let _ = tx.send(line);
            // Keep draining so later output never blocks the proxy on a full pipe.
            let _ = std::io::copy(&mut reader, &mut std::io::sink());
        });
        let fail = |child: &mut Child, why: String| -> ! {
            let _ = child.kill();
            let _ = child.wait();
            let stderr = std::fs::read_to_string(&stderr_path).unwrap_or_default();
            panic!("nono proxy --json {args:?}: {why}\n--- stderr\n{stderr}");
        };
        let line = match rx.recv_timeout(STARTUP_TIMEOUT) {
            Ok(line) if !line.trim().is_empty() => line,
            Ok(_) => {
                let status = wait_with_deadline(&mut child, Duration::from_secs(1));
                fail(
                    &mut child,
                    format!("exited ({status:?}) without printing JSON"),
                )
            }
            Err(_) => fail(
                &mut child,
                format!("no JSON line within {STARTUP_TIMEOUT:?}"),
            ),
        };
        let json: serde_json::Value = match serde_json::from_str(line.trim()) {
            Ok(json) => json,
            Err(e) => fail(
                &mut child,
                format!("first line is not JSON ({e}): {line:?}"),
            ),
        };
        let Some(port) = json["port"].as_u64().and_then(|p| u16::try_from(p).ok()) else {
            fail(&mut child, format!("no numeric `port` in {json}"))
        };
        let token = json["token"].as_str().map(str::to_string);
        let url = json["url"]
            .as_str()
            .map_or_else(|| format!("http://127.0.0.1:{port}"), str::to_string);
        ProxyProcess {
            port,
            token,
            url,
            json,
            child: Some(child),
            stderr_path,
            _dir: dir,
        }
    }

    /// Everything the proxy wrote to stderr so far.
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }

    /// The proxy's process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// `Proxy-Authorization: Basic ...` for this proxy's token (panics if it printed none).
    pub fn basic_auth(&self) -> String {
        super::basic_auth(self.token.as_deref().expect("proxy printed no token"))
    }

    /// Sends SIGTERM and waits up to 10 s for the exit status.
    ///
    /// Panics, with stderr, if the process is still running then (after killing it).
    pub fn terminate(self) -> ExitStatus {
        self.signal_and_wait("TERM").0
    }

    /// Sends `SIG<signal>` and waits up to 10 s; returns the exit status and how long the
    /// exit took. Panics, with stderr, if the process is still running then.
    pub fn signal_and_wait(mut self, signal: &str) -> (ExitStatus, Duration) {
        let mut child = self.child.take().expect("proxy child");
        let pid = child.id().to_string();
        let start = std::time::Instant::now();
        let sent = Command::new("kill")
            .args([&format!("-{signal}"), &pid])
            .status()
            .expect("run kill");
        assert!(sent.success(), "kill -{signal} {pid} failed");
        match wait_with_deadline(&mut child, TERMINATE_TIMEOUT) {
            Some(status) => (status, start.elapsed()),
            None => {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "nono proxy ignored SIG{signal} for {TERMINATE_TIMEOUT:?}\n--- stderr\n{}",
                    self.stderr()
                );
            }
        }
    }
}

impl Drop for ProxyProcess {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Writes `request` to `127.0.0.1:port` and returns (status, head + body as text).
///
/// Reads the head, then a `Content-Length` or chunked body; a response with neither is read
/// until the server closes or 10 s pass. A `2xx` answer to `CONNECT`, `1xx`, `204` and `304`
/// have no body. Status 0 means no parsable status line arrived.
pub fn raw_request(port: u16, request: &[u8]) -> (u16, String) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    stream
        .set_read_timeout(Some(RESPONSE_TIMEOUT))
        .expect("set read timeout");
    stream.write_all(request).expect("write request");
    let is_connect = request.starts_with(b"CONNECT ");
    let mut buf = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    let head_end = loop {
        if let Some(at) = find(&buf, b"\r\n\r\n") {
            break at + 4;
        }
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) => return (status_of(&buf), String::from_utf8_lossy(&buf).into()),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    };
    let status = status_of(&buf);
    let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
    let length = header_value(&head, "content-length").and_then(|v| v.parse::<usize>().ok());
    let chunked = header_value(&head, "transfer-encoding").is_some_and(|v| v.contains("chunked"));
    let no_body = (is_connect && (200..300).contains(&status))
        || (100..200).contains(&status)
        || status == 204
        || status == 304;
    let done = |buf: &[u8]| -> bool {
        if no_body {
            true
        } else if let Some(len) = length {
            buf.len() >= head_end + len
        } else if chunked {
            buf[head_end..].ends_with(b"0\r\n\r\n")
        } else {
            false
        }
    };
    while !done(&buf) {
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    (status, String::from_utf8_lossy(&buf).into_owned())
}

/// Opens a tunnel with `CONNECT target HTTP/1.1`, sending `auth` as `Proxy-Authorization`.
///
/// The head is read one byte at a time, so on `200` the returned stream holds exactly the
/// bytes after the head; nothing is lost. Otherwise returns (status, head plus any
/// `Content-Length` body).
pub fn connect_tunnel(
    proxy_port: u16,
    target: &str,
    auth: Option<&str>,
) -> Result<TcpStream, (u16, String)> {
    let mut stream = TcpStream::connect(("127.0.0.1", proxy_port)).expect("connect to proxy");
    stream
        .set_read_timeout(Some(RESPONSE_TIMEOUT))
        .expect("set read timeout");
    let mut request = format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n");
    if let Some(auth) = auth {
        request.push_str(&format!("Proxy-Authorization: {auth}\r\n"));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).expect("write CONNECT");
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match stream.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            _ => return Err((status_of(&head), String::from_utf8_lossy(&head).into())),
        }
    }
    let status = status_of(&head);
    if status == 200 {
        stream.set_read_timeout(None).expect("clear read timeout");
        return Ok(stream);
    }
    let text = String::from_utf8_lossy(&head).to_ascii_lowercase();
    if let Some(len) = header_value(&text, "content-length").and_then(|v| v.parse::<usize>().ok()) {
        let mut body = vec![0u8; len];
        if stream.read_exact(&mut body).is_ok() {
            head.extend_from_slice(&body);
        }
    }
    Err((status, String::from_utf8_lossy(&head).into_owned()))
}

/// The status code of an HTTP response head, or 0.
fn status_of(head: &[u8]) -> u16 {
    let text = String::from_utf8_lossy(head);
    text.split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

/// The value of header `name` in a lowercased head.
fn header_value<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.split("\r\n").skip(1).find_map(|line| {
        let (n, v) = line.split_once(':')?;
        (n.trim() == name).then(|| v.trim())
    })
}
