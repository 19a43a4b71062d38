//! Finding a profile (`--profile X` or an `extends` entry) and loading it with its bases.
//!
//! Lookup: a path when the name contains `/` or ends in `.json` (relative to the extending
//! file's directory, or to the working directory at the top); otherwise
//! `$XDG_CONFIG_HOME/nono/profiles/X.json` (`~/.config` when unset), then the built-ins.
//! A user profile that extends its own name gets the built-in of that name, so
//! `~/.config/nono/profiles/claude-code.json` can say `"extends": "claude-code"`.

use std::io;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::builtin;
use crate::error::PolicyError;
use crate::layer::Layer;
use crate::merge::merge;
use crate::network_policy::NetworkPolicy;
use crate::raw::parse_profile;
use crate::vars::Env;

/// How many `extends` hops a profile may go down.
pub const MAX_EXTENDS_DEPTH: usize = 10;

/// Which profile was used and where it came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProfileInfo {
    /// `meta.name`, else the name it was looked up by (or the file stem).
    pub name: String,
    /// `meta.description` of the profile or, when it has none, of its nearest base.
    pub description: Option<String>,
    /// `"builtin"` or the file's path.
    pub source: String,
    /// Every profile merged, bases first, ending with this one.
    pub chain: Vec<String>,
    /// Every profile file merged, bases first, as it was reached (absolute, symlinks kept, so
    /// the self-edit check sees links on the way); built-ins are not files.
    #[serde(skip)]
    pub files: Vec<PathBuf>,
}

/// A loaded profile: what it is and its merged layer.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// Name, source, chain.
    pub info: ProfileInfo,
    /// The merged result of the profile and all its bases.
    pub layer: Layer,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Source {
    Builtin(String),
    File(PathBuf),
}

struct Found {
    /// The name as asked for (for chains and cycles).
    spec: String,
    /// The file as reached, before canonicalisation (`None` for a built-in).
    path: Option<PathBuf>,
    source: Source,
    label: String,
    text: String,
}

/// Loads `--profile X` with everything it extends.
pub fn load(spec: &str, env: &Env, policy: &NetworkPolicy) -> Result<Loaded, PolicyError> {
    let found = find(spec, env, None)?;
    load_root(found, env, policy)
}

/// Loads the profile file at `path` with everything it extends.
pub fn load_file(path: &Path, env: &Env, policy: &NetworkPolicy) -> Result<Loaded, PolicyError> {
    let found = read_file(&path.display().to_string(), &env.workdir.join(path))?;
    load_root(found, env, policy)
}

fn load_root(found: Found, env: &Env, policy: &NetworkPolicy) -> Result<Loaded, PolicyError> {
    let source = match &found.source {
        Source::Builtin(_) => "builtin".to_string(),
        Source::File(p) => p.display().to_string(),
    };
    let fallback_name = match &found.source {
        Source::File(p) if found.spec.contains('/') || found.spec.ends_with(".json") => p
            .file_stem()
            .map_or_else(|| found.spec.clone(), |s| s.to_string_lossy().into_owned()),
        _ => found.spec.clone(),
    };
    let mut stack = Vec::new();
    let mut chain = Vec::new();
    let mut files = Vec::new();
    let (layer, name) = load_found(found, env, policy, &mut stack, &mut chain, &mut files)?;
    Ok(Loaded {
        info: ProfileInfo {
            name: name.unwrap_or(fallback_name),
            description: layer.description.clone(),
            source,
            chain,
            files,
        },
        layer,
    })
}

/// Loads one profile and its bases; returns the merged layer and the file's `meta.name`.
fn load_found(
    found: Found,
    env: &Env,
    policy: &NetworkPolicy,
    stack: &mut Vec<(Source, String)>,
    chain: &mut Vec<String>,
    files: &mut Vec<PathBuf>,
) -> Result<(Layer, Option<String>), PolicyError> {
    let names = |stack: &[(Source, String)], last: &str| {
        stack
            .iter()
            .map(|(_, n)| n.clone())
            .chain([last.to_string()])
            .collect::<Vec<_>>()
    };
    if stack.iter().any(|(s, _)| *s == found.source) {
        return Err(PolicyError::ExtendsCycle {
            chain: names(stack, &found.spec),
        });
    }
    if stack.len() > MAX_EXTENDS_DEPTH {
        return Err(PolicyError::ExtendsTooDeep {
            chain: names(stack, &found.spec),
            max: MAX_EXTENDS_DEPTH,
        });
    }
    let raw = parse_profile(&found.label, &found.text)?;
    let own = Layer::from_raw(&raw, &found.label, env, policy)?;
    stack.push((found.source.clone(), found.spec.clone()));
    let mut base = Layer::default();
    for (i, ext) in raw.extends.iter().enumerate() {
        let parent = find(ext, env, Some(&found.source)).map_err(|e| match e {
            PolicyError::UnknownProfile { .. } | PolicyError::Io { .. } => {
                PolicyError::invalid(&found.label, format!("extends[{i}]"), e.to_string())
            }
            other => other,
        })?;
        let (layer, _) = load_found(parent, env, policy, stack, chain, files)?;
        base = merge(base, layer);
    }
    stack.pop();
    if !chain.contains(&found.spec) {
        chain.push(found.spec.clone());
    }
    if let Some(p) = &found.path {
        if !files.contains(p) {
            files.push(p.clone());
        }
    }
    Ok((merge(base, own), raw.meta.name))
}

