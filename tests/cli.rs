//! The command line itself: mistyped options are usage errors (never the command), the version
//! names its commit, `nono doctor` reports the kernel, completions are generated.

mod support;

use std::time::Duration;

use support::*;

const T: Duration = Duration::from_secs(20);
/// `nono run`'s own failures, usage errors included.
const EXIT_NONO_FAILED: i32 = 125;

#[test]
fn a_mistyped_option_before_the_command_is_a_usage_error_with_a_suggestion() {
    for (args, typo, suggestion) in [
        (
            vec!["run", "--alow-cwd", "--", "true"],
            "--alow-cwd",
            Some("--allow-cwd"),
        ),
        (
            vec!["run", "--allow-domian", "x.com", "--", "true"],
            "--allow-domian",
            Some("--allow-domain"),
        ),
        (vec!["run", "-V"], "-V", None),
        (
            vec!["run", "--alow-cwd", "true"],
            "--alow-cwd",
            Some("--allow-cwd"),
        ),
    ] {
        let (code, out, err) = run_nono(&args, T);
        assert_eq!(code, EXIT_NONO_FAILED, "{args:?}: {out}{err}");
        assert!(
            !err.contains("command not found") && !err.contains("No such file"),
            "{args:?} ran the typo as the command: {err}"
        );
        assert!(err.contains(typo), "{args:?}: {err}");
        if let Some(s) = suggestion {
            assert!(err.contains(s), "{args:?}: no suggestion of {s}: {err}");
        }
        assert_eq!(err.trim().lines().count(), 1, "{args:?}: {err}");
    }
}

#[test]
fn the_command_keeps_its_own_options() {
    let (code, out, err) = run_nono(&["run", "-q", "/bin/echo", "-n", "a", "-V"], T);
    assert_eq!((code, out.as_str()), (0, "a -V"), "{err}");
    let (code, out, err) = run_nono(&["run", "-q", "--", "/bin/echo", "--alow-cwd"], T);
    assert_eq!((code, out.trim()), (0, "--alow-cwd"), "{err}");
}

#[test]
fn version_names_the_commit() {
    let (code, out, err) = run_nono(&["--version"], T);
    assert_eq!(code, 0, "{err}");
    let inner = out
        .trim()
        .split_once('(')
        .and_then(|(_, rest)| rest.strip_suffix(')'))
        .unwrap_or_else(|| panic!("no commit in {out:?}"));
    let commit = inner.split(',').next().unwrap_or_default();
    assert!(
        commit == "unknown commit"
            || commit.len() == 12 && commit.chars().all(|c| c.is_ascii_hexdigit()),
        "{out}"
    );
}

#[test]
fn doctor_reports_the_kernel_features_nono_uses() {
    let (code, out, err) = run_nono(&["doctor", "--json"], T);
    let v: serde_json::Value =
        serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("{e}: {out}{err}"));
    for key in [
        "landlock_abi",
        "landlock_tcp_rules",
        "seccomp",
        "user_namespaces",
        "wsl2",
        "complete",
    ] {
        assert!(v.get(key).is_some(), "{key} missing: {v}");
    }
    // This machine has everything (Landlock ABI 7, seccomp); a gap would exit 1.
    let complete = v["complete"].as_bool() == Some(true);
    assert_eq!(code, if complete { 0 } else { 1 }, "{v}");
    let (_, text, _) = run_nono(&["doctor"], T);
    assert!(
        text.contains("Landlock:") && text.contains("seccomp:"),
        "{text}"
    );
}

#[test]
fn completions_are_generated_for_each_shell() {
    for shell in ["bash", "zsh", "fish"] {
        let (code, out, err) = run_nono(&["completions", shell], T);
        assert_eq!(code, 0, "{shell}: {err}");
        assert!(
            out.contains("allow-domain") && out.contains("network-profile"),
            "{shell}: the script does not know nono's options"
        );
    }
    let (code, _, err) = run_nono(&["completions", "tcsh"], T);
    assert_eq!(code, 2, "{err}");
}
