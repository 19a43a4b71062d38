//! End-to-end tests of upstream (corporate) proxy chaining: the real `nono proxy` and
//! `nono run` binaries in front of a real tinyproxy the test starts, with HTTPS origins on
//! loopback.
//!
//! Every test that needs tinyproxy fails with an install hint when it is missing.

mod support;

use std::process::Command;
use std::time::Duration;

use support::*;

/// Upper bound for one `nono` invocation.
const T: Duration = Duration::from_secs(20);
/// The upstream proxy's user and password in the authenticated tests.
const TP_USER: &str = "corp-user";
const TP_PASSWORD: &str = "pw-Zq81-upstream-secret";
/// Environment variables nono reads for the upstream proxy; removed so the tests' own
/// environment cannot change what they check.
const UPSTREAM_VARS: [&str; 2] = ["NONO_UPSTREAM_PROXY", "NONO_UPSTREAM_BYPASS"];

/// `nono`, without arguments yet, with exactly the upstream variables in `env`.
fn nono_cmd(env: &[(&str, &str)]) -> Command {
    let mut cmd = nono_command();
    for var in UPSTREAM_VARS {
        cmd.env_remove(var);
    }
    cmd.envs(env.iter().copied());
    cmd
}

/// `nono proxy --json -v ARGS` with exactly the upstream variables in `env`; killed on drop.
fn start_proxy(args: &[&str], env: &[(&str, &str)]) -> ProxyProcess {
    let p = ProxyProcess::start_command(nono_cmd(env), &[&["-v"], args].concat());
    assert!(p.json["url"].is_string(), "no url in the JSON: {}", p.json);
    p
}

/// `nono proxy` chained to `upstream`, allowing `localhost`, with `extra` arguments and none of
/// the upstream variables.
fn start_chained(upstream: &str, extra: &[&str]) -> ProxyProcess {
    let args = [
        &["--upstream-proxy", upstream, "--allow-domain", "localhost"],
        extra,
    ]
    .concat();
    start_proxy(&args, &[])
}

/// Runs `nono ARGS` with exactly the upstream variables in `env`; (exit code, stdout, stderr).
fn nono_with_env(args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let mut cmd = nono_cmd(env);
    cmd.args(args);
    run_command(cmd, T)
}

