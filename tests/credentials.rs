//! End-to-end tests of credential routes: the real `nono proxy` and `nono run` binaries, a
//! profile with custom credentials written by the test, and a recording HTTPS origin (trusted
//! through the route's `tls_ca`) standing in for the API.
//!
//! What is pinned: the origin receives the real secret and never the phantom; the client side
//! (the proxy's JSON, `nono run`'s child) only ever holds the phantom; a route refuses requests
//! without the phantom, outside its endpoint rules and over CONNECT; an unloadable credential is
//! a 503 in `nono proxy` and a refusal to start in `nono run`.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::thread;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::*;

/// Upper bound for one `nono` invocation.
const T: Duration = Duration::from_secs(20);
/// Size of the streamed upload.
const UPLOAD_BYTES: usize = 100 * 1024 * 1024;
/// Chunk size of the streamed upload.
const UPLOAD_CHUNK: usize = 64 * 1024;
/// Largest resident set the proxy may reach while relaying the upload.
const MAX_PROXY_RSS_KIB: u64 = 64 * 1024;
/// Exit code of `nono run` when nono itself fails.
const EXIT_NONO_FAILED: i32 = 125;

/// A recording HTTPS origin, the CA that signed its certificate, and a temp dir for profiles
/// and credential files.
struct Fixture {
    ca: TestCa,
    origin: HttpOrigin,
    dir: TempDir,
}

impl Fixture {
    fn new() -> Fixture {
        let ca = TestCa::new();
        let origin = HttpOrigin::start_tls(&ca);
        Fixture {
            ca,
            origin,
            dir: TempDir::new("cred"),
        }
    }

    /// A custom credential for the origin (`https://HOST:PORT/base`, trusting the test CA)
    /// read from `key`, with `extra` fields merged in.
    fn service(&self, host: &str, key: &str, extra: Value) -> Value {
        let mut svc = json!({
            "upstream": format!("https://{host}:{}/base", self.origin.port),
            "credential_key": key,
            "tls_ca": self.ca.ca_path,
        });
        if let (Some(svc), Value::Object(extra)) = (svc.as_object_mut(), extra) {
            svc.extend(extra);
        }
        svc
    }

    /// Writes a profile defining `services` under `network.custom_credentials`.
    fn profile(&self, services: &[(&str, Value)]) -> String {
        let custom: serde_json::Map<String, Value> = services
            .iter()
            .map(|(name, svc)| (name.to_string(), svc.clone()))
            .collect();
        let profile = json!({
            "meta": {"name": "cred-e2e"},
            "network": {"custom_credentials": custom},
        });
        let path = self.dir.path().join("profile.json");
        std::fs::write(&path, profile.to_string()).expect("write profile");
        path.to_string_lossy().into_owned()
    }

    /// A path inside the fixture's temp dir.
    fn file(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

/// The `routes` entry named `name` of a `nono proxy --json` line.
fn route<'a>(json: &'a Value, name: &str) -> &'a Value {
    json["routes"]
        .as_array()
        .and_then(|routes| routes.iter().find(|r| r["name"] == name))
        .unwrap_or_else(|| panic!("no route `{name}` in {json}"))
}

/// The variable `key` of the `env` object of a `nono proxy --json` line.
fn env_of(json: &Value, key: &str) -> String {
    json["env"][key]
        .as_str()
        .unwrap_or_else(|| panic!("no env `{key}` in {json}"))
        .to_string()
}

/// `--profile PROFILE --credential C... EXTRA...`.
fn profile_args<'a>(profile: &'a str, credentials: &[&'a str], extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec!["--profile", profile];
    for credential in credentials {
        args.extend(["--credential", credential]);
    }
    args.extend(extra);
    args
}

/// Sends `METHOD PATH` with `headers` to the proxy as an origin-form request.
fn request(port: u16, method: &str, path: &str, headers: &[(&str, &str)]) -> (u16, String) {
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\nContent-Length: 0\r\n"
    );
    for (name, value) in headers {
        req.push_str(&format!("{name}: {value}\r\n"));
    }
    req.push_str("\r\n");
    raw_request(port, req.as_bytes())
}

/// The JSON body the origin echoed back.
fn echoed(response: &str) -> Value {
    let body = response.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    serde_json::from_str(body).unwrap_or_else(|e| panic!("not the origin's JSON ({e}): {response}"))
}

/// Panics if `needle` appears anywhere in what the origin received.
fn assert_origin_never_saw(req: &RecordedRequest, needle: &str) {
    assert!(
        !req.path.contains(needle),
        "`{needle}` in path {}",
        req.path
    );
    for (name, value) in &req.headers {
        assert!(
            !value.contains(needle),
            "`{needle}` in header {name}: {value}"
        );
    }
    let body = String::from_utf8_lossy(&req.body);
    assert!(!body.contains(needle), "`{needle}` in the body");
}

