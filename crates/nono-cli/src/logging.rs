//! Log set-up: everything goes to stderr so stdout stays machine-readable.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

/// Installs the subscriber. `base` is the level at verbosity 0.
pub fn init(verbose: u8, quiet: bool, base: &str) {
    let level = if quiet {
        "error"
    } else {
        match verbose {
            0 => base,
            1 => "info,nono=debug,nono_proxy=debug",
            _ => "debug,nono=trace,nono_proxy=trace",
        }
    };
    let filter = EnvFilter::try_from_env("NONO_LOG").unwrap_or_else(|_| EnvFilter::new(level));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(std::io::stderr().is_terminal())
        .without_time()
        .try_init();
}
