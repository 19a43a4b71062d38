//! How a program is started under a Seatbelt profile: `/usr/bin/sandbox-exec -p PROFILE --
//! PROGRAM ARGS...`. Pure, so it is tested on every platform.
//!
//! `sandbox-exec` applies the profile with `sandbox_init` in its own process and then execs the
//! program, so nothing that is not async-signal-safe runs between nono's `fork` and `exec`.

use std::ffi::OsString;

use crate::exec::ExecSpec;

/// The system's Seatbelt launcher.
pub const SANDBOX_EXEC: &str = "/usr/bin/sandbox-exec";

/// The argument vector (without argv\[0\]) that runs `spec` under `profile`.
pub fn sandbox_exec_args(profile: &str, spec: &ExecSpec) -> Vec<OsString> {
    let mut args = vec![
        OsString::from("-p"),
        OsString::from(profile),
        OsString::from("--"),
        spec.program.clone().into_os_string(),
    ];
    // argv[0] of the program is its path; the rest are its arguments.
    args.extend(spec.argv.iter().skip(1).cloned());
    args
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profile_then_program_then_arguments() {
        let spec = ExecSpec {
            program: "/usr/bin/env".into(),
            argv: vec!["env".into(), "-i".into(), "--".into()],
            env: vec![],
            ..Default::default()
        };
        let args = sandbox_exec_args("(version 1)", &spec);
        assert_eq!(
            args,
            ["-p", "(version 1)", "--", "/usr/bin/env", "-i", "--"]
                .iter()
                .map(OsString::from)
                .collect::<Vec<_>>()
        );
    }
}
