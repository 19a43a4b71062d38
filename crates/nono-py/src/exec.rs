//! `sandboxed_exec`: runs a command confined as `nono run` confines it (see `spawn_child` in
//! nono-cli's `cmd_run.rs`), with its output captured and an optional timeout.

use std::ffi::OsString;
use std::io::Read;
use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::sync::mpsc::RecvTimeoutError;
use std::time::Duration;

use nono_sandbox::{ExecSpec, FsRule, NetPolicy, SandboxPolicy, Stdio};
use pyo3::exceptions::{PyFileNotFoundError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict};

use crate::caps::CapabilitySet;
use crate::errors::{sandbox_error, SandboxError};
use crate::proxy_handle::{running_on, ProxyInner};

/// Exit code reported when the timeout killed the sandbox (as `timeout(1)` reports it).
const TIMEOUT_EXIT_CODE: i32 = 124;

/// How a sandboxed command ended and what it printed.
#[pyclass(frozen, module = "nono_py")]
pub struct ExecResult {
    stdout: Vec<u8>,
    stderr: Vec<u8>,
    #[pyo3(get)]
    exit_code: i32,
    /// Whether the timeout killed it.
    #[pyo3(get)]
    timed_out: bool,
    /// Which containment held the command (namespaces or the fallback), as `nono run`
    /// prints it.
    #[pyo3(get)]
    containment: String,
}

#[pymethods]
impl ExecResult {
    #[getter]
    fn stdout<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, &self.stdout)
    }

    #[getter]
    fn stderr<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, &self.stderr)
    }

    fn __repr__(&self) -> String {
        // Output may hold anything the command printed; the repr gives sizes only.
        format!(
            "ExecResult(exit_code={}, stdout=<{} bytes>, stderr=<{} bytes>, timed_out={})",
            self.exit_code,
            self.stdout.len(),
            self.stderr.len(),
            if self.timed_out { "True" } else { "False" }
        )
    }
}

/// What the exec needs, extracted from Python before the GIL is released.
struct Request {
    policy: SandboxPolicy,
    argv: Vec<OsString>,
    cwd: Option<PathBuf>,
    timeout: Option<Duration>,
    env: Vec<(String, String)>,
    inherit_env: bool,
}

/// Runs `command` in the sandbox `caps` describes and returns its output and exit code.
///
/// `env` (a dict or a list of `(name, value)` pairs) is the child's whole environment unless
/// `inherit_env` is true; then it is added to this process's environment, whose proxy
/// variables and `env://` credential variables are left out, as `nono run` does. `PATH` is
/// not added: the program is looked up on `env`'s `PATH`, else on
/// `/usr/local/bin:/usr/bin:/bin`. Standard input is `/dev/null`.
#[pyfunction]
#[pyo3(signature = (caps, command, cwd=None, timeout_secs=None, env=None, inherit_env=false))]
pub fn sandboxed_exec(
    py: Python<'_>,
    caps: &CapabilitySet,
    command: Vec<String>,
    cwd: Option<PathBuf>,
    timeout_secs: Option<f64>,
    env: Option<&Bound<'_, PyAny>>,
    inherit_env: bool,
) -> PyResult<ExecResult> {
    if command.is_empty() {
        return Err(PyValueError::new_err(
            "sandboxed_exec: command is empty; give the program and its arguments, e.g. [\"ls\", \"-l\"]",
        ));
    }
    let timeout = match timeout_secs {
        None => None,
        // try_: a value too large for a Duration is refused, never a panic (which would
        // abort the interpreter).
        Some(t) if t.is_finite() && t > 0.0 => Some(Duration::try_from_secs_f64(t).map_err(|_| {
            PyValueError::new_err(format!(
                "sandboxed_exec: timeout_secs `{t}` is too large; give at most a few years in seconds"
            ))
        })?),
        Some(t) => {
            return Err(PyValueError::new_err(format!(
                "sandboxed_exec: timeout_secs `{t}` must be a positive number of seconds"
            )))
        }
    };
    let cwd = cwd
        .map(|c| {
            std::fs::canonicalize(&c).map_err(|e| {
                PyFileNotFoundError::new_err(format!(
                    "sandboxed_exec: working directory `{}`: {e}",
                    c.display()
                ))
            })
        })
        .transpose()?;
    let req = Request {
        policy: caps.policy().clone(),
        argv: command.into_iter().map(OsString::from).collect(),
        cwd,
        timeout,
        env: {
            // The profile's variables first, so the caller's own `env` wins.
            let mut all = caps.env().to_vec();
            all.extend(env.map(env_pairs).transpose()?.unwrap_or_default());
            all
        },
        inherit_env,
    };
    py.allow_threads(move || run(req))
}

