//! Command-line flags + profile → one resolved policy, the value `nono run`, `nono proxy` and
//! `nono profile show` all use.

use std::path::{Path, PathBuf};

use crate::credentials::check_name;
use crate::endpoint::EndpointRule;
use crate::error::PolicyError;
use crate::layer::{bypass_pattern, host_pattern, upstream_proxy, Layer};
use crate::load::{load, Loaded};
use crate::merge::{append, merge};
use crate::network_policy::NetworkPolicy;
use crate::policy::{PolicyArgs, ResolvedFs, ResolvedPolicy, Security};
use crate::resolve_network::{resolve_network, Origin};
use crate::self_edit::{check, lookup_in};
use crate::vars::{normalise, Env};

/// Turns the flags and the profile they name into the policy to enforce.
pub fn resolve(args: &PolicyArgs, env: &Env) -> Result<ResolvedPolicy, PolicyError> {
    let policy = NetworkPolicy::builtin()?;
    let loaded = args
        .profile
        .as_deref()
        .map(|p| load(p, env, &policy))
        .transpose()?;
    resolve_loaded(loaded, args, env, &policy)
}

/// [`resolve`] for a profile already loaded (`args.profile` is not looked at).
pub(crate) fn resolve_loaded(
    loaded: Option<Loaded>,
    args: &PolicyArgs,
    env: &Env,
    policy: &NetworkPolicy,
) -> Result<ResolvedPolicy, PolicyError> {
    let resolved = resolve_unchecked(loaded, args, env, policy)?;
    // The sandbox must not be able to rewrite what configures it (checked as the sandbox's
    // own root will show /tmp; `nono run` checks again if it falls back to the host's).
    check(&resolved, false, &lookup_in(env))?;
    Ok(resolved)
}

/// [`resolve_loaded`] without the self-edit check (`nono profile show` reports it instead).
pub(crate) fn resolve_unchecked(
    loaded: Option<Loaded>,
    args: &PolicyArgs,
    env: &Env,
    policy: &NetworkPolicy,
) -> Result<ResolvedPolicy, PolicyError> {
    let (info, profile_layer) = match loaded {
        Some(l) => (Some(l.info), l.layer),
        None => (None, Layer::default()),
    };
    let cli = cli_layer(args, env, policy)?;
    let merged = merge(profile_layer, cli);
    let from = Origin {
        args,
        profile: info.as_ref(),
    };
    let network = resolve_network(&merged, policy, &from)?;
    let canon = |list: &[PathBuf]| append(Vec::new(), list.iter().map(|p| canonical(p)).collect());
    // Optional grants that exist join the plain ones; missing ones are not an error.
    let existing = |list: &[PathBuf]| -> Vec<PathBuf> {
        list.iter()
            .filter(|p| std::fs::symlink_metadata(p).is_ok())
            .cloned()
            .collect()
    };
    let allow = append(merged.allow.clone(), existing(&merged.allow_if_exists));
    let read = append(merged.read.clone(), existing(&merged.read_if_exists));
    let created = merged
        .create_dirs
        .iter()
        .chain(merged.create_files.iter().map(|(p, _)| p));
    for p in created {
        // Creating what the sandbox cannot then use would only litter the home directory.
        if !allow.iter().chain(&read).any(|g| p.starts_with(g)) {
            return Err(PolicyError::flag(
                "filesystem.create_dirs/create_files",
                format!(
                    "{} would be created but is not granted; add it to filesystem.allow",
                    p.display()
                ),
            ));
        }
    }
    Ok(ResolvedPolicy {
        filesystem: ResolvedFs {
            allow: canon(&allow),
            read: canon(&read),
            share_tmp: merged.share_tmp.unwrap_or(false),
            create_dirs: merged.create_dirs.clone(),
            create_files: merged.create_files.clone(),
            path_env: merged.path_env.clone(),
        },
        network,
        security: Security {
            wsl2_proxy_policy: merged.wsl2_proxy_policy.unwrap_or_default(),
        },
        profile: info,
    })
}

