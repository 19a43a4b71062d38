//! Upstream (corporate) proxy chaining, end to end in-process: nono's proxy in front of a real
//! tinyproxy (started by the test) or of a scripted fake upstream, with origins on 127.0.0.1.
//!
//! Tests that use tinyproxy fail, naming the package, when it is not installed.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nono_proxy::dns::{StaticResolver, SystemResolver};
use nono_proxy::upstream::check_reachable;
use nono_proxy::{AuthConfig, ProxyConfig, ProxyHandle, UpstreamProxyConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Upper bound on any single test step, so a bug hangs nothing.
const STEP: Duration = Duration::from_secs(20);

static NEXT_DIR: AtomicUsize = AtomicUsize::new(0);

/// A tinyproxy process with its own config and log in a temp dir; killed on drop.
struct Tinyproxy {
    port: u16,
    dir: PathBuf,
    child: Child,
}

impl Tinyproxy {
    /// Starts tinyproxy on 127.0.0.1, allowing CONNECT to `connect_ports` only, optionally
    /// requiring Basic credentials.
    fn start(auth: Option<(&str, &str)>, connect_ports: &[u16]) -> Tinyproxy {
        let dir = std::env::temp_dir().join(format!(
            "nono-upstream-{}-{}",
            std::process::id(),
            NEXT_DIR.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).expect("create temp dir");
        let port = free_port();
        let mut conf = format!(
            "Listen 127.0.0.1\nPort {port}\nTimeout 30\nMaxClients 50\nLogFile \"{}\"\nLogLevel Info\nPidFile \"{}\"\n",
            dir.join("tinyproxy.log").display(),
            dir.join("tinyproxy.pid").display()
        );
        // Without ConnectPort lines tinyproxy allows every port; list them to be explicit.
        for p in connect_ports {
            conf.push_str(&format!("ConnectPort {p}\n"));
        }
        if let Some((user, pass)) = auth {
            conf.push_str(&format!("BasicAuth {user} {pass}\n"));
        }
        let conf_path = dir.join("tinyproxy.conf");
        std::fs::write(&conf_path, conf).expect("write tinyproxy config");
        let child = Command::new("tinyproxy")
            .arg("-d")
            .arg("-c")
            .arg(&conf_path)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("tinyproxy is required for the upstream proxy tests and could not be started ({e}); install it with `apt-get install -y tinyproxy`")
            });
        let tp = Tinyproxy { port, dir, child };
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "tinyproxy did not listen on {port}; log:\n{}",
                tp.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        tp
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("tinyproxy.log")).unwrap_or_default()
    }

    fn spec(&self, userinfo: Option<&str>) -> String {
        match userinfo {
            Some(u) => format!("http://{u}@127.0.0.1:{}", self.port),
            None => format!("127.0.0.1:{}", self.port),
        }
    }
}

impl Drop for Tinyproxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

/// Starts nono's proxy (no client auth, loopback) with an allowlist, pinned names and an
/// upstream proxy.
async fn nono(
    allowed: &[&str],
    pins: &[(&str, &str)],
    upstream: Option<UpstreamProxyConfig>,
) -> ProxyHandle {
    let pinned: HashMap<String, Vec<IpAddr>> = pins
        .iter()
        .map(|(n, a)| (n.to_string(), vec![a.parse().expect("pin address")]))
        .collect();
    let cfg = ProxyConfig {
        allowed_hosts: allowed.iter().map(|s| s.to_string()).collect(),
        auth: AuthConfig::Disabled,
        resolver: Arc::new(StaticResolver::new(pinned, Arc::new(SystemResolver))),
        upstream_proxy: upstream,
        ..ProxyConfig::default()
    };
    nono_proxy::start(cfg).await.expect("proxy starts")
}

fn upstream(spec: &str, bypass: &[&str]) -> UpstreamProxyConfig {
    UpstreamProxyConfig::parse(spec, bypass).expect("upstream spec parses")
}

/// A TCP echo server on 127.0.0.1.
async fn echo_server() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = l.local_addr().expect("addr").port();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            tokio::spawn(async move {
                let (mut r, mut w) = s.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
            });
        }
    });
    port
}

