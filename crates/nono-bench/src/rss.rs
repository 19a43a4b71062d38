//! Proxy memory: RSS when idle, and with many idle open tunnels.

use std::time::Duration;

use anyhow::{Context, Result};

use crate::latency::open_and_echo;
use crate::net::Route;
use crate::sys::rss_kib;

/// Pause before each RSS reading so the proxy has finished reacting to the last event.
const SETTLE: Duration = Duration::from_millis(500);

/// RSS figures for one proxy process, in KiB.
#[derive(Clone, Copy, Debug)]
pub struct Memory {
    /// Right after start, before any connection.
    pub idle_kib: u64,
    /// With the idle tunnels open.
    pub loaded_kib: u64,
    /// Number of idle tunnels held open.
    pub tunnels: usize,
}

impl Memory {
    /// `(loaded - idle) / tunnels`, in KiB.
    pub fn per_tunnel_kib(&self) -> f64 {
        (self.loaded_kib as f64 - self.idle_kib as f64) / self.tunnels.max(1) as f64
    }
}

/// Reads the idle RSS of `pid`, opens `tunnels` tunnels along `route` (each proven with a
/// 1-byte echo), and reads RSS again while they are all open.
pub async fn measure(pid: u32, route: &Route, echo_port: u16, tunnels: usize) -> Result<Memory> {
    tokio::time::sleep(SETTLE).await;
    let idle_kib = rss_kib(pid)?;
    let mut open = Vec::with_capacity(tunnels);
    for i in 0..tunnels {
        let stream = open_and_echo(route, echo_port)
            .await
            .with_context(|| format!("idle tunnel {i} of {tunnels}"))?;
        open.push(stream);
    }
    tokio::time::sleep(SETTLE).await;
    let loaded_kib = rss_kib(pid)?;
    drop(open);
    Ok(Memory {
        idle_kib,
        loaded_kib,
        tunnels,
    })
}
