//! The crate's error type. Every message says what is missing and what to change.

use std::io;
use std::path::PathBuf;

/// A step the child performs between `fork` and `exec`, reported when it fails.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ChildStage {
    /// `prctl(PR_SET_PDEATHSIG)`.
    DeathSignal,
    /// Resetting the signal mask and dispositions.
    Signals,
    /// Marking inherited descriptors close-on-exec.
    CloseFds,
    /// `prctl(PR_SET_NO_NEW_PRIVS)`.
    NoNewPrivs,
    /// `landlock_restrict_self`.
    Landlock,
    /// Loading the seccomp filter.
    Seccomp,
    /// Dropping every capability (bounding, ambient, permitted, effective, inheritable).
    Capabilities,
    /// Setting up the private network namespace (loopback, proxy listener).
    Network,
    /// Loading the connect-gate filter and handing its listener to the supervisor.
    ConnectGate,
    /// Putting [`crate::ExecSpec::stdio`]'s descriptors on 0, 1 and 2.
    Stdio,
    /// An unknown stage code (should not happen).
    Unknown,
}

// The codes travel over the Linux child's report pipe.
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
impl ChildStage {
    pub(crate) fn code(self) -> u32 {
        match self {
            ChildStage::DeathSignal => 1,
            ChildStage::Signals => 2,
            ChildStage::CloseFds => 3,
            ChildStage::NoNewPrivs => 4,
            ChildStage::Landlock => 5,
            ChildStage::Seccomp => 6,
            ChildStage::Capabilities => 7,
            ChildStage::Network => 8,
            ChildStage::ConnectGate => 9,
            ChildStage::Stdio => 10,
            ChildStage::Unknown => 0,
        }
    }

    pub(crate) fn from_code(code: u32) -> Self {
        match code {
            1 => ChildStage::DeathSignal,
            2 => ChildStage::Signals,
            3 => ChildStage::CloseFds,
            4 => ChildStage::NoNewPrivs,
            5 => ChildStage::Landlock,
            6 => ChildStage::Seccomp,
            7 => ChildStage::Capabilities,
            8 => ChildStage::Network,
            9 => ChildStage::ConnectGate,
            10 => ChildStage::Stdio,
            _ => ChildStage::Unknown,
        }
    }
}

impl std::fmt::Display for ChildStage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ChildStage::DeathSignal => "set the parent-death signal",
            ChildStage::Signals => "reset signal handling",
            ChildStage::CloseFds => "close inherited file descriptors",
            ChildStage::NoNewPrivs => "set no_new_privs",
            ChildStage::Landlock => "apply the Landlock ruleset",
            ChildStage::Seccomp => "load the seccomp filter",
            ChildStage::Capabilities => "drop capabilities",
            ChildStage::Network => "set up the private network namespace",
            ChildStage::ConnectGate => {
                "load the connect gate (seccomp user notification, Linux 5.9+)"
            }
            ChildStage::Stdio => {
                "redirect its standard input, output or error (is each descriptor in \
                 ExecSpec::stdio open?)"
            }
            ChildStage::Unknown => "prepare for exec",
        })
    }
}

