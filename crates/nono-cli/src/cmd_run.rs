//! `nono run`: start the proxy in-process, fork the command confined by the kernel, wait.
//!
//! Order matters: everything (policy, listener, proxy state, credentials, child environment,
//! Landlock ruleset, seccomp program) is prepared while the process is still single-threaded;
//! the proxy runs on a current-thread runtime, so forking after it is set up is safe. Only
//! after the fork do helper threads appear (the child's waiter, DNS lookups).

use std::ffi::OsString;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use nono_policy::{NetworkMode, PolicyArgs, ResolvedPolicy};
use nono_proxy::{AuthConfig, SessionToken};
use nono_sandbox::{ExecSpec, NetPolicy};

use zeroize::Zeroizing;

use crate::exit::{Failure, EXIT_NONO_FAILED};
use crate::netflags::NetFlags;
use crate::signals::handler;

/// Flags of `nono run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Grant read-write access to the current directory.
    #[arg(long)]
    pub allow_cwd: bool,
    /// Grant read-write access to a path (repeatable).
    #[arg(long, value_name = "PATH")]
    pub allow: Vec<PathBuf>,
    /// Grant read-only access to a path (repeatable).
    #[arg(long, value_name = "PATH")]
    pub read: Vec<PathBuf>,
    /// No network at all, except --open-port / --listen-port on localhost.
    #[arg(long)]
    pub block_net: bool,
    /// Port for the in-process proxy (default: chosen by the OS).
    #[arg(long, value_name = "N")]
    pub proxy_port: Option<u16>,
    /// Allow TCP connect and bind on this port (repeatable), e.g. IPC between two sandboxes.
    #[arg(long, value_name = "N")]
    pub open_port: Vec<u16>,
    /// Allow binding (listening on) this port (repeatable).
    #[arg(long, value_name = "N")]
    pub listen_port: Vec<u16>,
    /// Network policy flags shared with `nono proxy`.
    #[command(flatten)]
    pub net: NetFlags,
    /// Show each proxy decision (-v) and debug logs (-vv).
    #[arg(short, long, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Write nono's log lines (-v, -vv) to this file instead of stderr, so they do not draw
    /// over a terminal UI; the one-line denial hints stay on stderr.
    #[arg(long, value_name = "PATH")]
    pub log_file: Option<PathBuf>,
    /// Run with every host open that the deny list allows and write the hosts the command
    /// reached to FILE, as a profile extending the one in use.
    #[arg(long, value_name = "FILE")]
    pub learn: Option<PathBuf>,
    /// Print nothing about what is enforced; only errors.
    #[arg(short, long, conflicts_with = "verbose")]
    pub quiet: bool,
    /// The command and its arguments. Everything after the command is its own, flags
    /// included; an unknown option before it is a usage error (`--alow-cwd` never becomes
    /// the command), and a command starting with `-` goes after `--`.
    #[arg(required = true, trailing_var_arg = true, value_name = "CMD")]
    pub command: Vec<OsString>,
}

