//! An intercepted CONNECT: answer 200, read the ClientHello, check its SNI against the CONNECT
//! authority, finish TLS with a leaf for that host, then serve HTTP/1.1 or HTTP/2 (as ALPN
//! chose) with each request handled by [`super::inner`].

use std::sync::Arc;

use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use rustls::server::{Acceptor, ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::ServerConfig;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::LazyConfigAcceptor;

use crate::audit::{AuditEvent, Decision, Mode};
use crate::filter::Host;
use crate::respond::{self, Body};
use crate::server::{ConnState, Shared};

/// Concurrent HTTP/2 streams per intercepted tunnel.
pub(crate) const MAX_H2_STREAMS: u32 = 32;
/// How often an idle HTTP/2 client is pinged, and how long it has to answer.
const H2_PING_INTERVAL: std::time::Duration = std::time::Duration::from_secs(30);
const H2_PING_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(20);

/// What every inner request of one tunnel shares.
pub(crate) struct TunnelCtx {
    /// The CONNECT host and port.
    pub(crate) host: Host,
    pub(crate) port: u16,
    /// `host[:port]` as a `Host` header / URI authority.
    pub(crate) authority: String,
    /// The client negotiated HTTP/2.
    pub(crate) h2: bool,
    /// The tunnel's slot and shutdown guard, also held by WebSockets upgraded in it.
    pub(crate) guard: crate::upgrade::Guard,
}

/// Answers an intercepted CONNECT and serves the tunnel in the background.
pub(crate) fn start(
    req: Request<Incoming>,
    shared: Arc<Shared>,
    conn: Arc<ConnState>,
    host: Host,
    port: u16,
) -> Response<Body> {
    shared.audit.record(
        AuditEvent::new(Mode::Connect, Decision::Allow, &host.to_string(), port, 200)
            .with_reason("intercept"),
    );
    let guard: crate::upgrade::Guard = Arc::new((conn.take_permit(), conn.tracker()));
    let mut stop = shared.shutdown_signal();
    let cut = async move {
        let _ = stop.changed().await;
        tokio::time::sleep(crate::server::SHUTDOWN_GRACE).await;
    };
    tokio::spawn(async move {
        let upgraded = match hyper::upgrade::on(req).await {
            Ok(u) => u,
            Err(e) => {
                tracing::debug!("CONNECT upgrade failed: {e}");
                return;
            }
        };
        // The client's own socket when hyper has nothing buffered from it (clients wait
        // for the 200 before their ClientHello): one layer less on every read and write.
        let served = match upgraded.downcast::<TokioIo<TcpStream>>() {
            Ok(parts) if parts.read_buf.is_empty() => Box::pin(serve(
                parts.io.into_inner(),
                shared,
                conn,
                host,
                port,
                guard,
            ))
                as std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>,
            Ok(parts) => Box::pin(serve(
                Prefixed {
                    prefix: parts.read_buf,
                    io: parts.io.into_inner(),
                },
                shared,
                conn,
                host,
                port,
                guard,
            )),
            Err(upgraded) => Box::pin(serve(
                TokioIo::new(upgraded),
                shared,
                conn,
                host,
                port,
                guard,
            )),
        };
        tokio::select! {
            _ = served => {}
            _ = cut => {}
        }
    });
    respond::text_empty(StatusCode::OK)
}

/// The client's socket with the bytes hyper already read from it in front.
struct Prefixed {
    prefix: bytes::Bytes,
    io: TcpStream,
}

impl AsyncRead for Prefixed {
    fn poll_read(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        let this = self.get_mut();
        if !this.prefix.is_empty() {
            let n = this.prefix.len().min(buf.remaining());
            buf.put_slice(&this.prefix.split_to(n));
            return std::task::Poll::Ready(Ok(()));
        }
        std::pin::Pin::new(&mut this.io).poll_read(cx, buf)
    }
}

impl AsyncWrite for Prefixed {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

/// Always the one leaf chosen for this connection.
#[derive(Debug)]
struct OneCert(Arc<CertifiedKey>);

impl ResolvesServerCert for OneCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.clone())
    }
}

