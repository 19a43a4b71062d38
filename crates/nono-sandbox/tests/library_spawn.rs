//! The library-facing spawn API as the Python bindings use it: captured standard streams, a
//! working directory, killing the whole sandbox from another thread, and spawning from a
//! process with other busy threads. Linux: they check PID namespaces and the fallback.

#![cfg(target_os = "linux")]

mod common;

use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::sync::{mpsc, Arc, Barrier, Mutex};
use std::time::{Duration, Instant};

use common::{policy, require_landlock, spec, Scratch};
use nono_sandbox::{
    prepare, spawn, ChildExit, Containment, FsRule, NetPolicy, SandboxError, Stdio,
    TEST_NO_NAMESPACES_ENV,
};

fn pipe() -> (std::fs::File, OwnedFd) {
    let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).expect("pipe2");
    (std::fs::File::from(r), w)
}

fn read_all(mut f: std::fs::File) -> String {
    let mut s = String::new();
    f.read_to_string(&mut s).expect("read pipe");
    s
}

#[test]
fn stdin_stdout_and_stderr_go_through_pipes() {
    require_landlock(1, "filesystem rules");
    let policy = policy(vec![], NetPolicy::Unrestricted);
    let prepared = prepare(&policy).expect("prepare");
    let (in_r, in_w) = pipe();
    let (out_r, out_w) = pipe();
    let (err_r, err_w) = pipe();
    let mut spec = spec(
        "/bin/sh",
        &["-c", "cat; echo to-stderr >&2; ls /proc/self/fd"],
        &[],
    );
    spec.stdio = Stdio {
        stdin: Some(OwnedFd::from(in_r)),
        stdout: Some(out_w),
        stderr: Some(err_w),
    };
    let mut child = spawn(&prepared, &spec).expect("spawn");
    // Our copies of the child's ends must go, or the readers never see end-of-file.
    drop(spec);
    child.release().expect("release");
    let mut stdin = std::fs::File::from(in_w);
    stdin.write_all(b"from-stdin\n").expect("write stdin");
    drop(stdin);
    let err_reader = std::thread::spawn(move || read_all(err_r));
    let out = read_all(out_r);
    let err = err_reader.join().expect("stderr reader");
    assert_eq!(child.wait().expect("wait"), ChildExit::Code(0));
    let mut lines = out.lines();
    assert_eq!(lines.next(), Some("from-stdin"), "{out}");
    // 0-2 and the directory ls reads; none of the pipe originals or nono's own descriptors.
    let fds: Vec<&str> = lines.collect();
    assert_eq!(
        fds,
        ["0", "1", "2", "3"],
        "descriptors in the program: {out}"
    );
    assert_eq!(err, "to-stderr\n");
}

#[test]
fn cwd_is_honoured() {
    require_landlock(1, "filesystem rules");
    let dir = Scratch::new("cwd");
    let policy = policy(vec![FsRule::read(dir.path())], NetPolicy::Unrestricted);
    let prepared = prepare(&policy).expect("prepare");
    let (out_r, out_w) = pipe();
    let mut spec = spec("/bin/sh", &["-c", "pwd"], &[]);
    spec.cwd = Some(dir.path().to_path_buf());
    spec.stdio.stdout = Some(out_w);
    let mut child = spawn(&prepared, &spec).expect("spawn");
    drop(spec);
    assert_eq!(child.wait().expect("wait"), ChildExit::Code(0));
    assert_eq!(
        read_all(out_r).trim_end(),
        dir.path().to_str().expect("utf-8")
    );
}

fn cwd_error(policy_dirs: Vec<FsRule>, cwd: std::path::PathBuf) -> SandboxError {
    let policy = policy(policy_dirs, NetPolicy::Unrestricted);
    let prepared = prepare(&policy).expect("prepare");
    let mut spec = spec("/bin/true", &[], &[]);
    spec.cwd = Some(cwd);
    match spawn(&prepared, &spec) {
        Ok(mut child) => child
            .wait()
            .expect_err("the working directory must be refused"),
        Err(e) => e,
    }
}

#[test]
fn missing_cwd_is_refused_naming_it() {
    require_landlock(1, "filesystem rules");
    let dir = Scratch::new("cwd-missing");
    let missing = dir.path().join("not-there");
    let err = cwd_error(vec![FsRule::read(dir.path())], missing.clone());
    assert!(
        matches!(&err, SandboxError::WorkingDirectory { path, .. } if *path == missing),
        "{err:?}"
    );
    let msg = err.to_string();
    assert!(msg.contains(missing.to_str().expect("utf-8")), "{msg}");
    assert!(msg.contains("granted"), "{msg}");
}

#[test]
fn ungranted_cwd_is_refused() {
    require_landlock(1, "filesystem rules");
    let hidden = Scratch::new("cwd-hidden");
    let err = cwd_error(vec![], hidden.path().to_path_buf());
    assert!(
        matches!(err, SandboxError::WorkingDirectory { .. }),
        "{err:?}"
    );
}

