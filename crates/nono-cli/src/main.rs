//! `nono`: sandbox supervisor and filtering proxy for AI coding agents.
//!
//! This binary only wires the library crates together: `nono-proxy` (the proxy),
//! `nono-policy` (profiles and resolution) and `nono-sandbox` (kernel confinement).
#![forbid(unsafe_code)]

mod cmd_credential;
mod cmd_doctor;
mod cmd_profile;
mod cmd_proxy;
mod cmd_run;
mod denials;
mod exit;
#[cfg(target_os = "macos")]
mod keychain;
mod learn;
mod limits;
mod logging;
mod netflags;
mod secret;
mod signals;

use clap::{Parser, Subcommand};

/// The version and the commit it was built from.
pub const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (",
    env!("NONO_GIT_COMMIT"),
    ")"
);

/// Kernel-enforced sandbox and network filtering proxy for AI agents.
#[derive(Debug, Parser)]
#[command(name = "nono", version = VERSION, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a command confined by the kernel, its network filtered by an in-process proxy.
    Run(cmd_run::RunArgs),
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
    /// What this kernel offers nono (Landlock ABI, seccomp, user namespaces, WSL2).
    Doctor(cmd_doctor::DoctorArgs),
    /// Print a shell completion script: `nono completions bash > /etc/bash_completion.d/nono`.
    Completions {
        /// bash, zsh, fish, elvish or powershell.
        shell: clap_complete::Shell,
    },
}

fn main() {
    // `nono run` must not exit with codes its child could also produce: its own failures,
    // usage errors included, are 125.
    let is_run = std::env::args_os().nth(1).is_some_and(|a| a == "run");
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            if !e.use_stderr() {
                // --help and --version.
                let _ = e.print();
                std::process::exit(0);
            }
            if e.kind() == clap::error::ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand {
                // `nono`, `nono profile`, ... alone: the help is the answer.
                let _ = e.print();
                std::process::exit(exit::EXIT_USAGE);
            }
            // Usage errors are one line, like every other refusal.
            eprintln!("nono: {}", one_line(&e.render().to_string()));
            std::process::exit(if is_run {
                exit::EXIT_NONO_FAILED
            } else {
                exit::EXIT_USAGE
            });
        }
    };
    let result = match cli.command {
        Command::Run(a) => match cmd_run::run(a) {
            Ok(code) => std::process::exit(code),
            Err(mut f) => {
                if f.code == exit::EXIT_USAGE {
                    f.code = exit::EXIT_NONO_FAILED;
                }
                Err(f)
            }
        },
        Command::Proxy(a) => cmd_proxy::run(a),
        Command::Credential(a) => cmd_credential::run(a),
        Command::Profile(c) => cmd_profile::run_profile(c),
        Command::NetworkProfile(c) => cmd_profile::run_network_profile(c),
        Command::Doctor(a) => match cmd_doctor::run(a) {
            Ok(code) => std::process::exit(code),
            Err(f) => Err(f),
        },
        Command::Completions { shell } => {
            use clap::CommandFactory;
            clap_complete::generate(shell, &mut Cli::command(), "nono", &mut std::io::stdout());
            Ok(())
        }
    };
    if let Err(f) = result {
        eprintln!("nono: {:#}", f.error);
        std::process::exit(f.code);
    }
}

/// A clap error on one line: its first paragraph (the message and any indented detail, such
/// as the missing arguments) and its `tip:` lines, without the usage block.
fn one_line(rendered: &str) -> String {
    let mut paragraphs = rendered.split("\n\n");
    let message = paragraphs
        .next()
        .unwrap_or("invalid usage")
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    let mut out = message
        .strip_prefix("error: ")
        .unwrap_or(&message)
        .to_string();
    for tip in paragraphs
        .flat_map(str::lines)
        .map(str::trim)
        .filter(|l| l.starts_with("tip:"))
    {
        out.push_str("; ");
        out.push_str(tip);
    }
    out.push_str(" (see --help)");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clap_errors_fold_into_one_line_with_their_details_and_tips() {
        let missing = "error: the following required arguments were not provided:\n  <CMD>...\n\nUsage: nono run <CMD>...\n\nFor more information, try '--help'.\n";
        assert_eq!(
            one_line(missing),
            "the following required arguments were not provided: <CMD>... (see --help)"
        );
        let tip = "error: unexpected argument '--jsn' found\n\n  tip: a similar argument exists: '--json'\n\nUsage: nono proxy [OPTIONS]\n";
        assert_eq!(
            one_line(tip),
            "unexpected argument '--jsn' found; tip: a similar argument exists: '--json' (see --help)"
        );
    }
}
