//! nono-py: Python bindings (`nono_py`) for nono's filtering proxy and kernel sandbox.
//!
//! Everything here wraps the workspace's crates; nothing is implemented a second time.
//! Modules:
//! - `proxy_config`: `InjectMode`, `RouteConfig`, `ExternalProxyConfig`, `ProxyConfig`, built
//!   into a `nono_proxy::ProxyConfig` through `nono_policy::proxy_config`, the function the
//!   CLI uses, so every check and message is the CLI's.
//! - `proxy_handle`: `start_proxy` and `ProxyHandle`: the proxy on its own thread with its
//!   own tokio runtime, the process-wide registry of running proxies (port → handle) and the
//!   shutdown of all of them at interpreter exit.
//! - `caps`: `AccessMode` and `CapabilitySet`, a wrapped `nono_sandbox::SandboxPolicy`.
//! - `exec`: `sandboxed_exec` and `ExecResult`: prepare, spawn (in a private network
//!   namespace when the policy allows one), release, wait, with captured output and timeout.
//! - `support`: `is_supported`, `support_info` and `load_profile`.
//! - `errors`: the Python exceptions and the rendering of error chains.
#![forbid(unsafe_code)]

mod caps;
mod errors;
mod exec;
mod proxy_config;
mod proxy_handle;
mod support;

use pyo3::prelude::*;

/// The native module; `nono_py/__init__.py` re-exports it.
#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add("SandboxError", py.get_type::<errors::SandboxError>())?;
    m.add_class::<proxy_config::InjectMode>()?;
    m.add_class::<proxy_config::RouteConfig>()?;
    m.add_class::<proxy_config::ExternalProxyConfig>()?;
    m.add_class::<proxy_config::ProxyConfig>()?;
    m.add_class::<proxy_handle::ProxyHandle>()?;
    m.add_function(wrap_pyfunction!(proxy_handle::start_proxy, m)?)?;
    m.add_function(wrap_pyfunction!(proxy_handle::shutdown_all, m)?)?;
    m.add_class::<caps::AccessMode>()?;
    m.add_class::<caps::CapabilitySet>()?;
    m.add_class::<exec::ExecResult>()?;
    m.add_function(wrap_pyfunction!(exec::sandboxed_exec, m)?)?;
    m.add_function(wrap_pyfunction!(support::is_supported, m)?)?;
    m.add_function(wrap_pyfunction!(support::support_info, m)?)?;
    m.add_function(wrap_pyfunction!(support::load_profile, m)?)?;
    // Proxies still running when the interpreter exits are shut down (their trust bundle
    // directories removed) rather than cut off mid-request by process exit.
    let shutdown = m.getattr("shutdown_all")?;
    py.import("atexit")?.call_method1("register", (shutdown,))?;
    Ok(())
}