#[test]
fn relative_cwd_is_refused_before_fork() {
    require_landlock(1, "filesystem rules");
    let err = cwd_error(vec![], "relative/dir".into());
    assert!(
        matches!(err, SandboxError::InvalidExecSpec { .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("absolute"), "{err}");
}

/// PIDs of running processes whose command line is exactly `args`.
fn processes_with_cmdline(args: &[&str]) -> Vec<i32> {
    let mut want = Vec::new();
    for a in args {
        want.extend_from_slice(a.as_bytes());
        want.push(0);
    }
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").expect("read /proc").flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<i32>().ok())
        else {
            continue;
        };
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        // Zombies have an empty command line, so only live processes match.
        if cmdline == want {
            found.push(pid);
        }
    }
    found
}

fn poll_until(what: &str, timeout: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `sh -c 'sleep N & sleep N'` killed from another thread while this one waits: nothing of
/// it survives, and `wait` reports SIGKILL. Returns the containment that was in force.
fn kill_from_another_thread_leaves_nothing() -> Containment {
    let policy = policy(vec![], NetPolicy::Unrestricted);
    let prepared = prepare(&policy).expect("prepare");
    // A duration unique to this test process, so its sleeps can be told apart in /proc.
    let duration = format!("100.{}", std::process::id());
    let script = format!("sleep {duration} & sleep {duration}");
    let mut child = spawn(&prepared, &spec("/bin/sh", &["-c", &script], &[])).expect("spawn");
    let containment = child.containment().clone();
    let killer = child.killer();
    child.release().expect("release");
    let sleeps = ["sleep", duration.as_str()];
    let killer_thread = {
        let duration = duration.clone();
        std::thread::spawn(move || {
            let sleeps = ["sleep", duration.as_str()];
            poll_until("both sleeps to start", Duration::from_secs(10), || {
                processes_with_cmdline(&sleeps).len() == 2
            });
            killer.kill().expect("kill");
        })
    };
    let exit = child.wait().expect("wait");
    killer_thread.join().expect("killer thread");
    assert_eq!(exit, ChildExit::Signal(libc::SIGKILL));
    poll_until(
        "the sandbox's processes to go",
        Duration::from_secs(2),
        || processes_with_cmdline(&sleeps).is_empty(),
    );
    // Reaped now: the killer must do nothing, whoever has the PID.
    child.killer().kill().expect("kill after reap is a no-op");
    containment
}

#[test]
fn killer_from_another_thread_ends_backgrounded_grandchildren() {
    require_landlock(1, "filesystem rules");
    let containment = kill_from_another_thread_leaves_nothing();
    assert!(
        matches!(containment, Containment::Namespaces { .. }),
        "this test needs PID and mount namespaces (root, or unprivileged user namespaces: \
         sysctl kernel.unprivileged_userns_clone=1 / apparmor_restrict_unprivileged_userns=0); \
         got {containment}"
    );
}

#[test]
fn killer_ends_backgrounded_grandchildren_in_fallback_containment() {
    require_landlock(1, "filesystem rules");
    // The fallback is forced through the environment, which a threaded test must not set in
    // its own process: run this test again in a child process that has it.
    if std::env::var_os(TEST_NO_NAMESPACES_ENV).is_none() {
        let exe = std::env::current_exe().expect("test binary");
        let out = std::process::Command::new(exe)
            .args([
                "--exact",
                "killer_ends_backgrounded_grandchildren_in_fallback_containment",
                "--nocapture",
            ])
            .env(TEST_NO_NAMESPACES_ENV, "1")
            .output()
            .expect("re-run the test binary");
        assert!(
            out.status.success(),
            "fallback run failed:\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("1 passed"),
            "the fallback run did not run the test"
        );
        return;
    }
    let containment = kill_from_another_thread_leaves_nothing();
    assert!(
        matches!(containment, Containment::Fallback { .. }),
        "{containment}"
    );
}

#[test]
fn spawn_works_while_other_threads_allocate_and_hold_locks() {
    require_landlock(1, "filesystem rules");
    let policy = policy(vec![], NetPolicy::Unrestricted);
    let prepared = Arc::new(prepare(&policy).expect("prepare"));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let shared = Arc::new(Mutex::new(Vec::<String>::new()));
    let held = Arc::new(Mutex::new(()));
    let started = Arc::new(Barrier::new(6));
    let mut busy = Vec::new();
    for i in 0..4 {
        let (stop, shared, started) = (stop.clone(), shared.clone(), started.clone());
        busy.push(std::thread::spawn(move || {
            started.wait();
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                // malloc, free and a contended lock, all the time.
                let s = format!("thread {i} {:?}", vec![i; 64]);
                let mut v = shared.lock().expect("lock");
                v.push(s);
                if v.len() > 1000 {
                    v.clear();
                }
            }
        }));
    }
    {
        let (stop, held, started) = (stop.clone(), held.clone(), started.clone());
        busy.push(std::thread::spawn(move || {
            // Held for the whole test: a child that took this lock would hang.
            let _guard = held.lock().expect("lock");
            started.wait();
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(1));
            }
        }));
    }
    started.wait();
    let (tx, rx) = mpsc::channel();
    let spawner = {
        let prepared = prepared.clone();
        std::thread::spawn(move || {
            for n in 0..20 {
                let code = format!("exit {}", n % 7);
                let spec = spec("/bin/sh", &["-c", &code], &[]);
                let exit = spawn(&prepared, &spec).and_then(|mut c| c.wait());
                let _ = tx.send((n, exit));
            }
        })
    };
    for n in 0..20 {
        let (got, exit) = rx
            .recv_timeout(Duration::from_secs(30))
            .unwrap_or_else(|_| panic!("spawn {n} did not finish: a child deadlocked after fork"));
        assert_eq!(got, n);
        assert_eq!(exit.expect("spawn and wait"), ChildExit::Code(n % 7));
    }
    spawner.join().expect("spawner");
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for t in busy {
        t.join().expect("busy thread");
    }
}
