//! `nono proxy`: the filtering proxy as a standalone, long-lived server.

use std::collections::HashMap;
use std::io::Write;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::Args;
use nono_proxy::dns::{Resolver, StaticResolver, SystemResolver};
use nono_proxy::{AuthConfig, ProxyConfig, SessionToken};

use zeroize::Zeroizing;

use crate::exit::Failure;
use crate::netflags::NetFlags;
use crate::secret::SecretArg;

/// Flags of `nono proxy`.
#[derive(Debug, Args)]
pub struct ProxyArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1", value_name = "ADDR")]
    pub listen: IpAddr,
    /// Port to listen on (0 = chosen by the OS).
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub port: u16,
    /// Serve without authentication (refused unless listening on loopback).
    #[arg(long)]
    pub no_auth: bool,
    /// Use this secret instead of a random session token. A value on the command line is
    /// visible to every local user in `ps`: prefer the NONO_PROXY_PASS variable.
    #[arg(
        long,
        value_name = "SECRET",
        env = "NONO_PROXY_PASS",
        hide_env_values = true
    )]
    pub pass: Option<SecretArg>,
    /// Policy: profile, network profile, allowed hosts, credentials, upstream proxy.
    #[command(flatten)]
    pub net: NetFlags,
    /// Maximum simultaneous client connections (0 = unlimited, at most 1000000).
    #[arg(
        long,
        default_value_t = nono_proxy::config::DEFAULT_MAX_CONNECTIONS,
        value_name = "N",
        value_parser = parse_max_connections
    )]
    pub max_connections: usize,
    /// Upstream connect timeout in seconds.
    #[arg(long, value_name = "SECS", default_value_t = 10.0)]
    pub connect_timeout: f64,
    /// Time a client has to send a full request head, in seconds.
    #[arg(long, value_name = "SECS", default_value_t = 10.0)]
    pub header_timeout: f64,
    /// Pin a name to addresses instead of asking DNS (repeatable): `NAME=IP[,IP...]`.
    /// The pinned addresses are checked like resolved ones.
    #[arg(long, value_name = "NAME=IP")]
    pub resolve: Vec<String>,
    /// Print the connection details as one JSON object on the first line of stdout.
    #[arg(long)]
    pub json: bool,
    /// More logging (-v: nono's debug messages, -vv: nono's trace and its libraries' debug
    /// messages). Decisions are logged at the default level.
    #[arg(short, long, action = clap::ArgAction::Count)]
    pub verbose: u8,
}

/// Runs `nono proxy` until Ctrl-C or SIGTERM.
pub fn run(args: ProxyArgs) -> Result<(), Failure> {
    let config = build_config(&args)?;
    crate::logging::init(args.verbose, false, "info", None)
        .map_err(|e| Failure::usage(format!("{e:#}")))?;
    crate::limits::raise_fd_limit();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
        .map_err(Failure::runtime)?;
    let served = rt.block_on(serve(args.json, args.net.trust_proxy_ca, config));
    // Open tunnels had their grace period; blocking work (a hung DNS lookup or credential
    // helper) must not hold the exit.
    rt.shutdown_timeout(std::time::Duration::from_millis(500));
    served.map_err(Failure::runtime)
}

/// Validates the flags and builds the proxy configuration. Every refusal happens here,
/// before anything listens.
fn build_config(args: &ProxyArgs) -> Result<ProxyConfig, Failure> {
    if args.no_auth && args.pass.is_some() {
        return Err(Failure::usage("--no-auth and --pass contradict each other: choose one (NONO_PROXY_PASS counts as --pass)"));
    }
    let auth = if args.no_auth {
        if !args.listen.is_loopback() {
            return Err(Failure::usage(format!(
                "--no-auth is refused on the non-loopback address {}: anyone who can reach it could use the proxy; drop --no-auth or listen on 127.0.0.1",
                args.listen
            )));
        }
        AuthConfig::Disabled
    } else if let Some(p) = &args.pass {
        let p = p.expose();
        if p.is_empty() {
            return Err(Failure::usage(
                "--pass is empty: give a non-empty secret or omit it for a random session token",
            ));
        }
        AuthConfig::Token(SessionToken::from_secret(Zeroizing::new(p.to_string())))
    } else {
        AuthConfig::Token(SessionToken::generate())
    };
    let (policy_args, upstream_proxy_spec) = args.net.policy_args(false)?;
    let env = nono_policy::Env::from_process().map_err(|e| Failure::usage(e.to_string()))?;
    // Same resolution as `nono run`; filesystem settings are not used here.
    let resolved =
        nono_policy::resolve(&policy_args, &env).map_err(|e| Failure::usage(e.to_string()))?;
    let timeouts = nono_proxy::Timeouts {
        connect: secs("--connect-timeout", args.connect_timeout)?,
        header_read: secs("--header-timeout", args.header_timeout)?,
    };
    let opts = nono_policy::ProxyOptions {
        bind_addr: args.listen,
        bind_port: args.port,
        auth,
        max_connections: args.max_connections,
        timeouts,
        resolver: resolver_from_pins(&args.resolve).map_err(|e| Failure::usage(e.to_string()))?,
        tolerate_unavailable_routes: true,
        upstream_proxy_spec,
        roots_file: crate::netflags::roots_file(),
        bundle_parent: None,
    };
    let config = nono_policy::proxy_config(&resolved.network, opts)
        .map_err(|e| Failure::usage(e.to_string()))?;
    Ok(config)
}

