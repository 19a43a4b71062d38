//! A running proxy: `nono_proxy::start` on a thread of its own with a current-thread tokio
//! runtime (as `nono run` uses), so serving never needs the GIL. The Python side talks to it
//! over a channel; dropping the channel's sender is the shutdown request.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::thread::JoinHandle;
use std::time::Duration;

use nono_proxy::audit::{AuditLog, Decision, Mode};
use pyo3::exceptions::{PyOSError, PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};
use tokio::sync::mpsc;
use zeroize::Zeroizing;

use crate::errors::chain;
use crate::proxy_config::ProxyConfig;

/// How long the runtime waits for its blocking tasks (name lookups, credential commands)
/// after the proxy has shut down.
const RUNTIME_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(2);

/// A request to the proxy thread.
enum Command {
    /// Serve this listener too (one bound in a sandbox's network namespace).
    AddListener(
        std::net::TcpListener,
        std::sync::mpsc::Sender<Result<(), String>>,
    ),
}

/// What the proxy thread reports once listening.
struct Started {
    port: u16,
    env: Vec<(String, Zeroizing<String>)>,
    route_env: Vec<(String, Zeroizing<String>)>,
    audit: Arc<AuditLog>,
    bundle_dir: Option<PathBuf>,
}

/// Why the proxy did not start: a refused configuration or an OS failure.
enum StartError {
    Config(String),
    Os(String),
}

/// The state shared by the Python handle and the registry.
pub struct ProxyInner {
    port: u16,
    env: Vec<(String, Zeroizing<String>)>,
    route_env: Vec<(String, Zeroizing<String>)>,
    audit: Arc<AuditLog>,
    /// The interception trust bundle's directory, which a sandboxed client must read.
    bundle_dir: Option<PathBuf>,
    /// Variables that `env://` credentials are read from; a child must not inherit them.
    secret_vars: Vec<String>,
    commands: Mutex<Option<mpsc::UnboundedSender<Command>>>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl ProxyInner {
    /// The trust bundle directory, when something is intercepted.
    pub fn bundle_dir(&self) -> Option<&PathBuf> {
        self.bundle_dir.as_ref()
    }

    /// Variables holding `env://` credentials.
    pub fn secret_vars(&self) -> &[String] {
        &self.secret_vars
    }

    fn running(&self) -> bool {
        self.commands.lock().is_ok_and(|c| c.is_some())
    }

    /// Serves `listener` with this proxy's policy and token.
    pub fn add_listener(&self, listener: std::net::TcpListener) -> Result<(), String> {
        let (tx, rx) = std::sync::mpsc::channel();
        let sent = match self.commands.lock() {
            Ok(guard) => guard
                .as_ref()
                .is_some_and(|c| c.send(Command::AddListener(listener, tx)).is_ok()),
            Err(_) => false,
        };
        if !sent {
            return Err(format!("the proxy on port {} has shut down", self.port));
        }
        rx.recv()
            .unwrap_or_else(|_| Err(format!("the proxy on port {} has stopped", self.port)))
    }

    /// Stops the proxy and waits for its thread; later calls do nothing.
    fn shutdown(&self) {
        // Dropping the sender ends the command loop, which shuts the proxy down.
        if let Ok(mut c) = self.commands.lock() {
            c.take();
        }
        let thread = self.thread.lock().ok().and_then(|mut t| t.take());
        if let Some(t) = thread {
            let _ = t.join();
        }
        if let Ok(mut reg) = registry().lock() {
            if reg
                .get(&self.port)
                .is_some_and(|w| std::ptr::eq(w.as_ptr(), self))
            {
                reg.remove(&self.port);
            }
        }
    }
}

impl Drop for ProxyInner {
    fn drop(&mut self) {
        // Asks the thread to stop without waiting: this may run with the GIL held, and the
        // thread ends by itself within the shutdown grace period.
        if let Ok(mut c) = self.commands.lock() {
            c.take();
        }
    }
}

/// Every variable an `env://` credential of any proxy this process started was read from,
/// for the life of the process: an inherited environment never carries one into a sandbox,
/// whichever proxy (if any) the sandbox uses.
fn credential_vars() -> &'static Mutex<std::collections::BTreeSet<String>> {
    static VARS: OnceLock<Mutex<std::collections::BTreeSet<String>>> = OnceLock::new();
    VARS.get_or_init(|| Mutex::new(std::collections::BTreeSet::new()))
}

