mod support;

// End-to-end: nono refuses a policy the sandbox it configures could rewrite — a profile, a
// profile it extends, a `file://` or `cmd://` credential source beneath one of the policy's
// own read-write grants — and a profile kept outside them cannot be changed from inside.

use std::path::{Path, PathBuf};
use std::time::Duration;

use support::*;

const T: Duration = Duration::from_secs(20);

/// A directory outside /tmp (a `/tmp` grant there is the sandbox's private tmpfs).
fn outside_dir(label: &str) -> PathBuf {
    let d = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!(
        "self-edit-{label}-{}-{:?}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0)
    ));
    std::fs::create_dir_all(&d).expect("mkdir");
    d
}

fn nono_in(dir: &Path, args: &[&str]) -> (i32, String, String) {
    let mut c = nono_command();
    c.args(args).current_dir(dir);
    run_command(c, T)
}

fn write(path: &Path, text: &str) {
    std::fs::write(path, text).expect("write");
}

fn work_real(dir: &TempDir) -> PathBuf {
    std::fs::canonicalize(dir.path()).expect("canonical")
}

fn nono_with(dir: &Path, env: &[(&str, &str)], args: &[&str]) -> (i32, String, String) {
    let mut c = nono_command();
    c.args(args).current_dir(dir).envs(env.iter().copied());
    run_command(c, T)
}