/// The command line as a layer on top of the profile: lists add, single values override.
fn cli_layer(args: &PolicyArgs, env: &Env, policy: &NetworkPolicy) -> Result<Layer, PolicyError> {
    let flag = |f: &str, m: String| PolicyError::flag(f, m);
    let abs = |p: &PathBuf| normalise(&env.workdir.join(p));
    let mut allow: Vec<PathBuf> = args.allow.iter().map(abs).collect();
    if args.allow_cwd {
        allow.push(env.workdir.clone());
    }
    if let Some(np) = &args.network_profile {
        policy.hosts(np).map_err(|m| flag("--network-profile", m))?;
    }
    for c in &args.credential {
        check_name(c).map_err(|m| flag("--credential", m))?;
    }
    for (name, ports) in [
        ("--open-port", &args.open_port),
        ("--listen-port", &args.listen_port),
    ] {
        if ports.contains(&0) {
            return Err(flag(name, "`0` is not a port (1-65535)".into()));
        }
    }
    let each = |list: &[String], name: &str, f: fn(&str) -> Result<String, String>| {
        list.iter()
            .map(|s| f(s).map_err(|m| flag(name, m)))
            .collect::<Result<Vec<_>, _>>()
    };
    Ok(Layer {
        description: None,
        allow,
        read: args.read.iter().map(abs).collect(),
        block: args.block_net,
        network_profile: args.network_profile.clone().map(Some),
        allow_domain: each(&args.allow_domain, "--allow-domain", host_pattern)?,
        deny_domain: each(
            &args.deny_domain,
            "--deny-domain",
            crate::layer::deny_pattern,
        )?,
        credentials: (!args.credential.is_empty()).then(|| args.credential.clone()),
        custom_credentials: Default::default(),
        allow_endpoint: args
            .allow_endpoint
            .iter()
            .map(|s| EndpointRule::parse(s).map_err(|m| flag("--allow-endpoint", m)))
            .collect::<Result<_, _>>()?,
        upstream_proxy: args
            .upstream_proxy
            .as_deref()
            .map(|p| upstream_proxy(p).map_err(|m| flag("--upstream-proxy", m)))
            .transpose()?,
        upstream_bypass: each(&args.upstream_bypass, "--upstream-bypass", bypass_pattern)?,
        open_port: args.open_port.clone(),
        listen_port: args.listen_port.clone(),
        wsl2_proxy_policy: None,
        share_tmp: None,
        allow_if_exists: Vec::new(),
        read_if_exists: Vec::new(),
        create_dirs: Vec::new(),
        create_files: Vec::new(),
        path_env: Vec::new(),
        intercept_exclude: Vec::new(),
        proxy_ca: crate::layer::ProxyCaLayer {
            validity_days: match args.proxy_ca_validity {
                Some(d) => {
                    crate::layer::check_ca_validity(d)
                        .map_err(|m| flag("--proxy-ca-validity", m))?;
                    Some(d)
                }
                None => None,
            },
            cert: args.proxy_ca_cert.as_ref().map(abs),
            key: args.proxy_ca_key.as_ref().map(abs),
        },
        ca_env_vars: Vec::new(),
    })
}

