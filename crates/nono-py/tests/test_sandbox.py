"""The sandbox: capabilities, sandboxed_exec with the proxy (the seed's example), timeouts."""

import os
import sys
import tempfile

import pytest

from nono_py import (
    AccessMode,
    CapabilitySet,
    ProxyConfig,
    SandboxError,
    is_supported,
    load_profile,
    sandboxed_exec,
    start_proxy,
    support_info,
)


def _require_sandbox():
    info = support_info()
    # A missing kernel feature fails with the reason, it does not pass silently.
    assert is_supported(), f"Landlock is unavailable ({info}); enable it with lsm=landlock,... on the kernel command line"
    assert info["proxy_enforceable"], f"proxy mode needs Landlock ABI 4 (kernel 6.7+): {info}"


def _python_caps():
    """Capabilities that let this interpreter (possibly a venv) run inside the sandbox."""
    caps = CapabilitySet()
    for p in {sys.prefix, sys.base_prefix, os.path.dirname(os.path.realpath(sys.executable))}:
        caps.allow_path(p, AccessMode.READ)
    return caps


def test_support_info_keys():
    info = support_info()
    for k in ("landlock_abi", "seccomp", "wsl2", "user_namespaces", "platform"):
        assert k in info
    assert isinstance(is_supported(), bool)


def test_capability_set_api(tmp_path):
    caps = CapabilitySet()
    assert caps.network == "unrestricted"
    base = len(caps.fs_rules)
    f = tmp_path / "f.txt"
    f.write_text("x")
    caps.allow_path(str(tmp_path), AccessMode.READ_WRITE)
    caps.allow_file(str(f), AccessMode.READ)
    assert [(str(p), m) for p, m in caps.fs_rules[base:]] == [
        (str(tmp_path.resolve()), AccessMode.READ_WRITE),
        (str(f.resolve()), AccessMode.READ),
    ]
    caps.allow_open_port(5432)
    caps.block_network()
    assert caps.network == "blocked"
    caps.proxy_only(8080)
    assert caps.network == "proxy_only" and "proxy_port=8080" in repr(caps)
    with pytest.raises(FileNotFoundError, match="does-not-exist"):
        caps.allow_path("/does-not-exist", AccessMode.READ)
    with pytest.raises(ValueError, match="use allow_file"):
        caps.allow_path(str(f), AccessMode.READ)
    with pytest.raises(ValueError, match="use allow_path"):
        caps.allow_file(str(tmp_path), AccessMode.READ)
    for bad in (0, 70000, -1):
        with pytest.raises(ValueError):
            caps.proxy_only(bad)
        with pytest.raises(ValueError):
            caps.allow_open_port(bad)


def test_exec_captures_output_exit_code_and_env():
    _require_sandbox()
    r = sandboxed_exec(CapabilitySet(), ["/bin/sh", "-c", 'echo out; echo err >&2; echo "$FOO"; exit 3'], env={"FOO": "bar"})
    assert (r.stdout, r.stderr, r.exit_code, r.timed_out) == (b"out\nbar\n", b"err\n", 3, False)
    r = sandboxed_exec(CapabilitySet(), ["/usr/bin/env"], env=[("A", "1"), ("B", "2")])
    assert sorted(r.stdout.decode().split()) == ["A=1", "B=2"], "only env when inherit_env=False"
    os.environ["NONO_PY_INHERITED"] = "yes"
    try:
        r = sandboxed_exec(CapabilitySet(), ["sh", "-c", "echo $NONO_PY_INHERITED"], inherit_env=True)
    finally:
        del os.environ["NONO_PY_INHERITED"]
    assert r.stdout == b"yes\n"
    assert "bytes" in repr(r)