/// `curl https://localhost:PORT/PATH` through the proxy at `proxy_url`; (success, stdout,
/// stderr). `--noproxy ''` keeps a `NO_PROXY` in the test's environment from skipping it.
fn curl_via(proxy_url: &str, ca: &TestCa, port: u16, path: &str) -> (bool, String, String) {
    let out = Command::new("curl")
        .args([
            "-sS",
            "--fail",
            "--max-time",
            "10",
            "--noproxy",
            "",
            "--cacert",
        ])
        .arg(&ca.ca_path)
        .args([
            "--proxy",
            proxy_url,
            &format!("https://localhost:{port}{path}"),
        ])
        .output()
        .expect("curl runs (install curl)");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Panics if tinyproxy received no request naming `localhost:PORT`.
fn assert_chained(tp: &Tinyproxy, port: u16) {
    let requests = tp.requests();
    assert!(
        requests
            .iter()
            .any(|r| r.contains(&format!("CONNECT localhost:{port}"))),
        "tinyproxy did not see the tunnel to localhost:{port}:\n{}",
        tp.log()
    );
}

#[test]
fn connect_is_chained_through_tinyproxy_without_auth() {
    let tp = Tinyproxy::start();
    let ca = TestCa::new();
    let origin = HttpOrigin::start_tls(&ca);
    let p = start_chained(&tp.spec(None), &[]);
    assert_eq!(
        p.json["upstream_proxy"],
        tp.spec(None).as_str(),
        "{}",
        p.json
    );
    let (ok, out, err) = curl_via(&p.url, &ca, origin.port, "/chained");
    assert!(
        ok,
        "curl through nono and tinyproxy failed: {err}\n--- nono\n{}",
        p.stderr()
    );
    assert!(out.contains("\"/chained\""), "{out}");
    assert_chained(&tp, origin.port);
    assert_eq!(origin.requests().len(), 1);
    let log = p.stderr();
    assert!(
        log.contains(&format!("ALLOW CONNECT localhost:{}", origin.port)),
        "{log}"
    );
}

#[test]
fn upstream_credentials_from_the_flag_work_and_the_password_never_appears() {
    let tp = Tinyproxy::start_with(Some((TP_USER, TP_PASSWORD)));
    let ca = TestCa::new();
    let origin = HttpOrigin::start_tls(&ca);
    let spec = tp.spec(Some(&format!("{TP_USER}:{TP_PASSWORD}")));
    let p = start_chained(&spec, &[]);
    let (ok, out, err) = curl_via(&p.url, &ca, origin.port, "/authed");
    assert!(
        ok,
        "curl failed: {err}\n--- nono\n{}\n--- tinyproxy\n{}",
        p.stderr(),
        tp.log()
    );
    assert!(out.contains("\"/authed\""), "{out}");
    assert_chained(&tp, origin.port);
    // Shown without userinfo; the password is in neither the JSON nor the log.
    assert_eq!(
        p.json["upstream_proxy"],
        tp.spec(None).as_str(),
        "{}",
        p.json
    );
    assert!(!p.json.to_string().contains(TP_PASSWORD), "{}", p.json);
    assert!(!p.stderr().contains(TP_PASSWORD), "{}", p.stderr());

    // A wrong password: the client gets a 502 naming the upstream's refusal.
    let wrong = tp.spec(Some(&format!("{TP_USER}:not-the-password")));
    let p = start_chained(&wrong, &[]);
    let target = format!("localhost:{}", origin.port);
    let (status, body) =
        connect_tunnel(p.port, &target, Some(&p.basic_auth())).expect_err("tinyproxy refuses");
    assert_eq!(status, 502, "{body}");
    assert!(body.contains("upstream_proxy_status_40"), "{body}");
    assert!(!p.stderr().contains("not-the-password"), "{}", p.stderr());
}

#[test]
fn upstream_proxy_and_bypass_are_read_from_the_environment() {
    let tp = Tinyproxy::start_with(Some((TP_USER, TP_PASSWORD)));
    let ca = TestCa::new();
    let origin = HttpOrigin::start_tls(&ca);
    let spec = tp.spec(Some(&format!("{TP_USER}:{TP_PASSWORD}")));
    let p = start_proxy(
        &["--allow-domain", "localhost"],
        &[("NONO_UPSTREAM_PROXY", &spec)],
    );
    assert_eq!(
        p.json["upstream_proxy"],
        tp.spec(None).as_str(),
        "{}",
        p.json
    );
    let (ok, _, err) = curl_via(&p.url, &ca, origin.port, "/from-env");
    assert!(ok, "curl failed: {err}\n--- nono\n{}", p.stderr());
    assert_chained(&tp, origin.port);
    assert!(!p.json.to_string().contains(TP_PASSWORD), "{}", p.json);
    assert!(!p.stderr().contains(TP_PASSWORD), "{}", p.stderr());

    // NONO_UPSTREAM_BYPASS (comma-separated, spaces allowed) sends localhost direct.
    let before = tp.requests().len();
    let p = start_proxy(
        &["--allow-domain", "localhost"],
        &[
            ("NONO_UPSTREAM_PROXY", &spec),
            ("NONO_UPSTREAM_BYPASS", "*.corp.example, localhost"),
        ],
    );
    let (ok, out, err) = curl_via(&p.url, &ca, origin.port, "/bypassed-env");
    assert!(ok, "curl failed: {err}\n--- nono\n{}", p.stderr());
    assert!(out.contains("\"/bypassed-env\""), "{out}");
    assert_eq!(
        tp.requests().len(),
        before,
        "a bypassed host went through tinyproxy:\n{}",
        tp.log()
    );
}

#[test]
fn bypass_flag_reaches_matching_hosts_directly_and_others_through_the_chain() {
    let tp = Tinyproxy::start();
    let ca = TestCa::new();
    let origin = HttpOrigin::start_tls(&ca);
    let p = start_chained(&tp.spec(None), &["--upstream-bypass", "localhost"]);
    let (ok, out, err) = curl_via(&p.url, &ca, origin.port, "/direct");
    assert!(ok, "curl failed: {err}\n--- nono\n{}", p.stderr());
    assert!(out.contains("\"/direct\""), "{out}");
    assert!(
        tp.requests().is_empty(),
        "bypassed, yet tinyproxy saw:\n{}",
        tp.log()
    );

    // A pattern that does not match leaves localhost on the chain.
    let p = start_chained(&tp.spec(None), &["--upstream-bypass", "*.corp.example"]);
    let (ok, _, err) = curl_via(&p.url, &ca, origin.port, "/chained");
    assert!(ok, "curl failed: {err}\n--- nono\n{}", p.stderr());
    assert_chained(&tp, origin.port);
}

#[test]
fn denied_hosts_never_reach_tinyproxy() {
    let tp = Tinyproxy::start();
    let ca = TestCa::new();
    let origin = HttpOrigin::start_tls(&ca);
    let p = start_chained(&tp.spec(None), &[]);
    let auth = p.basic_auth();
    for (target, reason) in [
        ("denied-host.example:443", "not_allowlisted"),
        ("169.254.169.254:80", "denied_metadata"),
        ("metadata.google.internal:80", "denied_metadata"),
    ] {
        let (status, body) = connect_tunnel(p.port, target, Some(&auth)).expect_err(target);
        assert_eq!(status, 403, "{target}: {body}");
        assert!(body.contains(reason), "{target}: {body}");
        let (status, body) = raw_request(
            p.port,
            format!("GET http://{target}/x HTTP/1.1\r\nHost: {target}\r\nProxy-Authorization: {auth}\r\n\r\n")
                .as_bytes(),
        );
        assert_eq!(status, 403, "forward {target}: {body}");
    }
    let log = tp.log();
    assert!(
        tp.requests().is_empty(),
        "a denied request reached tinyproxy:\n{log}"
    );
    for name in ["denied-host", "169.254", "metadata"] {
        assert!(!log.contains(name), "`{name}` in tinyproxy's log:\n{log}");
    }
    // tinyproxy was there all along: the allowed host goes through it.
    let (ok, _, err) = curl_via(&p.url, &ca, origin.port, "/ok");
    assert!(ok, "{err}");
    assert_chained(&tp, origin.port);
    assert_eq!(tp.requests().len(), 1, "{}", tp.log());
}

/// Arguments, environment, what stderr must name, expected exit code.
type Case = (
    &'static [&'static str],
    &'static [(&'static str, &'static str)],
    &'static str,
    i32,
);

