//! End-to-end: fork real confined children and check that they cannot escape.
//!
//! Every test fails (never skips) when the kernel lacks what it needs.

#![cfg(target_os = "linux")]

mod common;

use std::net::TcpListener;

use common::*;
use nono_sandbox::{
    prepare, prepare_with, spawn, ChildExit, Enforcement, FsRule, KernelSupport, NetPolicy,
    SandboxError,
};

fn lines(result: &str) -> Vec<&str> {
    result.lines().collect()
}

#[test]
fn child_reads_granted_file_but_not_outside() {
    require_landlock(1, "filesystem rules");
    let granted = Scratch::new("granted");
    let secret = Scratch::new("secret");
    let writable = Scratch::new("writable");
    std::fs::write(granted.path().join("ok.txt"), "fine").expect("write");
    std::fs::write(secret.path().join("key"), "hunter2").expect("write");

    let policy = policy(
        vec![
            FsRule::read(granted.path()),
            FsRule::read_write(writable.path()),
        ],
        NetPolicy::Unrestricted,
    );
    let script = r#"
        cat "$1/ok.txt" >/dev/null || exit 10
        cat "$2/key" >/dev/null 2>&1 && exit 11
        ls "$2" >/dev/null 2>&1 && exit 12
        (echo x > "$1/new") 2>/dev/null && exit 13
        echo x > "$3/new" || exit 14
        exit 0
    "#;
    let dirs: Vec<&str> = [&granted, &secret, &writable]
        .iter()
        .map(|d| d.path().to_str().expect("utf-8"))
        .collect();
    let spec = spec(
        "/bin/sh",
        &["-c", script, "sh", dirs[0], dirs[1], dirs[2]],
        &[],
    );
    assert_eq!(run(&policy, &spec).expect("run"), ChildExit::Code(0));
    assert!(writable.path().join("new").exists());
    assert!(!granted.path().join("new").exists());
}

#[test]
fn proxy_only_allows_only_proxy_and_listed_ports() {
    require_landlock(4, "TCP port rules, Linux 6.7+");
    let proxy = TcpListener::bind("127.0.0.1:0").expect("bind");
    let direct = TcpListener::bind("127.0.0.1:0").expect("bind");
    let other = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = |l: &TcpListener| l.local_addr().expect("addr").port();
    let bind_ok = free_port();
    let bind_no = free_port();
    let out = Scratch::new("proxy");
    let net = NetPolicy::ProxyOnly {
        proxy_port: port(&proxy),
        connect_ports: vec![port(&direct)],
        // The direct server is on this machine (127.0.0.1:PORT): a local port too, as the
        // policy makes it for a direct entry naming this machine.
        local_ports: vec![port(&direct)],
        bind_ports: vec![bind_ok],
        allow_udp: false,
    };
    let code = format!(
        "{PY_NET}\nreport(proxy=tcp({}), direct=tcp({}), other=tcp({}), udp=udp(), \
         bind_listed=bind({bind_ok}), bind_other=bind({bind_no}))",
        port(&proxy),
        port(&direct),
        port(&other)
    );
    let result = python(net, &out, &code);
    assert_eq!(
        lines(&result),
        vec![
            "bind_listed=ok",
            "bind_other=EACCES",
            "direct=ok",
            "other=EACCES",
            "proxy=ok",
            "udp=EPERM",
        ],
        "{result}"
    );
}

#[test]
fn proxy_only_with_udp_keeps_udp() {
    require_landlock(4, "TCP port rules, Linux 6.7+");
    let out = Scratch::new("udp");
    let net = NetPolicy::ProxyOnly {
        proxy_port: free_port(),
        connect_ports: vec![],
        local_ports: vec![],
        bind_ports: vec![],
        allow_udp: true,
    };
    let result = python(net, &out, &format!("{PY_NET}\nreport(udp=udp())"));
    assert_eq!(result.trim(), "udp=ok");
}

