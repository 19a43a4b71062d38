//! Plain HTTP forwarding of absolute-form requests (`GET http://host/path`), as clients send
//! them through `HTTP_PROXY`. The filtered target is the URI's authority; the `Host` header is
//! rewritten to it. Redirects go back to the client untouched.

use std::sync::Arc;
use std::time::Duration;

use http::header::{self, HeaderValue};
use http::{Request, Response, StatusCode, Uri, Version};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;

use crate::audit::{AuditEvent, Decision, Mode};
use crate::filter::Host;
use crate::respond::{self, Body};
use crate::server::{ConnState, Shared};
use crate::upstream::{Chain, VIA_UPSTREAM};

/// How long to wait for a cached upstream connection to become ready before opening a new one.
const REUSE_READY_WAIT: Duration = Duration::from_millis(50);
/// Cache key of a connection to the upstream proxy, which carries requests for any host; it
/// cannot collide with a direct `host:port` key (hosts have no spaces).
const VIA_UPSTREAM_KEY: &str = "via upstream proxy";

/// The upstream connection a client connection keeps alive, keyed by `host:port`.
pub(crate) struct CachedUpstream {
    key: String,
    sender: SendRequest<Body>,
}

/// Forwards one absolute-form request.
pub(crate) async fn handle(
    req: Request<Incoming>,
    shared: Arc<Shared>,
    conn: Arc<ConnState>,
) -> Response<Body> {
    let method = req.method().as_str().to_string();
    // Origin form: `http://h?q` has an empty path, which is `/` on the wire.
    let path = match req.uri().query() {
        Some(q) => format!("{}?{q}", req.uri().path()),
        None => req.uri().path().to_string(),
    };
    let info = Some((method.as_str(), path.as_str()));
    let refuse = |target: &str, port: u16, status: StatusCode, reason: &str| {
        shared.refuse(Mode::Forward, target, port, info, status, reason)
    };
    let authority = req
        .uri()
        .authority()
        .map(|a| a.as_str().to_string())
        .unwrap_or_default();
    if !shared.authorized(req.headers()) {
        return refuse(
            &authority,
            0,
            StatusCode::PROXY_AUTHENTICATION_REQUIRED,
            "auth_required",
        );
    }
    if let Some(busy) = shared.authenticated(&conn, Mode::Forward, &authority, 0, info) {
        return busy;
    }
    if req.uri().scheme_str() != Some("http") {
        return refuse(
            &authority,
            0,
            StatusCode::BAD_REQUEST,
            "only_http_forwarding_use_connect_for_https",
        );
    }
    let Some(auth) = req.uri().authority().cloned() else {
        return refuse("", 0, StatusCode::BAD_REQUEST, "malformed_target");
    };
    if auth.as_str().contains('@') {
        return refuse(&authority, 0, StatusCode::BAD_REQUEST, "userinfo_in_target");
    }
    // Strict: a port that is not 1-65535 in plain digits is malformed, never the default.
    // An empty one (`http://h:/`) is the default, as RFC 3986 has it.
    let authority_text = auth.as_str().strip_suffix(':').unwrap_or(auth.as_str());
    let (host_raw, port) = match crate::filter::split_host_port(authority_text) {
        Ok((h, p)) => (h, p.unwrap_or(80)),
        Err(_) => return refuse(&authority, 0, StatusCode::BAD_REQUEST, "malformed_target"),
    };
    let host = match Host::parse(host_raw) {
        Ok(h) => h,
        Err(_) => {
            return refuse(
                &authority,
                port,
                StatusCode::BAD_REQUEST,
                "malformed_target",
            )
        }
    };
    if host.is_local() && port == shared.listen_port() {
        // The proxy's own local URLs (credential routes), asked for through the proxy by a
        // client whose NO_PROXY no longer lists loopback (a route or URL-scoped entry is
        // there): served as if asked for directly, phantom checks and all.
        let mut req = req;
        let origin_form = req
            .uri()
            .path_and_query()
            .cloned()
            .map(|pq| Uri::builder().path_and_query(pq).build());
        return match origin_form {
            Some(Ok(u)) => {
                *req.uri_mut() = u;
                crate::reverse::handle(req, shared, conn).await
            }
            _ => refuse(
                &authority,
                port,
                StatusCode::BAD_REQUEST,
                "malformed_target",
            ),
        };
    }
    // Path-scoped hosts are checked inside intercepted TLS only; plain HTTP to them would
    // skip the path rules.
    let path_scoped = shared
        .interceptor()
        .is_some_and(|i| i.url_rules_for(&host, port).next().is_some());
    if path_scoped {
        return refuse(
            &host.to_string(),
            port,
            StatusCode::FORBIDDEN,
            "url_rules_need_https",
        );
    }
    if shared.is_route_host(&host) {
        return refuse(
            &host.to_string(),
            port,
            StatusCode::FORBIDDEN,
            crate::deny::DenyReason::ConnectBypassesL7.as_str(),
        );
    }
    let chain = shared.chain_for(&host, port);
    let key = match chain {
        Some(_) => VIA_UPSTREAM_KEY.to_string(),
        None => format!("{host}:{port}"),
    };
    let mut reused = true;
    let mut sender = match reuse(&conn, &key).await {
        Some(s) => {
            // Policy is re-checked even on reuse: the allowlist decision is per request.
            let checked = match chain {
                Some(c) => {
                    shared
                        .admit_chained(c, &host, port, Mode::Forward, info)
                        .await
                }
                None => shared
                    .admit_only(&host, port, Mode::Forward, info)
                    .await
                    .map(|_| ()),
            };
            if let Err(resp) = checked {
                return resp;
            }
            s
        }
        None => match open_sender(&shared, chain, &host, port, info).await {
            Ok(s) => {
                reused = false;
                s
            }
            Err(resp) => return resp,
        },
    };

    let (mut parts, body) = req.into_parts();
    respond::strip_hop_by_hop(&mut parts.headers);
    // The checked, normalised host goes on the wire, never the client's spelling of it
    // (`0x7f.1`, `012.0.0.1` and a trailing dot mean different things to different parsers).
    let host_value = match port {
        80 => host.to_string(),
        p => format!("{host}:{p}"),
    };
    match HeaderValue::from_str(&host_value) {
        Ok(v) => {
            parts.headers.insert(header::HOST, v);
        }
        Err(_) => {
            return refuse(
                &authority,
                port,
                StatusCode::BAD_REQUEST,
                "malformed_target",
            )
        }
    }
    // The upstream proxy gets the absolute form and its own credentials (the client's were
    // stripped above); an origin server gets the origin form.
    let target = match chain {
        Some(c) => {
            if let Some(v) = c.authorization() {
                parts.headers.insert(header::PROXY_AUTHORIZATION, v);
            }
            format!("http://{host_value}{path}")
        }
        None => path.clone(),
    };
    parts.uri = match target.parse::<Uri>() {
        Ok(u) => u,
        Err(_) => {
            return refuse(
                &authority,
                port,
                StatusCode::BAD_REQUEST,
                "malformed_target",
            )
        }
    };
    parts.version = Version::HTTP_11;
    // A body-less idempotent request can be sent again even after it left: a kept-alive
    // upstream that closes as it reads it (tinyproxy does) has not acted on it.
    let resend = (reused
        && http_body::Body::is_end_stream(&body)
        && matches!(
            parts.method,
            http::Method::GET | http::Method::HEAD | http::Method::OPTIONS
        ))
    .then(|| {
        (
            parts.method.clone(),
            parts.uri.clone(),
            parts.headers.clone(),
        )
    });
    let upstream_req = Request::from_parts(parts, body.boxed());

    let mut attempt = sender.try_send_request(upstream_req).await;
    if reused {
        // A kept-alive upstream may have closed just as we reused it; if the request never
        // left (or can be sent again), send it once more on a fresh connection.
        if let Err(e) = &mut attempt {
            let again = e.take_message().or_else(|| {
                resend.map(|(method, uri, headers)| {
                    let mut r = Request::new(respond::empty());
                    *r.method_mut() = method;
                    *r.uri_mut() = uri;
                    *r.headers_mut() = headers;
                    *r.version_mut() = Version::HTTP_11;
                    r
                })
            });
            if let Some(req) = again {
                sender = match open_sender(&shared, chain, &host, port, info).await {
                    Ok(s) => s,
                    Err(resp) => return resp,
                };
                attempt = sender.try_send_request(req).await;
            }
        }
    }
    let resp = match attempt.map_err(|e| e.into_error()) {
        Ok(r) => r,
        Err(e) => {
            tracing::debug!("forwarding to {key} failed: {e}");
            return refuse(
                &host.to_string(),
                port,
                StatusCode::BAD_GATEWAY,
                "upstream_failed",
            );
        }
    };
    let status = resp.status();
    if status == StatusCode::PROXY_AUTHENTICATION_REQUIRED {
        // A 407 from the upstream proxy (it refused our credentials) or from an origin would
        // make the client believe nono wants different credentials: 407 means nono's own.
        let reason = match chain {
            Some(_) => "upstream_proxy_status_407",
            None => "origin_status_407",
        };
        return refuse(&host.to_string(), port, StatusCode::BAD_GATEWAY, reason);
    }
    if status == StatusCode::SWITCHING_PROTOCOLS {
        // The request's Upgrade was stripped; a switch anyway cannot be relayed as HTTP.
        return refuse(
            &host.to_string(),
            port,
            StatusCode::BAD_GATEWAY,
            "origin_switched_protocols",
        );
    }
    // An upstream that announced it will close must not be picked for the next request: the
    // close can land after the request was written, and then the request is lost (502).
    if keeps_alive(&resp) {
        store(&conn, key, sender).await;
    }
    let mut event = AuditEvent::new(
        Mode::Forward,
        Decision::Allow,
        &host.to_string(),
        port,
        status.as_u16(),
    )
    .with_request(&method, Some(&path));
    if chain.is_some() {
        event = event.with_reason(VIA_UPSTREAM);
    }
    shared.audit.record(event);
    let (mut parts, body) = resp.into_parts();
    respond::strip_hop_by_hop(&mut parts.headers);
    Response::from_parts(parts, body.boxed())
}

