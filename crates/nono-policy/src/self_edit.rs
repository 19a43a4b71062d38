//! Refusing a policy the sandbox it configures could rewrite.
//!
//! A profile kept in the project (`--profile ./agent.json --allow-cwd`) lies beneath a
//! read-write grant: the confined agent can edit it to grant `/` or add a `cmd://` credential,
//! and the next `nono run` of the same command runs that unconfined. So every profile file of
//! the inheritance chain, every `file://` credential source and every file a `cmd://` source
//! runs or names (see `command_files`) must lie outside the policy's own read-write grants.
//!
//! Paths are compared by real location, and every symlink met on the way to a file counts as
//! well as the file: a link kept in a writable directory can be re-pointed at a file the
//! sandbox wrote, even when it points somewhere safe today. A file that does not exist yet is
//! placed where it would be created, since the sandbox could create it.

use std::path::{Component, Path, PathBuf};

use crate::command_files::{command_files, Lookup, Role};
use crate::error::PolicyError;
use crate::policy::{ProxyCa, ResolvedPolicy};
use crate::vars::{normalise, Env};

/// How many symlinks are followed in all for one path (Linux's limit for one lookup); past
/// it the kernel refuses the path too, so nothing is missed that could be opened.
const MAX_SYMLINKS: usize = 40;

/// Refuses `p` when a file that configures it lies beneath one of its own read-write grants.
///
/// `host_tmp`: the sandbox sees the host's `/tmp` (it runs without its own mount namespace);
/// otherwise, on Linux, a grant of exactly `/tmp` is a private tmpfs and does not count unless
/// the policy sets `share_tmp`. `cmd://` commands are looked up with this process's `PATH`,
/// home and working directory, the ones they run with.
pub fn check_self_edit(p: &ResolvedPolicy, host_tmp: bool) -> Result<(), PolicyError> {
    let cwd = std::env::current_dir()
        .map_err(|e| PolicyError::Env(format!("cannot read the current directory: {e}")))?;
    let lookup = Lookup {
        path: std::env::var_os("PATH"),
        cwd,
        home: dirs::home_dir(),
    };
    check(p, host_tmp, &lookup)
}

/// The [`Lookup`] of a policy resolved in `env`.
pub(crate) fn lookup_in(env: &Env) -> Lookup {
    Lookup {
        path: std::env::var_os("PATH"),
        cwd: env.workdir.clone(),
        home: Some(env.home.clone()),
    }
}

