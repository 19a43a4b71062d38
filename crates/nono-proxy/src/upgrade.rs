//! HTTP/1.1 protocol upgrades (WebSocket) carried through a proxied request: the client's
//! `Connection: upgrade` survives hop-by-hop stripping, and once the upstream answers 101 the
//! two upgraded connections are joined byte for byte.

use http::header::{self, HeaderMap, HeaderValue};
use http::{Request, Response, StatusCode, Version};
use hyper::body::Incoming;
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;

/// A client's upgrade request, taken before the request is forwarded.
pub(crate) struct Upgrade {
    client: OnUpgrade,
    protocol: HeaderValue,
}

/// Takes the upgrade out of an HTTP/1.1 request that asks for one (`Connection: upgrade` and
/// an `Upgrade` header); `None` for every other request.
pub(crate) fn take(req: &mut Request<Incoming>) -> Option<Upgrade> {
    if req.version() != Version::HTTP_11 {
        return None;
    }
    let wants =
        crate::respond::connection_tokens(req.headers()).any(|t| t.eq_ignore_ascii_case("upgrade"));
    let protocol = req.headers().get(header::UPGRADE)?.clone();
    if !wants {
        return None;
    }
    let client = req.extensions_mut().remove::<OnUpgrade>()?;
    Some(Upgrade { client, protocol })
}

impl Upgrade {
    /// Puts the upgrade headers back after hop-by-hop stripping.
    pub(crate) fn restore(&self, headers: &mut HeaderMap) {
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        headers.insert(header::UPGRADE, self.protocol.clone());
    }

    /// On a 101 from the upstream, joins the two sides in the background and restores the
    /// response's upgrade headers (after the caller stripped hop-by-hop ones).
    pub(crate) fn finish(self, resp: &mut Response<Incoming>) -> Option<HeaderValue> {
        if resp.status() != StatusCode::SWITCHING_PROTOCOLS {
            return None;
        }
        let protocol = resp.headers().get(header::UPGRADE).cloned()?;
        let server = resp.extensions_mut().remove::<OnUpgrade>()?;
        let client = self.client;
        tokio::spawn(async move {
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
        });
        Some(protocol)
    }
}

/// Restores the upgrade headers of a 101 response whose hop-by-hop headers were stripped.
pub(crate) fn restore_response(headers: &mut HeaderMap, protocol: HeaderValue) {
    headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    headers.insert(header::UPGRADE, protocol);
}
