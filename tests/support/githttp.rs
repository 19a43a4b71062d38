//! An HTTPS git server: `git http-backend` behind a tiny CGI host that demands a credential.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;

use super::listen::Listener;
use super::origin::find;
use super::{TempDir, TestCa};

/// The CGI program of Debian's `git` package.
pub const GIT_HTTP_BACKEND: &str = "/usr/lib/git-core/git-http-backend";
/// Largest request head accepted.
const MAX_HEAD: usize = 64 * 1024;
/// The user `git http-backend` is told about when a request is authorised.
const REMOTE_USER: &str = "nono-test";

/// One request as the server received it.
#[derive(Clone, Debug)]
pub struct GitRequest {
    /// The method.
    pub method: String,
    /// The request target (path and query).
    pub path: String,
    /// The `Authorization` header, if any.
    pub authorization: Option<String>,
    /// The status the server answered.
    pub status: u16,
}

/// `git http-backend` over HTTPS on `127.0.0.1:0` (certificate for `localhost` and
/// `127.0.0.1` from a [`TestCa`]), serving one bare repository at `/repo.git` whose `main`
/// has one commit (`seed commit`) and which accepts pushes.
///
/// Every request whose `Authorization` header is not exactly the expected value is answered
/// `401` with `WWW-Authenticate: Basic realm="nono-test"`, and never reaches the backend.
pub struct GitHttpServer {
    /// The port it listens on.
    pub port: u16,
    requests: Arc<Mutex<Vec<GitRequest>>>,
    repo: PathBuf,
    home: PathBuf,
    _listener: Listener,
    _dir: TempDir,
}