/// The last request the origin received.
fn last_request(origin: &HttpOrigin) -> RecordedRequest {
    origin
        .requests()
        .pop()
        .expect("the origin received a request")
}

#[test]
fn proxy_json_lists_routes_and_the_origin_gets_the_real_secret_never_the_phantom() {
    const ENV_SECRET: &str = "sk-e2e-env-5d1f0c9a";
    const FILE_SECRET: &str = "sk-e2e-file-77b2e410";
    let fx = Fixture::new();
    let key_file = fx.file("api.key");
    std::fs::write(&key_file, format!("{FILE_SECRET}\n")).expect("write key file");
    let profile = fx.profile(&[
        (
            "echo",
            fx.service("localhost", "env://NONO_E2E_ECHO_SECRET", json!({"env_var": "ECHO_API_KEY"})),
        ),
        (
            "filekey",
            fx.service(
                "127.0.0.1",
                &format!("file://{}", key_file.display()),
                json!({"inject_header": "X-Api-Key", "credential_format": "{}", "env_var": "FILEKEY_TOKEN"}),
            ),
        ),
    ]);
    let p = ProxyProcess::start_with_env(
        &profile_args(&profile, &["echo", "filekey"], &[]),
        &[("NONO_E2E_ECHO_SECRET", ENV_SECRET)],
    );

    let echo = route(&p.json, "echo");
    let local = format!("http://127.0.0.1:{}/echo", p.port);
    assert_eq!(echo["local_url"], local.as_str(), "{echo}");
    assert_eq!(
        echo["upstream"],
        format!("https://localhost:{}/base", fx.origin.port).as_str(),
        "{echo}"
    );
    assert_eq!(
        echo["source"], "environment variable `NONO_E2E_ECHO_SECRET`",
        "{echo}"
    );
    assert_eq!(echo["loaded"], true, "{echo}");
    assert!(echo["error"].is_null(), "{echo}");
    let filekey = route(&p.json, "filekey");
    assert_eq!(
        filekey["local_url"],
        format!("http://127.0.0.1:{}/filekey", p.port).as_str()
    );
    assert_eq!(
        filekey["upstream"],
        format!("https://127.0.0.1:{}/base", fx.origin.port).as_str()
    );
    assert_eq!(
        filekey["source"],
        format!("file `{}`", key_file.display()).as_str()
    );
    assert_eq!(filekey["loaded"], true, "{filekey}");

    assert_eq!(env_of(&p.json, "ECHO_BASE_URL"), local);
    assert_eq!(
        env_of(&p.json, "FILEKEY_BASE_URL"),
        format!("http://127.0.0.1:{}/filekey", p.port)
    );
    let phantom = env_of(&p.json, "ECHO_API_KEY");
    let file_phantom = env_of(&p.json, "FILEKEY_TOKEN");
    assert_ne!(phantom, file_phantom, "each route has its own phantom");
    let line = p.json.to_string();
    for secret in [ENV_SECRET, FILE_SECRET] {
        assert!(!line.contains(secret), "secret in the JSON line: {line}");
    }

    let (status, resp) = request(
        p.port,
        "GET",
        "/echo/x/y?q=1",
        &[("Authorization", &bearer(&phantom))],
    );
    assert_eq!(status, 200, "{resp}\n--- stderr\n{}", p.stderr());
    let seen = last_request(&fx.origin);
    assert_eq!(seen.path, "/base/x/y?q=1");
    assert_eq!(
        seen.header("authorization"),
        Some(bearer(ENV_SECRET).as_str())
    );
    assert_eq!(
        seen.header("host"),
        Some(format!("localhost:{}", fx.origin.port).as_str())
    );
    assert_origin_never_saw(&seen, &phantom);
    // The client's response is the origin's; it echoes the request, so the secret went only
    // upstream, never back in a header the proxy added.
    assert_eq!(echoed(&resp)["path"], "/base/x/y?q=1");

    let (status, resp) = request(
        p.port,
        "POST",
        "/filekey/v1/items",
        &[("X-Api-Key", &file_phantom)],
    );
    assert_eq!(status, 200, "{resp}");
    let seen = last_request(&fx.origin);
    assert_eq!(seen.method, "POST");
    assert_eq!(seen.path, "/base/v1/items");
    assert_eq!(seen.header("x-api-key"), Some(FILE_SECRET));
    assert_origin_never_saw(&seen, &file_phantom);

    let log = p.stderr();
    for secret in [ENV_SECRET, FILE_SECRET, &phantom, &file_phantom] {
        assert!(
            !log.contains(secret),
            "`{secret}` in the proxy's log:\n{log}"
        );
    }
}

