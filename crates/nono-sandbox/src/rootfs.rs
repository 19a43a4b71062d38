//! The child's root filesystem in its own mount namespace: what is mounted where.
//!
//! This is the first wall (Landlock is the second): the child's `/` is an empty, read-only
//! tmpfs holding only what the policy grants, bind-mounted read-only or read-write as granted.
//! Anything else does not exist for the child, so `chmod`, `utimensat`, `setxattr`, `stat` and
//! inotify outside the grants find `ENOENT`, and inside read-only grants `EROFS`. `/proc` is
//! the child's own (its PID namespace), `/dev` holds a few device nodes and a private `devpts`
//! instance, `/tmp` is a private tmpfs unless shared by the policy.
//!
//! Pure: the caller supplies what it found on disk ([`RootEntry`]); `linux::rootfs` performs
//! the operations. Unit-tested everywhere.

use std::collections::BTreeSet;
use std::path::{Component, Path, PathBuf};

use crate::policy::FsAccess;

/// What a granted path is on the host.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EntryKind {
    /// A directory: bind-mounted with everything beneath it.
    Dir,
    /// Any other file (regular, device, socket): bind-mounted alone.
    File,
    /// A symbolic link, recreated as such (its target is granted separately when needed).
    Symlink(PathBuf),
}

/// One granted path as found on the host.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RootEntry {
    /// Absolute path, the same inside and outside.
    pub path: PathBuf,
    /// Read-only or read-write.
    pub access: FsAccess,
    /// What it is.
    pub kind: EntryKind,
}

/// Options of the new root.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RootOptions {
    /// Bind the host's `/tmp` when it is granted, instead of a private tmpfs.
    pub share_tmp: bool,
    /// The child's terminal (`/dev/pts/N` of the host), shown as `/dev/console`.
    pub terminal: Option<PathBuf>,
    /// Host files and directories under granted paths that must not be visible (root-only
    /// secrets such as `/etc/shadow`): covered by an empty file or directory.
    pub hidden: Vec<(PathBuf, bool)>,
}

/// One step of building the new root; paths are as the child will see them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MountOp {
    /// Create a directory (a mount point, or a parent of one).
    Dir(PathBuf),
    /// Create an empty file (the mount point of a file bind).
    File(PathBuf),
    /// Create a symbolic link `path` pointing to `target`.
    Symlink {
        /// The link.
        path: PathBuf,
        /// What it points to, verbatim.
        target: PathBuf,
    },
    /// Bind-mount host `src` (recursively) at `dst`, read-only unless `writable`.
    Bind {
        /// Host path.
        src: PathBuf,
        /// Path in the new root.
        dst: PathBuf,
        /// Read-write.
        writable: bool,
    },
    /// A fresh tmpfs (the private `/tmp`, `/dev`).
    Tmpfs {
        /// Mount point.
        path: PathBuf,
        /// Mode of its root directory.
        mode: u32,
    },
    /// A fresh procfs of the child's PID namespace (read-only unless granted read-write).
    Proc {
        /// Mount point.
        path: PathBuf,
        /// Mounted read-write.
        writable: bool,
    },
    /// A private `devpts` instance (only the sandbox's own pseudo-terminals).
    Devpts(PathBuf),
    /// Cover a path with an empty read-only file or directory.
    Hide {
        /// The covered path.
        path: PathBuf,
        /// It is a directory.
        is_dir: bool,
    },
}

/// A filesystem object that exists only in the child's root, so the Landlock rules built from
/// host paths cannot name it: the child adds these rules itself after building the root.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FreshRule {
    /// Path in the new root.
    pub path: PathBuf,
    /// Access to grant.
    pub access: FsAccess,
    /// Directory rights, or only those that apply to files.
    pub is_dir: bool,
}

/// The complete recipe of the new root.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RootPlan {
    /// Steps, in order.
    pub ops: Vec<MountOp>,
    /// Landlock rules for the fresh objects.
    pub fresh_rules: Vec<FreshRule>,
}

fn depth(p: &Path) -> usize {
    p.components()
        .filter(|c| matches!(c, Component::Normal(_)))
        .count()
}

fn max_access(a: FsAccess, b: FsAccess) -> FsAccess {
    if a == FsAccess::ReadWrite || b == FsAccess::ReadWrite {
        FsAccess::ReadWrite
    } else {
        FsAccess::Read
    }
}

/// Tracks what the new root already holds while the plan is built.
#[derive(Default)]
struct Builder {
    ops: Vec<MountOp>,
    fresh_rules: Vec<FreshRule>,
    /// Directories created in tmpfs (the root, `/dev`, a private `/tmp`).
    made: BTreeSet<PathBuf>,
    /// Host binds (directories), with their access: everything beneath exists already.
    binds: Vec<(PathBuf, FsAccess)>,
}

