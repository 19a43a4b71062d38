//! `--intercept`: TLS interception against a plain CONNECT tunnel and a direct connection.
//!
//! One local HTTPS origin (its own CA, leaf for `localhost`, `127.0.0.1`, `*.bench.test`) and
//! one proxy started with a profile whose credential route points at the origin
//! (`https://localhost:PORT`, `tls_ca` = the origin's CA), plus one URL-scoped allow entry and
//! `--resolve` pin per leaf-cache name (`hN.bench.test`), with `SSL_CERT_FILE` = the origin's
//! CA so the proxy trusts the origin for those. Each metric runs in paired rounds: direct,
//! tunnel, intercept, one after the other, so the three see the same machine state.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde_json::json;

use crate::https::{client_config, Paths, Via};
use crate::net::{timed, Route, IO_TIMEOUT};
use crate::proxy::Proxy;
use crate::report::TriRow;
use crate::{origin, sys, tls};

/// The credential the proxy injects (through `env://BENCH_KEY`) and the origin checks.
const CREDENTIAL: &str = "bench-secret";
/// Cycles or requests run and discarded before sampling, per route and round.
const WARMUP: usize = 50;
/// Upper bound for one bulk download.
const TRANSFER_TIMEOUT: Duration = Duration::from_secs(600);
const GIB: f64 = (1u64 << 30) as f64;
const ROUTES: [Via; 3] = [Via::Direct, Via::Tunnel, Via::Intercept];

/// What to run; sizes come from the shared command line.
#[derive(Debug)]
pub struct Options {
    /// Bulk download size.
    pub bytes: u64,
    /// New-connection requests per route and round.
    pub iterations: usize,
    /// Kept-alive requests per route and round.
    pub requests: usize,
    /// Distinct leaf-cache names per round.
    pub names: usize,
    /// Paired rounds.
    pub rounds: usize,
    /// CPU for the proxy, `None` for the scheduler's choice.
    pub proxy_cpu: Option<usize>,
    /// Extra `nono proxy` arguments.
    pub proxy_args: Vec<String>,
}

/// Removes the run's scratch directory (profile, CA) on drop.
struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Sets up the origin and the proxy, runs every measurement and returns the rows.
pub async fn run(nono: &Path, opts: &Options) -> Result<(Vec<TriRow>, serde_json::Value)> {
    let (pair, ca_pem) = tls::make_for(&["localhost", "127.0.0.1", "*.bench.test"])?;
    let port = origin::spawn(pair.server.clone(), CREDENTIAL).await?;

    let dir =
        Scratch(std::env::temp_dir().join(format!("nono-bench-{}-intercept", std::process::id())));
    std::fs::create_dir_all(&dir.0).with_context(|| format!("create {}", dir.0.display()))?;
    let ca_path = dir.0.join("origin-ca.pem");
    std::fs::write(&ca_path, &ca_pem).with_context(|| format!("write {}", ca_path.display()))?;
    let profile = json!({"network": {
        "custom_credentials": {"bench": {
            "upstream": format!("https://localhost:{port}"),
            "credential_key": "env://BENCH_KEY",
            "tls_ca": ca_path.display().to_string(),
        }},
        "credentials": ["bench"],
        "allow_domain": [format!("127.0.0.1:{port}")],
    }});
    let profile_path = dir.0.join("profile.json");
    std::fs::write(&profile_path, serde_json::to_string_pretty(&profile)?)
        .with_context(|| format!("write {}", profile_path.display()))?;

    let names: Vec<String> = (0..opts.names * opts.rounds)
        .map(|i| format!("h{i}.bench.test"))
        .collect();
    let mut args = vec!["--profile".to_string(), profile_path.display().to_string()];
    for name in &names {
        args.push("--allow-domain".into());
        args.push(format!("https://{name}:{port}/**"));
        args.push("--resolve".into());
        args.push(format!("{name}=127.0.0.1"));
    }
    args.extend(opts.proxy_args.iter().cloned());
    let ca_env = ca_path.display().to_string();
    let env = [
        ("BENCH_KEY", CREDENTIAL),
        ("SSL_CERT_FILE", ca_env.as_str()),
    ];
    let proxy = Proxy::start_with_env(nono, opts.proxy_cpu, "intercept", &args, &env)?;
    let log = proxy.log_path.display().to_string();

    let nono_ca = proxy.startup["ca_cert"]
        .as_str()
        .context("proxy's JSON line has no `ca_cert`: is interception enabled?")?;
    let paths = Paths {
        origin_port: port,
        proxy: Route::Proxy {
            port: proxy.port,
            auth: proxy.auth.clone(),
        },
        origin_client: pair.client_with_alpn(),
        proxy_client: client_config(roots_from_pem(Path::new(nono_ca))?)?,
    };
    let rows = measure_all(&paths, &names, opts, proxy.pid())
        .await
        .with_context(|| format!("interception run; proxy log: {log}"))?;
    let config = json!({
        "mode": "intercept",
        "nono": nono.display().to_string(),
        "bytes": opts.bytes,
        "iterations": opts.iterations,
        "requests": opts.requests,
        "leaf_names_per_round": opts.names,
        "rounds": opts.rounds,
        "proxy_cpu": opts.proxy_cpu,
        "proxy_args": opts.proxy_args,
    });
    Ok((rows, config))
}

