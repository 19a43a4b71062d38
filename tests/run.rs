mod support;

// End-to-end tests of `nono run`: the real binary confines a real child (Python, curl, sh)
// that tries to get out, against servers these tests start on loopback or in network
// namespaces they create.
//
// Every denied probe asserts the specific errno or exit code, and has a positive control
// (the same probe outside the sandbox, or under a policy that allows it) so no test passes
// because the probe itself is broken. Tests named `bug_*` pin escapes that work today; see
// the comment on each.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read};
use std::net::{TcpListener, UdpSocket};
use std::os::unix::fs::PermissionsExt;
use std::process::{Child, ChildStdout, Command, Stdio};
use std::thread;
use std::time::Duration;

use support::*;

/// No test may take longer than this; a hung `nono run` is killed and reported.
const T: Duration = Duration::from_secs(20);
/// The in-sandbox client; system paths are granted read-only, so it can run.
const PY: &str = "/usr/bin/python3";

/// Python helpers every probe script here adds to [`PROBE_PRELUDE`].
const PRELUDE: &str = r#"
NR_KEYCTL = {"x86_64": 250, "aarch64": 219}[platform.machine()]
NR_IO_URING_SETUP = 425
def connect(host, port):
    s = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    s.settimeout(5)
    try:
        s.connect((host, port))
    finally:
        s.close()
def bind(port):
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", port))
    finally:
        s.close()
def sock(family, ty, proto):
    socket.socket(family, ty, proto).close()
def proxy_port():
    return int(os.environ["HTTP_PROXY"].rsplit(":", 1)[1])
"#;

/// Runs `cmd` (stdin closed) to completion, killing it after [`T`].
fn run(cmd: Command) -> Out {
    let (code, stdout, stderr) = run_command(cmd, T);
    Out {
        code,
        stdout,
        stderr,
    }
}

/// `nono run FLAGS -- CMD...` with extra environment variables.
fn nono_cmd(flags: &[&str], cmd: &[&str], env: &[(&str, &str)]) -> Command {
    let mut c = nono_command();
    c.arg("run")
        .args(flags)
        .arg("--")
        .args(cmd)
        .envs(env.iter().copied());
    c
}

fn nono(flags: &[&str], cmd: &[&str]) -> Out {
    run(nono_cmd(flags, cmd, &[]))
}

/// The prelude plus `body`, as one `python3 -c` script.
fn script(body: &str) -> String {
    format!("{PROBE_PRELUDE}{PRELUDE}\n{body}")
}

/// Runs the probe script `body` with Python inside `nono run FLAGS`.
fn sandboxed_py(flags: &[&str], body: &str) -> Out {
    let s = script(body);
    nono(flags, &[PY, "-c", &s])
}

/// Runs the probe script `body` with Python outside any sandbox (the positive control).
fn outside_py(body: &str) -> Out {
    let mut c = Command::new(PY);
    c.arg("-c").arg(script(body));
    run(c)
}

/// Borrows each string, for building argument lists.
fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

/// A port nothing listens on right now (bound to `127.0.0.1:0`, then released).
fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    l.local_addr().expect("local_addr").port()
}

/// Reads one line from a child's stdout (the child is expected to print it promptly).
fn read_line(reader: &mut BufReader<ChildStdout>) -> String {
    let mut line = String::new();
    reader.read_line(&mut line).expect("read line");
    line.trim_end().to_string()
}

/// Spawns `nono run FLAGS -- CMD...` (stdin closed, stdout piped) and waits for the child's
/// `READY` line; returns nono and the rest of its stdout.
fn spawn_until_ready(flags: &[&str], cmd: &[&str]) -> (Reaped, BufReader<ChildStdout>) {
    let mut child = Reaped(
        nono_cmd(flags, cmd, &[])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn"),
    );
    let mut lines = BufReader::new(child.0.stdout.take().expect("stdout"));
    assert_eq!(
        read_line(&mut lines),
        "READY",
        "the sandboxed {cmd:?} ({flags:?}) did not start"
    );
    (child, lines)
}

/// Sends SIGTERM to `child`.
fn sigterm(child: &Reaped) {
    // SAFETY: kill has no memory effects; the pid is our unreaped child.
    assert_eq!(
        unsafe { libc::kill(child.0.id() as libc::pid_t, libc::SIGTERM) },
        0
    );
}

/// A child killed (and reaped) on drop, for servers the tests start.
struct Reaped(Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Python one-shot TCP server: listens on `addr:port`, prints `READY`, sends `msg` to every
/// client. Runs in `ns` when given.
fn tcp_banner_server(ns: Option<&NetNs>, addr: &str, port: u16, msg: &str) -> Reaped {
    let code = format!(
        "import socket\n\
         s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n\
         s.bind(('{addr}', {port})); s.listen()\n\
         print('READY', flush=True)\n\
         while True:\n    c, _ = s.accept(); c.sendall(b'{msg}'); c.close()\n"
    );
    let mut cmd = match ns {
        Some(ns) => ns.command(&[PY, "-c", &code]),
        None => {
            let mut c = Command::new(PY);
            c.args(["-c", &code]);
            c
        }
    };
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn server");
    let mut out = BufReader::new(child.stdout.take().expect("stdout"));
    assert_eq!(read_line(&mut out), "READY", "banner server did not start");
    Reaped(child)
}

// ---------------------------------------------------------------------------------------------
// Proxy mode: the allowed path works, every other path is closed.

#[test]
fn curl_reaches_allowed_https_server_through_the_proxy() {
    let ca = TestCa::new();
    let origin = HttpOrigin::start_tls(&ca);
    let ca_dir = ca
        .ca_path
        .parent()
        .expect("CA dir")
        .to_str()
        .expect("utf-8");
    let ca_file = ca.ca_path.to_str().expect("utf-8");
    let url = format!("https://127.0.0.1:{}/hello", origin.port);
    // `--allow-domain 127.0.0.1` takes 127.0.0.1 out of NO_PROXY, so curl uses HTTPS_PROXY;
    // `--noproxy ''` says so explicitly as well.
    let curl = |extra: &[&'static str]| -> Vec<String> {
        let mut cmd: Vec<&str> = vec![
            "curl",
            "-sS",
            "--fail",
            "--max-time",
            "10",
            "--cacert",
            ca_file,
        ];
        cmd.extend_from_slice(extra);
        cmd.push(&url);
        cmd.into_iter().map(String::from).collect()
    };
    let out = nono(
        &["-v", "--allow-domain", "127.0.0.1", "--read", ca_dir],
        &strs(&curl(&["--noproxy", ""])),
    );
    assert_eq!(out.code, 0, "{}", out.dump());
    assert!(out.stdout.contains("\"/hello\""), "{}", out.dump());
    assert!(
        out.stderr
            .contains(&format!("ALLOW CONNECT 127.0.0.1:{}", origin.port)),
        "the request did not go through the proxy\n{}",
        out.dump()
    );
    assert_eq!(origin.requests().len(), 1);

    // Direct (`--noproxy '*'`): Landlock refuses the port; curl exit 7 = cannot connect.
    let out = nono(
        &["--allow-domain", "127.0.0.1", "--read", ca_dir],
        &strs(&curl(&["--noproxy", "*"])),
    );
    assert_eq!(out.code, 7, "direct connect must fail\n{}", out.dump());
    // Through the proxy to a host that is not allowed: 403; curl --fail exits 22.
    let out = nono(
        &["--allow-domain", "localhost", "--read", ca_dir],
        &strs(&curl(&["--noproxy", ""])),
    );
    assert_eq!(out.code, 22, "{}", out.dump());
    assert!(out.stderr.contains("403"), "{}", out.dump());
    assert_eq!(
        origin.requests().len(),
        1,
        "refused requests must not reach the origin"
    );
}

#[test]
fn proxy_mode_allows_only_the_proxy_port_for_tcp() {
    let echo = EchoServer::plain();
    let body = format!(
        "probe('proxy', lambda: connect('127.0.0.1', proxy_port()))\n\
         probe('other_port', lambda: connect('127.0.0.1', {p}))\n\
         probe('other_port_v6', lambda: connect('::1', {p}))\n",
        p = echo.port
    );
    let out = sandboxed_py(&["--allow-domain", "127.0.0.1"], &body);
    assert_eq!(out.code, 0, "{}", out.dump());
    assert_eq!(out.probe("proxy"), "OK", "{}", out.dump());
    // 127.0.0.1 is an allowed host, yet its ports are reachable only through the proxy.
    assert_eq!(out.probe("other_port"), "EACCES", "{}", out.dump());
    assert_eq!(out.probe("other_port_v6"), "EACCES", "{}", out.dump());
    assert_eq!(echo.accepted(), 0);

    // Positive control: a direct host:port entry opens exactly that port.
    let direct = format!("127.0.0.1:{}", echo.port);
    let out = sandboxed_py(&["--allow-domain", &direct], &body);
    assert_eq!(out.probe("other_port"), "OK", "{}", out.dump());
    assert_eq!(echo.accepted(), 1);
}

#[test]
fn unrestricted_network_without_network_flags() {
    // Documented behaviour: no network flag means no network confinement at all (no proxy,
    // no Landlock port rules, no socket filter); only the filesystem and syscalls are confined.
    let echo = EchoServer::plain();
    let udp = UdpSocket::bind("127.0.0.1:0").expect("udp bind");
    udp.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let body = format!(
        "probe('tcp', lambda: connect('127.0.0.1', {p}))\n\
         probe('udp', lambda: socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b'u', ('127.0.0.1', {u})))\n\
         probe('bind', lambda: bind(0))\n\
         print('PROXYVAR', os.environ.get('HTTP_PROXY'), os.environ.get('NONO_PROXY_TOKEN'))\n",
        p = echo.port,
        u = udp.local_addr().expect("addr").port()
    );
    let out = sandboxed_py(&[], &body);
    assert_eq!(out.code, 0, "{}", out.dump());
    assert!(
        out.stderr.contains("network unrestricted"),
        "{}",
        out.dump()
    );
    for p in ["tcp", "udp", "bind"] {
        assert_eq!(out.probe(p), "OK", "{p}\n{}", out.dump());
    }
    assert!(out.stdout.contains("PROXYVAR None None"), "{}", out.dump());
    let mut buf = [0u8; 4];
    assert_eq!(udp.recv(&mut buf).expect("datagram arrives"), 1);
}

#[test]
fn udp_is_refused_in_proxy_mode_and_with_block_net() {
    let udp = UdpSocket::bind("127.0.0.1:0").expect("udp bind");
    udp.set_read_timeout(Some(Duration::from_millis(300)))
        .expect("timeout");
    let body = format!(
        "def send():\n    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n    s.sendto(b'x', ('127.0.0.1', {u}))\n\
         probe('udp', send)\n\
         probe('udp6', lambda: sock(socket.AF_INET6, socket.SOCK_DGRAM, 0))\n",
        u = udp.local_addr().expect("addr").port()
    );
    for flags in [&["--allow-domain", "127.0.0.1"][..], &["--block-net"][..]] {
        let out = sandboxed_py(flags, &body);
        assert_eq!(out.probe("udp"), "EPERM", "{flags:?}\n{}", out.dump());
        assert_eq!(out.probe("udp6"), "EPERM", "{flags:?}\n{}", out.dump());
    }
    let mut buf = [0u8; 4];
    assert!(udp.recv(&mut buf).is_err(), "a datagram got out");
    // Positive control: a direct host:port entry needs DNS, so UDP stays open (documented).
    let out = sandboxed_py(&["--allow-domain", "127.0.0.1:9"], &body);
    assert_eq!(out.probe("udp"), "OK", "{}", out.dump());
    udp.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    assert_eq!(udp.recv(&mut buf).expect("datagram"), 1);
}

#[test]
fn binding_needs_listen_port_or_open_port() {
    let (p1, p2, p3) = (free_port(), free_port(), free_port());
    let body = format!(
        "probe('bind_listen', lambda: bind({p1}))\n\
         probe('bind_open', lambda: bind({p2}))\n\
         probe('bind_other', lambda: bind({p3}))\n\
         probe('bind_zero', lambda: bind(0))\n"
    );
    let (l, o) = (p1.to_string(), p2.to_string());
    for mode in [&["--allow-domain", "127.0.0.1"][..], &["--block-net"][..]] {
        let mut flags = mode.to_vec();
        flags.extend(["--listen-port", &l, "--open-port", &o]);
        let out = sandboxed_py(&flags, &body);
        assert_eq!(out.probe("bind_listen"), "OK", "{flags:?}\n{}", out.dump());
        assert_eq!(out.probe("bind_open"), "OK", "{flags:?}\n{}", out.dump());
        assert_eq!(
            out.probe("bind_other"),
            "EACCES",
            "{flags:?}\n{}",
            out.dump()
        );
        assert_eq!(
            out.probe("bind_zero"),
            "EACCES",
            "{flags:?}\n{}",
            out.dump()
        );
    }
}

#[test]
fn block_net_blocks_tcp_and_udp() {
    let echo = EchoServer::plain();
    let body = format!(
        "probe('tcp', lambda: connect('127.0.0.1', {p}))\n\
         probe('udp', lambda: sock(socket.AF_INET, socket.SOCK_DGRAM, 0))\n\
         print('PROXYVAR', os.environ.get('HTTP_PROXY'))\n",
        p = echo.port
    );
    let out = sandboxed_py(&["--block-net"], &body);
    assert_eq!(out.code, 0, "{}", out.dump());
    assert!(out.stderr.contains("network blocked"), "{}", out.dump());
    assert_eq!(out.probe("tcp"), "EACCES", "{}", out.dump());
    assert_eq!(out.probe("udp"), "EPERM", "{}", out.dump());
    assert!(
        out.stdout.contains("PROXYVAR None"),
        "no proxy in block mode\n{}",
        out.dump()
    );
    assert_eq!(echo.accepted(), 0);
    // Positive control: the same script reaches the server without --block-net.
    let out = sandboxed_py(&[], &body);
    assert_eq!(out.probe("tcp"), "OK", "{}", out.dump());
    assert_eq!(out.probe("udp"), "OK", "{}", out.dump());
}

#[test]
fn block_net_with_allow_domain_is_refused_naming_both() {
    let out = nono(&["--block-net", "--allow-domain", "example.com"], &["true"]);
    assert_eq!(out.code, 125, "{}", out.dump());
    assert!(out.stderr.contains("--block-net"), "{}", out.dump());
    assert!(out.stderr.contains("--allow-domain"), "{}", out.dump());
}

#[test]
fn two_sandboxes_talk_over_open_port() {
    let port = free_port().to_string();
    let server = script(&format!(
        "s = socket.socket(); s.bind(('127.0.0.1', {port})); s.listen()\n\
         print('READY', flush=True)\n\
         c, _ = s.accept(); data = c.recv(100); c.sendall(b'ack:' + data); c.close()\n"
    ));
    let (mut listener, _lines) = spawn_until_ready(
        &["-q", "--block-net", "--open-port", &port],
        &[PY, "-c", &server],
    );

    let client = format!(
        "def talk():\n    s = socket.create_connection(('127.0.0.1', {port}), timeout=5)\n    s.sendall(b'hello')\n    print('REPLY', s.recv(100).decode(), flush=True)\n\
         probe('talk', talk)\n"
    );
    // Negative control first: without --open-port the client may not connect.
    let out = sandboxed_py(&["--block-net"], &client);
    assert_eq!(out.probe("talk"), "EACCES", "{}", out.dump());
    let out = sandboxed_py(&["--block-net", "--open-port", &port], &client);
    assert_eq!(out.probe("talk"), "OK", "{}", out.dump());
    assert!(out.stdout.contains("REPLY ack:hello"), "{}", out.dump());
    let status = listener.0.wait().expect("listener exits");
    assert!(status.success(), "listening sandbox failed: {status:?}");
}

// ---------------------------------------------------------------------------------------------
// Environment.

#[test]
fn child_environment_is_as_specified() {
    let echo = EchoServer::plain();
    let s = script(
        "import json\n\
         print('ENV', json.dumps(dict(os.environ)), flush=True)\n",
    );
    let out = run(nono_cmd(
        &[
            "--allow-domain",
            "127.0.0.1",
            "--allow-domain",
            "nats.internal:4222",
        ],
        &[PY, "-c", &s],
        &[
            ("HTTP_PROXY", "http://corp.example:3128"),
            ("https_proxy", "http://corp.example:3128"),
            ("no_proxy", "corp.example"),
            ("NONO_TEST_PASSTHROUGH", "kept as is"),
        ],
    ));
    assert_eq!(out.code, 0, "{}", out.dump());
    let line = out
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("ENV "))
        .unwrap_or_else(|| panic!("{}", out.dump()));
    let env: HashMap<String, String> = serde_json::from_str(line).expect("env JSON");
    let get = |k: &str| {
        env.get(k)
            .map(String::as_str)
            .unwrap_or_else(|| panic!("{k} missing: {env:?}"))
    };

    let token = get("NONO_PROXY_TOKEN");
    assert!(
        token.len() >= 32 && token.chars().all(|c| c.is_ascii_hexdigit()),
        "{token}"
    );
    let url = get("HTTP_PROXY");
    let port: u16 = url
        .strip_prefix(&format!("http://nono:{token}@127.0.0.1:"))
        .unwrap_or_else(|| panic!("unexpected proxy URL {url}"))
        .parse()
        .expect("port");
    assert!(
        out.stderr.contains(&format!("proxy on 127.0.0.1:{port}")),
        "{}",
        out.dump()
    );
    for k in [
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "ALL_PROXY",
        "http_proxy",
        "https_proxy",
        "all_proxy",
    ] {
        assert_eq!(get(k), url, "{k}: the parent's value must be replaced");
    }
    for k in ["NO_PROXY", "no_proxy"] {
        // `127.0.0.1` is allowed through the proxy, so it is not "direct" (it would reach
        // the sandbox's own empty loopback).
        assert_eq!(get(k), "localhost,::1,nats.internal", "{k}");
    }
    assert_eq!(get("NODE_USE_ENV_PROXY"), "1");
    assert_eq!(get("NONO_TEST_PASSTHROUGH"), "kept as is");
    assert_eq!(get("PATH"), std::env::var("PATH").expect("PATH").as_str());
    // The parent's proxy variables are gone under every spelling, not just overwritten.
    assert!(!out.stdout.contains("corp.example"), "{}", out.dump());
    drop(echo);
}