/// `{"K": "V"}` or `[("K", "V"), ...]`.
fn env_pairs(env: &Bound<'_, PyAny>) -> PyResult<Vec<(String, String)>> {
    let pairs: Vec<(String, String)> = match env.downcast::<PyDict>() {
        Ok(d) => d
            .iter()
            .map(|(k, v)| Ok((k.extract()?, v.extract()?)))
            .collect::<PyResult<_>>()?,
        Err(_) => env.extract().map_err(|_| {
            PyValueError::new_err(
                "sandboxed_exec: env must be a dict or a list of (name, value) string pairs",
            )
        })?,
    };
    if let Some((k, _)) = pairs
        .iter()
        .find(|(k, _)| k.is_empty() || k.contains('=') || k.contains('\0'))
    {
        return Err(PyValueError::new_err(format!(
            "sandboxed_exec: `{k}` is not an environment variable name"
        )));
    }
    Ok(pairs)
}

/// Everything after the arguments are checked; runs without the GIL.
fn run(req: Request) -> PyResult<ExecResult> {
    let mut policy = req.policy;
    // The proxy of this process that the policy names, if any: it serves the child's
    // namespace listener, and its trust bundle must be readable.
    let proxy = match &policy.net {
        NetPolicy::ProxyOnly { proxy_port: 0, .. } => {
            return Err(PyValueError::new_err(
                "sandboxed_exec: the profile's network goes through the proxy; start it and call caps.proxy_only(proxy.port) first",
            ))
        }
        NetPolicy::ProxyOnly { proxy_port, .. } => running_on(*proxy_port),
        _ => None,
    };
    if let Some(dir) = proxy.as_ref().and_then(|p| p.bundle_dir()) {
        policy.fs.push(FsRule::read(dir.clone()));
    }
    let parent: Vec<(OsString, OsString)> = if req.inherit_env {
        let mut secrets = crate::proxy_handle::all_credential_vars();
        if let Some(p) = &proxy {
            secrets.extend(p.secret_vars().iter().cloned());
        }
        std::env::vars_os()
            .filter(|(k, _)| !secrets.iter().any(|s| k.as_os_str() == s.as_str()))
            .collect()
    } else {
        Vec::new()
    };
    let env = nono_proxy::env::child_env(parent, &req.env);
    let prepared = nono_sandbox::prepare(&policy).map_err(|e| sandbox_error(&e))?;
    let path_var = env
        .iter()
        .find(|(k, _)| k == "PATH")
        .map(|(_, v)| v.clone());
    let program = nono_sandbox::resolve_program(&req.argv[0], path_var.as_deref())
        .map_err(|e| sandbox_error(&e))?;
    let (out_read, out_write) = pipe()?;
    let (err_read, err_write) = pipe()?;
    let stdin = std::fs::File::open("/dev/null")
        .map(OwnedFd::from)
        .map_err(|e| SandboxError::new_err(format!("opening /dev/null: {e}")))?;
    let spec = ExecSpec {
        program,
        argv: req.argv,
        env,
        cwd: req.cwd,
        stdio: Stdio {
            stdin: Some(stdin),
            stdout: Some(out_write),
            stderr: Some(err_write),
        },
    };
    let mut child = spawn(&prepared, &spec, &policy.net, proxy.as_deref())?;
    // The write ends live only in the child now, so the readers see EOF when it ends.
    drop(spec);
    drop(prepared);
    let stdout = reader(out_read)?;
    let stderr = reader(err_read)?;
    let containment = containment(&child);
    let killer = child.killer();
    let (done, expired) = std::sync::mpsc::channel::<()>();
    let timer = req
        .timeout
        .map(|limit| {
            std::thread::Builder::new()
                .name("nono-timeout".into())
                .spawn(move || match expired.recv_timeout(limit) {
                    Err(RecvTimeoutError::Timeout) => killer.kill().is_ok(),
                    _ => false,
                })
        })
        .transpose()
        .map_err(|e| SandboxError::new_err(format!("starting the timeout thread: {e}")))?;
    let started = child.release().and_then(|()| child.wait_for_exec());
    let exit = started.and_then(|()| child.wait());
    drop(done);
    let timed_out = timer.is_some_and(|t| t.join().unwrap_or(false));
    let stdout = stdout.join().unwrap_or_default();
    let stderr = stderr.join().unwrap_or_default();
    let exit = exit.map_err(|e| sandbox_error(&e))?;
    Ok(ExecResult {
        stdout,
        stderr,
        exit_code: if timed_out {
            TIMEOUT_EXIT_CODE
        } else {
            exit.shell_status()
        },
        timed_out,
        containment,
    })
}

