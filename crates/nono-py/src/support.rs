//! Kernel support and profiles: `is_supported`, `support_info`, `load_profile`.

use std::path::Path;

use nono_policy::{NetworkMode, PolicyArgs};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::caps::CapabilitySet;
use crate::errors::value_error;
use crate::proxy_config::{options, ProxyConfig};

/// Whether this kernel can build a sandbox at all (Landlock present).
#[pyfunction]
pub fn is_supported() -> bool {
    cfg!(target_os = "linux") && nono_sandbox::detect().landlock_abi.is_some()
}

/// What the kernel offers: `landlock_abi` (int or None), `landlock_abi_simulated`,
/// `seccomp`, `wsl2`, `proxy_enforceable` (Landlock ABI 4: TCP port rules),
/// `user_namespaces` (the kernel allows unprivileged ones; whether a sandbox got its
/// namespaces is `ExecResult.containment`) and `platform`.
#[pyfunction]
pub fn support_info(py: Python<'_>) -> PyResult<Bound<'_, PyDict>> {
    let s = nono_sandbox::detect();
    let d = PyDict::new(py);
    d.set_item("platform", std::env::consts::OS)?;
    d.set_item("landlock_abi", s.landlock_abi)?;
    d.set_item("landlock_abi_simulated", s.simulated)?;
    d.set_item(
        "proxy_enforceable",
        s.landlock_abi
            .is_some_and(|a| a >= nono_sandbox::LANDLOCK_ABI_NET),
    )?;
    d.set_item("seccomp", s.seccomp)?;
    d.set_item("wsl2", s.wsl2)?;
    d.set_item("user_namespaces", user_namespaces())?;
    Ok(d)
}

/// The kernel's own settings for unprivileged user namespaces (`None` when unreadable).
/// nono-sandbox does not report namespace support before a child is spawned.
fn user_namespaces() -> Option<bool> {
    let read = |p: &str| {
        std::fs::read_to_string(Path::new(p))
            .ok()
            .and_then(|s| s.trim().parse::<u64>().ok())
    };
    let max = read("/proc/sys/user/max_user_namespaces")?;
    // Debian and Ubuntu kernels may switch them off for unprivileged users.
    let unprivileged = read("/proc/sys/kernel/unprivileged_userns_clone").unwrap_or(1);
    Some(max > 0 && unprivileged != 0)
}

/// Resolves a profile (a name or a path) as `nono run --profile` does, into the sandbox's
/// capabilities and the proxy's configuration (`None` when the profile's network does not
/// go through the proxy). In proxy mode, call `caps.proxy_only(proxy.port)` once the proxy
/// runs.
#[pyfunction]
pub fn load_profile(name_or_path: &str) -> PyResult<(CapabilitySet, Option<ProxyConfig>)> {
    let env = nono_policy::Env::from_process().map_err(|e| value_error(&e))?;
    let args = PolicyArgs {
        profile: Some(name_or_path.to_string()),
        ..Default::default()
    };
    let resolved = nono_policy::resolve(&args, &env).map_err(|e| value_error(&e))?;
    nono_policy::check_ca_key_unreadable(&resolved).map_err(|e| value_error(&e))?;
    let proxied = resolved.network.mode == NetworkMode::Proxy;
    // Port 0 stands for the proxy not started yet; sandboxed_exec refuses it.
    let policy = nono_policy::sandbox_policy(&resolved, proxied.then_some(0));
    let proxy = if proxied {
        let opts = options(
            std::net::Ipv4Addr::LOCALHOST.into(),
            0,
            nono_proxy::config::DEFAULT_MAX_CONNECTIONS,
            None,
        );
        let config = nono_policy::proxy_config(&resolved.network, opts)
            .map_err(|e| PyValueError::new_err(crate::errors::chain(&e)))?;
        Some(ProxyConfig::from_ready(config))
    } else {
        None
    };
    // As `nono run` does before the run: the tool's own state, and its cache variables.
    nono_policy::create_state(&resolved.filesystem).map_err(|e| value_error(&e))?;
    let env = resolved
        .filesystem
        .path_env
        .iter()
        .map(|(k, v)| (k.clone(), v.display().to_string()))
        .collect();
    Ok((CapabilitySet::from_policy(policy).with_env(env), proxy))
}
