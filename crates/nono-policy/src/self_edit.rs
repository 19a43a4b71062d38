//! Refusing a policy the sandbox it configures could rewrite.
//!
//! A profile kept in the project (`--profile ./agent.json --allow-cwd`) lies beneath a
//! read-write grant: the confined agent can edit it to grant `/` or add a `cmd://` credential,
//! and the next `nono run` of the same command runs that unconfined. So every profile file of
//! the inheritance chain, every `file://` credential source and every file a `cmd://` source
//! names (its program, and arguments that are existing files) must lie outside the policy's
//! own read-write grants. Paths are compared canonically, so a symlinked spelling does not
//! dodge the check.

use std::path::{Path, PathBuf};

use crate::error::PolicyError;
use crate::policy::ResolvedPolicy;

/// What the sandbox could rewrite, and the grant that lets it.
fn beneath<'a>(path: &Path, grants: &'a [PathBuf]) -> Option<&'a PathBuf> {
    let real = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    grants
        .iter()
        .filter(|g| real.starts_with(g))
        .max_by_key(|g| g.components().count())
}

/// The read-write grants as the sandbox sees them on the host. A `/tmp` grant is a private
/// tmpfs unless `host_tmp` (the profile shares the real one, or the sandbox runs without its
/// own mount namespace); grants beneath `/tmp` are always the host's.
fn writable(p: &ResolvedPolicy, host_tmp: bool) -> Vec<PathBuf> {
    p.filesystem
        .allow
        .iter()
        .filter(|g| host_tmp || g.as_path() != Path::new("/tmp"))
        .map(|g| std::fs::canonicalize(g).unwrap_or_else(|_| g.clone()))
        .collect()
}

/// Files a `cmd://` command line names: its program (found through `PATH` when it has no
/// slash) and every argument that is an existing file.
fn command_files(cmd: &str) -> Vec<PathBuf> {
    let mut words = cmd.split_whitespace();
    let mut out = Vec::new();
    if let Some(program) = words.next() {
        if program.contains('/') {
            out.push(PathBuf::from(program));
        } else if let Some(path) = std::env::var_os("PATH") {
            if let Some(found) = std::env::split_paths(&path)
                .map(|d| d.join(program))
                .find(|c| c.is_file())
            {
                out.push(found);
            }
        }
    }
    out.extend(
        words
            .map(|w| w.trim_matches(|c| c == '\'' || c == '"'))
            .filter(|w| w.contains('/'))
            .map(PathBuf::from)
            .filter(|p| p.is_file()),
    );
    out
}

/// Refuses `p` when a file that configures it lies beneath one of its own read-write grants.
/// `host_tmp`: the sandbox will see the host's `/tmp` (see [`writable`]).
pub fn check_self_edit(p: &ResolvedPolicy, host_tmp: bool) -> Result<(), PolicyError> {
    let grants = writable(p, host_tmp || p.filesystem.share_tmp);
    if grants.is_empty() {
        return Ok(());
    }
    let refuse = |what: String, file: &Path, grant: &Path| PolicyError::SelfEditable {
        what,
        file: file.to_path_buf(),
        grant: grant.to_path_buf(),
    };
    if let Some(info) = &p.profile {
        for file in &info.files {
            if let Some(g) = beneath(file, &grants) {
                let what = if info.files.last() == Some(file) {
                    format!("the profile {}", info.name)
                } else {
                    format!("a profile that {} extends", info.name)
                };
                return Err(refuse(what, file, g));
            }
        }
    }
    for c in &p.network.credentials {
        let key = c.credential_key.as_str();
        let files = if let Some(path) = key.strip_prefix("file://") {
            vec![PathBuf::from(path)]
        } else if let Some(cmd) = key.strip_prefix("cmd://") {
            command_files(cmd)
        } else {
            continue;
        };
        for f in files {
            if let Some(g) = beneath(&f, &grants) {
                return Err(refuse(
                    format!("the credential source of {} ({key})", c.name),
                    &f,
                    g,
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn beneath_is_canonical_and_picks_the_innermost_grant() {
        let dir = std::env::temp_dir().join(format!("nono-self-edit-{}", std::process::id()));
        let inner = dir.join("proj");
        std::fs::create_dir_all(&inner).unwrap();
        let link = dir.join("link");
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink(&inner, &link).unwrap();
        std::fs::write(inner.join("p.json"), "{}").unwrap();
        let real_dir = std::fs::canonicalize(&dir).unwrap();
        let real_inner = std::fs::canonicalize(&inner).unwrap();
        let grants = vec![real_dir.clone(), real_inner.clone()];
        // Through the symlink, the file is still beneath the grants.
        assert_eq!(beneath(&link.join("p.json"), &grants), Some(&real_inner));
        assert_eq!(beneath(Path::new("/usr/bin/env"), &grants), None);
        // A sibling whose name starts like the grant is not beneath it.
        assert_eq!(
            beneath(
                &real_dir.with_extension("x"),
                std::slice::from_ref(&real_inner)
            ),
            None
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn command_files_are_the_program_and_file_arguments() {
        let files = command_files("sh /etc/hostname --flag op://vault/key");
        assert!(files.iter().any(|f| f.ends_with("sh")), "{files:?}");
        assert!(files.contains(&PathBuf::from("/etc/hostname")), "{files:?}");
        assert!(!files.iter().any(|f| f.starts_with("op:")), "{files:?}");
        assert_eq!(
            command_files("/opt/x/get-key"),
            vec![PathBuf::from("/opt/x/get-key")]
        );
    }
}