fn secs(flag: &str, v: f64) -> Result<Duration, Failure> {
    if !(v.is_finite() && v > 0.0 && v <= 86_400.0) {
        return Err(Failure::usage(format!(
            "{flag} must be between 0 and 86400 seconds, got {v}"
        )));
    }
    Ok(Duration::from_secs_f64(v))
}

/// Parses `--resolve NAME=IP[,IP]` pins into a resolver.
pub fn resolver_from_pins(pins: &[String]) -> anyhow::Result<Arc<dyn Resolver>> {
    if pins.is_empty() {
        return Ok(Arc::new(SystemResolver));
    }
    let mut map: HashMap<String, Vec<IpAddr>> = HashMap::new();
    for p in pins {
        let Some((name, ips)) = p.split_once('=') else {
            bail!("--resolve `{p}`: expected NAME=IP[,IP...]");
        };
        let mut addrs = Vec::new();
        for ip in ips.split(',') {
            let ip = ip.trim().trim_start_matches('[').trim_end_matches(']');
            addrs.push(
                ip.parse::<IpAddr>()
                    .with_context(|| format!("--resolve `{p}`: `{ip}` is not an IP address"))?,
            );
        }
        map.entry(name.to_string()).or_default().extend(addrs);
    }
    Ok(Arc::new(StaticResolver::new(map, Arc::new(SystemResolver))))
}

async fn serve(json: bool, trust_ca: bool, config: ProxyConfig) -> anyhow::Result<()> {
    #[cfg(not(target_os = "macos"))]
    let _ = trust_ca;
    let mut allowed = config.allowed_hosts.clone();
    allowed.extend(config.intercept.url_rules.iter().map(|r| r.to_string()));
    let upstream = config.upstream_proxy.clone();
    let connect_timeout = config.timeouts.connect;
    // Handlers go in before the details are printed: a supervisor that reads the line and
    // sends SIGTERM at once must get a clean shutdown, not the default kill.
    let signals = Signals::install()?;
    let handle = nono_proxy::start(config).await?;
    #[cfg(target_os = "macos")]
    let _keychain = match (trust_ca, handle.ca_cert_path()) {
        (true, Some(ca)) => Some(crate::keychain::TrustedCa::add(ca)?),
        _ => None,
    };
    if let Some(u) = &upstream {
        if let Err(e) = nono_proxy::upstream::check_reachable(u, connect_timeout).await {
            // With its causes: the error's own text does not repeat them.
            let e = anyhow::Error::from(e);
            tracing::warn!(
                "{e:#}; requests will get 502 upstream_proxy_unreachable until it is reachable"
            );
        }
    }
    let routes = handle.routes_status();
    let mut env = handle.env_vars();
    env.extend(handle.route_env());
    let mut out = std::io::stdout().lock();
    if json {
        let env_map: serde_json::Map<String, serde_json::Value> = env
            .iter()
            .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
            .collect();
        let obj = serde_json::json!({
            "url": handle.url(),
            "listen": handle.addr().to_string(),
            "port": handle.port(),
            "token": handle.token().map(|t| t.expose().to_string()),
            "allowed_hosts": allowed,
            "upstream_proxy": upstream.as_ref().map(|u| u.address()),
            "routes": routes,
            "ca_cert": handle.ca_cert_path().map(|p| p.display().to_string()),
            "trust_bundle": handle.trust_bundle_path().map(|p| p.display().to_string()),
            "env": env_map,
        });
        writeln!(out, "{obj}")?;
    } else {
        writeln!(out, "nono proxy listening on {}", handle.addr())?;
        writeln!(out, "  proxy URL:     {}", handle.url())?;
        match handle.token() {
            Some(t) => writeln!(out, "  token:         {}", t.expose())?,
            None => writeln!(out, "  token:         none (authentication disabled)")?,
        }
        if allowed.is_empty() {
            writeln!(out, "  allowed hosts: any (except the always-denied list)")?;
        } else {
            writeln!(out, "  allowed hosts: {}", allowed.join(", "))?;
        }
        if let Some(u) = &upstream {
            writeln!(out, "  upstream proxy: {}", u.address())?;
        }
        if let (Some(ca), Some(bundle)) = (handle.ca_cert_path(), handle.trust_bundle_path()) {
            writeln!(out, "  TLS interception CA: {}", ca.display())?;
            writeln!(
                out,
                "  trust bundle:        {} (system roots + the CA; removed at exit)",
                bundle.display()
            )?;
        }
        for r in &routes {
            let state = if r.loaded {
                "loaded".to_string()
            } else {
                format!(
                    "UNAVAILABLE ({})",
                    r.error.as_deref().unwrap_or("not loaded")
                )
            };
            writeln!(
                out,
                "  route {}: {} -> {} [credential {}: {state}]",
                r.name, r.local_url, r.upstream, r.source
            )?;
            if !r.endpoint_rules.is_empty() {
                writeln!(out, "    endpoints: {}", r.endpoint_rules.join(", "))?;
            } else if !r.default_deny.is_empty() {
                writeln!(out, "    refused by default: {}", r.default_deny.join(", "))?;
            }
        }
        writeln!(out, "\nPoint clients at it with:")?;
        for (k, v) in &env {
            writeln!(out, "export {k}={}", shell_quote(v))?;
        }
    }
    out.flush()?;
    drop(out);
    signals.wait().await;
    tracing::info!("shutting down");
    handle.shutdown().await;
    Ok(())
}