async fn serve<IO>(
    io: IO,
    shared: Arc<Shared>,
    conn: Arc<ConnState>,
    host: Host,
    port: u16,
    guard: crate::upgrade::Guard,
) where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let Some(icpt) = shared.interceptor() else {
        return;
    };
    let label = host.to_string();
    let deny = |reason: &str| {
        shared.audit.record(
            AuditEvent::new(Mode::Intercept, Decision::Deny, &label, port, 0).with_reason(reason),
        );
    };
    let hello_wait = shared.header_read_timeout();
    let start =
        match tokio::time::timeout(hello_wait, LazyConfigAcceptor::new(Acceptor::default(), io))
            .await
        {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => {
                tracing::debug!("intercepted tunnel to {label}:{port}: no TLS ClientHello: {e}");
                deny("tls_client_hello_invalid");
                return;
            }
            Err(_) => {
                deny("tls_client_hello_timeout");
                return;
            }
        };
    let hello = start.client_hello();
    if let Some(sni) = hello.server_name() {
        // The leaf is for the CONNECT host; a different name would get a certificate for a
        // host the policy never checked, or have the client trust ours for it.
        if !Host::parse(sni).is_ok_and(|s| s.same_as(&host)) {
            tracing::info!(target: "nono::audit", "DENY INTERCEPT {label}:{port} TLS server name `{sni}` is not the CONNECT host");
            deny("sni_mismatch");
            return;
        }
    }
    let offers_h2 = hello
        .alpn()
        .is_some_and(|mut protos| protos.any(|p| p == b"h2"));
    let leaf = match icpt.leaves().get(&host) {
        Ok(l) => l,
        Err(e) => {
            tracing::warn!("cannot issue a certificate for {label}: {e}");
            deny("leaf_certificate_failed");
            return;
        }
    };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut cfg =
        match ServerConfig::builder_with_provider(provider).with_safe_default_protocol_versions() {
            Ok(b) => b
                .with_no_client_auth()
                .with_cert_resolver(Arc::new(OneCert(leaf))),
            Err(e) => {
                tracing::warn!("TLS setup failed: {e}");
                return;
            }
        };
    cfg.alpn_protocols = if offers_h2 {
        vec![b"h2".to_vec(), b"http/1.1".to_vec()]
    } else {
        vec![b"http/1.1".to_vec()]
    };
    let handshake = tokio::time::timeout(hello_wait, start.into_stream(Arc::new(cfg))).await;
    let tls = match handshake {
        Ok(Ok(t)) => t,
        Err(_) => {
            deny("tls_handshake_timeout");
            return;
        }
        Ok(Err(e)) => {
            // Typically the client does not trust the session CA.
            tracing::info!(target: "nono::audit", "DENY INTERCEPT {label}:{port} TLS handshake with the client failed: {e}");
            deny("client_tls_failed");
            return;
        }
    };
    let h2 = tls.get_ref().1.alpn_protocol() == Some(b"h2");
    let authority = if port == 443 {
        label.clone()
    } else {
        format!("{label}:{port}")
    };
    let ctx = Arc::new(TunnelCtx {
        host,
        port,
        authority,
        h2,
        guard,
    });
    let svc_shared = shared.clone();
    let svc = service_fn(move |req: Request<Incoming>| {
        let shared = svc_shared.clone();
        let conn = conn.clone();
        let ctx = ctx.clone();
        async move {
            Ok::<_, std::convert::Infallible>(super::inner::handle(req, shared, conn, ctx).await)
        }
    });
    let io = TokioIo::new(tls);
    let result = if h2 {
        hyper::server::conn::http2::Builder::new(TokioExecutor::new())
            .timer(TokioTimer::new())
            // Each stream can hold an upstream connection: bound them per tunnel, and drop
            // tunnels whose client stopped answering pings.
            .max_concurrent_streams(MAX_H2_STREAMS)
            .keep_alive_interval(Some(H2_PING_INTERVAL))
            .keep_alive_timeout(H2_PING_TIMEOUT)
            .serve_connection(io, svc)
            .await
    } else {
        hyper::server::conn::http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(shared.header_read_timeout())
            .max_buf_size(shared.max_header_bytes().max(8192))
            .keep_alive(true)
            .serve_connection(io, svc)
            .with_upgrades()
            .await
    };
    if let Err(e) = result {
        tracing::debug!("intercepted connection to {label}:{port} ended: {e}");
    }
}