/// Everything that can go wrong preparing, spawning or waiting for a sandboxed child.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SandboxError {
    /// The kernel has no usable Landlock; filesystem confinement is mandatory.
    #[error(
        "Landlock is not available{sim}: nono requires it to confine the filesystem. \
         Use Linux 5.13+ built with CONFIG_SECURITY_LANDLOCK=y and \"landlock\" in the lsm= boot \
         parameter (check /sys/kernel/security/lsm)",
        sim = simulated_note(*simulated)
    )]
    LandlockUnavailable {
        /// The absence was simulated with `NONO_TEST_LANDLOCK_ABI`.
        simulated: bool,
    },

    /// Proxy mode needs Landlock TCP port rules, which the kernel lacks.
    #[error(
        "proxy mode needs Landlock ABI 4 (TCP port rules, Linux 6.7+) but this kernel has \
         Landlock ABI {found}{sim}; without it the sandboxed program could bypass the proxy. \
         Upgrade the kernel, use --block-net, or {hint}",
        sim = simulated_note(*simulated),
        hint = insecure_hint(*wsl2)
    )]
    ProxyNeedsLandlockNet {
        /// The Landlock ABI found.
        found: u8,
        /// Running under WSL2.
        wsl2: bool,
        /// The ABI was lowered with `NONO_TEST_LANDLOCK_ABI`.
        simulated: bool,
    },

    /// `Blocked` with open ports needs Landlock TCP port rules; seccomp alone can only block
    /// every TCP socket.
    #[error(
        "blocking the network while allowing TCP ports {ports:?} needs Landlock ABI 4 (TCP port \
         rules, Linux 6.7+) but this kernel has Landlock ABI {found}{sim}. Upgrade the kernel or \
         remove the allowed ports (the network is then blocked entirely by seccomp)",
        sim = simulated_note(*simulated)
    )]
    BlockedPortsNeedLandlockNet {
        /// The Landlock ABI found.
        found: u8,
        /// The ports that were asked for.
        ports: Vec<u16>,
        /// The ABI was lowered with `NONO_TEST_LANDLOCK_ABI`.
        simulated: bool,
    },

    /// seccomp filtering is unavailable.
    #[error(
        "seccomp filter mode is not available: use a kernel built with CONFIG_SECCOMP_FILTER=y \
         (and make sure no outer sandbox forbids seccomp(2))"
    )]
    SeccompUnavailable,

    /// No seccomp filter can be built for this CPU architecture.
    #[error("seccomp filters are only built for x86_64 and aarch64, not {arch}")]
    UnsupportedArch {
        /// The architecture of this build.
        arch: &'static str,
    },

    /// This platform has no kernel sandbox implementation.
    #[error(
        "sandboxing is not supported on {os}: nono supports Linux (Landlock) and macOS (Seatbelt)"
    )]
    UnsupportedPlatform {
        /// The operating system of this build.
        os: &'static str,
    },

    /// A path the user granted does not exist or cannot be opened.
    #[error("cannot grant access to {path}: {source}; create it or remove it from the policy")]
    GrantedPath {
        /// The path from the policy.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },

    /// Building the Landlock ruleset failed.
    #[cfg(target_os = "linux")]
    #[error("building the Landlock ruleset failed while {context}: {source}")]
    Landlock {
        /// What was being done.
        context: String,
        /// The landlock crate's error.
        #[source]
        source: landlock::RulesetError,
    },

    /// Compiling the seccomp filter failed.
    #[cfg(target_os = "linux")]
    #[error("compiling the seccomp filter failed: {source}")]
    SeccompCompile {
        /// The seccompiler error.
        #[source]
        source: seccompiler::BackendError,
    },

    /// The program could not be found on `PATH` (the CLI exits 127).
    #[error("{name}: command not found (searched PATH)")]
    ProgramNotFound {
        /// The name as given.
        name: String,
    },

    /// The program exists but is not an executable file (the CLI exits 126).
    #[error(
        "{path}: not executable; check its permissions (chmod +x) or that it is not a directory"
    )]
    ProgramNotExecutable {
        /// The path found.
        path: PathBuf,
    },

    /// An argument or environment entry cannot be passed to `execve`.
    #[error("invalid {what}: {detail}")]
    InvalidExecSpec {
        /// Which part of the [`crate::ExecSpec`].
        what: &'static str,
        /// Why.
        detail: String,
    },

    /// A system call in the supervisor failed while spawning or waiting.
    #[error("{operation} failed: {source}")]
    Os {
        /// The operation, for example "fork".
        operation: &'static str,
        /// The OS error.
        #[source]
        source: io::Error,
    },

    /// The child failed before exec while confining itself; it exited with status 125.
    #[error("the sandboxed child could not {stage}: {source}{hint}", hint = stage_hint(*stage))]
    ChildSetup {
        /// The step that failed.
        stage: ChildStage,
        /// The errno the child reported.
        #[source]
        source: io::Error,
    },

    /// Building the sandbox's namespaces or its new root failed (the child exited with 125).
    #[error(
        "the sandbox could not {step}: {source}; nono runs every command in a private root \
         (PID and mount namespaces); if this kernel or container forbids that, nono falls back \
         on its own only when the namespaces cannot be created at all"
    )]
    Containment {
        /// The step that failed, with its path.
        step: String,
        /// The errno the child reported.
        #[source]
        source: io::Error,
    },

    /// The program (or its `#!` interpreter) exists on the host but not in the sandbox's
    /// root, which shows only granted paths.
    #[error(
        "cannot execute {program} in the sandbox: it (or its interpreter) lies outside every \
         granted path, so the sandbox does not contain it; grant its directory read-only, \
         e.g. --read {dir}",
        dir = program.parent().unwrap_or(program).display()
    )]
    ExecOutsideGrants {
        /// The program as resolved on the host.
        program: PathBuf,
    },

    /// The command could not enter [`crate::ExecSpec::cwd`] (the child exited with 125).
    #[error(
        "cannot use {path} as the working directory in the sandbox: {source}; it must be an \
         existing directory beneath a granted path (the sandbox shows only granted paths), so \
         grant it (e.g. --read {path} or FsRule::read) or choose one that is",
        path = path.display()
    )]
    WorkingDirectory {
        /// The directory asked for.
        path: PathBuf,
        /// The errno of `chdir` or of opening it.
        #[source]
        source: io::Error,
    },

    /// `execve` of the program failed inside the sandbox.
    #[error(
        "cannot execute {program} in the sandbox: {source}; make sure it and its interpreter \
             and libraries are beneath a granted path"
    )]
    Exec {
        /// The resolved program path.
        program: PathBuf,
        /// The errno from `execve`.
        #[source]
        source: io::Error,
    },

    /// `release` or `wait` was called in the wrong order.
    #[error("sandboxed child misuse: {0}")]
    Usage(&'static str),
}

