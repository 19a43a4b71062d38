//! The admission decision for one target: deny list, allowlist, resolution, and a check of
//! every resolved address. Returns the checked addresses, which are the only ones the caller
//! may connect to (no re-resolution, so DNS rebinding cannot swap them).

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use crate::deny::{self, DenyReason};
use crate::dns::Resolver;
use crate::filter::{AllowMatch, Host, HostFilter};

/// Why a target was not admitted.
#[derive(Debug)]
pub enum Refusal {
    /// Policy says no (403).
    Denied(DenyReason),
    /// The name does not resolve (502), or not in time (`TimedOut`, 504).
    Unresolvable(io::Error),
}

/// Admission policy shared by every proxy path.
pub struct Gate {
    filter: HostFilter,
    /// `--deny-domain` patterns: checked before the allowlist, and win over it.
    denied: Arc<HostFilter>,
    own_addr: Option<SocketAddr>,
    resolver: Arc<dyn Resolver>,
    /// A resolver that never answers must not hold the client (or a blocking thread slot
    /// of ours) for ever.
    resolve_timeout: Duration,
}

impl Gate {
    /// Builds the gate; `own_addr` is the proxy's listening address; a name not resolved
    /// within `resolve_timeout` is refused.
    pub fn new(
        filter: HostFilter,
        own_addr: Option<SocketAddr>,
        resolver: Arc<dyn Resolver>,
        resolve_timeout: Duration,
    ) -> Self {
        Gate {
            filter,
            denied: Arc::new(HostFilter::default()),
            own_addr,
            resolver,
            resolve_timeout,
        }
    }

    /// Adds the deny patterns (shared by every gate of one proxy).
    pub fn with_denied(mut self, denied: Arc<HostFilter>) -> Self {
        self.denied = denied;
        self
    }

    /// Whether `host:port` is on the deny list.
    pub fn deny_listed(&self, host: &Host, port: u16) -> bool {
        self.denied.names(host, port)
    }

    /// The allowlist.
    pub fn filter(&self) -> &HostFilter {
        &self.filter
    }

    /// Checks name and allowlist without resolving.
    pub fn precheck(&self, host: &Host, port: u16) -> Result<AllowMatch, DenyReason> {
        if let Some(r) = deny::check_host(host) {
            return Err(r);
        }
        if self.deny_listed(host, port) {
            return Err(DenyReason::DenyListed);
        }
        match self.filter.check(host, port) {
            AllowMatch::NotListed => Err(DenyReason::NotAllowlisted),
            m => Ok(m),
        }
    }

    /// Full admission: precheck, resolve, check every address.
    pub async fn admit(&self, host: &Host, port: u16) -> Result<Vec<SocketAddr>, Refusal> {
        let how = self.precheck(host, port).map_err(Refusal::Denied)?;
        let ips = match host {
            Host::Ip(ip) => vec![*ip],
            Host::Name(name) => {
                match tokio::time::timeout(self.resolve_timeout, self.resolver.resolve(name)).await
                {
                    Ok(r) => r.map_err(Refusal::Unresolvable)?,
                    Err(_) => {
                        return Err(Refusal::Unresolvable(io::Error::new(
                            io::ErrorKind::TimedOut,
                            format!("no answer within {:?}", self.resolve_timeout),
                        )))
                    }
                }
            }
        };
        if ips.is_empty() {
            return Err(Refusal::Unresolvable(io::Error::new(
                io::ErrorKind::NotFound,
                "name resolved to no address",
            )));
        }
        self.check_addrs(
            ips.into_iter().map(|ip| SocketAddr::new(ip, port)),
            how == AllowMatch::Explicit,
        )
    }

