//! Building the child's new root in its mount namespace (see [`crate::rootfs`]).
//!
//! The parent looks at the host (`lstat`, symlink targets, root-only secrets, the terminal)
//! and turns the plan into C strings; the child, between fork and exec, only issues raw
//! `mount`/`mkdir`/`pivot_root` calls on them.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::error::SandboxError;
use crate::plan::PlannedFsRule;
use crate::policy::FsAccess;
use crate::rootfs::{root_plan, EntryKind, MountOp, RootEntry, RootOptions};

/// `MOUNT_ATTR_RDONLY`, `MOUNT_ATTR_NOSUID` (linux/mount.h).
const MOUNT_ATTR_RDONLY: u64 = 0x1;
const MOUNT_ATTR_NOSUID: u64 = 0x2;
/// `AT_RECURSIVE`: apply to the whole mount tree.
const AT_RECURSIVE: libc::c_int = 0x8000;
/// `LANDLOCK_RULE_PATH_BENEATH`.
const LANDLOCK_RULE_PATH_BENEATH: libc::c_int = 1;
/// Where the host root is while the new one is built, and the new root itself (both inside
/// a scratch tmpfs mounted over `/tmp`, which only this mount namespace sees).
const STAGING: &str = "/tmp";
const OLD: &str = "/oldroot";
const NEW: &str = "/newroot";

/// Directories beneath `/etc` whose entries that only their owner's group may read are covered.
const SECRET_DIRS: &[&str] = &["/etc", "/etc/ssh", "/etc/ssl", "/etc/security"];

/// `struct mount_attr`.
#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

/// `struct landlock_path_beneath_attr` (packed in the UAPI header).
#[repr(C, packed)]
struct PathBeneathAttr {
    allowed_access: u64,
    parent_fd: i32,
}

/// One raw step the child performs.
enum Step {
    Mkdir(CString, libc::mode_t),
    Mkfile(CString),
    Symlink {
        target: CString,
        path: CString,
    },
    Bind {
        src: CString,
        dst: CString,
        attrs: u64,
    },
    Mount {
        fstype: &'static std::ffi::CStr,
        dst: CString,
        flags: libc::c_ulong,
        data: CString,
    },
}

/// Everything the child needs to build its root, prepared before fork.
pub(crate) struct RootSetup {
    steps: Vec<Step>,
    /// What each step does, for the error the parent shows (same index).
    labels: Vec<String>,
    /// Fresh objects to grant in Landlock: path in the new root and the access bits.
    fresh: Vec<(CString, u64)>,
    /// The working directory to return to inside the new root.
    cwd: Option<CString>,
}

impl std::fmt::Debug for RootSetup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RootSetup")
            .field("steps", &self.labels)
            .field("fresh", &self.fresh)
            .finish()
    }
}

/// Landlock access masks for the ABI in force: read, read-write, and the file-only subset.
#[derive(Clone, Copy, Debug)]
pub(crate) struct AccessMasks {
    pub(crate) read: u64,
    pub(crate) all: u64,
    pub(crate) file: u64,
}

fn cstr(p: impl AsRef<[u8]>) -> Result<CString, SandboxError> {
    CString::new(p.as_ref()).map_err(|_| SandboxError::InvalidExecSpec {
        what: "granted path",
        detail: format!(
            "{:?} contains a NUL byte",
            String::from_utf8_lossy(p.as_ref())
        ),
    })
}

fn under(prefix: &str, p: &Path) -> Vec<u8> {
    let mut v = prefix.as_bytes().to_vec();
    v.extend_from_slice(p.as_os_str().as_bytes());
    v
}

