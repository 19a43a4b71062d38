//! Installing Unix signal handlers (before anything announces itself, so none is lost).

use anyhow::Context;
use tokio::signal::unix::{signal, Signal, SignalKind};

/// A handler for `kind`; `name` (e.g. `SIGTERM`) goes into the error.
pub fn handler(kind: SignalKind, name: &str) -> anyhow::Result<Signal> {
    signal(kind).with_context(|| format!("installing the {name} handler"))
}

/// Whether `signal` is set to be ignored, as `nohup` leaves SIGHUP: such a choice is kept.
/// Read from the `SigIgn` mask of /proc/self/status (no unsafe code in this crate); false
/// where that is not available.
pub fn ignored(signal: libc::c_int) -> bool {
    let Ok(status) = std::fs::read_to_string("/proc/self/status") else {
        return false;
    };
    let Some(mask) = status
        .lines()
        .find_map(|l| l.strip_prefix("SigIgn:"))
        .and_then(|m| u64::from_str_radix(m.trim(), 16).ok())
    else {
        return false;
    };
    (1..=64).contains(&signal) && mask & (1u64 << (signal - 1)) != 0
}