#[test]
fn session_token_is_required_by_the_proxy() {
    // The token is in the child's environment by design; the point is that the proxy does
    // not trust "anything on loopback": a client without it gets 407.
    let echo = EchoServer::plain();
    let body = format!(
        "def ask(auth):\n\
         \x20   s = socket.create_connection(('127.0.0.1', proxy_port()), timeout=5)\n\
         \x20   req = 'CONNECT 127.0.0.1:{p} HTTP/1.1\\r\\nHost: 127.0.0.1:{p}\\r\\n'\n\
         \x20   if auth: req += 'Proxy-Authorization: ' + auth + '\\r\\n'\n\
         \x20   s.sendall((req + '\\r\\n').encode())\n\
         \x20   head = b''\n\
         \x20   while b'\\r\\n\\r\\n' not in head:\n\
         \x20       b = s.recv(1)\n\
         \x20       if not b: break\n\
         \x20       head += b\n\
         \x20   status = head.split(b' ')[1].decode() if head else 'none'\n\
         \x20   if status == '200':\n\
         \x20       s.sendall(b'ping'); status += ':' + s.recv(4).decode()\n\
         \x20   return status\n\
         tok = os.environ['NONO_PROXY_TOKEN']\n\
         good = 'Basic ' + base64.b64encode(('nono:' + tok).encode()).decode()\n\
         bad = 'Basic ' + base64.b64encode(b'nono:not-the-token').decode()\n\
         print('NOAUTH', ask(None)); print('BADAUTH', ask(bad)); print('GOODAUTH', ask(good))\n",
        p = echo.port
    );
    let out = sandboxed_py(&["--allow-domain", "127.0.0.1"], &body);
    assert_eq!(out.code, 0, "{}", out.dump());
    assert!(out.stdout.contains("NOAUTH 407"), "{}", out.dump());
    assert!(out.stdout.contains("BADAUTH 407"), "{}", out.dump());
    assert!(out.stdout.contains("GOODAUTH 200:ping"), "{}", out.dump());
    assert_eq!(
        echo.accepted(),
        1,
        "only the authenticated tunnel reaches the server"
    );
}

// ---------------------------------------------------------------------------------------------
// Filesystem.

