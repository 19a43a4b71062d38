//! `nono`: sandbox supervisor and filtering proxy for AI coding agents.
//!
//! This binary only wires the library crates together: `nono-proxy` (the proxy),
//! `nono-policy` (profiles and resolution) and `nono-sandbox` (kernel confinement).
#![forbid(unsafe_code)]

mod cmd_proxy;
mod exit;
mod limits;
mod logging;

use clap::{Parser, Subcommand};

/// Kernel-enforced sandbox and network filtering proxy for AI agents.
#[derive(Debug, Parser)]
#[command(name = "nono", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the filtering proxy standalone (for containers, VMs, pods).
    Proxy(cmd_proxy::ProxyArgs),
}

fn main() {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Proxy(a) => cmd_proxy::run(a),
    };
    if let Err(f) = result {
        eprintln!("nono: {:#}", f.error);
        std::process::exit(f.code);
    }
}
