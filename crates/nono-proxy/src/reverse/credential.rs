//! Credential sources and loading: the OS keyring, the supervisor's environment, a file that
//! is re-read when it changes, and a host command with a timeout and a cache TTL.
//!
//! Every secret is held in a [`Zeroizing`] buffer; no error, log line or `Debug` output here
//! contains one. Loading is synchronous (keyring APIs block); the reverse proxy calls
//! [`Credential::get`] on a blocking thread.

use std::fmt;
use std::io::Read;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

use zeroize::Zeroizing;

use crate::route::RouteError;

/// Keyring service under which `nono credential set` stores keys.
pub const KEYRING_SERVICE: &str = "nono";
/// Default time a `cmd://` credential command may run.
pub const DEFAULT_CMD_TIMEOUT: Duration = Duration::from_secs(10);
/// Default time a `cmd://` credential is cached before the command runs again.
pub const DEFAULT_CMD_TTL: Duration = Duration::from_secs(300);
/// Largest credential accepted from a file or command.
pub const MAX_CREDENTIAL_BYTES: usize = 64 * 1024;
/// How often a running credential command is polled for exit.
const CMD_POLL: Duration = Duration::from_millis(10);

/// Where a route's credential comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CredentialSource {
    /// OS keyring, service [`KEYRING_SERVICE`], this account.
    Keyring {
        /// Account (the key name).
        account: String,
    },
    /// The supervisor's environment, read at start.
    Env {
        /// Variable name.
        var: String,
    },
    /// A file, re-read whenever its modification time or length changes.
    File {
        /// Absolute path.
        path: PathBuf,
    },
    /// `/bin/sh -c cmd` on the host; its standard output (trailing newline trimmed).
    Command {
        /// Shell command.
        cmd: String,
        /// Longest run allowed.
        timeout: Duration,
        /// How long one output is reused.
        ttl: Duration,
    },
}

impl CredentialSource {
    /// Parses `NAME` (keyring account), `env://VAR`, `file:///abs/path` or `cmd://command`.
    pub fn parse(s: &str) -> Result<CredentialSource, RouteError> {
        let bad = |reason: &str| RouteError::Source {
            source_text: s.to_string(),
            reason: reason.to_string(),
        };
        if let Some(var) = s.strip_prefix("env://") {
            if !crate::route::is_env_name(var) {
                return Err(bad(
                    "`env://` needs a variable name, e.g. `env://OPENAI_API_KEY`",
                ));
            }
            return Ok(CredentialSource::Env {
                var: var.to_string(),
            });
        }
        if let Some(path) = s.strip_prefix("file://") {
            if !path.starts_with('/') || path.contains('\0') {
                return Err(bad(
                    "`file://` needs an absolute path, e.g. `file:///run/secrets/openai`",
                ));
            }
            return Ok(CredentialSource::File {
                path: PathBuf::from(path),
            });
        }
        if let Some(cmd) = s.strip_prefix("cmd://") {
            if cmd.trim().is_empty() || cmd.contains('\0') {
                return Err(bad(
                    "`cmd://` needs a command, e.g. `cmd://op read op://vault/openai/key`",
                ));
            }
            return Ok(CredentialSource::Command {
                cmd: cmd.to_string(),
                timeout: DEFAULT_CMD_TIMEOUT,
                ttl: DEFAULT_CMD_TTL,
            });
        }
        if s.contains("://") {
            return Err(bad(
                "unknown scheme; use a keyring name, `env://`, `file://` or `cmd://`",
            ));
        }
        if s.is_empty() || s.chars().any(|c| c.is_control() || c.is_whitespace()) {
            return Err(bad(
                "a keyring key name must be non-empty, without spaces or control characters",
            ));
        }
        Ok(CredentialSource::Keyring {
            account: s.to_string(),
        })
    }

    /// A description for diagnostics (never the secret).
    pub fn describe(&self) -> String {
        match self {
            CredentialSource::Keyring { account } => {
                format!("keyring `{KEYRING_SERVICE}`/`{account}`")
            }
            CredentialSource::Env { var } => format!("environment variable `{var}`"),
            CredentialSource::File { path } => format!("file `{}`", path.display()),
            CredentialSource::Command { cmd, .. } => format!("command `{cmd}`"),
        }
    }
}

impl fmt::Display for CredentialSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.describe())
    }
}