#[test]
fn filesystem_grants_are_enforced() {
    let read_dir = TempDir::new("run-read");
    let rw_dir = TempDir::new("run-rw");
    let outside = TempDir::new("run-outside");
    std::fs::write(read_dir.path().join("r.txt"), "readable").expect("write");
    std::fs::write(outside.path().join("secret.txt"), "secret").expect("write");
    // Made outside, so they exist before the sandbox starts.
    std::os::unix::fs::symlink(
        outside.path().join("secret.txt"),
        rw_dir.path().join("link"),
    )
    .expect("symlink");
    let (r, w, o) = (
        read_dir.path().display().to_string(),
        rw_dir.path().display().to_string(),
        outside.path().display().to_string(),
    );
    let body = format!(
        "def write(p):\n    with open(p, 'w') as f: f.write('x')\n\
         probe('read_granted', lambda: open('{r}/r.txt').read())\n\
         probe('write_read_only', lambda: write('{r}/new.txt'))\n\
         probe('append_read_only', lambda: open('{r}/r.txt', 'a').close())\n\
         probe('write_allowed', lambda: write('{w}/new.txt'))\n\
         probe('read_outside', lambda: open('{o}/secret.txt').read())\n\
         probe('list_outside', lambda: os.listdir('{o}'))\n\
         probe('write_outside', lambda: write('{o}/new.txt'))\n\
         probe('write_etc', lambda: write('/etc/nono-test-must-not-exist'))\n\
         probe('symlink_out', lambda: open('{w}/link').read())\n\
         os.symlink('{o}/secret.txt', '{w}/link2')\n\
         probe('own_symlink_out', lambda: open('{w}/link2').read())\n\
         probe('hardlink_in', lambda: os.link('{o}/secret.txt', '{w}/hard'))\n\
         probe('rename_in', lambda: os.rename('{o}/secret.txt', '{w}/moved'))\n\
         probe('hardlink_ro_to_rw', lambda: os.link('{r}/r.txt', '{w}/hard_r'))\n\
         probe('hardlink_within', lambda: os.link('{w}/new.txt', '{w}/hard_w'))\n"
    );
    // The first wall: the sandbox's own root shows only the grants (outside: ENOENT,
    // read-only: EROFS). Hard links between two binds cross mounts (EXDEV).
    let out = sandboxed_py(&["--read", &r, "--allow", &w, "--block-net"], &body);
    assert_eq!(out.code, 0, "{}", out.dump());
    let first_wall = [
        ("read_granted", "OK"),
        ("write_read_only", "EROFS"),
        ("append_read_only", "EROFS"),
        ("write_allowed", "OK"),
        ("read_outside", "ENOENT"),
        ("list_outside", "ENOENT"),
        ("write_outside", "ENOENT"),
        ("write_etc", "EROFS"),
        ("symlink_out", "ENOENT"),
        ("own_symlink_out", "ENOENT"),
        ("hardlink_in", "ENOENT"),
        ("rename_in", "ENOENT"),
        ("hardlink_ro_to_rw", "EXDEV"),
        ("hardlink_within", "OK"),
    ];
    out.expect_probes(&first_wall);
    assert!(!outside.path().join("new.txt").exists());
    std::fs::remove_dir_all(rw_dir.path()).expect("reset");
    std::fs::create_dir(rw_dir.path()).expect("reset");
    std::os::unix::fs::symlink(
        outside.path().join("secret.txt"),
        rw_dir.path().join("link"),
    )
    .expect("symlink");

    // The second wall alone (no namespaces): Landlock refuses the same accesses.
    let out = run(nono_cmd(
        &["--read", &r, "--allow", &w, "--block-net"],
        &[PY, "-c", &script(&body)],
        &[("NONO_TEST_NO_NAMESPACES", "1")],
    ));
    assert_eq!(out.code, 0, "{}", out.dump());
    assert!(
        out.stderr.contains("containment: FALLBACK"),
        "{}",
        out.dump()
    );
    let expect = [
        ("read_granted", "OK"),
        ("write_read_only", "EACCES"),
        ("append_read_only", "EACCES"),
        ("write_allowed", "OK"),
        ("read_outside", "EACCES"),
        ("list_outside", "EACCES"),
        ("write_outside", "EACCES"),
        ("write_etc", "EACCES"),
        ("symlink_out", "EACCES"),
        ("own_symlink_out", "EACCES"),
        // Landlock refuses to link a file into a hierarchy that grants more than its source
        // (EXDEV: the "refer" right is missing).
        ("hardlink_in", "EXDEV"),
        // Renaming needs the right to remove from the (unreadable) source directory.
        ("rename_in", "EACCES"),
        ("hardlink_ro_to_rw", "EXDEV"),
        ("hardlink_within", "OK"),
    ];
    out.expect_probes(&expect);
    assert!(!outside.path().join("new.txt").exists());
    assert!(!rw_dir.path().join("hard").exists());
    assert!(outside.path().join("secret.txt").exists());
    assert_eq!(
        std::fs::read_to_string(rw_dir.path().join("new.txt")).expect("written"),
        "x"
    );

    // Positive control: the same script outside the sandbox reads and writes everything.
    std::fs::remove_dir_all(rw_dir.path()).expect("reset");
    std::fs::create_dir(rw_dir.path()).expect("reset");
    std::os::unix::fs::symlink(
        outside.path().join("secret.txt"),
        rw_dir.path().join("link"),
    )
    .expect("symlink");
    let out = outside_py(&body);
    let got = out.probes();
    for (name, _) in expect {
        if name != "write_etc" {
            assert_eq!(
                got.get(name).map(String::as_str),
                Some("OK"),
                "{name}\n{}",
                out.dump()
            );
        }
    }
}

#[test]
fn inherited_descriptors_do_not_reach_the_child() {
    let outside = TempDir::new("run-fd");
    let secret = outside.path().join("secret.txt");
    std::fs::write(&secret, "secret").expect("write");
    // fd 7 is open without close-on-exec in nono, so only nono's own cleanup keeps it out.
    // Asks each descriptor number directly, so listing /proc/self/fd adds none of its own.
    let body = "import fcntl\n\
                def is_open(fd):\n\
                \x20   try:\n\
                \x20       fcntl.fcntl(fd, fcntl.F_GETFD); return True\n\
                \x20   except OSError:\n\
                \x20       return False\n\
                print('FDS', [fd for fd in range(1024) if is_open(fd)], flush=True)\n\
                probe('fd7', lambda: os.read(7, 6))\n";
    let s = script(body);
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg(format!("exec 7<\"{}\"; exec \"$@\"", secret.display()))
        .arg("sh")
        .arg(nono_bin())
        .args(["run", "--allow-domain", "127.0.0.1", "--", PY, "-c", &s]);
    let out = run(cmd);
    assert_eq!(out.code, 0, "{}", out.dump());
    assert!(out.stdout.contains("FDS [0, 1, 2]"), "{}", out.dump());
    assert_eq!(out.probe("fd7"), "EBADF", "{}", out.dump());

    // Positive control: without nono the child does inherit fd 7.
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg(format!("exec 7<\"{}\"; exec \"$@\"", secret.display()))
        .args(["sh", PY, "-c", &s]);
    let out = run(cmd);
    assert_eq!(out.probe("fd7"), "OK", "{}", out.dump());
}

// ---------------------------------------------------------------------------------------------
// Escape attempts through system calls and /proc.

/// Probes that must be refused inside the sandbox. `TARGET` is the process to attack: inside,
/// the sandbox's init (it holds a copy of nono's memory); outside, a throwaway `sleep`.
/// `OUTSIDE` is a process outside the sandbox (the test itself), which the sandbox must not
/// even see. `cleanup()` ends the target.
const SYSCALL_PROBES: &str = r#"
probe("raw", lambda: sock(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP))
probe("packet", lambda: sock(17, socket.SOCK_RAW, 0))
probe("mptcp", lambda: sock(socket.AF_INET, socket.SOCK_STREAM, 262))
probe("sctp", lambda: sock(socket.AF_INET, socket.SOCK_STREAM, 132))
probe("seqpacket", lambda: sock(socket.AF_INET, socket.SOCK_SEQPACKET, 0))
probe("ping", lambda: sock(socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_ICMP))
probe("netlink_audit", lambda: sock(socket.AF_NETLINK, socket.SOCK_RAW, 9))
probe("netlink_route", lambda: sock(socket.AF_NETLINK, socket.SOCK_RAW, 0))
probe("vsock", lambda: sock(40, socket.SOCK_STREAM, 0))
probe("socketpair_inet", lambda: chk(libc.socketpair(2, 1, 0, (ctypes.c_int * 2)())))
def uring():
    params = ctypes.create_string_buffer(120)
    os.close(chk(libc.syscall(NR_IO_URING_SETUP, 1, params)))
probe("io_uring", uring)
def attach():
    chk(libc.ptrace(16, TARGET, None, None))
    libc.ptrace(17, TARGET, None, None)
probe("ptrace", attach)
class Iov(ctypes.Structure):
    _fields_ = [("base", ctypes.c_void_p), ("len", ctypes.c_size_t)]
def vm_read():
    buf = ctypes.create_string_buffer(8)
    local = Iov(ctypes.cast(buf, ctypes.c_void_p), 8)
    remote = Iov(0x1000, 8)
    chk(libc.process_vm_readv(TARGET, ctypes.byref(local), 1, ctypes.byref(remote), 1, 0))
probe("process_vm_readv", vm_read)
probe("kill_outside", lambda: os.kill(OUTSIDE, 0))
probe("prlimit_outside", lambda: chk(libc.prlimit(OUTSIDE, 1, None, (ctypes.c_ulong * 2)())))
probe("proc_outside_cmdline", lambda: open("/proc/%d/cmdline" % OUTSIDE, "rb").read())
probe("keyctl", lambda: chk(libc.syscall(NR_KEYCTL, 0, -3, 0)))
probe("tiocsti", lambda: chk(libc.ioctl(0, 0x5412, b"x")))
probe("tiocsti_high_bits", lambda: chk(libc.ioctl(0, ctypes.c_ulong(0x100005412), b"x")))
probe("proc_mem", lambda: open("/proc/%d/mem" % TARGET, "rb").close())
probe("proc_fd", lambda: os.listdir("/proc/%d/fd" % TARGET))
probe("proc_fd0", lambda: os.readlink("/proc/%d/fd/0" % TARGET))
probe("proc_fd0_open", lambda: open("/proc/%d/fd/0" % TARGET, "rb").close())
probe("proc_fdinfo0", lambda: open("/proc/%d/fdinfo/0" % TARGET, "rb").read())
probe("proc_io", lambda: open("/proc/%d/io" % TARGET, "rb").read())
probe("proc_syscall", lambda: open("/proc/%d/syscall" % TARGET, "rb").read())
probe("proc_exe", lambda: os.readlink("/proc/%d/exe" % TARGET))
probe("proc_root", lambda: os.listdir("/proc/%d/root/" % TARGET))
probe("proc_cmdline", lambda: open("/proc/%d/cmdline" % TARGET, "rb").read())
probe("self_environ", lambda: open("/proc/self/environ", "rb").read())
probe("kill_self", lambda: os.kill(os.getpid(), 0))
# Last: outside, a successful unshare moves Python into a user namespace with no rights over
# TARGET, which would spoil the /proc probes (and could no longer kill it).
cleanup()
probe("mount", lambda: chk(libc.mount(b"none", b"/nonexistent-nono-mount", b"tmpfs", 0, None)))
probe("unshare", lambda: chk(libc.unshare(0x10000000 | 0x40000000)))
"#;

#[test]
fn syscall_and_proc_escapes_are_refused() {
    let inside = sandboxed_py(
        &[
            "--allow-domain",
            "127.0.0.1",
            "--allow-domain",
            "127.0.0.1:9",
        ],
        &format!(
            "TARGET = os.getppid()\nOUTSIDE = {}\ncleanup = lambda: None\n{SYSCALL_PROBES}",
            std::process::id()
        ),
    );
    assert_eq!(inside.code, 0, "{}", inside.dump());
    let outside = outside_py(&format!(
        "import subprocess\nvictim = subprocess.Popen(['sleep', '30'])\nTARGET = victim.pid\n\
         OUTSIDE = victim.pid\n\
         def cleanup():\n\
         \x20   # Traced after the ptrace probe: wait for the real exit, not a ptrace stop.\n\
         \x20   os.kill(victim.pid, 9)\n\
         \x20   while not os.WIFSIGNALED(os.waitpid(victim.pid, 0)[1]): pass\n\
         {SYSCALL_PROBES}"
    ));

    // (probe, errno inside). The allowed ones are the positive controls inside.
    let expect = [
        ("raw", "EPERM"),
        ("packet", "EPERM"),
        ("mptcp", "EPERM"),
        ("sctp", "EPERM"),
        ("seqpacket", "EPERM"),
        // UDP is open here (a direct host:port entry), yet ICMP datagrams are not UDP.
        ("ping", "EPERM"),
        ("netlink_audit", "EPERM"),
        ("netlink_route", "OK"),
        ("vsock", "EPERM"),
        ("socketpair_inet", "EPERM"),
        ("io_uring", "ENOSYS"),
        ("ptrace", "EPERM"),
        ("process_vm_readv", "EPERM"),
        ("kill_outside", "ESRCH"),
        ("prlimit_outside", "ESRCH"),
        ("proc_outside_cmdline", "ENOENT"),
        ("keyctl", "EPERM"),
        ("unshare", "EPERM"),
        ("mount", "EPERM"),
        ("tiocsti", "EPERM"),
        ("tiocsti_high_bits", "EPERM"),
        ("proc_mem", "EACCES"),
        ("proc_fd0", "EACCES"),
        ("proc_fd0_open", "EACCES"),
        ("proc_fdinfo0", "EACCES"),
        ("proc_io", "EACCES"),
        ("proc_syscall", "EPERM"),
        ("proc_exe", "EACCES"),
        ("proc_root", "EACCES"),
        ("proc_cmdline", "OK"),
        // Listing descriptor numbers only needs the directory's mode (root passes); what they
        // point to (fd/N, fdinfo/N) is refused above.
        ("proc_fd", "OK"),
        ("self_environ", "OK"),
        ("kill_self", "OK"),
    ];
    let (got_in, got_out) = (inside.probes(), outside.probes());
    let mut failures = Vec::new();
    for (name, want) in expect {
        let i = got_in.get(name).map(String::as_str).unwrap_or("missing");
        let o = got_out.get(name).map(String::as_str).unwrap_or("missing");
        if i != want {
            failures.push(format!("{name}: inside {i}, want {want}"));
        }
        // The control: outside, the probe gets past the permission check (it may still fail
        // for another reason, e.g. ENOTTY on /dev/null or ENOENT for the mount point, or a
        // protocol this kernel lacks).
        if want != "OK" && (o == want || o == "missing") {
            failures.push(format!("{name}: outside {o}, so the probe proves nothing"));
        }
    }
    assert!(
        failures.is_empty(),
        "{}\n--- inside\n{}\n--- outside\n{}",
        failures.join("\n"),
        inside.dump(),
        outside.dump()
    );
}

