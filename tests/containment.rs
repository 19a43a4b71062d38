mod support;

// End-to-end tests of containment: nothing the sandbox starts outlives it, changes what it was
// not granted, or touches outside processes. Each attack runs from inside a real `nono run`
// (as root and as an unprivileged user, in each network mode), with a positive control that
// shows the same attack works outside the sandbox.

use std::io::Read;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::*;

const T: Duration = Duration::from_secs(30);
const PY: &str = "/usr/bin/python3";
/// The unprivileged user the tests run nono as (`nobody`).
const NOBODY: u32 = 65534;

/// Who runs nono.
#[derive(Clone, Copy, Debug, PartialEq)]
enum As {
    Root,
    Nobody,
}

fn nono_command(who: As, flags: &[&str], cmd: &[&str], env: &[(&str, &str)]) -> Command {
    let mut c = match who {
        As::Root => support::nono_command(),
        As::Nobody => {
            let mut c = Command::new("setpriv");
            c.args([
                &format!("--reuid={NOBODY}"),
                &format!("--regid={NOBODY}"),
                "--clear-groups",
                "--",
            ])
            .arg(nono_bin());
            support::default_signals(&mut c);
            c
        }
    };
    c.arg("run").args(flags).arg("--").args(cmd);
    c.envs(env.iter().copied()).current_dir("/");
    c
}

fn run(c: Command) -> Out {
    let (code, stdout, stderr) = run_command(c, T);
    Out {
        code,
        stdout,
        stderr,
    }
}

fn py(body: &str) -> String {
    format!("{PROBE_PRELUDE}\n{body}")
}

/// A directory the unprivileged user may use too.
fn shared_dir(label: &str) -> TempDir {
    let d = TempDir::new(label);
    std::fs::set_permissions(d.path(), std::fs::Permissions::from_mode(0o777)).expect("chmod");
    d
}

/// Host pids whose command line contains `marker`.
fn processes_with(marker: &str) -> Vec<i32> {
    let mut found = Vec::new();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return found;
    };
    for e in dir.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        if let Ok(cmdline) = std::fs::read(e.path().join("cmdline")) {
            if String::from_utf8_lossy(&cmdline).contains(marker) {
                found.push(pid);
            }
        }
    }
    found
}