/// Why a credential could not be loaded. Never contains the secret.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CredentialError {
    /// The keyring has no such entry or could not be read.
    #[error("keyring: {0}")]
    Keyring(String),
    /// The environment variable is unset or not UTF-8.
    #[error("the variable is not set in nono's environment")]
    EnvMissing,
    /// The file could not be read.
    #[error("cannot read the file: {0}")]
    File(#[source] std::io::Error),
    /// The command could not run, failed or timed out.
    #[error("command: {0}")]
    Command(String),
    /// The value is empty, too large or not UTF-8.
    #[error("the credential is {0}")]
    BadValue(&'static str),
}

/// A loaded file and the metadata it was loaded with.
struct FileCache {
    stamp: (Option<SystemTime>, u64),
    value: Zeroizing<String>,
}

/// The loaded state of one source.
enum Cache {
    Empty,
    Fixed(Zeroizing<String>),
    File(FileCache),
    Command {
        value: Zeroizing<String>,
        at: Instant,
    },
}

/// A route's credential: its source and whatever was loaded from it.
pub struct Credential {
    source: CredentialSource,
    cache: Mutex<Cache>,
}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credential")
            .field("source", &self.source)
            .field("value", &"<redacted>")
            .finish()
    }
}

impl Credential {
    /// A credential not yet loaded.
    pub fn new(source: CredentialSource) -> Credential {
        Credential {
            source,
            cache: Mutex::new(Cache::Empty),
        }
    }

    /// A fixed value (tests, embedding).
    pub fn fixed(source: CredentialSource, value: Zeroizing<String>) -> Credential {
        Credential {
            source,
            cache: Mutex::new(Cache::Fixed(value)),
        }
    }

    /// The source.
    pub fn source(&self) -> &CredentialSource {
        &self.source
    }

    /// Whether a value is currently held.
    pub fn is_loaded(&self) -> bool {
        self.cache
            .lock()
            .map(|c| !matches!(*c, Cache::Empty))
            .unwrap_or(false)
    }

    /// The current value: cached, or loaded (again) as the source requires. Blocking.
    pub fn get(&self) -> Result<Zeroizing<String>, CredentialError> {
        let mut cache = self.cache.lock().map_err(|_| {
            CredentialError::Command("credential cache poisoned by an earlier panic".into())
        })?;
        match (&self.source, &*cache) {
            (_, Cache::Fixed(v)) => return Ok(v.clone()),
            (CredentialSource::Command { ttl, .. }, Cache::Command { value, at })
                if at.elapsed() < *ttl =>
            {
                return Ok(value.clone());
            }
            _ => {}
        }
        match &self.source {
            CredentialSource::Keyring { account } => {
                let v = read_keyring(account)?;
                *cache = Cache::Fixed(v.clone());
                Ok(v)
            }
            CredentialSource::Env { var } => {
                let v = std::env::var(var).map_err(|_| CredentialError::EnvMissing)?;
                let v = checked(Zeroizing::new(v))?;
                *cache = Cache::Fixed(v.clone());
                Ok(v)
            }
            CredentialSource::File { path } => {
                let meta = std::fs::metadata(path).map_err(CredentialError::File)?;
                let stamp = (meta.modified().ok(), meta.len());
                if let Cache::File(fc) = &*cache {
                    if fc.stamp == stamp {
                        return Ok(fc.value.clone());
                    }
                }
                let v = read_file(path)?;
                *cache = Cache::File(FileCache {
                    stamp,
                    value: v.clone(),
                });
                Ok(v)
            }
            CredentialSource::Command { cmd, timeout, .. } => {
                let v = run_command(cmd, *timeout)?;
                *cache = Cache::Command {
                    value: v.clone(),
                    at: Instant::now(),
                };
                Ok(v)
            }
        }
    }
}

/// Trims one trailing newline (`\n` or `\r\n`) in place and checks the value.
fn checked(mut v: Zeroizing<String>) -> Result<Zeroizing<String>, CredentialError> {
    if v.ends_with('\n') {
        v.pop();
        if v.ends_with('\r') {
            v.pop();
        }
    }
    if v.is_empty() {
        return Err(CredentialError::BadValue("empty"));
    }
    if v.len() > MAX_CREDENTIAL_BYTES {
        return Err(CredentialError::BadValue("larger than 64 KiB"));
    }
    if v.chars().any(|c| c.is_control()) {
        return Err(CredentialError::BadValue(
            "not a single line of text (it contains control characters)",
        ));
    }
    Ok(v)
}

