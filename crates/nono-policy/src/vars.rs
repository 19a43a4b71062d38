//! The environment a policy is resolved in, and the expansion of `$WORKDIR`, `$HOME`,
//! `$TMPDIR`, `$XDG_CONFIG_HOME`, `$NONO_CACHE` and a leading `~` in paths.

use std::path::{Component, Path, PathBuf};

use crate::error::PolicyError;

/// The variables a profile path may use.
pub const KNOWN_VARS: [&str; 5] = ["WORKDIR", "HOME", "TMPDIR", "XDG_CONFIG_HOME", "NONO_CACHE"];

/// Values from the environment, captured once so tests can inject them (never read env vars
/// deep inside).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Env {
    /// The working directory (`$WORKDIR`, `--allow-cwd`).
    pub workdir: PathBuf,
    /// The user's home (`$HOME`, `~`).
    pub home: PathBuf,
    /// The temporary directory (`$TMPDIR`).
    pub tmpdir: PathBuf,
    /// `$XDG_CONFIG_HOME` when set to an absolute path.
    pub xdg_config_home: Option<PathBuf>,
    /// `$XDG_CACHE_HOME` when set to an absolute path.
    pub xdg_cache_home: Option<PathBuf>,
}

impl Env {
    /// Reads the current directory, home, temporary directory and `XDG_CONFIG_HOME`.
    pub fn from_process() -> Result<Env, PolicyError> {
        let workdir = std::env::current_dir()
            .map_err(|e| PolicyError::Env(format!("cannot read the current directory: {e}")))?;
        let home = dirs::home_dir()
            .ok_or_else(|| PolicyError::Env("cannot find the home directory; set HOME".into()))?;
        // Per the XDG spec a relative value is invalid and is ignored.
        let xdg_config_home = std::env::var_os("XDG_CONFIG_HOME")
            .map(PathBuf::from)
            .filter(|p| p.is_absolute());
        let xdg_cache_home = std::env::var_os("XDG_CACHE_HOME")
            .map(PathBuf::from)
            .filter(|p| p.is_absolute());
        Ok(Env {
            workdir,
            home,
            tmpdir: std::env::temp_dir(),
            xdg_config_home,
            xdg_cache_home,
        })
    }

    /// `$XDG_CONFIG_HOME`, or `~/.config` when unset.
    pub fn config_home(&self) -> PathBuf {
        self.xdg_config_home
            .clone()
            .unwrap_or_else(|| self.home.join(".config"))
    }

    /// Where user profiles live: `<config home>/nono/profiles`.
    pub fn user_profile_dir(&self) -> PathBuf {
        self.config_home().join("nono").join("profiles")
    }

    fn var(&self, name: &str) -> Option<PathBuf> {
        match name {
            "WORKDIR" => Some(self.workdir.clone()),
            "HOME" => Some(self.home.clone()),
            "TMPDIR" => Some(self.tmpdir.clone()),
            "XDG_CONFIG_HOME" => Some(self.config_home()),
            // nono's own caches for the tools it confines (never the user's own caches,
            // which a confined agent could poison): `$XDG_CACHE_HOME/nono` or ~/.cache/nono.
            "NONO_CACHE" => Some(
                self.xdg_cache_home
                    .clone()
                    .unwrap_or_else(|| self.home.join(".cache"))
                    .join("nono"),
            ),
            _ => None,
        }
    }
}

/// Expands variables and a leading `~` in a profile path; the result must be absolute.
///
/// `$NAME` and `${NAME}` are both accepted. An unknown variable is an error, never left as is.
pub fn expand(raw: &str, env: &Env) -> Result<PathBuf, String> {
    let mut out = String::new();
    let rest = if raw == "~" || raw.starts_with("~/") {
        out.push_str(&env.home.to_string_lossy());
        &raw[1..]
    } else if raw.starts_with('~') {
        return Err(format!(
            "`{raw}`: only `~` and `~/...` are supported, not `~user`"
        ));
    } else {
        raw
    };
    let known = || KNOWN_VARS.map(|v| format!("${v}")).join(", ");
    let mut chars = rest.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        if c != '$' {
            out.push(c);
            continue;
        }
        let tail = &rest[i + 1..];
        let (name, consumed) = if let Some(inner) = tail.strip_prefix('{') {
            let end = inner
                .find('}')
                .ok_or_else(|| format!("`{raw}`: missing `}}` after `${{`"))?;
            (&inner[..end], end + 2)
        } else {
            let len = tail
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(tail.len());
            (&tail[..len], len)
        };
        if name.is_empty() {
            return Err(format!(
                "`{raw}`: `$` must be followed by a variable name; known: {}",
                known()
            ));
        }
        let value = env
            .var(name)
            .ok_or_else(|| format!("`{raw}`: unknown variable ${name}; known: {}", known()))?;
        out.push_str(&value.to_string_lossy());
        for _ in 0..consumed {
            chars.next();
        }
    }
    let path = normalise(Path::new(&out));
    if !path.is_absolute() {
        return Err(format!(
            "`{raw}` is not absolute; start it with /, ~ or a variable such as $WORKDIR"
        ));
    }
    Ok(path)
}

