//! A real tinyproxy, started per test as the "corporate" upstream proxy.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use super::TempDir;

/// How long tinyproxy may take to accept connections after it is spawned.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(10);
/// Attempts with a fresh port when another process takes the chosen one first.
const START_ATTEMPTS: usize = 5;
/// What a test that needs tinyproxy says when it is missing.
pub const TINYPROXY_HINT: &str =
    "tinyproxy is required by the upstream proxy tests; install it with `apt-get install -y tinyproxy` \
     (Debian/Ubuntu), `dnf install tinyproxy` (Fedora) or `brew install tinyproxy` (macOS)";

/// A tinyproxy on `127.0.0.1` with its own config and log in a temp dir; killed on drop.
pub struct Tinyproxy {
    /// The port it listens on.
    pub port: u16,
    log_path: PathBuf,
    child: Child,
    _dir: TempDir,
}

impl Tinyproxy {
    /// Starts tinyproxy without authentication.
    pub fn start() -> Tinyproxy {
        Self::start_with(None)
    }

    /// Starts tinyproxy; with `Some((user, password))` it requires Basic proxy credentials.
    ///
    /// Panics with [`TINYPROXY_HINT`] when tinyproxy is not installed.
    pub fn start_with(auth: Option<(&str, &str)>) -> Tinyproxy {
        let mut last_log = String::new();
        for _ in 0..START_ATTEMPTS {
            match Self::try_start(auth) {
                Ok(tp) => return tp,
                Err(log) => last_log = log,
            }
        }
        panic!("tinyproxy did not start after {START_ATTEMPTS} attempts; last log:\n{last_log}");
    }

    /// One attempt on a port freshly chosen by the OS; `Err(log)` if tinyproxy exited.
    fn try_start(auth: Option<(&str, &str)>) -> Result<Tinyproxy, String> {
        let dir = TempDir::new("tinyproxy");
        let port = free_port();
        let log_path = dir.path().join("tinyproxy.log");
        // LogLevel Info records every request line, which the tests search.
        let mut conf = format!(
            "Listen 127.0.0.1\nPort {port}\nTimeout 30\nMaxClients 50\nLogFile \"{}\"\n\
             LogLevel Info\nPidFile \"{}\"\n",
            log_path.display(),
            dir.path().join("tinyproxy.pid").display()
        );
        if let Some((user, password)) = auth {
            conf.push_str(&format!("BasicAuth {user} {password}\n"));
        }
        let conf_path = dir.path().join("tinyproxy.conf");
        std::fs::write(&conf_path, conf).expect("write tinyproxy config");
        let child = Command::new("tinyproxy")
            .arg("-d")
            .arg("-c")
            .arg(&conf_path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run `tinyproxy` ({e}): {TINYPROXY_HINT}"));
        let mut tp = Tinyproxy {
            port,
            log_path,
            child,
            _dir: dir,
        };
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if tp.child.try_wait().expect("try_wait tinyproxy").is_some() {
                return Err(tp.log());
            }
            assert!(
                Instant::now() < deadline,
                "tinyproxy did not listen on {port} within {STARTUP_TIMEOUT:?}; log:\n{}",
                tp.log()
            );
            thread::sleep(Duration::from_millis(20));
        }
        Ok(tp)
    }

    /// Everything tinyproxy logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// The log lines of requests it received (`CONNECT host:port ...`, `GET http://...`).
    pub fn requests(&self) -> Vec<String> {
        self.log()
            .lines()
            .filter(|l| l.contains("Request (file descriptor"))
            .map(str::to_string)
            .collect()
    }

    /// `127.0.0.1:PORT`, or `http://USERINFO@127.0.0.1:PORT` with `userinfo`.
    pub fn spec(&self, userinfo: Option<&str>) -> String {
        match userinfo {
            Some(u) => format!("http://{u}@127.0.0.1:{}", self.port),
            None => format!("127.0.0.1:{}", self.port),
        }
    }
}

impl Drop for Tinyproxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A port the OS just handed out on 127.0.0.1 (free again once the probe socket closes).
fn free_port() -> u16 {
    let probe = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    probe.local_addr().expect("local_addr").port()
}