/// Finds a profile by path or name; `from` is the profile whose `extends` names it.
fn find(spec: &str, env: &Env, from: Option<&Source>) -> Result<Found, PolicyError> {
    if spec.contains('/') || spec.ends_with(".json") {
        let dir = match from {
            Some(Source::File(p)) => p
                .parent()
                .map_or_else(|| env.workdir.clone(), Path::to_path_buf),
            _ => env.workdir.clone(),
        };
        return read_file(spec, &dir.join(spec));
    }
    let user = env.user_profile_dir().join(format!("{spec}.json"));
    if user.is_file() {
        let found = read_file(spec, &user)?;
        // A file extending itself by name reaches the built-in; with none, it is a cycle.
        if from != Some(&found.source) || builtin::get(spec).is_none() {
            return Ok(found);
        }
    }
    match builtin::get(spec) {
        Some(text) => Ok(Found {
            spec: spec.to_string(),
            path: None,
            source: Source::Builtin(spec.to_string()),
            label: builtin::file_label(spec),
            text: text.to_string(),
        }),
        None => Err(PolicyError::UnknownProfile {
            name: spec.to_string(),
            available: available_labels(env),
        }),
    }
}

fn read_file(spec: &str, path: &Path) -> Result<Found, PolicyError> {
    let text = std::fs::read_to_string(path).map_err(|source| PolicyError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    // The canonical path identifies the file for cycle detection, however it was named.
    let canonical = path.canonicalize().unwrap_or_else(|_| path.to_path_buf());
    Ok(Found {
        spec: spec.to_string(),
        label: path.display().to_string(),
        path: Some(path.to_path_buf()),
        source: Source::File(canonical),
        text,
    })
}

/// User profiles: `(name, path)` of every `*.json` in the user profile directory, sorted.
pub fn user_profiles(env: &Env) -> Result<Vec<(String, PathBuf)>, PolicyError> {
    let dir = env.user_profile_dir();
    let entries = match std::fs::read_dir(&dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => return Err(PolicyError::Io { path: dir, source }),
    };
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|source| PolicyError::Io {
            path: dir.clone(),
            source,
        })?;
        let path = entry.path();
        if path.extension().is_some_and(|e| e == "json") && path.is_file() {
            if let Some(stem) = path.file_stem() {
                out.push((stem.to_string_lossy().into_owned(), path));
            }
        }
    }
    out.sort();
    Ok(out)
}