impl Builder {
    /// The innermost host bind that `path` lies beneath (or is).
    fn covering_bind(&self, path: &Path) -> Option<&(PathBuf, FsAccess)> {
        self.binds
            .iter()
            .filter(|(b, _)| path.starts_with(b))
            .max_by_key(|(b, _)| depth(b))
    }

    /// Creates the missing directories above `path` (not `path` itself).
    fn parents(&mut self, path: &Path) {
        let mut chain: Vec<&Path> = path.ancestors().skip(1).collect();
        chain.reverse();
        for dir in chain {
            if depth(dir) == 0 || self.made.contains(dir) || self.covering_bind(dir).is_some() {
                continue;
            }
            self.ops.push(MountOp::Dir(dir.to_path_buf()));
            self.made.insert(dir.to_path_buf());
        }
    }

    /// A mount point for a directory: created unless a bind already shows it.
    fn dir_point(&mut self, path: &Path) {
        self.parents(path);
        if depth(path) > 0 && !self.made.contains(path) && self.covering_bind(path).is_none() {
            self.ops.push(MountOp::Dir(path.to_path_buf()));
            self.made.insert(path.to_path_buf());
        }
    }

    fn file_point(&mut self, path: &Path) {
        self.parents(path);
        if self.covering_bind(path).is_none() {
            self.ops.push(MountOp::File(path.to_path_buf()));
        }
    }

    fn fresh(&mut self, path: &str, access: FsAccess, is_dir: bool) {
        self.fresh_rules.push(FreshRule {
            path: PathBuf::from(path),
            access,
            is_dir,
        });
    }

    fn entry(&mut self, e: &RootEntry, access: FsAccess) {
        match &e.kind {
            EntryKind::Symlink(target) => {
                if self.covering_bind(&e.path).is_none() {
                    self.parents(&e.path);
                    self.ops.push(MountOp::Symlink {
                        path: e.path.clone(),
                        target: target.clone(),
                    });
                }
            }
            kind => {
                // Beneath a bind with the same access, the host content is already there.
                if let Some((_, a)) = self.covering_bind(&e.path) {
                    if *a == access {
                        return;
                    }
                }
                let is_dir = *kind == EntryKind::Dir;
                if is_dir {
                    self.dir_point(&e.path);
                } else {
                    self.file_point(&e.path);
                }
                self.ops.push(MountOp::Bind {
                    src: e.path.clone(),
                    dst: e.path.clone(),
                    writable: access == FsAccess::ReadWrite,
                });
                if is_dir {
                    self.binds.push((e.path.clone(), access));
                }
            }
        }
    }
}

/// Plans the new root for `entries` (system paths and grants, each an existing host path).
///
/// Rules add up as Landlock's do: a path beneath a read-write grant stays read-write even if
/// granted read-only on its own. Grants beneath `/proc` are dropped (the child's `/proc` is
/// its own); `/dev` is built from the granted device nodes.
pub fn root_plan(entries: &[RootEntry], options: &RootOptions) -> RootPlan {
    // One entry per path, with the union of the access granted to it.
    let mut merged: Vec<RootEntry> = Vec::new();
    for e in entries {
        if let Some(m) = merged.iter_mut().find(|m| m.path == e.path) {
            m.access = max_access(m.access, e.access);
        } else {
            merged.push(e.clone());
        }
    }
    // Effective access: the widest of the entry and every directory grant above it.
    let effective: Vec<FsAccess> = merged
        .iter()
        .map(|e| {
            merged
                .iter()
                .filter(|o| o.kind == EntryKind::Dir && e.path.starts_with(&o.path))
                .fold(e.access, |acc, o| max_access(acc, o.access))
        })
        .collect();
    let mut order: Vec<usize> = (0..merged.len()).collect();
    order.sort_by(|&a, &b| {
        let (pa, pb) = (&merged[a].path, &merged[b].path);
        depth(pa).cmp(&depth(pb)).then_with(|| pa.cmp(pb))
    });

    let mut b = Builder::default();
    let whole_dev = merged.iter().any(|e| e.path == Path::new("/dev"));
    let mut dev_built = false;
    for i in order {
        let e = &merged[i];
        let access = effective[i];
        let path = e.path.as_path();
        if path.starts_with("/proc") {
            if path == Path::new("/proc") {
                b.dir_point(path);
                b.ops.push(MountOp::Proc {
                    path: path.to_path_buf(),
                    writable: access == FsAccess::ReadWrite,
                });
                b.fresh("/proc", access, true);
            }
            continue;
        }
        if path.starts_with("/dev") && !whole_dev {
            if !dev_built {
                build_dev(&mut b, options);
                dev_built = true;
            }
            if path == Path::new("/dev/pts") {
                b.dir_point(path);
                b.ops.push(MountOp::Devpts(path.to_path_buf()));
                b.fresh("/dev/pts", access, true);
                continue;
            }
            if path == Path::new("/dev/ptmx") {
                b.ops.push(MountOp::Symlink {
                    path: path.to_path_buf(),
                    target: PathBuf::from("pts/ptmx"),
                });
                continue;
            }
        }
        if path == Path::new("/tmp") && !options.share_tmp {
            b.dir_point(path);
            b.ops.push(MountOp::Tmpfs {
                path: path.to_path_buf(),
                mode: 0o1777,
            });
            b.made.insert(path.to_path_buf());
            b.fresh("/tmp", access, true);
            continue;
        }
        b.entry(e, access);
    }
    for (path, is_dir) in &options.hidden {
        // Only what a bind actually shows needs covering, and never an explicit grant.
        if b.covering_bind(path).is_some() && !merged.iter().any(|e| &e.path == path) {
            b.ops.push(MountOp::Hide {
                path: path.clone(),
                is_dir: *is_dir,
            });
        }
    }
    RootPlan {
        ops: b.ops,
        fresh_rules: b.fresh_rules,
    }
}