fn kill_all(pids: &[i32]) {
    for &p in pids {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(p),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
}

fn unique(label: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("nono-{label}-{}-{nanos}", std::process::id())
}

/// A daemon that detaches as well as it can: fork, setsid, fork again, ignore SIGTERM and
/// SIGHUP, and live on as `python3 -c ... MARKER`. The first process waits until it runs.
fn daemon_script(marker: &str) -> String {
    format!(
        r#"
import os, signal, time
r, w = os.pipe()
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        null = os.open("/dev/null", os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(null, fd)
        os.write(w, b"x")
        os.execv("{PY}", ["{PY}", "-c", "import signal, time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\nsignal.signal(signal.SIGHUP, signal.SIG_IGN)\ntime.sleep(120)", "{marker}"])
    os._exit(0)
os.read(r, 1)
time.sleep(0.3)
print("DAEMON STARTED", flush=True)
"#
    )
}

/// The network modes the tests cover: unrestricted, --block-net, --block-net with an open
/// port, proxy mode, and proxy mode with a direct host:port entry (shared network namespace).
fn network_modes(open_port: &str) -> Vec<Vec<String>> {
    [
        vec![],
        vec!["--block-net"],
        vec!["--block-net", "--open-port", open_port],
        vec!["--allow-domain", "127.0.0.1"],
        vec!["--allow-domain", "127.0.0.1:9"],
    ]
    .into_iter()
    .map(|v| v.into_iter().map(String::from).collect())
    .collect()
}

#[test]
fn double_forked_daemons_are_gone_when_nono_returns_in_every_mode_as_root_and_unprivileged() {
    // Positive control: outside nono the daemon survives its parent.
    let marker = unique("daemon-control");
    let mut c = Command::new(PY);
    c.args(["-c", &daemon_script(&marker)]);
    let out = run(c);
    assert!(out.stdout.contains("DAEMON STARTED"), "{}", out.dump());
    let survivors = processes_with(&marker);
    kill_all(&survivors);
    assert!(!survivors.is_empty(), "control: the daemon did not survive");

    for who in [As::Root, As::Nobody] {
        for flags in network_modes("3999") {
            let marker = unique("daemon");
            let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
            let out = run(nono_command(
                who,
                &flags,
                &[PY, "-c", &daemon_script(&marker)],
                &[],
            ));
            let left = processes_with(&marker);
            kill_all(&left);
            assert_eq!(out.code, 0, "{who:?} {flags:?}\n{}", out.dump());
            assert!(out.stdout.contains("DAEMON STARTED"), "{}", out.dump());
            assert!(
                out.stderr.contains("containment: ") && !out.stderr.contains("FALLBACK"),
                "{who:?} {flags:?}: {}",
                out.dump()
            );
            assert!(
                left.is_empty(),
                "{who:?} {flags:?}: sandbox processes {left:?} outlived nono\n{}",
                out.dump()
            );
        }
    }
}

#[test]
fn fallback_containment_sweeps_double_forked_daemons_too() {
    let marker = unique("daemon-fallback");
    let out = run(nono_command(
        As::Root,
        &["--block-net"],
        &[PY, "-c", &daemon_script(&marker)],
        &[("NONO_TEST_NO_NAMESPACES", "1")],
    ));
    let left = processes_with(&marker);
    kill_all(&left);
    assert_eq!(out.code, 0, "{}", out.dump());
    assert!(
        out.stderr.contains("containment: FALLBACK"),
        "{}",
        out.dump()
    );
    assert!(out.stdout.contains("DAEMON STARTED"), "{}", out.dump());
    assert!(left.is_empty(), "{left:?} outlived nono\n{}", out.dump());
}

#[test]
fn a_sigkilled_nono_takes_every_sandbox_process_with_it() {
    for who in [As::Root, As::Nobody] {
        let marker = unique("daemon-kill9");
        let script = format!("{}\nimport time\ntime.sleep(60)\n", daemon_script(&marker));
        let mut child = nono_command(who, &["--block-net"], &[PY, "-c", &script], &[])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start nono");
        let deadline = Instant::now() + Duration::from_secs(15);
        while processes_with(&marker).is_empty() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        assert!(
            !processes_with(&marker).is_empty(),
            "{who:?}: the daemon never started"
        );
        // SIGKILL nono itself (under setpriv, setpriv execs nono: same pid).
        child.kill().expect("SIGKILL nono");
        let _ = child.wait();
        let deadline = Instant::now() + Duration::from_secs(10);
        while !processes_with(&marker).is_empty() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        let left = processes_with(&marker);
        kill_all(&left);
        assert!(left.is_empty(), "{who:?}: {left:?} survived nono's SIGKILL");
    }
}

/// A POSIX ACL (`system.posix_acl_access`) that gives uid 65534 rwx: a real grant to another
/// user, in the kernel's xattr encoding.
const ACL_SCRIPT: &str = r#"
def acl():
    e = lambda tag, perm, uid: struct.pack("<HHI", tag, perm, uid)
    return struct.pack("<I", 2) + e(1, 6, 0xffffffff) + e(2, 7, 65534) + e(4, 4, 0xffffffff) + e(0x10, 7, 0xffffffff) + e(0x20, 0, 0xffffffff)
def matrix(tag, d):
    f = d + "/f"
    probe(tag + "_chmod", lambda: os.chmod(f, 0o666))
    probe(tag + "_chmod_dir", lambda: os.chmod(d, 0o777))
    probe(tag + "_utime", lambda: os.utime(f, (0, 0)))
    probe(tag + "_xattr", lambda: os.setxattr(f, "user.nono", b"x"))
    probe(tag + "_acl", lambda: os.setxattr(f, "system.posix_acl_access", acl()))
    probe(tag + "_rmxattr", lambda: os.removexattr(f, "user.keep"))
    probe(tag + "_chown", lambda: os.chown(f, -1, -1))
    probe(tag + "_stat", lambda: os.stat(f))
    def watch():
        fd = chk(libc.inotify_init1(0))
        try:
            chk(libc.inotify_add_watch(fd, d.encode(), 0xfff))
        finally:
            os.close(fd)
    probe(tag + "_inotify", watch)
for tag, d in DIRS:
    matrix(tag, d)
probe("etc_chmod", lambda: os.chmod("/etc/passwd", 0o666))
probe("etc_utime", lambda: os.utime("/etc/passwd", (0, 0)))
"#;

fn metadata_dirs(owner: u32) -> (TempDir, TempDir, TempDir) {
    let dirs = (
        shared_dir("meta-outside"),
        shared_dir("meta-ro"),
        shared_dir("meta-rw"),
    );
    for d in [&dirs.0, &dirs.1, &dirs.2] {
        let f = d.path().join("f");
        std::fs::write(&f, "x").expect("write");
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        std::os::unix::fs::chown(d.path(), Some(owner), Some(owner)).expect("chown dir");
        std::os::unix::fs::chown(&f, Some(owner), Some(owner)).expect("chown");
        xattr_set(&f, "user.keep");
    }
    (dirs.0, dirs.1, dirs.2)
}

fn xattr_set(path: &Path, name: &str) {
    let p = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).expect("path");
    let n = std::ffi::CString::new(name).expect("name");
    // SAFETY: NUL-terminated strings and a live one-byte value.
    let rc = unsafe { libc::setxattr(p.as_ptr(), n.as_ptr(), b"k".as_ptr().cast(), 1, 0) };
    assert_eq!(
        rc,
        0,
        "setxattr {name} on {}: {}",
        path.display(),
        std::io::Error::last_os_error()
    );
}

fn unchanged(path: &Path) {
    let meta = std::fs::metadata(path.join("f")).expect("stat");
    assert_eq!(
        meta.permissions().mode() & 0o7777,
        0o600,
        "{} mode",
        path.display()
    );
    assert!(
        meta.mtime() > 1_000_000,
        "{} mtime was backdated",
        path.display()
    );
    let dir = std::fs::metadata(path).expect("stat dir");
    assert_eq!(
        dir.permissions().mode() & 0o7777,
        0o777,
        "{} dir mode",
        path.display()
    );
}

fn metadata_body(o: &TempDir, r: &TempDir, w: &TempDir) -> String {
    py(&format!(
        "DIRS = [('outside', '{}'), ('ro', '{}'), ('rw', '{}')]\n{ACL_SCRIPT}",
        o.path().display(),
        r.path().display(),
        w.path().display()
    ))
}

const OPS: &[&str] = &[
    "chmod",
    "chmod_dir",
    "utime",
    "xattr",
    "acl",
    "rmxattr",
    "chown",
];

#[test]
fn metadata_changes_reach_only_read_write_grants_as_root_and_unprivileged() {
    // Control: outside any sandbox every change works (so the probes prove something).
    let (o, r, w) = metadata_dirs(0);
    let mut c = Command::new(PY);
    c.args(["-c", &metadata_body(&o, &r, &w)]);
    let out = run(c);
    for op in OPS {
        assert_eq!(
            out.probe(&format!("outside_{op}")),
            "OK",
            "control {op}\n{}",
            out.dump()
        );
    }

    for who in [As::Root, As::Nobody] {
        let owner = if who == As::Root { 0 } else { NOBODY };
        let (o, r, w) = metadata_dirs(owner);
        let (rs, ws) = (
            r.path().display().to_string(),
            w.path().display().to_string(),
        );
        let out = run(nono_command(
            who,
            &["--block-net", "--read", &rs, "--allow", &ws],
            &[PY, "-c", &metadata_body(&o, &r, &w)],
            &[],
        ));
        assert_eq!(out.code, 0, "{who:?}\n{}", out.dump());
        for op in OPS {
            assert_eq!(
                out.probe(&format!("outside_{op}")),
                "ENOENT",
                "{who:?} {op}\n{}",
                out.dump()
            );
            assert_eq!(
                out.probe(&format!("ro_{op}")),
                "EROFS",
                "{who:?} {op}\n{}",
                out.dump()
            );
            assert_eq!(
                out.probe(&format!("rw_{op}")),
                "OK",
                "{who:?} {op}\n{}",
                out.dump()
            );
        }
        // Not even visible outside the grants.
        assert_eq!(out.probe("outside_stat"), "ENOENT", "{}", out.dump());
        assert_eq!(out.probe("outside_inotify"), "ENOENT", "{}", out.dump());
        assert_eq!(out.probe("ro_stat"), "OK", "{}", out.dump());
        assert_eq!(out.probe("etc_chmod"), "EROFS", "{}", out.dump());
        assert_eq!(out.probe("etc_utime"), "EROFS", "{}", out.dump());
        unchanged(o.path());
        unchanged(r.path());
    }
}

#[test]
fn fallback_containment_refuses_every_metadata_change() {
    let (o, r, w) = metadata_dirs(0);
    let (rs, ws) = (
        r.path().display().to_string(),
        w.path().display().to_string(),
    );
    let out = run(nono_command(
        As::Root,
        &["--block-net", "--read", &rs, "--allow", &ws],
        &[PY, "-c", &metadata_body(&o, &r, &w)],
        &[("NONO_TEST_NO_NAMESPACES", "1")],
    ));
    assert_eq!(out.code, 0, "{}", out.dump());
    assert!(
        out.stderr.contains("containment: FALLBACK"),
        "{}",
        out.dump()
    );
    for tag in ["outside", "ro", "rw"] {
        for op in OPS {
            assert_eq!(
                out.probe(&format!("{tag}_{op}")),
                "EPERM",
                "{tag} {op}\n{}",
                out.dump()
            );
        }
    }
    assert_eq!(out.probe("etc_chmod"), "EPERM", "{}", out.dump());
    unchanged(o.path());
    unchanged(r.path());
}

#[test]
fn other_terminals_are_invisible_and_the_sandbox_has_its_own_ptys() {
    let pty = nix::pty::openpty(None, None).expect("openpty");
    let path = nix::unistd::ttyname(&pty.slave).expect("ttyname");
    let body = py(&format!(
        "probe('other_pty', lambda: os.close(os.open('{p}', os.O_RDWR | os.O_NOCTTY)))\n\
         print('PTS', sorted(os.listdir('/dev/pts')), flush=True)\n\
         def own():\n    m, s = os.openpty(); os.write(s, b'x'); assert os.read(m, 1) == b'x'\n\
         probe('own_pty', own)\n",
        p = path.display()
    ));
    let mut c = Command::new(PY);
    c.args(["-c", &body]);
    let control = run(c);
    assert_eq!(control.probe("other_pty"), "OK", "{}", control.dump());
    for who in [As::Root, As::Nobody] {
        let out = run(nono_command(who, &["--block-net"], &[PY, "-c", &body], &[]));
        assert_eq!(out.probe("other_pty"), "ENOENT", "{who:?}\n{}", out.dump());
        assert_eq!(out.probe("own_pty"), "OK", "{who:?}\n{}", out.dump());
        assert!(
            out.stdout.contains("PTS ['ptmx']"),
            "{who:?}\n{}",
            out.dump()
        );
    }
}

#[test]
fn interactive_programs_keep_their_terminal() {
    let pty = nix::pty::openpty(None, None).expect("openpty");
    let slave = || Stdio::from(pty.slave.try_clone().expect("dup slave"));
    let mut child = support::nono_command()
        .args(["run", "-q", "--block-net", "--", "sh", "-c"])
        .arg("tty; test -t 0 && test -t 1 && echo IS_A_TTY; stty -a >/dev/null && echo STTY_OK")
        .stdin(slave())
        .stdout(slave())
        .stderr(slave())
        .spawn()
        .expect("start nono");
    let status = child.wait().expect("wait");
    drop(pty.slave);
    let mut master = std::fs::File::from(pty.master);
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    // EIO once every slave descriptor is closed.
    while let Ok(n) = master.read(&mut chunk) {
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let text = String::from_utf8_lossy(&buf);
    assert!(status.success(), "{text}");
    assert!(text.contains("/dev/console"), "{text}");
    assert!(text.contains("IS_A_TTY"), "{text}");
    assert!(text.contains("STTY_OK"), "{text}");
}

fn sleeper() -> std::process::Child {
    Command::new("sleep")
        .arg("30")
        .spawn()
        .expect("start sleep")
}

fn fsize_limit(pid: u32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/limits"))
        .expect("limits")
        .lines()
        .find(|l| l.starts_with("Max file size"))
        .unwrap_or("")
        .to_string()
}

const OUTSIDE_PROCESS_PROBES: &str = r#"
def prl():
    new = (ctypes.c_ulong * 2)(0, 0)
    chk(libc.prlimit(VICTIM, 1, new, None))
probe("prlimit", prl)
probe("setpriority_pid", lambda: chk(libc.setpriority(0, VICTIM, 10)))
probe("setpriority_user", lambda: chk(libc.setpriority(2, 0, 19)))
probe("sched_setaffinity", lambda: os.sched_setaffinity(VICTIM, {0}))
probe("kill", lambda: os.kill(VICTIM, 0))
probe("pidfd_open", lambda: os.close(os.pidfd_open(VICTIM)))
probe("own_prlimit", lambda: chk(libc.prlimit(0, 1, None, (ctypes.c_ulong * 2)())))
"#;

#[test]
fn outside_processes_cannot_be_named_or_limited() {
    let mut victim = sleeper();
    let before = fsize_limit(victim.id());
    let body = py(&format!(
        "VICTIM = {}\n{OUTSIDE_PROCESS_PROBES}",
        victim.id()
    ));
    for (env, want) in [("0", "ESRCH"), ("1", "EPERM")] {
        let out = run(nono_command(
            As::Root,
            &["--block-net"],
            &[PY, "-c", &body],
            &[("NONO_TEST_NO_NAMESPACES", env)],
        ));
        for p in ["prlimit", "setpriority_pid", "sched_setaffinity"] {
            assert_eq!(
                out.probe(p),
                want,
                "{p} (no namespaces: {env})\n{}",
                out.dump()
            );
        }
        // PRIO_USER names every process of the user: refused in the fallback; in the
        // namespaces it reaches only the sandbox's own processes.
        if env == "1" {
            assert_eq!(out.probe("setpriority_user"), "EPERM", "{}", out.dump());
        }
        assert_eq!(out.probe("own_prlimit"), "OK", "{}", out.dump());
        assert_ne!(out.probe("kill"), "OK", "{}", out.dump());
        assert_eq!(
            fsize_limit(victim.id()),
            before,
            "the victim's limit changed"
        );
    }
    let _ = victim.kill();
    let _ = victim.wait();
}

#[test]
fn the_sandbox_sees_only_its_own_processes_and_no_root_only_files() {
    let body = py(
        "pids = sorted(int(p) for p in os.listdir('/proc') if p.isdigit())\n\
         print('PIDS', pids, flush=True)\n\
         print('SELF', os.getpid(), flush=True)\n\
         print('SHADOW', len(open('/etc/shadow', 'rb').read()) if os.path.exists('/etc/shadow') else 'absent', flush=True)\n\
         print('PASSWD', len(open('/etc/passwd', 'rb').read()) > 0, flush=True)\n",
    );
    let out = run(nono_command(
        As::Root,
        &["--block-net"],
        &[PY, "-c", &body],
        &[],
    ));
    assert_eq!(out.code, 0, "{}", out.dump());
    assert!(out.stdout.contains("PIDS [1, 2]"), "{}", out.dump());
    assert!(out.stdout.contains("SELF 2"), "{}", out.dump());
    assert!(out.stdout.contains("PASSWD True"), "{}", out.dump());
    let shadow_is_secret = std::fs::metadata("/etc/shadow")
        .map(|m| m.permissions().mode() & 0o004 == 0 && m.len() > 0)
        .unwrap_or(false);
    if shadow_is_secret {
        assert!(
            out.stdout.contains("SHADOW 0"),
            "root read /etc/shadow\n{}",
            out.dump()
        );
    }
}

#[test]
fn tmp_is_private_per_session_unless_the_profile_shares_it() {
    let host_file = std::env::temp_dir().join(unique("host-tmp"));
    std::fs::write(&host_file, "host").expect("write");
    let inside_name = unique("inside-tmp");
    let body = py(&format!(
        "print('SEES_HOST', os.path.exists('{h}'), flush=True)\n\
         open('/tmp/{i}', 'w').write('x')\n",
        h = host_file.display(),
        i = inside_name
    ));
    let tmp = std::env::temp_dir().display().to_string();
    if tmp != "/tmp" {
        eprintln!("skipping the /tmp part: TMPDIR is {tmp}");
        return;
    }
    let out = run(nono_command(
        As::Root,
        &["--block-net", "--allow", "/tmp"],
        &[PY, "-c", &body],
        &[],
    ));
    let leaked = Path::new("/tmp").join(&inside_name);
    let leaked_exists = leaked.exists();
    let _ = std::fs::remove_file(&leaked);
    assert_eq!(out.code, 0, "{}", out.dump());
    assert!(out.stdout.contains("SEES_HOST False"), "{}", out.dump());
    assert!(!leaked_exists, "a private /tmp file reached the host");

    // share_tmp: the profile asks for the host's /tmp.
    // The profile must lie outside the host's /tmp, which this profile shares read-write
    // (nono refuses a profile its sandbox could rewrite); the checkout may be under /tmp.
    let profiles = Path::new("/var/tmp").join(unique("share-tmp"));
    std::fs::create_dir_all(&profiles).expect("mkdir");
    let profile = profiles.join("shared.json");
    std::fs::write(
        &profile,
        r#"{"filesystem": {"allow": ["/tmp"], "share_tmp": true}}"#,
    )
    .expect("write profile");
    let p = profile.display().to_string();
    let out = run(nono_command(
        As::Root,
        &["--block-net", "--profile", &p],
        &[PY, "-c", &body],
        &[],
    ));
    let shared_exists = leaked.exists();
    let _ = std::fs::remove_file(&leaked);
    let _ = std::fs::remove_file(&host_file);
    let _ = std::fs::remove_dir_all(&profiles);
    assert_eq!(out.code, 0, "{}", out.dump());
    assert!(out.stdout.contains("SEES_HOST True"), "{}", out.dump());
    assert!(shared_exists, "share_tmp did not show the host's /tmp");
}

/// This machine's non-loopback interface addresses (getifaddrs).
fn own_addresses() -> Vec<std::net::IpAddr> {
    nix::ifaddrs::getifaddrs()
        .map(|list| {
            list.filter_map(|i| i.address)
                .filter_map(|a| a.as_sockaddr_in().map(|s| std::net::IpAddr::V4(s.ip())))
                .filter(|ip| !ip.is_loopback())
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn direct_host_port_entries_do_not_reach_this_machines_own_services() {
    let server = std::net::TcpListener::bind("0.0.0.0:0").expect("bind 0.0.0.0");
    let port = server.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        for c in server.incoming().flatten() {
            drop(c);
        }
    });
    let mut targets = vec!["127.0.0.1".to_string()];
    targets.extend(own_addresses().iter().map(|ip| ip.to_string()));
    let body = py(&targets
        .iter()
        .enumerate()
        .map(|(i, t)| {
            format!("probe('t{i}', lambda: socket.create_connection(('{t}', {port}), 5).close())\n")
        })
        .collect::<String>());
    let mut c = Command::new(PY);
    c.args(["-c", &body]);
    let control = run(c);
    // A direct entry towards another host opens the port, but not towards this machine.
    let remote = format!("192.0.2.1:{port}");
    let out = run(nono_command(
        As::Root,
        &["--allow-domain", &remote],
        &[PY, "-c", &body],
        &[],
    ));
    for (i, t) in targets.iter().enumerate() {
        let name = format!("t{i}");
        assert_eq!(
            control.probe(&name),
            "OK",
            "control {t}\n{}",
            control.dump()
        );
        assert_eq!(out.probe(&name), "EACCES", "{t}:{port}\n{}", out.dump());
    }
    // A direct entry naming this machine is a local port: loopback is reached.
    let local = format!("127.0.0.1:{port}");
    let out = run(nono_command(
        As::Root,
        &["--allow-domain", &local],
        &[PY, "-c", &body],
        &[],
    ));
    assert_eq!(out.probe("t0"), "OK", "{}", out.dump());
}

/// Ctrl-C at the terminal reaches the command (same process group; the sandbox's init does
/// not swallow it) and nono exits 130, promptly.
#[test]
fn ctrl_c_at_the_terminal_ends_the_command() {
    let harness = format!(
        r#"
import pty, os, time
pid, fd = pty.fork()
if pid == 0:
    os.execv("{nono}", ["nono", "run", "-q", "--block-net", "--", "{PY}", "-c", "import time; print('READY', flush=True); time.sleep(30)"])
buf = b""
t = time.time()
while b"READY" not in buf and time.time() - t < 15:
    buf += os.read(fd, 100)
t = time.time()
os.write(fd, b"\x03")
_, st = os.waitpid(pid, 0)
print("EXIT", os.waitstatus_to_exitcode(st), "QUICK", time.time() - t < 5, flush=True)
"#,
        nono = nono_bin().display()
    );
    let mut c = Command::new(PY);
    c.args(["-c", &harness]);
    let out = run(c);
    assert!(out.stdout.contains("EXIT 130 QUICK True"), "{}", out.dump());
}