/// What each planned rule is on the host; a symlinked system path (`/bin -> usr/bin`) becomes
/// a link, and its target is granted too when nothing else covers it.
fn entries(rules: &[PlannedFsRule]) -> Vec<RootEntry> {
    let mut out = Vec::with_capacity(rules.len());
    for r in rules {
        let Ok(meta) = std::fs::symlink_metadata(&r.path) else {
            continue;
        };
        if meta.file_type().is_symlink() {
            if let Ok(target) = std::fs::read_link(&r.path) {
                out.push(RootEntry {
                    path: r.path.clone(),
                    access: r.access,
                    kind: EntryKind::Symlink(target),
                });
            }
            if let Ok(real) = std::fs::canonicalize(&r.path) {
                let covered = rules
                    .iter()
                    .any(|o| real.starts_with(&o.path) && o.path != r.path && o.is_dir);
                if !covered {
                    out.push(RootEntry {
                        path: real,
                        access: r.access,
                        kind: if r.is_dir {
                            EntryKind::Dir
                        } else {
                            EntryKind::File
                        },
                    });
                }
            }
            continue;
        }
        // The real path: the child refuses to follow any symlink while mounting.
        out.push(RootEntry {
            path: std::fs::canonicalize(&r.path).unwrap_or_else(|_| r.path.clone()),
            access: r.access,
            kind: if meta.is_dir() {
                EntryKind::Dir
            } else {
                EntryKind::File
            },
        });
    }
    out
}

/// Root-only files under `/etc` (`shadow`, `gshadow`, `sudoers`, SSH host keys, TLS private
/// keys): entries other users cannot read. A child running as root would read them by
/// ownership, capabilities or not.
fn secrets() -> Vec<(PathBuf, bool)> {
    let mut out = Vec::new();
    for dir in SECRET_DIRS {
        let Ok(list) = std::fs::read_dir(dir) else {
            continue;
        };
        for e in list.flatten() {
            // d_type and a stat relative to the directory's descriptor: no path walks, this
            // runs at every start.
            if e.file_type().map_or(true, |t| t.is_symlink()) {
                continue;
            }
            let Ok(meta) = e.metadata() else {
                continue;
            };
            if meta.permissions().mode() & 0o004 == 0 {
                out.push((e.path(), meta.is_dir()));
            }
        }
    }
    out
}

/// The host path of the terminal on descriptors 0-2, when it is a pseudo-terminal.
fn terminal() -> Option<PathBuf> {
    (0..3).find_map(|fd| {
        let p = std::fs::read_link(format!("/proc/self/fd/{fd}")).ok()?;
        (p.starts_with("/dev/pts/") && p.exists()).then_some(p)
    })
}

