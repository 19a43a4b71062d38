//! Helpers shared by the integration tests: scratch directories, kernel requirements and
//! running a program in a sandbox to completion.

#![allow(dead_code)]

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use nono_sandbox::{
    detect, prepare, spawn, system_paths, ChildExit, ExecSpec, FsRule, NetPolicy, SandboxError,
    SandboxPolicy,
};

pub const PYTHON: &str = "/usr/bin/python3";

/// A directory under the system temp dir (which is not granted by `system_paths`), removed
/// on drop.
pub struct Scratch(pub PathBuf);

impl Scratch {
    pub fn new(tag: &str) -> Self {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("nono-it-{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create scratch dir");
        Scratch(dir)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Fails the test (never skips) when the kernel lacks the Landlock ABI it needs.
pub fn require_landlock(abi: u8, what: &str) {
    let support = detect();
    let found = support.landlock_abi;
    assert!(
        found.is_some_and(|f| f >= abi),
        "this test needs Landlock ABI {abi} ({what}) but the kernel reports {found:?}; run it \
         on a kernel with Landlock enabled (lsm=...,landlock) and new enough for ABI {abi}"
    );
    assert!(
        support.seccomp,
        "this test needs seccomp filter mode (CONFIG_SECCOMP_FILTER)"
    );
    assert!(
        Path::new(PYTHON).exists(),
        "this test needs {PYTHON} as its syscall helper"
    );
}

/// `system_paths()` plus `extra`.
pub fn policy(extra: Vec<FsRule>, net: NetPolicy) -> SandboxPolicy {
    let mut fs = system_paths();
    fs.extend(extra);
    SandboxPolicy {
        fs,
        net,
        allow_insecure_proxy: false,
        share_tmp: false,
    }
}

pub fn spec(program: &str, args: &[&str], env: &[(&str, &str)]) -> ExecSpec {
    ExecSpec {
        program: PathBuf::from(program),
        argv: std::iter::once(program)
            .chain(args.iter().copied())
            .map(OsString::from)
            .collect(),
        env: env
            .iter()
            .map(|(k, v)| (OsString::from(k), OsString::from(v)))
            .collect(),
        ..Default::default()
    }
}

/// Prepares `policy`, runs `spec` in it and waits for the result.
pub fn run(policy: &SandboxPolicy, spec: &ExecSpec) -> Result<ChildExit, SandboxError> {
    let prepared = prepare(policy)?;
    let mut child = spawn(&prepared, spec)?;
    child.release()?;
    child.wait()
}

/// Runs a Python snippet in the sandbox; it writes its findings to `out/result`, which is
/// returned. `out` is granted read-write.
pub fn python(net: NetPolicy, out: &Scratch, code: &str) -> String {
    let result = out.path().join("result");
    let policy = policy(vec![FsRule::read_write(out.path())], net);
    let spec = spec(
        PYTHON,
        &["-c", code, result.to_str().expect("utf-8 path")],
        &[("LC_ALL", "C.UTF-8")],
    );
    let exit = run(&policy, &spec).expect("run python in sandbox");
    assert_eq!(exit, ChildExit::Code(0), "python helper failed");
    std::fs::read_to_string(result).expect("python result file")
}

/// Python prelude: `tcp(port)`, `udp()`, `bind(port)` each return "ok" or an errno name;
/// `report(**kw)` writes `key=value` lines to the result file.
pub const PY_NET: &str = r#"
import errno, socket, sys
def name(e): return errno.errorcode.get(e.errno, str(e.errno))
def tcp(port, host="127.0.0.1"):
    try:
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    except OSError as e:
        return "socket:" + name(e)
    try:
        s.connect((host, port)); return "ok"
    except OSError as e:
        return name(e)
    finally:
        s.close()
def udp():
    try:
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM).close(); return "ok"
    except OSError as e:
        return name(e)
def bind(port):
    try:
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    except OSError as e:
        return "socket:" + name(e)
    try:
        s.bind(("127.0.0.1", port)); return "ok"
    except OSError as e:
        return name(e)
    finally:
        s.close()
def report(**kw):
    with open(sys.argv[1], "w") as f:
        for k, v in sorted(kw.items()):
            f.write(f"{k}={v}\n")
"#;

/// A port nothing listens on right now (bound then released).
pub fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind :0");
    l.local_addr().expect("addr").port()
}
