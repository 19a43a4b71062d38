//! End-to-end tests of credential routes: the proxy runs in-process, the upstream is a local
//! HTTPS echo server whose certificate is signed by a CA the test generates (trusted through
//! the route's `tls_ca`).
// Test code: a failed unwrap is a test failure with its location, which is what we want.
#![allow(clippy::unwrap_used)]

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::stream;
use http::{Request, Response, StatusCode};
use http_body_util::{combinators::BoxBody, BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper_util::rt::TokioIo;
use nono_proxy::{
    CredentialSource, EndpointRule, InjectMode, ProxyConfig, ProxyHandle, RouteConfig,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;

type TestBody = BoxBody<Bytes, Infallible>;

fn full(s: impl Into<Bytes>) -> TestBody {
    Full::new(s.into()).boxed()
}

/// A CA, the upstream's certificate signed by it, and the CA's PEM on disk.
struct Pki {
    ca_path: PathBuf,
    acceptor: tokio_rustls::TlsAcceptor,
    _dir: TempDir,
}

struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        let p = std::env::temp_dir().join(format!(
            "nono-rev-{tag}-{}-{}",
            std::process::id(),
            rand_suffix()
        ));
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn rand_suffix() -> u64 {
    use std::time::{SystemTime, UNIX_EPOCH};
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        ^ u64::from(std::process::id())
}

fn pki() -> Pki {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "nono test CA");
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let leaf_key = rcgen::KeyPair::generate().unwrap();
    let leaf =
        rcgen::CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()])
            .unwrap()
            .signed_by(&leaf_key, &ca, &ca_key)
            .unwrap();
    let dir = TempDir::new("pki");
    let ca_path = dir.0.join("ca.pem");
    std::fs::write(&ca_path, ca.pem()).unwrap();
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(leaf_key.serialize_der().into());
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![leaf.der().clone()], key)
        .unwrap();
    Pki {
        ca_path,
        acceptor: tokio_rustls::TlsAcceptor::from(Arc::new(config)),
        _dir: dir,
    }
}

/// The upstream: echoes requests as JSON; `/sse` streams two events, the second only after
/// `release` is notified; `/upload` counts body bytes as they stream; `/redirect` answers 302.
struct Upstream {
    addr: SocketAddr,
    release: Arc<Notify>,
}

async fn upstream_service(
    req: Request<Incoming>,
    release: Arc<Notify>,
) -> Result<Response<TestBody>, Infallible> {
    let path = req.uri().path().to_string();
    if path.ends_with("/sse") {
        let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(4);
        tokio::spawn(async move {
            let _ = tx.send(Bytes::from_static(b"data: one\n\n")).await;
            release.notified().await;
            let _ = tx.send(Bytes::from_static(b"data: two\n\n")).await;
        });
        let s = stream::unfold(rx, |mut rx| async move {
            rx.recv()
                .await
                .map(|b| (Ok::<_, Infallible>(Frame::data(b)), rx))
        });
        let mut r = Response::new(StreamBody::new(s).boxed());
        r.headers_mut()
            .insert("content-type", "text/event-stream".parse().unwrap());
        return Ok(r);
    }
    if path.ends_with("/redirect") {
        let mut r = Response::new(full(""));
        *r.status_mut() = StatusCode::FOUND;
        r.headers_mut()
            .insert("location", "https://elsewhere.invalid/".parse().unwrap());
        return Ok(r);
    }
    let method = req.method().to_string();
    let uri = req.uri().to_string();
    let headers: Vec<(String, String)> = req
        .headers()
        .iter()
        .map(|(k, v)| {
            (
                k.to_string(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let mut body = req.into_body();
    let mut n: u64 = 0;
    while let Some(f) = body.frame().await {
        if let Ok(d) = f.unwrap().into_data() {
            n += d.len() as u64;
        }
    }
    let json =
        serde_json::json!({ "method": method, "uri": uri, "headers": headers, "body_len": n });
    Ok(Response::new(full(json.to_string())))
}

async fn start_upstream(pki: &Pki) -> Upstream {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let release = Arc::new(Notify::new());
    let acceptor = pki.acceptor.clone();
    let rel = release.clone();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let acceptor = acceptor.clone();
            let rel = rel.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let svc = hyper::service::service_fn(move |req| upstream_service(req, rel.clone()));
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tls), svc)
                    .await;
            });
        }
    });
    Upstream { addr, release }
}