/// Regression (BUG, fixed by dropping the child's capabilities): a child still holding root's
/// capabilities read the supervisor's `/proc/PID/environ` (and `maps`, `auxv`, `pagemap`,
/// the files opened through `mm_access` in PTRACE_MODE_READ) on Linux 6.18, although `mem`,
/// `fd/N`, `fdinfo`, `io` and `exe` were refused. `paths.rs` grants all of `/proc` on the
/// assumption that other processes' sensitive entries stay hidden. nono's
/// environment holds what the child's must not: here NONO_UPSTREAM_PROXY with its password
/// (the same holds for a parent HTTP_PROXY nono strips, or an `env://` credential source).
#[test]
fn bug_child_reads_the_supervisors_environ_through_proc() {
    let body = "pp = os.getppid()\n\
                probe('proc_environ', lambda: open('/proc/%d/environ' % pp, 'rb').read())\n\
                probe('proc_maps', lambda: open('/proc/%d/maps' % pp, 'rb').read())\n\
                try:\n\
                \x20   leaked = b'parent-only-S3CRET' in open('/proc/%d/environ' % pp, 'rb').read()\n\
                except OSError:\n\
                \x20   leaked = False\n\
                print('LEAKED', leaked, flush=True)\n";
    let s = script(body);
    let out = run(nono_cmd(
        &["--allow-domain", "127.0.0.1"],
        &[PY, "-c", &s],
        &[(
            "HTTP_PROXY",
            "http://u:parent-only-S3CRET@corp.example:3128",
        )],
    ));
    assert_eq!(out.code, 0, "{}", out.dump());
    // Control: nono stripped the variable from the child's own environment.
    let own = out
        .stdout
        .lines()
        .filter(|l| l.contains("parent-only"))
        .count();
    assert_eq!(own, 0, "{}", out.dump());
    assert_eq!(out.probe("proc_environ"), "EACCES", "{}", out.dump());
    assert_eq!(out.probe("proc_maps"), "EACCES", "{}", out.dump());
    assert!(out.stdout.contains("LEAKED False"), "{}", out.dump());
}

/// BUG: NONO_UPSTREAM_PROXY, which may carry the corporate proxy's password, is passed
/// through to the child's environment (only *_PROXY variables are stripped).
#[test]
fn bug_upstream_proxy_password_reaches_the_child_environment() {
    let s = script("print('VALUE', os.environ.get('NONO_UPSTREAM_PROXY'), flush=True)\n");
    let out = run(nono_cmd(
        &[
            "--allow-domain",
            "127.0.0.1",
            "--upstream-bypass",
            "127.0.0.1",
        ],
        &[PY, "-c", &s],
        &[(
            "NONO_UPSTREAM_PROXY",
            "http://u:upstream-S3CRET@127.0.0.1:9",
        )],
    ));
    assert_eq!(out.code, 0, "{}", out.dump());
    assert!(out.stdout.contains("VALUE "), "{}", out.dump());
    assert!(!out.stdout.contains("upstream-S3CRET"), "{}", out.dump());
}

#[test]
fn abstract_unix_socket_outside_is_unreachable() {
    let name = format!("nono-test-{}-{}", std::process::id(), free_port());
    let server = format!(
        "import socket\n\
         s = socket.socket(socket.AF_UNIX); s.bind('\\0{name}'); s.listen()\n\
         print('READY', flush=True)\n\
         while True:\n    c, _ = s.accept(); c.sendall(b'hi'); c.close()\n"
    );
    let mut child = Command::new(PY)
        .args(["-c", &server])
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout"));
    let _server = Reaped(child);
    assert_eq!(read_line(&mut lines), "READY");
    let body = format!(
        "def conn():\n    s = socket.socket(socket.AF_UNIX); s.connect('\\0{name}'); s.recv(2)\n\
         probe('abstract', conn)\n\
         def own():\n    l = socket.socket(socket.AF_UNIX); l.bind('\\0{name}-inner'); l.listen()\n    socket.socket(socket.AF_UNIX).connect('\\0{name}-inner')\n\
         probe('abstract_own', own)\n"
    );
    let out = sandboxed_py(&["--block-net"], &body);
    // Landlock's scope says EPERM; in the private network namespace (abstract sockets are
    // per namespace) the name does not even exist.
    assert!(
        ["EPERM", "ECONNREFUSED"].contains(&out.probe("abstract")),
        "{}",
        out.dump()
    );
    assert_eq!(out.probe("abstract_own"), "OK", "{}", out.dump());
    let out = outside_py(&body);
    assert_eq!(out.probe("abstract"), "OK", "control\n{}", out.dump());
}

#[test]
fn proxy_port_on_a_non_loopback_address_of_this_machine_is_unreachable() {
    // Landlock rules name ports, not addresses: the child may connect to the proxy's port on
    // any address. The connect gate allows local ports (the proxy) only on loopback and this
    // machine's own addresses — and 10.211.1.1 is one of them, so the private network
    // namespace answers: it has no route there (ENETUNREACH). Other ports are refused by
    // Landlock and the gate (EACCES).
    let ns = NetNs::new("nonorun", "10.211.1.1/24", "10.211.1.2/24").expect("network namespace");
    let body = format!(
        "probe('host_addr', lambda: connect('{h}', proxy_port()))\n\
         probe('host_addr_other_port', lambda: connect('{h}', 9))\n\
         probe('loopback', lambda: connect('127.0.0.1', proxy_port()))\n",
        h = ns.host_addr
    );
    let out = sandboxed_py(&["--allow-domain", "127.0.0.1"], &body);
    assert_eq!(out.probe("host_addr"), "ENETUNREACH", "{}", out.dump());
    assert_eq!(
        out.probe("host_addr_other_port"),
        "EACCES",
        "{}",
        out.dump()
    );
    assert_eq!(out.probe("loopback"), "OK", "{}", out.dump());
}

/// Regression: the proxy's port was open to every address (Landlock allows `connect` by
/// port only), so a child could reach any host on the port the proxy uses. Fixed twice: the
/// connect gate allows the proxy port on loopback addresses only, and the private network
/// namespace has no other address.
#[test]
fn bug_proxy_port_is_reachable_on_remote_hosts() {
    let ns = NetNs::new("nonorun", "10.211.2.1/24", "10.211.2.2/24").expect("network namespace");
    let port = free_port();
    let _remote = tcp_banner_server(Some(&ns), &ns.ns_addr, port, "escaped");
    let body = format!(
        "def fetch():\n    s = socket.create_connection(('{a}', {port}), timeout=5)\n    print('GOT', s.recv(20).decode(), flush=True)\n\
         probe('remote_on_proxy_port', fetch)\n",
        a = ns.ns_addr
    );
    let p = port.to_string();
    // Control: outside the sandbox the remote server answers.
    let out = outside_py(&body);
    assert_eq!(out.probe("remote_on_proxy_port"), "OK", "{}", out.dump());
    let out = sandboxed_py(&["--allow-domain", "127.0.0.1", "--proxy-port", &p], &body);
    assert!(
        out.stderr.contains(&format!("proxy on 127.0.0.1:{port}")),
        "{}",
        out.dump()
    );
    assert_eq!(
        out.probe("remote_on_proxy_port"),
        "EACCES",
        "the child reached {}:{port} directly, bypassing the proxy\n{}",
        ns.ns_addr,
        out.dump()
    );
}

/// Regression: `--open-port` is documented as a localhost port, but Landlock opens it towards
/// every address, so `--block-net --open-port N` let the child talk to any remote host on
/// port N. Fixed by the connect gate, which allows such ports on loopback addresses only.
#[test]
fn bug_open_port_is_reachable_on_remote_hosts() {
    let ns = NetNs::new("nonorun", "10.211.3.1/24", "10.211.3.2/24").expect("network namespace");
    let port = free_port();
    let _remote = tcp_banner_server(Some(&ns), &ns.ns_addr, port, "escaped");
    let body = format!(
        "def fetch():\n    s = socket.create_connection(('{a}', {port}), timeout=5)\n    print('GOT', s.recv(20).decode(), flush=True)\n\
         probe('remote_on_open_port', fetch)\n",
        a = ns.ns_addr
    );
    let out = outside_py(&body);
    assert_eq!(
        out.probe("remote_on_open_port"),
        "OK",
        "control\n{}",
        out.dump()
    );
    let p = port.to_string();
    let out = sandboxed_py(&["--block-net", "--open-port", &p], &body);
    assert_eq!(
        out.probe("remote_on_open_port"),
        "EACCES",
        "--block-net --open-port {port} reached {}:{port}\n{}",
        ns.ns_addr,
        out.dump()
    );
}