#[test]
fn raw_and_packet_sockets_are_denied_in_proxy_mode() {
    require_landlock(4, "TCP port rules, Linux 6.7+");
    let out = Scratch::new("raw");
    let net = NetPolicy::ProxyOnly {
        proxy_port: free_port(),
        connect_ports: vec![],
        local_ports: vec![],
        bind_ports: vec![],
        allow_udp: true,
    };
    let code = format!(
        "{PY_NET}
def mk(*a):
    try:
        socket.socket(*a).close(); return 'ok'
    except OSError as e:
        return name(e)
report(raw=mk(socket.AF_INET, socket.SOCK_RAW, 1), packet=mk(17, socket.SOCK_RAW, 0),
       mptcp=mk(socket.AF_INET, socket.SOCK_STREAM, 262), unix=mk(socket.AF_UNIX, socket.SOCK_STREAM))"
    );
    let result = python(net, &out, &code);
    assert_eq!(
        lines(&result),
        vec!["mptcp=EPERM", "packet=EPERM", "raw=EPERM", "unix=ok"],
        "{result}"
    );
}

#[test]
fn blocked_denies_everything() {
    require_landlock(4, "TCP port rules, Linux 6.7+");
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let out = Scratch::new("blocked");
    let net = NetPolicy::Blocked {
        connect_ports: vec![],
        bind_ports: vec![],
    };
    let code = format!(
        "{PY_NET}\nreport(tcp=tcp({port}), udp=udp(), bind=bind({}))",
        free_port()
    );
    let result = python(net, &out, &code);
    assert_eq!(
        lines(&result),
        vec!["bind=EACCES", "tcp=EACCES", "udp=EPERM"],
        "{result}"
    );
}

#[test]
fn blocked_without_landlock_net_blocks_inet_sockets_with_seccomp() {
    require_landlock(3, "filesystem rules");
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let out = Scratch::new("blocked3");
    let net = NetPolicy::Blocked {
        connect_ports: vec![],
        bind_ports: vec![],
    };
    let result_path = out.path().join("result");
    let policy = policy(vec![FsRule::read_write(out.path())], net);
    let abi3 = KernelSupport {
        landlock_abi: Some(3),
        simulated: true,
        wsl2: false,
        seccomp: true,
    };
    let prepared = prepare_with(&policy, &abi3).expect("prepare");
    assert_eq!(prepared.report().network, Enforcement::Full);
    let code = format!("{PY_NET}\nreport(tcp=tcp({port}), udp=udp())");
    let spec = spec(
        PYTHON,
        &["-c", &code, result_path.to_str().expect("utf-8")],
        &[("LC_ALL", "C.UTF-8")],
    );
    let mut child = spawn(&prepared, &spec).expect("spawn");
    child.release().expect("release");
    assert_eq!(child.wait().expect("wait"), ChildExit::Code(0));
    let result = std::fs::read_to_string(result_path).expect("result");
    assert_eq!(
        lines(&result),
        vec!["tcp=socket:EPERM", "udp=EPERM"],
        "{result}"
    );
}

#[test]
fn child_env_is_exactly_the_given_env() {
    require_landlock(1, "filesystem rules");
    let out = Scratch::new("env");
    let env = [("LC_ALL", "C.UTF-8"), ("NONO_X", "a b=c"), ("EMPTY", "")];
    let result = out.path().join("result");
    let policy = policy(
        vec![FsRule::read_write(out.path())],
        NetPolicy::Unrestricted,
    );
    let code = "import os, sys\nopen(sys.argv[1], 'w').write(''.join(f'{k}={v}\\n' for k, v in sorted(os.environ.items())))";
    let spec = spec(PYTHON, &["-c", code, result.to_str().expect("utf-8")], &env);
    assert_eq!(run(&policy, &spec).expect("run"), ChildExit::Code(0));
    let got = std::fs::read_to_string(result).expect("result");
    assert_eq!(got, "EMPTY=\nLC_ALL=C.UTF-8\nNONO_X=a b=c\n");
}

#[test]
fn exit_code_and_signal_propagate() {
    require_landlock(1, "filesystem rules");
    let policy = policy(vec![], NetPolicy::Unrestricted);
    let code = run(&policy, &spec("/bin/sh", &["-c", "exit 42"], &[])).expect("run");
    assert_eq!(code, ChildExit::Code(42));
    let killed = run(&policy, &spec("/bin/sh", &["-c", "kill -KILL $$"], &[])).expect("run");
    assert_eq!(killed, ChildExit::Signal(libc::SIGKILL));
}