fn route(
    name: &str,
    up: &Upstream,
    pki: &Pki,
    inject: InjectMode,
    secret_cmd: &str,
) -> RouteConfig {
    let mut r = RouteConfig::new(
        name,
        url::Url::parse(&format!("https://127.0.0.1:{}/base", up.addr.port())).unwrap(),
        inject,
        CredentialSource::parse(&format!("cmd://printf %s '{secret_cmd}'")).unwrap(),
    );
    r.tls_ca = Some(pki.ca_path.clone());
    r.env_var = Some(format!("{}_KEY", name.to_uppercase()));
    r.base_url_env = Some(format!("{}_BASE_URL", name.to_uppercase()));
    r
}

fn bearer() -> InjectMode {
    InjectMode::Header {
        name: "Authorization".into(),
        format: "Bearer {}".into(),
    }
}

async fn start_proxy(routes: Vec<RouteConfig>) -> ProxyHandle {
    let cfg = ProxyConfig {
        routes,
        ..ProxyConfig::default()
    };
    nono_proxy::start(cfg).await.unwrap()
}

fn phantom(h: &ProxyHandle, var: &str) -> String {
    h.route_env()
        .into_iter()
        .find(|(k, _)| k == var)
        .map(|(_, v)| v)
        .unwrap()
}

/// Sends one request over a fresh connection; returns status and body text.
async fn send(h: &ProxyHandle, req: Request<TestBody>) -> (StatusCode, String) {
    let tcp = TcpStream::connect(h.addr()).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
        .await
        .unwrap();
    tokio::spawn(conn);
    let resp = sender.send_request(req).await.unwrap();
    let status = resp.status();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

fn get(path: &str, headers: &[(&str, &str)]) -> Request<TestBody> {
    let mut b = Request::get(path).header("host", "127.0.0.1");
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    b.body(full("")).unwrap()
}

fn header<'a>(echo: &'a serde_json::Value, name: &str) -> Vec<&'a str> {
    echo["headers"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p[0].as_str().unwrap().eq_ignore_ascii_case(name))
        .map(|p| p[1].as_str().unwrap())
        .collect()
}

