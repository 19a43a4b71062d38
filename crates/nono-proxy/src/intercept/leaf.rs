//! A bounded cache of leaf certificates per intercepted host, so a kept-busy host costs one
//! signature per day rather than one per connection.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rustls::sign::CertifiedKey;
use time::OffsetDateTime;

use crate::filter::Host;
use crate::intercept::ca::{CaError, CertAuthority};

/// Hosts whose leaves are kept; beyond it the least recently used is dropped.
pub const DEFAULT_LEAF_CACHE: usize = 1024;
/// A leaf this close to its end is issued afresh rather than served.
const RENEW_BEFORE: Duration = Duration::from_secs(3600);

struct Entry {
    key: Arc<CertifiedKey>,
    renew_at: OffsetDateTime,
    last_used: u64,
}

/// Leaves by host, issued on demand by the CA.
pub struct LeafCache {
    ca: CertAuthority,
    cap: usize,
    entries: Mutex<HashMap<Host, Entry>>,
    clock: AtomicU64,
    hits: AtomicU64,
    misses: AtomicU64,
}

impl LeafCache {
    /// A cache of at most `cap` leaves (at least one) issued by `ca`.
    pub fn new(ca: CertAuthority, cap: usize) -> LeafCache {
        LeafCache {
            ca,
            cap: cap.max(1),
            entries: Mutex::new(HashMap::new()),
            clock: AtomicU64::new(0),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        }
    }

    /// The CA the leaves chain to.
    pub fn ca(&self) -> &CertAuthority {
        &self.ca
    }

    /// The leaf for `host`, from the cache or freshly issued.
    pub fn get(&self, host: &Host) -> Result<Arc<CertifiedKey>, CaError> {
        let tick = self.clock.fetch_add(1, Ordering::Relaxed);
        let now = OffsetDateTime::now_utc();
        if let Ok(mut map) = self.entries.lock() {
            if let Some(e) = map.get_mut(host).filter(|e| e.renew_at > now) {
                e.last_used = tick;
                self.hits.fetch_add(1, Ordering::Relaxed);
                return Ok(e.key.clone());
            }
        }
        self.misses.fetch_add(1, Ordering::Relaxed);
        // Issued outside the lock: a signature takes far longer than a lookup.
        let (key, not_after) = self.ca.issue(host)?;
        let renew_at = (not_after - RENEW_BEFORE).max(now);
        if let Ok(mut map) = self.entries.lock() {
            if map.len() >= self.cap && !map.contains_key(host) {
                let oldest = map
                    .iter()
                    .min_by_key(|(_, e)| e.last_used)
                    .map(|(h, _)| h.clone());
                if let Some(h) = oldest {
                    map.remove(&h);
                }
            }
            map.insert(
                host.clone(),
                Entry {
                    key: key.clone(),
                    renew_at,
                    last_used: tick,
                },
            );
        }
        Ok(key)
    }

    /// `(hits, misses)` so far.
    pub fn stats(&self) -> (u64, u64) {
        (
            self.hits.load(Ordering::Relaxed),
            self.misses.load(Ordering::Relaxed),
        )
    }

    /// Leaves held now.
    pub fn len(&self) -> usize {
        self.entries.lock().map(|m| m.len()).unwrap_or(0)
    }

    /// Whether no leaf is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(s: &str) -> Host {
        Host::Name(s.into())
    }

    #[test]
    fn hits_reuse_the_leaf_and_the_bound_holds() {
        let cache = LeafCache::new(CertAuthority::generate(1).unwrap(), 2);
        let a1 = cache.get(&name("a.example")).unwrap();
        let a2 = cache.get(&name("a.example")).unwrap();
        assert!(Arc::ptr_eq(&a1, &a2));
        assert_eq!(cache.stats(), (1, 1));
        cache.get(&name("b.example")).unwrap();
        // a was used more recently than b? No: b is newest, a next; c evicts a.
        cache.get(&name("a.example")).unwrap();
        cache.get(&name("c.example")).unwrap();
        assert_eq!(cache.len(), 2);
        // b was least recently used, so it went.
        let before = cache.stats().1;
        cache.get(&name("a.example")).unwrap();
        assert_eq!(cache.stats().1, before, "a must still be cached");
        cache.get(&name("b.example")).unwrap();
        assert_eq!(cache.stats().1, before + 1, "b must have been evicted");
    }
}
