//! Platforms without a spawn implementation: every operation is a clear error.

use crate::error::SandboxError;
use crate::exec::{ChildExit, ExecSpec};
use crate::report::EnforcementReport;
use crate::support::KernelSupport;
use crate::{PreparedSandbox, SandboxPolicy};

fn unsupported() -> SandboxError {
    SandboxError::UnsupportedPlatform {
        os: std::env::consts::OS,
    }
}

/// Nothing to hold where nothing can be enforced.
#[derive(Debug)]
pub(crate) struct Prepared;

pub(crate) fn detect_real() -> KernelSupport {
    KernelSupport::NONE
}

pub(crate) fn prepare(
    _policy: &SandboxPolicy,
    _support: &KernelSupport,
) -> Result<(EnforcementReport, Prepared), SandboxError> {
    Err(unsupported())
}

pub(crate) fn spawn(
    _prepared: &PreparedSandbox,
    _spec: &ExecSpec,
    _net: Option<&()>,
) -> Result<SandboxedChild, SandboxError> {
    Err(unsupported())
}

/// A sandboxed child; cannot be created on this platform.
#[derive(Debug)]
pub struct SandboxedChild {
    _private: (),
}

impl SandboxedChild {
    /// The child's process id.
    pub fn pid(&self) -> i32 {
        0
    }

    /// Lets the child go on to exec.
    pub fn release(&mut self) -> Result<(), SandboxError> {
        Err(unsupported())
    }

    /// Blocks until the program has started.
    pub fn wait_for_exec(&mut self) -> Result<(), SandboxError> {
        Err(unsupported())
    }

    /// Waits for the child to end.
    pub fn wait(&mut self) -> Result<ChildExit, SandboxError> {
        Err(unsupported())
    }

    /// Sends a signal to the child.
    pub fn signal(&self, _signal: i32) -> Result<(), SandboxError> {
        Err(unsupported())
    }

    /// A handle that would kill the sandbox.
    pub fn killer(&self) -> Killer {
        Killer { _private: () }
    }
}

/// Kills a sandbox; cannot be created on this platform.
#[derive(Clone, Debug)]
pub struct Killer {
    _private: (),
}

impl Killer {
    /// Kills the whole sandbox.
    pub fn kill(&self) -> Result<(), SandboxError> {
        Err(unsupported())
    }
}
