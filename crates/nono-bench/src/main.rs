//! `nono-bench`: measures `nono proxy` against direct connections, in one run, on this machine.
//!
//! Usage: `nono-bench --nono target/release/nono [--bytes 1GiB] [--json]` (`--help` for all).
//!
//! # Methodology
//! - The proxy runs as `taskset -c 0 NONO proxy --json --allow-domain 127.0.0.1 --port 0`; the
//!   bench pins itself to CPU 1 with `sched_setaffinity` before starting any thread, and runs
//!   every client and server on one current-thread tokio runtime there. Direct and proxied
//!   runs therefore use the same client/server CPU; the proxy adds CPU 0. (`--proxy-cpu`,
//!   `--bench-cpu`, either `any` to leave it to the scheduler; with fewer than two CPUs
//!   nothing is pinned.)
//! - Every server is local (`127.0.0.1`), started by the bench, and never speaks first.
//! - Each throughput and latency metric runs in `--rounds` paired rounds (default 3): directly,
//!   then through the proxy. The table shows the medians of each column and the median of the
//!   per-round proxy/direct ratios, with their range: pairing cancels the slow drift of a shared
//!   machine, and the range shows how much one round can mislead.
//!   1. Bulk: the client sends `--bytes` to a sink (u64 length, payload, 1-byte ack), over plain
//!      TCP and over TLS (CA and leaf made with rcgen; the client does TLS through the tunnel).
//!      Time runs from connect to ack, so the CONNECT and handshake are included.
//!   2. New-tunnel latency: TCP connect, CONNECT + `Proxy-Authorization`, the `200` head read,
//!      then a 1-byte echo round trip; directly, connect + 1-byte echo. The echo server closes
//!      first, so TIME_WAIT states do not use up clients' ephemeral ports. Sequential, 100 warm-up
//!      cycles, then `--iterations` samples; p50, p99 and the added p50.
//!   3. New tunnels per second: the same cycle, `--tunnels` in total, 8 in flight at once.
//!   4. Plain HTTP: `--requests` GETs over `--http-connections` (4) kept-alive connections, one
//!      request in flight per connection, absolute-form with `Proxy-Authorization` via the
//!      proxy, origin-form directly; the origin answers a 2-byte `Content-Length` body.
//!   5. Memory: a second, fresh proxy started with `--max-connections` above `--idle-tunnels`
//!      (the default cap is 256); VmRSS from `/proc/PID/status` after start, then with
//!      `--idle-tunnels` tunnels open (each proven by a 1-byte echo); per tunnel = delta / count.
//!      The main proxy's RSS after the whole workload is shown too.
//! - `--proxy-arg ARG` (repeatable) appends ARG to both proxies' command lines.
//! - RLIMIT_NOFILE is raised to its hard limit first; the proxy inherits it.
//!
//! # `--intercept`: TLS interception
//! Replaces the runs above. A local HTTPS origin (own CA; HTTP/1.1 keep-alive; `GET /small`
//! answers 2 bytes, `GET /bytes?n=N` streams N) is reached three ways in each paired round:
//! directly; through a CONNECT tunnel to `127.0.0.1:PORT` (TLS end to end); and through an
//! intercepted CONNECT to `localhost:PORT`, a credential route whose upstream is the origin
//! (the client trusts the proxy's `ca_cert`; the proxy injects the credential, checked once by
//! the origin before timing). Same pinning as above; warm-up 50 per route and round.
//!   1. New request: connect (+ CONNECT) + TLS + `GET /small` with `Connection: close`, the
//!      client socket closed with SO_LINGER 0; `--iterations` samples, p50/p99.
//!   2. Kept-alive: `--requests` sequential `GET /small` on one connection, p50/p99.
//!   3. Bulk: `GET /bytes?n=--bytes`, connect to last byte, MiB/s; the proxy's utime+stime
//!      (`/proc/PID/stat`) over the same span, per GiB.
//!   4. Leaf cache: `--leaf-names` names per round (`hN.bench.test`, each a URL-scoped allow
//!      entry with `--resolve hN.bench.test=127.0.0.1`; the proxy gets `SSL_CERT_FILE` = the
//!      origin's CA): per name, connect + CONNECT + handshake directly, tunnelled, intercepted
//!      (leaf miss), intercepted again (leaf hit); p50 of each.
//!
//! Columns: medians per route; ratios: medians of the per-round ratios.

mod bulk;
mod http;
mod https;
mod intercept;
mod latency;
mod net;
mod origin;
mod proxy;
mod report;
mod rss;
mod sys;
mod tls;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use serde_json::json;

use crate::net::Route;
use crate::report::Row;

