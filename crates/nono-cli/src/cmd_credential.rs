//! `nono credential set|delete NAME`: manage keys in the OS keyring (service `nono`), the
//! default source of credential routes. The secret is read from the terminal without echo, or
//! from standard input when it is not a terminal; it never appears in arguments or output.

use std::io::{BufRead, IsTerminal, Read, Write};

use nono_proxy::credential::{
    keyring_delete, keyring_store, KEYRING_SERVICE, MAX_CREDENTIAL_BYTES,
};
use nono_proxy::CredentialSource;
use zeroize::Zeroizing;

use crate::exit::Failure;

/// Arguments of `nono credential`.
#[derive(Debug, clap::Args)]
pub struct CredentialArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: CredentialCommand,
}

/// `nono credential` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum CredentialCommand {
    /// Store a key in the OS keyring (read without echo, or from stdin when piped).
    Set {
        /// Key name (the keyring account; what a route's `credential_key` names).
        name: String,
    },
    /// Remove a key from the OS keyring.
    Delete {
        /// Key name.
        name: String,
    },
}

/// Runs `nono credential ...`.
pub fn run(args: CredentialArgs) -> Result<(), Failure> {
    match args.command {
        CredentialCommand::Set { name } => {
            check_name(&name)?;
            let secret = read_secret(&name)
                .map_err(|e| Failure::runtime(anyhow::anyhow!("reading the secret failed: {e}")))?;
            if secret.is_empty() {
                return Err(Failure::usage("the secret is empty; nothing was stored"));
            }
            keyring_store(&name, &secret).map_err(|e| {
                Failure::runtime(anyhow::Error::new(e).context(format!(
                    "storing `{name}` in the keyring (service `{KEYRING_SERVICE}`)"
                )))
            })?;
            eprintln!("nono: stored `{name}` in the keyring (service `{KEYRING_SERVICE}`)");
            Ok(())
        }
        CredentialCommand::Delete { name } => {
            check_name(&name)?;
            match keyring_delete(&name) {
                Ok(true) => {
                    eprintln!("nono: deleted `{name}` from the keyring");
                    Ok(())
                }
                Ok(false) => Err(Failure::runtime(anyhow::anyhow!(
                    "the keyring has no key `{name}` (service `{KEYRING_SERVICE}`)"
                ))),
                Err(e) => Err(Failure::runtime(
                    anyhow::Error::new(e).context(format!("deleting `{name}` from the keyring")),
                )),
            }
        }
    }
}

/// A key name must be what a route source would read as a keyring account.
fn check_name(name: &str) -> Result<(), Failure> {
    match CredentialSource::parse(name) {
        Ok(CredentialSource::Keyring { .. }) => Ok(()),
        _ => Err(Failure::usage(format!(
            "`{name}` is not a key name: use letters, digits and `-`/`_`, without spaces or `scheme://`"
        ))),
    }
}

/// Reads one line from the terminal with echo off, or all of stdin when it is not a terminal;
/// one trailing newline is removed.
fn read_secret(name: &str) -> std::io::Result<Zeroizing<String>> {
    let stdin = std::io::stdin();
    let mut secret = Zeroizing::new(String::new());
    if stdin.is_terminal() {
        eprint!("Secret for `{name}` (input hidden): ");
        std::io::stderr().flush()?;
        let _echo_off = EchoOff::new(&stdin)?;
        stdin.lock().read_line(&mut secret)?;
        eprintln!();
    } else {
        let limit = u64::try_from(MAX_CREDENTIAL_BYTES + 2).unwrap_or(u64::MAX);
        stdin.lock().take(limit).read_to_string(&mut secret)?;
    }
    if secret.ends_with('\n') {
        secret.pop();
        if secret.ends_with('\r') {
            secret.pop();
        }
    }
    Ok(secret)
}

/// Turns terminal echo off for its lifetime (restored on drop, also on error paths).
struct EchoOff<'a> {
    stdin: &'a std::io::Stdin,
    saved: nix::sys::termios::Termios,
}

impl<'a> EchoOff<'a> {
    fn new(stdin: &'a std::io::Stdin) -> std::io::Result<EchoOff<'a>> {
        use nix::sys::termios::{tcgetattr, tcsetattr, LocalFlags, SetArg};
        let saved = tcgetattr(stdin).map_err(std::io::Error::from)?;
        let mut quiet = saved.clone();
        quiet.local_flags.remove(LocalFlags::ECHO);
        tcsetattr(stdin, SetArg::TCSANOW, &quiet).map_err(std::io::Error::from)?;
        Ok(EchoOff { stdin, saved })
    }
}

impl Drop for EchoOff<'_> {
    fn drop(&mut self) {
        let _ = nix::sys::termios::tcsetattr(
            self.stdin,
            nix::sys::termios::SetArg::TCSANOW,
            &self.saved,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_names_are_keyring_accounts() {
        assert!(check_name("openai").is_ok());
        assert!(check_name("my_key-2").is_ok());
        for bad in ["", "a b", "env://X", "file:///x"] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
    }
}