fn bytes_to_secret(bytes: Zeroizing<Vec<u8>>) -> Result<Zeroizing<String>, CredentialError> {
    // from_utf8 takes the buffer without copying; on failure the bytes are zeroised here.
    let mut bytes = bytes;
    let owned = std::mem::take(&mut *bytes);
    match String::from_utf8(owned) {
        Ok(s) => checked(Zeroizing::new(s)),
        Err(e) => {
            drop(Zeroizing::new(e.into_bytes()));
            Err(CredentialError::BadValue("not UTF-8"))
        }
    }
}

fn read_file(path: &std::path::Path) -> Result<Zeroizing<String>, CredentialError> {
    let f = std::fs::File::open(path).map_err(CredentialError::File)?;
    let mut buf = Zeroizing::new(Vec::with_capacity(256));
    let limit = u64::try_from(MAX_CREDENTIAL_BYTES + 3).unwrap_or(u64::MAX);
    f.take(limit)
        .read_to_end(&mut buf)
        .map_err(CredentialError::File)?;
    bytes_to_secret(buf)
}

/// Variables nono takes its own secrets from (the proxy password, the upstream proxy URL with
/// its credentials); a credential command has no use for them.
const NONO_SECRET_VARS: [&str; 2] = ["NONO_PROXY_PASS", "NONO_UPSTREAM_PROXY"];

fn run_command(cmd: &str, timeout: Duration) -> Result<Zeroizing<String>, CredentialError> {
    let mut command = Command::new("/bin/sh");
    for var in NONO_SECRET_VARS {
        command.env_remove(var);
    }
    let mut child = command
        .arg("-c")
        .arg(cmd)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| CredentialError::Command(format!("cannot start /bin/sh: {e}")))?;
    let Some(stdout) = child.stdout.take() else {
        return Err(CredentialError::Command("no standard output pipe".into()));
    };
    // A reader thread keeps a chatty command from blocking on a full pipe while we wait.
    let reader = std::thread::spawn(move || {
        let mut buf = Zeroizing::new(Vec::new());
        let limit = u64::try_from(MAX_CREDENTIAL_BYTES + 3).unwrap_or(u64::MAX);
        let r = stdout.take(limit).read_to_end(&mut buf);
        r.map(|_| buf)
    });
    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(s)) => break s,
            Ok(None) if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(CredentialError::Command(format!(
                    "timed out after {} s",
                    timeout.as_secs_f32()
                )));
            }
            Ok(None) => std::thread::sleep(CMD_POLL),
            Err(e) => {
                return Err(CredentialError::Command(format!(
                    "waiting for it failed: {e}"
                )))
            }
        }
    };
    let out = reader
        .join()
        .map_err(|_| CredentialError::Command("output reader panicked".into()))?
        .map_err(|e| CredentialError::Command(format!("reading its output failed: {e}")))?;
    if !status.success() {
        return Err(CredentialError::Command(format!("exited with {status}")));
    }
    bytes_to_secret(out)
}

fn keyring_entry(account: &str) -> Result<keyring::Entry, CredentialError> {
    keyring::Entry::new(KEYRING_SERVICE, account)
        .map_err(|e| CredentialError::Keyring(e.to_string()))
}

fn read_keyring(account: &str) -> Result<Zeroizing<String>, CredentialError> {
    match keyring_entry(account)?.get_password() {
        Ok(v) => checked(Zeroizing::new(v)),
        Err(keyring::Error::NoEntry) => Err(CredentialError::Keyring(format!(
            "no key `{account}` (store it with `nono credential set {account}`)"
        ))),
        Err(e) => Err(CredentialError::Keyring(e.to_string())),
    }
}

/// Stores `secret` in the OS keyring (service [`KEYRING_SERVICE`], account `name`).
pub fn keyring_store(name: &str, secret: &Zeroizing<String>) -> Result<(), CredentialError> {
    let v = checked(secret.clone())?;
    match keyring_entry(name)?.set_password(&v) {
        Ok(()) => Ok(()),
        // keyutils reports a missing session keyring as "no entry".
        Err(keyring::Error::NoEntry) => Err(CredentialError::Keyring(
            "the OS keyring is not reachable from this process (on Linux: no session keyring; \
             run inside a login session or under `keyctl session`)"
                .into(),
        )),
        Err(e) => Err(CredentialError::Keyring(e.to_string())),
    }
}