#[test]
fn upstream_flags_that_cannot_work_are_usage_errors_in_one_line() {
    // `nono run` reports its own failures, usage errors included, as 125 (see exit.rs).
    let cases: [Case; 5] = [
        (
            &["proxy", "--upstream-bypass", "x.example"],
            &[],
            "--upstream-bypass",
            2,
        ),
        (
            &["proxy"],
            &[("NONO_UPSTREAM_BYPASS", "x.example")],
            "upstream",
            2,
        ),
        (
            &[
                "proxy",
                "--upstream-proxy",
                "http://u:pw-no-port-secret@127.0.0.1",
            ],
            &[],
            "--upstream-proxy",
            2,
        ),
        (
            &["proxy", "--upstream-proxy", "https://127.0.0.1:3128"],
            &[],
            "--upstream-proxy",
            2,
        ),
        (
            &["run", "--upstream-bypass", "x.example", "--", "true"],
            &[],
            "--upstream-bypass",
            125,
        ),
    ];
    for (args, env, names, expected) in cases {
        let (code, out, err) = nono_with_env(args, env);
        assert_eq!(
            code, expected,
            "{args:?} {env:?}: stdout:\n{out}\nstderr:\n{err}"
        );
        assert_eq!(
            err.trim().lines().count(),
            1,
            "{args:?}: not one line:\n{err}"
        );
        assert!(
            err.contains(names),
            "{args:?}: does not name {names}:\n{err}"
        );
        assert!(
            !err.contains("pw-no-port-secret"),
            "password echoed:\n{err}"
        );
    }
}