impl RootSetup {
    /// Plans the root for `rules` and formats it for the child.
    pub(crate) fn new(
        rules: &[PlannedFsRule],
        share_tmp: bool,
        masks: AccessMasks,
    ) -> Result<RootSetup, SandboxError> {
        let options = RootOptions {
            share_tmp,
            terminal: terminal(),
            hidden: secrets(),
        };
        let plan = root_plan(&entries(rules), &options);
        let mut steps = Vec::with_capacity(plan.ops.len());
        let mut labels = Vec::with_capacity(plan.ops.len());
        for op in &plan.ops {
            let (step, label) = match op {
                MountOp::Dir(p) => (
                    Step::Mkdir(cstr(under(NEW, p))?, 0o755),
                    format!("create directory {}", p.display()),
                ),
                MountOp::File(p) => (
                    Step::Mkfile(cstr(under(NEW, p))?),
                    format!("create mount point {}", p.display()),
                ),
                MountOp::Symlink { path, target } => (
                    Step::Symlink {
                        target: cstr(target.as_os_str().as_bytes())?,
                        path: cstr(under(NEW, path))?,
                    },
                    format!("link {} -> {}", path.display(), target.display()),
                ),
                MountOp::Bind { src, dst, writable } => (
                    Step::Bind {
                        src: cstr(under(OLD, src))?,
                        dst: cstr(under(NEW, dst))?,
                        attrs: if *writable {
                            MOUNT_ATTR_NOSUID
                        } else {
                            MOUNT_ATTR_NOSUID | MOUNT_ATTR_RDONLY
                        },
                    },
                    format!(
                        "bind-mount {} {}",
                        src.display(),
                        if *writable { "read-write" } else { "read-only" }
                    ),
                ),
                MountOp::Tmpfs { path, mode } => (
                    Step::Mount {
                        fstype: c"tmpfs",
                        dst: cstr(under(NEW, path))?,
                        flags: libc::MS_NOSUID | libc::MS_NODEV,
                        data: cstr(format!("mode={mode:o}"))?,
                    },
                    format!("mount a tmpfs on {}", path.display()),
                ),
                MountOp::Proc { path: p, writable } => (
                    Step::Mount {
                        fstype: c"proc",
                        dst: cstr(under(NEW, p))?,
                        flags: libc::MS_NOSUID
                            | libc::MS_NODEV
                            | libc::MS_NOEXEC
                            | if *writable { 0 } else { libc::MS_RDONLY },
                        data: cstr("")?,
                    },
                    format!("mount the sandbox's own /proc on {}", p.display()),
                ),
                MountOp::Devpts(p) => (
                    Step::Mount {
                        fstype: c"devpts",
                        dst: cstr(under(NEW, p))?,
                        flags: libc::MS_NOSUID | libc::MS_NOEXEC,
                        data: cstr("newinstance,ptmxmode=0666,mode=0620")?,
                    },
                    format!("mount a private devpts on {}", p.display()),
                ),
                MountOp::Hide { path, is_dir } => (
                    Step::Bind {
                        src: cstr(if *is_dir { "/empty-dir" } else { "/empty-file" })?,
                        dst: cstr(under(NEW, path))?,
                        attrs: MOUNT_ATTR_NOSUID | MOUNT_ATTR_RDONLY,
                    },
                    format!("cover {}", path.display()),
                ),
            };
            steps.push(step);
            labels.push(label);
        }
        let fresh = plan
            .fresh_rules
            .iter()
            .map(|r| {
                let bits = match r.access {
                    FsAccess::Read => masks.read,
                    FsAccess::ReadWrite => masks.all,
                };
                let bits = if r.is_dir { bits } else { bits & masks.file };
                Ok((cstr(r.path.as_os_str().as_bytes())?, bits))
            })
            .collect::<Result<Vec<_>, SandboxError>>()?;
        let cwd = std::env::current_dir()
            .ok()
            .and_then(|d| CString::new(d.as_os_str().as_bytes()).ok());
        Ok(RootSetup {
            steps,
            labels,
            fresh,
            cwd,
        })
    }

    /// What step `index` did, for an error message.
    pub(crate) fn label(&self, index: usize) -> String {
        self.labels
            .get(index)
            .cloned()
            .unwrap_or_else(|| "prepare the new root".into())
    }
}

fn errno() -> libc::c_int {
    // SAFETY: __errno_location always returns a valid pointer to this thread's errno.
    unsafe { *libc::__errno_location() }
}

/// Index reported for the fixed steps around the planned ones (staging, pivots).
pub(crate) const STEP_STAGING: usize = usize::MAX - 1;
pub(crate) const STEP_PIVOT: usize = usize::MAX - 2;

unsafe fn mount_attr(path: *const libc::c_char, flags: libc::c_int, set: u64) -> bool {
    let attr = MountAttr {
        attr_set: set,
        attr_clr: 0,
        propagation: 0,
        userns_fd: 0,
    };
    // SAFETY: a NUL-terminated path and a live mount_attr of the size passed.
    unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            libc::AT_FDCWD,
            path,
            flags as libc::c_uint,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        ) == 0
    }
}

unsafe fn mount(
    src: *const libc::c_char,
    dst: *const libc::c_char,
    fstype: *const libc::c_char,
    flags: libc::c_ulong,
    data: *const libc::c_char,
) -> bool {
    // SAFETY: NUL-terminated strings (or NULL where mount(2) allows it).
    unsafe { libc::mount(src, dst, fstype, flags, data.cast()) == 0 }
}