/// Removes a key from the OS keyring; `Ok(false)` when there was none.
pub fn keyring_delete(name: &str) -> Result<bool, CredentialError> {
    match keyring_entry(name)?.delete_credential() {
        Ok(()) => Ok(true),
        Err(keyring::Error::NoEntry) => Ok(false),
        Err(e) => Err(CredentialError::Keyring(e.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_parse() {
        assert_eq!(
            CredentialSource::parse("openai").unwrap(),
            CredentialSource::Keyring {
                account: "openai".into()
            }
        );
        assert_eq!(
            CredentialSource::parse("env://OPENAI_API_KEY").unwrap(),
            CredentialSource::Env {
                var: "OPENAI_API_KEY".into()
            }
        );
        assert_eq!(
            CredentialSource::parse("file:///run/k").unwrap(),
            CredentialSource::File {
                path: "/run/k".into()
            }
        );
        assert!(
            matches!(CredentialSource::parse("cmd://echo hi").unwrap(), CredentialSource::Command { ref cmd, .. } if cmd == "echo hi")
        );
        for bad in [
            "",
            "a b",
            "env://",
            "env://1X",
            "file://rel/path",
            "cmd://  ",
            "vault://x",
        ] {
            assert!(CredentialSource::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn file_is_reread_when_it_changes_and_missing_is_an_error() {
        let dir =
            std::env::temp_dir().join(format!("nono-cred-{}-{}", std::process::id(), line!()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("key");
        let c = Credential::new(CredentialSource::File { path: path.clone() });
        assert!(matches!(c.get(), Err(CredentialError::File(_))));
        std::fs::write(&path, "first\n").unwrap();
        assert_eq!(c.get().unwrap().as_str(), "first");
        std::fs::write(&path, "second-longer\r\n").unwrap();
        assert_eq!(c.get().unwrap().as_str(), "second-longer");
        std::fs::write(&path, "").unwrap();
        assert!(matches!(c.get(), Err(CredentialError::BadValue("empty"))));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn command_output_is_cached_for_its_ttl() {
        let dir =
            std::env::temp_dir().join(format!("nono-cred-{}-{}", std::process::id(), line!()));
        std::fs::create_dir_all(&dir).unwrap();
        let counter = dir.join("n");
        let cmd = format!(
            "echo x >> {0}; printf 'sk-%s\\n' $(wc -l < {0} | tr -d ' ')",
            counter.display()
        );
        let src = |ttl| CredentialSource::Command {
            cmd: cmd.clone(),
            timeout: DEFAULT_CMD_TIMEOUT,
            ttl,
        };
        let c = Credential::new(src(Duration::from_secs(60)));
        assert_eq!(c.get().unwrap().as_str(), "sk-1");
        assert_eq!(c.get().unwrap().as_str(), "sk-1");
        let c = Credential::new(src(Duration::ZERO));
        assert_eq!(c.get().unwrap().as_str(), "sk-2");
        assert_eq!(c.get().unwrap().as_str(), "sk-3");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn command_failures_and_timeouts_are_errors_without_output() {
        let c = Credential::new(CredentialSource::Command {
            cmd: "echo s3cret; exit 3".into(),
            timeout: DEFAULT_CMD_TIMEOUT,
            ttl: DEFAULT_CMD_TTL,
        });
        let e = c.get().unwrap_err().to_string();
        assert!(e.contains("exited") && !e.contains("s3cret"), "{e}");
        let c = Credential::new(CredentialSource::Command {
            cmd: "sleep 5".into(),
            timeout: Duration::from_millis(100),
            ttl: DEFAULT_CMD_TTL,
        });
        let t = Instant::now();
        assert!(c.get().unwrap_err().to_string().contains("timed out"));
        assert!(t.elapsed() < Duration::from_secs(3));
    }

    #[test]
    fn multi_line_values_are_refused() {
        assert!(checked(Zeroizing::new("a\nb".into())).is_err());
        assert_eq!(checked(Zeroizing::new("a\n".into())).unwrap().as_str(), "a");
    }

    #[test]
    fn debug_redacts() {
        let c = Credential::fixed(
            CredentialSource::Env { var: "K".into() },
            Zeroizing::new("sk-live-123".into()),
        );
        let d = format!("{c:?}");
        assert!(!d.contains("sk-live-123") && d.contains("redacted"), "{d}");
    }
}