/// A keep-alive HTTP origin on 127.0.0.1 that answers every GET with its request line and
/// records each request head.
async fn http_origin() -> (u16, Arc<Mutex<Vec<String>>>) {
    let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = l.local_addr().expect("addr").port();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let seen2 = seen.clone();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            let seen = seen2.clone();
            tokio::spawn(async move {
                loop {
                    let head = read_head(&mut s).await;
                    if head.is_empty() {
                        return;
                    }
                    let line = head.lines().next().unwrap_or("").to_string();
                    seen.lock().expect("lock").push(head);
                    let body = format!("origin saw: {line}");
                    let resp = format!(
                        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{body}",
                        body.len()
                    );
                    if s.write_all(resp.as_bytes()).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    (port, seen)
}

/// A scripted upstream proxy: records each request head, sends `reply` (never answers when
/// `None`), then echoes.
async fn fake_upstream(reply: Option<Vec<u8>>) -> (u16, Arc<Mutex<Vec<String>>>) {
    let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = l.local_addr().expect("addr").port();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let seen2 = seen.clone();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            let seen = seen2.clone();
            let reply = reply.clone();
            tokio::spawn(async move {
                let head = read_head(&mut s).await;
                seen.lock().expect("lock").push(head);
                match reply {
                    Some(r) => {
                        let _ = s.write_all(&r).await;
                        let (mut rd, mut wr) = s.split();
                        let _ = tokio::io::copy(&mut rd, &mut wr).await;
                    }
                    None => tokio::time::sleep(Duration::from_secs(3600)).await,
                }
            });
        }
    });
    (port, seen)
}

async fn read_head(s: &mut TcpStream) -> String {
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match s.read(&mut b).await {
            Ok(1) => head.push(b[0]),
            _ => break,
        }
    }
    String::from_utf8_lossy(&head).into_owned()
}

/// Reads a response; returns its status and body (by Content-Length).
async fn read_response(s: &mut TcpStream) -> (u16, String) {
    let head = read_head(s).await;
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let len = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse::<usize>().ok())?
        })
        .unwrap_or(0);
    let mut body = vec![0u8; len];
    s.read_exact(&mut body).await.expect("response body");
    (status, String::from_utf8_lossy(&body).into_owned())
}