/// [`check_self_edit`] with the lookup given: the first problem found.
pub(crate) fn check(
    p: &ResolvedPolicy,
    host_tmp: bool,
    lookup: &Lookup,
) -> Result<(), PolicyError> {
    match problems(p, host_tmp, lookup).into_iter().next() {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// Every file of `p` the sandbox could rewrite, as the error refusing it.
pub(crate) fn problems(p: &ResolvedPolicy, host_tmp: bool, lookup: &Lookup) -> Vec<PolicyError> {
    let grants = writable(p, host_tmp, &lookup.cwd);
    let mut out = Vec::new();
    if grants.is_empty() {
        return out;
    }
    let mut refuse = |what: String, file: &Path| {
        if let Some((exposure, grant)) = beneath(&exposures(file, &lookup.cwd), &grants) {
            out.push(PolicyError::SelfEditable {
                what: if exposure.link {
                    format!("a symlink on the path of {what}")
                } else {
                    what
                },
                file: exposure.at.clone(),
                grant: grant.clone(),
            });
        }
    };
    if let Some(info) = &p.profile {
        for file in &info.files {
            let what = if info.files.last() == Some(file) {
                format!("the profile {}", info.name)
            } else {
                format!("a profile that {} extends", info.name)
            };
            refuse(what, file);
        }
    }
    // Trust anchors: whoever rewrites one decides which servers nono, or clients of the
    // interception bundle, believe.
    if let ProxyCa::Files { cert, key } = &p.network.proxy_ca {
        refuse("the TLS interception CA certificate".into(), cert);
        refuse("the TLS interception CA key".into(), key);
    }
    if let Some(roots) = std::env::var_os("SSL_CERT_FILE").filter(|v| !v.is_empty()) {
        refuse(
            "the trust roots of SSL_CERT_FILE (the interception bundle starts from them)".into(),
            Path::new(&roots),
        );
    }
    for c in &p.network.credentials {
        if let Some(ca) = &c.tls_ca {
            refuse(format!("the tls_ca of credential {}", c.name), ca);
        }
    }
    for c in &p.network.credentials {
        let key = c.credential_key.as_str();
        let source = format!("the credential source of {} ({key})", c.name);
        if let Some(path) = key.strip_prefix("file://") {
            refuse(source, Path::new(path));
        } else if let Some(cmd) = key.strip_prefix("cmd://") {
            for f in command_files(cmd, lookup) {
                let what = match &f.role {
                    Role::PathCandidate(name) => format!(
                        "a directory of PATH searched for `{name}` (a program placed there would run as {source})"
                    ),
                    Role::Program | Role::Argument => source.clone(),
                };
                refuse(what, &f.path);
            }
        }
    }
    out
}

/// Refuses an interception CA key the sandbox could read: with it, the confined command
/// could impersonate any host to whatever trusts that CA (often the whole machine).
pub fn check_ca_key_unreadable(p: &ResolvedPolicy) -> Result<(), PolicyError> {
    let ProxyCa::Files { key, .. } = &p.network.proxy_ca else {
        return Ok(());
    };
    let cwd = std::env::current_dir()
        .map_err(|e| PolicyError::Env(format!("cannot read the current directory: {e}")))?;
    let readable: Vec<PathBuf> = nono_sandbox::system_paths()
        .into_iter()
        .map(|r| r.path)
        .chain(p.filesystem.read.iter().cloned())
        .chain(p.filesystem.allow.iter().cloned())
        .map(|g| real(&g, &cwd))
        .collect();
    match beneath(&exposures(key, &cwd), &readable) {
        Some((e, grant)) => Err(PolicyError::CaKeyReadable {
            file: e.at.clone(),
            grant: grant.clone(),
        }),
        None => Ok(()),
    }
}

/// The read-write grants as the sandbox sees them on the host, by real location.
fn writable(p: &ResolvedPolicy, host_tmp: bool, cwd: &Path) -> Vec<PathBuf> {
    let private_tmp = cfg!(target_os = "linux") && !host_tmp && !p.filesystem.share_tmp;
    p.filesystem
        .allow
        .iter()
        .filter(|g| !(private_tmp && g.as_path() == Path::new("/tmp")))
        .map(|g| real(g, cwd))
        .collect()
}

/// A place whose change changes what a path names.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Exposure {
    /// Its real location.
    at: PathBuf,
    /// A symlink on the way, rather than the file itself.
    link: bool,
}

/// The first exposure beneath a grant, with the innermost such grant.
fn beneath<'a>(
    exposures: &'a [Exposure],
    grants: &'a [PathBuf],
) -> Option<(&'a Exposure, &'a PathBuf)> {
    exposures.iter().find_map(|e| {
        grants
            .iter()
            .filter(|g| e.at.starts_with(g))
            .max_by_key(|g| g.components().count())
            .map(|g| (e, g))
    })
}

/// Every symlink met on the way to `path` (where the link itself is), then where `path`
/// really is.
fn exposures(path: &Path, cwd: &Path) -> Vec<Exposure> {
    let mut out = Vec::new();
    let mut budget = MAX_SYMLINKS;
    links_on_the_way(&cwd.join(path), cwd, &mut budget, &mut out);
    out.push(Exposure {
        at: real(path, cwd),
        link: false,
    });
    out
}

fn links_on_the_way(abs: &Path, cwd: &Path, budget: &mut usize, out: &mut Vec<Exposure>) {
    let mut prefix = PathBuf::new();
    for c in abs.components() {
        prefix.push(c);
        if !matches!(c, Component::Normal(_)) {
            continue;
        }
        let Ok(meta) = std::fs::symlink_metadata(&prefix) else {
            // Nothing exists further down, so no further link either.
            return;
        };
        if !meta.file_type().is_symlink() {
            continue;
        }
        let (Some(parent), Some(name)) = (prefix.parent(), prefix.file_name()) else {
            continue;
        };
        let dir = real(parent, cwd);
        let at = dir.join(name);
        if !out.iter().any(|e| e.at == at) {
            out.push(Exposure { at, link: true });
        }
        if *budget == 0 {
            return;
        }
        *budget -= 1;
        if let Ok(target) = std::fs::read_link(&prefix) {
            links_on_the_way(&dir.join(target), cwd, budget, out);
        }
    }
}