/// Tunnels in flight during the tunnels-per-second run.
const RATE_CONCURRENCY: usize = 8;
/// Connections the memory proxy allows beyond the idle tunnels.
const RSS_CONNECTION_HEADROOM: usize = 64;

const USAGE: &str = "\
usage: nono-bench --nono PATH [options]
  --nono PATH          the nono binary to benchmark (required unless --direct-only)
  --bytes SIZE         bulk transfer size, e.g. 1GiB, 256MiB, 100MB (default 1GiB)
  --iterations N       latency samples per route (default 2000)
  --tunnels N          cycles for the tunnels-per-second run (default 5000)
  --requests N         HTTP requests per route (default 20000)
  --http-connections N kept-alive connections, one request in flight each (default 4)
  --idle-tunnels N     idle tunnels held for the memory reading (default 1000)
  --rounds N           paired direct/proxy rounds per metric; medians are reported (default 3)
  --proxy-cpu N|any    CPU for the proxy (default 0; any: the scheduler's choice)
  --bench-cpu N|any    CPU for the bench's clients and servers (default 1; any: unpinned)
  --proxy-arg ARG      extra argument for `nono proxy` (repeatable)
  --direct-only        measure only the direct paths (checks the harness without a proxy)
  --intercept          measure TLS interception instead (uses --bytes, --iterations,
                       --requests, --rounds, --leaf-names)
  --leaf-names N       distinct names per round for the leaf-cache run (default 200)
  --json               print JSON instead of the table";

/// Parsed command line.
#[derive(Debug)]
struct Args {
    nono: Option<PathBuf>,
    bytes: u64,
    iterations: usize,
    tunnels: usize,
    requests: usize,
    http_connections: usize,
    idle_tunnels: usize,
    rounds: usize,
    /// `None`: leave placement to the scheduler.
    proxy_cpu: Option<usize>,
    /// `None`: leave placement to the scheduler.
    bench_cpu: Option<usize>,
    proxy_args: Vec<String>,
    direct_only: bool,
    intercept: bool,
    leaf_names: usize,
    json: bool,
}

fn main() -> Result<()> {
    let args = parse_args(std::env::args().skip(1))?;
    let pinned = sys::available_cpus() >= 2;
    if let Some(cpu) = args.bench_cpu.filter(|_| pinned) {
        sys::pin_current_thread(cpu)?;
    } else {
        eprintln!("nono-bench: fewer than two CPUs; not pinning");
    }
    let nofile = sys::raise_nofile_limit()?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("build tokio runtime")?;
    if let (true, Some(nono)) = (args.intercept, &args.nono) {
        let opts = intercept::Options {
            bytes: args.bytes,
            iterations: args.iterations,
            requests: args.requests,
            names: args.leaf_names,
            rounds: args.rounds,
            proxy_cpu: args.proxy_cpu.filter(|_| pinned),
            proxy_args: args.proxy_args.clone(),
        };
        let (rows, mut config) = runtime.block_on(intercept::run(nono, &opts))?;
        config["bench_cpu"] = json!(args.bench_cpu.filter(|_| pinned));
        if args.json {
            let out = report::tri_json(config, &rows);
            println!("{}", serde_json::to_string_pretty(&out)?);
        } else {
            print!("{}", report::tri_table(&rows));
        }
        return Ok(());
    }
    let rows = runtime.block_on(run(&args, pinned))?;
    let config = json!({
        "nono": args.nono.as_ref().map(|p| p.display().to_string()),
        "bytes": args.bytes,
        "iterations": args.iterations,
        "tunnels": args.tunnels,
        "rate_concurrency": RATE_CONCURRENCY,
        "requests": args.requests,
        "http_connections": args.http_connections,
        "idle_tunnels": args.idle_tunnels,
        "rounds": args.rounds,
        "proxy_args": args.proxy_args,
        "proxy_cpu": args.proxy_cpu.filter(|_| pinned),
        "bench_cpu": args.bench_cpu.filter(|_| pinned),
        "nofile_limit": nofile,
    });
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report::to_json(config, &rows))?
        );
    } else {
        print!("{}", report::table(&rows));
    }
    Ok(())
}

