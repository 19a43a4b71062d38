//! `CapabilitySet`: what a sandboxed command may touch, a `nono_sandbox::SandboxPolicy`
//! that starts from the system paths every program needs, as `nono run`'s does.

use std::path::{Path, PathBuf};

use nono_sandbox::{FsAccess, FsRule, NetPolicy, SandboxPolicy};
use pyo3::exceptions::{PyFileNotFoundError, PyValueError};
use pyo3::prelude::*;

/// Read-only or read-write access beneath a path.
#[pyclass(eq, eq_int, frozen, hash, module = "nono_py")]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AccessMode {
    /// Read, list and execute.
    #[pyo3(name = "READ")]
    Read,
    /// Also create, write, rename and delete.
    #[pyo3(name = "READ_WRITE")]
    ReadWrite,
}

/// Filesystem grants and the network mode of a sandbox.
#[pyclass(module = "nono_py")]
#[derive(Clone, Debug)]
pub struct CapabilitySet {
    policy: SandboxPolicy,
    /// `allow_open_port` ports, kept across network-mode changes.
    open_ports: Vec<u16>,
    /// Variables a profile sets in the child (`filesystem.path_env`: tools' caches).
    env: Vec<(String, String)>,
}

#[pymethods]
impl CapabilitySet {
    #[new]
    fn new() -> CapabilitySet {
        CapabilitySet {
            policy: SandboxPolicy {
                fs: nono_sandbox::system_paths(),
                net: NetPolicy::Unrestricted,
                allow_insecure_proxy: false,
                share_tmp: false,
            },
            open_ports: Vec::new(),
            env: Vec::new(),
        }
    }

    /// Grants `mode` access to the directory `path` and everything beneath it.
    fn allow_path(&mut self, path: PathBuf, mode: AccessMode) -> PyResult<()> {
        let p = existing(&path)?;
        if !p.is_dir() {
            return Err(PyValueError::new_err(format!(
                "allow_path: `{}` is not a directory; use allow_file for a file",
                path.display()
            )));
        }
        self.grant(p, mode);
        Ok(())
    }

    /// Grants `mode` access to the single file `path`.
    fn allow_file(&mut self, path: PathBuf, mode: AccessMode) -> PyResult<()> {
        let p = existing(&path)?;
        if p.is_dir() {
            return Err(PyValueError::new_err(format!(
                "allow_file: `{}` is a directory; use allow_path for a directory",
                path.display()
            )));
        }
        self.grant(p, mode);
        Ok(())
    }

    /// No network: no TCP connect or bind except `allow_open_port` ports, no UDP.
    fn block_network(&mut self) {
        self.policy.net = NetPolicy::Blocked {
            connect_ports: self.open_ports.clone(),
            bind_ports: self.open_ports.clone(),
        };
    }

    /// Network only through the proxy on `127.0.0.1:port` (and `allow_open_port` ports).
    fn proxy_only(&mut self, port: i64) -> PyResult<()> {
        let port = match u16::try_from(port) {
            Ok(p) if p != 0 => p,
            _ => {
                return Err(PyValueError::new_err(format!(
                    "proxy_only: `{port}` is not a port from 1 to 65535"
                )))
            }
        };
        // A profile's ProxyOnly keeps its direct and open ports; only the proxy is set.
        self.policy.net = match std::mem::replace(&mut self.policy.net, NetPolicy::Unrestricted) {
            NetPolicy::ProxyOnly {
                connect_ports,
                local_ports,
                bind_ports,
                allow_udp,
                ..
            } => NetPolicy::ProxyOnly {
                proxy_port: port,
                connect_ports,
                local_ports,
                bind_ports,
                allow_udp,
            },
            _ => NetPolicy::ProxyOnly {
                proxy_port: port,
                connect_ports: Vec::new(),
                local_ports: self.open_ports.clone(),
                bind_ports: self.open_ports.clone(),
                allow_udp: false,
            },
        };
        Ok(())
    }

    /// Allows TCP connect (on loopback) and bind on `port`, e.g. for IPC between sandboxes.
    fn allow_open_port(&mut self, port: i64) -> PyResult<()> {
        let port = match u16::try_from(port) {
            Ok(p) if p != 0 => p,
            _ => {
                return Err(PyValueError::new_err(format!(
                    "allow_open_port: `{port}` is not a port from 1 to 65535"
                )))
            }
        };
        if !self.open_ports.contains(&port) {
            self.open_ports.push(port);
        }
        match &mut self.policy.net {
            NetPolicy::Unrestricted => {}
            NetPolicy::ProxyOnly {
                local_ports,
                bind_ports,
                ..
            } => {
                add(local_ports, port);
                add(bind_ports, port);
            }
            NetPolicy::Blocked {
                connect_ports,
                bind_ports,
            } => {
                add(connect_ports, port);
                add(bind_ports, port);
            }
        }
        Ok(())
    }

    /// The filesystem grants: `(path, AccessMode)`, system paths included.
    #[getter]
    fn fs_rules(&self) -> Vec<(PathBuf, AccessMode)> {
        self.policy
            .fs
            .iter()
            .map(|r| {
                let mode = match r.access {
                    FsAccess::Read => AccessMode::Read,
                    FsAccess::ReadWrite => AccessMode::ReadWrite,
                };
                (r.path.clone(), mode)
            })
            .collect()
    }

    /// `"unrestricted"`, `"blocked"` or `"proxy_only"`.
    #[getter]
    fn network(&self) -> &'static str {
        net_name(&self.policy.net)
    }

    fn __repr__(&self) -> String {
        let net = match &self.policy.net {
            NetPolicy::ProxyOnly { proxy_port, .. } => {
                format!("'proxy_only', proxy_port={proxy_port}")
            }
            other => format!("'{}'", net_name(other)),
        };
        format!(
            "CapabilitySet(fs_rules={}, network={net}, open_ports={:?})",
            self.policy.fs.len(),
            self.open_ports
        )
    }
}

impl CapabilitySet {
    /// Wraps a policy resolved from a profile.
    pub fn from_policy(policy: SandboxPolicy) -> CapabilitySet {
        CapabilitySet {
            policy,
            open_ports: Vec::new(),
            env: Vec::new(),
        }
    }

    /// The policy to enforce.
    /// A profile's variables for the child.
    pub fn with_env(mut self, env: Vec<(String, String)>) -> CapabilitySet {
        self.env = env;
        self
    }

    /// The profile's variables for the child; the caller's `env` is applied after them.
    pub fn env(&self) -> &[(String, String)] {
        &self.env
    }

    pub fn policy(&self) -> &SandboxPolicy {
        &self.policy
    }

    fn grant(&mut self, path: PathBuf, mode: AccessMode) {
        self.policy.fs.push(match mode {
            AccessMode::Read => FsRule::read(path),
            AccessMode::ReadWrite => FsRule::read_write(path),
        });
    }
}

fn net_name(n: &NetPolicy) -> &'static str {
    match n {
        NetPolicy::Unrestricted => "unrestricted",
        NetPolicy::Blocked { .. } => "blocked",
        NetPolicy::ProxyOnly { .. } => "proxy_only",
    }
}

fn add(ports: &mut Vec<u16>, port: u16) {
    if !ports.contains(&port) {
        ports.push(port);
    }
}

/// The canonical path (as the policy resolver grants them); a missing path is refused now
/// rather than when the sandbox is built.
fn existing(path: &Path) -> PyResult<PathBuf> {
    std::fs::canonicalize(path).map_err(|e| {
        PyFileNotFoundError::new_err(format!("cannot grant `{}`: {e}", path.display()))
    })
}
