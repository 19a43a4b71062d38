//! Kernel confinement for nono: the sandbox a supervised AI coding agent runs in.
//!
//! The CLI resolves a [`SandboxPolicy`] (filesystem grants plus a [`NetPolicy`]), calls
//! [`prepare`] to build every kernel object up front, then [`spawn`] to fork a child that
//! waits until [`SandboxedChild::release`], confines itself and executes the program.
//! [`PreparedSandbox::report`] says honestly, per mechanism, what is enforced; the sandbox
//! fails closed when the kernel cannot enforce what the policy asks.
//!
//! Modules, one per concern:
//! - `policy`: the resolved policy types ([`FsRule`], [`NetPolicy`], [`SandboxPolicy`]).
//! - `paths`: [`system_paths`], the read-only system locations programs need.
//! - `support`: [`detect`] of the Landlock ABI, seccomp and WSL2 ([`KernelSupport`]).
//! - `plan`: pure decisions: the Landlock rule list, fail-closed network logic, the report.
//! - `seccomp`: the pure seccomp deny table ([`seccomp_rules`]).
//! - `seatbelt`: the pure macOS Seatbelt profile text ([`seatbelt_profile`]).
//! - `exec`: [`ExecSpec`] (with its [`Stdio`]), [`ChildExit`] and `execvp`-style
//!   [`resolve_program`].
//! - `report`: [`EnforcementReport`] and [`Enforcement`].
//! - `error`: [`SandboxError`].
//! - `linux` (Linux only): Landlock ruleset and seccomp BPF construction, fork/exec of the
//!   child, `netns`: the optional private network namespace ([`spawn_isolated`]), and
//!   `connect_gate`: the supervisor thread that performs the child's `connect`/`accept` calls
//!   (pathname UNIX sockets and addresses, which Landlock cannot restrict).
//! - `seatbelt_exec`: the `sandbox-exec` command line for a profile (pure); `macos` (macOS
//!   only): starting the child under it; `fallback`: the clear error elsewhere.

#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs)]

mod error;
mod exec;
mod paths;
mod plan;
mod policy;
mod report;
mod rootfs;
mod seatbelt;
mod seccomp;
mod support;

#[cfg(target_os = "linux")]
mod linux;
#[cfg(target_os = "linux")]
use linux as imp;

mod seatbelt_exec;

#[cfg(target_os = "macos")]
mod macos;
#[cfg(target_os = "macos")]
use macos as imp;

#[cfg(not(any(target_os = "linux", target_os = "macos")))]
mod fallback;
#[cfg(not(any(target_os = "linux", target_os = "macos")))]
use fallback as imp;

pub use error::{ChildStage, SandboxError};
#[cfg(unix)]
pub use exec::{resolve_program, Stdio};
pub use exec::{ChildExit, ExecSpec, DEFAULT_PATH};
pub use imp::{Killer, SandboxedChild};
#[cfg(target_os = "linux")]
pub use linux::{Containment, NetnsOutcome, PrivateNetwork};
pub use paths::{linux_system_paths, macos_system_paths, system_paths};
pub use plan::{plan, Plan, PlannedFsRule, PlannedNet, LANDLOCK_ABI_NET, LANDLOCK_ABI_SCOPE};
pub use policy::{FsAccess, FsRule, NetPolicy, SandboxPolicy};
pub use report::{Enforcement, EnforcementReport};
pub use rootfs::{root_plan, EntryKind, FreshRule, MountOp, RootEntry, RootOptions, RootPlan};
pub use seatbelt::{scheme_string, seatbelt_profile};
pub use seatbelt_exec::{sandbox_exec_args, SANDBOX_EXEC};
pub use seccomp::{
    fallback_rules, seccomp_rules, ArgCmp, ArgCond, DenyErrno, SocketFilter, Syscall, SyscallRule,
};
pub use support::{detect, KernelSupport, TEST_LANDLOCK_ABI_ENV, TEST_NO_NAMESPACES_ENV};

/// Everything built before fork: the Landlock ruleset descriptor and seccomp programs on
/// Linux, plus the report of what they enforce. Reusable for several children.
#[derive(Debug)]
pub struct PreparedSandbox {
    report: EnforcementReport,
    inner: imp::Prepared,
}

impl PreparedSandbox {
    /// What this sandbox enforces, per mechanism, with warnings the user must see.
    pub fn report(&self) -> &EnforcementReport {
        &self.report
    }
}

/// Builds the sandbox for `policy` against the running kernel ([`detect`]).
///
/// Fails closed: no Landlock, proxy mode without Landlock ABI 4 (unless
/// [`SandboxPolicy::allow_insecure_proxy`]), allowed ports under `Blocked` without ABI 4, a
/// granted path that does not exist: each is an error saying what to change.
pub fn prepare(policy: &SandboxPolicy) -> Result<PreparedSandbox, SandboxError> {
    prepare_with(policy, &detect())
}

/// Like [`prepare`], with kernel support given by the caller (for example to log [`detect`]'s
/// result first). Claiming more than the kernel has makes ruleset creation fail.
pub fn prepare_with(
    policy: &SandboxPolicy,
    support: &KernelSupport,
) -> Result<PreparedSandbox, SandboxError> {
    let (report, inner) = imp::prepare(policy, support)?;
    Ok(PreparedSandbox { report, inner })
}

/// Forks a child that will run `spec` inside `prepared` once released.
///
/// The caller may have other threads: between fork and exec the child only makes raw system
/// calls, and signals stay blocked in the calling thread around the fork so no handler of the
/// caller's runs in the child. The child stays in the caller's process group so interactive
/// programs keep the terminal, inherits only descriptors 0-2 (or [`ExecSpec::stdio`]), starts
/// in [`ExecSpec::cwd`] when given, and runs with exactly `spec.env`. Stop it from any thread
/// with [`SandboxedChild::killer`].
///
/// On Linux it also dies with the calling *thread* (`PR_SET_PDEATHSIG` follows the thread
/// that forked, not the process): call this from a thread that outlives the child, such as
/// the main thread or a dedicated long-lived one, never from a short-lived worker. It gets
/// default signal handling, and the calling process becomes a child subreaper
/// (`PR_SET_CHILD_SUBREAPER`, process-wide and permanent): orphaned descendants of *any* of
/// its children are re-parented to it and must be reaped by it. On macOS the child starts at
/// [`SandboxedChild::release`], under `sandbox-exec`.
pub fn spawn(prepared: &PreparedSandbox, spec: &ExecSpec) -> Result<SandboxedChild, SandboxError> {
    imp::spawn(prepared, spec, None)
}

/// Like [`spawn`], and the child first enters a private network namespace with only
/// loopback (see [`PrivateNetwork`]); the result is in
/// [`SandboxedChild::take_network_isolation`]. This is on top of Landlock and seccomp, which
/// stay in force: it closes what port-based rules cannot (addresses, `listen()` autobind).
#[cfg(target_os = "linux")]
pub fn spawn_isolated(
    prepared: &PreparedSandbox,
    spec: &ExecSpec,
    net: &PrivateNetwork,
) -> Result<SandboxedChild, SandboxError> {
    imp::spawn(prepared, spec, Some(net))
}
