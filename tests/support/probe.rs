//! Probe scripts: Python helpers every escape probe starts with, and the output of one run.

use std::collections::HashMap;

/// Python helpers: `probe(name, f)` prints `PROBE name OK` or `PROBE name ERRNO_NAME`; `chk`
/// turns a libc `-1` into `OSError`; `libc` is the C library through ctypes.
pub const PROBE_PRELUDE: &str = r#"
import os, sys, socket, errno, ctypes, struct, platform, base64
libc = ctypes.CDLL(None, use_errno=True)
def chk(r):
    if r == -1:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))
    return r
def probe(name, f):
    try:
        f()
        r = "OK"
    except OSError as e:
        r = errno.errorcode.get(e.errno, str(e.errno))
    print("PROBE", name, r, flush=True)
"#;

/// Output of one process run.
pub struct Out {
    /// Exit code (128 + signal when a signal ended it).
    pub code: i32,
    /// Everything it printed on stdout.
    pub stdout: String,
    /// Everything it printed on stderr.
    pub stderr: String,
}

impl Out {
    /// The result `probe(name, ...)` printed; panics with the whole output if it printed none.
    pub fn probe(&self, name: &str) -> &str {
        let prefix = format!("PROBE {name} ");
        self.stdout
            .lines()
            .find_map(|l| l.strip_prefix(&prefix))
            .unwrap_or_else(|| panic!("probe {name} did not run\n{}", self.dump()))
    }

    /// Every probe result, by name.
    pub fn probes(&self) -> HashMap<String, String> {
        self.stdout
            .lines()
            .filter_map(|l| l.strip_prefix("PROBE "))
            .filter_map(|l| l.split_once(' '))
            .map(|(n, r)| (n.to_string(), r.to_string()))
            .collect()
    }

    /// Asserts each `(probe, result)` pair, naming the probe and showing the whole output.
    pub fn expect_probes(&self, expected: &[(&str, &str)]) {
        let got = self.probes();
        for (name, want) in expected {
            assert_eq!(
                got.get(*name).map(String::as_str),
                Some(*want),
                "{name}\n{}",
                self.dump()
            );
        }
    }

    /// The exit code and both outputs, for assertion messages.
    pub fn dump(&self) -> String {
        format!(
            "exit {}\n--- stdout\n{}\n--- stderr\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}