/// Runs every measurement and returns the rows in display order.
async fn run(args: &Args, pinned: bool) -> Result<Vec<Row>> {
    let tls = tls::make_pair()?;
    let plain_sink = bulk::spawn_sink(None).await?;
    let tls_sink = bulk::spawn_sink(Some(tls.server.clone())).await?;
    // Idle tunnels need an echo that stays open; the cycles one that closes first.
    let echo = latency::spawn_echo(false).await?;
    let echo_once = latency::spawn_echo(true).await?;
    let origin = http::spawn_origin().await?;
    let proxy_cpu = args.proxy_cpu.filter(|_| pinned);
    let mut rows = Vec::new();

    // Memory first, on a fresh proxy that has served nothing else.
    if let Some(nono) = args.nono.as_ref().filter(|_| !args.direct_only) {
        progress("memory (fresh proxy)");
        let mut extra = vec![
            "--max-connections".to_string(),
            (args.idle_tunnels + RSS_CONNECTION_HEADROOM).to_string(),
        ];
        extra.extend(args.proxy_args.iter().cloned());
        let proxy = proxy::Proxy::start(nono, proxy_cpu, "rss", &extra)?;
        let memory = rss::measure(proxy.pid(), &route_via(&proxy), echo, args.idle_tunnels)
            .await
            .with_context(|| format!("memory run; proxy log: {}", proxy.log_path.display()))?;
        rows.push(Row::proxy_only("RSS idle", "KiB", memory.idle_kib as f64));
        rows.push(Row::proxy_only(
            format!("RSS with {} idle tunnels", memory.tunnels),
            "KiB",
            memory.loaded_kib as f64,
        ));
        rows.push(Row::proxy_only(
            "RSS per idle tunnel",
            "KiB",
            memory.per_tunnel_kib(),
        ));
    }

    let proxy = match (&args.nono, args.direct_only) {
        (Some(nono), false) => Some(proxy::Proxy::start(
            nono,
            proxy_cpu,
            "main",
            &args.proxy_args,
        )?),
        _ => None,
    };
    let via = proxy.as_ref().map(route_via);

    let n = args.rounds;
    progress("bulk, plain TCP");
    let (d, p) = paired(n, &via, |r| bulk::measure(r, plain_sink, None, args.bytes)).await?;
    rows.push(Row::rounds("bulk CONNECT, plain", "MiB/s", &d, &p));

    progress("bulk, TLS");
    let (d, p) = paired(n, &via, |r| {
        bulk::measure(r, tls_sink, Some(&tls), args.bytes)
    })
    .await?;
    rows.push(Row::rounds("bulk CONNECT, TLS", "MiB/s", &d, &p));

    progress("new-tunnel latency");
    let (d, p) = paired(n, &via, |r| {
        latency::measure_latency(r, echo_once, args.iterations)
    })
    .await?;
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    let p50 = |v: &[latency::Percentiles]| v.iter().map(|x| us(x.p50)).collect::<Vec<_>>();
    let p99 = |v: &[latency::Percentiles]| v.iter().map(|x| us(x.p99)).collect::<Vec<_>>();
    rows.push(Row::rounds(
        "new tunnel + 1B echo, p50",
        "us",
        &p50(&d),
        &p50(&p),
    ));
    rows.push(Row::rounds(
        "new tunnel + 1B echo, p99",
        "us",
        &p99(&d),
        &p99(&p),
    ));
    if !p.is_empty() {
        let added: Vec<f64> = p50(&p).iter().zip(p50(&d)).map(|(p, d)| p - d).collect();
        if let Some(m) = report::median(&added) {
            rows.push(Row::proxy_only("added latency, p50", "us", m));
        }
    }

    progress("new tunnels per second");
    let (d, p) = paired(n, &via, |r| {
        latency::measure_rate(r, echo_once, args.tunnels, RATE_CONCURRENCY)
    })
    .await?;
    rows.push(Row::rounds("new tunnels, 8 in flight", "per s", &d, &p));

    progress("plain HTTP, keep-alive");
    let (d, p) = paired(n, &via, |r| {
        http::measure(r, origin, args.requests, args.http_connections)
    })
    .await?;
    let rate = |v: &[http::Rate]| v.iter().map(|x| x.per_sec).collect::<Vec<_>>();
    rows.push(Row::rounds(
        format!("HTTP keep-alive, {} conns", args.http_connections),
        "req/s",
        &rate(&d),
        &rate(&p),
    ));
    let reconnects: usize = p.iter().map(|x| x.reconnects).sum();
    if reconnects > 0 {
        rows.push(Row::proxy_only(
            "HTTP reconnects (keep-alive broken)",
            "count",
            reconnects as f64,
        ));
    }

    if let Some(proxy) = &proxy {
        rows.push(Row::proxy_only(
            "RSS after workload (main proxy)",
            "KiB",
            sys::rss_kib(proxy.pid())? as f64,
        ));
    }
    Ok(rows)
}

/// The CONNECT route through `proxy`.
fn route_via(proxy: &proxy::Proxy) -> Route {
    Route::Proxy {
        port: proxy.port,
        auth: proxy.auth.clone(),
    }
}

