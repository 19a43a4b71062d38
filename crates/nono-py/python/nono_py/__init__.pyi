"""Type stubs for nono_py."""

import pathlib
from types import TracebackType
from typing import Mapping, Optional, Sequence, Union

class SandboxError(RuntimeError):
    """The sandbox could not be built or the command could not be started in it."""

class InjectMode:
    """How a route puts the credential into the upstream request."""

    HEADER: "InjectMode"
    URL_PATH: "InjectMode"
    QUERY_PARAM: "InjectMode"
    BASIC_AUTH: "InjectMode"

class RouteConfig:
    """A credential route: http://127.0.0.1:PORT/<prefix>/... goes to upstream with the key.

    Raises ValueError (the CLI's message) for a bad field; credential_key is required in
    practice: a keyring key name, env://VAR, file:///abs/path or cmd://command.
    """

    prefix: str
    upstream: str
    credential_key: Optional[str]
    inject_mode: InjectMode
    inject_header: str
    credential_format: str
    path_pattern: Optional[str]
    path_replacement: Optional[str]
    query_param_name: Optional[str]
    env_var: Optional[str]
    def __init__(
        self,
        prefix: str,
        upstream: str,
        credential_key: Optional[str] = None,
        inject_mode: InjectMode = ...,
        inject_header: str = "Authorization",
        credential_format: str = "Bearer {}",
        path_pattern: Optional[str] = None,
        path_replacement: Optional[str] = None,
        query_param_name: Optional[str] = None,
        env_var: Optional[str] = None,
    ) -> None: ...

class ExternalProxyConfig:
    """An upstream (corporate) proxy; `address` reads back with any password as ***."""

    address: str
    bypass_hosts: list[str]
    def __init__(self, address: str, bypass_hosts: Sequence[str] = []) -> None: ...

class ProxyConfig:
    """The proxy's configuration; raises ValueError with the CLI's message when refused."""

    allowed_hosts: list[str]
    routes: list[RouteConfig]
    external_proxy: Optional[ExternalProxyConfig]
    bind_addr: str
    bind_port: int
    max_connections: int
    def __init__(
        self,
        allowed_hosts: Sequence[str] = [],
        routes: Sequence[RouteConfig] = [],
        external_proxy: Optional[ExternalProxyConfig] = None,
        bind_addr: str = "127.0.0.1",
        bind_port: int = 0,
        max_connections: int = 256,
    ) -> None: ...

class ProxyHandle:
    """A running proxy (from start_proxy); a context manager that shuts it down."""

    @property
    def port(self) -> int: ...
    @property
    def running(self) -> bool: ...
    def env_vars(self) -> dict[str, str]: ...
    def credential_env_vars(self) -> dict[str, str]: ...
    def drain_audit_events(self) -> list[dict[str, Union[int, str, None]]]: ...
    def shutdown(self) -> None: ...
    def __enter__(self) -> "ProxyHandle": ...
    def __exit__(
        self,
        exc_type: Optional[type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> bool: ...

def start_proxy(config: ProxyConfig) -> ProxyHandle:
    """Starts the proxy on its own thread; ValueError for a refused config, OSError to bind."""

def shutdown_all() -> None:
    """Shuts down every proxy this process started (also run at interpreter exit)."""

class AccessMode:
    READ: "AccessMode"
    READ_WRITE: "AccessMode"

class CapabilitySet:
    """Filesystem grants (system paths included) and the network mode of a sandbox."""

    def __init__(self) -> None: ...
    def allow_path(self, path: str, mode: AccessMode) -> None: ...
    def allow_file(self, path: str, mode: AccessMode) -> None: ...
    def block_network(self) -> None: ...
    def proxy_only(self, port: int) -> None: ...
    def allow_open_port(self, port: int) -> None: ...
    @property
    def fs_rules(self) -> list[tuple[pathlib.Path, AccessMode]]: ...
    @property
    def network(self) -> str: ...

class ExecResult:
    stdout: bytes
    stderr: bytes
    exit_code: int
    timed_out: bool
    containment: str

def sandboxed_exec(
    caps: CapabilitySet,
    command: Sequence[str],
    cwd: Optional[str] = None,
    timeout_secs: Optional[float] = None,
    env: Optional[Union[Mapping[str, str], Sequence[tuple[str, str]]]] = None,
    inherit_env: bool = False,
) -> ExecResult:
    """Runs command confined as `nono run` would.

    env is the whole environment unless inherit_env (then added to this process's, minus
    its proxy and env:// credential variables); PATH is not added (the program is looked up
    on env's PATH, else /usr/local/bin:/usr/bin:/bin). stdin is /dev/null. A timeout kills
    the whole sandbox and gives exit_code 124. Raises SandboxError with nono's message.
    """

def is_supported() -> bool: ...
def support_info() -> dict[str, Union[int, bool, str, None]]: ...
def load_profile(name_or_path: str) -> tuple[CapabilitySet, Optional[ProxyConfig]]:
    """Resolves a profile as `nono run --profile`; ProxyConfig is None without proxy mode."""
