//! Linux enforcement: Landlock ruleset, seccomp BPF, and the fork/exec of the confined child.

mod child;
mod connect_gate;
mod init;
mod landlock;
mod netns;
mod rootfs;
mod seccomp;

use std::os::fd::OwnedFd;

pub(crate) use child::spawn;
pub use child::{Containment, Killer, SandboxedChild};
pub use netns::{NetnsOutcome, PrivateNetwork};

use crate::error::SandboxError;
use crate::plan::Plan;
use crate::support::{is_wsl_release, KernelSupport};

/// `LANDLOCK_CREATE_RULESET_VERSION`: ask for the ABI version instead of creating a ruleset.
const LANDLOCK_CREATE_RULESET_VERSION: libc::c_uint = 1;

/// Kernel objects built before fork, so the child only issues raw system calls.
pub(crate) struct Prepared {
    /// The populated Landlock ruleset for the next child. Each child adds rules for the fresh
    /// objects of its own root, so a ruleset serves one child only; later ones get a new one.
    ruleset: std::sync::Mutex<Option<OwnedFd>>,
    /// The plan the ruleset is (re)built from.
    pub(crate) plan: Plan,
    /// Access masks for the Landlock rules a child adds itself.
    pub(crate) masks: rootfs::AccessMasks,
    /// Bind the host's `/tmp` when granted instead of a private one.
    pub(crate) share_tmp: bool,
    /// seccomp programs, loaded in order.
    pub(crate) filters: Vec<Vec<libc::sock_filter>>,
    /// Extra programs for fallback containment (no PID and mount namespaces), compiled the
    /// first time a child needs them: most never do.
    pub(crate) fallback_filters: std::sync::OnceLock<Vec<Vec<libc::sock_filter>>>,
    /// The program that hands `connect` to the supervisor, loaded last with a listener.
    pub(crate) gate_filter: Vec<libc::sock_filter>,
    /// What the supervisor lets `connect` reach.
    pub(crate) gate: std::sync::Arc<connect_gate::GatePolicy>,
}

impl std::fmt::Debug for Prepared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Prepared")
            .field("plan", &self.plan)
            .field(
                "filters",
                &self.filters.iter().map(Vec::len).collect::<Vec<_>>(),
            )
            .field("gate", &self.gate)
            .finish()
    }
}

impl Prepared {
    /// The fallback containment's seccomp programs.
    pub(crate) fn fallback_filters(&self) -> Result<&[Vec<libc::sock_filter>], SandboxError> {
        if let Some(f) = self.fallback_filters.get() {
            return Ok(f);
        }
        let compiled = seccomp::compile_fallback()?;
        Ok(self.fallback_filters.get_or_init(|| compiled))
    }

    /// A Landlock ruleset for one child: the one built at prepare time, then fresh ones.
    pub(crate) fn take_ruleset(&self) -> Result<OwnedFd, SandboxError> {
        let first = self.ruleset.lock().ok().and_then(|mut r| r.take());
        match first {
            Some(fd) => Ok(fd),
            None => landlock::build_ruleset(&self.plan),
        }
    }
}

fn build(plan: &Plan, share_tmp: bool) -> Result<Prepared, SandboxError> {
    let gate = connect_gate::GatePolicy::from_plan(plan);
    Ok(Prepared {
        ruleset: std::sync::Mutex::new(Some(landlock::build_ruleset(plan)?)),
        plan: plan.clone(),
        masks: landlock::access_masks(plan.abi),
        share_tmp,
        filters: seccomp::compile(plan.sockets)?,
        fallback_filters: std::sync::OnceLock::new(),
        gate_filter: connect_gate::notify_filter(gate.gates_accept()),
        gate: std::sync::Arc::new(gate),
    })
}

pub(crate) fn detect_real() -> KernelSupport {
    // SAFETY: with a NULL attribute pointer, size 0 and the VERSION flag the call only returns
    // the ABI number (or an error); it reads no memory and creates no descriptor.
    let abi = unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            std::ptr::null::<libc::c_void>(),
            0usize,
            LANDLOCK_CREATE_RULESET_VERSION,
        )
    };
    let landlock_abi = u8::try_from(abi).ok().filter(|&v| v >= 1);

    let action: u32 = libc::SECCOMP_RET_ERRNO;
    // SAFETY: SECCOMP_GET_ACTION_AVAIL reads one u32 from the pointer, which points to a live
    // local; it changes nothing.
    let seccomp = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_GET_ACTION_AVAIL,
            0u32,
            &action as *const u32,
        )
    } == 0;

    let wsl2 = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|r| is_wsl_release(&r))
        .unwrap_or(false);

    KernelSupport {
        landlock_abi,
        simulated: false,
        wsl2,
        seccomp,
    }
}

/// Plans and builds the kernel objects for `policy`.
pub(crate) fn prepare(
    policy: &crate::SandboxPolicy,
    support: &KernelSupport,
) -> Result<(crate::EnforcementReport, Prepared), SandboxError> {
    let plan = crate::plan::plan(policy, support)?;
    let prepared = build(&plan, policy.share_tmp)?;
    Ok((plan.report, prepared))
}