#[test]
fn nono_run_curl_goes_through_the_chain() {
    let tp = Tinyproxy::start_with(Some((TP_USER, TP_PASSWORD)));
    let ca = TestCa::new();
    let origin = HttpOrigin::start_tls(&ca);
    let spec = tp.spec(Some(&format!("{TP_USER}:{TP_PASSWORD}")));
    let ca_dir = ca
        .ca_path
        .parent()
        .expect("CA dir")
        .to_string_lossy()
        .into_owned();
    let ca_path = ca.ca_path.to_string_lossy().into_owned();
    let url = format!("https://localhost:{}/from-sandbox", origin.port);
    // `nono run` chained through tinyproxy, running `curl CURL_ARGS --cacert CA URL`.
    let run_curl = |curl_args: &[&str]| {
        let nono_args = [
            "run",
            "--allow-domain",
            "localhost",
            "--read",
            &ca_dir,
            "--",
            "curl",
        ];
        let args = [&nono_args[..], curl_args, &["--cacert", &ca_path, &url]].concat();
        // The password goes in the environment: nono run refuses it on the command line.
        nono_with_env(&args, &[("NONO_UPSTREAM_PROXY", spec.as_str())])
    };
    // `--noproxy ''` makes curl use HTTPS_PROXY whatever NO_PROXY says: the only way out of
    // the sandbox.
    let (code, out, err) = run_curl(&["-sS", "--fail", "--max-time", "10", "--noproxy", ""]);
    assert_eq!(
        code,
        0,
        "stdout:\n{out}\nstderr:\n{err}\n--- tinyproxy\n{}",
        tp.log()
    );
    assert!(out.contains("\"/from-sandbox\""), "{out}");
    assert_chained(&tp, origin.port);
    assert!(!err.contains(TP_PASSWORD), "{err}");

    // Direct (`--noproxy '*'`), the sandbox blocks the connection: the proxy is the only
    // path. (Without it curl goes through the proxy: an allowed `localhost` is not in
    // NO_PROXY.)
    let (code, out, _) = run_curl(&["-sS", "--fail", "--max-time", "10", "--noproxy", "*"]);
    assert_ne!(code, 0, "a direct connection left the sandbox: {out}");
}

/// Regression: `nono run --upstream-proxy http://user:PASS@...` put the password in nono's
/// command line, which the confined child can read from /proc/PPID/cmdline.
#[test]
fn nono_run_refuses_upstream_credentials_on_the_command_line() {
    let spec = "http://user:cmdline-S3CRET@127.0.0.1:9";
    let (code, out, err) = nono_with_env(
        &[
            "run",
            "--upstream-proxy",
            spec,
            "--allow-domain",
            "localhost",
            "--",
            "true",
        ],
        &[],
    );
    assert_eq!(code, 125, "{out}{err}");
    assert!(err.contains("NONO_UPSTREAM_PROXY"), "{err}");
    assert!(!err.contains("cmdline-S3CRET"), "{err}");
    // The same value in the environment as well does not take it off the command line.
    let (code, out, err) = nono_with_env(
        &[
            "run",
            &format!("--upstream-proxy={spec}"),
            "--allow-domain",
            "localhost",
            "--",
            "true",
        ],
        &[("NONO_UPSTREAM_PROXY", spec)],
    );
    assert_eq!(code, 125, "{out}{err}");
    assert!(err.contains("NONO_UPSTREAM_PROXY"), "{err}");
    // Through the environment it is accepted, and the child sees it neither in its own
    // environment nor in nono's command line.
    let (code, out, err) = nono_with_env(
        &[
            "run",
            "-q",
            "--allow-domain",
            "localhost",
            "--",
            "sh",
            "-c",
            "tr '\\0' ' ' </proc/$PPID/cmdline; env",
        ],
        &[("NONO_UPSTREAM_PROXY", spec)],
    );
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("--allow-domain"), "cmdline not read: {out}");
    assert!(!out.contains("cmdline-S3CRET"), "{out}");
}

