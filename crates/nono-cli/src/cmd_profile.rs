//! `nono profile ...` and `nono network-profile ...`: print what the policy crate resolves.

use std::path::PathBuf;

use clap::Subcommand;

use crate::exit::Failure;

/// `nono profile` subcommands.
#[derive(Debug, Subcommand)]
pub enum ProfileCommand {
    /// Built-in and user profiles, with descriptions.
    List,
    /// The fully resolved profile as JSON (after `extends` and variable expansion).
    Show {
        /// Profile name or path.
        name: String,
    },
    /// Check a profile file; exits 2 with the error naming file and key when it is invalid.
    Validate {
        /// Path to the profile JSON.
        file: PathBuf,
    },
}

/// `nono network-profile` subcommands.
#[derive(Debug, Subcommand)]
pub enum NetworkProfileCommand {
    /// Network profiles and their groups.
    List,
    /// The groups of a network profile and every host.
    Show {
        /// Network profile name.
        name: String,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
}

fn env() -> Result<nono_policy::Env, Failure> {
    nono_policy::Env::from_process().map_err(|e| Failure::usage(e.to_string()))
}

/// Runs a `nono profile` subcommand.
pub fn run_profile(cmd: ProfileCommand) -> Result<(), Failure> {
    let env = env()?;
    match cmd {
        ProfileCommand::List => {
            let list =
                nono_policy::list_profiles(&env).map_err(|e| Failure::usage(e.to_string()))?;
            let width = list.iter().map(|p| p.name.len()).max().unwrap_or(0);
            for p in list {
                let mut line = format!(
                    "{:width$}  {}",
                    p.name,
                    p.description.as_deref().unwrap_or("-")
                );
                if p.source != "builtin" {
                    line.push_str(&format!("  ({})", p.source));
                }
                if p.shadowed {
                    line.push_str("  [built-in, shadowed by a user profile]");
                }
                if let Some(e) = p.error {
                    line.push_str(&format!("  [INVALID: {e}]"));
                }
                println!("{line}");
            }
        }
        ProfileCommand::Show { name } => {
            let v = nono_policy::show_profile(&name, &env)
                .map_err(|e| Failure::usage(e.to_string()))?;
            let text = serde_json::to_string_pretty(&v).map_err(Failure::runtime)?;
            println!("{text}");
        }
        ProfileCommand::Validate { file } => {
            let info = nono_policy::validate_profile_file(&file, &env)
                .map_err(|e| Failure::usage(e.to_string()))?;
            println!(
                "{}: valid (profile \"{}\", chain: {})",
                file.display(),
                info.name,
                info.chain.join(" -> ")
            );
        }
    }
    Ok(())
}

/// Runs a `nono network-profile` subcommand.
pub fn run_network_profile(cmd: NetworkProfileCommand) -> Result<(), Failure> {
    match cmd {
        NetworkProfileCommand::List => {
            let list =
                nono_policy::network_profiles().map_err(|e| Failure::usage(e.to_string()))?;
            let width = list.iter().map(|p| p.name.len()).max().unwrap_or(0);
            for p in list {
                println!(
                    "{:width$}  {}  [{}]",
                    p.name,
                    p.description,
                    p.groups.join(", ")
                );
            }
        }
        NetworkProfileCommand::Show { name, json } => {
            let d = nono_policy::network_profile_show(&name)
                .map_err(|e| Failure::usage(e.to_string()))?;
            if json {
                let text = serde_json::to_string_pretty(&d).map_err(Failure::runtime)?;
                println!("{text}");
                return Ok(());
            }
            println!("{}: {}", d.name, d.description);
            for g in &d.groups {
                println!("\n{} — {}", g.name, g.description);
                for h in &g.hosts {
                    println!("  {h}");
                }
            }
        }
    }
    Ok(())
}
