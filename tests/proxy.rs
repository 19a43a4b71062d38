//! End-to-end tests of `nono proxy`: the real binary against servers the tests start.

mod support;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::Command;
use std::time::{Duration, Instant};

use support::*;

const T: Duration = Duration::from_secs(20);

fn auth_header(p: &ProxyProcess) -> String {
    basic_auth(p.token.as_deref().expect("token"))
}

#[test]
fn allowed_connect_to_tls_server_is_byte_exact() {
    let ca = TestCa::new();
    let echo = EchoServer::tls(&ca);
    let p = ProxyProcess::start(&["--allow-domain", "127.0.0.1"]);
    let tunnel = connect_tunnel(
        p.port,
        &format!("127.0.0.1:{}", echo.port),
        Some(&auth_header(&p)),
    )
    .expect("tunnel opens");
    let payload: Vec<u8> = (0..2_000_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let got = tls_roundtrip(tunnel, &ca, "127.0.0.1", &payload);
    assert_eq!(got.len(), payload.len());
    assert!(got == payload, "echo through the tunnel differs");
    let log = p.stderr();
    assert!(
        log.contains(&format!("ALLOW CONNECT 127.0.0.1:{}", echo.port)),
        "{log}"
    );
}

#[test]
fn curl_through_proxy_with_credentials_in_url() {
    let ca = TestCa::new();
    let origin = HttpOrigin::start_tls_for(&ca, &["localhost"]);
    let p = ProxyProcess::start(&["--allow-domain", "localhost"]);
    let out = Command::new("curl")
        .args(["-sS", "--fail", "--max-time", "10", "--cacert"])
        .arg(&ca.ca_path)
        .args([
            "--proxy",
            &p.url,
            &format!("https://localhost:{}/hello", origin.port),
        ])
        .env_remove("NO_PROXY")
        .env_remove("no_proxy")
        .output()
        .expect("curl runs (install curl)");
    assert!(
        out.status.success(),
        "curl failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let body = String::from_utf8_lossy(&out.stdout);
    assert!(body.contains("\"/hello\""), "{body}");
    // TLS was end-to-end: the origin saw the request, the proxy only a tunnel.
    assert_eq!(origin.requests().len(), 1);
}

#[test]
fn host_not_on_the_list_gets_403_naming_the_reason() {
    let p = ProxyProcess::start(&["--allow-domain", "allowed.example"]);
    let err = connect_tunnel(p.port, "other.example:443", Some(&auth_header(&p)))
        .expect_err("must be refused");
    assert_eq!(err.0, 403, "{}", err.1);
    assert!(err.1.contains("not_allowlisted"), "{}", err.1);
    // Wildcards do not match the apex.
    let p = ProxyProcess::start(&["--allow-domain", "*.allowed.example"]);
    let err = connect_tunnel(p.port, "allowed.example:443", Some(&auth_header(&p)))
        .expect_err("apex refused");
    assert_eq!(err.0, 403);
}

#[test]
fn metadata_and_link_local_denied_in_every_spelling_even_when_allowlisted() {
    let spellings = [
        ("169.254.169.254:80", "denied_metadata"),
        ("2852039166:80", "denied_metadata"),
        ("0xA9FEA9FE:80", "denied_metadata"),
        ("0251.0376.0251.0376:80", "denied_metadata"),
        ("169.254.43518:80", "denied_metadata"),
        ("[::ffff:169.254.169.254]:80", "denied_metadata"),
        ("[64:ff9b::a9fe:a9fe]:80", "denied_metadata"),
        ("[fd00:ec2::254]:80", "denied_metadata"),
        ("100.100.100.200:80", "denied_metadata"),
        ("192.0.0.192:80", "denied_metadata"),
        ("metadata.google.internal:80", "denied_metadata"),
        ("METADATA.GOOGLE.INTERNAL.:80", "denied_metadata"),
        ("metadata.azure.internal:80", "denied_metadata"),
        ("169.254.1.1:80", "denied_cidr"),
        ("[fe80::1]:80", "denied_cidr"),
        ("[::ffff:169.254.1.1]:80", "denied_cidr"),
        ("0.0.0.0:80", "denied_cidr"),
        ("[::]:80", "denied_cidr"),
    ];
    let mut args = vec![
        "--allow-domain",
        "169.254.169.254",
        "--allow-domain",
        "169.254.1.1",
        "--allow-domain",
        "fe80::1",
    ];
    args.extend([
        "--allow-domain",
        "metadata.google.internal",
        "--allow-domain",
        "0.0.0.0",
    ]);
    let p = ProxyProcess::start(&args);
    let auth = auth_header(&p);
    for (target, reason) in spellings {
        let err = connect_tunnel(p.port, target, Some(&auth)).expect_err(target);
        assert_eq!(err.0, 403, "{target}: {}", err.1);
        assert!(
            err.1.contains(reason),
            "{target}: expected {reason}: {}",
            err.1
        );
        // Plain forwarding applies the same rules.
        let (status, body) = raw_request(p.port, format!("GET http://{target}/latest/meta-data/ HTTP/1.1\r\nHost: x\r\nProxy-Authorization: {auth}\r\n\r\n").as_bytes());
        assert!(status == 403 || status == 400, "{target}: {status} {body}");
    }
    let log = p.stderr();
    assert!(
        log.contains("DENY CONNECT 169.254.169.254:80 reason=denied_metadata"),
        "{log}"
    );
    assert!(
        !log.contains(p.token.as_deref().expect("token")),
        "token leaked into logs"
    );
}

#[test]
fn names_resolving_to_denied_addresses_are_denied() {
    let p = ProxyProcess::start(&[
        "--allow-domain",
        "*.rebind.test",
        "--resolve",
        "ll.rebind.test=169.254.10.10",
        "--resolve",
        "mixed.rebind.test=10.0.0.1,169.254.169.254",
        "--resolve",
        "v6.rebind.test=::ffff:169.254.169.254",
        "--resolve",
        "lo.rebind.test=127.0.0.1",
    ]);
    let auth = auth_header(&p);
    for (host, reason) in [
        ("ll.rebind.test", "denied_cidr"),
        ("mixed.rebind.test", "denied_metadata"),
        ("v6.rebind.test", "denied_metadata"),
        ("lo.rebind.test", "denied_loopback"),
    ] {
        let err = connect_tunnel(p.port, &format!("{host}:443"), Some(&auth)).expect_err(host);
        assert_eq!(err.0, 403, "{host}");
        assert!(err.1.contains(reason), "{host}: {}", err.1);
    }
}

#[test]
fn a_real_metadata_server_in_a_namespace_is_unreachable_through_the_proxy() {
    // A test host that really is 169.254.169.254, reachable directly from here.
    let ns = NetNs::new("nonomd", "169.254.169.1/16", "169.254.169.254/16")
        .expect("network namespace for the fake metadata server");
    let mut server = ns.exec(&[
        "python3",
        "-m",
        "http.server",
        "80",
        "--bind",
        "169.254.169.254",
    ]);
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect_timeout(
        &"169.254.169.254:80".parse().expect("addr"),
        Duration::from_millis(200),
    )
    .is_err()
    {
        assert!(
            Instant::now() < deadline,
            "fake metadata server did not come up"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let p = ProxyProcess::start(&[
        "--allow-domain",
        "169.254.169.254",
        "--resolve",
        "md.test=169.254.169.254",
        "--allow-domain",
        "md.test",
    ]);
    let auth = auth_header(&p);
    for target in ["169.254.169.254:80", "md.test:80", "2852039166:80"] {
        let err = connect_tunnel(p.port, target, Some(&auth)).expect_err(target);
        assert_eq!(err.0, 403, "{target}");
    }
    let (status, _) = raw_request(p.port, format!("GET http://169.254.169.254/ HTTP/1.1\r\nHost: x\r\nProxy-Authorization: {auth}\r\n\r\n").as_bytes());
    assert_eq!(status, 403);
    let _ = server.kill();
    let _ = server.wait();
}

#[test]
fn auth_407_without_or_with_wrong_token_basic_and_bearer_work() {
    let echo = EchoServer::plain();
    let p = ProxyProcess::start(&["--allow-domain", "127.0.0.1"]);
    let target = format!("127.0.0.1:{}", echo.port);
    let token = p.token.clone().expect("token");
    let err = connect_tunnel(p.port, &target, None).expect_err("no token");
    assert_eq!(err.0, 407);
    assert!(
        err.1
            .to_ascii_lowercase()
            .contains("proxy-authenticate: basic"),
        "{}",
        err.1
    );
    // One character off (never the same: a token ending in `0` gets a `1`).
    let last = if token.ends_with('0') { '1' } else { '0' };
    let wrong = format!("{}{last}", &token[..token.len() - 1]);
    assert_eq!(
        connect_tunnel(p.port, &target, Some(&basic_auth(&wrong)))
            .expect_err("wrong")
            .0,
        407
    );
    assert_eq!(
        connect_tunnel(p.port, &target, Some(&bearer(&wrong)))
            .expect_err("wrong")
            .0,
        407
    );
    assert_eq!(
        connect_tunnel(p.port, &target, Some("Basic !!notbase64"))
            .expect_err("garbage")
            .0,
        407
    );
    for auth in [basic_auth(&token), bearer(&token)] {
        let mut s = connect_tunnel(p.port, &target, Some(&auth)).expect("valid token");
        s.write_all(b"ping").expect("write");
        let mut buf = [0u8; 4];
        s.read_exact(&mut buf).expect("echo");
        assert_eq!(&buf, b"ping");
    }
    assert_eq!(token.len(), 64, "256-bit token, hex");
    let log = p.stderr();
    assert!(log.contains("reason=auth_required"), "{log}");
    assert!(!log.contains(&token), "token in log");
}

#[test]
fn user_chosen_pass_and_no_auth_on_loopback() {
    let echo = EchoServer::plain();
    let target = format!("127.0.0.1:{}", echo.port);
    let p = ProxyProcess::start(&["--allow-domain", "127.0.0.1", "--pass", "hunter2hunter2"]);
    assert_eq!(p.token.as_deref(), Some("hunter2hunter2"));
    assert!(connect_tunnel(p.port, &target, Some(&basic_auth("hunter2hunter2"))).is_ok());
    assert_eq!(
        connect_tunnel(p.port, &target, None)
            .expect_err("needs pass")
            .0,
        407
    );
    let open = ProxyProcess::start(&["--allow-domain", "127.0.0.1", "--no-auth"]);
    assert!(open.token.is_none());
    assert!(open.json["token"].is_null());
    assert!(connect_tunnel(open.port, &target, None).is_ok());
}

#[test]
fn plain_http_forwarding_rewrites_host_strips_hop_headers_and_keeps_alive() {
    let origin = HttpOrigin::start();
    let p = ProxyProcess::start(&["--allow-domain", "127.0.0.1"]);
    let auth = auth_header(&p);
    let mut s = TcpStream::connect(("127.0.0.1", p.port)).expect("connect");
    s.set_read_timeout(Some(T)).expect("timeout");
    for i in 0..3 {
        let req = format!(
            "GET http://127.0.0.1:{}/item/{i}?q=1 HTTP/1.1\r\nHost: evil.example\r\nProxy-Authorization: {auth}\r\nConnection: keep-alive, X-Hop\r\nX-Hop: secret\r\nProxy-Connection: keep-alive\r\nX-Keep: yes\r\n\r\n",
            origin.port
        );
        s.write_all(req.as_bytes()).expect("write");
        let body = read_response(&mut s);
        assert!(body.starts_with("HTTP/1.1 200"), "{body}");
    }
    let reqs = origin.requests();
    assert_eq!(reqs.len(), 3);
    for r in &reqs {
        assert_eq!(
            r.header("host"),
            Some(format!("127.0.0.1:{}", origin.port).as_str())
        );
        assert_eq!(r.header("x-keep"), Some("yes"));
        assert!(r.header("proxy-authorization").is_none());
        assert!(r.header("x-hop").is_none());
        assert!(r.header("proxy-connection").is_none());
    }
    assert_eq!(reqs[2].path, "/item/2?q=1");
    assert_eq!(
        origin.accepted(),
        1,
        "upstream connection was not kept alive"
    );
    // Redirects are handed to the client, not followed.
    let (status, head) = raw_request(p.port, format!("GET http://127.0.0.1:{}/redirect HTTP/1.1\r\nHost: x\r\nProxy-Authorization: {auth}\r\n\r\n", origin.port).as_bytes());
    assert_eq!(status, 302, "{head}");
    assert!(head
        .to_ascii_lowercase()
        .contains("location: http://example.invalid/elsewhere"));
    // Filtered like CONNECT.
    let (status, body) = raw_request(p.port, format!("GET http://not-allowed.example/ HTTP/1.1\r\nHost: 127.0.0.1\r\nProxy-Authorization: {auth}\r\n\r\n").as_bytes());
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("not_allowlisted"));
}

#[test]
fn forwarding_sends_the_checked_host_and_never_relays_an_origins_407_or_101() {
    let origin = HttpOrigin::start();
    let p = ProxyProcess::start(&["--allow-domain", "127.0.0.1"]);
    let auth = auth_header(&p);
    let get = |target: &str| {
        raw_request(
            p.port,
            format!("GET {target} HTTP/1.1\r\nProxy-Authorization: {auth}\r\n\r\n").as_bytes(),
        )
    };
    // Other spellings of 127.0.0.1 reach the origin as the address they were checked as.
    for spelling in ["0x7f.1", "2130706433", "127.0.0.1.", "0177.0.0.1"] {
        let (status, body) = get(&format!("http://{spelling}:{}/spelled", origin.port));
        assert_eq!(status, 200, "{spelling}: {body}");
        let last = origin.requests().pop().expect("request");
        assert_eq!(
            last.header("host"),
            Some(format!("127.0.0.1:{}", origin.port).as_str()),
            "{spelling}"
        );
    }
    // An empty port is the default one (RFC 3986), not a refusal.
    let (status, body) = get("http://127.0.0.1:/empty-port");
    assert_ne!(status, 400, "{body}");
    // An empty port is the default one (RFC 3986), not a refusal.
    let (status, body) = get("http://127.0.0.1:/empty-port");
    assert_ne!(status, 400, "{body}");
    // An empty path with a query is `/` plus the query.
    let (status, _) = get(&format!("http://127.0.0.1:{}?x=1", origin.port));
    assert_eq!(status, 200);
    assert_eq!(origin.requests().pop().expect("request").path, "/?x=1");
    // 407 means nono's own credentials; an origin's 407 or unasked 101 becomes a 502.
    let (status, head) = get(&format!("http://127.0.0.1:{}/proxy-auth", origin.port));
    assert_eq!(status, 502, "{head}");
    assert!(head.contains("origin_status_407"), "{head}");
    assert!(
        !head.to_ascii_lowercase().contains("proxy-authenticate"),
        "{head}"
    );
    let (status, head) = get(&format!("http://127.0.0.1:{}/switch", origin.port));
    assert_eq!(status, 502, "{head}");
    assert!(head.contains("origin_switched_protocols"), "{head}");
}

/// Non-loopback IPv4 addresses of this machine's interfaces.
fn interface_ipv4s() -> Vec<std::net::Ipv4Addr> {
    nix::ifaddrs::getifaddrs()
        .expect("getifaddrs")
        .filter_map(|ifa| ifa.address?.as_sockaddr_in().map(|a| a.ip()))
        .filter(|ip| !ip.is_loopback())
        .collect()
}

#[test]
fn a_proxy_on_every_interface_refuses_to_tunnel_to_itself() {
    let locals = interface_ipv4s();
    let Some(local) = locals.first() else {
        eprintln!("no non-loopback interface address; nothing to check");
        return;
    };
    let p = ProxyProcess::start(&["--listen", "0.0.0.0", "--allow-domain", &local.to_string()]);
    let auth = auth_header(&p);
    for target in [
        format!("{local}:{}", p.port),
        format!("[::ffff:{local}]:{}", p.port),
    ] {
        let (status, body) = raw_request(
            p.port,
            format!("CONNECT {target} HTTP/1.1\r\nProxy-Authorization: {auth}\r\n\r\n").as_bytes(),
        );
        assert_eq!(status, 403, "{target}: {body}");
        assert!(body.contains("denied_self"), "{target}: {body}");
    }
}

fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0)
}

#[test]
fn a_flood_over_max_connections_does_not_pile_up_descriptors() {
    let p = ProxyProcess::start(&["--max-connections", "1"]);
    let held = TcpStream::connect(("127.0.0.1", p.port)).expect("connect");
    std::thread::sleep(Duration::from_millis(100));
    let base = open_fds(p.pid());
    let flood: Vec<TcpStream> = (0..300)
        .filter_map(|_| TcpStream::connect(("127.0.0.1", p.port)).ok())
        .collect();
    std::thread::sleep(Duration::from_millis(200));
    let during = open_fds(p.pid());
    assert!(
        during <= base + 64 + 4,
        "{during} descriptors open with {} refused clients (base {base})",
        flood.len()
    );
    drop(flood);
    drop(held);
}

#[test]
fn max_connections_is_enforced_and_slots_come_back() {
    let echo = EchoServer::plain();
    let p = ProxyProcess::start(&["--allow-domain", "127.0.0.1", "--max-connections", "2"]);
    let auth = auth_header(&p);
    let target = format!("127.0.0.1:{}", echo.port);
    let a = connect_tunnel(p.port, &target, Some(&auth)).expect("first");
    let b = connect_tunnel(p.port, &target, Some(&auth)).expect("second");
    let err = connect_tunnel(p.port, &target, Some(&auth)).expect_err("third is over the cap");
    assert_eq!(err.0, 503, "{}", err.1);
    drop(a);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match connect_tunnel(p.port, &target, Some(&auth)) {
            Ok(_) => break,
            Err((503, _)) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(50))
            }
            Err(e) => panic!("slot did not come back: {e:?}"),
        }
    }
    drop(b);
}

