//! Connections that have not authenticated yet: their own small budget and a short deadline,
//! so they never hold the connection slots of authenticated clients.
//!
//! Every accepted connection enters the waiting pool. It leaves it when one of its requests
//! authenticates (the session token, or a route's phantom); only then does it take one of the
//! `max_connections` slots, which it keeps for the rest of its life (keep-alive included). A
//! connection still waiting after [`UNAUTHENTICATED_TIMEOUT`] is closed. When the pool is full
//! a new connection evicts the oldest waiting one: a flood of idle connections then only
//! evicts its own, while a real client, which sends its head right after connecting, is
//! younger than the flood's and is served before the flood catches up with it.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

/// Most connections that may wait to authenticate at once; a new one evicts the oldest.
pub const MAX_UNAUTHENTICATED: usize = 64;
/// How long a connection may stay unauthenticated: time to send a complete request head with
/// a valid token (or to retry with one after a 407). Local clients send theirs at once.
pub const UNAUTHENTICATED_TIMEOUT: Duration = Duration::from_secs(5);

/// The connections waiting to authenticate, oldest first.
pub(crate) struct Waiting {
    capacity: usize,
    timeout: Duration,
    inner: Mutex<Queue>,
}

struct Queue {
    next_id: u64,
    /// Each waiting connection's id and its eviction signal.
    entries: VecDeque<(u64, Arc<Notify>)>,
}

impl Waiting {
    /// A pool of `capacity` (at least one) connections, each waiting at most `timeout`.
    pub(crate) fn new(capacity: usize, timeout: Duration) -> Arc<Waiting> {
        Arc::new(Waiting {
            capacity: capacity.max(1),
            timeout,
            inner: Mutex::new(Queue {
                next_id: 0,
                entries: VecDeque::new(),
            }),
        })
    }

    /// Enters a newly accepted connection, evicting the oldest waiting one when full.
    pub(crate) fn enter(self: &Arc<Self>) -> Unauthenticated {
        let evicted = Arc::new(Notify::new());
        let id = match self.inner.lock() {
            Ok(mut q) => {
                while q.entries.len() >= self.capacity {
                    if let Some((_, oldest)) = q.entries.pop_front() {
                        oldest.notify_one();
                    }
                }
                let id = q.next_id;
                q.next_id += 1;
                q.entries.push_back((id, evicted.clone()));
                id
            }
            // Poisoned: nothing is tracked; the deadline alone still bounds the connection.
            Err(_) => u64::MAX,
        };
        Unauthenticated {
            pool: self.clone(),
            id,
            evicted,
            deadline: Instant::now() + self.timeout,
            authenticated: AtomicBool::new(false),
        }
    }

    /// Connections waiting now.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.inner.lock().map(|q| q.entries.len()).unwrap_or(0)
    }

    fn remove(&self, id: u64) {
        if let Ok(mut q) = self.inner.lock() {
            if let Some(at) = q.entries.iter().position(|(i, _)| *i == id) {
                q.entries.remove(at);
            }
        }
    }
}

/// One connection's place in the pool until it authenticates; leaves it on drop.
pub(crate) struct Unauthenticated {
    pool: Arc<Waiting>,
    id: u64,
    evicted: Arc<Notify>,
    deadline: Instant,
    authenticated: AtomicBool,
}

impl Unauthenticated {
    /// Whether a request on this connection has authenticated.
    pub(crate) fn is_authenticated(&self) -> bool {
        self.authenticated.load(Ordering::Acquire)
    }

    /// Marks the connection authenticated and leaves the pool. A connection evicted a moment
    /// ago that authenticates before it was closed (its head was already buffered) is kept:
    /// the pool's bound is on connections that have not shown a token.
    pub(crate) fn authenticate(&self) {
        if !self.authenticated.swap(true, Ordering::AcqRel) {
            self.pool.remove(self.id);
        }
    }

    /// Resolves when the connection must be closed: evicted, or past its deadline, without
    /// having authenticated. Never resolves once it has.
    pub(crate) async fn closed(&self) {
        tokio::select! {
            _ = self.evicted.notified() => {}
            _ = tokio::time::sleep_until(self.deadline) => {}
        }
        if self.is_authenticated() {
            std::future::pending::<()>().await;
        }
    }
}

impl Drop for Unauthenticated {
    fn drop(&mut self) {
        if !self.is_authenticated() {
            self.pool.remove(self.id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::FutureExt;

    #[tokio::test(start_paused = true)]
    async fn a_full_pool_evicts_its_oldest_connection() {
        let pool = Waiting::new(2, Duration::from_secs(5));
        let first = pool.enter();
        let second = pool.enter();
        assert_eq!(pool.len(), 2);
        let third = pool.enter();
        assert_eq!(pool.len(), 2);
        assert!(first.closed().now_or_never().is_some(), "oldest evicted");
        assert!(second.closed().now_or_never().is_none());
        assert!(third.closed().now_or_never().is_none());
        drop(second);
        assert_eq!(pool.len(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn waiting_ends_at_the_deadline_unless_authenticated() {
        let pool = Waiting::new(4, Duration::from_secs(5));
        let slow = pool.enter();
        let quick = pool.enter();
        quick.authenticate();
        assert_eq!(pool.len(), 1, "an authenticated connection leaves the pool");
        let started = Instant::now();
        slow.closed().await;
        assert_eq!(started.elapsed(), Duration::from_secs(5));
        let later = tokio::time::timeout(Duration::from_secs(60), quick.closed()).await;
        assert!(
            later.is_err(),
            "an authenticated connection is never closed by the pool"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn authenticated_connections_are_never_evicted() {
        let pool = Waiting::new(1, Duration::from_secs(5));
        let served = pool.enter();
        served.authenticate();
        let _flood: Vec<_> = (0..10).map(|_| pool.enter()).collect();
        assert_eq!(pool.len(), 1);
        let r = tokio::time::timeout(Duration::from_secs(60), served.closed()).await;
        assert!(r.is_err());
    }

    #[tokio::test(start_paused = true)]
    async fn an_evicted_connection_whose_token_arrives_first_is_kept() {
        let pool = Waiting::new(1, Duration::from_secs(5));
        let early = pool.enter();
        let _newer = pool.enter();
        early.authenticate();
        let r = tokio::time::timeout(Duration::from_secs(60), early.closed()).await;
        assert!(r.is_err());
        assert_eq!(pool.len(), 1);
    }
}