/// Runs the command; returns the exit code nono should exit with.
pub fn run(args: RunArgs) -> Result<i32, Failure> {
    crate::logging::init(
        args.verbose,
        args.quiet,
        "warn,nono::audit=error",
        args.log_file.as_deref(),
    )
    .map_err(|e| Failure::usage(format!("{e:#}")))?;
    let nono_err = |e: anyhow::Error| Failure::with_code(EXIT_NONO_FAILED, e);
    let (mut resolved, upstream_proxy_spec) = resolve(&args)?;
    let learning = match &args.learn {
        Some(_) => Some(crate::learn::open_network(&mut resolved).map_err(Failure::usage)?),
        None => None,
    };
    nono_policy::check_ca_key_unreadable(&resolved).map_err(|e| Failure::usage(e.to_string()))?;
    // The tool's own state (a profile's create_dirs / create_files), so its first run works.
    for made in nono_policy::create_state(&resolved.filesystem)
        .map_err(|e| Failure::with_code(EXIT_NONO_FAILED, e))?
    {
        if !args.quiet {
            eprintln!("nono: created {} (the profile's own state)", made.display());
        }
    }

    // The proxy is prepared first so the child's environment can carry its port and token.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
        .map_err(nono_err)?;
    let proxy = match resolved.network.mode {
        NetworkMode::Proxy => {
            Some(rt.block_on(start_proxy(&args, &resolved, upstream_proxy_spec))?)
        }
        _ => None,
    };
    // At -v every decision is logged; otherwise one hint per denied host, and a summary.
    let denials = proxy.as_ref().map(|p| {
        let list = resolved
            .network
            .network_profile
            .as_ref()
            .map(|np| format!("network profile {np}"));
        crate::denials::Denials::watch(p.audit(), list, args.quiet || args.verbose > 0)
    });
    let mut add_env: Vec<(String, String)> = resolved
        .filesystem
        .path_env
        .iter()
        .map(|(k, v)| (k.clone(), v.display().to_string()))
        .collect();
    if let Some(p) = &proxy {
        add_env.extend(p.env_vars());
        add_env.extend(p.route_env());
    }
    // A credential read from `env://VAR` must not reach the child under its own name either.
    let secret_vars: Vec<&str> = resolved
        .network
        .credentials
        .iter()
        .filter_map(|c| c.credential_key.strip_prefix("env://"))
        .collect();
    let parent_env =
        std::env::vars_os().filter(|(k, _)| !secret_vars.iter().any(|s| k.as_os_str() == *s));
    let child_env = nono_proxy::env::child_env(parent_env, &add_env);

    let mut sandbox_policy =
        nono_policy::sandbox_policy(&resolved, proxy.as_ref().map(|p| p.port()));
    // The child reads the interception trust bundle through SSL_CERT_FILE and its twins.
    if let Some(dir) = proxy.as_ref().and_then(|p| p.trust_bundle_dir()) {
        sandbox_policy
            .fs
            .push(nono_sandbox::FsRule::read(dir.to_path_buf()));
    }
    #[cfg(target_os = "macos")]
    let _keychain = match (
        args.net.trust_proxy_ca,
        proxy.as_ref().and_then(|p| p.ca_cert_path()),
    ) {
        (true, Some(ca)) => Some(crate::keychain::TrustedCa::add(ca).map_err(nono_err)?),
        _ => None,
    };
    let prepared = nono_sandbox::prepare(&sandbox_policy)
        .map_err(|e| Failure::with_code(EXIT_NONO_FAILED, e))?;
    let path_var = child_env
        .iter()
        .find(|(k, _)| k == "PATH")
        .map(|(_, v)| v.clone());
    let program = nono_sandbox::resolve_program(&args.command[0], path_var.as_deref())
        .map_err(|e| Failure::with_code(e.exec_exit_code().unwrap_or(EXIT_NONO_FAILED), e))?;
    let spec = ExecSpec {
        program,
        argv: args.command.clone(),
        env: child_env,
        ..Default::default()
    };
    // Handlers exist before the child does, so a SIGTERM right after the fork is forwarded
    // instead of killing nono (the child resets them before exec).
    let signals = rt
        .block_on(async { Signals::install() })
        .map_err(nono_err)?;
    let isolation = nono_policy::network_isolation(&resolved, proxy.as_ref().map(|p| p.port()));
    let (mut child, mut isolated) = spawn_child(&prepared, &spec, isolation, proxy.as_ref(), &rt)?;
    #[cfg(target_os = "linux")]
    {
        // Without its own mount namespace the sandbox sees the host's /tmp: a profile or
        // credential source there is as rewritable as one in the working directory. The
        // child is not released yet; dropping it ends it.
        if matches!(
            child.containment(),
            nono_sandbox::Containment::Fallback { .. }
        ) {
            nono_policy::check_self_edit(&resolved, true)
                .map_err(|e| Failure::usage(e.to_string()))?;
        }
        let c = child.containment().to_string();
        isolated = if isolated.is_empty() {
            c
        } else {
            format!("{isolated}; {c}")
        };
    }
    if !args.quiet {
        print_summary(
            &resolved,
            &sandbox_policy,
            prepared.report(),
            proxy.as_ref(),
            &isolated,
        );
    }
    for w in &prepared.report().warnings {
        eprintln!("nono: WARNING: {w}");
    }
    #[cfg(target_os = "linux")]
    if !args.quiet
        && matches!(
            child.containment(),
            nono_sandbox::Containment::Namespaces { .. }
        )
    {
        // The sandbox's root holds only the grants: an ungranted working directory does not
        // exist there, and the command starts in "/".
        if let Ok(cwd) = std::env::current_dir() {
            if !sandbox_policy.fs.iter().any(|r| cwd.starts_with(&r.path)) {
                eprintln!(
                    "nono: note: the working directory {} is not granted, so the command starts in /; grant it with --allow-cwd or --read .",
                    cwd.display()
                );
            }
        }
    }
    drop(prepared);
    child
        .release()
        .map_err(|e| Failure::with_code(EXIT_NONO_FAILED, e))?;
    if let Err(e) = child.wait_for_exec() {
        return Err(Failure::with_code(
            e.exec_exit_code().unwrap_or(EXIT_NONO_FAILED),
            e,
        ));
    }
    let pid = child.pid();
    let code = rt
        .block_on(supervise(child, pid, signals))
        .map_err(nono_err)?;
    if let (Some(path), Some(known), Some(d)) = (&args.learn, &learning, &denials) {
        let entries = crate::learn::entries(&d.reached(), known);
        // A built-in by name, a file by its path (`extends` takes either).
        let base = resolved.profile.as_ref().map(|p| {
            if p.source == "builtin" {
                p.name.as_str()
            } else {
                p.source.as_str()
            }
        });
        crate::learn::write(path, base, &entries, &args.command).map_err(nono_err)?;
        if !args.quiet {
            eprintln!(
                "nono: learned {} host(s) into {}; use it with --profile {}",
                entries.len(),
                path.display(),
                path.display()
            );
        }
    }
    if let Some(line) = denials.as_ref().and_then(|d| d.summary()) {
        if !args.quiet {
            eprintln!("{line}");
        }
    }
    // Open tunnels die with us; the child is gone, so there is nobody left to serve.
    drop(proxy);
    rt.shutdown_background();
    Ok(code)
}