    /// Checks resolved addresses; any denied address denies the whole set. `local_ok`: the
    /// target was allowed by its exact name or address, which unlocks this machine's own.
    pub fn check_addrs(
        &self,
        addrs: impl IntoIterator<Item = SocketAddr>,
        local_ok: bool,
    ) -> Result<Vec<SocketAddr>, Refusal> {
        let mut out = Vec::new();
        for a in addrs {
            if let Some(r) = deny::check_addr(a, local_ok, self.own_addr) {
                return Err(Refusal::Denied(r));
            }
            out.push(a);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dns::StaticResolver;
    use std::collections::HashMap;
    use std::net::IpAddr;

    fn gate(allow: &[&str], pins: &[(&str, &[&str])]) -> Gate {
        let pinned: HashMap<String, Vec<IpAddr>> = pins
            .iter()
            .map(|(n, a)| {
                (
                    n.to_string(),
                    a.iter().map(|s| s.parse().unwrap()).collect(),
                )
            })
            .collect();
        let resolver = Arc::new(StaticResolver::new(
            pinned,
            Arc::new(crate::dns::SystemResolver),
        ));
        Gate::new(
            HostFilter::new(allow).unwrap(),
            Some("127.0.0.1:3128".parse().unwrap()),
            resolver,
            Duration::from_secs(10),
        )
    }

    fn reason(r: Result<Vec<SocketAddr>, Refusal>) -> &'static str {
        match r {
            Err(Refusal::Denied(d)) => d.as_str(),
            Err(Refusal::Unresolvable(_)) => "unresolvable",
            Ok(_) => "ok",
        }
    }

    #[tokio::test]
    async fn rebinding_to_link_local_is_denied_even_if_one_address_is_fine() {
        let g = gate(
            &["*.example.com"],
            &[("evil.example.com", &["93.184.216.34", "169.254.169.254"])],
        );
        let h = Host::parse("evil.example.com").unwrap();
        assert_eq!(reason(g.admit(&h, 443).await), "denied_metadata");
    }

    #[tokio::test]
    async fn loopback_only_when_named_exactly() {
        let g = gate(
            &["*.example.com", "dev.internal"],
            &[
                ("a.example.com", &["127.0.0.1"]),
                ("dev.internal", &["127.0.0.1"]),
            ],
        );
        assert_eq!(
            reason(g.admit(&Host::parse("a.example.com").unwrap(), 80).await),
            "denied_loopback"
        );
        assert_eq!(
            reason(g.admit(&Host::parse("dev.internal").unwrap(), 80).await),
            "ok"
        );
        assert_eq!(
            reason(g.admit(&Host::parse("dev.internal").unwrap(), 3128).await),
            "denied_self"
        );
        let open = gate(&[], &[]);
        assert_eq!(
            reason(open.admit(&Host::parse("127.0.0.1").unwrap(), 80).await),
            "denied_loopback"
        );
    }

    /// This machine's own non-loopback address is admitted only when named exactly, like
    /// loopback: not under allow-all, not through a wildcard name that resolves to it.
    #[tokio::test]
    async fn this_machines_address_only_when_named_exactly() {
        let Some(local) = deny::interface_addresses()
            .into_iter()
            .find(|a| !deny::is_loopback(*a) && deny::check_ip(*a).is_none())
        else {
            eprintln!("this machine has no address beyond loopback and link-local; skipped");
            return;
        };
        let literal = Host::Ip(local);
        let text = local.to_string();
        let pinned: &[&str] = &[text.as_str()];
        let open = gate(&[], &[("me.example.com", pinned)]);
        assert_eq!(
            reason(open.admit(&literal, 5432).await),
            "denied_local_address"
        );
        let by_name = Host::parse("me.example.com").unwrap();
        assert_eq!(
            reason(open.admit(&by_name, 8080).await),
            "denied_local_address"
        );
        let wildcard = gate(&["*.example.com"], &[("me.example.com", pinned)]);
        assert_eq!(
            reason(wildcard.admit(&by_name, 8080).await),
            "denied_local_address"
        );
        let exact = gate(&[&text, "me.example.com"], &[("me.example.com", pinned)]);
        assert_eq!(reason(exact.admit(&literal, 5432).await), "ok");
        assert_eq!(reason(exact.admit(&by_name, 8080).await), "ok");
    }

    #[tokio::test]
    async fn metadata_denied_even_when_allowlisted() {
        let g = gate(
            &["169.254.169.254", "metadata.google.internal", "2852039166"],
            &[],
        );
        for h in [
            "169.254.169.254",
            "2852039166",
            "[::ffff:169.254.169.254]",
            "metadata.google.internal.",
        ] {
            assert_eq!(
                reason(g.admit(&Host::parse(h).unwrap(), 80).await),
                "denied_metadata",
                "{h}"
            );
        }
        assert_eq!(
            reason(g.admit(&Host::parse("other.com").unwrap(), 80).await),
            "not_allowlisted"
        );
    }

    /// Never answers.
    struct Silent;
    impl Resolver for Silent {
        fn resolve<'a>(&'a self, _host: &'a str) -> crate::dns::ResolveFuture<'a> {
            Box::pin(std::future::pending())
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_resolver_that_never_answers_times_out() {
        let g = Gate::new(
            HostFilter::new(&[] as &[&str]).unwrap(),
            None,
            Arc::new(Silent),
            Duration::from_secs(3),
        );
        let host = Host::parse("slow.example").unwrap();
        match g.admit(&host, 443).await {
            Err(Refusal::Unresolvable(e)) => assert_eq!(e.kind(), io::ErrorKind::TimedOut),
            other => panic!("{:?}", other.map_err(|r| format!("{r:?}"))),
        }
    }
}
