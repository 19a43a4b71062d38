"""Every class and argument of the proxy API, and the refusal of bad input."""

import pytest

from nono_py import (
    ExternalProxyConfig,
    InjectMode,
    ProxyConfig,
    RouteConfig,
)


def test_proxy_config_defaults_match_the_seed():
    c = ProxyConfig()
    assert c.allowed_hosts == []
    assert c.routes == []
    assert c.external_proxy is None
    assert c.bind_addr == "127.0.0.1"
    assert c.bind_port == 0
    assert c.max_connections == 256


def test_proxy_config_every_argument():
    r = RouteConfig(prefix="/openai", upstream="https://api.openai.com", credential_key="openai-key")
    e = ExternalProxyConfig("squid.corp.internal:3128", bypass_hosts=["*.corp.internal"])
    c = ProxyConfig(
        allowed_hosts=["api.openai.com", "*.anthropic.com"],
        routes=[r],
        external_proxy=e,
        bind_addr="127.0.0.1",
        bind_port=0,
        max_connections=0,
    )
    assert c.allowed_hosts == ["api.openai.com", "*.anthropic.com"]
    assert [x.prefix for x in c.routes] == ["/openai"]
    assert c.external_proxy.address == "squid.corp.internal:3128"
    assert c.external_proxy.bypass_hosts == ["*.corp.internal"]
    assert c.max_connections == 0
    assert "api.openai.com" in repr(c)


def test_route_config_defaults_match_the_seed():
    r = RouteConfig("/openai", "https://api.openai.com", credential_key="openai-key")
    assert r.inject_mode == InjectMode.HEADER
    assert r.inject_header == "Authorization"
    assert r.credential_format == "Bearer {}"
    assert r.path_pattern is None and r.path_replacement is None
    assert r.query_param_name is None and r.env_var is None
    assert repr(r).startswith("RouteConfig(prefix='/openai'")


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(inject_mode=InjectMode.HEADER, inject_header="x-api-key", credential_format="{}"),
        dict(inject_mode=InjectMode.URL_PATH, path_pattern="/bot{}/", path_replacement="/bot{}/"),
        dict(inject_mode=InjectMode.QUERY_PARAM, query_param_name="key"),
        dict(inject_mode=InjectMode.BASIC_AUTH),
    ],
)
def test_every_inject_mode(kwargs):
    r = RouteConfig("/svc", "https://api.example.com", credential_key="env://SVC_KEY", env_var="SVC_KEY_X", **kwargs)
    assert r.inject_mode == kwargs["inject_mode"]
    assert r.env_var == "SVC_KEY_X"


@pytest.mark.parametrize(
    "key", ["openai-key", "env://OPENAI_API_KEY", "file:///run/secrets/openai", "cmd://echo hi"]
)
def test_every_credential_source_the_cli_accepts(key):
    assert RouteConfig("/openai", "https://api.openai.com", credential_key=key).credential_key == key


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: ProxyConfig(allowed_hosts=["bad host!"]), "invalid host pattern `bad host!`"),
        (lambda: ProxyConfig(bind_addr="localhost"), "bind_addr `localhost` is not an IP address"),
        (lambda: ProxyConfig(bind_port=70000), "bind_port `70000`"),
        (lambda: ProxyConfig(max_connections=2_000_000), "max_connections `2000000`"),
        (lambda: ProxyConfig(max_connections=-1), "max_connections `-1`"),
        (lambda: RouteConfig("openai", "https://api.openai.com", credential_key="k"), "must start with `/`"),
        (lambda: RouteConfig("/openai", "https://api.openai.com"), "credential_key: required"),
        (lambda: RouteConfig("/openai", "https://api.openai.com", credential_key="x://y"), "unknown scheme"),
        (lambda: RouteConfig("/openai", "https://api.openai.com", credential_key="env://"), "`env://` needs a variable name"),
        (lambda: RouteConfig("/openai", "ftp://api.openai.com", credential_key="k"), "upstream"),
        (lambda: RouteConfig("/openai", "http://api.openai.com", credential_key="k"), "upstream"),
        (lambda: RouteConfig("/Bad Name", "https://a.example", credential_key="k"), "Bad Name"),
        (lambda: RouteConfig("/o", "https://a.example", credential_key="k", inject_mode=InjectMode.URL_PATH), "path_pattern"),
        (lambda: RouteConfig("/o", "https://a.example", credential_key="k", inject_mode=InjectMode.QUERY_PARAM), "query_param_name"),
        (lambda: RouteConfig("/o", "https://a.example", credential_key="k", credential_format="no placeholder"), "credential_format"),
        (lambda: RouteConfig("/o", "https://a.example", credential_key="k", env_var="1BAD"), "env_var"),
        (lambda: ExternalProxyConfig("https://squid:3128"), "upstream proxy"),
        (lambda: ExternalProxyConfig("squid"), "upstream proxy"),
        (lambda: ExternalProxyConfig("squid:3128", bypass_hosts=["a.example:80"]), "without a port"),
    ],
)
def test_bad_input_raises_value_error_with_the_cli_message(make, message):
    with pytest.raises(ValueError) as e:
        make()
    assert message in str(e.value), str(e.value)


def test_two_routes_with_one_variable_are_refused():
    a = RouteConfig("/a", "https://a.example", credential_key="k", env_var="SAME")
    b = RouteConfig("/b", "https://b.example", credential_key="k", env_var="SAME")
    with pytest.raises(ValueError, match="SAME"):
        ProxyConfig(routes=[a, b])


def test_upstream_proxy_password_never_shown():
    e = ExternalProxyConfig("http://alice:hunter2-secret@squid.corp:3128")
    assert "hunter2-secret" not in repr(e)
    assert "hunter2-secret" not in e.address
    assert "hunter2-secret" not in repr(ProxyConfig(external_proxy=e))
    with pytest.raises(ValueError) as err:
        ExternalProxyConfig("http://alice:hunter2-secret@squid.corp")
    assert "hunter2-secret" not in str(err.value)