/// Opens a new upstream connection (direct, or to the upstream proxy) and its HTTP/1 sender.
async fn open_sender(
    shared: &Shared,
    chain: Option<&Chain>,
    host: &Host,
    port: u16,
    info: Option<(&str, &str)>,
) -> Result<SendRequest<Body>, Response<Body>> {
    let opened = match chain {
        Some(c) => {
            shared
                .open_upstream_proxy(c, host, port, Mode::Forward, info)
                .await
        }
        None => shared.open_upstream(host, port, Mode::Forward, info).await,
    };
    let stream = opened?;
    match hyper::client::conn::http1::handshake(TokioIo::new(stream)).await {
        Ok((sender, connection)) => {
            tokio::spawn(async move {
                if let Err(e) = connection.await {
                    tracing::debug!("upstream connection ended: {e}");
                }
            });
            Ok(sender)
        }
        Err(e) => {
            tracing::debug!("upstream handshake failed: {e}");
            Err(shared.refuse(
                Mode::Forward,
                &host.to_string(),
                port,
                info,
                StatusCode::BAD_GATEWAY,
                "upstream_unreachable",
            ))
        }
    }
}

async fn reuse(conn: &ConnState, key: &str) -> Option<SendRequest<Body>> {
    let cached = conn.upstream.lock().await.take()?;
    if cached.key != key {
        return None;
    }
    let mut sender = cached.sender;
    // The usual case on a kept-alive connection: ready now, no timer needed.
    if sender.is_ready() {
        return Some(sender);
    }
    if sender.is_closed() {
        return None;
    }
    match tokio::time::timeout(REUSE_READY_WAIT, sender.ready()).await {
        Ok(Ok(())) => Some(sender),
        _ => None,
    }
}