/// The measurements, in display order.
async fn measure_all(
    paths: &Paths,
    names: &[String],
    opts: &Options,
    pid: u32,
) -> Result<Vec<TriRow>> {
    check_paths(paths).await?;
    let mut rows = Vec::new();
    let mut three = |metric: &str, unit: &'static str, v: [Vec<f64>; 3]| {
        let [direct, tunnel, intercept] = v;
        rows.push(TriRow {
            metric: metric.to_string(),
            unit,
            direct,
            tunnel,
            intercept,
        });
    };

    progress("new HTTPS request (connect + TLS + GET /small)");
    let (mut p50, mut p99) = (<[Vec<f64>; 3]>::default(), <[Vec<f64>; 3]>::default());
    for _ in 0..opts.rounds {
        for (i, via) in ROUTES.into_iter().enumerate() {
            let (a, b) = new_request(paths, via, opts.iterations).await?;
            p50[i].push(a);
            p99[i].push(b);
        }
    }
    three("new conn + GET /small, p50", "us", p50);
    three("new conn + GET /small, p99", "us", p99);

    progress("kept-alive GET /small");
    let (mut p50, mut p99) = (<[Vec<f64>; 3]>::default(), <[Vec<f64>; 3]>::default());
    for _ in 0..opts.rounds {
        for (i, via) in ROUTES.into_iter().enumerate() {
            let (a, b) = kept_alive(paths, via, opts.requests).await?;
            p50[i].push(a);
            p99[i].push(b);
        }
    }
    three("kept-alive GET /small, p50", "us", p50);
    three("kept-alive GET /small, p99", "us", p99);

    progress("bulk download");
    let (mut rate, mut cpu) = (<[Vec<f64>; 3]>::default(), <[Vec<f64>; 3]>::default());
    for _ in 0..opts.rounds {
        for (i, via) in ROUTES.into_iter().enumerate() {
            let (mib_s, cpu_s) = bulk(paths, via, opts.bytes, pid).await?;
            rate[i].push(mib_s);
            if via != Via::Direct {
                cpu[i].push(cpu_s / (opts.bytes as f64 / GIB));
            }
        }
    }
    three(&format!("GET {} bytes", opts.bytes), "MiB/s", rate);
    three("proxy CPU per GiB (utime+stime)", "s", cpu);

    progress("leaf cache miss vs hit (connect + CONNECT + TLS handshake)");
    let (mut miss, mut hit) = (<[Vec<f64>; 3]>::default(), <[Vec<f64>; 3]>::default());
    for round in names.chunks(opts.names.max(1)) {
        let [d, t, m, h] = leaf_round(paths, round).await?;
        miss[0].push(d);
        miss[1].push(t);
        miss[2].push(m);
        hit[0].push(d);
        hit[1].push(t);
        hit[2].push(h);
    }
    three("handshake p50, leaf miss (1st use of name)", "us", miss);
    three("handshake p50, leaf hit (2nd use of name)", "us", hit);
    Ok(rows)
}

/// Fails unless interception injects the credential and the tunnel leaves requests alone.
async fn check_paths(paths: &Paths) -> Result<()> {
    for via in ROUTES {
        let mut conn = paths.open(via, "localhost", false).await?;
        let response = timed(IO_TIMEOUT, "sanity GET", conn.get("/small", false)).await?;
        let want = via == Via::Intercept;
        if response.credential != want || response.body_bytes != 2 {
            bail!("{via:?}: credential injected = {}, body {} bytes; expected injected = {want}, 2 bytes",
                response.credential, response.body_bytes);
        }
    }
    Ok(())
}