/// Runs `measure` in `rounds` paired rounds: directly, then through the proxy if there is one.
/// Returns the direct and the proxied results (the latter empty without a proxy).
async fn paired<'a, T, F, Fut>(
    rounds: usize,
    via: &'a Option<Route>,
    mut measure: F,
) -> Result<(Vec<T>, Vec<T>)>
where
    F: FnMut(&'a Route) -> Fut,
    Fut: std::future::Future<Output = Result<T>>,
{
    const DIRECT: Route = Route::Direct;
    let (mut direct, mut proxied) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        direct.push(measure(&DIRECT).await?);
        if let Some(route) = via {
            proxied.push(measure(route).await?);
        }
    }
    Ok((direct, proxied))
}

/// Notes progress on stderr, leaving stdout to the results.
fn progress(what: &str) {
    eprintln!("nono-bench: {what}");
}

/// Parses the command line (without the program name).
fn parse_args(mut argv: impl Iterator<Item = String>) -> Result<Args> {
    let mut args = Args {
        nono: None,
        bytes: 1 << 30,
        iterations: 2000,
        tunnels: 5000,
        requests: 20_000,
        http_connections: 4,
        idle_tunnels: 1000,
        rounds: 3,
        proxy_cpu: Some(0),
        bench_cpu: Some(1),
        proxy_args: Vec::new(),
        direct_only: false,
        intercept: false,
        leaf_names: 200,
        json: false,
    };
    while let Some(flag) = argv.next() {
        let mut value = || argv.next().with_context(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--nono" => args.nono = Some(PathBuf::from(value()?)),
            "--bytes" => args.bytes = parse_size(&value()?)?,
            "--iterations" => args.iterations = parse_count(&flag, &value()?)?,
            "--tunnels" => args.tunnels = parse_count(&flag, &value()?)?,
            "--requests" => args.requests = parse_count(&flag, &value()?)?,
            "--http-connections" => args.http_connections = parse_count(&flag, &value()?)?.max(1),
            "--idle-tunnels" => args.idle_tunnels = parse_count(&flag, &value()?)?,
            "--rounds" => args.rounds = parse_count(&flag, &value()?)?.max(1),
            "--proxy-cpu" => args.proxy_cpu = parse_cpu(&flag, &value()?)?,
            "--bench-cpu" => args.bench_cpu = parse_cpu(&flag, &value()?)?,
            "--proxy-arg" => args.proxy_args.push(value()?),
            "--direct-only" => args.direct_only = true,
            "--intercept" => args.intercept = true,
            "--leaf-names" => args.leaf_names = parse_count(&flag, &value()?)?.max(1),
            "--json" => args.json = true,
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => bail!("unknown argument {other:?}\n{USAGE}"),
        }
    }
    if args.intercept && (args.direct_only || args.nono.is_none()) {
        bail!("--intercept needs --nono PATH and no --direct-only\n{USAGE}");
    }
    if args.nono.is_none() && !args.direct_only {
        bail!("--nono PATH is required (or --direct-only)\n{USAGE}");
    }
    Ok(args)
}

/// Parses a CPU number, or `any` for no pinning.
fn parse_cpu(flag: &str, value: &str) -> Result<Option<usize>> {
    if value == "any" {
        return Ok(None);
    }
    parse_count(flag, value).map(Some)
}

/// Parses a non-negative integer flag value.
fn parse_count(flag: &str, value: &str) -> Result<usize> {
    value
        .parse()
        .with_context(|| format!("{flag}: {value:?} is not a non-negative integer"))
}

/// Parses `1GiB`, `512MiB`, `64KiB`, `100MB`, `1G`, or a plain byte count.
fn parse_size(text: &str) -> Result<u64> {
    let digits_end = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, suffix) = text.split_at(digits_end);
    let number: u64 = number
        .parse()
        .with_context(|| format!("--bytes: {text:?} does not start with a number"))?;
    let factor: u64 = match suffix.to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kib" => 1 << 10,
        "m" | "mib" => 1 << 20,
        "g" | "gib" => 1 << 30,
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        other => bail!("--bytes: unknown unit {other:?} (use B, KiB, MiB, GiB, KB, MB, GB)"),
    };
    number
        .checked_mul(factor)
        .with_context(|| format!("--bytes: {text:?} overflows"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_with_binary_and_decimal_units() {
        assert_eq!(parse_size("1GiB").unwrap(), 1 << 30);
        assert_eq!(parse_size("256MiB").unwrap(), 256 << 20);
        assert_eq!(parse_size("100MB").unwrap(), 100_000_000);
        assert_eq!(parse_size("4096").unwrap(), 4096);
        assert!(parse_size("1XB").is_err());
        assert!(parse_size("GiB").is_err());
    }

    #[test]
    fn direct_only_needs_no_binary() {
        let args = parse_args(["--direct-only".to_string()].into_iter()).unwrap();
        assert!(args.direct_only && args.nono.is_none());
        assert!(parse_args(std::iter::empty()).is_err());
    }
}
