"""nono_py: nono's filtering proxy and kernel sandbox, from Python.

Everything is implemented by the nono Rust crates; see __init__.pyi for the API.
"""

from ._native import (
    AccessMode,
    CapabilitySet,
    ExecResult,
    ExternalProxyConfig,
    InjectMode,
    ProxyConfig,
    ProxyHandle,
    RouteConfig,
    SandboxError,
    is_supported,
    load_profile,
    sandboxed_exec,
    shutdown_all,
    start_proxy,
    support_info,
)

__all__ = [
    "AccessMode",
    "CapabilitySet",
    "ExecResult",
    "ExternalProxyConfig",
    "InjectMode",
    "ProxyConfig",
    "ProxyHandle",
    "RouteConfig",
    "SandboxError",
    "is_supported",
    "load_profile",
    "sandboxed_exec",
    "shutdown_all",
    "start_proxy",
    "support_info",
]
