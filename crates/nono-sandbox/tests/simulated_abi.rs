//! `NONO_TEST_LANDLOCK_ABI` really lowers the ABI `detect()` reports: proxy mode refuses, and
//! the insecure opt-in runs with a warning. The knob is an environment variable, so the test
//! re-runs this binary with it set instead of mutating its own environment.

#![cfg(target_os = "linux")]

mod common;

use std::process::Command;

use common::*;
use nono_sandbox::{detect, prepare, ChildExit, Enforcement, NetPolicy, SandboxError};

const INNER: &str = "NONO_SIMULATED_ABI_INNER";
const TEST: &str = "landlock_abi_3_refuses_proxy_and_insecure_proxy_warns";

#[test]
fn landlock_abi_3_refuses_proxy_and_insecure_proxy_warns() {
    if std::env::var_os(INNER).is_some() {
        inner();
        return;
    }
    require_landlock(4, "the simulated ABI must be lower than the real one");
    let exe = std::env::current_exe().expect("current exe");
    let out = Command::new(exe)
        .args([TEST, "--exact", "--nocapture", "--test-threads=1"])
        .env(nono_sandbox::TEST_LANDLOCK_ABI_ENV, "3")
        .env(INNER, "1")
        .output()
        .expect("re-run test binary");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "inner run failed:\n{stdout}\n{stderr}"
    );
    assert!(
        stdout.contains("INNER-CHECKS-PASSED"),
        "inner checks did not run:\n{stdout}"
    );
}

fn inner() {
    let support = detect();
    assert_eq!(support.landlock_abi, Some(3));
    assert!(support.simulated);

    let net = NetPolicy::ProxyOnly {
        proxy_port: free_port(),
        connect_ports: vec![],
        local_ports: vec![],
        bind_ports: vec![],
        allow_udp: false,
    };
    let mut policy = policy(vec![], net);
    let err = prepare(&policy).expect_err("proxy mode must refuse on ABI 3");
    assert!(matches!(
        err,
        SandboxError::ProxyNeedsLandlockNet { found: 3, .. }
    ));
    let msg = err.to_string();
    assert!(
        msg.contains("Landlock ABI 4 (TCP port rules, Linux 6.7+)"),
        "{msg}"
    );
    assert!(msg.contains("NONO_TEST_LANDLOCK_ABI"), "{msg}");

    policy.allow_insecure_proxy = true;
    let prepared = prepare(&policy).expect("insecure proxy opt-in");
    let report = prepared.report();
    assert_eq!(report.landlock_abi, 3);
    assert!(
        matches!(report.network, Enforcement::NotEnforced(_)),
        "{report:?}"
    );
    assert!(
        report.warnings.iter().any(|w| w.contains("INSECURE")),
        "{report:?}"
    );
    // It still runs, confined on the filesystem.
    let mut child =
        nono_sandbox::spawn(&prepared, &spec("/bin/sh", &["-c", "exit 5"], &[])).expect("spawn");
    child.release().expect("release");
    assert_eq!(child.wait().expect("wait"), ChildExit::Code(5));
    println!("INNER-CHECKS-PASSED");
}