#[test]
fn missing_wrong_or_foreign_phantom_is_401_and_the_session_token_is_accepted() {
    const SECRET: &str = "sk-e2e-auth-0a41";
    let fx = Fixture::new();
    let profile = fx.profile(&[
        (
            "echo",
            fx.service(
                "localhost",
                "env://NONO_E2E_AUTH_SECRET",
                json!({"env_var": "ECHO_API_KEY"}),
            ),
        ),
        (
            "other",
            fx.service(
                "127.0.0.1",
                "env://NONO_E2E_AUTH_SECRET",
                json!({"env_var": "OTHER_API_KEY"}),
            ),
        ),
    ]);
    let p = ProxyProcess::start_with_env(
        &profile_args(&profile, &["echo", "other"], &[]),
        &[("NONO_E2E_AUTH_SECRET", SECRET)],
    );
    let foreign = env_of(&p.json, "OTHER_API_KEY");
    let token = p.json["token"].as_str().expect("token").to_string();
    for (what, headers) in [
        ("no credential", vec![]),
        (
            "a wrong phantom",
            vec![("Authorization", bearer("nono_phantom_0000"))],
        ),
        (
            "another route's phantom",
            vec![("Authorization", bearer(&foreign))],
        ),
        ("the real secret", vec![("Authorization", bearer(SECRET))]),
        (
            "a wrong session token",
            vec![("X-Nono-Token", "0".repeat(64))],
        ),
        (
            "the session token as proxy auth",
            vec![("Proxy-Authorization", basic_auth(&token))],
        ),
    ] {
        let headers: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
        let (status, resp) = request(p.port, "GET", "/echo/x", &headers);
        assert_eq!(status, 401, "{what}: {resp}");
        assert!(resp.contains("phantom_token_required"), "{what}: {resp}");
    }
    assert!(
        fx.origin.requests().is_empty(),
        "a refused request reached the origin"
    );

    let (status, resp) = request(p.port, "GET", "/echo/x", &[("X-Nono-Token", &token)]);
    assert_eq!(status, 200, "{resp}");
    let seen = last_request(&fx.origin);
    assert_eq!(seen.header("authorization"), Some(bearer(SECRET).as_str()));
    assert!(
        seen.header("x-nono-token").is_none(),
        "the session token was forwarded"
    );
    assert_origin_never_saw(&seen, &token);
    assert_eq!(fx.origin.requests().len(), 1);
}

#[test]
fn allow_endpoint_flag_limits_a_route_to_matching_method_and_path() {
    let fx = Fixture::new();
    let profile = fx.profile(&[(
        "echo",
        fx.service(
            "localhost",
            "env://NONO_E2E_EP_SECRET",
            json!({"env_var": "ECHO_API_KEY"}),
        ),
    )]);
    let p = ProxyProcess::start_with_env(
        &profile_args(
            &profile,
            &["echo"],
            &["--allow-endpoint", "echo:GET:/base/ok/**"],
        ),
        &[("NONO_E2E_EP_SECRET", "sk-e2e-endpoint")],
    );
    assert_eq!(
        route(&p.json, "echo")["endpoint_rules"],
        json!(["GET /base/ok/**"])
    );
    let phantom = env_of(&p.json, "ECHO_API_KEY");
    let auth = bearer(&phantom);
    let (status, resp) = request(p.port, "GET", "/echo/ok/a/b", &[("Authorization", &auth)]);
    assert_eq!(status, 200, "{resp}");
    assert_eq!(last_request(&fx.origin).path, "/base/ok/a/b");
    for (method, path) in [
        ("GET", "/echo/other"),
        ("GET", "/echo/okay/a"),
        ("POST", "/echo/ok/a"),
        ("DELETE", "/echo/ok/a"),
        ("GET", "/echo/ok/../other"),
        ("GET", "/echo/ok/%2e%2e/other"),
    ] {
        let (status, resp) = request(p.port, method, path, &[("Authorization", &auth)]);
        assert!(status == 403 || status == 400, "{method} {path}: {resp}");
        if status == 403 {
            assert!(resp.contains("endpoint_rule"), "{method} {path}: {resp}");
        }
    }
    assert_eq!(
        fx.origin.requests().len(),
        1,
        "only the allowed request reached the origin"
    );
}