#[test]
fn malformed_and_oversized_requests_get_400_and_431_and_serving_continues() {
    let echo = EchoServer::plain();
    let p = ProxyProcess::start(&["--allow-domain", "127.0.0.1"]);
    let auth = auth_header(&p);
    assert_eq!(raw_request(p.port, b"THIS IS NOT HTTP\r\n\r\n").0, 400);
    assert_eq!(
        raw_request(p.port, b"GET http://a b/ HTTP/1.1\r\n\r\n").0,
        400
    );
    assert_eq!(
        raw_request(
            p.port,
            format!("CONNECT bad_host!:443 HTTP/1.1\r\nProxy-Authorization: {auth}\r\n\r\n")
                .as_bytes()
        )
        .0,
        400
    );
    assert_eq!(
        raw_request(
            p.port,
            format!("CONNECT host:0 HTTP/1.1\r\nProxy-Authorization: {auth}\r\n\r\n").as_bytes()
        )
        .0,
        400
    );
    let big = format!(
        "GET http://127.0.0.1/ HTTP/1.1\r\nX-Big: {}\r\n\r\n",
        "a".repeat(70_000)
    );
    assert_eq!(raw_request(p.port, big.as_bytes()).0, 431);
    let huge = format!(
        "GET http://127.0.0.1/ HTTP/1.1\r\nX-Big: {}\r\n\r\n",
        "a".repeat(400_000)
    );
    assert_eq!(raw_request(p.port, huge.as_bytes()).0, 431);
    // Still serving.
    assert!(connect_tunnel(p.port, &format!("127.0.0.1:{}", echo.port), Some(&auth)).is_ok());
}

