//! What was actually enforced, per mechanism, so the CLI can refuse or warn honestly.

/// Whether one mechanism enforces what the policy asked of it.
///
/// "Full" is relative to the policy: a mechanism the policy asked nothing of (for example the
/// network under [`crate::NetPolicy::Unrestricted`]) is `Full`, since nothing is missing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Enforcement {
    /// Everything the policy asked for is enforced by the kernel.
    Full,
    /// Enforced, with the gap described (for example rights an old Landlock ABI cannot express).
    Partial(String),
    /// Not enforced at all, with the reason.
    NotEnforced(String),
}

impl Enforcement {
    /// True only for [`Enforcement::Full`].
    pub fn is_full(&self) -> bool {
        matches!(self, Enforcement::Full)
    }
}

/// Per-mechanism status of a prepared sandbox, in the spirit of rust-landlock's
/// `RestrictionStatus`.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct EnforcementReport {
    /// The Landlock ABI the ruleset was built for (the kernel's, or a lower simulated one).
    pub landlock_abi: u8,
    /// Filesystem confinement (Landlock).
    pub filesystem: Enforcement,
    /// Network confinement (Landlock TCP port rules and seccomp socket filtering).
    pub network: Enforcement,
    /// Signal and abstract-UNIX-socket scoping (Landlock ABI 6), which keeps the child from
    /// signalling the supervisor or reaching abstract sockets outside the sandbox.
    pub ipc: Enforcement,
    /// The seccomp filter against kernel-attack-surface and escape syscalls.
    pub seccomp: Enforcement,
    /// Things the user must see, most importantly an opted-in insecure mode.
    pub warnings: Vec<String>,
}

impl EnforcementReport {
    /// True when every mechanism is [`Enforcement::Full`].
    pub fn is_fully_enforced(&self) -> bool {
        self.filesystem.is_full()
            && self.network.is_full()
            && self.ipc.is_full()
            && self.seccomp.is_full()
    }
}