impl GitHttpServer {
    /// Creates and seeds the repository and starts serving; only requests carrying
    /// `Authorization: <authorization>` are let through.
    pub fn start(ca: &TestCa, authorization: &str) -> GitHttpServer {
        assert!(
            Path::new(GIT_HTTP_BACKEND).exists(),
            "{GIT_HTTP_BACKEND} is missing: install Debian's `git` package"
        );
        let dir = TempDir::new("githttp");
        let home = dir.path().join("home");
        let root = dir.path().join("root");
        let seed = dir.path().join("seed");
        std::fs::create_dir_all(&home).expect("create git home");
        std::fs::create_dir_all(&root).expect("create project root");
        let repo = root.join("repo.git");
        let run = |args: &[&str], cwd: &Path| {
            let out = git_command(&home)
                .args(args)
                .current_dir(cwd)
                .output()
                .expect("run git (install git)");
            assert!(
                out.status.success(),
                "git {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        run(&["init", "-q", "-b", "main", "seed"], dir.path());
        std::fs::write(seed.join("README"), "seeded by the test\n").expect("write README");
        run(&["add", "README"], &seed);
        run(&["commit", "-q", "-m", "seed commit"], &seed);
        run(
            &["clone", "-q", "--bare", "seed", "root/repo.git"],
            dir.path(),
        );
        run(&["config", "http.receivepack", "true"], &repo);

        let config = ca.server_config(&["localhost", "127.0.0.1"]);
        let requests: Arc<Mutex<Vec<GitRequest>>> = Arc::default();
        let ctx = Arc::new(Ctx {
            root,
            home: home.clone(),
            authorization: authorization.to_string(),
            log: requests.clone(),
        });
        let listener = Listener::spawn(move |tcp: TcpStream| {
            let conn = rustls::ServerConnection::new(config.clone()).expect("server connection");
            let mut tls = rustls::StreamOwned::new(conn, tcp);
            serve(&mut tls, &ctx);
            tls.conn.send_close_notify();
            let _ = tls.flush();
            let _ = tls.sock.shutdown(Shutdown::Both);
        });
        GitHttpServer {
            port: listener.port,
            requests,
            repo,
            home,
            _listener: listener,
            _dir: dir,
        }
    }

    /// `https://localhost:PORT/repo.git`.
    pub fn url(&self) -> String {
        format!("https://localhost:{}/repo.git", self.port)
    }

    /// Every request so far.
    pub fn requests(&self) -> Vec<GitRequest> {
        self.requests.lock().expect("request log").clone()
    }

    /// `git log --format=%s main` of the served repository, newest first.
    pub fn main_log(&self) -> Vec<String> {
        let out = git_command(&self.home)
            .arg("--git-dir")
            .arg(&self.repo)
            .args(["log", "--format=%s", "main"])
            .output()
            .expect("run git log");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_string)
            .collect()
    }

    /// A `git` client command isolated from the user's and the system's configuration
    /// (its own `HOME`, no prompts, no credential helpers, no proxy variables).
    pub fn client(&self) -> Command {
        git_command(&self.home)
    }
}

/// `git` with `HOME` set to `home`, no system config, no prompts, no inherited proxies.
pub fn git_command(home: &Path) -> Command {
    let mut cmd = Command::new("git");
    cmd.env("HOME", home)
        .env("XDG_CONFIG_HOME", home.join(".config"))
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_TERMINAL_PROMPT", "0")
        .env("GIT_AUTHOR_NAME", "nono test")
        .env("GIT_AUTHOR_EMAIL", "test@nono.invalid")
        .env("GIT_COMMITTER_NAME", "nono test")
        .env("GIT_COMMITTER_EMAIL", "test@nono.invalid")
        .env_remove("GIT_ASKPASS")
        .env_remove("SSH_ASKPASS")
        .args(["-c", "credential.helper=", "-c", "protocol.version=2"])
        .stdin(Stdio::null());
    for var in [
        "http_proxy",
        "https_proxy",
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "ALL_PROXY",
        "all_proxy",
        "NO_PROXY",
        "no_proxy",
        "GIT_SSL_CAINFO",
        "SSL_CERT_FILE",
        "CURL_CA_BUNDLE",
    ] {
        cmd.env_remove(var);
    }
    cmd
}

struct Ctx {
    root: PathBuf,
    home: PathBuf,
    authorization: String,
    log: Arc<Mutex<Vec<GitRequest>>>,
}

/// One parsed request.
struct Parsed {
    method: String,
    target: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    keep_alive: bool,
}

impl Parsed {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Serves requests on one connection until the client closes or asks to.
fn serve<S: Read + Write>(stream: &mut S, ctx: &Ctx) {
    let mut buf = Vec::new();
    while let Some(req) = read_request(stream, &mut buf) {
        let authorized = req.header("authorization") == Some(ctx.authorization.as_str());
        let (status, response) = if authorized {
            run_backend(&req, ctx)
        } else {
            let body = "credential required\n";
            (
                401,
                format!(
                    "HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Basic realm=\"nono-test\"\r\n\
                     Content-Type: text/plain\r\nContent-Length: {}\r\n\r\n{body}",
                    body.len()
                )
                .into_bytes(),
            )
        };
        ctx.log.lock().expect("request log").push(GitRequest {
            method: req.method.clone(),
            path: req.target.clone(),
            authorization: req.header("authorization").map(str::to_string),
            status,
        });
        if stream.write_all(&response).is_err() || stream.flush().is_err() || !req.keep_alive {
            return;
        }
    }
}

/// Reads one request (answering `Expect: 100-continue`); `None` on EOF or bad framing.
fn read_request<S: Read + Write>(stream: &mut S, buf: &mut Vec<u8>) -> Option<Parsed> {
    let head = take_until(stream, buf, b"\r\n\r\n")?;
    let head = String::from_utf8_lossy(&head).into_owned();
    let mut lines = head.split("\r\n");
    let mut start = lines.next().unwrap_or("").split_whitespace();
    let method = start.next()?.to_string();
    let target = start.next()?.to_string();
    let version = start.next().unwrap_or("").to_string();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let get = |name: &str| {
        headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.to_ascii_lowercase())
    };
    if get("expect").as_deref() == Some("100-continue") {
        stream.write_all(b"HTTP/1.1 100 Continue\r\n\r\n").ok()?;
        stream.flush().ok()?;
    }
    let body = if get("transfer-encoding").is_some_and(|te| te.contains("chunked")) {
        let mut body = Vec::new();
        loop {
            let line = take_until(stream, buf, b"\r\n")?;
            let line = String::from_utf8_lossy(&line);
            let size = line.trim().split(';').next().unwrap_or("").trim();
            let size = usize::from_str_radix(size, 16).ok()?;
            if size == 0 {
                while take_until(stream, buf, b"\r\n")?.len() != 2 {}
                break body;
            }
            body.extend_from_slice(&take(stream, buf, size)?);
            take(stream, buf, 2)?;
        }
    } else {
        let len = get("content-length")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        take(stream, buf, len)?
    };
    let connection = get("connection").unwrap_or_default();
    let keep_alive = version != "HTTP/1.0" && !connection.contains("close");
    Some(Parsed {
        method,
        target,
        headers,
        body,
        keep_alive,
    })
}

/// Runs `git http-backend` for `req`; returns (status, the HTTP response bytes).
fn run_backend(req: &Parsed, ctx: &Ctx) -> (u16, Vec<u8>) {
    let (path, query) = req.target.split_once('?').unwrap_or((&req.target, ""));
    let mut cmd = Command::new(GIT_HTTP_BACKEND);
    cmd.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", &ctx.home)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_PROJECT_ROOT", &ctx.root)
        .env("GIT_HTTP_EXPORT_ALL", "1")
        .env("GATEWAY_INTERFACE", "CGI/1.1")
        .env("SERVER_PROTOCOL", "HTTP/1.1")
        .env("REQUEST_METHOD", &req.method)
        .env("PATH_INFO", path)
        .env("QUERY_STRING", query)
        .env("CONTENT_LENGTH", req.body.len().to_string())
        .env("REMOTE_ADDR", "127.0.0.1")
        .env("REMOTE_USER", REMOTE_USER)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(ct) = req.header("content-type") {
        cmd.env("CONTENT_TYPE", ct);
    }
    if let Some(enc) = req.header("content-encoding") {
        cmd.env("HTTP_CONTENT_ENCODING", enc);
    }
    if let Some(proto) = req.header("git-protocol") {
        cmd.env("GIT_PROTOCOL", proto);
    }
    let mut child = match cmd.spawn() {
        Ok(child) => child,
        Err(e) => return error_response(&format!("spawn {GIT_HTTP_BACKEND}: {e}")),
    };
    let mut stdin = child.stdin.take().expect("piped stdin");
    let body = req.body.clone();
    // A separate writer, so a backend that answers before reading everything cannot deadlock.
    let writer = thread::spawn(move || {
        let _ = stdin.write_all(&body);
    });
    let output = child.wait_with_output();
    let _ = writer.join();
    let output = match output {
        Ok(o) => o,
        Err(e) => return error_response(&format!("wait for {GIT_HTTP_BACKEND}: {e}")),
    };
    let out = output.stdout;
    let (head_end, sep) = match (find(&out, b"\r\n\r\n"), find(&out, b"\n\n")) {
        (Some(a), Some(b)) if b < a => (b, 2),
        (Some(a), _) => (a, 4),
        (None, Some(b)) => (b, 2),
        (None, None) => {
            return error_response(&format!(
                "no CGI header block from {GIT_HTTP_BACKEND}; stderr: {}",
                String::from_utf8_lossy(&output.stderr)
            ))
        }
    };
    let cgi_head = String::from_utf8_lossy(&out[..head_end]).into_owned();
    let body = &out[head_end + sep..];
    let mut status_line = "200 OK".to_string();
    let mut headers = String::new();
    for line in cgi_head.lines() {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        if name.trim().eq_ignore_ascii_case("status") {
            status_line = value.trim().to_string();
        } else {
            headers.push_str(&format!("{}: {}\r\n", name.trim(), value.trim()));
        }
    }
    let status = status_line
        .split_whitespace()
        .next()
        .and_then(|s| s.parse().ok())
        .unwrap_or(500);
    let mut response = format!(
        "HTTP/1.1 {status_line}\r\n{headers}Content-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    response.extend_from_slice(body);
    (status, response)
}

fn error_response(msg: &str) -> (u16, Vec<u8>) {
    (
        500,
        format!(
            "HTTP/1.1 500 Internal Server Error\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n{msg}",
            msg.len()
        )
        .into_bytes(),
    )
}

/// Bytes up to and including `delim`, reading as needed; `None` on EOF or overflow.
fn take_until<S: Read>(stream: &mut S, buf: &mut Vec<u8>, delim: &[u8]) -> Option<Vec<u8>> {
    loop {
        if let Some(at) = find(buf, delim) {
            return Some(buf.drain(..at + delim.len()).collect());
        }
        if buf.len() > MAX_HEAD {
            return None;
        }
        fill(stream, buf)?;
    }
}

/// Exactly `n` bytes; `None` on EOF.
fn take<S: Read>(stream: &mut S, buf: &mut Vec<u8>, n: usize) -> Option<Vec<u8>> {
    while buf.len() < n {
        fill(stream, buf)?;
    }
    Some(buf.drain(..n).collect())
}

fn fill<S: Read>(stream: &mut S, buf: &mut Vec<u8>) -> Option<()> {
    let mut chunk = [0u8; 16 * 1024];
    match stream.read(&mut chunk) {
        Ok(0) | Err(_) => None,
        Ok(n) => {
            buf.extend_from_slice(&chunk[..n]);
            Some(())
        }
    }
}
