//! Installing Unix signal handlers (before anything announces itself, so none is lost).

use anyhow::Context;
use tokio::signal::unix::{signal, Signal, SignalKind};

/// A handler for `kind`; `name` (e.g. `SIGTERM`) goes into the error.
pub fn handler(kind: SignalKind, name: &str) -> anyhow::Result<Signal> {
    signal(kind).with_context(|| format!("installing the {name} handler"))
}