#[tokio::test]
async fn every_inject_mode_puts_the_secret_in_place_and_the_phantom_nowhere() {
    let pki = pki();
    let up = start_upstream(&pki).await;
    let routes = vec![
        route("openai", &up, &pki, bearer(), "sk-openai"),
        route(
            "anthropic",
            &up,
            &pki,
            InjectMode::Header {
                name: "x-api-key".into(),
                format: "{}".into(),
            },
            "sk-ant",
        ),
        route(
            "github",
            &up,
            &pki,
            InjectMode::Header {
                name: "Authorization".into(),
                format: "token {}".into(),
            },
            "ghp_x",
        ),
        route(
            "gemini",
            &up,
            &pki,
            InjectMode::QueryParam { name: "key".into() },
            "AIza+y",
        ),
        route(
            "telegram",
            &up,
            &pki,
            InjectMode::UrlPath {
                pattern: "/bot{}/".into(),
                replacement: "/bot{}/".into(),
            },
            "123:abc",
        ),
        route("git", &up, &pki, InjectMode::BasicAuth, "ghp_basic"),
    ];
    let h = start_proxy(routes).await;
    let env = h.route_env();
    assert!(env.contains(&(
        "OPENAI_BASE_URL".into(),
        format!("http://127.0.0.1:{}/openai", h.port())
    )));

    let ph = phantom(&h, "OPENAI_KEY");
    let (s, body) = send(
        &h,
        get(
            "/openai/chat/completions?stream=true",
            &[("authorization", &format!("Bearer {ph}"))],
        ),
    )
    .await;
    assert_eq!(s, 200, "{body}");
    let echo: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(echo["uri"], "/base/chat/completions?stream=true");
    assert_eq!(header(&echo, "authorization"), ["Bearer sk-openai"]);
    assert_eq!(
        header(&echo, "host"),
        [format!("127.0.0.1:{}", up.addr.port())]
    );
    assert!(!body.contains(&ph));

    let ph = phantom(&h, "ANTHROPIC_KEY");
    let (s, body) = send(&h, get("/anthropic/v1/messages", &[("x-api-key", &ph)])).await;
    assert_eq!(s, 200, "{body}");
    assert!(body.contains("sk-ant") && !body.contains(&ph));

    let ph = phantom(&h, "GITHUB_KEY");
    let (s, body) = send(
        &h,
        get("/github/user", &[("authorization", &format!("token {ph}"))]),
    )
    .await;
    assert_eq!(s, 200, "{body}");
    assert!(body.contains("token ghp_x") && !body.contains(&ph));

    let ph = phantom(&h, "GEMINI_KEY");
    let (s, body) = send(&h, get(&format!("/gemini/models?alt=sse&key={ph}"), &[])).await;
    assert_eq!(s, 200, "{body}");
    let echo: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(echo["uri"], "/base/models?alt=sse&key=AIza%2By");

    let ph = phantom(&h, "TELEGRAM_KEY");
    let (s, body) = send(&h, get(&format!("/telegram/bot{ph}/getMe"), &[])).await;
    assert_eq!(s, 200, "{body}");
    let echo: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(echo["uri"], "/base/bot123:abc/getMe");

    use base64::Engine;
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let ph = phantom(&h, "GIT_KEY");
    let (s, body) = send(
        &h,
        get(
            "/git/repo.git/info/refs",
            &[(
                "authorization",
                &format!("Basic {}", b64(&format!("x:{ph}"))),
            )],
        ),
    )
    .await;
    assert_eq!(s, 200, "{body}");
    assert!(body.contains(&format!("Basic {}", b64("x:ghp_basic"))));
    h.shutdown().await;
}

#[tokio::test]
async fn wrong_or_missing_phantom_is_401_and_the_session_token_works_but_never_goes_upstream() {
    let pki = pki();
    let up = start_upstream(&pki).await;
    let h = start_proxy(vec![
        route("openai", &up, &pki, bearer(), "sk-1"),
        route("other", &up, &pki, bearer(), "sk-2"),
    ])
    .await;
    let other = phantom(&h, "OTHER_KEY");
    for hdrs in [
        vec![],
        vec![("authorization", "Bearer nono_phantom_00")],
        vec![("authorization", format!("Bearer {other}").leak() as &str)],
    ] {
        let (s, _) = send(&h, get("/openai/x", &hdrs)).await;
        assert_eq!(s, 401, "{hdrs:?}");
    }
    let token = h.token().unwrap().expose().to_string();
    let proxy_auth = format!("Bearer {token}");
    let (s, body) = send(
        &h,
        get(
            "/openai/x",
            &[
                ("x-nono-token", &token),
                ("proxy-authorization", &proxy_auth),
                ("connection", "x-hop"),
                ("x-hop", "1"),
            ],
        ),
    )
    .await;
    assert_eq!(s, 200, "{body}");
    assert!(!body.contains(&token), "{body}");
    let echo: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert!(header(&echo, "proxy-authorization").is_empty() && header(&echo, "x-hop").is_empty());
    assert_eq!(header(&echo, "authorization"), ["Bearer sk-1"]);
    let (s, _) = send(&h, get("/nosuch/x", &[("x-nono-token", &token)])).await;
    assert_eq!(s, 404);
    let denied: Vec<_> = h
        .audit()
        .drain()
        .into_iter()
        .filter(|e| e.status == 401)
        .collect();
    assert_eq!(denied.len(), 3);
    assert!(denied
        .iter()
        .all(|e| e.reason.as_deref() == Some("phantom_token_required") && e.target == "openai"));
    h.shutdown().await;
}