/// A request head of `total` bytes on the wire, padded in one header (`ows` spaces before
/// its value).
fn head_of(total: usize, ows: usize) -> Vec<u8> {
    let start = "GET http://127.0.0.1/ HTTP/1.1\r\nX-Pad:";
    let end = "\r\n\r\n";
    let fill = total - start.len() - end.len() - ows;
    format!("{start}{}{}{end}", " ".repeat(ows), "a".repeat(fill)).into_bytes()
}

#[test]
fn the_header_limit_counts_every_byte_of_the_head_and_refusals_are_audited() {
    let p = ProxyProcess::start(&["--allow-domain", "127.0.0.1"]);
    // 64 KiB is the default limit: without a token a head within it is answered 407.
    assert_eq!(raw_request(p.port, &head_of(65_536, 0)).0, 407);
    assert_eq!(raw_request(p.port, &head_of(65_537, 0)).0, 431);
    assert_eq!(raw_request(p.port, &head_of(65_538, 0)).0, 431);
    // Whitespace the parser drops is not counted exactly; hyper's buffer bounds it (about
    // twice the limit).
    assert_eq!(raw_request(p.port, &head_of(140_000, 75_000)).0, 431);
    assert_eq!(raw_request(p.port, b"NOT HTTP AT ALL\r\n\r\n").0, 400);
    let deadline = Instant::now() + Duration::from_secs(5);
    while !(p.stderr().contains("reason=header_too_large")
        && p.stderr().contains("reason=malformed_request"))
    {
        assert!(Instant::now() < deadline, "no audit lines:\n{}", p.stderr());
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn ports_outside_1_to_65535_are_malformed_never_the_default() {
    let echo = EchoServer::plain();
    let p = ProxyProcess::start(&["--allow-domain", "127.0.0.1"]);
    let auth = auth_header(&p);
    for bad in ["99999", "65979", "-1", "1e3", "+443", "0"] {
        let connect =
            format!("CONNECT 127.0.0.1:{bad} HTTP/1.1\r\nProxy-Authorization: {auth}\r\n\r\n");
        assert_eq!(
            raw_request(p.port, connect.as_bytes()).0,
            400,
            "CONNECT :{bad}"
        );
        let get =
            format!("GET http://127.0.0.1:{bad}/a HTTP/1.1\r\nProxy-Authorization: {auth}\r\n\r\n");
        assert_eq!(raw_request(p.port, get.as_bytes()).0, 400, "GET :{bad}");
    }
    // Still serving.
    assert!(connect_tunnel(p.port, &format!("127.0.0.1:{}", echo.port), Some(&auth)).is_ok());
}

#[test]
fn slowloris_client_is_dropped_after_the_header_timeout() {
    let p = ProxyProcess::start(&["--header-timeout", "1", "--max-connections", "1"]);
    let mut slow = TcpStream::connect(("127.0.0.1", p.port)).expect("connect");
    slow.write_all(b"GET http://a").expect("partial head");
    slow.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let start = Instant::now();
    let mut buf = [0u8; 256];
    let _ = slow.read(&mut buf);
    assert!(
        start.elapsed() < Duration::from_secs(4),
        "slow client held its slot for {:?}",
        start.elapsed()
    );
    // The only slot is free again.
    let (status, _) = raw_request(p.port, b"GET http://x/ HTTP/1.1\r\n\r\n");
    assert_eq!(status, 407);
}

#[test]
fn unreachable_upstream_502_and_connect_timeout_504() {
    // A port with nothing listening.
    let closed = TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let p = ProxyProcess::start(&["--allow-domain", "127.0.0.1", "--connect-timeout", "1"]);
    let auth = auth_header(&p);
    let err = connect_tunnel(p.port, &format!("127.0.0.1:{closed}"), Some(&auth))
        .expect_err("closed port");
    assert_eq!(err.0, 502, "{}", err.1);
    // A listener whose accept queue is full drops SYNs: the connect hangs until our timeout.
    let full = socket_with_full_backlog();
    let start = Instant::now();
    let err = connect_tunnel(p.port, &format!("127.0.0.1:{}", full.port), Some(&auth))
        .expect_err("hangs");
    assert_eq!(err.0, 504, "{}", err.1);
    assert!(start.elapsed() < Duration::from_secs(5));
    drop(full);
}

/// A listener (in a helper process) with backlog 0 whose queue is already full, so the kernel
/// drops new SYNs and a connect hangs. Killed on drop.
struct FullBacklog {
    port: u16,
    child: std::process::Child,
}

impl Drop for FullBacklog {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn socket_with_full_backlog() -> FullBacklog {
    let script = "import socket,time\ns=socket.socket(); s.bind(('127.0.0.1',0)); s.listen(0)\nc=[]\nfor i in range(8):\n  x=socket.socket(); x.setblocking(False)\n  try: x.connect(s.getsockname())\n  except BlockingIOError: pass\n  c.append(x)\ntime.sleep(0.3)\nprint(s.getsockname()[1], flush=True)\ntime.sleep(60)";
    let mut child = Command::new("python3")
        .args(["-c", script])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("python3");
    let mut stdout = child.stdout.take().expect("stdout");
    let mut line = String::new();
    let mut b = [0u8; 1];
    while stdout.read(&mut b).expect("read") == 1 && b[0] != b'\n' {
        line.push(char::from(b[0]));
    }
    FullBacklog {
        port: line.trim().parse().expect("port"),
        child,
    }
}

#[test]
fn fail_secure_refusals_exit_2_with_one_line() {
    for args in [
        vec!["proxy", "--no-auth", "--listen", "0.0.0.0"],
        vec!["proxy", "--pass", ""],
        vec!["proxy", "--no-auth", "--pass", "x"],
        vec!["proxy", "--allow-domain", "http://bad.example/path"],
        vec!["proxy", "--allow-domain", "https://bad.example"],
        vec!["proxy", "--allow-domain", "*.com"],
    ] {
        let (code, stdout, stderr) = run_nono(&args, T);
        assert_eq!(code, 2, "{args:?}: {stderr}");
        assert!(
            stdout.is_empty(),
            "{args:?} printed connection details: {stdout}"
        );
        assert_eq!(stderr.trim().lines().count(), 1, "{args:?}: {stderr}");
    }
    let (_, _, stderr) = run_nono(&["proxy", "--allow-domain", "*.com"], T);
    assert!(stderr.contains("`*.com`"), "{stderr}");
}

#[test]
fn json_line_has_the_connection_details_and_sigterm_exits_0() {
    let p = ProxyProcess::start(&["--allow-domain", "api.example.com"]);
    let j = &p.json;
    let token = j["token"].as_str().expect("token");
    assert_eq!(j["port"].as_u64(), Some(u64::from(p.port)));
    assert_eq!(
        j["listen"].as_str(),
        Some(format!("127.0.0.1:{}", p.port).as_str())
    );
    assert_eq!(
        j["url"].as_str(),
        Some(format!("http://nono:{token}@127.0.0.1:{}", p.port).as_str())
    );
    for k in [
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "NO_PROXY",
        "http_proxy",
        "https_proxy",
        "no_proxy",
        "NONO_PROXY_TOKEN",
    ] {
        assert!(j["env"][k].is_string(), "env lacks {k}: {j}");
    }
    assert_eq!(j["env"]["NONO_PROXY_TOKEN"].as_str(), Some(token));
    let status = p.terminate();
    assert_eq!(status.code(), Some(0));
}

#[test]
fn shutdown_is_prompt_when_idle_waits_for_open_tunnels_and_every_stop_signal_exits_0() {
    for signal in ["TERM", "INT", "HUP"] {
        let p = ProxyProcess::start(&[]);
        let (status, took) = p.signal_and_wait(signal);
        assert_eq!(status.code(), Some(0), "SIG{signal}");
        assert!(
            took < Duration::from_secs(2),
            "SIG{signal} idle exit took {took:?}"
        );
    }
    // An open tunnel keeps it up to the grace period (5 s), then it is cut and nono exits 0.
    let echo = EchoServer::plain();
    let p = ProxyProcess::start(&["--allow-domain", "127.0.0.1"]);
    let auth = auth_header(&p);
    let mut tunnel =
        connect_tunnel(p.port, &format!("127.0.0.1:{}", echo.port), Some(&auth)).expect("tunnel");
    let (status, took) = p.signal_and_wait("TERM");
    assert_eq!(status.code(), Some(0));
    assert!(
        took >= Duration::from_secs(4),
        "did not wait for the tunnel: {took:?}"
    );
    tunnel.set_read_timeout(Some(T)).expect("timeout");
    let mut b = [0u8; 1];
    assert!(
        matches!(tunnel.read(&mut b), Ok(0) | Err(_)),
        "tunnel still open"
    );
}

#[test]
fn an_ignored_sighup_stays_ignored() {
    // As under `nohup`: SIGHUP ignored before exec.
    let mut sh = Command::new("sh");
    sh.arg("-c")
        .arg("trap '' HUP; exec \"$0\" \"$@\"")
        .arg(support::nono_bin());
    let p = ProxyProcess::start_command(sh, &[]);
    let pid = p.pid().to_string();
    assert!(Command::new("kill")
        .args(["-HUP", &pid])
        .status()
        .expect("kill")
        .success());
    std::thread::sleep(Duration::from_millis(300));
    let alive = Command::new("kill")
        .args(["-0", &pid])
        .status()
        .expect("kill -0");
    assert!(
        alive.success(),
        "SIGHUP stopped a proxy that was started with it ignored"
    );
    assert_eq!(p.terminate().code(), Some(0));
}

#[test]
fn secrets_in_targets_and_queries_never_reach_the_log() {
    let origin = HttpOrigin::start();
    let p = ProxyProcess::start(&["--allow-domain", "127.0.0.1"]);
    let token = p.token.clone().expect("token");
    let auth = auth_header(&p);
    raw_request(
        p.port,
        format!(
            "GET http://nono:{token}@127.0.0.1:{}/x HTTP/1.1\r\n\r\n",
            origin.port
        )
        .as_bytes(),
    );
    raw_request(
        p.port,
        format!(
            "CONNECT nono:{token}@127.0.0.1:443 HTTP/1.1\r\nProxy-Authorization: {auth}\r\n\r\n"
        )
        .as_bytes(),
    );
    let (status, _) = raw_request(
        p.port,
        format!(
            "GET http://127.0.0.1:{}/x?api_key=QUERYSECRET HTTP/1.1\r\nProxy-Authorization: {auth}\r\n\r\n",
            origin.port
        )
        .as_bytes(),
    );
    assert_eq!(status, 200);
    let deadline = Instant::now() + Duration::from_secs(5);
    while p.stderr().matches("reason=").count() < 2 || !p.stderr().contains("ALLOW") {
        assert!(
            Instant::now() < deadline,
            "decisions not logged:\n{}",
            p.stderr()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let log = p.stderr();
    assert!(!log.contains(&token), "token in the log:\n{log}");
    assert!(!log.contains("QUERYSECRET"), "query in the log:\n{log}");
    assert!(log.contains("***@127.0.0.1"), "{log}");
}

#[test]
fn a_pass_with_url_and_shell_metacharacters_gives_a_working_url_and_safe_exports() {
    let origin = HttpOrigin::start();
    let pass = "p@ss w/#'q%";
    let p = ProxyProcess::start(&["--allow-domain", "127.0.0.1", "--pass", pass]);
    // curl takes the printed URL as it is.
    let out = Command::new("curl")
        .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "-x", &p.url])
        .arg(format!("http://127.0.0.1:{}/via-url", origin.port))
        .output()
        .expect("run curl");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "200", "url {}", p.url);
    // The text output's export lines, run by a shell, give back the secret unchanged.
    let mut child = support::nono_command()
        .args(["proxy", "--allow-domain", "127.0.0.1", "--pass", pass])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start nono proxy");
    let stdout = child.stdout.take().expect("stdout");
    let mut exports = String::new();
    for line in std::io::BufRead::lines(std::io::BufReader::new(stdout)) {
        let line = line.expect("line");
        if line.starts_with("export ") {
            exports.push_str(&line);
            exports.push('\n');
        }
        if line.starts_with("export NONO_PROXY_TOKEN=") {
            break;
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    let shell = Command::new("sh")
        .arg("-c")
        .arg(format!("{exports}printf %s \"$NONO_PROXY_TOKEN\""))
        .output()
        .expect("run sh");
    assert_eq!(
        String::from_utf8_lossy(&shell.stdout),
        pass,
        "exports:\n{exports}"
    );
}

/// This machine's addresses beyond loopback and link-local (IPv6 ones only with `v6`).
fn own_addresses(v6: bool) -> Vec<std::net::IpAddr> {
    use std::net::IpAddr;
    let mut out: Vec<IpAddr> = nix::ifaddrs::getifaddrs()
        .expect("getifaddrs")
        .filter_map(|ifa| {
            let a = ifa.address?;
            a.as_sockaddr_in()
                .map(|v4| IpAddr::V4(v4.ip()))
                .or_else(|| a.as_sockaddr_in6().map(|v6| IpAddr::V6(v6.ip())))
        })
        .filter(|ip| match ip {
            IpAddr::V4(v4) => !v4.is_loopback() && !v4.is_link_local(),
            IpAddr::V6(a) => v6 && !a.is_loopback() && (a.segments()[0] & 0xffc0) != 0xfe80,
        })
        .collect();
    out.sort();
    out.dedup();
    out
}

/// A process killed (and reaped) on drop, so a failing test leaves nothing running.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A host that is not this machine: a server in a network namespace at `10.231.77.2:8000`
/// that sends `far host` to each client. Traffic stays on the veth pair.
fn far_host() -> (NetNs, KillOnDrop, String) {
    let ns = NetNs::new("nonofar", "10.231.77.1/24", "10.231.77.2/24")
        .expect("network namespace for a test host other than this machine");
    let script = format!(
        "import socket\n\
         s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n\
         s.bind(('{}', 8000)); s.listen()\n\
         while True:\n\
         \x20   c, _ = s.accept(); c.sendall(b'far host'); c.close()\n",
        ns.ns_addr
    );
    let server = KillOnDrop(
        ns.command(&["python3", "-c", &script])
            .stdin(std::process::Stdio::null())
            .spawn()
            .expect("spawn python3 in the namespace (install python3)"),
    );
    let target = format!("{}:8000", ns.ns_addr);
    let addr: std::net::SocketAddr = target.parse().expect("addr");
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
        assert!(
            Instant::now() < deadline,
            "the far test host did not come up"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    (ns, server, target)
}

/// Opens a tunnel to `target` and reads what the server there sends first.
fn banner_through(p: &ProxyProcess, target: &str) -> String {
    let mut tunnel = connect_tunnel(p.port, target, Some(&auth_header(p)))
        .unwrap_or_else(|e| panic!("{target}: {e:?}"));
    tunnel.set_read_timeout(Some(T)).expect("timeout");
    let mut got = Vec::new();
    let _ = tunnel.read_to_end(&mut got);
    String::from_utf8_lossy(&got).into_owned()
}

/// Regression (issue "Containment", item 6): loopback was refused unless allowed by name,
/// but a service listening on every interface was reachable through this machine's own
/// address — under an allow-all policy, or by a wildcard name resolving to it — on every port
/// but the proxy's. Such addresses now count as local exactly like loopback.
#[test]
fn bug_a_service_on_every_interface_was_reachable_through_this_machines_address() {
    let (service, dual_stack) = EchoServer::plain_on_every_interface();
    let locals = own_addresses(dual_stack);
    if locals.is_empty() {
        eprintln!(
            "SKIPPED: getifaddrs lists no address of this machine beyond loopback and \
             link-local, so there is no interface address to reach a service through"
        );
        return;
    }
    let (_ns, _far_server, far) = far_host();
    let mut pins = vec![
        "--resolve".to_string(),
        format!("me.nono.test={}", locals[0]),
        "--resolve".to_string(),
        format!("far.nono.test={}", far.split(':').next().expect("host")),
    ];
    let allow_all = ProxyProcess::start(&pins.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(
        allow_all.json["allowed_hosts"],
        serde_json::json!([]),
        "allow-all policy"
    );
    pins.extend(["--allow-domain".to_string(), "*.nono.test".to_string()]);
    let wildcard = ProxyProcess::start(&pins.iter().map(String::as_str).collect::<Vec<_>>());
    for p in [&allow_all, &wildcard] {
        let auth = auth_header(p);
        let mut targets: Vec<String> = locals
            .iter()
            .map(|ip| std::net::SocketAddr::new(*ip, service.port).to_string())
            .collect();
        if let Some(std::net::IpAddr::V4(v4)) = locals.iter().find(|ip| ip.is_ipv4()) {
            targets.push(format!("[::ffff:{v4}]:{}", service.port));
        }
        targets.push(format!("me.nono.test:{}", service.port));
        for target in &targets {
            if p.json["allowed_hosts"] != serde_json::json!([]) && !target.starts_with("me.") {
                continue; // literals are not on the wildcard's list anyway
            }
            let err = connect_tunnel(p.port, target, Some(&auth)).expect_err(target);
            assert_eq!(err.0, 403, "{target}: {}", err.1);
            assert!(
                err.1.contains("denied_local_address"),
                "{target}: {}",
                err.1
            );
            let (status, body) = raw_request(
                p.port,
                format!("GET http://{target}/ HTTP/1.1\r\nHost: x\r\nProxy-Authorization: {auth}\r\n\r\n")
                    .as_bytes(),
            );
            assert_eq!(status, 403, "GET {target}: {body}");
            assert!(
                body.contains("denied_local_address"),
                "GET {target}: {body}"
            );
        }
        // Another host is still reached, by address and by name.
        assert_eq!(
            banner_through(p, &far.replace("10.231.77.2", "far.nono.test")),
            "far host"
        );
        if p.json["allowed_hosts"] == serde_json::json!([]) {
            assert_eq!(banner_through(p, &far), "far host");
        }
        let log = p.stderr();
        assert!(log.contains("reason=denied_local_address"), "{log}");
    }
    assert_eq!(service.accepted(), 0, "the local service was reached");
    // Allowed by its exact address or name, like loopback, it is reachable.
    let own = locals[0].to_string();
    let exact = ProxyProcess::start(&[
        "--allow-domain",
        &own,
        "--allow-domain",
        "me.nono.test",
        "--resolve",
        &format!("me.nono.test={own}"),
    ]);
    for target in [
        std::net::SocketAddr::new(locals[0], service.port).to_string(),
        format!("me.nono.test:{}", service.port),
    ] {
        let mut tunnel = connect_tunnel(exact.port, &target, Some(&auth_header(&exact)))
            .unwrap_or_else(|e| panic!("{target}: {e:?}"));
        tunnel.set_read_timeout(Some(T)).expect("timeout");
        tunnel.write_all(b"ping").expect("write");
        let mut got = [0u8; 4];
        tunnel.read_exact(&mut got).expect("echo");
        assert_eq!(&got, b"ping");
    }
}

/// Regression (issue "Containment", item 7): connection slots were taken before the token
/// was checked, so idle connections without one (256 by default) kept authenticated clients
/// at 503 until the header timeout, and reconnecting sustained it. Unauthenticated
/// connections now have their own small pool and a short deadline.
#[test]
fn bug_idle_connections_without_a_token_starved_authenticated_clients() {
    let echo = EchoServer::plain();
    let origin = HttpOrigin::start();
    // A long header timeout, so only the unauthenticated deadline can close the idle ones.
    let p = ProxyProcess::start(&["--allow-domain", "127.0.0.1", "--header-timeout", "120"]);
    let auth = auth_header(&p);
    let mut idle: Vec<TcpStream> = (0..300)
        .map(|i| {
            let mut s = TcpStream::connect(("127.0.0.1", p.port)).expect("connect");
            if i % 2 == 1 {
                s.write_all(b"GET http://127.0.0.1/ HTTP/1.1\r\nHost: 127.0")
                    .expect("partial head");
            }
            s
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    let started = Instant::now();
    let mut tunnel = connect_tunnel(p.port, &format!("127.0.0.1:{}", echo.port), Some(&auth))
        .expect("an authenticated CONNECT gets through 300 idle connections");
    let mut forward = TcpStream::connect(("127.0.0.1", p.port)).expect("connect");
    forward.set_read_timeout(Some(T)).expect("timeout");
    let get = format!(
        "GET http://127.0.0.1:{}/a HTTP/1.1\r\nHost: x\r\nProxy-Authorization: {auth}\r\n\r\n",
        origin.port
    );
    forward.write_all(get.as_bytes()).expect("write");
    let first = read_response(&mut forward);
    assert!(first.starts_with("HTTP/1.1 200"), "{first}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "authenticated requests took {:?} behind idle connections",
        started.elapsed()
    );
    // Every idle connection is closed, long before the 120 s header timeout.
    let deadline = Instant::now() + Duration::from_secs(30);
    for (i, s) in idle.iter_mut().enumerate() {
        let left = deadline.saturating_duration_since(Instant::now());
        s.set_read_timeout(Some(left.max(Duration::from_millis(1))))
            .expect("timeout");
        let mut buf = [0u8; 64];
        match s.read(&mut buf) {
            Ok(0) => {}
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
            other => panic!("idle connection {i} still open after 30 s: {other:?}"),
        }
    }
    // Authenticated connections outlive the unauthenticated deadline: the tunnel and the
    // kept-alive forwarding connection still work.
    tunnel.set_read_timeout(Some(T)).expect("timeout");
    tunnel.write_all(b"still here").expect("write");
    let mut got = [0u8; 10];
    tunnel.read_exact(&mut got).expect("echo");
    assert_eq!(&got, b"still here");
    forward.write_all(get.as_bytes()).expect("write");
    let second = read_response(&mut forward);
    assert!(second.starts_with("HTTP/1.1 200"), "{second}");
    // Reconnecting idle clients cannot hold the pool either.
    let _again: Vec<TcpStream> = (0..300)
        .filter_map(|_| TcpStream::connect(("127.0.0.1", p.port)).ok())
        .collect();
    let (status, body) = raw_request(p.port, get.as_bytes());
    assert_eq!(status, 200, "{body}");
}

/// Reads one response with a Content-Length body from a kept-alive stream.
fn read_response(s: &mut TcpStream) -> String {
    let mut buf = Vec::new();
    let mut b = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        assert_eq!(s.read(&mut b).expect("read head"), 1, "connection closed");
        buf.push(b[0]);
    }
    let head = String::from_utf8_lossy(&buf).to_ascii_lowercase();
    let len: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .map(|v| v.trim().parse().expect("length"))
        .unwrap_or(0);
    let mut body = vec![0u8; len];
    s.read_exact(&mut body).expect("body");
    buf.extend_from_slice(&body);
    String::from_utf8_lossy(&buf).into_owned()
}

#[test]
fn a_deny_wins_over_every_allow() {
    let p = ProxyProcess::start(&[
        "--network-profile",
        "developer",
        "--allow-domain",
        "*.example.com",
        "--deny-domain",
        "api.github.com",
        "--deny-domain",
        "*.bad.example.com",
        "--deny-domain",
        "ok.example.com:8443",
    ]);
    let auth = auth_header(&p);
    for target in [
        "api.github.com:443",
        "x.bad.example.com:443",
        "ok.example.com:8443",
    ] {
        let (status, body) = connect_tunnel(p.port, target, Some(&auth)).expect_err(target);
        assert_eq!(status, 403, "{target}: {body}");
        assert!(body.contains("denied_domain"), "{target}: {body}");
    }
    // Not denied: the allow applies (and the name then fails to resolve offline).
    let (status, body) =
        connect_tunnel(p.port, "ok.example.com:443", Some(&auth)).expect_err("no such host here");
    assert_ne!(status, 403, "{body}");
    let (status, body) = raw_request(
        p.port,
        format!("GET http://api.github.com/ HTTP/1.1\r\nHost: api.github.com\r\nProxy-Authorization: {auth}\r\n\r\n").as_bytes(),
    );
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("denied_domain"), "{body}");
}

#[test]
fn a_deny_that_a_direct_entry_would_bypass_is_refused_at_start() {
    let (code, out, err) = run_nono(
        &[
            "proxy",
            "--allow-domain",
            "db.corp.example:5432",
            "--deny-domain",
            "*.corp.example",
        ],
        T,
    );
    assert_eq!(code, 2, "{out}{err}");
    assert!(
        err.contains("bypasses the proxy") && err.contains("*.corp.example"),
        "{err}"
    );
    let (code, _, err) = run_nono(&["proxy", "--deny-domain", "https://x.example/a"], T);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("deny entry is a host pattern"), "{err}");
}