#[test]
fn a_bypassed_target_that_is_the_upstream_proxy_itself_is_refused() {
    let tp = Tinyproxy::start();
    let p = start_proxy(
        &[
            "--upstream-proxy",
            &tp.spec(None),
            "--upstream-bypass",
            "proxy.corp.test",
            "--allow-domain",
            "proxy.corp.test",
            "--resolve",
            "proxy.corp.test=127.0.0.1",
        ],
        &[],
    );
    let auth = p.basic_auth();
    let (status, body) = raw_request(
        p.port,
        format!(
            "CONNECT proxy.corp.test:{} HTTP/1.1\r\nProxy-Authorization: {auth}\r\n\r\n",
            tp.port
        )
        .as_bytes(),
    );
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("denied_upstream_proxy"), "{body}");
}

#[test]
fn the_child_inherits_no_proxy_variable_of_the_parent() {
    let secret_vars = [
        ("socks_proxy", "http://corpuser:S3cretPass@corp:1080"),
        (
            "npm_config_https_proxy",
            "http://corpuser:S3cretPass@corp:3128",
        ),
        ("PIP_PROXY", "http://corpuser:S3cretPass@corp:3128"),
        (
            "GLOBAL_AGENT_HTTP_PROXY",
            "http://corpuser:S3cretPass@corp:3128",
        ),
    ];
    let mut cmd = nono_cmd(&[]);
    cmd.envs(secret_vars.iter().copied());
    cmd.args(["run", "-q", "--allow-domain", "example.com", "--", "env"]);
    let (code, out, err) = run_command(cmd, T);
    assert_eq!(code, 0, "stdout:\n{out}\nstderr:\n{err}");
    assert!(
        !out.contains("S3cretPass"),
        "a proxy password reached the child:\n{out}"
    );
    assert!(out.contains("HTTPS_PROXY=http://nono:"), "{out}");
}

#[test]
fn loopback_targets_skip_a_remote_upstream_proxy_but_others_are_chained() {
    let echo = EchoServer::plain();
    // The upstream proxy is named (not this machine's loopback) and does not answer.
    let p = start_proxy(
        &[
            "--upstream-proxy",
            "proxy.corp.test:9",
            "--resolve",
            "proxy.corp.test=127.0.0.1",
            "--allow-domain",
            "127.0.0.1",
            "--allow-domain",
            "remote.test",
            "--resolve",
            "remote.test=10.255.0.1",
        ],
        &[],
    );
    let auth = p.basic_auth();
    let tunnel = connect_tunnel(p.port, &format!("127.0.0.1:{}", echo.port), Some(&auth));
    assert!(
        tunnel.is_ok(),
        "loopback target was chained: {:?}",
        tunnel.err()
    );
    let (status, body) = raw_request(
        p.port,
        format!("CONNECT remote.test:443 HTTP/1.1\r\nProxy-Authorization: {auth}\r\n\r\n")
            .as_bytes(),
    );
    assert_eq!(status, 502, "{body}");
    assert!(body.contains("upstream_proxy"), "{body}");
}
