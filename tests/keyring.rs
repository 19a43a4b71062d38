//! The OS keyring as a credential source, end to end: `nono credential set` stores a key
//! (read from stdin, never echoed), `nono run --credential` injects it into a request the
//! confined child makes with its phantom, `nono credential delete` removes it.
//!
//! Linux's keyring backend needs a session keyring; `keyctl session` (package keyutils)
//! gives each test its own, so nothing touches the user's real keyring.

mod support;

use std::io::Write;
use std::process::{Command, Stdio};

use support::*;

const SECRET: &str = "sk-keyring-e2e-5be1c7";

/// Runs `script` with `sh -c` inside a fresh session keyring, with `NONO` set to the binary.
fn in_session(script: &str, stdin: &str) -> (i32, String, String) {
    let mut child = Command::new("keyctl")
        .args(["session", "-", "sh", "-c", script])
        .env("NONO", nono_bin())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("keyctl runs (install keyutils: apt-get install -y keyutils)");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin.as_bytes())
        .expect("write stdin");
    let out = child.wait_with_output().expect("wait");
    // keyctl announces the session on stderr; keep only what nono and the script said.
    let stderr: String = String::from_utf8_lossy(&out.stderr)
        .lines()
        .filter(|l| !l.starts_with("Joined session keyring"))
        .map(|l| format!("{l}\n"))
        .collect();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr,
    )
}

#[test]
fn keyring_credential_is_stored_without_echo_injected_and_deleted() {
    let ca = TestCa::new();
    let origin = HttpOrigin::start_tls(&ca);
    let dir = TempDir::new("keyring");
    let account = format!("nono_e2e_{}", std::process::id());
    let profile = dir.path().join("kr.json");
    let body = serde_json::json!({
        "network": {
            "credentials": ["kr"],
            "custom_credentials": {"kr": {
                "upstream": format!("https://localhost:{}/base", origin.port),
                "credential_key": account,
                "env_var": "KR_API_KEY",
                "tls_ca": ca.ca_path,
            }}
        }
    });
    std::fs::write(&profile, body.to_string()).expect("write profile");
    let p = profile.display();
    let script = format!(
        "\"$NONO\" credential set {account} || exit 90\n\
         \"$NONO\" run -q --profile {p} -- sh -c 'curl -sS --fail -o /dev/null -H \"Authorization: Bearer $KR_API_KEY\" \"$KR_BASE_URL/hello\"' || exit 91\n\
         \"$NONO\" credential delete {account} || exit 92\n\
         \"$NONO\" run -q --profile {p} -- true; echo \"after-delete=$?\""
    );
    let (code, stdout, stderr) = in_session(&script, SECRET);
    assert_eq!(code, 0, "stdout: {stdout}\nstderr: {stderr}");
    // The key went from stdin to the keyring without being printed.
    assert!(
        !stdout.contains(SECRET) && !stderr.contains(SECRET),
        "{stdout}{stderr}"
    );
    // The child's request reached the origin with the real key, not the phantom.
    let reqs = origin.requests();
    assert_eq!(reqs.len(), 1, "{stdout}\n{stderr}");
    assert_eq!(reqs[0].path, "/base/hello");
    assert_eq!(
        reqs[0].header("authorization"),
        Some(format!("Bearer {SECRET}").as_str())
    );
    // Once deleted, `nono run` refuses to start (125), naming the route and the keyring.
    assert!(stdout.contains("after-delete=125"), "{stdout}\n{stderr}");
    assert!(
        stderr.contains("kr") && stderr.contains(&account),
        "{stderr}"
    );
}

#[test]
fn credential_set_refuses_an_empty_secret() {
    let (code, _, stderr) = in_session("\"$NONO\" credential set nono_e2e_empty", "");
    assert_ne!(code, 0, "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
}