/// Forks the child as `nono run` does: in a private network namespace (loopback only) when
/// the policy needs no address but this process's proxy, or none at all; the proxy then
/// also serves the listener the child bound there.
fn spawn(
    prepared: &nono_sandbox::PreparedSandbox,
    spec: &ExecSpec,
    net: &NetPolicy,
    proxy: Option<&ProxyInner>,
) -> PyResult<nono_sandbox::SandboxedChild> {
    let private = match (net, proxy) {
        (
            NetPolicy::ProxyOnly {
                proxy_port,
                connect_ports,
                local_ports,
                bind_ports,
                ..
            },
            Some(_),
        ) if connect_ports.is_empty() && local_ports.is_empty() && bind_ports.is_empty() => {
            Some(Some(*proxy_port))
        }
        (
            NetPolicy::Blocked {
                connect_ports,
                bind_ports,
            },
            _,
        ) if connect_ports.is_empty() && bind_ports.is_empty() => Some(None),
        _ => None,
    };
    #[cfg(target_os = "linux")]
    if let Some(listener_port) = private {
        let net = nono_sandbox::PrivateNetwork {
            loopback_listener_port: listener_port,
        };
        let mut child =
            nono_sandbox::spawn_isolated(prepared, spec, &net).map_err(|e| sandbox_error(&e))?;
        // Unavailable: the shared namespace, as `nono run` falls back to; a child that died
        // during set-up is reported by wait_for_exec.
        if let Some(nono_sandbox::NetnsOutcome::Isolated {
            listener: Some(l), ..
        }) = child.take_network_isolation()
        {
            if let Some(p) = proxy {
                p.add_listener(l).map_err(SandboxError::new_err)?;
            }
        }
        return Ok(child);
    }
    let _ = (private, proxy);
    nono_sandbox::spawn(prepared, spec).map_err(|e| sandbox_error(&e))
}

#[cfg(target_os = "linux")]
fn containment(child: &nono_sandbox::SandboxedChild) -> String {
    child.containment().to_string()
}

#[cfg(not(target_os = "linux"))]
fn containment(_child: &nono_sandbox::SandboxedChild) -> String {
    String::new()
}

fn pipe() -> PyResult<(OwnedFd, OwnedFd)> {
    nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
        .map_err(|e| SandboxError::new_err(format!("creating an output pipe: {e}")))
}

/// Reads a pipe to its end on a thread of its own, so neither stream can fill and block.
fn reader(fd: OwnedFd) -> PyResult<std::thread::JoinHandle<Vec<u8>>> {
    std::thread::Builder::new()
        .name("nono-output".into())
        .spawn(move || {
            let mut buf = Vec::new();
            let _ = std::fs::File::from(fd).read_to_end(&mut buf);
            buf
        })
        .map_err(|e| SandboxError::new_err(format!("starting an output reader: {e}")))
}