#[test]
fn a_profile_beneath_its_own_writable_grant_is_refused_naming_file_and_grant() {
    let work = TempDir::new("self-edit-work");
    let p = work.path().join("agent.json");
    write(&p, r#"{"filesystem": {"allow": ["$WORKDIR"]}}"#);
    let (code, _, err) = nono_in(
        work.path(),
        &["run", "--profile", "./agent.json", "--", "true"],
    );
    assert_eq!(code, 125, "{err}");
    let real = std::fs::canonicalize(&p).expect("canonical");
    assert!(err.contains(&real.display().to_string()), "{err}");
    assert!(err.contains("beneath the read-write grant"), "{err}");
    assert!(err.contains("~/.config/nono/profiles/"), "{err}");
    // --allow-cwd makes the same profile (granting nothing itself) rewritable too.
    write(&p, r#"{"filesystem": {"read": ["/usr"]}}"#);
    let (code, _, err) = nono_in(
        work.path(),
        &[
            "run",
            "--profile",
            "./agent.json",
            "--allow-cwd",
            "--",
            "true",
        ],
    );
    assert_eq!(code, 125, "{err}");
    assert!(err.contains(&real.display().to_string()), "{err}");
    assert!(
        err.contains(&format!(
            "beneath the read-write grant {}",
            work_real(&work).display()
        )),
        "{err}"
    );
    // nono proxy resolves the same way and refuses with its usage code.
    write(&p, r#"{"filesystem": {"allow": ["$WORKDIR"]}}"#);
    let (code, _, err) = nono_in(work.path(), &["proxy", "--profile", "./agent.json"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("beneath the read-write grant"), "{err}");
}

#[test]
fn a_base_profile_beneath_a_writable_grant_is_refused_naming_it() {
    let safe = outside_dir("base");
    let work = TempDir::new("self-edit-base");
    let base = work.path().join("base.json");
    write(&base, r#"{"filesystem": {"read": ["/usr"]}}"#);
    let child = safe.join("child.json");
    write(
        &child,
        &format!(
            r#"{{"extends": "{}", "filesystem": {{"allow": ["{}"]}}}}"#,
            base.display(),
            work.path().display()
        ),
    );
    let c = child.display().to_string();
    let (code, _, err) = nono_in(&safe, &["run", "--profile", &c, "--", "true"]);
    let _ = std::fs::remove_dir_all(&safe);
    assert_eq!(code, 125, "{err}");
    assert!(err.contains("a profile that"), "{err}");
    assert!(err.contains("base.json"), "{err}");
}

fn credential_profile(dir: &Path, key: &str, grant: &Path) -> PathBuf {
    let p = dir.join("cred.json");
    write(
        &p,
        &format!(
            r#"{{"filesystem": {{"allow": ["{}"]}},
                "network": {{"credentials": ["svc"],
                  "custom_credentials": {{"svc": {{"upstream": "https://api.example.com", "credential_key": "{key}"}}}}}}}}"#,
            grant.display()
        ),
    );
    p
}

#[test]
fn file_and_cmd_credential_sources_beneath_a_writable_grant_are_refused() {
    let safe = outside_dir("cred");
    let work = TempDir::new("self-edit-cred");
    let key = work.path().join("key.txt");
    write(&key, "sk-test");
    let script = work.path().join("get-key.sh");
    write(&script, "#!/bin/sh\necho sk-test\n");
    for (source, named) in [
        (format!("file://{}", key.display()), "key.txt"),
        (format!("cmd://{}", script.display()), "get-key.sh"),
        (format!("cmd://sh {}", script.display()), "get-key.sh"),
    ] {
        let p = credential_profile(&safe, &source, work.path());
        let ps = p.display().to_string();
        let (code, _, err) = nono_in(&safe, &["run", "--profile", &ps, "--", "true"]);
        assert_eq!(code, 125, "{source}: {err}");
        assert!(err.contains("credential source of svc"), "{source}: {err}");
        assert!(err.contains(named), "{source}: {err}");
    }
    let _ = std::fs::remove_dir_all(&safe);
}

#[test]
fn the_sandbox_cannot_rewrite_a_profile_kept_outside_its_grants() {
    let safe = outside_dir("attack");
    let work = TempDir::new("self-edit-attack");
    let original = format!(
        r#"{{"filesystem": {{"allow": ["{}"]}}}}"#,
        work.path().display()
    );
    let p = safe.join("agent.json");
    write(&p, &original);
    let ps = p.display().to_string();
    // The attack: rewrite the profile to grant everything.
    let attack =
        format!("echo '{{\"filesystem\": {{\"allow\": [\"/\"]}}}}' > {ps}; echo status=$?");
    let (code, out, err) = nono_in(&safe, &["run", "--profile", &ps, "--", "sh", "-c", &attack]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(!out.contains("status=0"), "the write succeeded: {out}");
    assert_eq!(std::fs::read_to_string(&p).expect("read"), original);

    // Control: kept beneath the grant, the same attack would work, so nono refuses to start.
    let inside = work.path().join("agent.json");
    write(&inside, &original);
    let is = inside.display().to_string();
    let (code, _, err) = nono_in(&safe, &["run", "--profile", &is, "--", "sh", "-c", &attack]);
    assert_eq!(code, 125, "{err}");
    assert_eq!(std::fs::read_to_string(&inside).expect("read"), original);
    let _ = std::fs::remove_dir_all(&safe);
}

#[test]
fn a_user_profile_is_refused_when_its_config_directory_is_granted() {
    let home = TempDir::new("self-edit-xdg");
    let profiles = home.path().join("nono/profiles");
    std::fs::create_dir_all(&profiles).expect("mkdir");
    let grant = home.path().display().to_string();
    write(
        &profiles.join("mine.json"),
        &format!(r#"{{"filesystem": {{"allow": ["{grant}"]}}}}"#),
    );
    let mut c = nono_command();
    c.args(["run", "--profile", "mine", "--", "true"])
        .env("XDG_CONFIG_HOME", home.path())
        .current_dir("/");
    let (code, _, err) = run_command(c, T);
    assert_eq!(code, 125, "{err}");
    assert!(err.contains("mine.json"), "{err}");
    // Control: granted read-only, the same user profile runs.
    write(
        &profiles.join("mine.json"),
        &format!(r#"{{"filesystem": {{"read": ["{grant}"]}}}}"#),
    );
    let mut c = nono_command();
    c.args(["run", "-q", "--profile", "mine", "--", "true"])
        .env("XDG_CONFIG_HOME", home.path())
        .current_dir("/");
    let (code, _, err) = run_command(c, T);
    assert_eq!(code, 0, "{err}");
}

/// The profile is a symlink in the writable working directory pointing at a safe file: the
/// target passes a canonical-path check, but the sandbox can re-point the link at a profile it
/// wrote (granting nothing, with a `cmd://` credential) and the next run would run that
/// command on the host. The link's own location is what counts.
#[test]
fn a_symlinked_profile_in_a_writable_directory_cannot_be_repointed() {
    let safe = outside_dir("link");
    let work = TempDir::new("self-edit-link");
    let target = safe.join("agent.json");
    write(&target, r#"{"filesystem": {"allow": ["$WORKDIR"]}}"#);
    let link = work.path().join("agent.json");
    std::os::unix::fs::symlink(&target, &link).expect("symlink");
    let pwned = work.path().join("PWNED");
    let evil = format!(
        r#"{{"network": {{"credentials": ["svc"], "custom_credentials": {{"svc": {{"upstream": "https://api.example.com", "credential_key": "cmd://touch {}"}}}}}}}}"#,
        pwned.display()
    );
    let attack = format!("printf '%s' '{evil}' > evil.json && ln -sf evil.json agent.json");
    let (code, _, err) = nono_in(
        work.path(),
        &[
            "run",
            "--profile",
            "./agent.json",
            "--",
            "sh",
            "-c",
            &attack,
        ],
    );
    assert_eq!(code, 125, "{err}");
    assert!(
        err.contains("a symlink on the path of the profile agent"),
        "{err}"
    );
    assert!(
        err.contains(&work_real(&work).join("agent.json").display().to_string()),
        "{err}"
    );
    assert_eq!(
        std::fs::read_link(&link).expect("link"),
        target,
        "the link was re-pointed"
    );
    // Had the first run been allowed, the second would have run the command on the host.
    let _ = nono_in(
        work.path(),
        &["run", "--profile", "./agent.json", "--", "true"],
    );
    assert!(!pwned.exists(), "a cmd:// credential ran on the host");
    let _ = std::fs::remove_dir_all(&safe);
}

#[test]
fn a_cmd_program_found_through_a_writable_path_directory_is_refused() {
    let safe = outside_dir("path");
    let work = TempDir::new("self-edit-path");
    let bin = work.path().join("bin");
    std::fs::create_dir_all(&bin).expect("mkdir");
    let p = credential_profile(&safe, "cmd://nono-e2e-getkey --quiet", work.path());
    let ps = p.display().to_string();
    // The program does not exist yet: the sandbox could create it in bin/, first on PATH.
    let path = format!("{}:/usr/bin:/bin", bin.display());
    let (code, _, err) = nono_with(
        &safe,
        &[("PATH", &path)],
        &["run", "--profile", &ps, "--", "true"],
    );
    let _ = std::fs::remove_dir_all(&safe);
    assert_eq!(code, 125, "{err}");
    assert!(
        err.contains("a directory of PATH searched for `nono-e2e-getkey`"),
        "{err}"
    );
    assert!(
        err.contains(
            &work_real(&work)
                .join("bin/nono-e2e-getkey")
                .display()
                .to_string()
        ),
        "{err}"
    );
}

#[test]
fn profile_show_prints_a_self_editable_profile_with_a_warning() {
    let work = TempDir::new("self-edit-show");
    write(
        &work.path().join("agent.json"),
        r#"{"filesystem": {"allow": ["$WORKDIR"]}}"#,
    );
    let (code, out, err) = nono_in(work.path(), &["profile", "show", "./agent.json"]);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).expect("json");
    let w = v["warnings"][0].as_str().unwrap_or_default();
    assert!(
        w.contains("refuse this profile: the profile agent is"),
        "{out}"
    );
    // validate answers for `nono run`: refused, with the usage code.
    let (code, _, err) = nono_in(work.path(), &["profile", "validate", "agent.json"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("beneath the read-write grant"), "{err}");
}