/// Whether the upstream keeps the connection open after `resp` (HTTP/1.1 unless it says
/// `Connection: close`; HTTP/1.0 only with `Connection: keep-alive`).
fn keeps_alive<B>(resp: &Response<B>) -> bool {
    let has = |token: &str| {
        respond::connection_tokens(resp.headers()).any(|t| t.eq_ignore_ascii_case(token))
    };
    if has("close") {
        return false;
    }
    resp.version() != Version::HTTP_10 || has("keep-alive")
}

async fn store(conn: &ConnState, key: String, sender: SendRequest<Body>) {
    *conn.upstream.lock().await = Some(CachedUpstream { key, sender });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resp(version: Version, connection: Option<&str>) -> Response<()> {
        let mut b = Response::builder().version(version);
        if let Some(c) = connection {
            b = b.header(header::CONNECTION, c);
        }
        b.body(()).unwrap()
    }

    #[test]
    fn only_upstreams_that_keep_the_connection_are_reused() {
        assert!(keeps_alive(&resp(Version::HTTP_11, None)));
        assert!(!keeps_alive(&resp(Version::HTTP_11, Some("Close"))));
        assert!(!keeps_alive(&resp(Version::HTTP_11, Some("x-hop, close"))));
        assert!(!keeps_alive(&resp(Version::HTTP_10, None)));
        assert!(keeps_alive(&resp(Version::HTTP_10, Some("keep-alive"))));
    }
}
