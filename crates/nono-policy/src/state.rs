//! A tool's own state, created before its first run: the directories and files a profile
//! names under `create_dirs` / `create_files`, made only when missing and never overwritten.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::PolicyError;
use crate::policy::ResolvedFs;

/// Creates what `fs` asks for and is missing; returns what was created.
pub fn create_state(fs: &ResolvedFs) -> Result<Vec<PathBuf>, PolicyError> {
    let mut made = Vec::new();
    let fail = |p: &Path, what: &str, e: std::io::Error| {
        PolicyError::Env(format!(
            "cannot create {what} {} for the profile: {e}; create it yourself or remove it from filesystem.create_{what}s",
            p.display()
        ))
    };
    for dir in &fs.create_dirs {
        match std::fs::symlink_metadata(dir) {
            Ok(m) if m.is_dir() => continue,
            Ok(_) => {
                return Err(PolicyError::Env(format!(
                    "{} should be a directory (filesystem.create_dirs) but is something else; move it away",
                    dir.display()
                )))
            }
            Err(_) => {}
        }
        private_dir(dir).map_err(|e| fail(dir, "dir", e))?;
        made.push(dir.clone());
    }
    for (file, content) in &fs.create_files {
        if std::fs::symlink_metadata(file).is_ok() {
            continue;
        }
        if let Some(parent) = file.parent() {
            if std::fs::symlink_metadata(parent).is_err() {
                private_dir(parent).map_err(|e| fail(parent, "dir", e))?;
            }
        }
        private_file(file, content).map_err(|e| fail(file, "file", e))?;
        made.push(file.clone());
    }
    Ok(made)
}

#[cfg(unix)]
fn private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}

#[cfg(not(unix))]
fn private_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)
}

fn private_file(file: &Path, content: &str) -> std::io::Result<()> {
    let mut opts = std::fs::OpenOptions::new();
    // create_new: a file that appeared meanwhile is left alone.
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    match opts.open(file) {
        Ok(mut f) => f.write_all(content.as_bytes()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_state_is_created_once_and_existing_state_kept() {
        let base = std::env::temp_dir().join(format!("nono-state-{}", std::process::id()));
        let fs = ResolvedFs {
            create_dirs: vec![base.join("a/b")],
            create_files: vec![(base.join("c/conf.json"), "{}\n".into())],
            ..ResolvedFs::default()
        };
        let made = create_state(&fs).unwrap();
        assert_eq!(made.len(), 2);
        assert_eq!(
            std::fs::read_to_string(base.join("c/conf.json")).unwrap(),
            "{}\n"
        );
        std::fs::write(base.join("c/conf.json"), "kept").unwrap();
        assert!(create_state(&fs).unwrap().is_empty());
        assert_eq!(
            std::fs::read_to_string(base.join("c/conf.json")).unwrap(),
            "kept"
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(base.join("a/b"))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o700);
        }
        std::fs::write(base.join("a/file"), "x").unwrap();
        let wrong = ResolvedFs {
            create_dirs: vec![base.join("a/file")],
            ..ResolvedFs::default()
        };
        assert!(create_state(&wrong)
            .unwrap_err()
            .to_string()
            .contains("should be a directory"));
        std::fs::remove_dir_all(&base).unwrap();
    }
}