/// Forks the child, in a private network namespace when the policy allows one; in proxy
/// mode the proxy then also serves the listener the child bound inside it. Returns the
/// child and a one-line description of the address isolation.
fn spawn_child(
    prepared: &nono_sandbox::PreparedSandbox,
    spec: &ExecSpec,
    isolation: nono_policy::NetworkIsolation,
    proxy: Option<&nono_proxy::ProxyHandle>,
    rt: &tokio::runtime::Runtime,
) -> Result<(nono_sandbox::SandboxedChild, String), Failure> {
    let failed = |e: nono_sandbox::SandboxError| Failure::with_code(EXIT_NONO_FAILED, e);
    let nono_sandbox_net = match isolation {
        nono_policy::NetworkIsolation::Shared => None,
        nono_policy::NetworkIsolation::Private { proxy_port } => Some(proxy_port),
    };
    #[cfg(target_os = "linux")]
    if let Some(proxy_port) = nono_sandbox_net {
        let net = nono_sandbox::PrivateNetwork {
            loopback_listener_port: proxy_port,
        };
        let mut child = nono_sandbox::spawn_isolated(prepared, spec, &net).map_err(failed)?;
        let text = match child.take_network_isolation() {
            Some(nono_sandbox::NetnsOutcome::Isolated { listener }) => {
                if let (Some(l), Some(p)) = (listener, proxy) {
                    let _guard = rt.enter();
                    p.add_listener(l).map_err(|e| Failure::with_code(EXIT_NONO_FAILED, e))?;
                }
                "private network namespace (loopback only)".to_string()
            }
            Some(nono_sandbox::NetnsOutcome::Unavailable { errno }) => format!(
                "shared network namespace (a private one needs CAP_SYS_ADMIN or user namespaces: {})",
                std::io::Error::from_raw_os_error(errno)
            ),
            // The child died during set-up; wait_for_exec reports why.
            _ => String::new(),
        };
        return Ok((child, text));
    }
    let _ = (nono_sandbox_net, rt, proxy);
    let child = nono_sandbox::spawn(prepared, spec).map_err(failed)?;
    Ok((child, "shared network namespace".to_string()))
}

/// The resolved policy, and the upstream proxy spec as given (it may hold a password, so it
/// reaches only the proxy configuration).
fn resolve(args: &RunArgs) -> Result<(ResolvedPolicy, Option<Zeroizing<String>>), Failure> {
    let (mut pargs, spec): (PolicyArgs, _) = args.net.policy_args(true)?;
    pargs.block_net = args.block_net;
    pargs.allow = args.allow.clone();
    pargs.read = args.read.clone();
    pargs.allow_cwd = args.allow_cwd;
    pargs.open_port = args.open_port.clone();
    pargs.listen_port = args.listen_port.clone();
    let env = nono_policy::Env::from_process().map_err(|e| Failure::usage(e.to_string()))?;
    let resolved = nono_policy::resolve(&pargs, &env).map_err(|e| Failure::usage(e.to_string()))?;
    Ok((resolved, spec))
}

async fn start_proxy(
    args: &RunArgs,
    resolved: &ResolvedPolicy,
    upstream_proxy_spec: Option<Zeroizing<String>>,
) -> Result<nono_proxy::ProxyHandle, Failure> {
    let opts = nono_policy::ProxyOptions {
        bind_addr: Ipv4Addr::LOCALHOST.into(),
        bind_port: args.proxy_port.unwrap_or(0),
        auth: AuthConfig::Token(SessionToken::generate()),
        max_connections: nono_proxy::config::DEFAULT_MAX_CONNECTIONS,
        timeouts: nono_proxy::Timeouts::default(),
        resolver: std::sync::Arc::new(nono_proxy::dns::SystemResolver),
        tolerate_unavailable_routes: false,
        upstream_proxy_spec,
        roots_file: crate::netflags::roots_file(),
        bundle_parent: None,
    };
    let config = nono_policy::proxy_config(&resolved.network, opts)
        .map_err(|e| Failure::usage(e.to_string()))?;
    let addr = SocketAddr::new(config.bind_addr, config.bind_port);
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr} for the proxy"))
        .map_err(|e| Failure::with_code(EXIT_NONO_FAILED, e))?;
    nono_proxy::start_with_listener(listener, config)
        .map_err(|e| Failure::with_code(EXIT_NONO_FAILED, e))
}