/// `/dev`: a tmpfs with the usual links; device nodes are added by their own entries.
fn build_dev(b: &mut Builder, options: &RootOptions) {
    b.dir_point(Path::new("/dev"));
    b.ops.push(MountOp::Tmpfs {
        path: PathBuf::from("/dev"),
        mode: 0o755,
    });
    b.made.insert(PathBuf::from("/dev"));
    // Listing /dev is how ttyname(3) finds the terminal (as /dev/console) when its host
    // path is not visible here; it holds nothing but the nodes below.
    b.fresh("/dev", FsAccess::Read, true);
    for (link, target) in [
        ("/dev/fd", "/proc/self/fd"),
        ("/dev/stdin", "/proc/self/fd/0"),
        ("/dev/stdout", "/proc/self/fd/1"),
        ("/dev/stderr", "/proc/self/fd/2"),
    ] {
        b.ops.push(MountOp::Symlink {
            path: PathBuf::from(link),
            target: PathBuf::from(target),
        });
    }
    if let Some(tty) = &options.terminal {
        b.ops.push(MountOp::File(PathBuf::from("/dev/console")));
        b.ops.push(MountOp::Bind {
            src: tty.clone(),
            dst: PathBuf::from("/dev/console"),
            writable: true,
        });
        b.fresh("/dev/console", FsAccess::ReadWrite, false);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(p: &str, access: FsAccess) -> RootEntry {
        RootEntry {
            path: p.into(),
            access,
            kind: EntryKind::Dir,
        }
    }

    fn file(p: &str, access: FsAccess) -> RootEntry {
        RootEntry {
            path: p.into(),
            access,
            kind: EntryKind::File,
        }
    }

    fn binds(plan: &RootPlan) -> Vec<(String, bool)> {
        plan.ops
            .iter()
            .filter_map(|op| match op {
                MountOp::Bind { dst, writable, .. } => Some((dst.display().to_string(), *writable)),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn grants_are_bound_as_granted_and_parents_created() {
        let plan = root_plan(
            &[
                dir("/usr", FsAccess::Read),
                dir("/home/u/proj", FsAccess::ReadWrite),
            ],
            &RootOptions::default(),
        );
        assert_eq!(
            binds(&plan),
            vec![("/usr".into(), false), ("/home/u/proj".into(), true)]
        );
        let dirs: Vec<_> = plan
            .ops
            .iter()
            .filter_map(|op| match op {
                MountOp::Dir(p) => Some(p.display().to_string()),
                _ => None,
            })
            .collect();
        assert_eq!(dirs, vec!["/usr", "/home", "/home/u", "/home/u/proj"]);
    }

    #[test]
    fn read_only_grant_beneath_read_write_stays_writable_like_landlock() {
        let plan = root_plan(
            &[
                dir("/w", FsAccess::ReadWrite),
                dir("/w/sub", FsAccess::Read),
            ],
            &RootOptions::default(),
        );
        // The deeper grant adds nothing: it is skipped, /w stays writable throughout.
        assert_eq!(binds(&plan), vec![("/w".into(), true)]);
    }

    #[test]
    fn writable_grant_beneath_read_only_is_bound_on_top_without_mkdir() {
        let plan = root_plan(
            &[
                dir("/etc", FsAccess::Read),
                dir("/etc/app", FsAccess::ReadWrite),
            ],
            &RootOptions::default(),
        );
        assert_eq!(
            binds(&plan),
            vec![("/etc".into(), false), ("/etc/app".into(), true)]
        );
        assert!(!plan.ops.contains(&MountOp::Dir("/etc/app".into())));
    }

    #[test]
    fn duplicate_paths_take_the_union() {
        let plan = root_plan(
            &[dir("/x", FsAccess::Read), dir("/x", FsAccess::ReadWrite)],
            &RootOptions::default(),
        );
        assert_eq!(binds(&plan), vec![("/x".into(), true)]);
    }

    #[test]
    fn proc_is_fresh_and_grants_beneath_it_are_dropped() {
        let plan = root_plan(
            &[
                dir("/proc", FsAccess::Read),
                file("/proc/1/environ", FsAccess::Read),
            ],
            &RootOptions::default(),
        );
        assert!(plan.ops.contains(&MountOp::Proc {
            path: "/proc".into(),
            writable: false
        }));
        assert!(binds(&plan).is_empty());
        assert_eq!(plan.fresh_rules.len(), 1);
    }

    #[test]
    fn dev_is_minimal_with_a_private_devpts() {
        let plan = root_plan(
            &[
                file("/dev/null", FsAccess::ReadWrite),
                dir("/dev/pts", FsAccess::ReadWrite),
                file("/dev/ptmx", FsAccess::ReadWrite),
            ],
            &RootOptions {
                terminal: Some("/dev/pts/7".into()),
                ..RootOptions::default()
            },
        );
        assert!(plan.ops.contains(&MountOp::Tmpfs {
            path: "/dev".into(),
            mode: 0o755
        }));
        assert!(plan.ops.contains(&MountOp::Devpts("/dev/pts".into())));
        assert!(plan.fresh_rules.contains(&FreshRule {
            path: "/dev".into(),
            access: FsAccess::Read,
            is_dir: true
        }));
        assert!(plan.ops.contains(&MountOp::Symlink {
            path: "/dev/ptmx".into(),
            target: "pts/ptmx".into()
        }));
        // The host's devpts is never bound: only the child's own terminal, as /dev/console.
        assert_eq!(
            binds(&plan),
            vec![("/dev/console".into(), true), ("/dev/null".into(), true)]
        );
        assert!(plan.ops.contains(&MountOp::File("/dev/null".into())));
    }

    #[test]
    fn tmp_is_private_unless_shared_and_grants_beneath_are_bound_on_it() {
        let entries = [
            dir("/tmp", FsAccess::ReadWrite),
            dir("/tmp/work/a", FsAccess::ReadWrite),
        ];
        let plan = root_plan(&entries, &RootOptions::default());
        assert!(plan.ops.contains(&MountOp::Tmpfs {
            path: "/tmp".into(),
            mode: 0o1777
        }));
        assert!(plan.ops.contains(&MountOp::Dir("/tmp/work".into())));
        assert_eq!(binds(&plan), vec![("/tmp/work/a".into(), true)]);

        let shared = root_plan(
            &entries,
            &RootOptions {
                share_tmp: true,
                ..RootOptions::default()
            },
        );
        assert_eq!(binds(&shared), vec![("/tmp".into(), true)]);
    }

    #[test]
    fn ungranted_tmp_does_not_exist() {
        let plan = root_plan(&[dir("/usr", FsAccess::Read)], &RootOptions::default());
        assert!(!plan
            .ops
            .iter()
            .any(|op| matches!(op, MountOp::Tmpfs { path, .. } if path == Path::new("/tmp"))));
    }

    #[test]
    fn symlinks_are_recreated_unless_a_bind_shows_them() {
        let plan = root_plan(
            &[
                RootEntry {
                    path: "/bin".into(),
                    access: FsAccess::Read,
                    kind: EntryKind::Symlink("usr/bin".into()),
                },
                dir("/usr", FsAccess::Read),
            ],
            &RootOptions::default(),
        );
        assert!(plan.ops.contains(&MountOp::Symlink {
            path: "/bin".into(),
            target: "usr/bin".into()
        }));
    }

    #[test]
    fn secrets_are_hidden_only_under_binds_and_never_when_granted_by_name() {
        let plan = root_plan(
            &[
                dir("/etc", FsAccess::Read),
                file("/etc/gshadow", FsAccess::Read),
            ],
            &RootOptions {
                hidden: vec![
                    ("/etc/shadow".into(), false),
                    ("/etc/gshadow".into(), false),
                    ("/srv/secret".into(), false),
                ],
                ..RootOptions::default()
            },
        );
        let hidden: Vec<_> = plan
            .ops
            .iter()
            .filter_map(|op| match op {
                MountOp::Hide { path, .. } => Some(path.display().to_string()),
                _ => None,
            })
            .collect();
        assert_eq!(hidden, vec!["/etc/shadow"]);
    }
}