/// Regression: in the shared network namespace (`--open-port`), a server the child bound on a
/// wildcard address — or an ephemeral port from `listen()` without `bind()` — accepted
/// connections from other hosts. The connect gate accepts on the child's behalf and drops
/// connections whose peer is not loopback; local clients are served, with the right peer
/// address and descriptor flags.
#[test]
fn bug_wildcard_server_in_the_shared_namespace_accepts_other_hosts() {
    let ns = NetNs::new("nonorun", "10.211.4.1/24", "10.211.4.2/24").expect("network namespace");
    let port = free_port();
    let server = script(&format!(
        "import fcntl\n\
         s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n\
         s.bind(('0.0.0.0', {port})); s.listen()\n\
         e = socket.socket(); e.listen()\n\
         print('READY', e.getsockname()[1], flush=True)\n\
         for srv in (s, e):\n\
         \x20   c, peer = srv.accept()\n\
         \x20   nb = bool(fcntl.fcntl(c.fileno(), fcntl.F_GETFL) & os.O_NONBLOCK)\n\
         \x20   print('PEER', peer[0], 'nonblock' if nb else 'blocking', flush=True)\n\
         \x20   c.sendall(b'served'); c.close()\n"
    ));
    let p = port.to_string();
    let mut child = Reaped(
        nono_cmd(
            &["-q", "--block-net", "--open-port", &p],
            &[PY, "-c", &server],
            &[],
        )
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn"),
    );
    let mut lines = BufReader::new(child.0.stdout.take().expect("stdout"));
    let ready = read_line(&mut lines);
    let ephemeral = ready
        .strip_prefix("READY ")
        .unwrap_or_else(|| panic!("server did not start: {ready}"))
        .to_string();
    let fetch = |host: &str, port: &str, from_ns: bool| -> String {
        let code = format!(
            "import socket\n\
             try:\n\
             \x20   s = socket.create_connection(('{host}', {port}), timeout=3)\n\
             \x20   print(s.recv(20).decode() or 'CLOSED')\n\
             except OSError as e:\n\
             \x20   print('ERR', e)\n"
        );
        let mut cmd = if from_ns {
            ns.command(&[PY, "-c", &code])
        } else {
            let mut c = Command::new(PY);
            c.args(["-c", &code]);
            c
        };
        let out = cmd.output().expect("client");
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    for target in [p.as_str(), ephemeral.as_str()] {
        // From another host (the namespace's peer address) the server must stay unreachable.
        let remote = fetch(&ns.host_addr, target, true);
        assert_ne!(
            remote, "served",
            "a remote host reached the sandboxed server on port {target}"
        );
        // From loopback it is served.
        assert_eq!(fetch("127.0.0.1", target, false), "served", "port {target}");
        assert_eq!(read_line(&mut lines), "PEER 127.0.0.1 blocking");
    }
    let status = child.0.wait().expect("server exits");
    assert!(status.success(), "sandboxed server failed: {status:?}");
}

/// Regression: `listen()` on an unbound TCP socket binds an ephemeral port on 0.0.0.0
/// without the `bind` hook Landlock checks, so a child with no --listen-port could accept
/// connections from anywhere. In the private network namespace that port exists only on the
/// child's own loopback: nobody outside can connect.
#[test]
fn bug_listen_without_bind_opens_an_ephemeral_port() {
    let body = "def serve():\n\
                \x20   s = socket.socket(); s.listen()\n\
                \x20   print('LISTENING', s.getsockname()[1], flush=True)\n\
                \x20   c, _ = s.accept(); c.sendall(b'leaked'); c.close()\n\
                probe('listen_unbound', serve)\n";
    let s = script(body);
    for flags in [&["--block-net"][..], &["--allow-domain", "127.0.0.1"][..]] {
        let mut cmd = nono_cmd(flags, &[PY, "-c", &s], &[]);
        let mut child = Reaped(
            cmd.stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .expect("spawn"),
        );
        let mut lines = BufReader::new(child.0.stdout.take().expect("stdout"));
        let first = read_line(&mut lines);
        if let Some(port) = first.strip_prefix("LISTENING ") {
            match std::net::TcpStream::connect(("127.0.0.1", port.parse::<u16>().expect("port"))) {
                Ok(mut conn) => {
                    let mut got = String::new();
                    let _ = conn.read_to_string(&mut got);
                    panic!(
                        "{flags:?}: the sandboxed child listened on port {port} and sent {got:?}"
                    );
                }
                Err(e) => {
                    assert_eq!(
                        e.kind(),
                        std::io::ErrorKind::ConnectionRefused,
                        "{flags:?}: {e}"
                    );
                    continue;
                }
            }
        }
        assert_eq!(first, "PROBE listen_unbound EACCES", "{flags:?}");
    }
}

/// A UNIX socket server (outside any sandbox) that answers `hi` to each connection until the
/// returned guard is dropped.
fn unix_hi_server(path: &std::path::Path) -> UnixServerGuard {
    let listener = std::os::unix::net::UnixListener::bind(path).expect("bind unix socket");
    listener.set_nonblocking(true).expect("nonblocking");
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = std::sync::Arc::clone(&stop);
    let thread = thread::spawn(move || {
        while !flag.load(std::sync::atomic::Ordering::Relaxed) {
            match listener.accept() {
                Ok((mut c, _)) => {
                    use std::io::Write;
                    let _ = c.write_all(b"hi");
                }
                Err(_) => thread::sleep(Duration::from_millis(5)),
            }
        }
    });
    UnixServerGuard {
        stop,
        thread: Some(thread),
    }
}

struct UnixServerGuard {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<thread::JoinHandle<()>>,
}

impl Drop for UnixServerGuard {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The connect gate lets through what the policy grants and nothing more: a server the
/// sandbox runs beneath a read-write grant works (by absolute and by relative path, from the
/// main thread and from another thread); a socket granted by name works whoever serves it. An
/// outside server in a granted directory (a tmux or X11 socket in a shared /tmp), a symlink
/// planted there pointing at an outside socket, a read-only grant, magic links through /proc
/// do not lead out.
#[test]
fn unix_sockets_reach_only_the_sandboxs_own_servers_and_sockets_granted_by_name() {
    let granted = TempDir::new("run-unix-granted");
    let outside = TempDir::new("run-unix-outside");
    let readonly = TempDir::new("run-unix-readonly");
    let _foreign_server = unix_hi_server(&granted.path().join("foreign.sock"));
    let _outside_server = unix_hi_server(&outside.path().join("out.sock"));
    let _named_server = unix_hi_server(&outside.path().join("named.sock"));
    let _ro_server = unix_hi_server(&readonly.path().join("ro.sock"));
    std::os::unix::fs::symlink(
        outside.path().join("out.sock"),
        granted.path().join("link.sock"),
    )
    .expect("symlink");
    let g = granted.path().display().to_string();
    let o = outside.path().display().to_string();
    let r = readonly.path().display().to_string();
    let body = format!(
        "import threading\n\
         def conn(p):\n    s = socket.socket(socket.AF_UNIX); s.settimeout(5); s.connect(p); assert s.recv(2) == b'hi'\n\
         if os.path.exists('{g}/own.sock'): os.unlink('{g}/own.sock')\n\
         l = socket.socket(socket.AF_UNIX); l.bind('{g}/own.sock'); l.listen()\n\
         def serve():\n    while True:\n        a, _ = l.accept(); a.sendall(b'hi'); a.close()\n\
         threading.Thread(target=serve, daemon=True).start()\n\
         probe('own_abs', lambda: conn('{g}/own.sock'))\n\
         os.chdir('{g}')\n\
         probe('own_rel', lambda: conn('own.sock'))\n\
         res = {{}}\n\
         def in_thread():\n    try:\n        conn('{g}/own.sock'); res['r'] = 'OK'\n    except OSError as e:\n        res['r'] = errno.errorcode.get(e.errno, str(e.errno))\n\
         t = threading.Thread(target=in_thread); t.start(); t.join()\n\
         print('PROBE own_from_thread', res['r'], flush=True)\n\
         def opts():\n    s = socket.socket(socket.AF_UNIX); s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 65536); before = s.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF); s.settimeout(5); s.connect('{g}/own.sock'); assert s.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF) == before; assert s.gettimeout() == 5; assert s.recv(2) == b'hi'\n\
         probe('options_kept', opts)\n\
         def twice():\n    s = socket.socket(socket.AF_UNIX); s.connect('{g}/own.sock'); s.connect('{g}/own.sock')\n\
         probe('connect_twice', twice)\n\
         probe('named', lambda: conn('{o}/named.sock'))\n\
         probe('foreign_in_grant', lambda: conn('{g}/foreign.sock'))\n\
         probe('symlink_out', lambda: conn('{g}/link.sock'))\n\
         probe('readonly', lambda: conn('{r}/ro.sock'))\n\
         probe('proc_root', lambda: conn('/proc/self/root{o}/out.sock'))\n\
         probe('missing', lambda: conn('{g}/none.sock'))\n\
         probe('not_a_socket', lambda: (open('{g}/file', 'w').close(), conn('{g}/file')))\n"
    );
    let named = format!("{o}/named.sock");
    let flags = ["--block-net", "--allow", &g, "--read", &r, "--read", &named];
    // With the sandbox's own root the planted symlink leads nowhere (its target does not
    // exist there); without it (fallback), the gate refuses it.
    for (no_namespaces, symlink_out) in [("0", "ENOENT"), ("1", "EACCES")] {
        let out = run(nono_cmd(
            &flags,
            &[PY, "-c", &script(&body)],
            &[("NONO_TEST_NO_NAMESPACES", no_namespaces)],
        ));
        check_unix_probes(&out, symlink_out);
    }
    // Control: outside the sandbox every one of them answers.
    let out = outside_py(&body);
    for ok in ["foreign_in_grant", "symlink_out", "readonly", "proc_root"] {
        assert_eq!(out.probe(ok), "OK", "control {ok}\n{}", out.dump());
    }
}

fn check_unix_probes(out: &Out, symlink_out: &str) {
    assert_eq!(out.probe("symlink_out"), symlink_out, "{}", out.dump());
    assert_eq!(out.probe("connect_twice"), "EISCONN", "{}", out.dump());
    for ok in [
        "own_abs",
        "own_rel",
        "own_from_thread",
        "named",
        "options_kept",
    ] {
        assert_eq!(out.probe(ok), "OK", "{ok}\n{}", out.dump());
    }
    for denied in ["foreign_in_grant", "readonly"] {
        assert_eq!(out.probe(denied), "EACCES", "{denied}\n{}", out.dump());
    }
    assert_ne!(out.probe("proc_root"), "OK", "{}", out.dump());
    assert_eq!(out.probe("missing"), "ENOENT", "{}", out.dump());
    assert_eq!(out.probe("not_a_socket"), "ECONNREFUSED", "{}", out.dump());
}

/// Regression: a datagram UNIX socket names its destination per message (`sendto`, or a
/// `msghdr` seccomp cannot read), so it reached any datagram server on disk (`/dev/log`,
/// journald, here one the test runs) without passing the connect gate. With the network
/// restricted, datagram UNIX sockets cannot be created at all; stream sockets still work.
#[test]
fn bug_unix_datagram_reaches_outside_servers() {
    let outside = TempDir::new("run-unix-dgram");
    let path = outside.path().join("log.sock");
    let server = std::os::unix::net::UnixDatagram::bind(&path).expect("bind datagram socket");
    server.set_nonblocking(true).expect("nonblocking");
    let body = format!(
        "def send():\n    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM); s.sendto(b'escaped', '{p}')\n\
         probe('dgram_sendto', send)\n\
         def send_raw():\n    s = socket.socket(socket.AF_UNIX, socket.SOCK_RAW); s.sendto(b'escaped', '{p}')\n\
         probe('raw_sendto', send_raw)\n\
         probe('dgram_pair', lambda: socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM))\n\
         probe('stream_pair', lambda: socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM))\n",
        p = path.display()
    );
    let out = outside_py(&body);
    assert_eq!(out.probe("dgram_sendto"), "OK", "control\n{}", out.dump());
    assert_eq!(out.probe("raw_sendto"), "OK", "control\n{}", out.dump());
    let mut buf = [0u8; 16];
    let mut arrived = 0;
    while server.recv(&mut buf).is_ok() {
        arrived += 1;
    }
    assert_eq!(
        arrived, 2,
        "control: the datagram and the raw message should both arrive"
    );
    for flags in [&["--block-net"][..], &["--allow-domain", "127.0.0.1"][..]] {
        let out = sandboxed_py(flags, &body);
        assert_eq!(
            out.probe("raw_sendto"),
            "EPERM",
            "{flags:?}\n{}",
            out.dump()
        );
        assert_eq!(
            out.probe("dgram_sendto"),
            "EPERM",
            "{flags:?}\n{}",
            out.dump()
        );
        assert_eq!(
            out.probe("dgram_pair"),
            "EPERM",
            "{flags:?}\n{}",
            out.dump()
        );
        assert_eq!(out.probe("stream_pair"), "OK", "{flags:?}\n{}", out.dump());
        assert!(
            server.recv(&mut buf).is_err(),
            "{flags:?}: a datagram arrived"
        );
    }
}

/// A server blocked in `accept` (performed by the connect gate) still takes signals: an alarm
/// handler runs and the program goes on, instead of hanging until a client comes.
#[test]
fn a_signal_interrupts_an_accept_waiting_on_the_gate() {
    let port = free_port();
    let body = format!(
        "import signal\n\
         class Alarm(Exception): pass\n\
         def on_alarm(*_): raise Alarm()\n\
         signal.signal(signal.SIGALRM, on_alarm)\n\
         s = socket.socket(); s.bind(('127.0.0.1', {port})); s.listen()\n\
         signal.alarm(1)\n\
         try:\n    s.accept(); print('ACCEPTED', flush=True)\n\
         except Alarm:\n    print('INTERRUPTED', flush=True)\n"
    );
    let p = port.to_string();
    let out = sandboxed_py(&["--block-net", "--open-port", &p], &body);
    assert!(out.stdout.contains("INTERRUPTED"), "{}", out.dump());
}

/// A daemon that detaches from the sandbox's process tree (double fork) stays beneath the
/// sandbox's init: the sandbox can still reach its socket, and the init reaps it when it
/// exits. (It lingers after serving: the gate checks the listener's ancestry once connected,
/// and a server reaped within microseconds of its accept can no longer be checked.)
#[test]
fn a_daemonized_sandbox_server_stays_reachable_and_is_reaped() {
    let granted = TempDir::new("run-unix-daemon");
    let g = granted.path().display().to_string();
    let body = format!(
        "import time\n\
         r, w = os.pipe()\n\
         if os.fork() == 0:\n\
         \x20   if os.fork() == 0:\n\
         \x20       l = socket.socket(socket.AF_UNIX); l.bind('{g}/d.sock'); l.listen()\n\
         \x20       os.write(w, str(os.getpid()).encode().ljust(16))\n\
         \x20       a, _ = l.accept(); a.sendall(b'hi'); a.close(); time.sleep(0.5); os._exit(0)\n\
         \x20   os._exit(0)\n\
         os.wait()\n\
         daemon = int(os.read(r, 16))\n\
         def conn():\n    s = socket.socket(socket.AF_UNIX); s.settimeout(5); s.connect('{g}/d.sock'); assert s.recv(2) == b'hi'\n\
         probe('daemon', conn)\n\
         end = time.time() + 5\n\
         while os.path.exists(f'/proc/{{daemon}}') and time.time() < end: time.sleep(0.05)\n\
         print('REAPED' if not os.path.exists(f'/proc/{{daemon}}') else 'ZOMBIE', flush=True)\n"
    );
    let out = sandboxed_py(&["--block-net", "--allow", &g], &body);
    assert_eq!(out.probe("daemon"), "OK", "{}", out.dump());
    assert!(out.stdout.contains("REAPED"), "{}", out.dump());
}

/// Regression: the gate took the caller's thread id for a process id, so every connect made
/// from a thread other than the main one failed (ESRCH); and a process that made itself
/// non-dumpable could not connect at all.
#[test]
fn connect_from_a_thread_works() {
    let echo = EchoServer::plain();
    let body = format!(
        "import threading\n\
         res = {{}}\n\
         def go():\n    try:\n        s = socket.create_connection(('127.0.0.1', {port}), timeout=5); s.sendall(b'x'); s.recv(1); res['r'] = 'OK'\n    except OSError as e:\n        res['r'] = errno.errorcode.get(e.errno, str(e.errno))\n\
         t = threading.Thread(target=go); t.start(); t.join()\n\
         print('PROBE thread_tcp', res['r'], flush=True)\n\
         PR_SET_DUMPABLE, PR_GET_DUMPABLE = 4, 3\n\
         print('SET_DUMPABLE', libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0), 'NOW', libc.prctl(PR_GET_DUMPABLE, 0, 0, 0, 0), flush=True)\n\
         probe('non_dumpable_tcp', lambda: connect('127.0.0.1', {port}))\n",
        port = echo.port
    );
    let p = echo.port.to_string();
    let out = sandboxed_py(&["--block-net", "--open-port", &p], &body);
    assert_eq!(out.probe("thread_tcp"), "OK", "{}", out.dump());
    // prctl(PR_SET_DUMPABLE) succeeds without effect: a non-dumpable process would be out of
    // the gate's reach (ptrace access) and could connect nowhere.
    assert!(
        out.stdout.contains("SET_DUMPABLE 0 NOW 1"),
        "{}",
        out.dump()
    );
    assert_eq!(out.probe("non_dumpable_tcp"), "OK", "{}", out.dump());
}

/// Regression (review): the gate once connected the child's own socket and only then checked
/// who listened, shutting it down if foreign; a second thread writing to the socket in that
/// window delivered data to a foreign server beneath a writable grant (tmux, X11 in /tmp).
/// Now a socket of nono's connects and is checked before it replaces the child's: no byte
/// arrives.
#[test]
fn writes_racing_a_refused_unix_connect_never_reach_the_foreign_server() {
    let granted = TempDir::new("run-unix-write-race");
    let path = granted.path().join("foreign.sock");
    let listener = std::os::unix::net::UnixListener::bind(&path).expect("bind");
    listener.set_nonblocking(true).expect("nonblocking");
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = std::sync::Arc::clone(&stop);
    let collector = thread::spawn(move || {
        let mut conns = Vec::new();
        let mut received = 0usize;
        while !flag.load(std::sync::atomic::Ordering::Relaxed) {
            if let Ok((c, _)) = listener.accept() {
                c.set_nonblocking(true).expect("nonblocking");
                conns.push(c);
            }
            for c in &mut conns {
                let mut buf = [0u8; 256];
                if let Ok(n) = c.read(&mut buf) {
                    received += n;
                }
            }
            thread::sleep(Duration::from_millis(1));
        }
        received
    });
    let g = granted.path().display().to_string();
    let body = format!(
        "import threading\n\
         refused = 0\n\
         for _ in range(40):\n\
         \x20   s = socket.socket(socket.AF_UNIX); fd = s.fileno(); done = False\n\
         \x20   def spam():\n\
         \x20       while not done:\n\
         \x20           try: os.write(fd, b'X')\n\
         \x20           except OSError: pass\n\
         \x20   t = threading.Thread(target=spam); t.start()\n\
         \x20   try: s.connect('{g}/foreign.sock')\n\
         \x20   except PermissionError: refused += 1\n\
         \x20   done = True; t.join(); s.close()\n\
         print('REFUSED', refused, flush=True)\n"
    );
    let out = sandboxed_py(&["--block-net", "--allow", &g], &body);
    thread::sleep(Duration::from_millis(100));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let received = collector.join().expect("collector");
    assert!(out.stdout.contains("REFUSED 40"), "{}", out.dump());
    assert_eq!(
        received,
        0,
        "the foreign server received {received} bytes\n{}",
        out.dump()
    );
}

/// The connect gate answers for the whole process tree, including threads racing to swap the
/// address after the check: a thread flips the path between an allowed socket and an outside
/// one while others connect; no connection may reach the outside server.
#[test]
fn unix_connect_racing_an_address_swap_never_reaches_outside() {
    let root = TempDir::new("run-unix-race");
    let granted = root.path().join("in");
    let outside = root.path().join("ou");
    std::fs::create_dir(&granted).expect("mkdir");
    std::fs::create_dir(&outside).expect("mkdir");
    let inside_path = granted.join("a.sock");
    let outside_path = outside.join("b.sock");
    // Same length, so the flipping thread can rewrite the buffer in place.
    let inside_s = inside_path.display().to_string();
    let outside_s = outside_path.display().to_string();
    assert_eq!(
        inside_s.len(),
        outside_s.len(),
        "test needs equal-length paths"
    );
    let listener = std::os::unix::net::UnixListener::bind(&outside_path).expect("bind");
    listener.set_nonblocking(true).expect("nonblocking");
    let _inside_server = unix_hi_server(&inside_path);
    let g = granted.display().to_string();
    let body = format!(
        "import ctypes, threading, time\n\
         sys.setswitchinterval(1e-6)\n\
         libc = ctypes.CDLL(None, use_errno=True)\n\
         a = b'{i}'; b = b'{o}'\n\
         class SUN(ctypes.Structure):\n    _fields_ = [('family', ctypes.c_ushort), ('path', ctypes.c_char * 108)]\n\
         addr = SUN(socket.AF_UNIX, a)\n\
         stop = False\n\
         def flip():\n    n = 0\n    while not stop:\n        addr.path = b if n % 2 else a; n += 1\n\
         t = threading.Thread(target=flip); t.start()\n\
         end = time.time() + 0.5\n\
         while time.time() < end:\n    s = socket.socket(socket.AF_UNIX); s.setblocking(False); libc.connect(s.fileno(), ctypes.byref(addr), ctypes.sizeof(addr)); s.close()\n\
         stop = True; t.join()\n\
         print('DONE', flush=True)\n",
        i = inside_s,
        o = outside_s
    );
    let drain = || {
        let mut n = 0;
        while listener.accept().is_ok() {
            n += 1;
        }
        n
    };
    // Control: without the sandbox the flipping address does reach the outside socket.
    let out = outside_py(&body);
    assert!(out.stdout.contains("DONE"), "control\n{}", out.dump());
    assert!(
        drain() > 0,
        "control never reached the outside socket\n{}",
        out.dump()
    );
    let out = sandboxed_py(&["--block-net", "--allow", &g], &body);
    assert!(out.stdout.contains("DONE"), "{}", out.dump());
    let reached = drain();
    assert_eq!(
        reached,
        0,
        "{reached} connections reached the outside socket\n{}",
        out.dump()
    );
}

/// Regression: Landlock (up to ABI 8) does not restrict connecting to a named UNIX socket, so
/// the child reached sockets outside its granted paths: the Docker socket, an ssh-agent (whose
/// SSH_AUTH_SOCK passes through the environment), D-Bus, other agents' servers. Fixed by the
/// connect gate (sockets only beneath read-write grants or granted by name).
#[test]
fn bug_named_unix_socket_outside_granted_paths_is_reachable() {
    let outside = TempDir::new("run-unix");
    let path = outside.path().join("agent.sock");
    let listener = std::os::unix::net::UnixListener::bind(&path).expect("bind unix socket");
    let server = thread::spawn(move || {
        if let Ok((mut c, _)) = listener.accept() {
            use std::io::Write;
            let _ = c.write_all(b"hi");
        }
    });
    let body = format!(
        "def conn():\n    s = socket.socket(socket.AF_UNIX); s.connect('{}'); s.recv(2)\n\
         probe('named_unix', conn)\n\
         probe('list_dir', lambda: os.listdir('{}'))\n",
        path.display(),
        outside.path().display()
    );
    // The first wall: the path does not exist in the sandbox's root.
    let out = sandboxed_py(&["--block-net"], &body);
    assert_eq!(out.probe("list_dir"), "ENOENT", "{}", out.dump());
    assert_eq!(out.probe("named_unix"), "ENOENT", "{}", out.dump());
    // The second wall alone: the connect gate refuses it.
    let out = run(nono_cmd(
        &["--block-net"],
        &[PY, "-c", &script(&body)],
        &[("NONO_TEST_NO_NAMESPACES", "1")],
    ));
    assert_eq!(out.probe("list_dir"), "EACCES", "{}", out.dump());
    let inside = out.probe("named_unix").to_string();
    // Wake the server thread if the probe did not connect (if it did, this finds it gone).
    let _ = std::os::unix::net::UnixStream::connect(&path);
    let _ = server.join();
    assert_eq!(
        inside,
        "EACCES",
        "the child connected to {}\n{}",
        path.display(),
        out.dump()
    );
}

/// BUG: TCP Fast Open (`sendto(..., MSG_FASTOPEN, addr)`) connects without the
/// `socket_connect` hook Landlock checks, so it reached any port, even under --block-net.
/// Fixed in crates/nono-sandbox: seccomp refuses MSG_FASTOPEN on sendto/sendmsg/sendmmsg.
#[test]
fn bug_tcp_fast_open_bypasses_landlock_connect_rules() {
    let echo = EchoServer::plain();
    let body = format!(
        "def tfo():\n    s = socket.socket()\n    s.sendto(b'exfil', socket.MSG_FASTOPEN, ('127.0.0.1', {p}))\n    s.settimeout(5); print('ECHO', s.recv(5), flush=True)\n\
         def tfo_msg():\n    s = socket.socket()\n    s.sendmsg([b'exfil'], [], socket.MSG_FASTOPEN, ('127.0.0.1', {p}))\n\
         probe('tfo_sendto', tfo)\n\
         probe('tfo_sendmsg', tfo_msg)\n",
        p = echo.port
    );
    for flags in [&["--block-net"][..], &["--allow-domain", "127.0.0.1"][..]] {
        let out = sandboxed_py(flags, &body);
        assert_eq!(
            out.probe("tfo_sendto"),
            "EPERM",
            "{flags:?}\n{}",
            out.dump()
        );
        assert_eq!(
            out.probe("tfo_sendmsg"),
            "EPERM",
            "{flags:?}\n{}",
            out.dump()
        );
    }
    assert_eq!(
        echo.accepted(),
        0,
        "a Fast Open connection reached the server"
    );
    // Control: without network confinement the same calls connect.
    let out = sandboxed_py(&[], &body);
    assert_eq!(out.probe("tfo_sendto"), "OK", "{}", out.dump());
    assert!(echo.accepted() >= 1);
}

// ---------------------------------------------------------------------------------------------
// Exit codes and signals.

#[test]
fn exit_codes_propagate() {
    assert_eq!(nono(&["-q"], &["sh", "-c", "exit 42"]).code, 42);
    assert_eq!(
        nono(&["-q", "--block-net"], &["sh", "-c", "exit 3"]).code,
        3
    );
    assert_eq!(nono(&["-q"], &["sh", "-c", "kill -9 $$"]).code, 137);
    let out = nono(&["-q"], &["nono-no-such-command-for-tests"]);
    assert_eq!(out.code, 127, "{}", out.dump());
    assert!(
        out.stderr.contains("nono-no-such-command-for-tests"),
        "{}",
        out.dump()
    );

    let dir = TempDir::new("run-noexec");
    let file = dir.path().join("script.sh");
    std::fs::write(&file, "#!/bin/sh\nexit 0\n").expect("write");
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let f = file.to_str().expect("utf-8");
    let out = nono(&["-q", "--read", dir.path().to_str().expect("utf-8")], &[f]);
    assert_eq!(out.code, 126, "{}", out.dump());
    // Control: once executable it runs.
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let out = nono(&["-q", "--read", dir.path().to_str().expect("utf-8")], &[f]);
    assert_eq!(out.code, 0, "{}", out.dump());

    // A refused policy: a granted path that does not exist.
    let out = nono(&["--read", "/nonexistent/nono-test"], &["true"]);
    assert_eq!(out.code, 125, "{}", out.dump());
    assert!(
        out.stderr.contains("/nonexistent/nono-test"),
        "{}",
        out.dump()
    );
}

#[test]
fn sigterm_to_nono_is_forwarded_to_the_child() {
    let s = script(
        "import signal\n\
         def on_term(sig, frame):\n    print('GOT', sig, flush=True); os._exit(7)\n\
         signal.signal(signal.SIGTERM, on_term)\n\
         print('READY', flush=True)\n\
         while True: signal.pause()\n",
    );
    for flags in [&["-q"][..], &["-q", "--allow-domain", "127.0.0.1"][..]] {
        let (mut child, mut lines) = spawn_until_ready(flags, &[PY, "-c", &s]);
        sigterm(&child);
        assert_eq!(read_line(&mut lines), format!("GOT {}", libc::SIGTERM));
        let status = child.0.wait().expect("wait");
        assert_eq!(
            status.code(),
            Some(7),
            "{flags:?}: nono must exit with the child's code"
        );
    }
    // Default disposition: the child dies of SIGTERM and nono reports 128 + 15. Python's
    // start-up gives nono time to install its handler (see the bug test below).
    let pause = script("import signal\nprint('READY', flush=True)\nsignal.pause()\n");
    let (mut child, _lines) = spawn_until_ready(&["-q"], &[PY, "-c", &pause]);
    sigterm(&child);
    let status = child.0.wait().expect("wait");
    assert_eq!(status.code(), Some(143));
}

/// BUG (crates/nono-cli/src/cmd_run.rs): nono installs its SIGTERM handler in `supervise`,
/// after the child has already been released and exec'd. A SIGTERM in that window kills nono
/// by the default action (the child then dies of PDEATHSIG SIGKILL) instead of being
/// forwarded; nono's status is "killed by signal 15", not the child's exit code.
#[test]
fn bug_sigterm_right_after_the_child_starts_kills_nono_instead_of_forwarding() {
    for attempt in 0..50 {
        let (mut child, _lines) =
            spawn_until_ready(&["-q"], &["sh", "-c", "echo READY; exec sleep 5"]);
        sigterm(&child);
        let status = child.0.wait().expect("wait");
        assert_eq!(
            status.code(),
            Some(143),
            "attempt {attempt}: nono itself died ({status:?}) instead of forwarding SIGTERM"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Old kernels (simulated Landlock ABI 3: no TCP port rules).

#[test]
fn abi3_refuses_proxy_mode_naming_the_kernel_feature() {
    let out = run(nono_cmd(
        &["--allow-domain", "127.0.0.1"],
        &["true"],
        &[("NONO_TEST_LANDLOCK_ABI", "3")],
    ));
    assert_eq!(out.code, 125, "{}", out.dump());
    for needle in ["Landlock ABI 4", "TCP port rules", "Landlock ABI 3"] {
        assert!(out.stderr.contains(needle), "{needle}\n{}", out.dump());
    }
    // Control: the same command runs on the real kernel.
    assert_eq!(
        nono(&["-q", "--allow-domain", "127.0.0.1"], &["true"]).code,
        0
    );
}

#[test]
fn abi3_insecure_proxy_profile_runs_with_a_warning() {
    let dir = TempDir::new("run-profile");
    let profile = dir.path().join("insecure.json");
    std::fs::write(
        &profile,
        r#"{"extends": "default", "security": {"wsl2_proxy_policy": "insecure_proxy"}}"#,
    )
    .expect("write profile");
    let echo = EchoServer::plain();
    let body = format!(
        "probe('proxy', lambda: connect('127.0.0.1', proxy_port()))\n\
         probe('direct', lambda: connect('127.0.0.1', {p}))\n\
         probe('udp', lambda: sock(socket.AF_INET, socket.SOCK_DGRAM, 0))\n\
         probe('raw', lambda: sock(socket.AF_INET, socket.SOCK_RAW, 1))\n",
        p = echo.port
    );
    let s = script(&body);
    let out = run(nono_cmd(
        &[
            "--profile",
            profile.to_str().expect("utf-8"),
            "--allow-domain",
            "127.0.0.1",
        ],
        &[PY, "-c", &s],
        &[("NONO_TEST_LANDLOCK_ABI", "3")],
    ));
    assert_eq!(out.code, 0, "{}", out.dump());
    assert!(out.stderr.contains("WARNING: INSECURE"), "{}", out.dump());
    assert!(out.stderr.contains("insecure_proxy"), "{}", out.dump());
    assert_eq!(out.probe("proxy"), "OK", "{}", out.dump());
    // Landlock cannot filter TCP at ABI 3; the private network namespace still keeps the
    // child off this machine's ports (nothing listens on its own loopback). seccomp still
    // removes UDP and raw sockets.
    assert_eq!(out.probe("direct"), "ECONNREFUSED", "{}", out.dump());
    assert_eq!(out.probe("udp"), "EPERM", "{}", out.dump());
    assert_eq!(out.probe("raw"), "EPERM", "{}", out.dump());
}

#[test]
fn abi3_block_net_still_blocks_with_seccomp() {
    let echo = EchoServer::plain();
    let body = format!(
        "probe('tcp', lambda: connect('127.0.0.1', {p}))\n\
         probe('udp', lambda: sock(socket.AF_INET, socket.SOCK_DGRAM, 0))\n\
         probe('unix', lambda: sock(socket.AF_UNIX, socket.SOCK_STREAM, 0))\n",
        p = echo.port
    );
    let s = script(&body);
    let out = run(nono_cmd(
        &["--block-net"],
        &[PY, "-c", &s],
        &[("NONO_TEST_LANDLOCK_ABI", "3")],
    ));
    assert_eq!(out.code, 0, "{}", out.dump());
    assert!(out.stderr.contains("Landlock ABI 3"), "{}", out.dump());
    // Without Landlock port rules the socket itself is refused (EPERM from seccomp).
    assert_eq!(out.probe("tcp"), "EPERM", "{}", out.dump());
    assert_eq!(out.probe("udp"), "EPERM", "{}", out.dump());
    assert_eq!(out.probe("unix"), "OK", "{}", out.dump());
    assert_eq!(echo.accepted(), 0);
    // Ports cannot be opened without Landlock port rules: refused, not silently widened.
    let out = run(nono_cmd(
        &["--block-net", "--open-port", "3000"],
        &["true"],
        &[("NONO_TEST_LANDLOCK_ABI", "3")],
    ));
    assert_eq!(out.code, 125, "{}", out.dump());
    assert!(out.stderr.contains("Landlock ABI 4"), "{}", out.dump());
}

#[test]
fn an_allowed_loopback_address_goes_through_the_proxy_not_around_it() {
    // `--allow-domain 127.0.0.1` names the host's loopback; inside the sandbox's own network
    // namespace a "direct" connection would reach an empty loopback, so NO_PROXY must not
    // send it there.
    let origin = HttpOrigin::start();
    let url = format!("http://127.0.0.1:{}/through-proxy", origin.port);
    let out = nono(
        &["--allow-domain", "127.0.0.1"],
        &[
            "/bin/sh",
            "-c",
            &format!("echo \"NO_PROXY=$NO_PROXY\"; /usr/bin/curl -sS --fail --max-time 10 -o /dev/null -w '%{{http_code}}\\n' {url}"),
        ],
    );
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    let no_proxy = out
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("NO_PROXY="))
        .unwrap_or_default()
        .to_string();
    assert!(
        !no_proxy.split(',').any(|e| e == "127.0.0.1"),
        "NO_PROXY still lists 127.0.0.1: {no_proxy}"
    );
    assert!(
        no_proxy.split(',').any(|e| e == "localhost"),
        "only the allowed name leaves NO_PROXY: {no_proxy}"
    );
    assert!(out.stdout.contains("200"), "{}", out.stdout);
    assert_eq!(
        origin.requests().len(),
        1,
        "the host's origin was not reached"
    );
}

#[test]
fn denials_are_explained_once_per_host_with_the_fix_and_summarised() {
    let sh = "curl -s -o /dev/null https://denied-one.example/; curl -s -o /dev/null https://denied-one.example/again; curl -s -o /dev/null http://denied-two.example/; true";
    let out = nono(
        &["--allow-domain", "allowed.example"],
        &["/bin/sh", "-c", sh],
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    let hint = "nono: denied denied-one.example:443 (not in the allowlist); allow it with --allow-domain denied-one.example";
    assert_eq!(
        out.stderr.matches(hint).count(),
        1,
        "one hint per host:\n{}",
        out.stderr
    );
    assert!(
        out.stderr
            .contains("allow it with --allow-domain denied-two.example"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("nono: 3 request(s) refused or failed; denied by the policy: denied-one.example:443, denied-two.example:80"),
        "no summary:\n{}",
        out.stderr
    );
    let quiet = nono(
        &["-q", "--allow-domain", "allowed.example"],
        &["/bin/sh", "-c", sh],
    );
    assert!(!quiet.stderr.contains("denied-one"), "{}", quiet.stderr);
}

#[test]
fn log_file_takes_the_decision_lines_off_the_terminal() {
    let dir = TempDir::new("logfile");
    let log = dir.path().join("nono.log");
    let log_s = log.to_string_lossy().into_owned();
    let out = nono(
        &[
            "-v",
            "--log-file",
            &log_s,
            "--allow-domain",
            "allowed.example",
        ],
        &[
            "/bin/sh",
            "-c",
            "curl -s -o /dev/null https://denied-three.example/; true",
        ],
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    let text = std::fs::read_to_string(&log).expect("the log file exists");
    assert!(
        text.contains("DENY CONNECT denied-three.example:443 reason=not_allowlisted"),
        "{text}"
    );
    assert!(!out.stderr.contains("DENY CONNECT"), "{}", out.stderr);
    let bad = nono(
        &["--log-file", "/nonexistent/dir/x.log", "--block-net"],
        &["true"],
    );
    assert_eq!(bad.code, 125, "{}", bad.stderr);
    assert!(bad.stderr.contains("--log-file"), "{}", bad.stderr);
}

#[test]
fn the_agent_profiles_work_on_a_fresh_home_and_create_their_own_state() {
    let dir = TempDir::new("fresh-home");
    let home = dir.path().join("home");
    std::fs::create_dir_all(&home).expect("mkdir home");
    let home_s = home.to_string_lossy().into_owned();
    let sh = "cat ~/.claude.json && touch ~/.claude/state ~/.cache/claude/c && echo STATE_OK";
    for round in 0..2 {
        let out = run(nono_cmd(
            &["--profile", "claude-code"],
            &["/bin/sh", "-c", sh],
            &[("HOME", &home_s)],
        ));
        assert_eq!(out.code, 0, "round {round}: {}", out.dump());
        assert!(
            out.stdout.contains("{}") && out.stdout.contains("STATE_OK"),
            "{}",
            out.dump()
        );
        // Created once, reported once; ~/.gitconfig is simply not there to read.
        assert_eq!(
            out.stderr.contains("created"),
            round == 0,
            "round {round}: {}",
            out.dump()
        );
    }
    for name in ["codex", "opencode"] {
        let out = run(nono_cmd(
            &["--profile", name],
            &["/bin/true"],
            &[("HOME", &home_s)],
        ));
        assert_eq!(out.code, 0, "{name}: {}", out.dump());
    }
}

#[test]
fn learn_opens_the_network_and_writes_the_hosts_reached_as_a_profile() {
    let ns = NetNs::new("nonolearn", "10.211.9.1/24", "10.211.9.2/24").expect("network namespace");
    let port = free_port();
    let _server = tcp_banner_server(Some(&ns), &ns.ns_addr, port, "hello");
    let dir = TempDir::new("learn");
    let file = dir.path().join("learned.json");
    let file_s = file.to_string_lossy().into_owned();
    // The tunnel is what is learned; the banner is not HTTP, so curl itself fails after it.
    let sh = format!(
        "curl -s --max-time 5 -p -o /dev/null http://{}:{port}/; curl -s --max-time 5 -o /dev/null http://169.254.169.254/; true",
        ns.ns_addr
    );
    let out = nono(
        &["--learn", &file_s, "--allow-domain", "only.example"],
        &["/bin/sh", "-c", &sh],
    );
    assert_eq!(out.code, 0, "{}", out.dump());
    let text = std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{e}\n{}", out.dump()));
    let v: serde_json::Value = serde_json::from_str(&text).expect("JSON");
    assert_eq!(v["extends"], "default", "{v}");
    assert_eq!(
        v["network"]["allow_domain"],
        serde_json::json!([ns.ns_addr]),
        "learned exactly the host reached (the deny list still held for metadata): {v}"
    );
    assert!(out.stderr.contains("cloud metadata"), "{}", out.dump());
    let (code, _, err) = run_nono(&["profile", "validate", &file_s], T);
    assert_eq!(code, 0, "the learned profile does not validate: {err}");
    // Used as a profile, it lets the same command reach the same host, and nothing else.
    let again = nono(&["--profile", &file_s], &["/bin/sh", "-c", &sh]);
    assert_eq!(again.code, 0, "{}", again.dump());
    assert!(
        !again.stderr.contains(&format!("denied {}", ns.ns_addr)),
        "the learned host was refused:\n{}",
        again.dump()
    );
    let other = nono(
        &["--profile", &file_s],
        &[
            "/bin/sh",
            "-c",
            "curl -s --max-time 5 -o /dev/null https://elsewhere.example/; true",
        ],
    );
    assert!(
        other.stderr.contains("denied elsewhere.example:443"),
        "{}",
        other.dump()
    );
    let blocked = nono(&["--learn", &file_s, "--block-net"], &["true"]);
    assert_eq!(blocked.code, 125, "{}", blocked.dump());
    assert!(
        blocked.stderr.contains("--learn needs the network"),
        "{}",
        blocked.dump()
    );
}

/// A package index the test serves itself: `simple/<name>/` (PEP 503) with one wheel, and an
/// npm registry document plus tarball for the same name. Returns the server and its port.
fn local_package_server(root: &std::path::Path) -> (Reaped, u16) {
    let build = r#"
import base64, hashlib, io, json, os, sys, tarfile, zipfile
root = sys.argv[1]
name = "nonodemo"
os.makedirs(f"{root}/simple/{name}", exist_ok=True)
whl = f"{name}-1.0-py3-none-any.whl"
files = {f"{name}/__init__.py": "VALUE = 42\n",
         f"{name}-1.0.dist-info/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n",
         f"{name}-1.0.dist-info/WHEEL": "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n"}
record = []
with zipfile.ZipFile(f"{root}/simple/{name}/{whl}", "w") as z:
    for path, text in files.items():
        data = text.encode()
        z.writestr(path, data)
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record.append(f"{path},sha256={digest},{len(data)}")
    record.append(f"{name}-1.0.dist-info/RECORD,,")
    z.writestr(f"{name}-1.0.dist-info/RECORD", "\n".join(record) + "\n")
open(f"{root}/simple/{name}/index.html", "w").write(f'<a href="{whl}">{whl}</a>\n')
buf = io.BytesIO()
with tarfile.open(fileobj=buf, mode="w:gz") as t:
    pj = json.dumps({"name": name, "version": "1.0.0", "main": "index.js"}).encode()
    for path, data in (("package/package.json", pj), ("package/index.js", b"module.exports = 42;\n")):
        info = tarfile.TarInfo(path); info.size = len(data); t.addfile(info, io.BytesIO(data))
tgz = buf.getvalue()
os.makedirs(f"{root}/npm/{name}/-", exist_ok=True)
open(f"{root}/npm/{name}/-/{name}-1.0.0.tgz", "wb").write(tgz)
port = sys.argv[2]
doc = {"name": name, "dist-tags": {"latest": "1.0.0"}, "versions": {"1.0.0": {
    "name": name, "version": "1.0.0",
    "dist": {"tarball": f"http://127.0.0.1:{port}/npm/{name}/-/{name}-1.0.0.tgz",
             "shasum": hashlib.sha1(tgz).hexdigest(),
             "integrity": "sha512-" + base64.b64encode(hashlib.sha512(tgz).digest()).decode()}}}}
open(f"{root}/npm/{name}/index.json", "w").write(json.dumps(doc))
"#;
    let port = free_port();
    let root_s = root.to_string_lossy().into_owned();
    let status = Command::new(PY)
        .args(["-c", build, &root_s, &port.to_string()])
        .status()
        .expect("build the packages");
    assert!(status.success(), "building the test packages failed");
    // npm asks for /nonodemo; serve the document there, files elsewhere as they are.
    let serve = r#"
import http.server, os, sys
root, port = sys.argv[1], int(sys.argv[2])
class H(http.server.SimpleHTTPRequestHandler):
    def __init__(self, *a, **k): super().__init__(*a, directory=root, **k)
    def translate_path(self, path):
        if path.rstrip("/") == "/npm/nonodemo" or path.rstrip("/") == "/nonodemo":
            return os.path.join(root, "npm/nonodemo/index.json")
        return super().translate_path(path)
    def log_message(self, *a): pass
s = http.server.ThreadingHTTPServer(("127.0.0.1", port), H)
print("READY", flush=True)
s.serve_forever()
"#;
    let mut child = Command::new(PY)
        .args(["-c", serve, &root_s, &port.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn the package server");
    let mut out = BufReader::new(child.stdout.take().expect("stdout"));
    assert_eq!(read_line(&mut out), "READY", "package server did not start");
    (Reaped(child), port)
}

#[test]
fn pip_and_npm_install_from_a_local_index_under_the_agent_profile_with_nonos_caches() {
    let dir = TempDir::new("pkgs");
    let home = dir.path().join("home");
    let work = dir.path().join("work");
    let index = dir.path().join("index");
    for d in [&home, &work, &index] {
        std::fs::create_dir_all(d).expect("mkdir");
    }
    let (_server, port) = local_package_server(&index);
    let home_s = home.to_string_lossy().into_owned();
    let sh = format!(
        "cd {work} && {PY} -m pip install -q --no-deps --disable-pip-version-check \
         --index-url http://127.0.0.1:{port}/simple --target {work}/pydeps nonodemo \
         && {PY} -c 'import sys; sys.path.insert(0, \"{work}/pydeps\"); import nonodemo; print(\"PIP_OK\", nonodemo.VALUE)' \
         && npm install --no-audit --no-fund --registry http://127.0.0.1:{port}/ nonodemo >/dev/null \
         && node -e 'console.log(\"NPM_OK\", require(\"nonodemo\"))'",
        work = work.display()
    );
    let out = run({
        let mut c = nono_cmd(
            &["--profile", "claude-code", "--allow-domain", "127.0.0.1"],
            &["/bin/sh", "-c", &sh],
            &[("HOME", &home_s)],
        );
        c.current_dir(&work);
        c
    });
    assert_eq!(out.code, 0, "{}", out.dump());
    assert!(out.stdout.contains("PIP_OK 42"), "{}", out.dump());
    assert!(out.stdout.contains("NPM_OK 42"), "{}", out.dump());
    // The tools wrote their caches into nono's cache, never the user's own.
    let nono_cache = home.join(".cache/nono/tools");
    let has_files = |p: std::path::PathBuf| {
        std::fs::read_dir(&p)
            .map(|mut d| d.next().is_some())
            .unwrap_or(false)
    };
    assert!(
        has_files(nono_cache.join("npm")),
        "npm cache not in nono's cache"
    );
    assert!(!home.join(".npm").exists(), "npm used the user's own cache");
    assert!(
        !home.join(".cache/pip").exists(),
        "pip used the user's own cache"
    );
}