/// The variables of [`credential_vars`].
pub fn all_credential_vars() -> Vec<String> {
    credential_vars()
        .lock()
        .map(|v| v.iter().cloned().collect())
        .unwrap_or_default()
}

/// Running proxies by port, so `sandboxed_exec` can hand a listener bound in the child's
/// network namespace to the proxy that `CapabilitySet.proxy_only(port)` names.
fn registry() -> &'static Mutex<HashMap<u16, Weak<ProxyInner>>> {
    static REGISTRY: OnceLock<Mutex<HashMap<u16, Weak<ProxyInner>>>> = OnceLock::new();
    REGISTRY.get_or_init(|| Mutex::new(HashMap::new()))
}

/// The running proxy started by this process on `port`, if any.
pub fn running_on(port: u16) -> Option<Arc<ProxyInner>> {
    let reg = registry().lock().ok()?;
    reg.get(&port)
        .and_then(Weak::upgrade)
        .filter(|p| p.running())
}

/// A running proxy, returned by `start_proxy`.
#[pyclass(frozen, module = "nono_py")]
pub struct ProxyHandle {
    inner: Arc<ProxyInner>,
}

#[pymethods]
impl ProxyHandle {
    /// The port the proxy listens on.
    #[getter]
    fn port(&self) -> u16 {
        self.inner.port
    }

    /// Whether the proxy is still serving.
    #[getter]
    fn running(&self) -> bool {
        self.inner.running()
    }

    /// `HTTP_PROXY`, `HTTPS_PROXY`, `NO_PROXY`, `NONO_PROXY_TOKEN`, their twins, and the CA
    /// variables when something is intercepted.
    fn env_vars(&self) -> HashMap<String, String> {
        as_map(&self.inner.env)
    }

    /// Per credential route: `<NAME>_BASE_URL` and the phantom token in its `env_var`.
    fn credential_env_vars(&self) -> HashMap<String, String> {
        as_map(&self.inner.route_env)
    }

    /// Takes the audit events recorded so far.
    fn drain_audit_events<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let list = PyList::empty(py);
        for ev in self.inner.audit.drain() {
            let d = PyDict::new(py);
            d.set_item("timestamp_unix_ms", ev.timestamp_unix_ms)?;
            d.set_item("mode", mode_name(ev.mode))?;
            d.set_item(
                "decision",
                match ev.decision {
                    Decision::Allow => "allow",
                    Decision::Deny => "deny",
                },
            )?;
            d.set_item("target", ev.target)?;
            d.set_item("port", ev.port)?;
            d.set_item("method", ev.method)?;
            d.set_item("path", ev.path)?;
            d.set_item("status", ev.status)?;
            d.set_item("reason", ev.reason)?;
            list.append(d)?;
        }
        Ok(list)
    }

    /// Stops the proxy (open connections get up to 5 s); calling it again does nothing.
    fn shutdown(&self, py: Python<'_>) {
        let inner = self.inner.clone();
        py.allow_threads(move || inner.shutdown());
    }

    fn __enter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    #[pyo3(signature = (*_args))]
    fn __exit__(&self, py: Python<'_>, _args: &Bound<'_, pyo3::types::PyTuple>) -> bool {
        self.shutdown(py);
        false
    }

    fn __repr__(&self) -> String {
        format!(
            "ProxyHandle(port={}, running={})",
            self.inner.port,
            if self.inner.running() {
                "True"
            } else {
                "False"
            }
        )
    }
}

fn as_map(vars: &[(String, Zeroizing<String>)]) -> HashMap<String, String> {
    vars.iter()
        .map(|(k, v)| (k.clone(), v.as_str().to_string()))
        .collect()
}

fn mode_name(m: Mode) -> &'static str {
    match m {
        Mode::Connect => "connect",
        Mode::Forward => "forward",
        Mode::Reverse => "reverse",
        Mode::Intercept => "intercept",
    }
}