#[test]
fn forwarding_to_a_route_upstream_is_refused_as_connect_bypasses_l7_and_connect_is_intercepted() {
    let fx = Fixture::new();
    let profile = fx.profile(&[
        (
            "echo",
            fx.service("localhost", "env://NONO_E2E_L7_SECRET", json!({})),
        ),
        (
            "byip",
            fx.service(
                "127.0.0.1",
                "env://NONO_E2E_L7_SECRET",
                json!({"base_url_env": "BYIP_URL"}),
            ),
        ),
    ]);
    // Even explicitly allowlisted, a route's host is reachable only through the route: plain
    // HTTP is refused and a CONNECT is intercepted (TLS terminated by nono, tests/intercept.rs).
    let p = ProxyProcess::start_with_env(
        &profile_args(
            &profile,
            &["echo", "byip"],
            &["--allow-domain", "localhost", "--allow-domain", "127.0.0.1"],
        ),
        &[("NONO_E2E_L7_SECRET", "sk-e2e-l7")],
    );
    let auth = basic_auth(p.json["token"].as_str().expect("token"));
    for host in ["localhost", "127.0.0.1"] {
        let target = format!("{host}:{}", fx.origin.port);
        connect_tunnel(p.port, &target, Some(&auth))
            .unwrap_or_else(|e| panic!("CONNECT {target} must be intercepted, got {e:?}"));
        let (status, body) = raw_request(
            p.port,
            format!("GET http://{target}/base/x HTTP/1.1\r\nHost: {target}\r\nProxy-Authorization: {auth}\r\n\r\n").as_bytes(),
        );
        assert_eq!(status, 403, "forward to {target}: {body}");
        assert!(body.contains("connect_bypasses_l7"), "{target}: {body}");
    }
    assert_eq!(fx.origin.accepted(), 0, "the origin was contacted");
    let log = p.stderr();
    assert!(
        log.contains("connect_bypasses_l7"),
        "refusal not logged:\n{log}"
    );
}

#[test]
fn file_credential_written_after_start_up_is_used_and_rewrites_are_picked_up() {
    let fx = Fixture::new();
    let key_file = fx.file("late.key");
    let profile = fx.profile(&[(
        "late",
        fx.service(
            "localhost",
            &format!("file://{}", key_file.display()),
            json!({"env_var": "LATE_KEY"}),
        ),
    )]);
    let p = ProxyProcess::start(&["--profile", &profile, "--credential", "late"]);
    let late = route(&p.json, "late");
    assert_eq!(late["loaded"], false, "{late}");
    assert!(
        late["error"]
            .as_str()
            .is_some_and(|e| e.contains("cannot read the file")),
        "{late}"
    );
    let auth = bearer(&env_of(&p.json, "LATE_KEY"));
    let (status, resp) = request(p.port, "GET", "/late/x", &[("Authorization", &auth)]);
    assert_eq!(status, 503, "{resp}");
    assert!(resp.contains("credential_unavailable"), "{resp}");

    std::fs::write(&key_file, "sk-e2e-late-first\n").expect("write key file");
    let (status, resp) = request(p.port, "GET", "/late/x", &[("Authorization", &auth)]);
    assert_eq!(status, 200, "{resp}\n--- stderr\n{}", p.stderr());
    assert_eq!(
        last_request(&fx.origin).header("authorization"),
        Some("Bearer sk-e2e-late-first")
    );

    // A rotated key (different length, so the change is seen even within one mtime tick).
    std::fs::write(&key_file, "sk-e2e-late-second-rotated\n").expect("rewrite key file");
    let (status, resp) = request(p.port, "GET", "/late/x", &[("Authorization", &auth)]);
    assert_eq!(status, 200, "{resp}");
    assert_eq!(
        last_request(&fx.origin).header("authorization"),
        Some("Bearer sk-e2e-late-second-rotated")
    );
}

#[test]
fn unloadable_credential_is_reported_unavailable_gets_503_and_the_proxy_keeps_serving() {
    let fx = Fixture::new();
    let key_file = fx.file("ok.key");
    std::fs::write(&key_file, "sk-e2e-still-fine").expect("write key file");
    let profile = fx.profile(&[
        (
            "gone",
            fx.service(
                "localhost",
                "env://NONO_E2E_NEVER_SET_7c1e",
                json!({"env_var": "GONE_KEY"}),
            ),
        ),
        (
            "fine",
            fx.service(
                "127.0.0.1",
                &format!("file://{}", key_file.display()),
                json!({"env_var": "FINE_KEY"}),
            ),
        ),
    ]);
    let p = ProxyProcess::start(&profile_args(&profile, &["gone", "fine"], &[]));
    let gone = route(&p.json, "gone");
    assert_eq!(gone["loaded"], false, "{gone}");
    assert_eq!(
        gone["source"],
        "environment variable `NONO_E2E_NEVER_SET_7c1e`"
    );
    assert!(
        gone["error"]
            .as_str()
            .is_some_and(|e| e.contains("not set")),
        "{gone}"
    );
    assert_eq!(route(&p.json, "fine")["loaded"], true);

    let gone_auth = bearer(&env_of(&p.json, "GONE_KEY"));
    for _ in 0..2 {
        let (status, resp) = request(p.port, "GET", "/gone/x", &[("Authorization", &gone_auth)]);
        assert_eq!(status, 503, "{resp}");
        assert!(resp.contains("credential_unavailable"), "{resp}");
    }
    let (status, resp) = request(
        p.port,
        "GET",
        "/fine/x",
        &[("Authorization", &bearer(&env_of(&p.json, "FINE_KEY")))],
    );
    assert_eq!(status, 200, "{resp}");
    assert_eq!(
        fx.origin.requests().len(),
        1,
        "the unavailable route reached the origin"
    );
    let log = p.stderr();
    assert!(
        log.contains("credential route `gone`") && log.contains("NONO_E2E_NEVER_SET_7c1e"),
        "the warning names neither route nor source:\n{log}"
    );
    // Still running, and it exits cleanly on SIGTERM.
    let status = p.terminate();
    assert!(status.success(), "{status:?}");
}

