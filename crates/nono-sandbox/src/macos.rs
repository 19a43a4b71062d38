//! macOS: applying a Seatbelt profile to the calling process with `sandbox_init`.
//!
//! Spawning under Seatbelt is not wired up yet (see `fallback`); this is the primitive the
//! child will call after fork, with the profile text built before fork.

use std::ffi::{c_char, c_int, CStr};

use crate::error::SandboxError;

// Declared in <sandbox.h>; deprecated but still the documented way to apply an SBPL profile
// (what sandbox-exec does). Flags 0 means `profile` is profile text.
extern "C" {
    fn sandbox_init(profile: *const c_char, flags: u64, errorbuf: *mut *mut c_char) -> c_int;
    fn sandbox_free_error(errorbuf: *mut c_char);
}

/// Confines the calling process with `profile` (text from [`crate::seatbelt_profile`]).
#[allow(dead_code)]
pub(crate) fn apply_profile(profile: &CStr) -> Result<(), SandboxError> {
    let mut error: *mut c_char = std::ptr::null_mut();
    // SAFETY: `profile` is NUL-terminated and outlives the call; `error` is a valid out
    // pointer that sandbox_init sets to NULL or to a string we free below.
    let rc = unsafe { sandbox_init(profile.as_ptr(), 0, &mut error) };
    if rc == 0 {
        return Ok(());
    }
    let detail = if error.is_null() {
        String::from("unknown error")
    } else {
        // SAFETY: on failure sandbox_init stores a NUL-terminated message in `error`, which
        // stays valid until sandbox_free_error; we copy it out first.
        unsafe {
            let text = CStr::from_ptr(error).to_string_lossy().into_owned();
            sandbox_free_error(error);
            text
        }
    };
    Err(SandboxError::InvalidExecSpec {
        what: "Seatbelt profile",
        detail,
    })
}
