//! Starting `nono proxy` pinned to its own CPU and reading its startup line.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use base64::Engine as _;

/// How long the proxy may take to print its JSON line.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(10);

/// A running proxy; killed on drop.
pub struct Proxy {
    /// Listening port from the startup JSON.
    pub port: u16,
    /// `Basic base64(nono:TOKEN)`, or empty if the proxy printed no token.
    pub auth: String,
    /// Where the proxy's stderr goes.
    pub log_path: PathBuf,
    /// The whole startup JSON line (`ca_cert`, `trust_bundle`, ...).
    pub startup: serde_json::Value,
    child: Child,
}

impl Proxy {
    /// Runs `taskset -c CPU NONO proxy --json --allow-domain 127.0.0.1 --port 0 EXTRA...`.
    ///
    /// `taskset` execs the proxy, so the child's pid is the proxy's pid.
    pub fn start(nono: &Path, cpu: Option<usize>, label: &str, extra: &[String]) -> Result<Proxy> {
        Proxy::start_with_env(nono, cpu, label, extra, &[])
    }

    /// [`Proxy::start`] with `env` added to the proxy's environment.
    pub fn start_with_env(
        nono: &Path,
        cpu: Option<usize>,
        label: &str,
        extra: &[String],
        env: &[(&str, &str)],
    ) -> Result<Proxy> {
        let log_path =
            std::env::temp_dir().join(format!("nono-bench-{}-{label}.log", std::process::id()));
        let log = std::fs::File::create(&log_path)
            .with_context(|| format!("create {}", log_path.display()))?;
        let proxy_args = [
            "proxy",
            "--json",
            "--allow-domain",
            "127.0.0.1",
            "--port",
            "0",
        ];
        let mut command = match cpu {
            Some(cpu) => {
                let mut c = Command::new("taskset");
                c.arg("-c").arg(cpu.to_string()).arg(nono);
                c
            }
            None => Command::new(nono),
        };
        let mut child = command
            .args(proxy_args)
            .args(extra)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .with_context(|| {
                format!(
                    "spawn {} proxy (via taskset: {})",
                    nono.display(),
                    cpu.is_some()
                )
            })?;
        let stdout = child.stdout.take().context("proxy stdout")?;
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut reader = BufReader::new(stdout);
            let mut line = String::new();
            let _ = reader.read_line(&mut line);
            let _ = tx.send(line);
            // Drain the rest so the proxy never blocks on a full pipe.
            let _ = std::io::copy(&mut reader, &mut std::io::sink());
        });
        let line = match rx.recv_timeout(STARTUP_TIMEOUT) {
            Ok(line) => line,
            Err(_) => {
                let _ = child.kill();
                bail!(
                    "proxy printed nothing within {STARTUP_TIMEOUT:?}; log: {}",
                    log_path.display()
                );
            }
        };
        let parsed = parse_startup(&line);
        let (port, token, startup) = match parsed {
            Ok(v) => v,
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                let log = std::fs::read_to_string(&log_path).unwrap_or_default();
                return Err(e.context(format!("proxy stderr:\n{log}")));
            }
        };
        let auth = token
            .map(|t| {
                let encoded = base64::engine::general_purpose::STANDARD.encode(format!("nono:{t}"));
                format!("Basic {encoded}")
            })
            .unwrap_or_default();
        Ok(Proxy {
            port,
            auth,
            log_path,
            startup,
            child,
        })
    }

    /// The proxy's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Reads `port` and `token` from the proxy's first stdout line; returns them and the JSON.
fn parse_startup(line: &str) -> Result<(u16, Option<String>, serde_json::Value)> {
    if line.trim().is_empty() {
        bail!("proxy exited without printing its JSON line");
    }
    let json: serde_json::Value = serde_json::from_str(line.trim())
        .with_context(|| format!("proxy's first line is not JSON: {line:?}"))?;
    let port = json["port"]
        .as_u64()
        .and_then(|p| u16::try_from(p).ok())
        .with_context(|| format!("no numeric `port` in {json}"))?;
    let token = json["token"].as_str().map(str::to_string);
    Ok((port, token, json))
}