#[tokio::test]
async fn server_sent_events_arrive_before_the_upstream_finishes() {
    let pki = pki();
    let up = start_upstream(&pki).await;
    let h = start_proxy(vec![route("openai", &up, &pki, bearer(), "sk")]).await;
    let ph = phantom(&h, "OPENAI_KEY");
    let tcp = TcpStream::connect(h.addr()).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
        .await
        .unwrap();
    tokio::spawn(conn);
    let resp = sender
        .send_request(get(
            "/openai/sse",
            &[("authorization", &format!("Bearer {ph}"))],
        ))
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let mut body = resp.into_body();
    let first = tokio::time::timeout(Duration::from_secs(5), body.frame())
        .await
        .expect("first event not streamed");
    assert_eq!(
        first.unwrap().unwrap().into_data().unwrap(),
        Bytes::from_static(b"data: one\n\n")
    );
    up.release.notify_one();
    let second = body.frame().await.unwrap().unwrap().into_data().unwrap();
    assert_eq!(second, Bytes::from_static(b"data: two\n\n"));
    h.shutdown().await;
}

#[tokio::test]
async fn a_100_mib_chunked_upload_streams_through() {
    let pki = pki();
    let up = start_upstream(&pki).await;
    let h = start_proxy(vec![route("openai", &up, &pki, bearer(), "sk")]).await;
    let ph = phantom(&h, "OPENAI_KEY");
    let chunk = Bytes::from(vec![b'x'; 1024 * 1024]);
    let s = stream::iter((0..100).map(move |_| Ok::<_, Infallible>(Frame::data(chunk.clone()))));
    let req = Request::post("/openai/upload")
        .header("host", "127.0.0.1")
        .header("authorization", format!("Bearer {ph}"))
        .body(StreamBody::new(s).boxed())
        .unwrap();
    let (status, body) = send(&h, req).await;
    assert_eq!(status, 200, "{body}");
    let echo: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(echo["body_len"], 100 * 1024 * 1024);
    h.shutdown().await;
}

#[tokio::test]
async fn endpoint_rules_allow_and_deny_on_the_normalised_path() {
    let pki = pki();
    let up = start_upstream(&pki).await;
    let mut r = route("github", &up, &pki, bearer(), "sk");
    r.endpoint_rules = vec![
        EndpointRule::new("GET", "/base/repos/*/issues").unwrap(),
        EndpointRule::new("*", "/base/public/**").unwrap(),
    ];
    let h = start_proxy(vec![r]).await;
    let auth = format!("Bearer {}", phantom(&h, "GITHUB_KEY"));
    let a = [("authorization", auth.as_str())];
    assert_eq!(send(&h, get("/github/repos/nono/issues", &a)).await.0, 200);
    assert_eq!(send(&h, get("/github/public/a/b", &a)).await.0, 200);
    assert_eq!(send(&h, get("/github/repos/nono/pulls", &a)).await.0, 403);
    assert_eq!(
        send(&h, get("/github/public/%2e%2e/admin", &a)).await.0,
        403
    );
    assert_eq!(send(&h, get("/github/public/../admin", &a)).await.0, 403);
    let post = Request::post("/github/repos/nono/issues")
        .header("host", "x")
        .header("authorization", &auth)
        .body(full(""))
        .unwrap();
    assert_eq!(send(&h, post).await.0, 403);
    let denied = h
        .audit()
        .drain()
        .into_iter()
        .filter(|e| e.reason.as_deref() == Some("endpoint_rule"))
        .count();
    assert_eq!(denied, 4);
    h.shutdown().await;
}

async fn raw(h: &ProxyHandle, text: &str) -> String {
    let mut tcp = TcpStream::connect(h.addr()).await.unwrap();
    tcp.write_all(text.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), tcp.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test]
