//! End-to-end tests of TLS interception: the real `nono proxy` and `nono run` binaries in
//! front of HTTPS origins the tests start (an HTTP/1.1 + HTTP/2 origin and `git
//! http-backend`), trusted by nono through a credential route's `tls_ca`.
//!
//! What is pinned: a CONNECT to a credential route's host is answered 200 and its TLS is
//! terminated with a leaf signed by a per-session CA; every inner request gets the real
//! credential, passes the route's endpoint rules (`endpoint_rule`, `endpoint_default_deny`)
//! and is audited with mode `intercept`; URL-scoped allow entries admit only matching requests
//! (`url_not_allowed`) and inject nothing; plain host entries stay end-to-end tunnels; an SNI
//! other than the CONNECT host fails (`sni_mismatch`); HTTP/1.1 keep-alive, HTTP/2, WebSocket,
//! SSE and large streamed bodies work; the CA, its trust bundle and the CA variables are
//! published in the JSON line and honoured by curl, Python and git, inside `nono run` too.
//!
//! The `fixture_*` tests check the test servers on their own, without nono.

mod support;

use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use serde_json::{json, Value};
use support::githttp::{GitHttpServer, GIT_HTTP_BACKEND};
use support::h1client::{H1Conn, H1Response};
use support::h2origin::{pattern_byte, Fnv, H2Origin, SSE_GAP, WS_GREETING};
use support::websocket::{accept_key, WsClient, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG, OP_TEXT};
use support::*;

/// Upper bound for one `nono` or client invocation.
const T: Duration = Duration::from_secs(30);
/// How long a test waits for an audit line to appear in the proxy's stderr.
const LOG_WAIT: Duration = Duration::from_secs(5);
/// Read timeout on intercepted connections.
const IO_TIMEOUT: Duration = Duration::from_secs(20);
/// The real credential of the `api` route, and the variable nono reads it from.
const SECRET: &str = "sk-e2e-intercept-6b21f0";
const SECRET_VAR: &str = "NONO_E2E_ICPT_SECRET";
/// What clients send in `Authorization`; the proxy must replace it.
const CLIENT_JUNK: &str = "Bearer client-junk-not-a-credential";
/// Size of the streamed upload and download.
const BIG_BYTES: u64 = 64 * 1024 * 1024;
/// Chunk size of the streamed upload.
const UPLOAD_CHUNK: usize = 64 * 1024;
/// The least gap between the two SSE events that shows they were not buffered together
/// (the origin waits [`SSE_GAP`], 500 ms).
const MIN_SSE_GAP: Duration = Duration::from_millis(300);
/// The variables the JSON line's `env` must point at the trust bundle.
const CA_VARS: [&str; 9] = [
    "SSL_CERT_FILE",
    "REQUESTS_CA_BUNDLE",
    "CURL_CA_BUNDLE",
    "NODE_EXTRA_CA_CERTS",
    "GIT_SSL_CAINFO",
    "PIP_CERT",
    "CARGO_HTTP_CAINFO",
    "DENO_CERT",
    "AWS_CA_BUNDLE",
];
/// Variables of the test's own environment that would change which CA or proxy a client or
/// nono uses; removed wherever a test builds an environment.
const AMBIENT: [&str; 14] = [
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    "REQUESTS_CA_BUNDLE",
    "CURL_CA_BUNDLE",
    "GIT_SSL_CAINFO",
    "NO_PROXY",
    "no_proxy",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "ALL_PROXY",
    "http_proxy",
    "https_proxy",
    "all_proxy",
    "NONO_UPSTREAM_PROXY",
];

// ---------------------------------------------------------------------------------------
// Shared set-up
// ---------------------------------------------------------------------------------------

/// A test CA, an HTTP/1.1 + HTTP/2 origin it signed, and a temp dir for profiles.
struct Fx {
    ca: TestCa,
    origin: H2Origin,
    dir: TempDir,
}

impl Fx {
    fn new() -> Fx {
        let ca = TestCa::new();
        let origin = H2Origin::start(&ca);
        Fx {
            ca,
            origin,
            dir: TempDir::new("icpt"),
        }
    }

    /// `localhost:PORT` of the origin, the CONNECT target of an intercepted route.
    fn authority(&self) -> String {
        format!("localhost:{}", self.origin.port)
    }

    /// `https://localhost:PORT/base` + `path`.
    fn url(&self, path: &str) -> String {
        format!("https://{}/base{path}", self.authority())
    }

    /// The `api` route: upstream `https://localhost:PORT/base`, header mode (the default
    /// `Authorization: Bearer {}`), secret from `env://NONO_E2E_ICPT_SECRET`; `extra` merged in.
    fn service(&self, extra: Value) -> Value {
        let mut svc = json!({
            "upstream": format!("https://{}/base", self.authority()),
            "credential_key": format!("env://{SECRET_VAR}"),
            "tls_ca": self.ca.ca_path,
        });
        merge(&mut svc, extra);
        svc
    }

    /// Writes a profile with the `api` route (plus `service_extra`) enabled through
    /// `network.credentials`, and `network_extra` merged into `network`.
    fn profile(&self, service_extra: Value, network_extra: Value) -> String {
        let mut network = json!({
            "custom_credentials": {"api": self.service(service_extra)},
            "credentials": ["api"],
        });
        merge(&mut network, network_extra);
        write_profile(&self.dir, "profile.json", network)
    }
}

/// Merges the keys of `extra` (an object, or null) into `target`.
fn merge(target: &mut Value, extra: Value) {
    if let (Some(target), Value::Object(extra)) = (target.as_object_mut(), extra) {
        target.extend(extra);
    }
}

/// Writes `{"meta": ..., "network": network}` to `dir/name` and returns its path.
fn write_profile(dir: &TempDir, name: &str, network: Value) -> String {
    let profile = json!({"meta": {"name": "intercept-e2e"}, "network": network});
    let path = dir.path().join(name);
    std::fs::write(&path, profile.to_string()).expect("write profile");
    path.to_string_lossy().into_owned()
}

/// The `nono` binary with the ambient CA and proxy variables removed and `env` added.
fn nono_env_command(env: &[(&str, &str)]) -> Command {
    let mut cmd = support::nono_command();
    for var in AMBIENT {
        cmd.env_remove(var);
    }
    cmd.envs(env.iter().copied());
    cmd
}

/// `nono proxy --json ARGS` with the route secret set (and `env`), no ambient CA variables.
fn start_proxy(args: &[&str], env: &[(&str, &str)]) -> ProxyProcess {
    let mut cmd = nono_env_command(env);
    cmd.env(SECRET_VAR, SECRET);
    ProxyProcess::start_command(cmd, args)
}

/// Runs `nono ARGS` to completion (stdin closed) with the route secret set.
fn run_nono_env(args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let mut cmd = nono_env_command(env);
    cmd.env(SECRET_VAR, SECRET).args(args);
    run_command(cmd, T)
}

/// A string field of the JSON line, which must be present and non-null.
fn json_path(p: &ProxyProcess, key: &str) -> PathBuf {
    PathBuf::from(
        p.json[key]
            .as_str()
            .unwrap_or_else(|| panic!("`{key}` is not a path in the JSON line: {}", p.json)),
    )
}

/// Every certificate in a PEM file.
fn pem_certs(path: &Path) -> Vec<CertificateDer<'static>> {
    let pem = std::fs::read(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .unwrap_or_else(|e| panic!("{} is not a PEM certificate list: {e:?}", path.display()))
}

/// The session CA that `ca_cert` names (its first certificate).
fn nono_ca(p: &ProxyProcess) -> CertificateDer<'static> {
    let path = json_path(p, "ca_cert");
    pem_certs(&path)
        .into_iter()
        .next()
        .unwrap_or_else(|| panic!("no certificate in ca_cert {}", path.display()))
}

/// `Proxy-Authorization` for `p`.
fn proxy_auth(p: &ProxyProcess) -> String {
    p.basic_auth()
}

