//! `nono doctor`: what this kernel offers nono, and what is missing with how to get it.

use clap::Args;
use serde_json::json;

use crate::exit::Failure;

/// Flags of `nono doctor`.
#[derive(Debug, Args)]
pub struct DoctorArgs {
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

/// A number from a `/proc/sys` file, when it exists.
fn sysctl(path: &str) -> Option<u64> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// Prints the report; exits 0 when `nono run` can enforce everything, 1 otherwise.
pub fn run(args: DoctorArgs) -> Result<i32, Failure> {
    let k = nono_sandbox::detect();
    let userns_max = sysctl("/proc/sys/user/max_user_namespaces");
    // Debian's switch; absent elsewhere (then only the count decides).
    let userns_unprivileged = sysctl("/proc/sys/kernel/unprivileged_userns_clone");
    let root = nix::unistd::geteuid().is_root();
    let userns = userns_max.is_some_and(|n| n > 0) && (root || userns_unprivileged != Some(0));
    let net_rules = k
        .landlock_abi
        .is_some_and(|a| a >= nono_sandbox::LANDLOCK_ABI_NET);
    let complete = k.landlock_abi.is_some() && k.seccomp && net_rules && !k.wsl2;
    if args.json {
        let obj = json!({
            "version": crate::VERSION,
            "landlock_abi": k.landlock_abi,
            "landlock_abi_simulated": k.simulated,
            "landlock_tcp_rules": net_rules,
            "seccomp": k.seccomp,
            "user_namespaces": userns,
            "root": root,
            "wsl2": k.wsl2,
            "complete": complete,
        });
        println!("{obj}");
        return Ok(if complete { 0 } else { 1 });
    }
    println!("nono {}", crate::VERSION);
    let landlock = match k.landlock_abi {
        Some(a) if net_rules => format!("ABI {a} (filesystem and TCP rules)"),
        Some(a) => format!(
            "ABI {a}: filesystem only; TCP rules need ABI {} (Linux 6.7+), so proxy-only networking is refused",
            nono_sandbox::LANDLOCK_ABI_NET
        ),
        None => "unavailable: nono run refuses to start; enable it (CONFIG_SECURITY_LANDLOCK, `lsm=landlock,...` on the kernel command line)".to_string(),
    };
    println!(
        "  Landlock:        {landlock}{}",
        if k.simulated {
            " (lowered by NONO_TEST_LANDLOCK_ABI)"
        } else {
            ""
        }
    );
    println!(
        "  seccomp:         {}",
        if k.seccomp {
            "available"
        } else {
            "unavailable: nono run refuses to start (CONFIG_SECCOMP_FILTER)"
        }
    );
    let ns = if root {
        "available (running as root)".to_string()
    } else if userns {
        "available to unprivileged users".to_string()
    } else {
        "unavailable to this user: nono falls back to Landlock and seccomp alone (no private root, PID or network namespace); enable with `sysctl user.max_user_namespaces=15000` (and `kernel.unprivileged_userns_clone=1` on Debian)".to_string()
    };
    println!("  user namespaces: {ns}");
    if k.wsl2 {
        println!("  WSL2:            yes: the kernel cannot enforce proxy-only networking here (see security.wsl2_proxy_policy)");
    }
    Ok(if complete { 0 } else { 1 })
}