/// CONNECT through nono; the tunnel, or the refusal's status and body.
async fn connect(p: &ProxyHandle, target: &str) -> Result<TcpStream, (u16, String)> {
    let step = async {
        let mut s = TcpStream::connect(p.addr()).await.expect("connect to nono");
        s.write_all(format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n").as_bytes())
            .await
            .expect("write CONNECT");
        match read_response(&mut s).await {
            (200, _) => Ok(s),
            other => Err(other),
        }
    };
    tokio::time::timeout(STEP, step)
        .await
        .expect("CONNECT answered in time")
}

/// `ping` through a tunnel to an echo server.
async fn assert_echo(mut s: TcpStream) {
    s.write_all(b"ping").await.expect("write");
    let mut got = [0u8; 4];
    tokio::time::timeout(STEP, s.read_exact(&mut got))
        .await
        .expect("echo in time")
        .expect("echo");
    assert_eq!(&got, b"ping");
}

async fn refused(p: &ProxyHandle, target: &str) -> (u16, String) {
    match connect(p, target).await {
        Ok(_) => panic!("CONNECT {target} should have been refused"),
        Err(e) => e,
    }
}

/// One plain HTTP GET through nono on an existing connection.
async fn get(s: &mut TcpStream, url: &str, host: &str) -> (u16, String) {
    let req = format!("GET {url} HTTP/1.1\r\nHost: {host}\r\n\r\n");
    s.write_all(req.as_bytes()).await.expect("write GET");
    tokio::time::timeout(STEP, read_response(s))
        .await
        .expect("GET answered in time")
}

#[tokio::test(flavor = "multi_thread")]
async fn connect_is_chained_through_tinyproxy_without_auth() {
    let echo = echo_server().await;
    let tp = Tinyproxy::start(None, &[echo]);
    let cfg = upstream(&tp.spec(None), &[]);
    check_reachable(&cfg, Duration::from_secs(5))
        .await
        .expect("tinyproxy is reachable");
    let p = nono(&["localhost"], &[], Some(cfg)).await;
    assert_echo(
        connect(&p, &format!("localhost:{echo}"))
            .await
            .expect("chained tunnel"),
    )
    .await;
    let log = tp.log();
    assert!(
        log.contains(&format!("CONNECT localhost:{echo} HTTP/1.1")),
        "{log}"
    );
    let events = p.audit().drain();
    let ev = events.iter().find(|e| e.port == echo).expect("audit event");
    assert_eq!(ev.reason.as_deref(), Some("via_upstream"), "{events:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn connect_with_tinyproxy_auth_and_missing_or_wrong_credentials_is_502_naming_the_status() {
    let echo = echo_server().await;
    let tp = Tinyproxy::start(Some(("user", "s3cret")), &[echo]);
    // Percent-encoded userinfo is decoded (`%33` is `3`).
    let p = nono(
        &["localhost"],
        &[],
        Some(upstream(&tp.spec(Some("user:s%33cret")), &[])),
    )
    .await;
    assert_echo(
        connect(&p, &format!("localhost:{echo}"))
            .await
            .expect("authenticated tunnel"),
    )
    .await;
    let events = format!("{:?}", p.audit().drain());
    assert!(!events.contains("s3cret"), "{events}");

    // No credentials: tinyproxy answers 407.
    let p = nono(&["localhost"], &[], Some(upstream(&tp.spec(None), &[]))).await;
    let (status, body) = refused(&p, &format!("localhost:{echo}")).await;
    assert_eq!(status, 502, "{body}");
    assert!(body.contains("upstream_proxy_status_407"), "{body}");
    // Wrong credentials: tinyproxy 1.11 answers 401 (squid would say 407); either way the
    // client gets a 502 naming the upstream's status.
    let p = nono(
        &["localhost"],
        &[],
        Some(upstream(&tp.spec(Some("user:wrong")), &[])),
    )
    .await;
    let (status, body) = refused(&p, &format!("localhost:{echo}")).await;
    assert_eq!(status, 502, "{body}");
    assert!(
        body.contains("upstream_proxy_status_401") || body.contains("upstream_proxy_status_407"),
        "{body}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn plain_http_is_sent_in_absolute_form_with_the_upstream_credentials() {
    let (origin, seen) = http_origin().await;
    let tp = Tinyproxy::start(Some(("user", "s3cret")), &[]);
    let p = nono(
        &["localhost"],
        &[],
        Some(upstream(&tp.spec(Some("user:s3cret")), &[])),
    )
    .await;
    let mut s = TcpStream::connect(p.addr()).await.expect("connect to nono");
    let host = format!("localhost:{origin}");
    for path in ["/one", "/two?x=1"] {
        let (status, body) = get(&mut s, &format!("http://{host}{path}"), &host).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body, format!("origin saw: GET {path} HTTP/1.1"));
    }
    let log = tp.log();
    assert!(
        log.contains(&format!("GET http://{host}/one HTTP/1.1")),
        "{log}"
    );
    assert!(
        log.contains(&format!("GET http://{host}/two?x=1 HTTP/1.1")),
        "{log}"
    );
    assert_eq!(seen.lock().expect("lock").len(), 2);
    let events = p.audit().drain();
    assert!(
        events
            .iter()
            .all(|e| e.reason.as_deref() == Some("via_upstream")),
        "{events:?}"
    );

    // The upstream's 407 is not passed on: the client would think nono wants credentials.
    let p = nono(&["localhost"], &[], Some(upstream(&tp.spec(None), &[]))).await;
    let mut s = TcpStream::connect(p.addr()).await.expect("connect to nono");
    let (status, body) = get(&mut s, &format!("http://{host}/three"), &host).await;
    assert_eq!(status, 502, "{body}");
    assert!(body.contains("upstream_proxy_status_407"), "{body}");
    assert_eq!(
        seen.lock().expect("lock").len(),
        2,
        "the origin must not see the refused request"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn bypassed_hosts_connect_directly_with_dns_checks_and_never_reach_the_upstream() {
    let echo = echo_server().await;
    let (origin, seen) = http_origin().await;
    let tp = Tinyproxy::start(None, &[echo]);
    let p = nono(
        &["localhost", "svc.bypass.test", "evil.bypass.test"],
        &[
            ("svc.bypass.test", "127.0.0.1"),
            ("evil.bypass.test", "169.254.169.254"),
        ],
        Some(upstream(&tp.spec(None), &["*.BYPASS.test"])),
    )
    .await;
    assert_echo(
        connect(&p, &format!("svc.bypass.test:{echo}"))
            .await
            .expect("direct tunnel"),
    )
    .await;
    assert_echo(
        connect(&p, &format!("SVC.Bypass.Test:{echo}"))
            .await
            .expect("case-insensitive bypass"),
    )
    .await;
    let mut s = TcpStream::connect(p.addr()).await.expect("connect to nono");
    let host = format!("svc.bypass.test:{origin}");
    let (status, body) = get(&mut s, &format!("http://{host}/direct"), &host).await;
    assert_eq!(
        (status, body.as_str()),
        (200, "origin saw: GET /direct HTTP/1.1")
    );
    assert_eq!(seen.lock().expect("lock").len(), 1);
    // The full DNS checks apply to bypassed hosts.
    let (status, body) = refused(&p, "evil.bypass.test:80").await;
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("denied_metadata"), "{body}");
    // A chained request, so the log is known to be written.
    assert_echo(
        connect(&p, &format!("localhost:{echo}"))
            .await
            .expect("chained tunnel"),
    )
    .await;
    let log = tp.log();
    assert!(log.contains(&format!("CONNECT localhost:{echo}")), "{log}");
    assert!(!log.to_ascii_lowercase().contains("bypass.test"), "{log}");
}

#[tokio::test(flavor = "multi_thread")]
async fn denied_hosts_never_reach_the_upstream_proxy() {
    let echo = echo_server().await;
    let tp = Tinyproxy::start(None, &[echo, 80, 443]);
    let p = nono(
        &[
            "localhost",
            "*.example.test",
            "metadata.google.internal",
            "169.254.169.254",
        ],
        &[
            ("rebind.example.test", "169.254.169.254"),
            ("loop.example.test", "127.0.0.1"),
        ],
        Some(upstream(&tp.spec(None), &[])),
    )
    .await;
    for (target, status, reason) in [
        ("other.test:443", 403, "not_allowlisted"),
        ("metadata.google.internal:80", 403, "denied_metadata"),
        ("169.254.169.254:80", 403, "denied_metadata"),
        // Names that resolve locally are checked address by address before chaining.
        ("rebind.example.test:443", 403, "denied_metadata"),
        ("loop.example.test:443", 403, "denied_loopback"),
    ] {
        let (got, body) = refused(&p, target).await;
        assert_eq!(got, status, "{target}: {body}");
        assert!(body.contains(reason), "{target}: {body}");
    }
    let mut s = TcpStream::connect(p.addr()).await.expect("connect to nono");
    let (status, body) = get(
        &mut s,
        "http://metadata.google.internal/computeMetadata/v1/",
        "metadata.google.internal",
    )
    .await;
    assert_eq!(status, 403, "{body}");
    assert_echo(
        connect(&p, &format!("localhost:{echo}"))
            .await
            .expect("chained tunnel"),
    )
    .await;
    let log = tp.log();
    assert_eq!(
        log.matches("Request (file descriptor").count(),
        1,
        "only the allowed request is chained:\n{log}"
    );
    for name in ["other.test", "metadata", "169.254", "example.test"] {
        assert!(
            !log.contains(name),
            "{name} reached the upstream proxy:\n{log}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn unreachable_upstream_is_a_clear_502_and_fails_the_reachability_check() {
    let cfg = upstream(&format!("127.0.0.1:{}", free_port()), &[]);
    let err = check_reachable(&cfg, Duration::from_secs(2))
        .await
        .expect_err("nothing listens");
    assert!(
        err.to_string()
            .contains("cannot connect to the upstream proxy 127.0.0.1:"),
        "{err}"
    );
    let p = nono(&["localhost"], &[], Some(cfg)).await;
    let (status, body) = refused(&p, "localhost:443").await;
    assert_eq!(status, 502, "{body}");
    assert!(body.contains("upstream_proxy_unreachable"), "{body}");
    let mut s = TcpStream::connect(p.addr()).await.expect("connect to nono");
    let (status, body) = get(&mut s, "http://localhost:8080/", "localhost:8080").await;
    assert_eq!(status, 502, "{body}");
    assert!(body.contains("upstream_proxy_unreachable"), "{body}");
}

#[tokio::test(flavor = "multi_thread")]
async fn garbage_and_oversized_upstream_answers_are_502() {
    let (garbage, _) = fake_upstream(Some(b"SSH-2.0-OpenSSH\r\n\r\n".to_vec())).await;
    let mut huge = b"HTTP/1.1 200 Connection established\r\n".to_vec();
    while huge.len() < 20 * 1024 {
        huge.extend_from_slice(
            b"X-Padding: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n",
        );
    }
    let (oversized, _) = fake_upstream(Some(huge)).await;
    for port in [garbage, oversized] {
        let p = nono(
            &["localhost"],
            &[],
            Some(upstream(&format!("127.0.0.1:{port}"), &[])),
        )
        .await;
        let (status, body) = refused(&p, "localhost:22").await;
        assert_eq!(status, 502, "{body}");
        assert!(body.contains("upstream_proxy_bad_response"), "{body}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn slow_upstream_is_504_within_the_response_timeout() {
    let (port, seen) = fake_upstream(None).await;
    let mut cfg = upstream(&format!("127.0.0.1:{port}"), &[]);
    cfg.response_timeout = Duration::from_millis(300);
    let p = nono(&["localhost"], &[], Some(cfg)).await;
    let started = Instant::now();
    let (status, body) = refused(&p, "localhost:22").await;
    assert_eq!(status, 504, "{body}");
    assert!(body.contains("upstream_proxy_timeout"), "{body}");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "took {:?}",
        started.elapsed()
    );
    assert_eq!(seen.lock().expect("lock").len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn bytes_after_the_upstream_200_reach_the_client_and_credentials_are_basic() {
    let reply =
        b"HTTP/1.1 200 Connection established\r\nProxy-Agent: fake\r\n\r\nSSH-2.0-banner\r\n"
            .to_vec();
    let (port, seen) = fake_upstream(Some(reply)).await;
    let p = nono(
        &["localhost"],
        &[],
        Some(upstream(&format!("http://u:p@127.0.0.1:{port}"), &[])),
    )
    .await;
    let mut s = connect(&p, "localhost:22").await.expect("tunnel");
    let mut banner = [0u8; 16];
    tokio::time::timeout(STEP, s.read_exact(&mut banner))
        .await
        .expect("banner in time")
        .expect("banner");
    assert_eq!(&banner, b"SSH-2.0-banner\r\n");
    assert_echo(s).await;
    let heads = seen.lock().expect("lock").clone();
    assert_eq!(heads.len(), 1);
    assert!(
        heads[0].starts_with("CONNECT localhost:22 HTTP/1.1\r\n"),
        "{}",
        heads[0]
    );
    assert!(heads[0].contains("Host: localhost:22\r\n"), "{}", heads[0]);
    // base64("u:p")
    assert!(
        heads[0].contains("Proxy-Authorization: Basic dTpw\r\n"),
        "{}",
        heads[0]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn names_without_local_dns_are_chained_for_the_upstream_to_resolve() {
    let (port, seen) = fake_upstream(Some(
        b"HTTP/1.0 200 Connection established\r\n\r\n".to_vec(),
    ))
    .await;
    let mut cfg = upstream(&format!("127.0.0.1:{port}"), &[]);
    cfg.local_resolve_timeout = Duration::from_millis(500);
    let p = nono(&["*.corp.invalid"], &[], Some(cfg)).await;
    assert_echo(
        connect(&p, "app.corp.invalid:443")
            .await
            .expect("chained without local DNS"),
    )
    .await;
    let heads = seen.lock().expect("lock").clone();
    assert!(
        heads[0].starts_with("CONNECT app.corp.invalid:443 HTTP/1.1\r\n"),
        "{heads:?}"
    );
    // Not on the allowlist: refused locally even though nothing is resolved.
    let (status, _) = refused(&p, "app.other.invalid:443").await;
    assert_eq!(status, 403);
    assert_eq!(seen.lock().expect("lock").len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn interim_answers_and_bare_line_feeds_from_the_upstream_are_understood() {
    let reply = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\n\nbanner\n".to_vec();
    let (port, _seen) = fake_upstream(Some(reply)).await;
    let p = nono(
        &["localhost"],
        &[],
        Some(upstream(&format!("127.0.0.1:{port}"), &[])),
    )
    .await;
    let mut s = connect(&p, "localhost:22").await.expect("tunnel");
    let mut banner = [0u8; 7];
    tokio::time::timeout(STEP, s.read_exact(&mut banner))
        .await
        .expect("banner in time")
        .expect("banner");
    assert_eq!(&banner, b"banner\n");
    assert_echo(s).await;
}
