//! Helpers for end-to-end tests that run the real `nono` binary against servers the test starts.
//!
//! Every server listens on `127.0.0.1:0` and runs on background threads; dropping the handle
//! stops it. Submodules, one per mechanism:
//! - `tls`: a throwaway CA ([`TestCa`]) and [`tls_roundtrip`] over an open tunnel;
//! - `echo`: [`EchoServer`], a plain or TLS byte echo;
//! - `origin`: [`HttpOrigin`], a recording HTTP/1.1 origin;
//! - `proxy`: [`ProxyProcess`] (`nono proxy --json`), [`raw_request`], [`connect_tunnel`];
//! - `probe`: [`PROBE_PRELUDE`] for Python escape probes and [`Out`], one run's output;
//! - `netns`: [`NetNs`], a network namespace with a veth pair for tests that need their own hosts.
//!
//! Not every test binary uses every helper, hence the `dead_code` and `unused_imports` allowance.
#![allow(dead_code, unused_imports)]

mod echo;
pub mod githttp;
pub mod h1client;
pub mod h2origin;
mod listen;
mod netns;
mod origin;
mod probe;
mod proxy;
mod tinyproxy;
mod tls;
pub mod websocket;

pub use echo::EchoServer;
pub use netns::NetNs;
pub use origin::{HttpOrigin, RecordedRequest};
pub use probe::{Out, PROBE_PRELUDE};
pub use proxy::{connect_tunnel, raw_request, ProxyProcess};
pub use tinyproxy::{Tinyproxy, TINYPROXY_HINT};
pub use tls::{tls_roundtrip, TestCa};

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use base64::Engine as _;

/// How often helpers poll a child process while waiting for it to exit.
const POLL_INTERVAL: Duration = Duration::from_millis(10);

/// The `nono` binary that Cargo built for this test run.
pub fn nono_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_nono"))
}

/// Resets, in `cmd`'s child, the signals a harness may have started with ignored (`nohup`
/// ignores SIGHUP, a background job SIGINT and SIGQUIT): an ignored signal survives exec, and
/// a test of how nono handles one must see nono's own behaviour, not the harness's.
pub fn default_signals(cmd: &mut Command) -> &mut Command {
    use std::os::unix::process::CommandExt;
    // SAFETY: runs between fork and exec; signal(2) is async-signal-safe and touches only
    // the child's dispositions.
    unsafe {
        cmd.pre_exec(|| {
            for sig in [libc::SIGHUP, libc::SIGINT, libc::SIGQUIT] {
                libc::signal(sig, libc::SIG_DFL);
            }
            Ok(())
        })
    }
}

/// `Command::new(nono_bin())` with default signal dispositions (see [`default_signals`]).
pub fn nono_command() -> Command {
    let mut cmd = Command::new(nono_bin());
    default_signals(&mut cmd);
    cmd
}

/// Runs `nono` with `args` (stdin closed) and returns (exit code, stdout, stderr).
///
/// A process killed by a signal reports `128 + signal`, as a shell would. Panics, with the
/// output so far, if the process is still running after `timeout`.
pub fn run_nono(args: &[&str], timeout: Duration) -> (i32, String, String) {
    run_nono_with_env(args, &[], timeout)
}

/// [`run_nono`] with `env` added to the inherited environment.
pub fn run_nono_with_env(
    args: &[&str],
    env: &[(&str, &str)],
    timeout: Duration,
) -> (i32, String, String) {
    let mut cmd = Command::new(nono_bin());
    cmd.args(args).envs(env.iter().copied());
    run_command(cmd, timeout)
}

/// Runs `cmd` (stdin closed) and returns (exit code, stdout, stderr), as [`run_nono`] does.
pub fn run_command(mut cmd: Command, timeout: Duration) -> (i32, String, String) {
    default_signals(&mut cmd);
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}"));
    let stdout = read_all_in_background(child.stdout.take().expect("piped stdout"));
    let stderr = read_all_in_background(child.stderr.take().expect("piped stderr"));
    let status = match wait_with_deadline(&mut child, timeout) {
        Some(status) => status,
        None => {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "{cmd:?} still running after {timeout:?}\n--- stdout\n{}\n--- stderr\n{}",
                stdout.join().expect("stdout reader"),
                stderr.join().expect("stderr reader"),
            );
        }
    };
    (
        exit_code(status),
        stdout.join().expect("stdout reader"),
        stderr.join().expect("stderr reader"),
    )
}

/// `Basic base64(nono:TOKEN)`, the `Proxy-Authorization` value `nono proxy` expects.
pub fn basic_auth(token: &str) -> String {
    let encoded = base64::engine::general_purpose::STANDARD.encode(format!("nono:{token}"));
    format!("Basic {encoded}")
}

/// `Bearer TOKEN`.
pub fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

/// A directory under the system temp dir, removed with its contents on drop.
pub struct TempDir {
    path: PathBuf,
}

impl TempDir {
    /// Creates a fresh, uniquely named directory.
    pub fn new(label: &str) -> TempDir {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let path = std::env::temp_dir().join(format!(
            "nono-test-{label}-{}-{n}-{nanos}",
            std::process::id()
        ));
        std::fs::create_dir_all(&path).expect("create temp dir");
        TempDir { path }
    }

    /// The directory's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// The exit code of `status`, or `128 + signal` if a signal ended the process.
fn exit_code(status: std::process::ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    status
        .code()
        .or_else(|| status.signal().map(|s| 128 + s))
        .unwrap_or(-1)
}

/// Polls `child` until it exits or `timeout` passes (then `None`).
fn wait_with_deadline(
    child: &mut std::process::Child,
    timeout: Duration,
) -> Option<std::process::ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return Some(status);
        }
        if Instant::now() >= deadline {
            return None;
        }
        thread::sleep(POLL_INTERVAL);
    }
}

/// Reads `reader` to EOF on a thread, so a full pipe never blocks the child.
fn read_all_in_background(mut reader: impl Read + Send + 'static) -> thread::JoinHandle<String> {
    thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = reader.read_to_end(&mut buf);
        String::from_utf8_lossy(&buf).into_owned()
    })
}
