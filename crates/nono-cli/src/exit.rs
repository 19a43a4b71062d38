//! Exit codes of nono itself, chosen so they cannot be confused with the child's.
//!
//! | code | meaning |
//! |------|---------|
//! | 2    | usage error: a flag or profile was refused before anything started |
//! | 125  | `nono run`: nono failed (sandbox could not be enforced, proxy failed, ...) |
//! | 126  | `nono run`: the command exists but cannot be executed |
//! | 127  | `nono run`: the command was not found |
//! | 1    | `nono proxy` and other commands: a runtime failure |
//!
//! Otherwise `nono run` exits with the child's code, or 128+N when signal N killed it.

/// Usage errors.
pub const EXIT_USAGE: i32 = 2;
/// Runtime failure outside `nono run`.
pub const EXIT_FAILURE: i32 = 1;
/// `nono run`: nono's own failure.
pub const EXIT_NONO_FAILED: i32 = 125;

/// An error with the exit code it maps to.
#[derive(Debug)]
pub struct Failure {
    /// Exit code.
    pub code: i32,
    /// What went wrong, with causes.
    pub error: anyhow::Error,
}

impl Failure {
    /// A usage error (exit 2).
    pub fn usage(msg: impl Into<String>) -> Failure {
        Failure {
            code: EXIT_USAGE,
            error: anyhow::anyhow!(msg.into()),
        }
    }

    /// A runtime failure (exit 1).
    pub fn runtime(error: impl Into<anyhow::Error>) -> Failure {
        Failure {
            code: EXIT_FAILURE,
            error: error.into(),
        }
    }

    /// Any error with an explicit code.
    pub fn with_code(code: i32, error: impl Into<anyhow::Error>) -> Failure {
        Failure {
            code,
            error: error.into(),
        }
    }
}
