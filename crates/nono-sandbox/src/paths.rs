//! The read-only system locations an ordinary program needs in order to start and run.

use crate::policy::FsRule;

/// Directories and files every Linux program may need: executables, libraries, `/etc`
/// (configuration, name service, certificates), a few device nodes and `/proc`.
///
/// `/proc` is granted whole because `/proc/self` names a different directory in every process;
/// other processes' sensitive entries (`environ`, `mem`, `fd`) stay protected because Landlock
/// denies ptrace-mode access to processes outside the sandbox. `/etc` relies on file permissions
/// for secrets such as `/etc/shadow`.
const LINUX_READ: &[&str] = &[
    "/usr",
    "/bin",
    "/sbin",
    "/lib",
    "/lib32",
    "/lib64",
    "/libx32",
    "/etc",
    "/proc",
    "/run/systemd/resolve",
    "/sys/devices/system/cpu",
    "/sys/kernel/mm/transparent_hugepage",
    "/nix/store",
    "/run/current-system/sw",
    "/dev/zero",
    "/dev/random",
    "/dev/urandom",
];

/// Device nodes that are written to as a matter of course (discarding output, the terminal).
const LINUX_READ_WRITE: &[&str] = &[
    "/dev/null",
    "/dev/full",
    "/dev/tty",
    "/dev/pts",
    "/dev/ptmx",
];

/// The macOS counterparts; `/etc`, `/var` and `/tmp` are symlinks into `/private` there, and
/// Seatbelt matches the resolved path, so both spellings are listed.
const MACOS_READ: &[&str] = &[
    "/usr",
    "/bin",
    "/sbin",
    "/System",
    "/Library",
    "/Applications/Xcode.app/Contents/Developer",
    "/Library/Developer/CommandLineTools",
    "/opt/homebrew",
    "/usr/local",
    "/etc",
    "/private/etc",
    "/private/var/db/timezone",
    "/var/db/timezone",
    "/dev/zero",
    "/dev/random",
    "/dev/urandom",
];

/// macOS device nodes written to as a matter of course.
const MACOS_READ_WRITE: &[&str] = &["/dev/null", "/dev/tty", "/dev/dtracehelper"];

/// The read-only (and terminal/null-device read-write) system paths for the current platform.
///
/// Paths that do not exist on this machine are skipped by [`crate::prepare`], unlike paths the
/// user grants, which must exist.
pub fn system_paths() -> Vec<FsRule> {
    if cfg!(target_os = "macos") {
        macos_system_paths()
    } else {
        linux_system_paths()
    }
}

/// The system paths for Linux, whatever the build platform.
pub fn linux_system_paths() -> Vec<FsRule> {
    rules(LINUX_READ, LINUX_READ_WRITE)
}

/// The system paths for macOS, whatever the build platform.
pub fn macos_system_paths() -> Vec<FsRule> {
    rules(MACOS_READ, MACOS_READ_WRITE)
}

fn rules(read: &[&str], read_write: &[&str]) -> Vec<FsRule> {
    read.iter()
        .map(FsRule::read)
        .chain(read_write.iter().map(FsRule::read_write))
        .collect()
}

/// True when `rule` is exactly one of the current platform's [`system_paths`], which may be
/// missing on a given machine without that being an error.
pub(crate) fn is_system_path(rule: &FsRule) -> bool {
    system_paths().iter().any(|s| s.path == rule.path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::FsAccess;
    use std::path::Path;

    fn access_of(rules: &[FsRule], path: &str) -> Option<FsAccess> {
        rules
            .iter()
            .find(|r| r.path == Path::new(path))
            .map(|r| r.access)
    }

    #[test]
    fn linux_paths_cover_binaries_libraries_and_config_read_only() {
        let rules = linux_system_paths();
        for path in ["/usr", "/bin", "/lib", "/etc", "/proc", "/dev/urandom"] {
            assert_eq!(access_of(&rules, path), Some(FsAccess::Read), "{path}");
        }
    }

    #[test]
    fn only_device_nodes_are_writable() {
        for rule in linux_system_paths()
            .iter()
            .chain(macos_system_paths().iter())
        {
            if rule.access == FsAccess::ReadWrite {
                assert!(rule.path.starts_with("/dev"), "{:?}", rule.path);
            }
        }
        assert_eq!(
            access_of(&linux_system_paths(), "/dev/null"),
            Some(FsAccess::ReadWrite)
        );
    }

    #[test]
    fn no_home_or_tmp_in_system_paths() {
        for rule in linux_system_paths()
            .iter()
            .chain(macos_system_paths().iter())
        {
            for forbidden in [
                "/home",
                "/root",
                "/tmp",
                "/Users",
                "/private/tmp",
                "/var/run",
            ] {
                assert!(!rule.path.starts_with(forbidden), "{:?}", rule.path);
            }
        }
    }

    #[test]
    fn all_paths_absolute() {
        for rule in linux_system_paths()
            .iter()
            .chain(macos_system_paths().iter())
        {
            assert!(rule.path.is_absolute());
        }
    }
}