/// Builds the new root and enters it. On failure returns the step index and errno.
///
/// # Safety
/// Only in the forked child, inside a fresh mount namespace it may change, before exec.
pub(crate) unsafe fn enter(setup: &RootSetup) -> Result<(), (usize, libc::c_int)> {
    let null = std::ptr::null::<libc::c_char>();
    // SAFETY: raw system calls on NUL-terminated literals and strings prepared before fork.
    unsafe {
        let fail = |step: usize| Err((step, errno()));
        // Nothing done here may propagate back to the host's mounts.
        if !mount(
            null,
            c"/".as_ptr(),
            null,
            libc::MS_REC | libc::MS_PRIVATE,
            null,
        ) {
            return fail(STEP_STAGING);
        }
        let staging = c"/tmp".as_ptr();
        debug_assert_eq!(STAGING, "/tmp");
        if !mount(
            c"tmpfs".as_ptr(),
            staging,
            c"tmpfs".as_ptr(),
            libc::MS_NOSUID | libc::MS_NODEV,
            c"mode=0700".as_ptr(),
        ) || libc::chdir(staging) != 0
            || libc::mkdir(c"oldroot".as_ptr(), 0o700) != 0
            || libc::mkdir(c"newroot".as_ptr(), 0o755) != 0
            || libc::mkdir(c"empty-dir".as_ptr(), 0o555) != 0
            || !make_file(c"empty-file".as_ptr(), 0o444)
            || !mount(
                c"tmpfs".as_ptr(),
                c"newroot".as_ptr(),
                c"tmpfs".as_ptr(),
                libc::MS_NOSUID | libc::MS_NODEV,
                c"mode=0755".as_ptr(),
            )
            || libc::syscall(libc::SYS_pivot_root, c".".as_ptr(), c"oldroot".as_ptr()) != 0
            || libc::chdir(c"/".as_ptr()) != 0
        {
            return fail(STEP_STAGING);
        }
        for (i, step) in setup.steps.iter().enumerate() {
            let ok = match step {
                Step::Mkdir(p, mode) => {
                    libc::mkdir(p.as_ptr(), *mode) == 0 || errno() == libc::EEXIST
                }
                Step::Mkfile(p) => make_file(p.as_ptr(), 0o644),
                Step::Symlink { target, path } => {
                    libc::symlink(target.as_ptr(), path.as_ptr()) == 0
                }
                Step::Bind { src, dst, attrs } => bind(src, dst, *attrs),
                Step::Mount {
                    fstype,
                    dst,
                    flags,
                    data,
                } => mount(
                    fstype.as_ptr(),
                    dst.as_ptr(),
                    fstype.as_ptr(),
                    *flags,
                    data.as_ptr(),
                ),
            };
            if !ok {
                return fail(i);
            }
        }
        // Drop the host root, then make the new root "/" and its own tmpfs read-only.
        if libc::umount2(c"/oldroot".as_ptr(), libc::MNT_DETACH) != 0
            || libc::chdir(c"/newroot".as_ptr()) != 0
            || libc::syscall(libc::SYS_pivot_root, c".".as_ptr(), c".".as_ptr()) != 0
            || libc::umount2(c".".as_ptr(), libc::MNT_DETACH) != 0
            || libc::chdir(c"/".as_ptr()) != 0
            || !mount_attr(c"/".as_ptr(), 0, MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID)
        {
            return fail(STEP_PIVOT);
        }
        if let Some(cwd) = &setup.cwd {
            // A working directory outside every grant does not exist here: start in "/".
            if libc::chdir(cwd.as_ptr()) != 0 {
                libc::chdir(c"/".as_ptr());
            }
        }
        Ok(())
    }
}

/// `open_tree` / `move_mount` flags (linux/mount.h).
const OPEN_TREE_CLONE: libc::c_uint = 1;
const MOVE_MOUNT_F_EMPTY_PATH: libc::c_uint = 0x4;
const MOVE_MOUNT_T_EMPTY_PATH: libc::c_uint = 0x40;
const SYS_OPEN_TREE: libc::c_long = 428;
const SYS_MOVE_MOUNT: libc::c_long = 429;

/// `O_PATH` descriptor of `path`, refusing every symlink on the way (`RESOLVE_NO_SYMLINKS`):
/// another sandbox writing beneath a grant cannot swap a component for a link while this
/// one mounts it.
unsafe fn open_no_symlinks(path: &std::ffi::CStr) -> libc::c_int {
    // SAFETY: open_how is plain data; a NUL-terminated path and a live struct of its size.
    unsafe {
        let mut how: libc::open_how = std::mem::zeroed();
        how.flags = (libc::O_PATH | libc::O_CLOEXEC) as u64;
        how.resolve = libc::RESOLVE_NO_SYMLINKS;
        libc::syscall(
            libc::SYS_openat2,
            libc::AT_FDCWD,
            path.as_ptr(),
            &how as *const libc::open_how,
            std::mem::size_of::<libc::open_how>(),
        ) as libc::c_int
    }
}