/// Built-in names, then user names marked `(user)`, for "available:" lists.
fn available_labels(env: &Env) -> Vec<String> {
    let users = user_profiles(env).unwrap_or_default();
    builtin::names()
        .into_iter()
        .map(str::to_string)
        .chain(users.into_iter().map(|(n, _)| format!("(user) {n}")))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{env_in, write};

    fn policy() -> NetworkPolicy {
        NetworkPolicy::builtin().unwrap()
    }

    #[test]
    fn user_profile_wins_over_builtin_then_builtin() {
        let (_t, env) = env_in("lookup");
        write(
            &env.user_profile_dir().join("codex.json"),
            r#"{"meta": {"description": "mine"}, "filesystem": {"allow": ["/mine"]}}"#,
        );
        let l = load("codex", &env, &policy()).unwrap();
        assert_eq!(l.info.description.as_deref(), Some("mine"));
        assert_eq!(
            l.info.source,
            env.user_profile_dir()
                .join("codex.json")
                .canonicalize()
                .unwrap()
                .display()
                .to_string()
        );
        let l = load("claude-code", &env, &policy()).unwrap();
        assert_eq!(
            (l.info.source.as_str(), l.info.chain.clone()),
            (
                "builtin",
                vec!["default".into(), "toolchains".into(), "claude-code".into()]
            )
        );
    }

    #[test]
    fn without_xdg_config_home_user_profiles_are_in_dot_config() {
        let (_t, env) = env_in("no-xdg");
        let env = Env {
            xdg_config_home: None,
            xdg_cache_home: None,
            ..env
        };
        write(
            &env.home.join(".config/nono/profiles/mine.json"),
            r#"{"meta": {"description": "dot-config"}}"#,
        );
        let l = load("mine", &env, &policy()).unwrap();
        assert_eq!(l.info.description.as_deref(), Some("dot-config"));
    }

    #[test]
    fn user_profile_extending_its_own_name_gets_the_builtin() {
        let (_t, env) = env_in("self-extend");
        write(
            &env.user_profile_dir().join("codex.json"),
            r#"{"extends": "codex", "filesystem": {"allow": ["/extra"]}}"#,
        );
        let l = load("codex", &env, &policy()).unwrap();
        assert_eq!(l.info.chain, ["default", "toolchains", "codex"]);
        assert!(l.layer.allow.contains(&PathBuf::from("/extra")));
        assert!(l.layer.allow.contains(&env.home.join(".codex")));
    }

    #[test]
    fn paths_are_relative_to_the_extending_file() {
        let (t, env) = env_in("paths");
        write(&t.join("a/child.json"), r#"{"extends": "../b/base.json"}"#);
        write(
            &t.join("b/base.json"),
            r#"{"filesystem": {"read": ["/base"]}}"#,
        );
        let l = load(
            &t.join("a/child.json").display().to_string(),
            &env,
            &policy(),
        )
        .unwrap();
        assert_eq!(l.layer.read, [PathBuf::from("/base")]);
        assert_eq!(l.info.name, "child");
        let l = load_file(
            Path::new("a/child.json"),
            &Env {
                workdir: t.to_path_buf(),
                ..env
            },
            &policy(),
        )
        .unwrap();
        assert_eq!(l.info.chain, ["../b/base.json", "a/child.json"]);
    }

    #[test]
    fn extends_left_to_right() {
        let (_t, env) = env_in("order");
        let dir = env.user_profile_dir();
        write(
            &dir.join("a.json"),
            r#"{"network": {"upstream_proxy": "a.corp:1"}, "filesystem": {"allow": ["/a"]}}"#,
        );
        write(
            &dir.join("b.json"),
            r#"{"network": {"upstream_proxy": "b.corp:2"}, "filesystem": {"allow": ["/b"]}}"#,
        );
        write(
            &dir.join("c.json"),
            r#"{"extends": ["a", "b"], "filesystem": {"allow": ["/c"]}}"#,
        );
        let l = load("c", &env, &policy()).unwrap();
        assert_eq!(l.layer.upstream_proxy.as_deref(), Some("b.corp:2"));
        assert_eq!(l.layer.allow, ["/a", "/b", "/c"].map(PathBuf::from));
        assert_eq!(l.info.chain, ["a", "b", "c"]);
    }

    #[test]
    fn cycle_prints_the_chain() {
        let (_t, env) = env_in("cycle");
        let dir = env.user_profile_dir();
        write(&dir.join("a.json"), r#"{"extends": "b"}"#);
        write(&dir.join("b.json"), r#"{"extends": ["default", "a"]}"#);
        assert_eq!(
            load("a", &env, &policy()).unwrap_err().to_string(),
            "extends cycle: a -> b -> a"
        );
        write(&dir.join("self.json"), r#"{"extends": "self"}"#);
        assert_eq!(
            load("self", &env, &policy()).unwrap_err().to_string(),
            "extends cycle: self -> self"
        );
    }

    #[test]
    fn depth_is_limited_to_ten() {
        let (_t, env) = env_in("depth");
        let dir = env.user_profile_dir();
        for i in 0..11 {
            write(
                &dir.join(format!("p{i}.json")),
                &format!(r#"{{"extends": "p{}"}}"#, i + 1),
            );
        }
        write(&dir.join("p11.json"), "{}");
        // p1 -> ... -> p11 is ten hops: fine. p0 -> ... -> p11 is eleven: too deep.
        assert_eq!(load("p1", &env, &policy()).unwrap().info.chain.len(), 11);
        let e = load("p0", &env, &policy()).unwrap_err().to_string();
        assert!(
            e.starts_with("extends chain deeper than 10: p0 -> p1 -> "),
            "{e}"
        );
        assert!(e.ends_with("p10 -> p11"), "{e}");
    }

    #[test]
    fn unknown_profile_lists_builtin_and_user() {
        let (_t, env) = env_in("unknown");
        write(&env.user_profile_dir().join("my-agent.json"), "{}");
        let e = load("foo", &env, &policy()).unwrap_err().to_string();
        assert_eq!(e, "unknown profile \"foo\"; available: claude-code, codex, default, opencode, toolchains, (user) my-agent");
        write(
            &env.user_profile_dir().join("x.json"),
            r#"{"extends": "nope"}"#,
        );
        let e = load("x", &env, &policy()).unwrap_err().to_string();
        assert!(e.ends_with("x.json: extends[0]: unknown profile \"nope\"; available: claude-code, codex, default, opencode, toolchains, (user) my-agent, (user) x"), "{e}");
        let e = load("./missing.json", &env, &policy())
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("cannot read "), "{e}");
    }
}
