//! CONNECT tunnels: filter, resolve, connect to a checked address, answer 200, then relay
//! bytes both ways. TLS stays end-to-end; the proxy never sees plaintext.

use std::sync::Arc;

use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper::upgrade::Upgraded;
use hyper_util::rt::TokioIo;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use crate::audit::{AuditEvent, Decision, Mode};
use crate::filter::Host;
use crate::respond::{self, Body};
use crate::server::{ConnState, Shared};

/// Port used when a CONNECT target has none.
const DEFAULT_CONNECT_PORT: u16 = 443;

/// Handles one CONNECT request.
pub(crate) async fn handle(
    req: Request<Incoming>,
    shared: Arc<Shared>,
    conn: Arc<ConnState>,
) -> Response<Body> {
    let raw_target = req
        .uri()
        .authority()
        .map(|a| a.as_str().to_string())
        .unwrap_or_default();
    let Some((host_raw, port)) = split_target(req.uri()) else {
        return shared.refuse(
            Mode::Connect,
            &raw_target,
            0,
            None,
            StatusCode::BAD_REQUEST,
            "malformed_target",
        );
    };
    if !shared.authorized(req.headers()) {
        return shared.refuse(
            Mode::Connect,
            &host_raw,
            port,
            None,
            StatusCode::PROXY_AUTHENTICATION_REQUIRED,
            "auth_required",
        );
    }
    if let Some(busy) = shared.authenticated(&conn, Mode::Connect, &host_raw, port, None) {
        return busy;
    }
    let host = match Host::parse(&host_raw) {
        Ok(h) => h,
        Err(_) => {
            return shared.refuse(
                Mode::Connect,
                &host_raw,
                port,
                None,
                StatusCode::BAD_REQUEST,
                "malformed_target",
            )
        }
    };
    if shared.deny_listed(&host, port) {
        return shared.refuse(
            Mode::Connect,
            &host.to_string(),
            port,
            None,
            StatusCode::FORBIDDEN,
            crate::deny::DenyReason::DenyListed.as_str(),
        );
    }
    if shared.intercepts(&host, port) {
        return crate::intercept::start(req, shared, conn, host, port);
    }
    if shared.is_route_host(&host) {
        return shared.refuse(
            Mode::Connect,
            &host.to_string(),
            port,
            None,
            StatusCode::FORBIDDEN,
            crate::deny::DenyReason::ConnectBypassesL7.as_str(),
        );
    }
    let upstream = match shared.open_upstream(&host, port, Mode::Connect, None).await {
        Ok(s) => s,
        Err(resp) => return resp,
    };
    let mut event = AuditEvent::new(Mode::Connect, Decision::Allow, &host.to_string(), port, 200);
    if shared.chain_for(&host, port).is_some() {
        event = event.with_reason(crate::upstream::VIA_UPSTREAM);
    }
    shared.audit.record(event);
    let permit = conn.take_permit();
    // At shutdown a tunnel gets the grace period to end by itself, then it is cut.
    let tracker = conn.tracker();
    let mut stop = shared.shutdown_signal();
    let cut = async move {
        let _ = stop.changed().await;
        tokio::time::sleep(crate::server::SHUTDOWN_GRACE).await;
    };
    tokio::spawn(async move {
        let _permit = permit;
        let _tracker = tracker;
        let upgraded = match hyper::upgrade::on(req).await {
            Ok(u) => u,
            Err(e) => {
                tracing::debug!("CONNECT upgrade failed: {e}");
                return;
            }
        };
        tokio::select! {
            r = tunnel(upgraded, upstream) => {
                if let Err(e) = r {
                    tracing::debug!("tunnel ended: {e}");
                }
            }
            _ = cut => {}
        }
    });
    respond::text_empty(StatusCode::OK)
}

/// Takes the client socket back from hyper so bytes can be spliced without copies.
async fn tunnel(upgraded: Upgraded, mut upstream: TcpStream) -> std::io::Result<()> {
    match upgraded.downcast::<TokioIo<TcpStream>>() {
        Ok(parts) => {
            if !parts.read_buf.is_empty() {
                upstream.write_all(&parts.read_buf).await?;
            }
            crate::relay::relay(parts.io.into_inner(), upstream).await?;
        }
        Err(upgraded) => {
            let mut client = TokioIo::new(upgraded);
            tokio::io::copy_bidirectional(&mut client, &mut upstream).await?;
        }
    }
    Ok(())
}

/// `host:port` from a CONNECT request target; a missing port means 443.
fn split_target(uri: &http::Uri) -> Option<(String, u16)> {
    let auth = uri.authority()?;
    if uri.scheme().is_some()
        || uri
            .path_and_query()
            .is_some_and(|p| !p.as_str().is_empty() && p.as_str() != "/")
    {
        return None;
    }
    if auth.as_str().contains('@') {
        return None;
    }
    // Strict: a port that is not 1-65535 in plain digits is malformed, never the default.
    let (host, port) = crate::filter::split_host_port(auth.as_str()).ok()?;
    if host.is_empty() {
        return None;
    }
    Some((host.to_string(), port.unwrap_or(DEFAULT_CONNECT_PORT)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> Option<(String, u16)> {
        split_target(&s.parse::<http::Uri>().ok()?)
    }

    #[test]
    fn connect_targets() {
        assert_eq!(t("example.com:8443"), Some(("example.com".into(), 8443)));
        assert_eq!(t("example.com"), Some(("example.com".into(), 443)));
        assert_eq!(t("[::1]:443"), Some(("[::1]".into(), 443)));
        assert_eq!(t("example.com:0"), None);
        for bad in ["99999", "65536", "65979", "-1", "1e3", "+443", ""] {
            assert_eq!(t(&format!("example.com:{bad}")), None, "port {bad:?}");
        }
        assert_eq!(t("[::1]:99999"), None);
        assert_eq!(t("http://example.com/x"), None);
    }
}