async fn connect_to_another_port_or_forwarding_to_a_route_host_is_refused() {
    let pki = pki();
    let up = start_upstream(&pki).await;
    let h = start_proxy(vec![route("openai", &up, &pki, bearer(), "sk")]).await;
    let token = h.token().unwrap().expose().to_string();
    let p = up.addr.port();
    // The route's own port is intercepted (tests/intercept.rs); any other port of its host
    // would be a tunnel around the route's rules.
    let other = if p == 1 { 2 } else { p - 1 };
    let out = raw(&h, &format!("CONNECT 127.0.0.1:{other} HTTP/1.1\r\nHost: 127.0.0.1:{other}\r\nProxy-Authorization: Bearer {token}\r\nConnection: close\r\n\r\n")).await;
    assert!(
        out.starts_with("HTTP/1.1 403") && out.contains("connect_bypasses_l7"),
        "{out}"
    );
    let out = raw(&h, &format!("GET http://127.0.0.1:{p}/openai/x HTTP/1.1\r\nHost: 127.0.0.1:{p}\r\nProxy-Authorization: Bearer {token}\r\nConnection: close\r\n\r\n")).await;
    assert!(
        out.starts_with("HTTP/1.1 403") && out.contains("connect_bypasses_l7"),
        "{out}"
    );
    h.shutdown().await;
}

#[tokio::test]
async fn hostile_paths_never_change_the_host_or_the_credential() {
    let pki = pki();
    let up = start_upstream(&pki).await;
    let h = start_proxy(vec![
        route("a", &up, &pki, bearer(), "secret-a"),
        route("b", &up, &pki, bearer(), "secret-b"),
    ])
    .await;
    let pa = phantom(&h, "A_KEY");
    let pb = phantom(&h, "B_KEY");
    let auth = format!("Bearer {pa}");
    let a = [("authorization", auth.as_str())];
    assert_eq!(send(&h, get("/a/..", &a)).await.0, 400);
    assert_eq!(send(&h, get("/a/%2e%2e/b/x", &a)).await.0, 400);
    assert_eq!(send(&h, get("/a/x%2fy", &a)).await.0, 400);
    for (path, expect) in [
        ("//evil.example/x", "/base/evil.example/x"),
        ("/user@evil.example/x", "/base/user@evil.example/x"),
        ("/x/../y", "/base/y"),
    ] {
        let (s, body) = send(&h, get(&format!("/a{path}"), &a)).await;
        assert_eq!(s, 200, "{path}: {body}");
        let echo: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(echo["uri"], expect, "{path}");
    }
    // Two pipelined requests on one connection: the second, for `b`, with `a`'s phantom is
    // refused; with its own phantom it gets `b`'s credential.
    let two = format!(
        "GET /a/one HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {pa}\r\n\r\nGET /b/two HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {pa}\r\n\r\nGET /b/three HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {pb}\r\nConnection: close\r\n\r\n"
    );
    let out = raw(&h, &two).await;
    let statuses: Vec<&str> = out
        .match_indices("HTTP/1.1 ")
        .map(|(i, _)| &out[i + 9..i + 12])
        .collect();
    assert_eq!(statuses, ["200", "401", "200"], "{out}");
    assert!(out.contains("secret-a") && out.contains("secret-b"));
    let first_b = out.find("secret-b").unwrap();
    assert!(out[..first_b].contains("/base/one") && out[first_b..].contains("/base/three"));
    h.shutdown().await;
}

#[tokio::test]
async fn redirects_are_returned_not_followed() {
    let pki = pki();
    let up = start_upstream(&pki).await;
    let h = start_proxy(vec![route("a", &up, &pki, bearer(), "s")]).await;
    let auth = format!("Bearer {}", phantom(&h, "A_KEY"));
    let tcp = TcpStream::connect(h.addr()).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
        .await
        .unwrap();
    tokio::spawn(conn);
    let resp = sender
        .send_request(get("/a/redirect", &[("authorization", &auth)]))
        .await
        .unwrap();
    assert_eq!(resp.status(), 302);
    assert_eq!(resp.headers()["location"], "https://elsewhere.invalid/");
    h.shutdown().await;
}