def test_exec_is_confined_to_its_grants(tmp_path):
    _require_sandbox()
    secret = tmp_path / "secret.txt"
    secret.write_text("top secret")
    r = sandboxed_exec(CapabilitySet(), ["cat", str(secret)])
    assert r.exit_code != 0 and b"top secret" not in r.stdout
    caps = CapabilitySet()
    caps.allow_path(str(tmp_path), AccessMode.READ)
    r = sandboxed_exec(caps, ["cat", str(secret)])
    assert r.stdout == b"top secret"
    r = sandboxed_exec(caps, ["sh", "-c", f"echo x > {tmp_path}/new"])
    assert r.exit_code != 0 and not (tmp_path / "new").exists()
    caps.allow_path(str(tmp_path), AccessMode.READ_WRITE)
    r = sandboxed_exec(caps, ["sh", "-c", "echo x > new"], cwd=str(tmp_path))
    assert r.exit_code == 0 and (tmp_path / "new").read_text() == "x\n"


def test_timeout_kills_the_whole_sandbox():
    _require_sandbox()
    r = sandboxed_exec(CapabilitySet(), ["sh", "-c", "sleep 30 & sleep 30; echo never"], timeout_secs=0.5)
    assert r.exit_code == 124 and r.timed_out and b"never" not in r.stdout


def test_exec_errors_carry_nonos_message():
    _require_sandbox()
    with pytest.raises(SandboxError, match="nono-no-such-program"):
        sandboxed_exec(CapabilitySet(), ["nono-no-such-program"])
    with pytest.raises(ValueError, match="command is empty"):
        sandboxed_exec(CapabilitySet(), [])
    with pytest.raises(ValueError, match="timeout_secs"):
        sandboxed_exec(CapabilitySet(), ["true"], timeout_secs=-1)
    with pytest.raises(ValueError, match="env must be"):
        sandboxed_exec(CapabilitySet(), ["true"], env=5)
    with pytest.raises(ValueError, match="not an environment variable name"):
        sandboxed_exec(CapabilitySet(), ["true"], env={"A=B": "1"})


def test_blocked_network_refuses_connections(https_origin):
    _require_sandbox()
    caps = _python_caps()
    caps.block_network()
    code = f"import socket; socket.create_connection(('127.0.0.1', {https_origin['port']}), timeout=3)"
    r = sandboxed_exec(caps, [sys.executable, "-c", code])
    assert r.exit_code != 0, r.stderr


CLIENT = """
import os, sys, urllib.request
ctx = None
if len(sys.argv) > 2:
    import ssl
    ctx = ssl.create_default_context(cafile=sys.argv[2])
try:
    print(urllib.request.urlopen(sys.argv[1], timeout=10, context=ctx).read().decode())
except Exception as e:
    print("REFUSED", e)
    sys.exit(7)
"""


def test_seed_example_end_to_end(https_origin, http_origin, monkeypatch):
    """The seed's example: the proxy's env reaches an allowed host and is refused elsewhere."""
    _require_sandbox()
    from nono_py import RouteConfig

    monkeypatch.setenv("NONO_PY_TEST_KEY", "sk-sandboxed-secret-987654321")
    route = RouteConfig("/echo", f"http://127.0.0.1:{http_origin['port']}", credential_key="env://NONO_PY_TEST_KEY", env_var="ECHO_API_KEY")
    config = ProxyConfig(allowed_hosts=["localhost"], routes=[route])
    proxy = start_proxy(config)
    try:
        caps = _python_caps()
        caps.allow_file(https_origin["ca"], AccessMode.READ)
        caps.proxy_only(proxy.port)
        env = list(proxy.env_vars().items()) + list(proxy.credential_env_vars().items())
        ok = sandboxed_exec(caps, [sys.executable, "-c", CLIENT, f"https://localhost:{https_origin['port']}/", https_origin["ca"]], env=env, timeout_secs=60)
        assert ok.exit_code == 0 and ok.stdout.strip() == b"hello-tls", (ok.stdout, ok.stderr, ok.containment)
        refused = sandboxed_exec(caps, [sys.executable, "-c", CLIENT, "https://example.com/"], env=env, timeout_secs=60)
        assert refused.exit_code == 7 and b"403" in refused.stdout, (refused.stdout, refused.stderr)
        # Direct connections around the proxy fail in the kernel.
        direct = f"import socket; socket.create_connection(('127.0.0.1', {https_origin['port']}), timeout=3)"
        r = sandboxed_exec(caps, [sys.executable, "-c", direct], env=env, timeout_secs=60)
        assert r.exit_code != 0
        # The credential route through the phantom; the real key never enters the sandbox.
        code = (
            "import os, urllib.request as u; "
            "r = u.Request(os.environ['ECHO_BASE_URL'] + '/v1/x', headers={'Authorization': 'Bearer ' + os.environ['ECHO_API_KEY']}); "
            "print(u.urlopen(r, timeout=10).status); print(sorted(os.environ))"
        )
        r = sandboxed_exec(caps, [sys.executable, "-c", code], env=env, inherit_env=True, timeout_secs=60)
        assert r.exit_code == 0, r.stderr
        assert r.stdout.splitlines()[0] == b"200"
        assert b"NONO_PY_TEST_KEY" not in r.stdout, "an env:// credential variable must not be inherited"
        assert http_origin["seen"][-1]["headers"]["authorization"] == "Bearer sk-sandboxed-secret-987654321"
        events = proxy.drain_audit_events()
        assert any(e["decision"] == "allow" and e["target"] == "localhost" for e in events), events
        assert any(e["decision"] == "deny" and e["target"] == "example.com" for e in events), events
    finally:
        proxy.shutdown()