/// A client TLS stream over `tcp` for `sni`, trusting only `roots`, offering `alpn`, with the
/// handshake already done (so a refused handshake is an `Err` here, not a failed write later).
fn tls_over(
    mut tcp: TcpStream,
    roots: &[CertificateDer<'static>],
    sni: &str,
    alpn: &[&[u8]],
) -> Result<rustls::StreamOwned<rustls::ClientConnection, TcpStream>, String> {
    let mut store = rustls::RootCertStore::empty();
    for root in roots {
        store.add(root.clone()).expect("add root");
    }
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("protocol versions")
    .with_root_certificates(store)
    .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    let name = ServerName::try_from(sni.to_string()).expect("valid server name");
    let mut conn = rustls::ClientConnection::new(Arc::new(config), name).expect("client conn");
    tcp.set_read_timeout(Some(IO_TIMEOUT))
        .expect("read timeout");
    while conn.is_handshaking() {
        conn.complete_io(&mut tcp)
            .map_err(|e| format!("TLS handshake for `{sni}`: {e}"))?;
    }
    Ok(rustls::StreamOwned::new(conn, tcp))
}

type Tls = rustls::StreamOwned<rustls::ClientConnection, TcpStream>;

/// (method, path, headers, body) of one request a test sends.
type InnerRequest<'a> = (&'a str, &'a str, &'a [(&'a str, &'a str)], &'a [u8]);

/// CONNECTs through `p` to `target`, then does TLS for `sni` trusting `roots`.
fn tunnel_tls(
    p: &ProxyProcess,
    target: &str,
    roots: &[CertificateDer<'static>],
    sni: &str,
    alpn: &[&[u8]],
) -> Result<Tls, String> {
    let tcp = connect_tunnel(p.port, target, Some(&proxy_auth(p))).map_err(|(status, body)| {
        format!(
            "CONNECT {target} answered {status}: {body}\n--- proxy stderr\n{}",
            p.stderr()
        )
    })?;
    tls_over(tcp, roots, sni, alpn)
}

/// An intercepted HTTP/1.1 connection to `localhost:port`, trusting only the session CA.
fn intercepted(p: &ProxyProcess, port: u16) -> H1Conn<Tls> {
    let target = format!("localhost:{port}");
    let tls = tunnel_tls(p, &target, &[nono_ca(p)], "localhost", &[b"http/1.1"])
        .unwrap_or_else(|e| panic!("{e}\n--- proxy stderr\n{}", p.stderr()));
    H1Conn::new(tls)
}

/// One request on a fresh intercepted connection to `localhost:port`.
fn intercepted_request(
    p: &ProxyProcess,
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> H1Response {
    let mut conn = intercepted(p, port);
    conn.request(method, path, &format!("localhost:{port}"), headers, b"")
        .unwrap_or_else(|e| {
            panic!(
                "{method} {path} through the interception: {e}\n--- proxy stderr\n{}",
                p.stderr()
            )
        })
}

/// Lines of `log` that audit an intercepted request: `DECISION`, the word `intercept` (any
/// case), the method, the path and, for denials, `reason=REASON`.
fn audit_lines(log: &str, decision: &str, method: &str, path: &str, reason: Option<&str>) -> usize {
    log.lines()
        .filter(|l| {
            l.contains(&format!("{decision} "))
                && l.to_ascii_lowercase().contains("intercept")
                && l.contains(&format!(" {method} "))
                && l.contains(path)
                && match reason {
                    Some(r) => l.contains(&format!("reason={r}")),
                    None => true,
                }
        })
        .count()
}

/// Waits up to [`LOG_WAIT`] for an audit line as [`audit_lines`] describes.
fn assert_audited(
    p: &ProxyProcess,
    decision: &str,
    method: &str,
    path: &str,
    reason: Option<&str>,
) {
    let deadline = Instant::now() + LOG_WAIT;
    while audit_lines(&p.stderr(), decision, method, path, reason) == 0 {
        assert!(
            Instant::now() < deadline,
            "no `{decision} ... intercept ... {method} ...{path}{}` audit line in the proxy's stderr:\n{}",
            reason.map_or(String::new(), |r| format!(" reason={r}")),
            p.stderr()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Parses a DER certificate.
fn x509(der: &[u8]) -> x509_parser::certificate::X509Certificate<'_> {
    x509_parser::parse_x509_certificate(der)
        .unwrap_or_else(|e| panic!("not an X.509 certificate: {e}"))
        .1
}

/// The DNS names in a certificate's subjectAltName.
fn dns_sans(der: &[u8]) -> Vec<String> {
    let cert = x509(der);
    let Ok(Some(san)) = cert.subject_alternative_name() else {
        return Vec::new();
    };
    san.value
        .general_names
        .iter()
        .filter_map(|n| match n {
            x509_parser::extensions::GeneralName::DNSName(d) => Some(d.to_string()),
            _ => None,
        })
        .collect()
}

/// Seconds since the Unix epoch.
fn now_unix() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// Asserts the certificate expires between `days` days minus 2 h and `days` days plus 1 h
/// from now (a CA may be back-dated a little for clock skew).
fn assert_expires_in_days(der: &[u8], days: i64, what: &str) {
    let cert = x509(der);
    let left = cert.validity().not_after.timestamp() - now_unix();
    let want = days * 86_400;
    assert!(
        left > want - 7_200 && left <= want + 3_600,
        "{what}: expires in {left} s, want about {days} day(s) ({want} s); not before {}, not after {}",
        cert.validity().not_before,
        cert.validity().not_after
    );
}

/// A client command with the ambient CA and proxy variables removed.
fn client(program: &str) -> Command {
    let mut cmd = Command::new(program);
    for var in AMBIENT {
        cmd.env_remove(var);
    }
    cmd
}

/// The proxy variables of the JSON line's `env` (for clients that read them), without
/// `NO_PROXY`: it lists `localhost`, which would send the client around the proxy.
fn proxy_vars(p: &ProxyProcess) -> Vec<(String, String)> {
    ["HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy"]
        .iter()
        .filter_map(|k| {
            p.json["env"][k]
                .as_str()
                .map(|v| (k.to_string(), v.to_string()))
        })
        .collect()
}

/// `curl -sS --max-time 20 -w '\n%{http_code} %{http_version}'` with `args`; returns
/// (exit code, body, "CODE VERSION", stderr).
fn curl(cmd_env: &[(String, String)], args: &[&str]) -> (i32, String, String, String) {
    let mut cmd = client("curl");
    cmd.envs(cmd_env.iter().map(|(k, v)| (k, v)))
        .args([
            "-sS",
            "--max-time",
            "20",
            "-w",
            "\n%{http_code} %{http_version}",
        ])
        .args(args);
    let (code, out, err) = run_command(cmd, T);
    let (body, status) = out.rsplit_once('\n').unwrap_or(("", &out));
    (code, body.to_string(), status.to_string(), err)
}

// ---------------------------------------------------------------------------------------
// Fixtures on their own
// ---------------------------------------------------------------------------------------

#[test]
fn fixture_websocket_accept_key_matches_rfc_6455() {
    // RFC 6455 section 1.3's example key; the digest is SHA-1(key + GUID), base64.
    assert_eq!(
        accept_key("dGhlIHNhbXBsZSBub25jZQ=="),
        "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
    );
}

#[test]
fn fixture_h2origin_answers_http1_and_http2_directly() {
    let fx = Fx::new();
    let ca = fx.ca.ca_path.to_string_lossy().into_owned();
    for (flag, version, curl_version) in
        [("--http2", "HTTP/2", "2"), ("--http1.1", "HTTP/1.1", "1.1")]
    {
        let (code, body, status, err) = curl(&[], &["--cacert", &ca, flag, &fx.url("/direct")]);
        assert_eq!(code, 0, "curl {flag}: {err}");
        assert_eq!(status, format!("200 {curl_version}"), "curl {flag}: {body}");
        let body: Value = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body}"));
        assert_eq!(body["version"], version, "{body}");
        assert_eq!(body["path"], "/base/direct", "{body}");
    }
    let seen = fx.origin.requests();
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert_eq!(seen[0].version, "HTTP/2");
    assert_eq!(
        seen[0].header("host"),
        Some(fx.authority().as_str()),
        "HTTP/2 :authority is recorded as host"
    );
}

#[test]
fn fixture_h2origin_websocket_greets_and_echoes_directly() {
    let fx = Fx::new();
    let tcp = TcpStream::connect(("127.0.0.1", fx.origin.port)).expect("connect to origin");
    let tls = tls_over(tcp, &[fx.ca.ca_der()], "localhost", &[b"http/1.1"]).expect("TLS to origin");
    assert_ws_echo(tls, &fx.authority(), &[]);
    let seen = fx.origin.last();
    assert_eq!(seen.path, "/base/ws");
    assert_eq!(seen.header("upgrade"), Some("websocket"));
}

/// Upgrades `/base/ws` on `stream` and checks the greeting, text, 70 000-byte binary,
/// ping/pong and close echoes.
fn assert_ws_echo<S: std::io::Read + std::io::Write>(
    stream: S,
    host: &str,
    headers: &[(&str, &str)],
) {
    let (mut ws, head) = WsClient::handshake(stream, host, "/base/ws", headers)
        .unwrap_or_else(|resp| panic!("WebSocket upgrade refused:\n{resp}"));
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    let (op, greeting) = ws.recv().expect("the origin's greeting frame");
    assert_eq!((op, greeting.as_slice()), (OP_TEXT, WS_GREETING.as_bytes()));
    ws.send(OP_TEXT, b"ping from the client")
        .expect("send text");
    let (op, echoed) = ws.recv().expect("text echo");
    assert_eq!(
        (op, echoed.as_slice()),
        (OP_TEXT, &b"ping from the client"[..])
    );
    let big: Vec<u8> = (0..70_000u64).map(pattern_byte).collect();
    ws.send(OP_BINARY, &big).expect("send binary");
    let (op, echoed) = ws.recv().expect("binary echo");
    assert_eq!(op, OP_BINARY);
    assert!(
        echoed == big,
        "binary echo differs ({} bytes back)",
        echoed.len()
    );
    ws.send(OP_PING, b"are you there").expect("send ping");
    let (op, pong) = ws.recv().expect("pong");
    assert_eq!((op, pong.as_slice()), (OP_PONG, &b"are you there"[..]));
    ws.send(OP_CLOSE, &1000u16.to_be_bytes())
        .expect("send close");
    let (op, _) = ws.recv().expect("close reply");
    assert_eq!(op, OP_CLOSE);
}

#[test]
fn fixture_h2origin_sse_events_are_500ms_apart_directly() {
    let fx = Fx::new();
    let tcp = TcpStream::connect(("127.0.0.1", fx.origin.port)).expect("connect to origin");
    let tls = tls_over(tcp, &[fx.ca.ca_der()], "localhost", &[b"http/1.1"]).expect("TLS to origin");
    let gap = sse_gap(H1Conn::new(tls), &fx.authority(), &[]);
    assert!(
        gap >= MIN_SSE_GAP,
        "events {gap:?} apart, want at least {MIN_SSE_GAP:?}"
    );
}

/// Requests `/base/sse` and returns the time between `data: first` and `data: second`
/// arriving, reading raw bytes so any framing (chunked, close-delimited) works.
fn sse_gap<S: std::io::Read + std::io::Write>(
    mut conn: H1Conn<S>,
    host: &str,
    headers: &[(&str, &str)],
) -> Duration {
    let mut head =
        format!("GET /base/sse HTTP/1.1\r\nHost: {host}\r\nAccept: text/event-stream\r\n");
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    conn.write_all(head.as_bytes()).expect("write SSE request");
    let (status, resp_head) = conn.read_head().expect("SSE response head");
    assert_eq!(status, 200, "{resp_head}");
    assert!(
        resp_head.to_ascii_lowercase().contains("text/event-stream"),
        "{resp_head}"
    );
    let mut seen = Vec::new();
    let mut first_at = None;
    loop {
        let bytes = conn.read_raw().unwrap_or_else(|e| {
            panic!(
                "SSE stream ended early ({e}) after {:?}",
                String::from_utf8_lossy(&seen)
            )
        });
        seen.extend_from_slice(&bytes);
        let text = String::from_utf8_lossy(&seen);
        if first_at.is_none() && text.contains("data: first") {
            first_at = Some(Instant::now());
        }
        if text.contains("data: second") {
            let first = first_at.expect("second event before the first");
            return first.elapsed();
        }
    }
}

#[test]
fn fixture_h2origin_streams_download_and_counts_upload_directly() {
    let fx = Fx::new();
    let tcp = TcpStream::connect(("127.0.0.1", fx.origin.port)).expect("connect to origin");
    let tls = tls_over(tcp, &[fx.ca.ca_der()], "localhost", &[b"http/1.1"]).expect("TLS to origin");
    let mut conn = H1Conn::new(tls);
    let size = 8 * 1024 * 1024;
    assert_download(&mut conn, &fx.authority(), size, &[]);
    let body = upload(&mut conn, &fx.authority(), size, &[]);
    assert_eq!(body["body_len"], size, "{body}");
}

/// Downloads `/base/download?bytes=N` on `conn` and checks length and content.
fn assert_download<S: std::io::Read + std::io::Write>(
    conn: &mut H1Conn<S>,
    host: &str,
    n: u64,
    headers: &[(&str, &str)],
) {
    let resp = conn
        .request(
            "GET",
            &format!("/base/download?bytes={n}"),
            host,
            headers,
            b"",
        )
        .expect("download");
    assert_eq!(resp.status, 200, "{}", resp.head);
    assert_eq!(resp.body.len() as u64, n, "downloaded length");
    let mut want = Fnv::new();
    let mut got = Fnv::new();
    want.update(&(0..n).map(pattern_byte).collect::<Vec<u8>>());
    got.update(&resp.body);
    assert_eq!(got.finish(), want.finish(), "downloaded bytes differ");
}

/// Uploads `n` pattern bytes chunked to `/base/upload` on `conn`; checks the origin's
/// checksum and returns its JSON.
fn upload<S: std::io::Read + std::io::Write>(
    conn: &mut H1Conn<S>,
    host: &str,
    n: u64,
    headers: &[(&str, &str)],
) -> Value {
    let mut head = format!(
        "POST /base/upload HTTP/1.1\r\nHost: {host}\r\nTransfer-Encoding: chunked\r\n\
         Content-Type: application/octet-stream\r\n"
    );
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    conn.write_all(head.as_bytes()).expect("write upload head");
    let mut fnv = Fnv::new();
    let mut sent = 0u64;
    while sent < n {
        let len = (n - sent).min(UPLOAD_CHUNK as u64);
        let chunk: Vec<u8> = (sent..sent + len).map(pattern_byte).collect();
        fnv.update(&chunk);
        let mut frame = format!("{len:x}\r\n").into_bytes();
        frame.extend_from_slice(&chunk);
        frame.extend_from_slice(b"\r\n");
        conn.write_all(&frame)
            .unwrap_or_else(|e| panic!("upload write after {sent} bytes: {e}"));
        sent += len;
    }
    conn.write_all(b"0\r\n\r\n").expect("write last chunk");
    let resp = conn.read_response(false).expect("upload response");
    assert_eq!(resp.status, 200, "{}\n{}", resp.head, resp.text());
    let body = resp.json();
    assert_eq!(body["body_len"], n, "{body}");
    assert_eq!(
        body["body_fnv"],
        fnv.finish().to_string(),
        "uploaded bytes differ: {body}"
    );
    body
}

/// `Basic base64(user:password)`.
fn basic(user_pass: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(user_pass)
    )
}

/// The git credential the fixture demands.
const GIT_USER_PASS: &str = "git-user:git-secret-41c9";

#[test]
fn fixture_git_http_backend_refuses_without_the_credential_and_serves_with_it() {
    let ca = TestCa::new();
    let git = GitHttpServer::start(&ca, &basic(GIT_USER_PASS));
    let work = TempDir::new("git-direct");
    let cainfo = format!("http.sslCAInfo={}", ca.ca_path.display());
    let header = format!("http.extraHeader=Authorization: {}", basic(GIT_USER_PASS));

    let (code, _, err) = run_command(
        {
            let mut c = git.client();
            c.args(["-c", &cainfo, "clone", &git.url()])
                .arg(work.path().join("denied"));
            c
        },
        T,
    );
    assert_ne!(code, 0, "clone without the credential succeeded: {err}");
    assert!(
        git.requests().iter().any(|r| r.status == 401),
        "no 401 was sent: {:?}\n{err}",
        git.requests()
    );

    let dest = work.path().join("clone");
    let (code, _, err) = run_command(
        {
            let mut c = git.client();
            c.args(["-c", &cainfo, "-c", &header, "clone", &git.url()])
                .arg(&dest);
            c
        },
        T,
    );
    assert_eq!(
        code,
        0,
        "clone with the credential failed: {err}\n{:?}",
        git.requests()
    );
    assert!(dest.join("README").exists(), "the clone has no README");
    commit_and_push(
        &git,
        &dest,
        &["-c", &cainfo, "-c", &header],
        "pushed directly",
    );
    assert_eq!(
        git.main_log().first().map(String::as_str),
        Some("pushed directly")
    );
}

/// Commits a new file in the clone `dest` and pushes `main` with the `-c` options `config`.
fn commit_and_push(git: &GitHttpServer, dest: &Path, config: &[&str], message: &str) {
    std::fs::write(dest.join("pushed.txt"), format!("{message}\n")).expect("write file");
    for args in [
        &["add", "pushed.txt"][..],
        &["commit", "-q", "-m", message][..],
    ] {
        let mut c = git.client();
        c.current_dir(dest).args(args);
        let (code, _, err) = run_command(c, T);
        assert_eq!(code, 0, "git {args:?}: {err}");
    }
    let mut c = git.client();
    c.current_dir(dest)
        .args(config)
        .args(["push", "origin", "main"]);
    let (code, out, err) = run_command(c, T);
    assert_eq!(
        code,
        0,
        "git push failed:\n{out}\n{err}\nserver saw: {:?}",
        git.requests()
    );
}

// ---------------------------------------------------------------------------------------
// The CA, the bundle and the JSON line
// ---------------------------------------------------------------------------------------

#[test]
fn with_only_plain_host_entries_nothing_is_intercepted_and_no_ca_is_made() {
    let fx = Fx::new();
    let p = start_proxy(&["--allow-domain", &fx.authority()], &[]);
    assert!(
        p.json["ca_cert"].is_null(),
        "ca_cert should be null: {}",
        p.json
    );
    assert!(
        p.json["trust_bundle"].is_null(),
        "trust_bundle should be null: {}",
        p.json
    );
    let tls = tunnel_tls(
        &p,
        &fx.authority(),
        &[fx.ca.ca_der()],
        "localhost",
        &[b"http/1.1"],
    )
    .expect("an end-to-end tunnel verifies against the origin's CA");
    let peer = tls.conn.peer_certificates().expect("peer certificates")[0].clone();
    assert!(
        peer == fx.origin.leaf_der(),
        "the client did not see the origin's own certificate"
    );
    let mut conn = H1Conn::new(tls);
    let resp = conn
        .request("GET", "/base/plain", &fx.authority(), &[], b"")
        .expect("request in the tunnel");
    assert_eq!(resp.status, 200, "{}", resp.head);
    assert!(
        fx.origin.last().header("authorization").is_none(),
        "a tunnel injected a credential"
    );
}

#[test]
fn json_line_names_the_ca_and_a_private_bundle_with_every_ca_variable_and_sigterm_removes_them() {
    let fx = Fx::new();
    let profile = fx.profile(json!({}), json!({"ca_env_vars": ["MY_TOOL_CA"]}));
    let parent_roots = fx.ca.ca_path.to_string_lossy().into_owned();
    let p = start_proxy(
        &["--profile", &profile],
        &[("SSL_CERT_FILE", &parent_roots)],
    );
    let ca_path = json_path(&p, "ca_cert");
    let bundle = json_path(&p, "trust_bundle");

    let ca_certs = pem_certs(&ca_path);
    assert_eq!(
        ca_certs.len(),
        1,
        "ca_cert holds {} certificates",
        ca_certs.len()
    );
    let ca = x509(&ca_certs[0]);
    assert!(
        ca.is_ca(),
        "ca_cert is not a CA certificate: {}",
        ca.subject()
    );
    assert_expires_in_days(&ca_certs[0], 1, "the default session CA");

    let in_bundle = pem_certs(&bundle);
    assert!(
        in_bundle.contains(&ca_certs[0]),
        "the bundle {} lacks the nono CA",
        bundle.display()
    );
    assert!(
        in_bundle.contains(&fx.ca.ca_der()),
        "the bundle lacks the roots of the parent's SSL_CERT_FILE"
    );

    let dir = bundle.parent().expect("bundle dir").to_path_buf();
    let mode = std::fs::metadata(&dir)
        .expect("bundle dir")
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o700, "{} has mode {mode:o}", dir.display());

    let bundle_str = bundle.to_string_lossy();
    for var in CA_VARS.iter().chain(&["MY_TOOL_CA"]) {
        assert_eq!(
            p.json["env"][var].as_str(),
            Some(bundle_str.as_ref()),
            "env.{var} does not point at the bundle: {}",
            p.json["env"]
        );
    }

    let status = p.terminate();
    assert!(status.success(), "{status:?}");
    assert!(!bundle.exists(), "{} outlived the proxy", bundle.display());
    assert!(!dir.exists(), "{} outlived the proxy", dir.display());
    assert!(
        !ca_path.exists(),
        "{} outlived the proxy",
        ca_path.display()
    );
}

#[test]
fn without_a_parent_ssl_cert_file_the_bundle_holds_the_system_roots_and_the_nono_ca() {
    let fx = Fx::new();
    let profile = fx.profile(json!({}), json!({}));
    let p = start_proxy(&["--profile", &profile], &[]);
    let in_bundle = pem_certs(&json_path(&p, "trust_bundle"));
    assert!(
        in_bundle.contains(&nono_ca(&p)),
        "the bundle lacks the nono CA"
    );
    assert!(
        in_bundle.len() > 1,
        "the bundle holds only the nono CA, no system roots"
    );
    assert!(
        !in_bundle.contains(&fx.ca.ca_der()),
        "the test CA is in the bundle although no SSL_CERT_FILE was set"
    );
}

#[test]
fn ca_validity_is_one_day_by_default_follows_the_flag_and_is_bounded_1_to_365() {
    let fx = Fx::new();
    let profile = fx.profile(json!({}), json!({}));
    for days in [30, 365] {
        let d = days.to_string();
        let p = start_proxy(&["--profile", &profile, "--proxy-ca-validity", &d], &[]);
        assert_expires_in_days(&nono_ca(&p), days, &format!("--proxy-ca-validity {days}"));
    }
    for bad in ["0", "366"] {
        let (code, _, err) = run_nono_env(
            &["proxy", "--profile", &profile, "--proxy-ca-validity", bad],
            &[],
        );
        assert_eq!(code, 2, "nono proxy --proxy-ca-validity {bad}: {err}");
        let (code, out, err) = run_nono_env(
            &[
                "run",
                "--profile",
                &profile,
                "--proxy-ca-validity",
                bad,
                "--",
                "sh",
                "-c",
                "echo CHILD_RAN",
            ],
            &[],
        );
        // `nono run` reports its own usage errors as 125, never a code the child could give.
        assert_eq!(
            code, 125,
            "nono run --proxy-ca-validity {bad}: {out}\n{err}"
        );
        assert!(err.contains("1..=365"), "{err}");
        assert!(
            !out.contains("CHILD_RAN"),
            "the command ran with --proxy-ca-validity {bad}"
        );
    }
}

/// A self-signed certificate (a CA when `is_ca`) and its PKCS#8 key, written as PEM files
/// `NAME.pem` and `NAME.key` in `dir`; returns (cert path, key path, cert DER).
fn write_cert(dir: &TempDir, name: &str, is_ca: bool) -> (String, String, CertificateDer<'static>) {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose};
    let key = KeyPair::generate().expect("generate key");
    let mut params = CertificateParams::new(if is_ca {
        Vec::new()
    } else {
        vec!["leaf.example".to_string()]
    })
    .expect("params");
    params
        .distinguished_name
        .push(DnType::CommonName, format!("nono test {name}"));
    if is_ca {
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    } else {
        params.is_ca = IsCa::ExplicitNoCa;
    }
    let cert = params.self_signed(&key).expect("self-sign");
    let cert_path = dir.path().join(format!("{name}.pem"));
    let key_path = dir.path().join(format!("{name}.key"));
    std::fs::write(&cert_path, cert.pem()).expect("write cert");
    std::fs::write(&key_path, key.serialize_pem()).expect("write key");
    (
        cert_path.to_string_lossy().into_owned(),
        key_path.to_string_lossy().into_owned(),
        cert.der().clone(),
    )
}

#[test]
fn a_user_supplied_ca_signs_the_leaves_and_a_bad_ca_stops_nono_at_start() {
    let fx = Fx::new();
    let profile = fx.profile(json!({}), json!({}));
    let (ca_cert, ca_key, ca_der) = write_cert(&fx.dir, "user-ca", true);
    let (_, other_key, _) = write_cert(&fx.dir, "other-ca", true);
    let (leaf_cert, leaf_key, _) = write_cert(&fx.dir, "not-a-ca", false);
    let missing = fx
        .dir
        .path()
        .join("absent.pem")
        .to_string_lossy()
        .into_owned();

    let p = start_proxy(
        &[
            "--profile",
            &profile,
            "--proxy-ca-cert",
            &ca_cert,
            "--proxy-ca-key",
            &ca_key,
        ],
        &[],
    );
    assert!(
        pem_certs(&json_path(&p, "ca_cert")).contains(&ca_der),
        "ca_cert is not the supplied CA: {}",
        p.json
    );
    let tls = tunnel_tls(
        &p,
        &fx.authority(),
        std::slice::from_ref(&ca_der),
        "localhost",
        &[b"http/1.1"],
    )
    .unwrap_or_else(|e| panic!("the leaf does not chain to the supplied CA: {e}"));
    let mut conn = H1Conn::new(tls);
    let resp = conn
        .request("GET", "/base/user-ca", &fx.authority(), &[], b"")
        .expect("request");
    assert_eq!(resp.status, 200, "{}\n{}", resp.head, resp.text());
    drop(p);

    let cases: [(&str, Vec<&str>, &[&str]); 3] = [
        (
            "a key that does not match the certificate",
            vec!["--proxy-ca-cert", &ca_cert, "--proxy-ca-key", &other_key],
            &["match", "does not belong", "differ"],
        ),
        (
            "a certificate that is not a CA",
            vec!["--proxy-ca-cert", &leaf_cert, "--proxy-ca-key", &leaf_key],
            &[
                "not a ca",
                "ca:false",
                "basic constraints",
                "basicconstraints",
            ],
        ),
        (
            "an unreadable certificate file",
            vec!["--proxy-ca-cert", &missing, "--proxy-ca-key", &ca_key],
            &[missing.as_str()],
        ),
    ];
    for (what, flags, any_of) in &cases {
        for sub in ["proxy", "run"] {
            let mut args = vec![sub, "--profile", &profile];
            args.extend(flags.iter().copied());
            if sub == "run" {
                args.extend(["--", "sh", "-c", "echo CHILD_RAN"]);
            }
            let (code, out, err) = run_nono_env(&args, &[]);
            assert!(
                code != 0 && code < 128,
                "nono {sub} with {what} exited {code}\n{out}\n{err}"
            );
            assert!(
                !out.contains("CHILD_RAN"),
                "nono run with {what} ran the command"
            );
            let lower = err.to_ascii_lowercase();
            assert!(
                any_of
                    .iter()
                    .any(|s| lower.contains(&s.to_ascii_lowercase())),
                "nono {sub} with {what}: the message names none of {any_of:?}:\n{err}"
            );
        }
    }

    let (code, _, err) = run_nono_env(
        &[
            "proxy",
            "--profile",
            &profile,
            "--proxy-ca-cert",
            &ca_cert,
            "--proxy-ca-key",
            &ca_key,
            "--proxy-ca-validity",
            "2",
        ],
        &[],
    );
    assert_eq!(
        code, 2,
        "--proxy-ca-cert with --proxy-ca-validity must be a usage error: {err}"
    );
}

// ---------------------------------------------------------------------------------------
// Interception
// ---------------------------------------------------------------------------------------

#[test]
fn an_intercepted_connect_gets_a_nono_leaf_and_each_keepalive_request_the_real_credential() {
    let fx = Fx::new();
    let profile = fx.profile(json!({}), json!({}));
    let p = start_proxy(&["--profile", &profile], &[]);
    let ca = nono_ca(&p);
    let tls = tunnel_tls(
        &p,
        &fx.authority(),
        std::slice::from_ref(&ca),
        "localhost",
        &[b"http/1.1"],
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let leaf = tls.conn.peer_certificates().expect("peer certificates")[0].clone();
    assert!(
        leaf != fx.origin.leaf_der(),
        "the client saw the origin's certificate"
    );
    assert_eq!(
        x509(&leaf).issuer().to_string(),
        x509(&ca).subject().to_string(),
        "the leaf is not issued by the session CA"
    );
    assert!(
        dns_sans(&leaf).iter().any(|n| n == "localhost"),
        "the leaf is not for localhost: {:?}",
        dns_sans(&leaf)
    );
    assert!(!x509(&leaf).is_ca(), "the leaf is a CA");

    let host = fx.authority();
    let mut conn = H1Conn::new(tls);
    let requests: [InnerRequest; 3] = [
        ("GET", "/base/a?x=1", &[("Authorization", CLIENT_JUNK)], b""),
        ("GET", "/base/b", &[], b""),
        (
            "POST",
            "/base/c",
            &[("Content-Type", "text/plain")],
            b"hello",
        ),
    ];
    for (method, path, headers, body) in requests {
        let resp = conn
            .request(method, path, &host, headers, body)
            .unwrap_or_else(|e| {
                panic!(
                    "{method} {path} on the kept-alive connection: {e}\n{}",
                    p.stderr()
                )
            });
        assert_eq!(
            resp.status,
            200,
            "{method} {path}: {}\n{}",
            resp.head,
            resp.text()
        );
        let echoed = resp.json();
        assert_eq!(echoed["path"], path, "{echoed}");
        assert_eq!(echoed["body_len"], body.len(), "{echoed}");
        assert_eq!(
            echoed["headers"]["authorization"],
            bearer(SECRET).as_str(),
            "{method} {path}: the origin did not get the real credential: {echoed}"
        );
        assert!(
            !resp.head.contains(SECRET),
            "the secret came back to the client:\n{}",
            resp.head
        );
    }
    let seen = fx.origin.requests();
    assert_eq!(seen.len(), 3, "{seen:?}");
    for req in &seen {
        for (name, value) in &req.headers {
            assert!(
                !value.contains("client-junk"),
                "the client's {name} reached the origin"
            );
        }
    }
    assert_audited(&p, "ALLOW", "GET", "/base/a", None);
    assert_audited(&p, "ALLOW", "GET", "/base/b", None);
    assert_audited(&p, "ALLOW", "POST", "/base/c", None);
    let log = p.stderr();
    assert!(
        !log.contains(SECRET),
        "the secret is in the proxy's log:\n{log}"
    );
    assert!(
        !log.contains("connect_bypasses_l7"),
        "the CONNECT was refused:\n{log}"
    );
}

#[test]
fn inner_requests_outside_the_endpoint_rules_are_refused_as_endpoint_rule() {
    let fx = Fx::new();
    let profile = fx.profile(json!({}), json!({}));
    let p = start_proxy(
        &[
            "--profile",
            &profile,
            "--allow-endpoint",
            "api:GET:/base/ok/**",
        ],
        &[],
    );
    let resp = intercepted_request(&p, fx.origin.port, "GET", "/base/ok/a/b", &[]);
    assert_eq!(resp.status, 200, "{}\n{}", resp.head, resp.text());
    for (method, path) in [
        ("GET", "/base/other"),
        ("POST", "/base/ok/a"),
        ("GET", "/base/ok/../other"),
    ] {
        let resp = intercepted_request(&p, fx.origin.port, method, path, &[]);
        assert!(
            resp.status == 403 || (resp.status == 400 && path.contains("..")),
            "{method} {path}: {}\n{}",
            resp.head,
            resp.text()
        );
        if resp.status == 403 {
            assert!(
                resp.text().contains("endpoint_rule"),
                "{method} {path}: {}",
                resp.text()
            );
        }
    }
    assert_eq!(
        fx.origin.requests().len(),
        1,
        "a refused request reached the origin"
    );
    assert_audited(&p, "ALLOW", "GET", "/base/ok/a/b", None);
    assert_audited(&p, "DENY", "GET", "/base/other", Some("endpoint_rule"));
    assert_audited(&p, "DENY", "POST", "/base/ok/a", Some("endpoint_rule"));
}

#[test]
fn deny_endpoints_refuse_inner_requests_as_endpoint_default_deny() {
    let fx = Fx::new();
    let profile = fx.profile(
        json!({"deny_endpoints": [{"method": "POST", "path": "/base/user/keys"}]}),
        json!({}),
    );
    let p = start_proxy(&["--profile", &profile], &[]);
    let resp = intercepted_request(&p, fx.origin.port, "POST", "/base/user/keys", &[]);
    assert_eq!(resp.status, 403, "{}\n{}", resp.head, resp.text());
    assert!(
        resp.text().contains("endpoint_default_deny"),
        "{}",
        resp.text()
    );
    assert!(
        fx.origin.requests().is_empty(),
        "the denied request reached the origin"
    );
    for (method, path) in [("GET", "/base/user/keys"), ("POST", "/base/user/other")] {
        let resp = intercepted_request(&p, fx.origin.port, method, path, &[]);
        assert_eq!(
            resp.status,
            200,
            "{method} {path}: {}\n{}",
            resp.head,
            resp.text()
        );
    }
    assert_audited(
        &p,
        "DENY",
        "POST",
        "/base/user/keys",
        Some("endpoint_default_deny"),
    );
}

#[test]
fn url_scoped_allow_entries_admit_only_matching_requests_and_inject_nothing() {
    let ca = TestCa::new();
    let any_method = H2Origin::start(&ca);
    let get_only = H2Origin::start(&ca);
    let scoped = format!("https://localhost:{}/repos/acme/**", any_method.port);
    let get_scoped = format!("GET https://localhost:{}/x/**", get_only.port);
    // No credential route names these origins, so nono can only trust them through the
    // parent's SSL_CERT_FILE.
    let roots = ca.ca_path.to_string_lossy().into_owned();
    let p = start_proxy(
        &["--allow-domain", &scoped, "--allow-domain", &get_scoped],
        &[("SSL_CERT_FILE", &roots)],
    );
    assert!(
        p.json["ca_cert"].is_string(),
        "URL-scoped entries intercept: {}",
        p.json
    );

    for (origin, method, path, want) in [
        (&any_method, "GET", "/repos/acme/widgets", 200),
        (&any_method, "POST", "/repos/acme/issues", 200),
        (&any_method, "GET", "/repos/other/widgets", 403),
        (&any_method, "GET", "/repos/acmeX/widgets", 403),
        (&get_only, "GET", "/x/y", 200),
        (&get_only, "POST", "/x/y", 403),
        (&get_only, "GET", "/z", 403),
    ] {
        let resp = intercepted_request(&p, origin.port, method, path, &[]);
        assert_eq!(
            resp.status,
            want,
            "{method} {path}: {}\n{}",
            resp.head,
            resp.text()
        );
        if want == 403 {
            assert!(
                resp.text().contains("url_not_allowed"),
                "{method} {path}: {}",
                resp.text()
            );
        }
    }
    assert_eq!(
        any_method.requests().len(),
        2,
        "{:?}",
        any_method.requests()
    );
    assert_eq!(get_only.requests().len(), 1, "{:?}", get_only.requests());
    for req in any_method.requests().iter().chain(&get_only.requests()) {
        assert!(
            req.header("authorization").is_none(),
            "a URL-scoped entry injected a credential: {req:?}"
        );
    }
    assert_audited(&p, "ALLOW", "GET", "/repos/acme/widgets", None);
    assert_audited(
        &p,
        "DENY",
        "GET",
        "/repos/other/widgets",
        Some("url_not_allowed"),
    );
    assert_audited(&p, "DENY", "POST", "/x/y", Some("url_not_allowed"));
}

#[test]
fn a_plain_host_entry_beside_an_intercepted_route_stays_an_end_to_end_tunnel() {
    let fx = Fx::new();
    let other = H2Origin::start(&fx.ca);
    let profile = fx.profile(json!({}), json!({}));
    let p = start_proxy(&["--profile", &profile, "--allow-domain", "127.0.0.1"], &[]);
    let target = format!("127.0.0.1:{}", other.port);
    let tls = tunnel_tls(&p, &target, &[fx.ca.ca_der()], "127.0.0.1", &[b"http/1.1"])
        .unwrap_or_else(|e| panic!("the tunnel is not end to end: {e}"));
    let peer = tls.conn.peer_certificates().expect("peer certificates")[0].clone();
    assert!(
        peer == other.leaf_der(),
        "the client did not see the origin's own certificate"
    );
    let mut conn = H1Conn::new(tls);
    let resp = conn
        .request(
            "GET",
            "/plain",
            &target,
            &[("Authorization", CLIENT_JUNK)],
            b"",
        )
        .expect("request in the tunnel");
    assert_eq!(resp.status, 200, "{}", resp.head);
    assert_eq!(
        other.last().header("authorization"),
        Some(CLIENT_JUNK),
        "the tunnel changed the request"
    );
    let log = p.stderr();
    assert!(log.contains(&format!("ALLOW CONNECT {target}")), "{log}");
    assert_eq!(
        audit_lines(&log, "ALLOW", "GET", "/plain", None),
        0,
        "a tunnel was intercepted:\n{log}"
    );
}

#[test]
fn an_sni_other_than_the_connect_host_fails_the_handshake_and_is_audited_as_sni_mismatch() {
    let fx = Fx::new();
    let profile = fx.profile(json!({}), json!({}));
    let p = start_proxy(&["--profile", &profile], &[]);
    let ca = nono_ca(&p);
    match tunnel_tls(
        &p,
        &fx.authority(),
        std::slice::from_ref(&ca),
        "other.example",
        &[b"http/1.1"],
    ) {
        Ok(_) => panic!(
            "a handshake with SNI other.example succeeded on CONNECT {}",
            fx.authority()
        ),
        Err(e) => assert!(e.contains("TLS handshake"), "{e}"),
    }
    let deadline = Instant::now() + LOG_WAIT;
    while !p
        .stderr()
        .lines()
        .any(|l| l.contains("DENY") && l.contains("reason=sni_mismatch"))
    {
        assert!(
            Instant::now() < deadline,
            "no DENY ... reason=sni_mismatch line:\n{}",
            p.stderr()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // The positive control: the right SNI on the same proxy works.
    let resp = intercepted_request(&p, fx.origin.port, "GET", "/base/after", &[]);
    assert_eq!(resp.status, 200, "{}", resp.head);
    assert_eq!(
        fx.origin.requests().len(),
        1,
        "the mismatched connection reached the origin"
    );
}

#[test]
fn curl_over_http2_with_the_bundle_reaches_the_origin_over_http2_with_the_credential() {
    let fx = Fx::new();
    let profile = fx.profile(json!({}), json!({}));
    let p = start_proxy(&["--profile", &profile], &[]);
    let bundle = json_path(&p, "trust_bundle").to_string_lossy().into_owned();
    let proxy = format!("http://127.0.0.1:{}", p.port);
    let user = format!("nono:{}", p.token.as_deref().expect("token"));
    let (code, body, status, err) = curl(
        &[],
        &[
            "--proxy",
            &proxy,
            "--proxy-user",
            &user,
            "--cacert",
            &bundle,
            "--http2",
            "-H",
            &format!("Authorization: {CLIENT_JUNK}"),
            &fx.url("/h2?q=1"),
        ],
    );
    assert_eq!(
        code,
        0,
        "curl failed: {err}\n--- proxy stderr\n{}",
        p.stderr()
    );
    assert_eq!(
        status, "200 2",
        "curl did not negotiate HTTP/2 with nono: {body}"
    );
    let echoed: Value = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body}"));
    assert_eq!(
        echoed["version"], "HTTP/2",
        "the origin did not see HTTP/2: {echoed}"
    );
    assert_eq!(echoed["path"], "/base/h2?q=1", "{echoed}");
    assert_eq!(
        echoed["headers"]["authorization"],
        bearer(SECRET).as_str(),
        "{echoed}"
    );
    assert_audited(&p, "ALLOW", "GET", "/base/h2", None);
}

#[test]
fn curl_trusts_the_interception_through_curl_ca_bundle_alone() {
    let fx = Fx::new();
    let profile = fx.profile(json!({}), json!({}));
    let p = start_proxy(&["--profile", &profile], &[]);
    let mut env = proxy_vars(&p);
    env.push((
        "CURL_CA_BUNDLE".into(),
        p.json["env"]["CURL_CA_BUNDLE"]
            .as_str()
            .expect("CURL_CA_BUNDLE")
            .into(),
    ));
    let (code, body, status, err) = curl(&env, &[&fx.url("/env-only")]);
    assert_eq!(
        code,
        0,
        "curl failed: {err}\nenv: {env:?}\n--- proxy stderr\n{}",
        p.stderr()
    );
    assert!(status.starts_with("200"), "{status}: {body}");
    assert_eq!(
        fx.origin.last().header("authorization"),
        Some(bearer(SECRET).as_str())
    );
}

#[test]
fn python_stdlib_trusts_the_interception_through_ssl_cert_file_alone() {
    let fx = Fx::new();
    let profile = fx.profile(json!({}), json!({}));
    let p = start_proxy(&["--profile", &profile], &[]);
    let mut env = proxy_vars(&p);
    env.push((
        "SSL_CERT_FILE".into(),
        p.json["env"]["SSL_CERT_FILE"]
            .as_str()
            .expect("SSL_CERT_FILE")
            .into(),
    ));
    // urllib takes the proxy from https_proxy and the roots from OpenSSL's defaults, which
    // SSL_CERT_FILE replaces.
    let script = "import sys, urllib.request\n\
                  r = urllib.request.urlopen(sys.argv[1], timeout=20)\n\
                  print(r.status)\nprint(r.read().decode())\n";
    let mut cmd = client("/usr/bin/python3");
    cmd.envs(env.iter().map(|(k, v)| (k, v)))
        .args(["-c", script, &fx.url("/ssl-cert-file")]);
    let (code, out, err) = run_command(cmd, T);
    assert_eq!(
        code,
        0,
        "python failed:\n{out}\n{err}\n--- proxy stderr\n{}",
        p.stderr()
    );
    assert!(out.starts_with("200"), "{out}");
    assert_eq!(
        fx.origin.last().header("authorization"),
        Some(bearer(SECRET).as_str())
    );
}

/// The Python `requests` probe: GET argv[1] with the client's junk Authorization header,
/// print the status and the body.
const REQUESTS_SCRIPT: &str = "import os, sys\n\
    for k in ('NO_PROXY', 'no_proxy'):\n    os.environ.pop(k, None)\n\
    import requests\n\
    r = requests.get(sys.argv[1], headers={'Authorization': sys.argv[2]}, timeout=20)\n\
    print(r.status_code)\nprint(r.text)\n";

#[test]
fn python_requests_trusts_the_interception_through_requests_ca_bundle() {
    let fx = Fx::new();
    let profile = fx.profile(json!({}), json!({}));
    let p = start_proxy(&["--profile", &profile], &[]);
    let mut env = proxy_vars(&p);
    env.push((
        "REQUESTS_CA_BUNDLE".into(),
        p.json["env"]["REQUESTS_CA_BUNDLE"]
            .as_str()
            .expect("REQUESTS_CA_BUNDLE")
            .into(),
    ));
    let mut cmd = client("/usr/bin/python3");
    cmd.envs(env.iter().map(|(k, v)| (k, v))).args([
        "-c",
        REQUESTS_SCRIPT,
        &fx.url("/requests"),
        CLIENT_JUNK,
    ]);
    let (code, out, err) = run_command(cmd, T);
    assert_eq!(
        code, 0,
        "python requests failed (needs Debian's python3-requests):\n{out}\n{err}\n--- proxy stderr\n{}",
        p.stderr()
    );
    let (status, body) = out.split_once('\n').unwrap_or((&out, ""));
    assert_eq!(status, "200", "{out}");
    let echoed: Value = serde_json::from_str(body.trim()).unwrap_or_else(|e| panic!("{e}: {out}"));
    assert_eq!(
        echoed["headers"]["authorization"],
        bearer(SECRET).as_str(),
        "{echoed}"
    );
}

#[test]
fn a_websocket_upgrade_is_intercepted_with_the_credential_and_frames_echo_both_ways() {
    let fx = Fx::new();
    let profile = fx.profile(json!({}), json!({}));
    let p = start_proxy(&["--profile", &profile], &[]);
    let tls = tunnel_tls(
        &p,
        &fx.authority(),
        &[nono_ca(&p)],
        "localhost",
        &[b"http/1.1"],
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_ws_echo(tls, &fx.authority(), &[("Authorization", CLIENT_JUNK)]);
    let seen = fx.origin.last();
    assert_eq!(seen.path, "/base/ws");
    assert_eq!(
        seen.header("authorization"),
        Some(bearer(SECRET).as_str()),
        "the handshake lacked the real credential: {seen:?}"
    );
    assert_audited(&p, "ALLOW", "GET", "/base/ws", None);
}

#[test]
fn sse_events_are_relayed_as_they_are_sent() {
    let fx = Fx::new();
    let profile = fx.profile(json!({}), json!({}));
    let p = start_proxy(&["--profile", &profile], &[]);
    let gap = sse_gap(intercepted(&p, fx.origin.port), &fx.authority(), &[]);
    assert!(
        gap >= MIN_SSE_GAP,
        "the two events arrived {gap:?} apart although the origin sent them {SSE_GAP:?} apart: \
         the proxy buffered the stream"
    );
    assert_eq!(
        fx.origin.last().header("authorization"),
        Some(bearer(SECRET).as_str())
    );
}

#[test]
fn a_64_mib_upload_and_download_stream_through_the_interception() {
    let fx = Fx::new();
    let profile = fx.profile(json!({}), json!({}));
    let p = start_proxy(&["--profile", &profile], &[]);
    let mut conn = intercepted(&p, fx.origin.port);
    let started = Instant::now();
    let body = upload(&mut conn, &fx.authority(), BIG_BYTES, &[]);
    assert_eq!(
        body["headers"]["authorization"],
        bearer(SECRET).as_str(),
        "{body}"
    );
    let mut conn = intercepted(&p, fx.origin.port);
    assert_download(&mut conn, &fx.authority(), BIG_BYTES, &[]);
    eprintln!(
        "64 MiB up and 64 MiB down through interception: {:?}",
        started.elapsed()
    );
    assert_audited(&p, "ALLOW", "POST", "/base/upload", None);
    assert_audited(&p, "ALLOW", "GET", "/base/download", None);
}

#[test]
fn git_clone_and_push_over_https_work_only_because_nono_injects_the_credential() {
    let ca = TestCa::new();
    let git = GitHttpServer::start(&ca, &basic(GIT_USER_PASS));
    assert!(Path::new(GIT_HTTP_BACKEND).exists());
    let dir = TempDir::new("git-icpt");
    let network = json!({
        "custom_credentials": {"git": {
            "upstream": format!("https://localhost:{}", git.port),
            "credential_key": "env://NONO_E2E_GIT_CRED",
            "inject_mode": "basic_auth",
            "tls_ca": ca.ca_path,
        }},
        "credentials": ["git"],
    });
    let profile = write_profile(&dir, "profile.json", network);
    let p = start_proxy(
        &["--profile", &profile],
        &[("NONO_E2E_GIT_CRED", GIT_USER_PASS)],
    );
    let bundle = json_path(&p, "trust_bundle");
    let config_owned = [
        format!("http.proxy={}", p.url),
        format!("http.sslCAInfo={}", bundle.display()),
    ];
    let config = ["-c", &config_owned[0], "-c", &config_owned[1]];

    let dest = dir.path().join("clone");
    let mut c = git.client();
    c.args(config).args(["clone", &git.url()]).arg(&dest);
    let (code, out, err) = run_command(c, T);
    assert_eq!(
        code,
        0,
        "git clone through nono failed:\n{out}\n{err}\nserver saw: {:?}\n--- proxy stderr\n{}",
        git.requests(),
        p.stderr()
    );
    assert!(dest.join("README").exists(), "the clone has no README");
    commit_and_push(&git, &dest, &config, "pushed through nono");
    assert_eq!(
        git.main_log().first().map(String::as_str),
        Some("pushed through nono")
    );

    let seen = git.requests();
    assert!(
        seen.iter()
            .any(|r| r.method == "POST" && r.path.ends_with("/git-receive-pack")),
        "no receive-pack request: {seen:?}"
    );
    for req in &seen {
        assert_eq!(
            req.authorization.as_deref(),
            Some(basic(GIT_USER_PASS).as_str()),
            "a request without the injected credential: {req:?}"
        );
    }
    assert_audited(&p, "ALLOW", "POST", "/repo.git/git-receive-pack", None);
    assert!(
        !p.stderr().contains("git-secret-41c9"),
        "the secret is in the log"
    );
}

// ---------------------------------------------------------------------------------------
// Inside `nono run`
// ---------------------------------------------------------------------------------------

#[test]
fn run_child_curl_trusts_the_bundle_from_the_environment_and_gets_the_credential_injected() {
    let fx = Fx::new();
    let profile = fx.profile(json!({}), json!({}));
    // The intercepted host is left out of NO_PROXY, even `localhost`: curl goes through
    // HTTPS_PROXY with the environment nono set and nothing else.
    let (code, out, err) = run_nono_env(
        &[
            "run",
            "--profile",
            &profile,
            "--",
            "/usr/bin/curl",
            "-sS",
            "--fail",
            "--max-time",
            "20",
            "-H",
            &format!("Authorization: {CLIENT_JUNK}"),
            &fx.url("/run-curl"),
        ],
        &[],
    );
    assert_eq!(code, 0, "curl in the sandbox failed:\n{out}\n{err}");
    let echoed: Value =
        serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("{e}: {out}\n{err}"));
    assert_eq!(echoed["path"], "/base/run-curl", "{echoed}");
    assert_eq!(
        echoed["headers"]["authorization"],
        bearer(SECRET).as_str(),
        "{echoed}"
    );
}

#[test]
fn run_child_python_requests_trusts_the_bundle_from_the_environment() {
    let fx = Fx::new();
    let profile = fx.profile(json!({}), json!({}));
    let (code, out, err) = run_nono_env(
        &[
            "run",
            "--profile",
            &profile,
            "--",
            "/usr/bin/python3",
            "-c",
            REQUESTS_SCRIPT,
            &fx.url("/run-python"),
            CLIENT_JUNK,
        ],
        &[],
    );
    assert_eq!(
        code, 0,
        "python requests in the sandbox failed (needs python3-requests):\n{out}\n{err}"
    );
    let (status, body) = out.split_once('\n').unwrap_or((&out, ""));
    assert_eq!(status, "200", "{out}\n{err}");
    let echoed: Value = serde_json::from_str(body.trim()).unwrap_or_else(|e| panic!("{e}: {out}"));
    assert_eq!(echoed["path"], "/base/run-python", "{echoed}");
    assert_eq!(
        echoed["headers"]["authorization"],
        bearer(SECRET).as_str(),
        "{echoed}"
    );
}

#[test]
fn an_excluded_route_host_is_not_intercepted_so_connect_stays_refused_and_no_ca_is_made() {
    let fx = Fx::new();
    let profile = fx.profile(json!({}), json!({"intercept_exclude": ["localhost"]}));
    let p = start_proxy(&["--profile", &profile], &[]);
    assert!(
        p.json["ca_cert"].is_null() && p.json["trust_bundle"].is_null(),
        "nothing needs interception once the only route host is excluded: {}",
        p.json
    );
    match connect_tunnel(p.port, &fx.authority(), Some(&proxy_auth(&p))) {
        Ok(_) => panic!("CONNECT to an excluded route host was let through"),
        Err((status, body)) => {
            assert_eq!(status, 403, "{body}");
            assert!(body.contains("connect_bypasses_l7"), "{body}");
        }
    }
    assert!(
        fx.origin.requests().is_empty(),
        "the origin saw {:?}",
        fx.origin.requests()
    );
}

#[test]
fn conflicting_interception_settings_stop_nono_at_start() {
    let fx = Fx::new();
    let scoped = format!("https://{}/other/**", fx.authority());
    let cases: Vec<(&str, String, Vec<&str>)> = vec![
        (
            "a URL-scoped entry on an excluded host",
            write_profile(
                &fx.dir,
                "excluded.json",
                json!({"allow_domain": [scoped], "intercept_exclude": ["localhost"]}),
            ),
            vec!["excluded from interception"],
        ),
        (
            "a URL-scoped entry on a credential route's host",
            fx.profile(json!({}), json!({"allow_domain": [scoped]})),
            vec!["credential route", "--allow-endpoint"],
        ),
        (
            "a URL-scoped entry without a path",
            write_profile(
                &fx.dir,
                "nopath.json",
                json!({"allow_domain": [format!("https://{}", fx.authority())]}),
            ),
            vec!["no path"],
        ),
        (
            "a profile CA certificate without its key",
            write_profile(
                &fx.dir,
                "halfca.json",
                json!({"allow_domain": ["example.com"], "proxy_ca": {"cert": fx.ca.ca_path}}),
            ),
            vec!["without its key"],
        ),
        (
            "a profile validity out of range",
            write_profile(
                &fx.dir,
                "validity.json",
                json!({"allow_domain": ["example.com"], "proxy_ca": {"validity_days": 400}}),
            ),
            vec!["400 days", "1 to 365"],
        ),
    ];
    for (what, profile, wanted) in &cases {
        let (code, out, err) = run_nono_env(&["proxy", "--profile", profile], &[]);
        assert!(
            code != 0 && out.is_empty(),
            "{what}: exited {code}\n{out}\n{err}"
        );
        for w in wanted {
            assert!(err.contains(w), "{what}: the error lacks `{w}`:\n{err}");
        }
    }
}

#[test]
fn a_profile_url_scoped_entry_intercepts_and_plain_http_to_that_host_is_refused() {
    let ca = TestCa::new();
    let origin = H2Origin::start(&ca);
    let dir = TempDir::new("icpt-profile");
    let profile = write_profile(
        &dir,
        "scoped.json",
        json!({"allow_domain": [format!("GET https://localhost:{}/docs/**", origin.port)]}),
    );
    let roots = ca.ca_path.to_string_lossy().into_owned();
    let p = start_proxy(&["--profile", &profile], &[("SSL_CERT_FILE", &roots)]);
    let ok = intercepted_request(&p, origin.port, "GET", "/docs/a", &[]);
    assert_eq!(ok.status, 200, "{}", ok.head);
    let no = intercepted_request(&p, origin.port, "DELETE", "/docs/a", &[]);
    assert_eq!(no.status, 403, "{}", no.head);
    // Plain HTTP (absolute form) to the same host and port would skip the path rules.
    let (status, body) = raw_request(
        p.port,
        format!(
            "GET http://localhost:{port}/docs/a HTTP/1.1\r\nHost: localhost:{port}\r\nProxy-Authorization: {}\r\n\r\n",
            proxy_auth(&p),
            port = origin.port
        )
        .as_bytes(),
    );
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("url_rules_need_https"), "{body}");
    // An allowlist of only URL-scoped entries admits their hosts, not every host.
    let other = format!("127.0.0.1:{}", origin.port);
    match connect_tunnel(p.port, &other, Some(&proxy_auth(&p))) {
        Ok(_) => panic!("CONNECT {other} was admitted by an allowlist that does not name it"),
        Err((status, body)) => assert_eq!(status, 403, "{body}"),
    }
    assert_eq!(
        p.json["allowed_hosts"][0].as_str(),
        Some(format!("GET https://localhost:{}/docs/**", origin.port).as_str()),
        "{}",
        p.json
    );
    assert_eq!(origin.requests().len(), 1, "{:?}", origin.requests());
}

#[test]
fn an_h2c_upgrade_inside_a_tunnel_is_refused_so_no_request_passes_unchecked() {
    let fx = Fx::new();
    let profile = fx.profile(json!({}), json!({}));
    let p = start_proxy(&["--profile", &profile], &[]);
    let before = fx.origin.requests().len();
    let mut conn = intercepted(&p, fx.origin.port);
    let resp = conn
        .request(
            "GET",
            "/base/a",
            &fx.authority(),
            &[
                ("Connection", "Upgrade, HTTP2-Settings"),
                ("Upgrade", "h2c"),
                ("HTTP2-Settings", "AAMAAABkAARAAAAAAAIAAAAA"),
            ],
            b"",
        )
        .expect("request in the tunnel");
    assert_eq!(resp.status, 400, "{}\n{}", resp.head, resp.text());
    assert!(
        resp.text().contains("upgrade_not_websocket"),
        "{}",
        resp.text()
    );
    assert_eq!(
        fx.origin.requests().len(),
        before,
        "the h2c upgrade reached the origin"
    );
    assert_audited(&p, "DENY", "GET", "/base/a", Some("upgrade_not_websocket"));
}

#[test]
fn upgraded_websockets_keep_their_max_connections_slot() {
    let fx = Fx::new();
    let profile = fx.profile(json!({}), json!({}));
    let p = start_proxy(&["--profile", &profile, "--max-connections", "2"], &[]);
    let mut open = Vec::new();
    for _ in 0..2 {
        let tls = tunnel_tls(
            &p,
            &fx.authority(),
            &[nono_ca(&p)],
            "localhost",
            &[b"http/1.1"],
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let (mut ws, _) = WsClient::handshake(tls, &fx.authority(), "/base/ws", &[])
            .unwrap_or_else(|resp| panic!("WebSocket upgrade refused:\n{resp}"));
        ws.recv().expect("greeting");
        open.push(ws);
    }
    // Both slots are held by the live WebSockets, although hyper is done with their requests.
    match connect_tunnel(p.port, &fx.authority(), Some(&proxy_auth(&p))) {
        Ok(_) => panic!("a third connection was admitted while two WebSockets hold both slots"),
        Err((status, body)) => assert_eq!(status, 503, "{body}"),
    }
    drop(open);
    let deadline = Instant::now() + LOG_WAIT;
    loop {
        match connect_tunnel(p.port, &fx.authority(), Some(&proxy_auth(&p))) {
            Ok(_) => break,
            Err((503, _)) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(50))
            }
            Err(e) => panic!("the slots were not given back once the WebSockets closed: {e:?}"),
        }
    }
}

#[test]
fn nono_run_refuses_a_ca_key_the_sandbox_could_read_or_rewrite() {
    let dir = TempDir::new("icpt-cakey");
    let work = dir.path().join("work");
    std::fs::create_dir_all(&work).expect("mkdir");
    let key = rcgen::KeyPair::generate().expect("key");
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let cert = params.self_signed(&key).expect("self-signed CA");
    std::fs::write(work.join("ca.pem"), cert.pem()).expect("write cert");
    std::fs::write(work.join("ca.key"), key.serialize_pem()).expect("write key");
    let (cert_path, key_path) = (work.join("ca.pem"), work.join("ca.key"));
    let (cert_s, key_s) = (
        cert_path.to_string_lossy().into_owned(),
        key_path.to_string_lossy().into_owned(),
    );
    let work_s = work.to_string_lossy().into_owned();
    for grant in ["--allow", "--read"] {
        let (code, out, err) = run_nono_env(
            &[
                "run",
                grant,
                &work_s,
                "--allow-domain",
                "https://localhost:9/x/**",
                "--proxy-ca-cert",
                &cert_s,
                "--proxy-ca-key",
                &key_s,
                "--",
                "sh",
                "-c",
                "echo CHILD_RAN",
            ],
            &[],
        );
        assert_eq!(code, 125, "{grant}: {out}\n{err}");
        assert!(!out.contains("CHILD_RAN"), "{grant}: the command ran");
        // Writable: refused as self-editable; readable only: the key would be the child's.
        let want = if grant == "--allow" {
            "beneath the read-write grant"
        } else {
            "can read"
        };
        assert!(
            err.contains("TLS interception CA") && err.contains(want),
            "{grant}: {err}"
        );
    }
}