fn canonical(p: &Path) -> PathBuf {
    p.canonicalize().unwrap_or_else(|_| p.to_path_buf())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::builtin;
    use crate::policy::NetworkMode;
    use crate::test_support::{args, env_in, setup};

    #[test]
    fn every_builtin_profile_resolves() {
        let (_t, env) = env_in("builtins");
        let gitconfig = env.home.join(".gitconfig");
        for name in builtin::names() {
            let _ = std::fs::remove_file(&gitconfig);
            let fresh = resolve(&args(Some(name)), &env).unwrap();
            std::fs::write(&gitconfig, "").unwrap();
            let p = resolve(&args(Some(name)), &env).unwrap();
            assert_eq!(p.profile.as_ref().unwrap().name, name);
            assert!(p.filesystem.allow.contains(&env.tmpdir), "{name}");
            if name == "toolchains" {
                assert!(p
                    .filesystem
                    .path_env
                    .iter()
                    .any(|(k, _)| k == "npm_config_cache"));
                continue;
            }
            if name != "default" {
                // Agents get the toolchains profile's caches, not the user's.
                assert!(
                    p.filesystem
                        .path_env
                        .iter()
                        .any(|(k, v)| k == "PIP_CACHE_DIR"
                            && v.starts_with(env.home.join(".cache/nono/tools"))),
                    "{name}: {:?}",
                    p.filesystem.path_env
                );
                assert_eq!(p.network.network_profile.as_deref(), Some(name));
                assert_eq!(p.network.mode, NetworkMode::Proxy);
                assert!(p.filesystem.allow.contains(&env.workdir), "{name}");
                // Read when it exists; on a fresh home it is simply not granted.
                assert!(p.filesystem.read.contains(&gitconfig), "{name}");
                assert!(!fresh.filesystem.read.contains(&gitconfig), "{name}");
                // The agent's own state is created before its first run.
                assert!(!fresh.filesystem.create_dirs.is_empty(), "{name}");
            }
        }
        let oc = resolve(&args(Some("opencode")), &env).unwrap();
        assert!(oc
            .filesystem
            .allow
            .contains(&env.xdg_config_home.clone().unwrap().join("opencode")));
    }

    #[test]
    fn no_profile_no_flags_is_unrestricted() {
        let (_t, env) = env_in("nothing");
        let p = resolve(&PolicyArgs::default(), &env).unwrap();
        assert_eq!(p.network.mode, NetworkMode::Unrestricted);
        assert!(p.profile.is_none() && p.filesystem.allow.is_empty());
        let p = resolve(
            &PolicyArgs {
                block_net: true,
                open_port: vec![3000],
                ..PolicyArgs::default()
            },
            &env,
        )
        .unwrap();
        assert_eq!(
            (p.network.mode, p.network.open_ports.clone()),
            (NetworkMode::Blocked, vec![3000])
        );
    }

    #[test]
    fn cli_overrides_network_profile_and_adds_lists() {
        let (_t, env) = setup(
            "cli",
            &[(
                "p",
                r#"{"network": {"network_profile": "developer", "allow_domain": ["a.example.com"], "credentials": ["github"],
                         "upstream_proxy": "p.corp:1", "open_port": [1], "listen_port": [2]}}"#,
            )],
        );
        let a = PolicyArgs {
            network_profile: Some("minimal".into()),
            allow_domain: vec!["b.example.com".into(), "a.example.com".into()],
            credential: vec!["openai".into()],
            upstream_proxy: Some("c.corp:3".into()),
            open_port: vec![1, 3],
            listen_port: vec![4],
            ..args(Some("p"))
        };
        let n = resolve(&a, &env).unwrap().network;
        assert_eq!(n.network_profile.as_deref(), Some("minimal"));
        assert!(!n.allowed_hosts.contains(&"crates.io".to_string()));
        assert!(n
            .allowed_hosts
            .ends_with(&["a.example.com".to_string(), "b.example.com".to_string()]));
        assert_eq!(
            n.credentials
                .iter()
                .map(|c| c.name.as_str())
                .collect::<Vec<_>>(),
            ["github", "openai"]
        );
        assert_eq!(n.upstream_proxy.as_deref(), Some("c.corp:3"));
        assert_eq!((n.open_ports, n.listen_ports), (vec![1, 3], vec![2, 4]));
    }

    #[test]
    fn cli_paths_and_unknown_network_profile() {
        let (_t, env) = env_in("paths");
        let a = PolicyArgs {
            allow: vec!["sub/dir".into()],
            read: vec!["/etc/./hosts".into()],
            allow_cwd: true,
            ..PolicyArgs::default()
        };
        let fs = resolve(&a, &env).unwrap().filesystem;
        assert_eq!(fs.allow, [env.workdir.join("sub/dir"), env.workdir.clone()]);
        assert_eq!(
            fs.read,
            [PathBuf::from("/etc/hosts")
                .canonicalize()
                .unwrap_or_else(|_| "/etc/hosts".into())]
        );
        let a = PolicyArgs {
            network_profile: Some("dev".into()),
            ..PolicyArgs::default()
        };
        let e = resolve(&a, &env).unwrap_err().to_string();
        assert!(e.starts_with("--network-profile: unknown network profile \"dev\"; available: claude-code, codex, developer"), "{e}");
    }
}
