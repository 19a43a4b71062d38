//! Name resolution, done by the proxy itself so that every address can be checked before it
//! is used. The resolver is a trait so tests (and `--resolve`) can pin names to addresses.

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;

/// Future returned by [`Resolver::resolve`].
pub type ResolveFuture<'a> = Pin<Box<dyn Future<Output = io::Result<Vec<IpAddr>>> + Send + 'a>>;

/// Turns a host name into addresses.
pub trait Resolver: Send + Sync + 'static {
    /// All addresses of `host`, in the order to try them.
    fn resolve<'a>(&'a self, host: &'a str) -> ResolveFuture<'a>;
}

/// The system resolver (`getaddrinfo` on a blocking thread).
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemResolver;

impl Resolver for SystemResolver {
    fn resolve<'a>(&'a self, host: &'a str) -> ResolveFuture<'a> {
        Box::pin(async move {
            let addrs = tokio::net::lookup_host((host, 0)).await?;
            let mut out: Vec<IpAddr> = Vec::new();
            for a in addrs.map(|a: SocketAddr| a.ip()) {
                if !out.contains(&a) {
                    out.push(a);
                }
            }
            Ok(out)
        })
    }
}

/// Fixed answers for some names, the system resolver for the rest.
#[derive(Clone)]
pub struct StaticResolver {
    pinned: HashMap<String, Vec<IpAddr>>,
    fallback: Arc<dyn Resolver>,
}

impl StaticResolver {
    /// Pins `name` (case-insensitive) to `addrs`.
    pub fn new(pinned: HashMap<String, Vec<IpAddr>>, fallback: Arc<dyn Resolver>) -> Self {
        let pinned = pinned
            .into_iter()
            .map(|(k, v)| (k.trim_end_matches('.').to_ascii_lowercase(), v))
            .collect();
        StaticResolver { pinned, fallback }
    }
}

impl Resolver for StaticResolver {
    fn resolve<'a>(&'a self, host: &'a str) -> ResolveFuture<'a> {
        match self.pinned.get(host) {
            Some(addrs) => {
                let addrs = addrs.clone();
                Box::pin(async move { Ok(addrs) })
            }
            None => self.fallback.resolve(host),
        }
    }
}

impl std::fmt::Debug for StaticResolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StaticResolver")
            .field("pinned", &self.pinned)
            .finish()
    }
}