/// A profile with two env:// routes for `nono run`: `echo` reads the secret from the very
/// variable the tool uses (`ECHO_API_KEY`), `side` from a separate variable.
fn run_profile(fx: &Fixture) -> String {
    fx.profile(&[
        (
            "echo",
            fx.service(
                "localhost",
                "env://ECHO_API_KEY",
                json!({"env_var": "ECHO_API_KEY"}),
            ),
        ),
        (
            "side",
            fx.service(
                "127.0.0.1",
                "env://NONO_E2E_SIDE_SOURCE",
                json!({"env_var": "SIDE_API_KEY"}),
            ),
        ),
    ])
}

const RUN_SECRET: &str = "sk-e2e-run-echo-3fa9d2";
const RUN_SIDE_SECRET: &str = "sk-e2e-run-side-81c07e";

/// The parent environment of the `nono run` tests: both real secrets.
fn run_env() -> [(&'static str, &'static str); 2] {
    [
        ("ECHO_API_KEY", RUN_SECRET),
        ("NONO_E2E_SIDE_SOURCE", RUN_SIDE_SECRET),
    ]
}

/// `nono run --profile PROFILE --credential C... -- sh -c SCRIPT` with `env` added;
/// (exit code, stdout, stderr).
fn run_sh(
    profile: &str,
    credentials: &[&str],
    script: &str,
    env: &[(&str, &str)],
) -> (i32, String, String) {
    let mut args = vec!["run"];
    args.extend(profile_args(
        profile,
        credentials,
        &["--", "sh", "-c", script],
    ));
    run_nono_with_env(&args, env, T)
}