/// `path` made absolute (against `cwd`) with its deepest existing ancestor canonicalised:
/// the real location, even of a file that does not exist yet.
fn real(path: &Path, cwd: &Path) -> PathBuf {
    let abs = cwd.join(path);
    let mut tail = Vec::new();
    let mut at = abs.as_path();
    loop {
        if let Ok(mut out) = at.canonicalize() {
            for c in tail.iter().rev() {
                match c {
                    Component::ParentDir => {
                        out.pop();
                    }
                    Component::Normal(n) => out.push(n),
                    _ => {}
                }
            }
            return out;
        }
        match (at.parent(), at.components().next_back()) {
            (Some(parent), Some(last)) => {
                tail.push(last);
                at = parent;
            }
            _ => return normalise(&abs),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::PolicyArgs;
    use crate::test_support::{env_in, write};
    use std::os::unix::fs::symlink;

    fn at(e: &[Exposure]) -> Vec<(PathBuf, bool)> {
        e.iter().map(|e| (e.at.clone(), e.link)).collect()
    }

    #[test]
    fn beneath_equal_outside_and_sibling_prefixes() {
        let (t, _env) = env_in("beneath");
        let grant = t.join("proj");
        write(&grant.join("p.json"), "{}");
        let grants = vec![t.to_path_buf(), grant.clone()];
        let under = exposures(&grant.join("p.json"), &t);
        // The innermost grant is named.
        assert_eq!(beneath(&under, &grants).map(|(_, g)| g), Some(&grant));
        // A grant of the file itself counts.
        let only_file = vec![grant.join("p.json")];
        assert!(beneath(&under, &only_file).is_some());
        assert!(beneath(&exposures(Path::new("/usr/bin/env"), &t), &grants).is_none());
        // `proj-x` is not beneath `proj`.
        write(&t.join("proj-x/p.json"), "{}");
        let sibling = exposures(&t.join("proj-x/p.json"), &t);
        assert!(beneath(&sibling, std::slice::from_ref(&grant)).is_none());
    }

    #[test]
    fn a_symlinked_spelling_resolves_to_the_real_file() {
        let (t, _env) = env_in("symlinked");
        write(&t.join("proj/p.json"), "{}");
        symlink(t.join("proj"), t.join("alias")).unwrap();
        let e = exposures(&t.join("alias/p.json"), Path::new("/"));
        assert_eq!(
            at(&e),
            [(t.join("alias"), true), (t.join("proj/p.json"), false)]
        );
        let grants = [t.join("proj")];
        let (hit, _) = beneath(&e, &grants).unwrap();
        assert!(!hit.link);
        // Relative spellings are taken from the working directory.
        assert_eq!(
            at(&exposures(Path::new("p.json"), &t.join("proj"))).len(),
            1
        );
    }

    #[test]
    fn a_link_in_a_writable_directory_counts_even_when_it_points_outside() {
        let (t, _env) = env_in("link-out");
        write(&t.join("safe/p.json"), "{}");
        std::fs::create_dir_all(t.join("work")).unwrap();
        symlink(t.join("safe/p.json"), t.join("work/p.json")).unwrap();
        let e = exposures(&t.join("work/p.json"), &t);
        let grants = [t.join("work")];
        let (hit, g) = beneath(&e, &grants).unwrap();
        assert_eq!(
            (hit.at.clone(), hit.link, g),
            (t.join("work/p.json"), true, &grants[0])
        );
        // A link met inside a link's target counts too; a loop ends.
        symlink(t.join("work/p.json"), t.join("safe/hop.json")).unwrap();
        let e = exposures(&t.join("safe/hop.json"), &t);
        assert!(beneath(&e, &grants).is_some_and(|(h, _)| h.link));
        symlink(t.join("safe/loop"), t.join("safe/loop")).unwrap();
        assert!(!exposures(&t.join("safe/loop/x"), &t).is_empty());
    }

    #[test]
    fn a_missing_file_is_where_it_would_be_created() {
        let (t, _env) = env_in("missing");
        std::fs::create_dir_all(t.join("proj")).unwrap();
        symlink(t.join("proj"), t.join("alias")).unwrap();
        assert_eq!(
            real(&t.join("alias/new/../key.txt"), &t),
            t.join("proj/key.txt")
        );
        assert_eq!(real(Path::new("a/b"), &t), t.join("a/b"));
    }

    fn resolved(
        env: &Env,
        profile: &str,
        pargs: PolicyArgs,
    ) -> Result<ResolvedPolicy, PolicyError> {
        crate::resolve(
            &PolicyArgs {
                profile: Some(profile.to_string()),
                ..pargs
            },
            env,
        )
    }

    #[test]
    fn resolve_refuses_a_profile_beneath_a_grant_and_accepts_a_read_only_one() {
        let (_t, env) = env_in("resolve");
        let p = env.workdir.join("p.json");
        write(&p, r#"{"filesystem": {"read": ["$WORKDIR"]}}"#);
        let spec = p.display().to_string();
        resolved(&env, &spec, PolicyArgs::default()).unwrap();
        let cwd = PolicyArgs {
            allow_cwd: true,
            ..PolicyArgs::default()
        };
        let e = resolved(&env, &spec, cwd).unwrap_err().to_string();
        assert!(
            e.starts_with(&format!(
                "the profile p is {}, beneath the read-write grant {}:",
                p.display(),
                env.workdir.display()
            )),
            "{e}"
        );
        assert!(e.contains("~/.config/nono/profiles/"), "{e}");
        // `--allow` of an ancestor, spelled relatively, counts the same.
        let up = PolicyArgs {
            allow: vec!["..".into()],
            ..PolicyArgs::default()
        };
        assert!(resolved(&env, &spec, up).is_err());
    }

    #[test]
    fn a_path_lookup_through_a_writable_directory_is_refused() {
        let (t, env) = env_in("path-lookup");
        let bin = t.join("work/bin");
        std::fs::create_dir_all(&bin).unwrap();
        let p = t.join("p.json");
        write(
            &p,
            r#"{"filesystem": {"allow": ["$WORKDIR"]}, "network": {"credentials": ["svc"],
                "custom_credentials": {"svc": {"upstream": "https://a.example.com", "credential_key": "cmd:///bin/sh -c 'getkey --x'"}}}}"#,
        );
        let net = crate::network_policy::NetworkPolicy::builtin().unwrap();
        let loaded = crate::load::load(&p.display().to_string(), &env, &net).unwrap();
        let policy =
            crate::resolve::resolve_unchecked(Some(loaded), &PolicyArgs::default(), &env, &net)
                .unwrap();
        let lookup = Lookup {
            path: Some(format!("{}:/usr/bin:/bin", bin.display()).into()),
            cwd: env.workdir.clone(),
            home: None,
        };
        let e = check(&policy, false, &lookup).unwrap_err().to_string();
        assert!(
            e.starts_with(
                "a directory of PATH searched for `getkey` (a program placed there would run as the credential source of svc"
            ),
            "{e}"
        );
        assert!(e.contains(&bin.join("getkey").display().to_string()), "{e}");
        let outside = Lookup {
            path: Some("/usr/bin:/bin".into()),
            ..lookup
        };
        check(&policy, false, &outside).unwrap();
    }

    #[test]
    fn a_private_tmp_grant_does_not_count_unless_the_host_tmp_is_seen() {
        let (_t, env) = env_in("tmp");
        let mut policy = crate::resolve(&PolicyArgs::default(), &env).unwrap();
        policy.filesystem.allow = vec![PathBuf::from("/tmp")];
        policy.network.credentials = vec![serde_json::from_str(
            r#"{"upstream": "https://a.example.com", "credential_key": "file:///tmp/k"}"#,
        )
        .unwrap()];
        let lookup = lookup_in(&env);
        assert_eq!(
            check(&policy, false, &lookup).is_ok(),
            cfg!(target_os = "linux")
        );
        assert!(check(&policy, true, &lookup).is_err());
        policy.filesystem.share_tmp = true;
        assert!(check(&policy, false, &lookup).is_err());
    }
}
