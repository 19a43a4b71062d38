//! The crate's error type.

use std::io;
use std::path::PathBuf;

/// Why a profile, the network policy or the command-line flags could not be turned into a policy.
///
/// Every variant names where the problem is (a file and a key path, or a flag) and, where there
/// is a short list of valid values, what would be valid.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PolicyError {
    /// A value in a file is malformed: a syntax error, an unknown key, a wrong type, a bad host
    /// pattern, an unknown network profile, ...
    #[error("{file}: {}{message}", key_prefix(.key))]
    Invalid {
        /// The file (a path, or `<name> (built-in)` for embedded files).
        file: String,
        /// The key path inside the file, e.g. `network.allow_domain[2]`; empty for the whole file.
        key: String,
        /// What is wrong and what would be valid.
        message: String,
    },
    /// A command-line flag has a bad value.
    #[error("{flag}: {message}")]
    Flag {
        /// The flag, e.g. `--allow-domain`.
        flag: String,
        /// What is wrong and what would be valid.
        message: String,
    },
    /// Two settings that cannot be used together (e.g. `--block-net` and `--allow-domain`).
    #[error("{first} cannot be combined with {second}: {hint}")]
    Conflict {
        /// The first setting, with where it came from.
        first: String,
        /// The second setting, with where it came from.
        second: String,
        /// How to fix it.
        hint: String,
    },
    /// A file that configures the policy (or a symlink on its way, or a place a `cmd://`
    /// program is searched) lies beneath one of its own read-write grants: the sandboxed
    /// command could rewrite it and escape on the next run or credential refresh.
    #[error(
        "{what} is {file}, beneath the read-write grant {grant}: the sandboxed command could rewrite or \
         create it (grant itself `/`, add a command credential, replace the program) and nono \
         would obey outside the sandbox on the next run or credential refresh; keep it outside \
         every writable grant, e.g. in ~/.config/nono/profiles/ (a user profile, named with \
         --profile NAME) or a read-only location, or do not grant {grant} read-write"
    )]
    SelfEditable {
        /// What the file is: the profile, a base profile, a credential source.
        what: String,
        /// The file.
        file: PathBuf,
        /// The read-write grant it lies beneath.
        grant: PathBuf,
    },
    /// The interception CA key lies where the sandbox can read it.
    #[error(
        "the TLS interception CA key {file} is beneath {grant}, which the sandboxed command can read: \
         with the key it could impersonate any host to whatever trusts the CA; keep the key where \
         no grant reaches (e.g. ~/.config/nono/), or let nono make a session CA (drop --proxy-ca-cert/--proxy-ca-key)"
    )]
    CaKeyReadable {
        /// The key file.
        file: PathBuf,
        /// The grant that exposes it.
        grant: PathBuf,
    },
    /// `--profile NAME` (or `extends`) names no user or built-in profile.
    #[error("unknown profile \"{name}\"; available: {}", .available.join(", "))]
    UnknownProfile {
        /// The name asked for.
        name: String,
        /// The names that exist; user profiles are marked `(user)`.
        available: Vec<String>,
    },
    /// Profiles extend each other in a loop.
    #[error("extends cycle: {}", .chain.join(" -> "))]
    ExtendsCycle {
        /// The chain of profile names, ending with the one seen twice.
        chain: Vec<String>,
    },
    /// `extends` goes deeper than [`crate::load::MAX_EXTENDS_DEPTH`].
    #[error("extends chain deeper than {max}: {}", .chain.join(" -> "))]
    ExtendsTooDeep {
        /// The chain of profile names up to the limit.
        chain: Vec<String>,
        /// The limit.
        max: usize,
    },
    /// A file could not be read.
    #[error("cannot read {}: {source}", .path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// The process environment lacks something the policy needs (e.g. a home directory).
    #[error("environment: {0}")]
    Env(String),
}

fn key_prefix(key: &str) -> String {
    if key.is_empty() {
        String::new()
    } else {
        format!("{key}: ")
    }
}

impl PolicyError {
    /// Builds [`PolicyError::Invalid`].
    pub(crate) fn invalid(file: &str, key: impl Into<String>, message: impl Into<String>) -> Self {
        PolicyError::Invalid {
            file: file.to_string(),
            key: key.into(),
            message: message.into(),
        }
    }

    /// Builds [`PolicyError::Flag`].
    pub(crate) fn flag(flag: &str, message: impl Into<String>) -> Self {
        PolicyError::Flag {
            flag: flag.to_string(),
            message: message.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_names_file_and_key() {
        let e = PolicyError::invalid("p.json", "network.block", "expected a boolean");
        assert_eq!(e.to_string(), "p.json: network.block: expected a boolean");
        let e = PolicyError::invalid("p.json", "", "EOF while parsing");
        assert_eq!(e.to_string(), "p.json: EOF while parsing");
    }

    #[test]
    fn cycle_and_unknown_profile_messages() {
        let e = PolicyError::ExtendsCycle {
            chain: vec!["a".into(), "b".into(), "a".into()],
        };
        assert_eq!(e.to_string(), "extends cycle: a -> b -> a");
        let e = PolicyError::UnknownProfile {
            name: "foo".into(),
            available: vec!["codex".into(), "(user) my-agent".into()],
        };
        assert_eq!(
            e.to_string(),
            "unknown profile \"foo\"; available: codex, (user) my-agent"
        );
    }
}