/// `VAR=value` lines of a child's `env` output between the markers.
fn env_lines(stdout: &str) -> Vec<(String, String)> {
    stdout
        .split("ENV_BEGIN\n")
        .nth(1)
        .and_then(|s| s.split("ENV_END").next())
        .unwrap_or("")
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn run_child_env_holds_the_phantom_and_base_url_never_the_real_secret() {
    let fx = Fixture::new();
    let profile = run_profile(&fx);
    let script = "echo ENV_BEGIN; env; echo ENV_END; tr '\\0' '\\n' < /proc/self/environ";
    let (code, out, err) = run_sh(&profile, &["echo", "side"], script, &run_env());
    assert_eq!(code, 0, "stdout:\n{out}\nstderr:\n{err}");
    let env = env_lines(&out);
    let get = |k: &str| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    let phantom = get("ECHO_API_KEY").expect("ECHO_API_KEY in the child");
    assert!(
        phantom.starts_with("nono_phantom_"),
        "ECHO_API_KEY={phantom}"
    );
    assert!(get("SIDE_API_KEY").is_some_and(|v| v.starts_with("nono_phantom_")));
    let base = get("ECHO_BASE_URL").expect("ECHO_BASE_URL in the child");
    assert!(
        base.starts_with("http://127.0.0.1:") && base.ends_with("/echo"),
        "ECHO_BASE_URL={base}"
    );
    assert!(get("SIDE_BASE_URL").is_some_and(|v| v.ends_with("/side")));
    // `env` and /proc/self/environ must agree, and neither may hold a real secret under
    // any name (the env:// source variable included, not only `env_var`).
    let holders: Vec<&str> = env
        .iter()
        .filter(|(_, v)| v.contains(RUN_SECRET) || v.contains(RUN_SIDE_SECRET))
        .map(|(k, _)| k.as_str())
        .collect();
    assert!(
        holders.is_empty(),
        "real secrets reached the child's environment in {holders:?} \
         (ECHO_API_KEY is both source and env_var; NONO_E2E_SIDE_SOURCE is the source of `side`)"
    );
    for secret in [RUN_SECRET, RUN_SIDE_SECRET] {
        assert!(
            !out.contains(secret),
            "a real secret in /proc/self/environ:\n{out}"
        );
        assert!(!err.contains(secret), "nono printed a real secret:\n{err}");
    }
}

#[test]
fn run_child_cannot_read_the_secret_from_nono_through_proc() {
    let fx = Fixture::new();
    let profile = run_profile(&fx);
    // $PPID is nono, whose own environment holds ECHO_API_KEY=<real secret>. Every read
    // of its memory or environment must fail; a subshell keeps a failed `exec` from
    // ending the script.
    let script = r#"
        echo "parent=$(cat /proc/$PPID/comm) uid=$(id -u) $(grep CapEff /proc/self/status)"
        if tr '\0' '\n' < /proc/$PPID/environ; then echo LEAK_ENVIRON_READ; fi
        for t in /proc/$PPID/task/*; do
            if cat "$t/environ" > /dev/null; then echo LEAK_TASK_ENVIRON_READ; fi
        done
        if cat /proc/$PPID/maps > /dev/null; then echo LEAK_MAPS_READ; fi
        if (exec 3< /proc/$PPID/mem); then echo LEAK_MEM_OPENED; fi
        echo DONE
    "#;
    let (code, out, err) = run_sh(&profile, &["echo"], script, &run_env());
    assert_eq!(code, 0, "stdout:\n{out}\nstderr:\n{err}");
    assert!(
        out.contains("parent=nono"),
        "the child's parent is not nono:\n{out}"
    );
    assert!(out.contains("DONE"), "{out}");
    let leaks: Vec<&str> = out.lines().filter(|l| l.starts_with("LEAK_")).collect();
    assert!(
        leaks.is_empty() && !out.contains(RUN_SECRET),
        "the sandboxed child read nono's memory or environment ({leaks:?}; real secret visible: {}); \
         {}\n--- child stdout\n{out}\n--- stderr\n{err}",
        out.contains(RUN_SECRET),
        out.lines().next().unwrap_or(""),
    );
}

#[test]
fn run_child_curl_to_the_base_url_with_the_phantom_reaches_the_origin_with_the_real_key() {
    let fx = Fixture::new();
    let profile = run_profile(&fx);
    let script = r#"curl -sS --fail --max-time 10 -H "Authorization: Bearer $ECHO_API_KEY" "$ECHO_BASE_URL/v1/chat?stream=0""#;
    let (code, out, err) = run_sh(&profile, &["echo", "side"], script, &run_env());
    assert_eq!(
        code, 0,
        "curl inside the sandbox failed\nstdout:\n{out}\nstderr:\n{err}"
    );
    let body: Value = serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("{e}: {out}"));
    assert_eq!(body["path"], "/base/v1/chat?stream=0", "{body}");
    let seen = last_request(&fx.origin);
    assert_eq!(
        seen.header("authorization"),
        Some(bearer(RUN_SECRET).as_str())
    );
    assert_origin_never_saw(&seen, "nono_phantom_");
}

#[test]
fn run_exits_125_naming_route_and_source_when_a_credential_cannot_be_loaded() {
    let fx = Fixture::new();
    let missing_file = fx.file("absent.key");
    let profile = fx.profile(&[
        (
            "noenv",
            fx.service("localhost", "env://NONO_E2E_NEVER_SET_e93b", json!({})),
        ),
        (
            "nofile",
            fx.service(
                "127.0.0.1",
                &format!("file://{}", missing_file.display()),
                json!({"base_url_env": "NOFILE_URL"}),
            ),
        ),
    ]);
    for (service, source) in [
        ("noenv", "NONO_E2E_NEVER_SET_e93b".to_string()),
        ("nofile", missing_file.display().to_string()),
    ] {
        let (code, out, err) = run_sh(&profile, &[service], "echo CHILD_RAN", &[]);
        assert_eq!(
            code, EXIT_NONO_FAILED,
            "{service}: stdout:\n{out}\nstderr:\n{err}"
        );
        assert!(
            !out.contains("CHILD_RAN"),
            "{service}: the command ran anyway"
        );
        assert!(
            err.contains(&format!("`{service}`")),
            "{service}: route not named:\n{err}"
        );
        assert!(err.contains(&source), "{service}: source not named:\n{err}");
    }
    assert_eq!(fx.origin.accepted(), 0);
}

#[test]
fn builtin_service_names_work_in_the_flags() {
    // Assumes no `openai_api_key` in the OS keyring of the test machine (CI has none).
    let p = ProxyProcess::start(&[
        "--credential",
        "openai",
        "--allow-endpoint",
        "openai:POST:/v1/chat/**",
    ]);
    let openai = route(&p.json, "openai");
    assert_eq!(openai["upstream"], "https://api.openai.com/v1", "{openai}");
    assert_eq!(
        openai["source"], "keyring `nono`/`openai_api_key`",
        "{openai}"
    );
    assert_eq!(
        openai["loaded"], false,
        "this test needs a keyring without `openai_api_key`: {openai}"
    );
    assert_eq!(openai["endpoint_rules"], json!(["POST /v1/chat/**"]));
    assert_eq!(
        env_of(&p.json, "OPENAI_BASE_URL"),
        format!("http://127.0.0.1:{}/openai", p.port)
    );
    let phantom = env_of(&p.json, "OPENAI_API_KEY");
    // OPENAI_BASE_URL stands for https://api.openai.com/v1, so clients send `/chat/...`.
    let (status, resp) = request(
        p.port,
        "POST",
        "/openai/chat/completions",
        &[("Authorization", &bearer(&phantom))],
    );
    assert_eq!(status, 503, "{resp}");
    assert!(resp.contains("credential_unavailable"), "{resp}");
    let (status, resp) = request(
        p.port,
        "GET",
        "/openai/models",
        &[("Authorization", &bearer(&phantom))],
    );
    assert_eq!(status, 403, "outside the endpoint rule: {resp}");

    let (code, out, err) = run_nono(
        &[
            "run",
            "--credential",
            "openai",
            "--",
            "sh",
            "-c",
            "echo CHILD_RAN",
        ],
        T,
    );
    assert_eq!(code, EXIT_NONO_FAILED, "stdout:\n{out}\nstderr:\n{err}");
    assert!(!out.contains("CHILD_RAN"));
    assert!(
        err.contains("`openai`") && err.contains("openai_api_key"),
        "{err}"
    );

    let (code, _, err) = run_nono(&["proxy", "--credential", "no-such-service"], T);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("no-such-service") && err.contains("openai"),
        "{err}"
    );
}

/// VmRSS of process `pid` in KiB.
fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

#[test]
fn a_100_mib_chunked_upload_streams_through_a_route_with_bounded_proxy_rss() {
    const SECRET: &str = "sk-e2e-upload";
    let fx = Fixture::new();
    let profile = fx.profile(&[(
        "echo",
        fx.service(
            "localhost",
            "env://NONO_E2E_UPLOAD_SECRET",
            json!({"env_var": "ECHO_API_KEY"}),
        ),
    )]);
    let p = ProxyProcess::start_with_env(
        &["--profile", &profile, "--credential", "echo"],
        &[("NONO_E2E_UPLOAD_SECRET", SECRET)],
    );
    let phantom = env_of(&p.json, "ECHO_API_KEY");
    let start_rss = rss_kib(p.pid()).expect("proxy RSS");

    let port = p.port;
    let started = Instant::now();
    let upload = thread::spawn(move || {
        let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect to proxy");
        s.set_read_timeout(Some(T)).expect("read timeout");
        let head = format!(
            "POST /echo/upload HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Bearer {phantom}\r\n\
             Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
        );
        s.write_all(head.as_bytes()).expect("write head");
        let chunk: Vec<u8> = (0..UPLOAD_CHUNK).map(|i| (i % 251) as u8).collect();
        let frame_head = format!("{UPLOAD_CHUNK:x}\r\n");
        for _ in 0..UPLOAD_BYTES / UPLOAD_CHUNK {
            s.write_all(frame_head.as_bytes())
                .expect("write chunk size");
            s.write_all(&chunk).expect("write chunk");
            s.write_all(b"\r\n").expect("write chunk end");
        }
        s.write_all(b"0\r\n\r\n").expect("write last chunk");
        let mut resp = Vec::new();
        let _ = s.read_to_end(&mut resp);
        String::from_utf8_lossy(&resp).into_owned()
    });
    let mut peak = start_rss;
    while !upload.is_finished() {
        if let Some(rss) = rss_kib(p.pid()) {
            peak = peak.max(rss);
        }
        assert!(started.elapsed() < T, "upload still running after {T:?}");
        thread::sleep(Duration::from_millis(5));
    }
    let resp = upload.join().expect("upload thread");
    let elapsed = started.elapsed();
    eprintln!(
        "100 MiB chunked upload through a route: {elapsed:?}; proxy VmRSS {start_rss} KiB at start, peak {peak} KiB"
    );
    assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
    let body = echoed(&resp);
    assert_eq!(body["body_len"], UPLOAD_BYTES, "{body}");
    assert_eq!(body["headers"]["authorization"], bearer(SECRET).as_str());
    assert_eq!(
        body["headers"]["transfer-encoding"], "chunked",
        "the body was not streamed: {body}"
    );
    assert!(
        peak < MAX_PROXY_RSS_KIB,
        "proxy VmRSS peaked at {peak} KiB (limit {MAX_PROXY_RSS_KIB} KiB) while relaying 100 MiB"
    );
}

#[test]
fn a_credential_command_does_not_see_nonos_own_secrets() {
    let fx = Fixture::new();
    let cmd = r#"cmd://printf 'k-%s-%s' "${NONO_PROXY_PASS:-none}" "${NONO_UPSTREAM_PROXY:-none}""#;
    let profile = fx.profile(&[(
        "cmdkey",
        fx.service(
            "127.0.0.1",
            cmd,
            json!({"inject_header": "X-Api-Key", "credential_format": "{}", "env_var": "CMDKEY_TOKEN"}),
        ),
    )]);
    let p = ProxyProcess::start_with_env(
        // The upstream proxy is never used: its target is bypassed.
        &profile_args(&profile, &["cmdkey"], &["--upstream-bypass", "127.0.0.1"]),
        &[
            ("NONO_PROXY_PASS", "proxy-pass-7c1"),
            ("NONO_UPSTREAM_PROXY", "http://u:upw@127.0.0.1:9"),
        ],
    );
    let phantom = env_of(&p.json, "CMDKEY_TOKEN");
    let (status, resp) = request(p.port, "GET", "/cmdkey/x", &[("X-Api-Key", &phantom)]);
    assert_eq!(status, 200, "{resp}\n--- stderr\n{}", p.stderr());
    assert_eq!(
        last_request(&fx.origin).header("x-api-key"),
        Some("k-none-none")
    );
}

#[test]
fn a_loopback_route_is_never_chained_through_the_upstream_proxy() {
    let fx = Fixture::new();
    let plain = HttpOrigin::start();
    let mut svc = json!({
        "upstream": format!("http://127.0.0.1:{}/base", plain.port),
        "credential_key": "env://NONO_E2E_LOCAL_ROUTE_KEY",
        "env_var": "LOCAL_ROUTE_TOKEN",
    });
    svc["inject_header"] = json!("X-Api-Key");
    svc["credential_format"] = json!("{}");
    let profile = fx.profile(&[("local", svc)]);
    // Nothing listens at the upstream proxy's address: a chained request would fail.
    let p = ProxyProcess::start_with_env(
        &profile_args(&profile, &["local"], &[]),
        &[
            ("NONO_E2E_LOCAL_ROUTE_KEY", "local-key-5d2"),
            ("NONO_UPSTREAM_PROXY", "http://127.0.0.1:9"),
        ],
    );
    let phantom = env_of(&p.json, "LOCAL_ROUTE_TOKEN");
    let (status, resp) = request(p.port, "GET", "/local/x", &[("X-Api-Key", &phantom)]);
    assert_eq!(status, 200, "{resp}\n--- stderr\n{}", p.stderr());
    assert_eq!(
        last_request(&plain).header("x-api-key"),
        Some("local-key-5d2")
    );
}

#[test]
fn echoed_credentials_dot_parameters_trace_and_method_overrides_are_stopped() {
    const SECRET: &str = "sk-query-9b7e";
    let fx = Fixture::new();
    let mut q = fx.service(
        "127.0.0.1",
        "env://NONO_E2E_QUERY_KEY",
        json!({"env_var": "Q_TOKEN", "inject_mode": "query_param", "query_param_name": "key"}),
    );
    q["endpoint_rules"] = json!([]);
    let profile = fx.profile(&[("q", q)]);
    let p = ProxyProcess::start_with_env(
        &profile_args(&profile, &["q"], &["--allow-endpoint", "q:*:/base/**"]),
        &[("NONO_E2E_QUERY_KEY", SECRET)],
    );
    let phantom = env_of(&p.json, "Q_TOKEN");
    // The origin repeats the request (with the real key) in Location and Link.
    let (status, resp) = request(
        p.port,
        "GET",
        &format!("/q/v1/echo-location?key={phantom}"),
        &[],
    );
    assert_eq!(status, 302, "{resp}");
    assert_eq!(
        last_request(&fx.origin).path,
        format!("/base/v1/echo-location?key={SECRET}")
    );
    assert!(
        !resp.contains(SECRET),
        "secret echoed to the client:\n{resp}"
    );
    assert!(resp.contains(&format!("key={phantom}")), "{resp}");
    // TRACE would echo the injected key.
    let (status, resp) = request(p.port, "TRACE", &format!("/q/x?key={phantom}"), &[]);
    assert_eq!(status, 405, "{resp}");
    // `..;` is a dot segment to some servers, an ordinary one to the rules.
    let (status, resp) = request(
        p.port,
        "GET",
        &format!("/q/public/..;/admin?key={phantom}"),
        &[],
    );
    assert_eq!(status, 400, "{resp}");
    // Method overrides and forwarding headers never reach the upstream.
    let (status, _) = request(
        p.port,
        "POST",
        &format!("/q/v1/files?key={phantom}"),
        &[
            ("X-HTTP-Method-Override", "DELETE"),
            ("X-Forwarded-Host", "evil.example"),
            ("Forwarded", "host=evil.example"),
        ],
    );
    assert_eq!(status, 200);
    let seen = last_request(&fx.origin);
    for h in ["x-http-method-override", "x-forwarded-host", "forwarded"] {
        assert!(seen.header(h).is_none(), "{h} reached the upstream");
    }
}
