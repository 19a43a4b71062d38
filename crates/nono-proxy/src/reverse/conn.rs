//! Upstream connections of credential routes: a connector for hyper-util's pooled client that
//! admits and connects through [`Shared::open_upstream`] (deny list, DNS check of every
//! address, upstream chaining), then verifies TLS with rustls against the WebPKI roots plus the
//! route's `tls_ca`.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Weak};
use std::task::{Context, Poll};

use http::{StatusCode, Uri};
use http_body_util::BodyExt;
use hyper_util::client::legacy::connect::{Connected, Connection};
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use rustls::{ClientConfig, RootCertStore};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

use crate::audit::Mode;
use crate::error::ProxyError;
use crate::filter::Host;
use crate::route::{RouteConfig, RouteError};
use crate::server::Shared;

/// Why no upstream connection was made.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ConnectError {
    /// Admission or connecting refused it (already audited); status and reason for the client.
    #[error("upstream refused: {reason}")]
    Refused {
        /// Status to answer with.
        status: StatusCode,
        /// Reason text.
        reason: String,
    },
    /// The TLS handshake failed (untrusted certificate, wrong name, ...).
    #[error("TLS handshake failed: {0}")]
    Tls(#[source] io::Error),
    /// The proxy is shutting down.
    #[error("the proxy is shutting down")]
    ShuttingDown,
}

/// TLS settings for a route: WebPKI roots plus `tls_ca`, HTTP/1.1 only.
pub(crate) fn tls_config(cfg: &RouteConfig) -> Result<Arc<ClientConfig>, ProxyError> {
    let bad = |reason: String| {
        ProxyError::Route(RouteError::Invalid {
            route: cfg.name.clone(),
            field: "tls_ca",
            reason,
        })
    };
    let mut roots = RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some(path) = &cfg.tls_ca {
        let pem = std::fs::read(path)
            .map_err(|e| bad(format!("cannot read `{}`: {e}", path.display())))?;
        let mut n = 0;
        for cert in rustls_pemfile::certs(&mut pem.as_slice()) {
            let cert =
                cert.map_err(|e| bad(format!("`{}` is not valid PEM: {e}", path.display())))?;
            roots.add(cert).map_err(|e| {
                bad(format!(
                    "`{}` holds an unusable CA certificate: {e}",
                    path.display()
                ))
            })?;
            n += 1;
        }
        if n == 0 {
            return Err(bad(format!(
                "`{}` holds no PEM certificate",
                path.display()
            )));
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| bad(format!("TLS setup failed: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Connects to one route's upstream; the request URI is ignored (the route fixes the host).
#[derive(Clone)]
pub(crate) struct RouteConnector {
    shared: Weak<Shared>,
    host: Host,
    port: u16,
    tls: Option<(TlsConnector, ServerName<'static>)>,
    /// Whose admission applies and how refusals are audited.
    mode: Mode,
}

impl RouteConnector {
    /// A connector for `host:port`; with `tls`, the certificate must be valid for `host_str`.
    pub(crate) fn new(
        shared: Weak<Shared>,
        host: Host,
        port: u16,
        tls: Option<Arc<ClientConfig>>,
        host_str: &str,
        mode: Mode,
    ) -> Result<RouteConnector, String> {
        let tls = match tls {
            None => None,
            Some(cfg) => {
                let bare = host_str.trim_start_matches('[').trim_end_matches(']');
                let name = ServerName::try_from(bare.to_string())
                    .map_err(|e| format!("`{host_str}` is not a TLS server name: {e}"))?;
                Some((TlsConnector::from(cfg), name))
            }
        };
        Ok(RouteConnector {
            shared,
            host,
            port,
            tls,
            mode,
        })
    }
}

type ConnectFuture = Pin<Box<dyn Future<Output = Result<UpstreamIo, ConnectError>> + Send>>;

impl tower_service::Service<Uri> for RouteConnector {
    type Response = UpstreamIo;
    type Error = ConnectError;
    type Future = ConnectFuture;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _uri: Uri) -> Self::Future {
        let this = self.clone();
        Box::pin(async move {
            let shared = this.shared.upgrade().ok_or(ConnectError::ShuttingDown)?;
            let tcp = match shared
                .open_upstream(&this.host, this.port, this.mode, None)
                .await
            {
                Ok(s) => s,
                Err(resp) => {
                    let status = resp.status();
                    let reason = match resp.into_body().collect().await {
                        Ok(b) => String::from_utf8_lossy(&b.to_bytes()).trim().to_string(),
                        Err(_) => String::new(),
                    };
                    return Err(ConnectError::Refused { status, reason });
                }
            };
            drop(shared);
            match this.tls {
                None => Ok(UpstreamIo(TokioIo::new(Stream::Plain(tcp)), false)),
                Some((connector, name)) => {
                    let tls = connector
                        .connect(name, tcp)
                        .await
                        .map_err(ConnectError::Tls)?;
                    let h2 = tls.get_ref().1.alpn_protocol() == Some(b"h2");
                    Ok(UpstreamIo(TokioIo::new(Stream::Tls(Box::new(tls))), h2))
                }
            }
        })
    }
}

/// A plain or TLS upstream stream.
pub(crate) enum Stream {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

/// The connection type the pooled client holds, and whether ALPN chose HTTP/2.
pub(crate) struct UpstreamIo(TokioIo<Stream>, bool);

impl Connection for UpstreamIo {
    fn connected(&self) -> Connected {
        let c = Connected::new();
        if self.1 {
            c.negotiated_h2()
        } else {
            c
        }
    }
}

impl hyper::rt::Read for UpstreamIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_read(cx, buf)
    }
}

impl hyper::rt::Write for UpstreamIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().0).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::credential::CredentialSource;
    use crate::route::InjectMode;

    fn cfg(ca: Option<&str>) -> RouteConfig {
        let mut c = RouteConfig::new(
            "svc",
            url::Url::parse("https://a.example").unwrap(),
            InjectMode::BasicAuth,
            CredentialSource::Env { var: "K".into() },
        );
        c.tls_ca = ca.map(Into::into);
        c
    }

    #[test]
    fn tls_ca_errors_name_the_route_and_file() {
        assert!(tls_config(&cfg(None)).is_ok());
        let e = tls_config(&cfg(Some("/nonexistent/ca.pem")))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("svc") && e.contains("/nonexistent/ca.pem"),
            "{e}"
        );
        let dir = std::env::temp_dir().join(format!("nono-ca-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("empty.pem");
        std::fs::write(&f, "not pem").unwrap();
        let e = tls_config(&cfg(Some(f.to_str().unwrap())))
            .unwrap_err()
            .to_string();
        assert!(e.contains("no PEM certificate"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