/// Starts the proxy; `ValueError` for a configuration it refuses, `OSError` when it cannot
/// listen.
#[pyfunction]
pub fn start_proxy(py: Python<'_>, config: &ProxyConfig) -> PyResult<ProxyHandle> {
    let config = config.for_start();
    let secret_vars: Vec<String> = config
        .routes
        .iter()
        .filter_map(|r| match &r.source {
            nono_proxy::CredentialSource::Env { var } => Some(var.clone()),
            _ => None,
        })
        .collect();
    if let Ok(mut all) = credential_vars().lock() {
        all.extend(secret_vars.iter().cloned());
    }
    let (inner, started) = py.allow_threads(move || spawn_proxy(config))?;
    let inner = Arc::new(ProxyInner {
        port: started.port,
        env: started.env,
        route_env: started.route_env,
        audit: started.audit,
        bundle_dir: started.bundle_dir,
        secret_vars,
        commands: Mutex::new(Some(inner.0)),
        thread: Mutex::new(Some(inner.1)),
    });
    if let Ok(mut reg) = registry().lock() {
        reg.insert(inner.port, Arc::downgrade(&inner));
    }
    Ok(ProxyHandle { inner })
}

type Channel = (mpsc::UnboundedSender<Command>, JoinHandle<()>);

fn spawn_proxy(config: nono_proxy::ProxyConfig) -> PyResult<(Channel, Started)> {
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let (cmd_tx, cmd_rx) = mpsc::unbounded_channel();
    let thread = std::thread::Builder::new()
        .name("nono-proxy".into())
        .spawn(move || serve(config, cmd_rx, ready_tx))
        .map_err(|e| PyOSError::new_err(format!("starting the proxy thread: {e}")))?;
    match ready_rx.recv() {
        Ok(Ok(started)) => Ok(((cmd_tx, thread), started)),
        Ok(Err(e)) => {
            let _ = thread.join();
            Err(match e {
                StartError::Config(m) => PyValueError::new_err(m),
                StartError::Os(m) => PyOSError::new_err(m),
            })
        }
        Err(_) => {
            let _ = thread.join();
            Err(PyRuntimeError::new_err(
                "the proxy thread ended during start-up",
            ))
        }
    }
}

/// The proxy thread: start, report, serve commands until the sender is dropped, shut down.
fn serve(
    config: nono_proxy::ProxyConfig,
    mut commands: mpsc::UnboundedReceiver<Command>,
    ready: std::sync::mpsc::Sender<Result<Started, StartError>>,
) {
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            let _ = ready.send(Err(StartError::Os(format!(
                "starting the async runtime: {e}"
            ))));
            return;
        }
    };
    rt.block_on(async move {
        let handle = match nono_proxy::start(config).await {
            Ok(h) => h,
            Err(e) => {
                let err = match e {
                    nono_proxy::ProxyError::Bind { .. } | nono_proxy::ProxyError::Io { .. } => {
                        StartError::Os(chain(&e))
                    }
                    _ => StartError::Config(chain(&e)),
                };
                let _ = ready.send(Err(err));
                return;
            }
        };
        let zeroized = |v: Vec<(String, String)>| {
            v.into_iter()
                .map(|(k, v)| (k, Zeroizing::new(v)))
                .collect::<Vec<_>>()
        };
        let started = Started {
            port: handle.port(),
            env: zeroized(handle.env_vars()),
            route_env: zeroized(handle.route_env()),
            audit: handle.audit().clone(),
            bundle_dir: handle.trust_bundle_dir().map(|p| p.to_path_buf()),
        };
        if ready.send(Ok(started)).is_ok() {
            while let Some(cmd) = commands.recv().await {
                match cmd {
                    Command::AddListener(listener, reply) => {
                        let _ = reply.send(handle.add_listener(listener).map_err(|e| chain(&e)));
                    }
                }
            }
        }
        handle.shutdown().await;
    });
    rt.shutdown_timeout(RUNTIME_SHUTDOWN_TIMEOUT);
}

/// Shuts down every proxy this process started (registered with `atexit`).
#[pyfunction]
pub fn shutdown_all(py: Python<'_>) {
    let live: Vec<Arc<ProxyInner>> = match registry().lock() {
        Ok(reg) => reg.values().filter_map(Weak::upgrade).collect(),
        Err(_) => Vec::new(),
    };
    py.allow_threads(move || {
        for p in live {
            p.shutdown();
        }
    });
}