/// SIGTERM, SIGINT and SIGHUP, registered up front so none is lost between start-up and
/// waiting.
struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
    /// The terminal closing: shut down cleanly rather than die mid-request. None when
    /// SIGHUP was ignored at start (`nohup`): that choice is kept.
    hup: Option<tokio::signal::unix::Signal>,
}

impl Signals {
    fn install() -> anyhow::Result<Self> {
        use tokio::signal::unix::SignalKind;
        Ok(Self {
            term: crate::signals::handler(SignalKind::terminate(), "SIGTERM")?,
            int: crate::signals::handler(SignalKind::interrupt(), "SIGINT")?,
            hup: if crate::signals::ignored(libc::SIGHUP) {
                None
            } else {
                Some(crate::signals::handler(SignalKind::hangup(), "SIGHUP")?)
            },
        })
    }

    async fn wait(mut self) {
        tokio::select! {
            _ = self.term.recv() => {}
            _ = self.int.recv() => {}
            Some(_) = async {
                match self.hup.as_mut() {
                    Some(h) => h.recv().await,
                    None => std::future::pending().await,
                }
            } => {}
        }
    }
}

/// Largest `--max-connections`: far above any descriptor limit, so it never binds first.
const MAX_CONNECTIONS_LIMIT: usize = 1_000_000;

fn parse_max_connections(v: &str) -> Result<usize, String> {
    match v.parse::<usize>() {
        Ok(n) if n <= MAX_CONNECTIONS_LIMIT => Ok(n),
        _ => Err(format!(
            "`{v}` is not a connection count from 0 (unlimited) to {MAX_CONNECTIONS_LIMIT}"
        )),
    }
}

/// `value` as one single-quoted POSIX shell word (a `'` inside becomes `'\''`), so the
/// printed `export` lines are safe to paste or `eval` whatever the secret contains.
fn shell_quote(value: &str) -> String {
    format!("'{}'", value.replace('\'', "'\\''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pins_parse_and_reject_garbage() {
        assert!(resolver_from_pins(&["a.test=127.0.0.1,[::1]".into()]).is_ok());
        assert!(resolver_from_pins(&["a.test".into()]).is_err());
        assert!(resolver_from_pins(&["a.test=nope".into()]).is_err());
    }

    #[test]
    fn shell_quoting_survives_quotes() {
        assert_eq!(shell_quote("plain"), "'plain'");
        assert_eq!(shell_quote("q'uote"), "'q'\\''uote'");
    }

    #[test]
    fn max_connections_has_a_ceiling() {
        assert_eq!(parse_max_connections("0"), Ok(0));
        assert_eq!(parse_max_connections("1000000"), Ok(1_000_000));
        assert!(parse_max_connections("1000001").is_err());
        assert!(parse_max_connections("-1").is_err());
    }
}
