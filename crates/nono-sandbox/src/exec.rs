//! What to run in the sandbox and how it ended, plus `PATH` lookup that behaves like `execvp`.

use std::ffi::{OsStr, OsString};
#[cfg(unix)]
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use crate::error::SandboxError;

/// The `PATH` used when the caller has none, as `execvp` does.
pub const DEFAULT_PATH: &str = "/usr/local/bin:/usr/bin:/bin";

/// The program to execute inside the sandbox.
///
/// Build it with the fields that matter and `..Default::default()` for the rest: no working
/// directory change and inherited standard streams.
#[derive(Debug, Default)]
pub struct ExecSpec {
    /// Path of the executable, already resolved (see [`resolve_program`]).
    pub program: PathBuf,
    /// The full argument vector, `argv[0]` included.
    pub argv: Vec<OsString>,
    /// The complete environment of the child; nothing else is inherited.
    pub env: Vec<(OsString, OsString)>,
    /// Absolute directory the program starts in, as seen inside the sandbox; it must lie
    /// beneath a granted path. `None` keeps the default: the caller's working directory when
    /// the sandbox contains it, `/` otherwise.
    pub cwd: Option<PathBuf>,
    /// Where the program's standard streams go.
    #[cfg(unix)]
    pub stdio: Stdio,
}

/// Descriptors that become the program's standard input, output and error.
///
/// `None` inherits the caller's descriptor 0, 1 or 2. Each `Some` is duplicated onto its
/// number in the program just before exec; the descriptor itself reaches no sandboxed
/// process. The caller keeps ownership: drop the spec (or these descriptors) after
/// [`spawn`](crate::spawn) so that the read end of an output pipe sees end-of-file once the
/// sandbox has ended.
#[cfg(unix)]
#[derive(Debug, Default)]
pub struct Stdio {
    /// The program's standard input (descriptor 0).
    pub stdin: Option<OwnedFd>,
    /// The program's standard output (descriptor 1).
    pub stdout: Option<OwnedFd>,
    /// The program's standard error (descriptor 2).
    pub stderr: Option<OwnedFd>,
}

/// How a sandboxed child ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChildExit {
    /// Exited normally with this status.
    Code(i32),
    /// Killed by this signal number.
    Signal(i32),
}

impl ChildExit {
    /// The status a shell would report: the code, or 128 + the signal number.
    pub fn shell_status(self) -> i32 {
        match self {
            ChildExit::Code(code) => code,
            ChildExit::Signal(sig) => 128 + sig,
        }
    }
}

/// Finds `name` the way `execvp` does.
///
/// A name containing `/` is used as is; otherwise each entry of `path_var` (or
/// [`DEFAULT_PATH`]) is tried in order, an empty entry meaning the current directory. Returns
/// [`SandboxError::ProgramNotFound`] (exit 127) when nothing by that name exists, and
/// [`SandboxError::ProgramNotExecutable`] (exit 126) when only non-executable candidates do.
#[cfg(unix)]
pub fn resolve_program(name: &OsStr, path_var: Option<&OsStr>) -> Result<PathBuf, SandboxError> {
    use std::os::unix::ffi::OsStrExt;

    let not_found = || SandboxError::ProgramNotFound {
        name: name.to_string_lossy().into_owned(),
    };
    if name.is_empty() {
        return Err(not_found());
    }
    if name.as_bytes().contains(&b'/') {
        let path = PathBuf::from(name);
        return match candidate(&path) {
            Candidate::Executable => Ok(path),
            Candidate::NotExecutable => Err(SandboxError::ProgramNotExecutable { path }),
            Candidate::Missing => Err(not_found()),
        };
    }
    let path_var = path_var.unwrap_or(OsStr::new(DEFAULT_PATH));
    let mut not_executable = None;
    for dir in path_var.as_bytes().split(|&b| b == b':') {
        let dir = if dir.is_empty() {
            Path::new(".")
        } else {
            Path::new(OsStr::from_bytes(dir))
        };
        let path = dir.join(name);
        match candidate(&path) {
            Candidate::Executable => return Ok(path),
            Candidate::NotExecutable => {
                not_executable.get_or_insert(path);
            }
            Candidate::Missing => {}
        }
    }
    match not_executable {
        Some(path) => Err(SandboxError::ProgramNotExecutable { path }),
        None => Err(not_found()),
    }
}

enum Candidate {
    Executable,
    NotExecutable,
    Missing,
}

#[cfg(unix)]
fn candidate(path: &Path) -> Candidate {
    use std::os::unix::ffi::OsStrExt;

    let Ok(meta) = std::fs::metadata(path) else {
        return Candidate::Missing;
    };
    if !meta.is_file() {
        return Candidate::NotExecutable;
    }
    let Ok(c_path) = std::ffi::CString::new(path.as_os_str().as_bytes()) else {
        return Candidate::Missing;
    };
    // SAFETY: `c_path` is a valid NUL-terminated string that outlives the call.
    let rc = unsafe { libc::access(c_path.as_ptr(), libc::X_OK) };
    if rc == 0 {
        Candidate::Executable
    } else {
        Candidate::NotExecutable
    }
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn scratch(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("nono-resolve-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("mkdir");
        dir
    }

    #[test]
    fn finds_sh_on_default_path() {
        let found = resolve_program(OsStr::new("sh"), None).expect("sh");
        assert!(found.ends_with("sh"));
    }

    #[test]
    fn missing_is_not_found_127() {
        let err = resolve_program(
            OsStr::new("nono-no-such-program"),
            Some(OsStr::new("/usr/bin")),
        )
        .expect_err("missing");
        assert_eq!(err.exec_exit_code(), Some(127));
    }

    #[test]
    fn non_executable_is_126_and_later_executable_wins() {
        let a = scratch("a");
        let b = scratch("b");
        let plain = a.join("tool");
        std::fs::write(&plain, "#!/bin/sh\n").expect("write");
        std::fs::set_permissions(&plain, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        let only_a = a.as_os_str().to_owned();
        let err = resolve_program(OsStr::new("tool"), Some(&only_a)).expect_err("not exec");
        assert_eq!(err.exec_exit_code(), Some(126));

        let exe = b.join("tool");
        std::fs::write(&exe, "#!/bin/sh\n").expect("write");
        std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        let mut both = a.as_os_str().to_owned();
        both.push(":");
        both.push(b.as_os_str());
        assert_eq!(
            resolve_program(OsStr::new("tool"), Some(&both)).expect("found"),
            exe
        );
        let _ = std::fs::remove_dir_all(a);
        let _ = std::fs::remove_dir_all(b);
    }

    #[test]
    fn directory_is_not_executable() {
        let err = resolve_program(OsStr::new("/usr"), None).expect_err("dir");
        assert_eq!(err.exec_exit_code(), Some(126));
    }

    #[test]
    fn shell_status_of_signal() {
        assert_eq!(ChildExit::Signal(9).shell_status(), 137);
        assert_eq!(ChildExit::Code(3).shell_status(), 3);
    }
}
