//! Log set-up: everything goes to stderr so stdout stays machine-readable, or to a file
//! (`--log-file`) so `-v` does not draw over a terminal UI.

use std::io::IsTerminal;
use std::path::Path;
use std::sync::{Arc, Mutex};

use anyhow::Context;
use tracing_subscriber::EnvFilter;

/// Installs the subscriber. `base` is the level at verbosity 0; with `log_file` the lines are
/// appended there instead of stderr.
pub fn init(verbose: u8, quiet: bool, base: &str, log_file: Option<&Path>) -> anyhow::Result<()> {
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
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .without_time();
    match log_file {
        None => {
            let _ = builder
                .with_writer(std::io::stderr)
                .with_ansi(std::io::stderr().is_terminal())
                .try_init();
        }
        Some(path) => {
            let file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .with_context(|| format!("--log-file: cannot open {}", path.display()))?;
            let file = Arc::new(Mutex::new(file));
            let _ = builder
                .with_writer(move || LockedFile(file.clone()))
                .with_ansi(false)
                .try_init();
        }
    }
    Ok(())
}

/// One log line's access to the shared file.
struct LockedFile(Arc<Mutex<std::fs::File>>);

impl std::io::Write for LockedFile {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self.0.lock() {
            Ok(mut f) => f.write(buf),
            Err(_) => Ok(buf.len()),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self.0.lock() {
            Ok(mut f) => f.flush(),
            Err(_) => Ok(()),
        }
    }
}
