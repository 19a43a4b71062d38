//! What `nono profile list|show|validate` and `nono network-profile list|show` print.

use std::path::Path;

use serde::Serialize;

use crate::builtin;
use crate::error::PolicyError;
use crate::load::{load, load_file, user_profiles, ProfileInfo};
use crate::network_policy::NetworkPolicy;
use crate::policy::PolicyArgs;
use crate::raw::parse_profile;
use crate::resolve::{resolve_loaded, resolve_unchecked};
use crate::self_edit::{lookup_in, problems};
use crate::vars::Env;

/// One line of `nono profile list`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProfileSummary {
    /// The name `--profile` takes.
    pub name: String,
    /// `meta.description`.
    pub description: Option<String>,
    /// `"builtin"` or the file's path.
    pub source: String,
    /// True for a built-in hidden by a user profile of the same name.
    pub shadowed: bool,
    /// Why a user profile file does not parse, when it does not.
    pub error: Option<String>,
}

/// Built-in profiles, then user profiles, with their descriptions.
///
/// A user file that does not parse is listed with its error rather than failing the listing.
pub fn list_profiles(env: &Env) -> Result<Vec<ProfileSummary>, PolicyError> {
    let users = user_profiles(env)?;
    let mut out = Vec::new();
    for (name, text) in builtin::BUILTIN_PROFILES {
        let raw = parse_profile(&builtin::file_label(name), text)?;
        out.push(ProfileSummary {
            name: name.to_string(),
            description: raw.meta.description,
            source: "builtin".to_string(),
            shadowed: users.iter().any(|(u, _)| u == name),
            error: None,
        });
    }
    for (name, path) in users {
        let parsed = std::fs::read_to_string(&path)
            .map_err(|e| e.to_string())
            .and_then(|t| {
                parse_profile(&path.display().to_string(), &t).map_err(|e| e.to_string())
            });
        let (description, error) = match parsed {
            Ok(raw) => (raw.meta.description, None),
            Err(e) => (None, Some(e)),
        };
        out.push(ProfileSummary {
            name,
            description,
            source: path.display().to_string(),
            shadowed: false,
            error,
        });
    }
    Ok(out)
}

/// Every name `--profile` accepts (built-in and user), sorted, without duplicates.
pub fn available_profile_names(env: &Env) -> Vec<String> {
    let mut names: Vec<String> = builtin::names().into_iter().map(str::to_string).collect();
    names.extend(
        user_profiles(env)
            .unwrap_or_default()
            .into_iter()
            .map(|(n, _)| n),
    );
    names.sort();
    names.dedup();
    names
}

/// `nono profile show NAME`: the fully resolved profile (after `extends` and expansion) as JSON.
///
/// A profile that `nono run` would refuse because the sandbox could rewrite it (see
/// [`crate::check_self_edit`]) is still shown, with the reasons under `"warnings"`: showing it
/// is harmless, and it is how one finds out what the profile grants.
pub fn show_profile(name: &str, env: &Env) -> Result<serde_json::Value, PolicyError> {
    let args = PolicyArgs {
        profile: Some(name.to_string()),
        ..PolicyArgs::default()
    };
    let net = NetworkPolicy::builtin()?;
    let loaded = load(name, env, &net)?;
    let policy = resolve_unchecked(Some(loaded), &args, env, &net)?;
    let warnings: Vec<String> = problems(&policy, false, &lookup_in(env))
        .iter()
        .map(|e| format!("nono run and nono proxy refuse this profile: {e}"))
        .collect();
    let mut v = serde_json::to_value(&policy)
        .map_err(|e| PolicyError::invalid(name, "", format!("cannot serialise: {e}")))?;
    if let (false, Some(obj)) = (warnings.is_empty(), v.as_object_mut()) {
        obj.insert("warnings".into(), serde_json::json!(warnings));
    }
    Ok(v)
}