/// Drops `.` components, repeated and trailing separators (`..` is left to canonicalisation).
pub fn normalise(p: &Path) -> PathBuf {
    p.components()
        .filter(|c| !matches!(c, Component::CurDir))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env() -> Env {
        Env {
            workdir: "/w/proj".into(),
            home: "/home/u".into(),
            tmpdir: "/tmp".into(),
            xdg_config_home: None,
            xdg_cache_home: None,
        }
    }

    #[test]
    fn expands_known_variables_and_tilde() {
        let e = env();
        assert_eq!(expand("$WORKDIR", &e).unwrap(), PathBuf::from("/w/proj"));
        assert_eq!(
            expand("${HOME}/.x", &e).unwrap(),
            PathBuf::from("/home/u/.x")
        );
        assert_eq!(
            expand("~/.claude", &e).unwrap(),
            PathBuf::from("/home/u/.claude")
        );
        assert_eq!(expand("~", &e).unwrap(), PathBuf::from("/home/u"));
        assert_eq!(
            expand("$TMPDIR/./a//b/", &e).unwrap(),
            PathBuf::from("/tmp/a/b")
        );
        assert_eq!(
            expand("$XDG_CONFIG_HOME/opencode", &e).unwrap(),
            PathBuf::from("/home/u/.config/opencode")
        );
        let e2 = Env {
            xdg_config_home: Some("/cfg".into()),
            xdg_cache_home: None,
            ..env()
        };
        assert_eq!(
            expand("$XDG_CONFIG_HOME/opencode", &e2).unwrap(),
            PathBuf::from("/cfg/opencode")
        );
        assert_eq!(
            expand("/etc/hosts", &e).unwrap(),
            PathBuf::from("/etc/hosts")
        );
    }

    #[test]
    fn unknown_variable_is_an_error() {
        let m = expand("$WORKDIRX/a", &env()).unwrap_err();
        assert_eq!(m, "`$WORKDIRX/a`: unknown variable $WORKDIRX; known: $WORKDIR, $HOME, $TMPDIR, $XDG_CONFIG_HOME, $NONO_CACHE");
        assert!(expand("${FOO}", &env())
            .unwrap_err()
            .contains("unknown variable $FOO"));
        assert!(expand("${HOME", &env())
            .unwrap_err()
            .contains("missing `}`"));
        assert!(expand("/a/$/b", &env())
            .unwrap_err()
            .contains("must be followed by a variable name"));
    }

    #[test]
    fn relative_and_tilde_user_are_errors() {
        assert!(expand("src", &env()).unwrap_err().contains("not absolute"));
        assert!(expand("~root/x", &env()).unwrap_err().contains("~user"));
    }

    #[test]
    fn from_process_reads_absolute_paths() {
        let e = Env::from_process().unwrap();
        assert!(e.workdir.is_absolute() && e.home.is_absolute() && e.tmpdir.is_absolute());
        if let Some(x) = &e.xdg_config_home {
            assert!(x.is_absolute());
        }
    }

    #[test]
    fn user_profile_dir_follows_xdg() {
        assert_eq!(
            env().user_profile_dir(),
            PathBuf::from("/home/u/.config/nono/profiles")
        );
        let e = Env {
            xdg_config_home: Some("/x".into()),
            xdg_cache_home: None,
            ..env()
        };
        assert_eq!(e.user_profile_dir(), PathBuf::from("/x/nono/profiles"));
    }
}
