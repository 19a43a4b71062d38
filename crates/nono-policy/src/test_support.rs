//! Helpers for the unit tests: a temporary directory and an `Env` inside it.

use std::ops::Deref;
use std::path::{Path, PathBuf};

use crate::policy::PolicyArgs;
use crate::vars::Env;

/// A directory removed on drop.
pub struct TempDir(PathBuf);

impl Deref for TempDir {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A fresh directory for test `name` and an `Env` whose home, workdir, tmpdir and
/// `XDG_CONFIG_HOME` are inside it.
pub fn env_in(name: &str) -> (TempDir, Env) {
    let dir = std::env::temp_dir().join(format!("nono-policy-test-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    for sub in ["home", "work", "tmp", "xdg"] {
        std::fs::create_dir_all(dir.join(sub)).unwrap();
    }
    let dir = dir.canonicalize().unwrap();
    let env = Env {
        workdir: dir.join("work"),
        home: dir.join("home"),
        tmpdir: dir.join("tmp"),
        xdg_config_home: Some(dir.join("xdg")),
        xdg_cache_home: None,
    };
    (TempDir(dir), env)
}

/// Writes a file, creating its directory.
pub fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

/// [`env_in`] plus user profiles `(name, json)` written to its profile directory.
pub fn setup(name: &str, profiles: &[(&str, &str)]) -> (TempDir, Env) {
    let (t, env) = env_in(name);
    for (n, text) in profiles {
        write(&env.user_profile_dir().join(format!("{n}.json")), text);
    }
    (t, env)
}

/// Arguments naming only a profile.
pub fn args(profile: Option<&str>) -> PolicyArgs {
    PolicyArgs {
        profile: profile.map(str::to_string),
        ..PolicyArgs::default()
    }
}
