//! `nono`: sandbox supervisor and filtering proxy for AI coding agents.
//!
//! This binary only wires the library crates together: `nono-proxy` (the proxy),
//! `nono-policy` (profiles and resolution) and `nono-sandbox` (kernel confinement).
#![forbid(unsafe_code)]

mod cmd_credential;
mod cmd_profile;
mod cmd_proxy;
mod exit;
mod limits;
mod logging;
mod netflags;

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
    /// Store or delete a credential in the OS keyring (service "nono").
    Credential(cmd_credential::CredentialArgs),
    /// List, show and validate profiles.
    #[command(subcommand)]
    Profile(cmd_profile::ProfileCommand),
    /// List and show network profiles (host groups from network-policy.json).
    #[command(subcommand, name = "network-profile")]
    NetworkProfile(cmd_profile::NetworkProfileCommand),
}

fn main() {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Proxy(a) => cmd_proxy::run(a),
        Command::Credential(a) => cmd_credential::run(a),
        Command::Profile(c) => cmd_profile::run_profile(c),
        Command::NetworkProfile(c) => cmd_profile::run_network_profile(c),
    };
    if let Err(f) = result {
        eprintln!("nono: {:#}", f.error);
        std::process::exit(f.code);
    }
}
