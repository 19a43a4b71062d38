"""A real proxy: CONNECT to a local HTTPS origin, a credential route, audit, shutdown."""

import os
import time

import pytest
import requests

from nono_py import ProxyConfig, RouteConfig, start_proxy

SECRET = "sk-nono-py-test-secret-0123456789"


def _proxies(handle):
    env = handle.env_vars()
    return {"http": env["HTTP_PROXY"], "https": env["HTTPS_PROXY"]}


def test_env_vars_name_the_proxy_and_its_token():
    with start_proxy(ProxyConfig()) as p:
        env = p.env_vars()
        assert p.port > 0
        for k in ("HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "NONO_PROXY_TOKEN", "http_proxy", "https_proxy"):
            assert k in env, k
        assert f"127.0.0.1:{p.port}" in env["HTTPS_PROXY"]
        assert env["NONO_PROXY_TOKEN"] in env["HTTPS_PROXY"]
        assert p.credential_env_vars() == {}


def test_connect_through_allowlist_and_audit_of_allow_and_deny(https_origin):
    with start_proxy(ProxyConfig(allowed_hosts=["localhost"])) as p:
        r = requests.get(
            f"https://localhost:{https_origin['port']}/hello",
            proxies=_proxies(p),
            verify=https_origin["ca"],
            timeout=10,
        )
        assert r.status_code == 200 and r.text == "hello-tls"
        with pytest.raises(requests.exceptions.ProxyError, match="403"):
            requests.get("https://example.com/", proxies=_proxies(p), timeout=10)
        events = p.drain_audit_events()
        keys = {"timestamp_unix_ms", "mode", "decision", "target", "port", "method", "path", "status", "reason"}
        assert events and all(set(e) == keys for e in events), events
        allow = [e for e in events if e["decision"] == "allow"]
        deny = [e for e in events if e["decision"] == "deny"]
        assert allow[0]["mode"] == "connect" and allow[0]["target"] == "localhost"
        assert allow[0]["port"] == https_origin["port"] and allow[0]["status"] == 200
        assert deny[0]["target"] == "example.com" and deny[0]["port"] == 443
        assert deny[0]["reason"] == "not_allowlisted" and deny[0]["status"] == 403
        assert isinstance(allow[0]["timestamp_unix_ms"], int)
        assert p.drain_audit_events() == []


def test_credential_route_injects_env_key_for_the_phantom(http_origin, monkeypatch):
    monkeypatch.setenv("NONO_PY_TEST_KEY", SECRET)
    route = RouteConfig(
        prefix="/echo",
        upstream=f"http://127.0.0.1:{http_origin['port']}",
        credential_key="env://NONO_PY_TEST_KEY",
        env_var="ECHO_API_KEY",
    )
    with start_proxy(ProxyConfig(routes=[route])) as p:
        cred = p.credential_env_vars()
        assert cred["ECHO_BASE_URL"] == f"http://127.0.0.1:{p.port}/echo"
        phantom = cred["ECHO_API_KEY"]
        assert phantom and phantom != SECRET
        r = requests.get(cred["ECHO_BASE_URL"] + "/v1/models", headers={"Authorization": f"Bearer {phantom}"}, timeout=10)
        assert r.status_code == 200, r.text
        seen = http_origin["seen"][-1]
        assert seen["path"] == "/v1/models"
        assert seen["headers"]["authorization"] == f"Bearer {SECRET}"
        r = requests.get(cred["ECHO_BASE_URL"] + "/v1/models", headers={"Authorization": "Bearer wrong"}, timeout=10)
        assert r.status_code == 401
        events = p.drain_audit_events()
        assert any(e["mode"] == "reverse" and e["decision"] == "allow" and e["path"] == "/v1/models" for e in events), events
        assert any(e["mode"] == "reverse" and e["decision"] == "deny" for e in events), events
        texts = [repr(p), repr(route), repr(ProxyConfig(routes=[route])), str(events)]
        for t in texts:
            assert SECRET not in t
            assert phantom not in t
            assert p.env_vars()["NONO_PROXY_TOKEN"] not in t


def test_missing_env_credential_is_a_value_error_without_secret(monkeypatch):
    monkeypatch.delenv("NONO_PY_ABSENT_KEY", raising=False)
    route = RouteConfig("/svc", "https://api.example.com", credential_key="env://NONO_PY_ABSENT_KEY")
    with pytest.raises(ValueError, match="NONO_PY_ABSENT_KEY"):
        start_proxy(ProxyConfig(routes=[route]))


def test_bind_failure_is_os_error():
    with start_proxy(ProxyConfig()) as p:
        with pytest.raises(OSError, match=f"cannot listen on 127.0.0.1:{p.port}"):
            start_proxy(ProxyConfig(bind_port=p.port))


def test_shutdown_is_idempotent_and_stops_serving(https_origin):
    p = start_proxy(ProxyConfig(allowed_hosts=["localhost"]))
    proxies = _proxies(p)
    assert p.running and "running=True" in repr(p)
    p.shutdown()
    p.shutdown()
    assert not p.running and "running=False" in repr(p)
    with pytest.raises(requests.exceptions.ProxyError):
        requests.get(f"https://localhost:{https_origin['port']}/", proxies=proxies, verify=https_origin["ca"], timeout=5)


def test_context_manager_shuts_down_on_error():
    with pytest.raises(RuntimeError):
        with start_proxy(ProxyConfig()) as p:
            raise RuntimeError("boom")
    assert not p.running


def _count(path):
    return len(os.listdir(path))


def test_many_start_shutdown_cycles_leak_no_threads_or_descriptors(http_origin, monkeypatch):
    monkeypatch.setenv("NONO_PY_TEST_KEY", SECRET)
    route = RouteConfig("/echo", f"http://127.0.0.1:{http_origin['port']}", credential_key="env://NONO_PY_TEST_KEY")
    config = ProxyConfig(allowed_hosts=["localhost"], routes=[route])
    # One warm-up cycle: first use creates process-wide state (the CA roots cache and such).
    with start_proxy(config) as p:
        requests.get(p.credential_env_vars()["ECHO_BASE_URL"] + "/", headers={"X-Nono-Token": p.env_vars()["NONO_PROXY_TOKEN"]}, timeout=10)
    threads, fds = _count("/proc/self/task"), _count("/proc/self/fd")
    for _ in range(30):
        with start_proxy(config) as p:
            with requests.Session() as s:
                s.get(p.credential_env_vars()["ECHO_BASE_URL"] + "/", headers={"X-Nono-Token": p.env_vars()["NONO_PROXY_TOKEN"]}, timeout=10)
    # The test's own origin ends its handler threads a moment after the proxy's pooled
    # connections close; wait for that, never for more than a few seconds.
    deadline = time.monotonic() + 5
    # Threads of earlier tests' servers may still be ending at the baseline: fewer is fine.
    while time.monotonic() < deadline and (
        _count("/proc/self/task") > threads or _count("/proc/self/fd") > fds
    ):
        time.sleep(0.05)
    assert _count("/proc/self/task") <= threads
    assert _count("/proc/self/fd") <= fds