/// p50 and p99 (µs) of connect + TLS + `GET /small` (`Connection: close`) on a new connection.
async fn new_request(paths: &Paths, via: Via, iterations: usize) -> Result<(f64, f64)> {
    let cycle = || async {
        let mut conn = paths.open(via, "localhost", true).await?;
        timed(IO_TIMEOUT, "GET /small", conn.get("/small", true)).await
    };
    for _ in 0..WARMUP {
        cycle().await?;
    }
    let mut samples = Vec::with_capacity(iterations);
    for _ in 0..iterations {
        let start = Instant::now();
        cycle().await?;
        samples.push(start.elapsed());
    }
    Ok(p50_p99(samples))
}

/// p50 and p99 (µs) of `GET /small` on one kept-alive connection.
async fn kept_alive(paths: &Paths, via: Via, requests: usize) -> Result<(f64, f64)> {
    let mut conn = paths.open(via, "localhost", false).await?;
    for _ in 0..WARMUP {
        timed(IO_TIMEOUT, "GET /small", conn.get("/small", false)).await?;
    }
    let mut samples = Vec::with_capacity(requests);
    for _ in 0..requests {
        let start = Instant::now();
        timed(IO_TIMEOUT, "GET /small", conn.get("/small", false)).await?;
        samples.push(start.elapsed());
    }
    Ok(p50_p99(samples))
}

/// Downloads `bytes` on a new connection; returns MiB/s (connect to last byte) and the proxy
/// process's CPU seconds over the same span.
async fn bulk(paths: &Paths, via: Via, bytes: u64, pid: u32) -> Result<(f64, f64)> {
    let cpu_before = sys::cpu_seconds(pid)?;
    let start = Instant::now();
    let mut conn = paths.open(via, "localhost", false).await?;
    let path = format!("/bytes?n={bytes}");
    let response = timed(TRANSFER_TIMEOUT, "bulk GET", conn.get(&path, false)).await?;
    let secs = start.elapsed().as_secs_f64();
    let cpu = sys::cpu_seconds(pid)? - cpu_before;
    if response.body_bytes != bytes {
        bail!(
            "bulk GET returned {} bytes, wanted {bytes}",
            response.body_bytes
        );
    }
    Ok((bytes as f64 / (1024.0 * 1024.0) / secs, cpu))
}

/// For each name: handshake directly, through the tunnel, intercepted for the first time
/// (leaf issued) and intercepted again (leaf cached). Returns the four p50s in µs.
async fn leaf_round(paths: &Paths, names: &[String]) -> Result<[f64; 4]> {
    let mut samples: [Vec<Duration>; 4] = Default::default();
    let order = [Via::Direct, Via::Tunnel, Via::Intercept, Via::Intercept];
    for name in names {
        for (slot, via) in order.into_iter().enumerate() {
            let start = Instant::now();
            // No zero linger here: a reset right after the client's Finished can reach the
            // proxy before the Finished does, and it would log a failed handshake.
            let conn = paths.open(via, name, false).await?;
            samples[slot].push(start.elapsed());
            timed(IO_TIMEOUT, "close after handshake", conn.close()).await?;
        }
    }
    Ok(samples.map(|s| p50_p99(s).0))
}

/// The p50 and p99 of `samples`, in µs (zero when empty).
fn p50_p99(mut samples: Vec<Duration>) -> (f64, f64) {
    samples.sort_unstable();
    let at = |q: f64| {
        let idx = ((samples.len() as f64 - 1.0) * q).round() as usize;
        samples.get(idx).map_or(0.0, |d| d.as_secs_f64() * 1e6)
    };
    (at(0.50), at(0.99))
}

/// Root store holding every certificate in the PEM file at `path`.
fn roots_from_pem(path: &Path) -> Result<rustls::RootCertStore> {
    let pem = std::fs::read(path).with_context(|| format!("read {}", path.display()))?;
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pemfile::certs(&mut pem.as_slice()) {
        let cert = cert.with_context(|| format!("parse {}", path.display()))?;
        roots
            .add(cert)
            .with_context(|| format!("trust {}", path.display()))?;
    }
    if roots.is_empty() {
        bail!("no certificate in {}", path.display());
    }
    Ok(roots)
}

/// Notes progress on stderr, leaving stdout to the results.
fn progress(what: &str) {
    eprintln!("nono-bench --intercept: {what}");
}