def test_load_profile_resolves_like_the_cli(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    caps, proxy = load_profile("default")
    assert isinstance(caps, CapabilitySet)
    assert proxy is None or isinstance(proxy, ProxyConfig)
    prof = tmp_path / "p.json"
    prof.write_text('{"network": {"allow_domain": ["api.example.com"]}}')
    caps, proxy = load_profile(str(prof))
    assert caps.network == "proxy_only" and proxy.allowed_hosts == ["api.example.com"]
    with pytest.raises(ValueError, match="proxy_only"):
        sandboxed_exec(caps, ["true"])
    bad = tmp_path / "bad.json"
    bad.write_text('{"netwrk": {}}')
    with pytest.raises(ValueError, match="netwrk"):
        load_profile(str(bad))
    with pytest.raises(ValueError):
        load_profile("no-such-profile-name")


def test_huge_timeout_raises_instead_of_aborting():
    _require_sandbox()
    with pytest.raises(ValueError, match="too large"):
        sandboxed_exec(CapabilitySet(), ["true"], timeout_secs=1e300)


def test_env_credentials_never_reach_an_inheriting_child(monkeypatch):
    """An `env://` credential of any proxy this process started stays out of an inherited
    environment, whatever network the sandbox has."""
    _require_sandbox()
    monkeypatch.setenv("NONO_PY_REVIEW_SECRET", "sk-never-in-the-child")
    from nono_py import RouteConfig

    cfg = ProxyConfig(routes=[RouteConfig("/svc", "http://127.0.0.1:9", "env://NONO_PY_REVIEW_SECRET")])
    with start_proxy(cfg):
        for caps in (CapabilitySet(), _blocked()):
            r = sandboxed_exec(caps, ["sh", "-c", "echo \"[$NONO_PY_REVIEW_SECRET]\""], inherit_env=True)
            assert r.stdout == b"[]\n", r.stdout


def _blocked():
    c = CapabilitySet()
    c.block_network()
    return c


def test_load_profile_brings_the_profiles_cache_variables_and_state(tmp_path, monkeypatch):
    _require_sandbox()
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.chdir(tmp_path)
    caps, proxy = load_profile("claude-code")
    assert (home / ".claude").is_dir() and (home / ".claude.json").read_text() == "{}\n"
    with start_proxy(proxy) as p:
        caps.proxy_only(p.port)
        r = sandboxed_exec(caps, ["sh", "-c", "echo $PIP_CACHE_DIR"], env=list(p.env_vars().items()))
    assert r.stdout.decode().strip() == str(home / ".cache/nono/tools/pip"), r


def test_modes_are_hashable():
    from nono_py import InjectMode

    assert len({AccessMode.READ, AccessMode.READ_WRITE, AccessMode.READ}) == 2
    assert len({InjectMode.HEADER, InjectMode.BASIC_AUTH}) == 2
