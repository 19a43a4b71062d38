//! What the running kernel offers: Landlock ABI, seccomp, and whether this is WSL2.

/// Name of the test-only environment variable that simulates a lower Landlock ABI.
///
/// `NONO_TEST_LANDLOCK_ABI=N` makes [`detect`] report `min(N, real ABI)` and set
/// [`KernelSupport::simulated`]; `0` simulates a kernel without Landlock. It can only lower the
/// ABI, never raise it, so it cannot weaken anything the kernel would enforce beyond what an
/// older kernel would. A value that does not parse as a number simulates no Landlock at all
/// (failing closed rather than silently ignoring a typo).
pub const TEST_LANDLOCK_ABI_ENV: &str = "NONO_TEST_LANDLOCK_ABI";

/// Testing only: `NONO_TEST_NO_NAMESPACES=1` makes the sandbox skip its PID and mount
/// namespaces, as if the kernel refused them, so the fallback containment can be tested on a
/// machine that has them. It can only weaken the first wall, never widen a grant, and the
/// summary line then says "fallback".
pub const TEST_NO_NAMESPACES_ENV: &str = "NONO_TEST_NO_NAMESPACES";

/// Kernel features relevant to confinement, as found by [`detect`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KernelSupport {
    /// Highest usable Landlock ABI version, `None` when Landlock is unavailable.
    pub landlock_abi: Option<u8>,
    /// `landlock_abi` was lowered by [`TEST_LANDLOCK_ABI_ENV`].
    pub simulated: bool,
    /// Running under WSL2 (from `/proc/sys/kernel/osrelease`).
    pub wsl2: bool,
    /// seccomp filter mode (`SECCOMP_RET_ERRNO` actions) is available.
    pub seccomp: bool,
}

impl KernelSupport {
    /// A kernel with none of the Linux mechanisms (other platforms).
    #[cfg_attr(target_os = "linux", allow(dead_code))]
    pub(crate) const NONE: KernelSupport = KernelSupport {
        landlock_abi: None,
        simulated: false,
        wsl2: false,
        seccomp: false,
    };
}

/// Detects kernel support for confinement.
///
/// On Linux the Landlock ABI comes from `landlock_create_ruleset(NULL, 0,
/// LANDLOCK_CREATE_RULESET_VERSION)`, WSL2 from `/proc/sys/kernel/osrelease` containing
/// "microsoft" (never from environment variables, which the user's shell controls), seccomp from
/// `SECCOMP_GET_ACTION_AVAIL`. The only environment input is the test knob
/// [`TEST_LANDLOCK_ABI_ENV`] (`NONO_TEST_LANDLOCK_ABI=N`), which can only lower the ABI.
/// On other platforms everything reads as unsupported.
pub fn detect() -> KernelSupport {
    let real = crate::imp::detect_real();
    let knob = std::env::var_os(TEST_LANDLOCK_ABI_ENV);
    apply_simulation(
        real,
        knob.as_deref().map(|v| v.to_string_lossy()).as_deref(),
    )
}

/// Applies the [`TEST_LANDLOCK_ABI_ENV`] value (if any) to really detected support.
pub(crate) fn apply_simulation(real: KernelSupport, knob: Option<&str>) -> KernelSupport {
    let Some(value) = knob else {
        return real;
    };
    let wanted = value.trim().parse::<u8>().unwrap_or(0);
    let lowered = match real.landlock_abi {
        Some(abi) if wanted >= 1 => Some(abi.min(wanted)),
        _ => None,
    };
    KernelSupport {
        landlock_abi: lowered,
        simulated: true,
        ..real
    }
}

/// True when a kernel release string names Microsoft's WSL kernel.
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
pub(crate) fn is_wsl_release(osrelease: &str) -> bool {
    osrelease.to_ascii_lowercase().contains("microsoft")
}

#[cfg(test)]
mod tests {
    use super::*;

    const REAL: KernelSupport = KernelSupport {
        landlock_abi: Some(7),
        simulated: false,
        wsl2: false,
        seccomp: true,
    };

    #[test]
    fn simulation_only_lowers() {
        assert_eq!(apply_simulation(REAL, Some("3")).landlock_abi, Some(3));
        assert_eq!(apply_simulation(REAL, Some("9")).landlock_abi, Some(7));
        assert!(apply_simulation(REAL, Some("9")).simulated);
        assert_eq!(apply_simulation(REAL, None), REAL);
    }

    #[test]
    fn simulation_zero_or_garbage_means_no_landlock() {
        assert_eq!(apply_simulation(REAL, Some("0")).landlock_abi, None);
        assert_eq!(apply_simulation(REAL, Some("four")).landlock_abi, None);
    }

    #[test]
    fn wsl_release_detection() {
        assert!(is_wsl_release("5.15.153.1-microsoft-standard-WSL2"));
        assert!(is_wsl_release("4.4.0-19041-Microsoft"));
        assert!(!is_wsl_release("6.8.0-45-generic"));
    }
}