#[tokio::test]
async fn an_untrusted_upstream_certificate_is_refused_with_502() {
    let pki = pki();
    let up = start_upstream(&pki).await;
    let mut r = route("a", &up, &pki, bearer(), "s");
    r.tls_ca = None;
    let h = start_proxy(vec![r]).await;
    let auth = format!("Bearer {}", phantom(&h, "A_KEY"));
    let (s, body) = send(&h, get("/a/x", &[("authorization", &auth)])).await;
    assert_eq!(s, 502);
    assert!(body.contains("upstream_tls_failed"), "{body}");
    h.shutdown().await;
}

#[tokio::test]
async fn credential_sources_env_file_after_start_and_command() {
    let pki = pki();
    let up = start_upstream(&pki).await;
    let dir = TempDir::new("src");
    let file = dir.0.join("key");
    let mut env_route = route("env", &up, &pki, bearer(), "unused");
    // PATH is always set; reading it avoids set_var in a multithreaded test process.
    env_route.source = CredentialSource::parse("env://PATH").unwrap();
    let mut file_route = route("file", &up, &pki, bearer(), "unused");
    file_route.source = CredentialSource::parse(&format!("file://{}", file.display())).unwrap();
    file_route.optional = true;
    let cmd_route = route("cmd", &up, &pki, bearer(), "from-cmd");
    let h = start_proxy(vec![env_route, file_route, cmd_route]).await;
    let status = h.routes_status();
    assert!(status
        .iter()
        .find(|s| s.name == "file")
        .is_some_and(|s| !s.loaded && s.error.is_some()));
    assert!(status.iter().all(|s| !s.source.is_empty()));

    let auth = |v: &str| format!("Bearer {}", phantom(&h, v));
    let (s, body) = send(&h, get("/env/x", &[("authorization", &auth("ENV_KEY"))])).await;
    assert_eq!(s, 200);
    assert!(body.contains(&format!("Bearer {}", std::env::var("PATH").unwrap())));
    let (s, body) = send(&h, get("/cmd/x", &[("authorization", &auth("CMD_KEY"))])).await;
    assert!(s == 200 && body.contains("Bearer from-cmd"), "{body}");

    let (s, body) = send(&h, get("/file/x", &[("authorization", &auth("FILE_KEY"))])).await;
    assert_eq!(s, 503);
    assert!(body.contains("credential_unavailable"));
    std::fs::write(&file, "written-later\n").unwrap();
    let (s, body) = send(&h, get("/file/x", &[("authorization", &auth("FILE_KEY"))])).await;
    assert!(s == 200 && body.contains("Bearer written-later"), "{body}");
    std::fs::write(&file, "rotated-secret\n").unwrap();
    let (_, body) = send(&h, get("/file/x", &[("authorization", &auth("FILE_KEY"))])).await;
    assert!(body.contains("Bearer rotated-secret"), "{body}");
    assert!(h
        .routes_status()
        .iter()
        .find(|s| s.name == "file")
        .is_some_and(|s| s.loaded));
    h.shutdown().await;
}

#[tokio::test]
async fn a_required_credential_that_cannot_load_fails_start_naming_route_and_source() {
    let pki = pki();
    let up = start_upstream(&pki).await;
    let mut r = route("openai", &up, &pki, bearer(), "x");
    r.source = CredentialSource::parse("file:///nonexistent/nono/key").unwrap();
    let cfg = ProxyConfig {
        routes: vec![r.clone()],
        ..ProxyConfig::default()
    };
    let e = nono_proxy::start(cfg)
        .await
        .err()
        .expect("start must fail")
        .to_string();
    assert!(
        e.contains("openai") && e.contains("/nonexistent/nono/key"),
        "{e}"
    );

    let cfg = ProxyConfig {
        routes: vec![r],
        tolerate_unavailable_routes: true,
        ..ProxyConfig::default()
    };
    let h = nono_proxy::start(cfg).await.unwrap();
    let st = h.routes_status();
    assert!(!st[0].loaded && st[0].error.is_some());
    let (s, _) = send(
        &h,
        get(
            "/openai/x",
            &[(
                "authorization",
                &format!("Bearer {}", phantom(&h, "OPENAI_KEY")),
            )],
        ),
    )
    .await;
    assert_eq!(s, 503);
    h.shutdown().await;
}