/// The signals nono handles while a child runs.
struct Signals {
    term: tokio::signal::unix::Signal,
    hup: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
    quit: tokio::signal::unix::Signal,
}

impl Signals {
    fn install() -> anyhow::Result<Signals> {
        use tokio::signal::unix::SignalKind;
        Ok(Signals {
            term: handler(SignalKind::terminate(), "SIGTERM")?,
            hup: handler(SignalKind::hangup(), "SIGHUP")?,
            int: handler(SignalKind::interrupt(), "SIGINT")?,
            quit: handler(SignalKind::quit(), "SIGQUIT")?,
        })
    }
}

/// Waits for the child while the proxy serves; forwards SIGTERM and SIGHUP, ignores the
/// terminal's SIGINT/SIGQUIT (they reach the child directly, it shares our process group).
async fn supervise(
    mut child: nono_sandbox::SandboxedChild,
    pid: i32,
    mut sig: Signals,
) -> anyhow::Result<i32> {
    let (tx, mut rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("nono-wait".into())
        .spawn(move || {
            let _ = tx.send(child.wait());
        })
        .context("starting the child waiter")?;
    loop {
        tokio::select! {
            r = &mut rx => {
                let exit = r.context("child waiter vanished")??;
                return Ok(exit.shell_status());
            }
            _ = sig.term.recv() => forward(pid, nix::sys::signal::Signal::SIGTERM),
            _ = sig.hup.recv() => forward(pid, nix::sys::signal::Signal::SIGHUP),
            _ = sig.int.recv() => {}
            _ = sig.quit.recv() => {}
        }
    }
}

fn forward(pid: i32, sig: nix::sys::signal::Signal) {
    // The waiter thread holds the child until it is reaped, so the pid cannot be reused yet.
    let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), sig);
}

fn print_summary(
    p: &ResolvedPolicy,
    sp: &nono_sandbox::SandboxPolicy,
    report: &nono_sandbox::EnforcementReport,
    proxy: Option<&nono_proxy::ProxyHandle>,
    isolation: &str,
) {
    let net = match (&sp.net, proxy) {
        (
            NetPolicy::ProxyOnly {
                connect_ports,
                bind_ports,
                allow_udp,
                ..
            },
            Some(h),
        ) => {
            let n = p.network.allowed_hosts.len() + p.network.url_rules.len();
            let hosts = if n == 0 {
                "any host".to_string()
            } else {
                format!("{n} allowed hosts")
            };
            let mut s = format!("proxy on 127.0.0.1:{} ({hosts}", h.port());
            if let Some(np) = &p.network.network_profile {
                s.push_str(&format!(", network profile {np}"));
            }
            if !p.network.credentials.is_empty() {
                s.push_str(&format!(
                    ", credentials: {}",
                    p.network
                        .credentials
                        .iter()
                        .map(|c| c.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
            }
            s.push(')');
            if h.ca_cert_path().is_some() {
                s.push_str("; TLS interception for credential routes and URL-scoped entries");
            }
            if !connect_ports.is_empty() {
                s.push_str(&format!("; direct TCP ports {connect_ports:?}"));
            }
            if !bind_ports.is_empty() {
                s.push_str(&format!("; listen ports {bind_ports:?}"));
            }
            if *allow_udp {
                eprintln!("nono: note: UDP stays open (direct host:port entries need DNS); UDP is not filtered");
            }
            s
        }
        (
            NetPolicy::Blocked {
                connect_ports,
                bind_ports,
            },
            _,
        ) => {
            let mut s = "blocked".to_string();
            if !connect_ports.is_empty() || !bind_ports.is_empty() {
                s.push_str(&format!(
                    " (localhost ports: connect {connect_ports:?}, listen {bind_ports:?})"
                ));
            }
            s
        }
        _ => "unrestricted".to_string(),
    };
    let rw = p.filesystem.allow.len();
    let ro = p.filesystem.read.len();
    let profile = p
        .profile
        .as_ref()
        .map(|i| format!("profile {}, ", i.name))
        .unwrap_or_default();
    eprintln!(
        "nono: {profile}network {net}; filesystem: {rw} read-write and {ro} read-only paths plus system paths; Landlock ABI {}, seccomp {}{}",
        report.landlock_abi,
        if report.seccomp.is_full() { "on" } else { "PARTIAL" },
        if isolation.is_empty() { String::new() } else { format!("; {isolation}") }
    );
}
