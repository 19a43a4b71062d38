//! One request inside an intercepted tunnel: the route whose base covers the path gets it with
//! the credential (the reverse proxy's own code); otherwise the host's URL-scoped entries
//! decide, and a host without them is forwarded as the allowlist admits it.

use std::sync::Arc;

use http::header::{self, HeaderValue};
use http::{Request, Response, StatusCode, Uri, Version};
use http_body_util::BodyExt;
use hyper::body::Incoming;

use crate::audit::{AuditEvent, Decision, Mode};
use crate::endpoint::NormalPath;
use crate::filter::Host;
use crate::intercept::tunnel::TunnelCtx;
use crate::respond::Body;
use crate::reverse::{self, RouteCall};
use crate::server::{ConnState, Shared};

/// Handles one inner request, holding one of the proxy's in-flight slots until its response
/// body has been sent.
pub(crate) async fn handle(
    req: Request<Incoming>,
    shared: Arc<Shared>,
    conn: Arc<ConnState>,
    ctx: Arc<TunnelCtx>,
) -> Response<Body> {
    let slot = match shared.inner_slot() {
        Ok(s) => s,
        Err(()) => {
            let target = ctx.host.to_string();
            let info = Some((req.method().as_str(), req.uri().path()));
            return shared.refuse(
                Mode::Intercept,
                &target,
                ctx.port,
                info,
                StatusCode::SERVICE_UNAVAILABLE,
                "max_connections",
            );
        }
    };
    let resp = serve(req, shared, conn, ctx).await;
    match slot {
        None => resp,
        Some(permit) => {
            let (parts, body) = resp.into_parts();
            Response::from_parts(
                parts,
                Held {
                    body,
                    _permit: permit,
                }
                .boxed(),
            )
        }
    }
}

/// A response body that keeps its in-flight slot until it is dropped.
struct Held {
    body: Body,
    _permit: tokio::sync::OwnedSemaphorePermit,
}

impl http_body::Body for Held {
    type Data = bytes::Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        std::pin::Pin::new(&mut self.get_mut().body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}

async fn serve(
    mut req: Request<Incoming>,
    shared: Arc<Shared>,
    conn: Arc<ConnState>,
    ctx: Arc<TunnelCtx>,
) -> Response<Body> {
    let method = req.method().as_str().to_string();
    let raw_path = req.uri().path().to_string();
    let label = ctx.host.to_string();
    let port = ctx.port;
    let info = Some((method.as_str(), raw_path.as_str()));
    let refuse =
        |status, reason: &str| shared.refuse(Mode::Intercept, &label, port, info, status, reason);
    if !names_tunnel_host(&req, &ctx) {
        // The request goes to the tunnel's host whatever it says; one naming another host
        // (HTTP/2 connection reuse, a forged Host) would be checked against the wrong rules.
        return refuse(StatusCode::MISDIRECTED_REQUEST, "authority_mismatch");
    }
    if req.method() == http::Method::CONNECT {
        return refuse(StatusCode::METHOD_NOT_ALLOWED, "connect_inside_tunnel");
    }
    let full = match NormalPath::parse(&raw_path) {
        Ok(p) => p,
        Err(e) => return refuse(StatusCode::BAD_REQUEST, reverse::path_reason(&e)),
    };
    if let Some(route) = shared.routes().route_at(&ctx.host, port, &full) {
        let call = RouteCall {
            mode: Mode::Intercept,
            target: &label,
            port,
            require_phantom: false,
            h2: ctx.h2,
            guard: Some(ctx.guard.clone()),
        };
        return reverse::serve_route(&shared, &conn, route, req, full, &call).await;
    }
    let Some(icpt) = shared.interceptor() else {
        return refuse(StatusCode::SERVICE_UNAVAILABLE, "shutting_down");
    };
    let mut rules = icpt.url_rules_for(&ctx.host, port).peekable();
    if rules.peek().is_some() && !rules.any(|r| r.allows(&method, &full)) {
        return refuse(StatusCode::FORBIDDEN, "url_not_allowed");
    }
    let path = full.encoded();
    let info = Some((method.as_str(), path.as_str()));
    let upgrade = match crate::upgrade::take(&mut req) {
        Ok(u) => u,
        Err(reason) => return refuse(StatusCode::BAD_REQUEST, reason),
    };
    let client = match icpt.client(&shared, &ctx.host, port, ctx.h2 && upgrade.is_none()) {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!("{label}: {e}");
            return refuse(StatusCode::BAD_GATEWAY, "upstream_failed");
        }
    };
    let (mut parts, body) = req.into_parts();
    crate::upgrade::clean_request(&mut parts.headers, upgrade.as_ref());
    let host_header = match HeaderValue::from_str(&ctx.authority) {
        Ok(h) => h,
        Err(_) => return refuse(StatusCode::BAD_REQUEST, "malformed_target"),
    };
    parts.headers.insert(header::HOST, host_header);
    let target = match parts.uri.query() {
        Some(q) => format!("https://{}{path}?{q}", ctx.authority),
        None => format!("https://{}{path}", ctx.authority),
    };
    parts.uri = match target.parse::<Uri>() {
        Ok(u) => u,
        Err(_) => return refuse(StatusCode::BAD_REQUEST, "malformed_path"),
    };
    parts.version = Version::HTTP_11;
    let mut resp = match client.request(Request::from_parts(parts, body)).await {
        Ok(r) => r,
        Err(e) => return reverse::upstream_error(&shared, Mode::Intercept, &label, port, info, &e),
    };
    let upgraded = match upgrade {
        Some(u) => u.finish(&mut resp, ctx.guard.clone(), shared.shutdown_signal()),
        None if crate::upgrade::unasked(&resp) => Err("upstream_bad_upgrade"),
        None => Ok(None),
    };
    let upgraded = match upgraded {
        Ok(u) => u,
        Err(reason) => {
            return shared.refuse(
                Mode::Intercept,
                &label,
                port,
                Some((method.as_str(), path.as_str())),
                StatusCode::BAD_GATEWAY,
                reason,
            )
        }
    };
    shared.audit.record(
        AuditEvent::new(
            Mode::Intercept,
            Decision::Allow,
            &label,
            port,
            resp.status().as_u16(),
        )
        .with_request(&method, Some(&path)),
    );
    let (mut parts, body) = resp.into_parts();
    crate::upgrade::clean_response(&mut parts.headers, upgraded);
    Response::from_parts(parts, body.boxed())
}

/// Whether the request's authority (HTTP/2 `:authority`, or `Host`) is the tunnel's host and
/// port; a request naming none is taken as the tunnel's.
fn names_tunnel_host(req: &Request<Incoming>, ctx: &TunnelCtx) -> bool {
    let named = match req.uri().authority() {
        Some(a) => Some(a.as_str().to_string()),
        None => req
            .headers()
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .map(str::to_string),
    };
    let Some(named) = named else {
        return true;
    };
    let Ok((host, named_port)) = crate::filter::split_host_port(&named) else {
        return false;
    };
    named_port.unwrap_or(443) == ctx.port && Host::parse(host).is_ok_and(|h| h.same_as(&ctx.host))
}