#[test]
fn program_outside_granted_paths_cannot_be_executed() {
    require_landlock(1, "filesystem rules");
    let dir = Scratch::new("exe");
    let exe = dir.path().join("true");
    std::fs::copy("/bin/true", &exe).expect("copy /bin/true");
    let policy = policy(vec![], NetPolicy::Unrestricted);
    let spec = spec(exe.to_str().expect("utf-8"), &[], &[]);
    let err = run(&policy, &spec).expect_err("exec must be denied");
    // The sandbox's own root does not contain it at all.
    assert!(
        matches!(err, SandboxError::ExecOutsideGrants { .. }),
        "{err}"
    );
    assert!(err.to_string().contains("--read"), "{err}");
    assert_eq!(err.exec_exit_code(), Some(126), "{err}");
}

#[test]
fn dangerous_syscalls_and_signalling_the_supervisor_are_denied() {
    require_landlock(6, "signal scoping, Linux 6.12+");
    let out = Scratch::new("syscalls");
    let code = r#"
import ctypes, errno, os, sys
libc = ctypes.CDLL(None, use_errno=True)
def call(nr, *args):
    r = libc.syscall(nr, *args)
    return "ok" if r >= 0 else errno.errorcode[ctypes.get_errno()]
import platform
x86 = platform.machine() == "x86_64"
res = {
    "unshare": call(272 if x86 else 97, 0x10000000),
    "io_uring_setup": call(425, 1, 0),
    "keyctl": call(250 if x86 else 219, 0, 0),
    "ptrace": call(101 if x86 else 117, 16, os.getppid()),
}
try:
    os.kill(SUPERVISOR_PID, 0); res["kill_parent"] = "ok"
except OSError as e:
    res["kill_parent"] = errno.errorcode[e.errno]
with open(sys.argv[1], "w") as f:
    for k, v in sorted(res.items()):
        f.write(f"{k}={v}\n")
"#;
    // The supervisor is outside the sandbox's PID namespace: it cannot even be named.
    let code = code.replace("SUPERVISOR_PID", &std::process::id().to_string());
    let result = python(NetPolicy::Unrestricted, &out, &code);
    assert_eq!(
        lines(&result),
        vec![
            "io_uring_setup=ENOSYS",
            "keyctl=EPERM",
            "kill_parent=ESRCH",
            "ptrace=EPERM",
            "unshare=EPERM",
        ],
        "{result}"
    );
}

#[test]
fn report_is_full_on_this_kernel() {
    require_landlock(6, "scoping, Linux 6.12+");
    let policy = policy(
        vec![],
        NetPolicy::ProxyOnly {
            proxy_port: 1,
            connect_ports: vec![],
            local_ports: vec![],
            bind_ports: vec![],
            allow_udp: false,
        },
    );
    let prepared = prepare(&policy).expect("prepare");
    let report = prepared.report();
    assert!(report.is_fully_enforced(), "{report:?}");
    assert!(report.warnings.is_empty(), "{report:?}");
}

#[test]
fn dropping_an_unreleased_child_does_not_run_it() {
    require_landlock(1, "filesystem rules");
    let dir = Scratch::new("unreleased");
    let marker = dir.path().join("ran");
    let policy = policy(
        vec![FsRule::read_write(dir.path())],
        NetPolicy::Unrestricted,
    );
    let prepared = prepare(&policy).expect("prepare");
    let script = format!("touch {}", marker.display());
    let child = spawn(&prepared, &spec("/bin/sh", &["-c", &script], &[])).expect("spawn");
    assert!(child.pid() > 0);
    drop(child);
    assert!(!marker.exists());
}

#[test]
fn wait_without_release_releases() {
    require_landlock(1, "filesystem rules");
    let policy = policy(vec![], NetPolicy::Unrestricted);
    let prepared = prepare(&policy).expect("prepare");
    let mut child = spawn(&prepared, &spec("/bin/sh", &["-c", "exit 3"], &[])).expect("spawn");
    assert_eq!(child.wait().expect("wait"), ChildExit::Code(3));
    assert!(child.release().is_err(), "second release must be refused");
}
