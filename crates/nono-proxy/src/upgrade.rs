//! WebSocket upgrades carried through a proxied request: the client's `Connection: upgrade`
//! survives hop-by-hop stripping, and once the upstream answers 101 for the same protocol the
//! two upgraded connections are joined byte for byte.
//!
//! Only WebSocket: after a 101 the proxy sees no more requests, so any other protocol switch
//! (`h2c` above all) would carry requests past the endpoint and URL rules unchecked.

use std::sync::Arc;

use http::header::{self, HeaderMap, HeaderValue};
use http::{Request, Response, StatusCode, Version};
use hyper::body::Incoming;
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use tokio::sync::watch;

/// Keeps the connection's `max_connections` slot and the shutdown guard while an upgraded
/// connection lives.
pub(crate) type Guard = Arc<dyn Send + Sync>;

/// The guard of a client connection served directly (not in a tunnel): its slot and
/// shutdown guard move to the upgraded connection, which outlives hyper's connection task.
pub(crate) fn guard_of(conn: &crate::server::ConnState) -> Guard {
    Arc::new((conn.take_permit(), conn.tracker()))
}

/// A client's upgrade request, taken before the request is forwarded.
pub(crate) struct Upgrade {
    client: OnUpgrade,
    protocol: HeaderValue,
}

/// Takes a WebSocket upgrade out of an HTTP/1.1 request that asks for one (`Connection:
/// upgrade`, `Upgrade: websocket`, `Sec-WebSocket-Key`); `Ok(None)` for a request that asks
/// for none; the refusal reason for any other upgrade.
pub(crate) fn take(req: &mut Request<Incoming>) -> Result<Option<Upgrade>, &'static str> {
    // Asked for or not, nobody upstream gets an HTTP/2 upgrade's settings.
    req.headers_mut().remove("http2-settings");
    let wants =
        crate::respond::connection_tokens(req.headers()).any(|t| t.eq_ignore_ascii_case("upgrade"));
    let Some(protocol) = req.headers().get(header::UPGRADE).cloned() else {
        return Ok(None);
    };
    if !wants {
        // Without `Connection: upgrade` the header is hop-by-hop noise, dropped later.
        return Ok(None);
    }
    let websocket = protocol.as_bytes().eq_ignore_ascii_case(b"websocket")
        && req.headers().contains_key(header::SEC_WEBSOCKET_KEY);
    if !websocket || req.version() != Version::HTTP_11 {
        return Err("upgrade_not_websocket");
    }
    let client = req
        .extensions_mut()
        .remove::<OnUpgrade>()
        .ok_or("upgrade_not_websocket")?;
    Ok(Some(Upgrade { client, protocol }))
}

/// Whether a response to a request that asked for no upgrade switches protocols anyway.
pub(crate) fn unasked(resp: &Response<Incoming>) -> bool {
    resp.status() == StatusCode::SWITCHING_PROTOCOLS
}

impl Upgrade {
    /// Puts the upgrade headers back after hop-by-hop stripping.
    pub(crate) fn restore(&self, headers: &mut HeaderMap) {
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        headers.insert(header::UPGRADE, self.protocol.clone());
    }

    /// On a 101 from the upstream for the protocol asked for, joins the two sides in the
    /// background (holding `guard`, cut at shutdown after the grace period) and returns the
    /// protocol for the response's restored headers. `Ok(None)`: no upgrade happened. `Err`:
    /// a 101 to another protocol, never relayed.
    pub(crate) fn finish(
        self,
        resp: &mut Response<Incoming>,
        guard: Guard,
        mut stop: watch::Receiver<bool>,
    ) -> Result<Option<HeaderValue>, &'static str> {
        if resp.status() != StatusCode::SWITCHING_PROTOCOLS {
            return Ok(None);
        }
        let protocol = resp
            .headers()
            .get(header::UPGRADE)
            .cloned()
            .filter(|p| p.as_bytes().eq_ignore_ascii_case(self.protocol.as_bytes()))
            .ok_or("upstream_bad_upgrade")?;
        let server = resp
            .extensions_mut()
            .remove::<OnUpgrade>()
            .ok_or("upstream_bad_upgrade")?;
        let client = self.client;
        tokio::spawn(async move {
            let _guard = guard;
            let cut = async move {
                let _ = stop.changed().await;
                tokio::time::sleep(crate::server::SHUTDOWN_GRACE).await;
            };
            let relay = async move {
                let (c, s) = tokio::join!(client, server);
                match (c, s) {
                    (Ok(c), Ok(s)) => {
                        let (mut c, mut s) = (TokioIo::new(c), TokioIo::new(s));
                        if let Err(e) = tokio::io::copy_bidirectional(&mut c, &mut s).await {
                            tracing::debug!("upgraded connection ended: {e}");
                        }
                    }
                    (c, s) => tracing::debug!(
                        "upgrade failed: client {:?}, upstream {:?}",
                        c.err(),
                        s.err()
                    ),
                }
            };
            tokio::select! {
                _ = relay => {}
                _ = cut => {}
            }
        });
        Ok(Some(protocol))
    }
}

/// Request headers for the next hop: hop-by-hop ones, `Expect`, the session token and
/// re-routing headers removed, an upgrade's headers kept.
pub(crate) fn clean_request(headers: &mut HeaderMap, upgrade: Option<&Upgrade>) {
    crate::respond::strip_hop_by_hop(headers);
    headers.remove(header::EXPECT);
    headers.remove(crate::inject::NONO_TOKEN_HEADER);
    crate::reverse::strip_rerouting_headers(headers);
    if let Some(u) = upgrade {
        u.restore(headers);
    }
}

/// Response headers for the client: hop-by-hop ones removed, those of an upgrade that
/// happened restored.
pub(crate) fn clean_response(headers: &mut HeaderMap, upgraded: Option<HeaderValue>) {
    crate::respond::strip_hop_by_hop(headers);
    if let Some(protocol) = upgraded {
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        headers.insert(header::UPGRADE, protocol);
    }
}