/// Recursive bind of `src` at `dst` with `attrs`, through the new mount API: the tree is
/// cloned from a pinned source, made read-only (or nosuid) while still detached, and moved
/// onto a pinned target, so no step re-resolves a path.
unsafe fn bind(src: &std::ffi::CStr, dst: &std::ffi::CStr, attrs: u64) -> bool {
    // SAFETY: raw system calls on descriptors this function opens and closes, NUL-terminated
    // strings and a live mount_attr.
    unsafe {
        let from = open_no_symlinks(src);
        if from < 0 {
            return false;
        }
        let tree = libc::syscall(
            SYS_OPEN_TREE,
            from,
            c"".as_ptr(),
            OPEN_TREE_CLONE
                | libc::O_CLOEXEC as libc::c_uint
                | libc::AT_EMPTY_PATH as libc::c_uint
                | AT_RECURSIVE as libc::c_uint,
        ) as libc::c_int;
        let err = errno();
        libc::close(from);
        if tree < 0 {
            *libc::__errno_location() = err;
            return false;
        }
        let attr = MountAttr {
            attr_set: attrs,
            attr_clr: 0,
            propagation: 0,
            userns_fd: 0,
        };
        let to = open_no_symlinks(dst);
        let ok = to >= 0
            && libc::syscall(
                libc::SYS_mount_setattr,
                tree,
                c"".as_ptr(),
                (libc::AT_EMPTY_PATH | AT_RECURSIVE) as libc::c_uint,
                &attr as *const MountAttr,
                std::mem::size_of::<MountAttr>(),
            ) == 0
            && libc::syscall(
                SYS_MOVE_MOUNT,
                tree,
                c"".as_ptr(),
                to,
                c"".as_ptr(),
                MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH,
            ) == 0;
        let err = errno();
        libc::close(tree);
        if to >= 0 {
            libc::close(to);
        }
        *libc::__errno_location() = err;
        ok
    }
}

unsafe fn make_file(path: *const libc::c_char, mode: libc::mode_t) -> bool {
    // SAFETY: a NUL-terminated path; the descriptor is closed at once.
    unsafe {
        let fd = libc::open(
            path,
            libc::O_WRONLY | libc::O_CREAT | libc::O_CLOEXEC | libc::O_NOFOLLOW,
            mode,
        );
        if fd < 0 {
            return errno() == libc::EEXIST;
        }
        libc::close(fd);
        true
    }
}

/// Adds the Landlock rules for the root's fresh objects (`/proc`, `/dev/pts`, the private
/// `/tmp`) to `ruleset`, which is this child's own copy. Returns the failing errno.
///
/// # Safety
/// Only in the forked child, after [`enter`], with `ruleset` a Landlock ruleset descriptor.
pub(crate) unsafe fn grant_fresh(setup: &RootSetup, ruleset: libc::c_int) -> Result<(), i32> {
    for (path, access) in &setup.fresh {
        // SAFETY: a NUL-terminated path; the descriptor is closed below.
        let fd = unsafe { libc::open(path.as_ptr(), libc::O_PATH | libc::O_CLOEXEC) };
        if fd < 0 {
            return Err(errno());
        }
        let attr = PathBeneathAttr {
            allowed_access: *access,
            parent_fd: fd,
        };
        // SAFETY: a live, packed attribute struct as the UAPI defines it.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_landlock_add_rule,
                ruleset,
                LANDLOCK_RULE_PATH_BENEATH,
                &attr as *const PathBeneathAttr,
                0u32,
            )
        };
        let err = errno();
        // SAFETY: our descriptor.
        unsafe { libc::close(fd) };
        if rc != 0 {
            return Err(err);
        }
    }
    Ok(())
}