impl SandboxError {
    /// The shell-style exit status the CLI should use when starting the program failed:
    /// 127 for "not found", 126 for "found but not executable", `None` otherwise.
    pub fn exec_exit_code(&self) -> Option<i32> {
        match self {
            SandboxError::ProgramNotFound { .. } => Some(127),
            SandboxError::ProgramNotExecutable { .. } | SandboxError::ExecOutsideGrants { .. } => {
                Some(126)
            }
            SandboxError::Exec { source, .. } => match source.raw_os_error() {
                Some(libc::ENOENT) => Some(127),
                _ => Some(126),
            },
            _ => None,
        }
    }
}

fn simulated_note(simulated: bool) -> &'static str {
    if simulated {
        " (simulated with NONO_TEST_LANDLOCK_ABI)"
    } else {
        ""
    }
}

fn insecure_hint(wsl2: bool) -> &'static str {
    if wsl2 {
        "on WSL2, whose kernel lacks it, opt in to an unenforced proxy with \
         security.wsl2_proxy_policy = \"insecure_proxy\""
    } else {
        "opt in to an unenforced proxy with security.wsl2_proxy_policy = \"insecure_proxy\""
    }
}

fn stage_hint(stage: ChildStage) -> &'static str {
    match stage {
        ChildStage::Landlock => " (is Landlock disabled for this process by an outer sandbox?)",
        ChildStage::Seccomp => " (does an outer sandbox forbid seccomp filters?)",
        ChildStage::ConnectGate => {
            " (EBUSY means a seccomp supervisor already exists above nono: nono inside nono, or \
             a container runtime intercepting system calls)"
        }
        _ => "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proxy_error_names_feature_and_wsl_knob() {
        let e = SandboxError::ProxyNeedsLandlockNet {
            found: 3,
            wsl2: true,
            simulated: false,
        };
        let msg = e.to_string();
        assert!(
            msg.contains("Landlock ABI 4 (TCP port rules, Linux 6.7+)"),
            "{msg}"
        );
        assert!(msg.contains("ABI 3"), "{msg}");
        assert!(
            msg.contains("security.wsl2_proxy_policy = \"insecure_proxy\""),
            "{msg}"
        );
    }

    #[test]
    fn stage_codes_round_trip() {
        for stage in [
            ChildStage::DeathSignal,
            ChildStage::Signals,
            ChildStage::CloseFds,
            ChildStage::NoNewPrivs,
            ChildStage::Landlock,
            ChildStage::Seccomp,
            ChildStage::Capabilities,
            ChildStage::Network,
            ChildStage::ConnectGate,
            ChildStage::Stdio,
        ] {
            assert_eq!(ChildStage::from_code(stage.code()), stage);
        }
    }
}