/// `nono profile validate FILE`: loads the file with its bases and resolves it; any problem is
/// the error.
pub fn validate_profile_file(path: &Path, env: &Env) -> Result<ProfileInfo, PolicyError> {
    let policy = NetworkPolicy::builtin()?;
    let loaded = load_file(path, env, &policy)?;
    let resolved = resolve_loaded(Some(loaded), &PolicyArgs::default(), env, &policy)?;
    resolved.profile.ok_or_else(|| {
        PolicyError::invalid(&path.display().to_string(), "", "no profile was loaded")
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{env_in, write};

    #[test]
    fn list_shows_builtins_and_users_with_descriptions() {
        let (_t, env) = env_in("list");
        let dir = env.user_profile_dir();
        write(
            &dir.join("my-agent.json"),
            r#"{"meta": {"description": "mine"}}"#,
        );
        write(&dir.join("codex.json"), r#"{"extends": "codex"}"#);
        write(&dir.join("broken.json"), r#"{"meta": {"descripton": "x"}}"#);
        let list = list_profiles(&env).unwrap();
        let names: Vec<(&str, &str)> = list
            .iter()
            .map(|p| (p.name.as_str(), &p.source[..7]))
            .collect();
        assert_eq!(
            names[..4],
            [
                ("claude-code", "builtin"),
                ("codex", "builtin"),
                ("default", "builtin"),
                ("opencode", "builtin")
            ]
        );
        assert!(list[1].shadowed && !list[0].shadowed);
        assert!(list
            .iter()
            .all(|p| p.source != "builtin" || p.description.is_some()));
        let mine = list.iter().find(|p| p.name == "my-agent").unwrap();
        assert_eq!(mine.description.as_deref(), Some("mine"));
        let broken = list.iter().find(|p| p.name == "broken").unwrap();
        assert!(broken
            .error
            .as_deref()
            .unwrap()
            .contains("meta.descripton: unknown key; valid keys: name, description"));
        assert_eq!(
            available_profile_names(&env),
            [
                "broken",
                "claude-code",
                "codex",
                "default",
                "my-agent",
                "opencode",
                "toolchains"
            ]
        );
    }

    #[test]
    fn show_prints_the_resolved_profile() {
        let (_t, env) = env_in("show");
        let v = show_profile("claude-code", &env).unwrap();
        assert_eq!(
            v["profile"]["chain"],
            serde_json::json!(["default", "toolchains", "claude-code"])
        );
        assert_eq!(v["network"]["mode"], "proxy");
        assert_eq!(v["network"]["network_profile"], "claude-code");
        assert_eq!(v["security"]["wsl2_proxy_policy"], "error");
        let allow: Vec<String> = serde_json::from_value(v["filesystem"]["allow"].clone()).unwrap();
        assert!(allow.contains(&env.workdir.display().to_string()));
        assert!(allow.contains(&env.home.join(".claude").display().to_string()));
        assert!(allow.contains(&env.tmpdir.display().to_string()));
    }

    #[test]
    fn show_prints_a_self_editable_profile_with_a_warning() {
        let (_t, env) = env_in("show-self-edit");
        let p = env.workdir.join("p.json");
        write(&p, r#"{"filesystem": {"allow": ["$WORKDIR"]}}"#);
        let v = show_profile(&p.display().to_string(), &env).unwrap();
        assert_eq!(
            v["filesystem"]["allow"][0],
            env.workdir.display().to_string()
        );
        let w = v["warnings"][0].as_str().unwrap();
        assert!(
            w.starts_with("nono run and nono proxy refuse this profile: the profile p is "),
            "{w}"
        );
        assert!(show_profile("claude-code", &env)
            .unwrap()
            .get("warnings")
            .is_none());
        // validate answers for `nono run`, so it refuses.
        let e = validate_profile_file(&p, &env).unwrap_err().to_string();
        assert!(e.contains("beneath the read-write grant"), "{e}");
    }

    #[test]
    fn validate_reports_resolution_errors_too() {
        let (t, env) = env_in("validate");
        write(
            &t.join("ok.json"),
            r#"{"meta": {"name": "ok"}, "extends": "codex", "network": {"credentials": ["openai"]}}"#,
        );
        let info = validate_profile_file(&t.join("ok.json"), &env).unwrap();
        assert_eq!((info.name.as_str(), info.chain.len()), ("ok", 4));
        write(
            &t.join("bad.json"),
            r#"{"network": {"credentials": ["opnai"]}}"#,
        );
        let e = validate_profile_file(&t.join("bad.json"), &env)
            .unwrap_err()
            .to_string();
        assert!(e.contains("bad.json: network.credentials: unknown credential service \"opnai\"; available: anthropic, gemini, github, gitlab, openai"), "{e}");
    }
}
