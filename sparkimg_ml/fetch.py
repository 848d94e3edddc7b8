"""Source -> bytes, with no Spark import.

:class:`Fetcher` reads ``http(s)://`` URLs, local paths, ``file://`` and
``data:`` URIs and, when ``fsspec`` is installed, storage URLs such as
``s3://``, ``gs://``, ``abfs://`` or ``hdfs://``. Every per-row problem is
raised as :class:`~sparkimg_ml.errors.SourceError` with a reason code; a
fetch never takes longer than :attr:`FetchOptions.timeout`.

How HTTP works here, and why:

* One :class:`requests.Session` is shared by all threads of a fetcher. The
  request path of a session mutates no shared state except its cookie jar,
  which is locked and which we set to refuse every cookie (a cookie set by one
  row's server must not travel with another row). Its urllib3 pools are
  thread-safe, so keep-alive connections outlive the caller's threads and are
  reused by whichever thread asks next, and the pool is sized for the
  per-host cap.
* Redirects are followed by hand, so each hop's scheme, host and address is
  checked again, and ``Authorization``/``Cookie``/``Proxy-Authorization`` are
  dropped once a redirect leaves the first origin.
* The address check runs inside the connection's own socket creation: the host
  name is resolved once, the resolved addresses are checked against the
  network policy, and the socket connects to a checked address (TLS still
  verifies the certificate for the host name). There is therefore no window for
  DNS rebinding between the check and the connect. Proxy variables and
  ``.netrc`` are ignored (``trust_env`` is off) because a proxy would connect to
  addresses we never saw and ``.netrc`` would attach credentials to any host;
  ``REQUESTS_CA_BUNDLE``/``CURL_CA_BUNDLE`` are still honoured.
* The per-row deadline bounds everything: the wait for a per-host connection
  slot, DNS resolution, connecting, every socket read, retries and back-off.
  A watchdog shuts the socket of an exchange that outlives its deadline, so
  even a server that drips its headers or body one byte at a time cannot hold
  a thread past the deadline.
"""

from __future__ import annotations

import base64
import binascii
import concurrent.futures
import email.utils
import fnmatch
import heapq
import http
import http.client
import http.cookiejar
import ipaddress
import itertools
import math
import os
import random
import re
import socket
import stat
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, TypeVar, Union
from urllib.parse import unquote, unquote_to_bytes, urljoin, urlsplit

import requests
import urllib3.exceptions
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

from ._version import __version__
from .errors import SourceError

T = TypeVar("T")
# Union, not "|": these aliases are evaluated at import time, and Python 3.9 is supported.
IPAddress = Union[ipaddress.IPv4Address, ipaddress.IPv6Address]  # noqa: UP007
IPNetwork = Union[ipaddress.IPv4Network, ipaddress.IPv6Network]  # noqa: UP007

#: The default ``User-Agent`` header.
USER_AGENT = f"sparkimg_ml/{__version__}"

#: fsspec protocols read by default: object stores and Hadoop file systems. Other
#: fsspec protocols (ftp, sftp, ssh, github, memory, zip, ...) would reach hosts or
#: files outside the network and local-file policies, so they must be listed explicitly.
DEFAULT_STORAGE_PROTOCOLS = ["s3", "s3a", "gs", "gcs", "abfs", "abfss", "az", "adl", "hdfs", "webhdfs"]

#: Header names whose values are credentials: dropped when a redirect leaves the
#: first origin, and only accepted as ``env:NAME`` references in the ``headers`` Param.
SENSITIVE_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie"})

#: A header name matching this is treated as carrying a secret (an API key or token).
SECRET_HEADER_PATTERN = re.compile(r"authorization|cookie|token|secret|api-?key|password|signature",
                                   re.IGNORECASE)

#: Prefix of a header or storage-option value read from the executor's environment.
ENV_PREFIX = "env:"

#: Always refused: "this network", link-local (cloud metadata at 169.254.169.254),
#: Alibaba's metadata address, multicast and reserved ranges, and the IPv6
#: unspecified, link-local, AWS metadata (fd00:ec2::254) and multicast addresses.
ALWAYS_BLOCKED_NETWORKS = [ipaddress.ip_network(n) for n in (
    "0.0.0.0/8", "169.254.0.0/16", "100.100.100.200/32", "224.0.0.0/4", "240.0.0.0/4",
    "::/128", "fe80::/10", "fd00:ec2::254/128", "ff00::/8",
)]

#: Refused when ``block_private_networks`` is on: private, shared (CGNAT),
#: loopback and benchmarking ranges, IPv6 loopback and unique-local addresses.
PRIVATE_NETWORKS = [ipaddress.ip_network(n) for n in (
    "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "127.0.0.0/8",
    "198.18.0.0/15", "::1/128", "fc00::/7",
)]

_REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_CHUNK = 64 * 1024
# First back-off wait in seconds; it doubles per retry, capped by max_retry_wait.
_BACKOFF_BASE = 0.25
# gcsfs accepts these non-secret modes as its ``token`` option.
_PUBLIC_TOKEN_MODES = frozenset({"anon", "google_default", "cloud", "browser", "cache"})
_SECRET_OPTION_PATTERN = re.compile(
    r"^(key|token|secret)$|secret|password|passwd|account_key|sas_token|connection_string|credential",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class FetchOptions:
    """Network, file-system and safety limits for reading image sources.

    All values are plain JSON types so the options can be pickled into a Spark
    UDF closure and described by a stage's Params.

    Parameters
    ----------
    concurrency : int
        Threads that fetch and decode at once in one Spark task.
    timeout : float
        Seconds allowed for one source from start to last byte, every retry,
        back-off wait and redirect included.
    connect_timeout : float
        Seconds allowed to resolve and connect to a host (capped by what is left
        of ``timeout``); a connect timeout is retried while time remains.
    max_bytes : int
        Largest accepted body (decoded bytes for gzip/deflate responses).
    allow_local_files : bool
        Whether local paths and ``file://`` URIs may be read.
    max_connections_per_host : int
        Connections one fetcher opens to one host at once.
    max_retries : int
        Retries after a connection error, a connect timeout, HTTP 429 or 5xx.
    max_retry_wait : float
        Longest single wait before a retry, whether from back-off or ``Retry-After``.
    max_redirects : int
        Redirects followed before failing with ``too_many_redirects``.
    headers : dict of str to str
        Extra request headers. A value ``"env:NAME"`` is read from the
        environment variable ``NAME`` when the fetcher is created.
    block_private_networks : bool
        Also refuse private, loopback and unique-local addresses.
    allowed_hosts : list of str
        When not empty, only these hosts are fetched: exact names
        (``images.example.com``), sub-domain patterns (``*.example.com``), IP
        addresses or networks (``203.0.113.0/24``).
    storage_protocols : list of str
        fsspec protocols that may be read.
    storage_options : dict
        fsspec options per protocol, e.g.
        ``{"s3": {"endpoint_url": "http://127.0.0.1:9000"}}``; string values
        ``"env:NAME"`` are read from the environment.

    Examples
    --------
    >>> options = FetchOptions(timeout=5.0, max_retries=1)
    >>> options.timeout, options.max_redirects
    (5.0, 5)
    >>> FetchOptions(max_retries=-1)
    Traceback (most recent call last):
    ...
    ValueError: max_retries must be >= 0; got -1.
    """

    concurrency: int = 16
    timeout: float = 30.0
    connect_timeout: float = 10.0
    max_bytes: int = 50 * 1024 * 1024
    allow_local_files: bool = True
    max_connections_per_host: int = 8
    max_retries: int = 3
    max_retry_wait: float = 10.0
    max_redirects: int = 5
    headers: dict[str, str] = field(default_factory=dict)
    block_private_networks: bool = False
    allowed_hosts: list[str] = field(default_factory=list)
    storage_protocols: list[str] = field(default_factory=lambda: list(DEFAULT_STORAGE_PROTOCOLS))
    storage_options: dict[str, dict[str, Any]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in ("concurrency", "max_bytes", "max_connections_per_host"):
            _check_number(name, getattr(self, name), minimum=1)
        for name in ("max_retries", "max_redirects"):
            _check_number(name, getattr(self, name), minimum=0)
        for name in ("timeout", "connect_timeout"):
            _check_number(name, getattr(self, name), minimum=0, strict=True)
        _check_number("max_retry_wait", self.max_retry_wait, minimum=0)
        for rule in self.allowed_hosts:
            parse_host_rule(rule)
        # Private copies: later changes to the caller's containers must not leak in.
        object.__setattr__(self, "headers", dict(self.headers))
        object.__setattr__(self, "allowed_hosts", list(self.allowed_hosts))
        object.__setattr__(self, "storage_protocols", [p.lower() for p in self.storage_protocols])
        object.__setattr__(self, "storage_options", {k: dict(v) for k, v in self.storage_options.items()})

    def __hash__(self) -> int:
        # dict/list fields are not hashable; the sorted items of every field are.
        return hash(repr(sorted(asdict(self).items())))


def _check_number(name: str, value: Any, minimum: float, strict: bool = False) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
        raise TypeError(f"{name} must be a number, got {value!r}")
    if value < minimum or (strict and value == minimum) or math.isinf(value):
        bound = f"> {minimum}" if strict else f">= {minimum}"
        raise ValueError(f"{name} must be {bound}; got {value}.")


# --------------------------------------------------------------------------- network policy

class NetworkPolicy:
    """Which resolved addresses a connection may use.

    Examples
    --------
    >>> policy = NetworkPolicy()
    >>> [str(a) for a in policy.permitted("localhost", [ipaddress.ip_address("127.0.0.1")])]
    ['127.0.0.1']
    >>> policy.permitted("metadata", [ipaddress.ip_address("169.254.169.254")])
    Traceback (most recent call last):
    ...
    sparkimg_ml.errors.SourceError: blocked: metadata resolves to 169.254.169.254, a link-local or metadata address
    >>> policy.permitted("169.254.169.254", [ipaddress.ip_address("169.254.169.254")])
    Traceback (most recent call last):
    ...
    sparkimg_ml.errors.SourceError: blocked: 169.254.169.254, a link-local or metadata address
    """

    def __init__(self, block_private_networks: bool = False, allowed_hosts: Sequence[str] = ()) -> None:
        self.block_private_networks = block_private_networks
        rules = [parse_host_rule(rule) for rule in allowed_hosts]
        self._names = [r for r in rules if isinstance(r, str)]
        self._networks = [r for r in rules if not isinstance(r, str)]

    def host_listed(self, host: str) -> bool:
        """Whether ``host`` (a name) matches a name rule of the allow-list."""
        host = host.lower().rstrip(".")
        return any(host == rule or (rule.startswith("*.") and fnmatch.fnmatchcase(host, rule))
                   for rule in self._names)

    def refuses_name(self, host: str) -> bool:
        """Whether ``host`` is refused by name alone: an allow-list of names only, not matching.

        Such hosts are refused before any DNS query is sent for them.
        """
        return bool(self._names) and not self._networks and not self.host_listed(host)

    def refusal(self, host: str, address: IPAddress) -> str | None:
        """Why ``address`` (resolved from ``host``) is refused, or None."""
        candidates = [address] + _embedded_ipv4(address)
        if any(a in net for a in candidates for net in ALWAYS_BLOCKED_NETWORKS if a.version == net.version):
            return "a link-local or metadata address"
        if self.block_private_networks and any(
                a in net for a in candidates for net in PRIVATE_NETWORKS if a.version == net.version):
            return "a private or loopback address (blockPrivateNetworks)"
        if (self._names or self._networks) and not self.host_listed(host) and not any(
                a in net for a in candidates for net in self._networks if a.version == net.version):
            return "not in allowedHosts"
        return None

    def permitted(self, host: str, addresses: Sequence[IPAddress]) -> list[IPAddress]:
        """The addresses of ``host`` that may be used; raises ``SourceError("blocked")`` if none."""
        allowed = []
        first_refusal = ""
        for address in addresses:
            why = self.refusal(host, address)
            if why is None:
                allowed.append(address)
            elif not first_refusal:
                first_refusal = f"{address}, {why}"
        if not allowed:
            if not first_refusal:
                raise SourceError("blocked", f"{host} has no address")
            literal = len(addresses) == 1 and str(addresses[0]) == host.strip("[]")
            raise SourceError("blocked", first_refusal if literal else f"{host} resolves to {first_refusal}")
        return allowed


def parse_host_rule(rule: str) -> str | IPNetwork:
    """Parse one ``allowedHosts`` entry: a host name, ``*.domain``, an IP address or network.

    Examples
    --------
    >>> parse_host_rule("*.Example.com"), parse_host_rule("10.1.0.0/16")
    ('*.example.com', IPv4Network('10.1.0.0/16'))
    >>> parse_host_rule("http://example.com")
    Traceback (most recent call last):
    ...
    ValueError: allowedHosts entry 'http://example.com' is not a host name, *.domain pattern, IP address or network.
    """
    if not isinstance(rule, str):
        raise TypeError(f"allowedHosts entries must be strings, got {type(rule).__name__}: {rule!r}")
    text = rule.strip().lower().rstrip(".")
    try:
        return ipaddress.ip_network(text.strip("[]"), strict=False)
    except ValueError:
        pass
    label = r"[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?"
    if re.fullmatch(rf"(\*\.)?{label}(\.{label})*", text):
        return text
    raise ValueError(
        f"allowedHosts entry {rule!r} is not a host name, *.domain pattern, IP address or network."
    )


def _embedded_ipv4(address: IPAddress) -> list[IPAddress]:
    """IPv4 addresses an IPv6 address reaches through mapping, 6to4 or NAT64."""
    if not isinstance(address, ipaddress.IPv6Address):
        return []
    found: list[IPAddress] = [a for a in (address.ipv4_mapped, address.sixtofour) if a is not None]
    if address in _NAT64:
        found.append(ipaddress.IPv4Address(int(address) & 0xFFFFFFFF))
    return found


# --------------------------------------------------------------------------- header and option secrets

def is_secret_header(name: str) -> bool:
    """Whether a header's value is a credential that must not be written to disk.

    Examples
    --------
    >>> is_secret_header("Authorization"), is_secret_header("X-Api-Key"), is_secret_header("Accept")
    (True, True, False)
    """
    return bool(SECRET_HEADER_PATTERN.search(name))


def is_secret_option(name: str, value: Any) -> bool:
    """Whether a storage option holds a credential (``key``, ``secret``, ``sas_token``, ...).

    Examples
    --------
    >>> is_secret_option("secret", "abc"), is_secret_option("token", "anon"), is_secret_option("anon", True)
    (True, False, False)
    """
    if not isinstance(value, str) or not _SECRET_OPTION_PATTERN.search(name):
        return False
    return not (name.lower() == "token" and value in _PUBLIC_TOKEN_MODES)


def resolve_env(value: str, where: str) -> str:
    """``value`` itself, or the environment variable it names as ``env:NAME``.

    Raises ``ValueError`` naming ``where`` when the variable is not set.

    Examples
    --------
    >>> os.environ["SPARKIMG_DOC_TOKEN"] = "Bearer abc"
    >>> resolve_env("env:SPARKIMG_DOC_TOKEN", "header Authorization")
    'Bearer abc'
    """
    if not value.startswith(ENV_PREFIX):
        return value
    name = value[len(ENV_PREFIX):]
    resolved = os.environ.get(name)
    if resolved is None:
        raise ValueError(
            f"{where} refers to environment variable {name!r}, which is not set in this process "
            "(on a cluster, set it on the executors, e.g. spark.executorEnv." + name + ")."
        )
    return resolved


def _resolve_options(value: Any, where: str) -> Any:
    if isinstance(value, str):
        return resolve_env(value, where)
    if isinstance(value, dict):
        return {k: _resolve_options(v, f"{where}.{k}") for k, v in value.items()}
    if isinstance(value, list):
        return [_resolve_options(v, where) for v in value]
    return value


# --------------------------------------------------------------------------- deadlines

class _Retry(Exception):
    """A failure worth retrying: carries the reason and the server's ``Retry-After``."""

    def __init__(self, error: SourceError, retry_after: float | None = None) -> None:
        super().__init__(error.reason)
        self.error = error
        self.retry_after = retry_after


def _run_with_timeout(fn: Callable[[], T], timeout: float) -> T:
    """Run ``fn`` on a daemon thread and wait at most ``timeout`` seconds for it.

    For blocking calls with no deadline of their own (DNS resolution, storage
    back-ends): on time-out the call is abandoned and finishes or fails in the
    background within its back-end's own limits. Raises
    ``concurrent.futures.TimeoutError``; exceptions of ``fn`` are re-raised here.
    """
    future: concurrent.futures.Future = concurrent.futures.Future()

    def run() -> None:
        try:
            result = fn()
        except BaseException as exc:  # noqa: BLE001 - handed to the waiting caller, which re-raises it
            future.set_exception(exc)
        else:
            future.set_result(result)

    threading.Thread(target=run, name="sparkimg_ml-deadline", daemon=True).start()
    return future.result(timeout=max(timeout, 0.0))


class _Watchdog:
    """Shuts down the socket of any HTTP exchange that outlives its deadline.

    Socket time-outs bound each read, but a server can answer every read with
    one byte; shutting the socket makes the blocked read return at once.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._heap: list[tuple[float, int]] = []
        self._active: dict[int, _GuardedConnection] = {}
        self._ids = itertools.count(1)
        self._thread: threading.Thread | None = None
        self._closed = False

    def watch(self, deadline: float, conn: _GuardedConnection) -> int:
        with self._cond:
            token = next(self._ids)
            self._active[token] = conn
            conn.watch_token = token
            heapq.heappush(self._heap, (deadline, token))
            if self._thread is None and not self._closed:
                self._thread = threading.Thread(target=self._run, name="sparkimg_ml-watchdog", daemon=True)
                self._thread.start()
            self._cond.notify()
        return token

    def unwatch(self, token: int) -> None:
        with self._cond:
            self._active.pop(token, None)
            if len(self._heap) > 64 + 4 * len(self._active):  # drop finished entries in bulk
                self._heap = [entry for entry in self._heap if entry[1] in self._active]
                heapq.heapify(self._heap)

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify()
        if self._thread is not None:
            self._thread.join()

    def _run(self) -> None:
        with self._cond:
            while not self._closed:
                while self._heap and self._heap[0][1] not in self._active:
                    heapq.heappop(self._heap)
                if not self._heap:
                    self._cond.wait()
                    continue
                deadline, token = self._heap[0]
                delay = deadline - time.monotonic()
                if delay > 0:
                    self._cond.wait(delay)
                    continue
                heapq.heappop(self._heap)
                conn = self._active.pop(token)
                # The connection may already serve another exchange (pooled): leave it then.
                sock = conn.sock
                if conn.watch_token == token and sock is not None:
                    try:
                        # socket.socket.shutdown, not SSLSocket.shutdown: the reading
                        # thread still owns the TLS object; only the descriptor is cut.
                        socket.socket.shutdown(sock, socket.SHUT_RDWR)
                    except OSError:
                        pass  # already closed by its owner


class _Guard:
    """Per-fetcher state the connection classes consult: policy, deadline, watchdog."""

    def __init__(self, policy: NetworkPolicy) -> None:
        self.policy = policy
        self.watchdog = _Watchdog()
        self.local = threading.local()

    def deadline(self) -> float:
        return getattr(self.local, "deadline", math.inf)

    def arm(self, conn: _GuardedConnection) -> None:
        self.local.token = self.watchdog.watch(self.deadline(), conn)

    def disarm(self) -> None:
        token = getattr(self.local, "token", None)
        if token is not None:
            self.local.token = None
            self.watchdog.unwatch(token)

    def resolve(self, conn: HTTPConnection, host: str) -> list[tuple[IPAddress, str]]:
        """(address, text to connect to) for ``host``, literal or resolved within the deadline."""
        try:
            literal = ipaddress.ip_address(host.strip("[]"))
            return [(literal, str(literal))]
        except ValueError:
            pass
        limit = min(conn.timeout if isinstance(conn.timeout, (int, float)) else math.inf,
                    self.deadline() - time.monotonic())
        try:
            infos = _run_with_timeout(
                lambda: socket.getaddrinfo(host, conn.port, type=socket.SOCK_STREAM), limit)
        except concurrent.futures.TimeoutError:
            raise urllib3.exceptions.ConnectTimeoutError(conn, f"resolving {host} timed out") from None
        except socket.gaierror as exc:
            raise urllib3.exceptions.NameResolutionError(host, conn, exc) from exc
        found: list[tuple[IPAddress, str]] = []
        for info in infos:
            text = str(info[4][0])
            address = ipaddress.ip_address(text.split("%", 1)[0])
            if all(text != seen for _, seen in found):
                found.append((address, text))
        return found

    def new_socket(self, conn: HTTPConnection, connect: Callable[[], socket.socket]) -> socket.socket:
        """Resolve, check and connect to a permitted address of ``conn``'s host."""
        host = conn._dns_host
        if self.policy.refuses_name(host):
            raise SourceError("blocked", f"{host}, not in allowedHosts")
        candidates = self.resolve(conn, host)
        permitted = set(map(str, self.policy.permitted(host, [a for a, _ in candidates])))
        last_error: Exception | None = None
        for address, text in candidates:
            if str(address) not in permitted:
                continue
            # urllib3 connects to ``_dns_host``; TLS and the Host header use ``host``,
            # which is read from the same attribute, so it is restored before returning.
            conn._dns_host = text
            try:
                return connect()
            except (urllib3.exceptions.NewConnectionError, urllib3.exceptions.ConnectTimeoutError) as exc:
                last_error = exc
            finally:
                conn._dns_host = host
        assert last_error is not None  # permitted() returned at least one address
        raise last_error


class _GuardedConnection(HTTPConnection):
    guard: _Guard
    watch_token: int = 0

    def _new_conn(self) -> socket.socket:
        return self.guard.new_socket(self, super()._new_conn)

    def request(self, *args: Any, **kwargs: Any) -> None:  # type: ignore[override]
        self.guard.arm(self)
        super().request(*args, **kwargs)


class _GuardedHTTPSConnection(_GuardedConnection, HTTPSConnection):
    """The same guard over TLS (the MRO puts HTTPSConnection under the guard's overrides)."""


class _GuardedAdapter(HTTPAdapter):
    """An ``HTTPAdapter`` whose connections consult one fetcher's :class:`_Guard`."""

    def __init__(self, guard: _Guard, **kwargs: Any) -> None:
        self._guard = guard
        super().__init__(**kwargs)

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        plain = type("GuardedConnection", (_GuardedConnection,), {"guard": self._guard})
        tls = type("GuardedHTTPSConnection", (_GuardedHTTPSConnection,), {"guard": self._guard})
        self.poolmanager.pool_classes_by_scheme = {
            "http": type("GuardedPool", (HTTPConnectionPool,), {"ConnectionCls": plain}),
            "https": type("GuardedHTTPSPool", (HTTPSConnectionPool,), {"ConnectionCls": tls}),
        }


class _HostSlots:
    """At most ``limit`` exchanges per host at once; entries vanish when idle."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._cond = threading.Condition()
        self._busy: dict[str, int] = {}

    def acquire(self, host: str, deadline: float) -> None:
        with self._cond:
            while self._busy.get(host, 0) >= self.limit:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise SourceError("timeout", f"no free connection to {host} before the deadline "
                                                 f"(maxConnectionsPerHost={self.limit})")
                self._cond.wait(remaining)
            self._busy[host] = self._busy.get(host, 0) + 1

    def release(self, host: str) -> None:
        with self._cond:
            left = self._busy[host] - 1
            if left:
                self._busy[host] = left
            else:
                del self._busy[host]
            self._cond.notify_all()


# --------------------------------------------------------------------------- the fetcher

class Fetcher:
    """Reads sources to bytes; thread-safe, with one pooled HTTP session per instance.

    Parameters
    ----------
    options : FetchOptions, optional
        Limits and policies; the defaults when omitted.

    Raises
    ------
    ValueError
        When a header or storage option refers to an ``env:NAME`` variable that
        is not set: a configuration mistake, not a per-row problem.

    Examples
    --------
    >>> with Fetcher(FetchOptions()) as fetcher:
    ...     fetcher.fetch("data:text/plain;base64,aGVsbG8=")
    b'hello'
    >>> with Fetcher(FetchOptions()) as fetcher:
    ...     fetcher.fetch("/no/such/file.png")
    Traceback (most recent call last):
    ...
    sparkimg_ml.errors.SourceError: not_found: /no/such/file.png
    """

    def __init__(self, options: FetchOptions | None = None) -> None:
        self.options = options if options is not None else FetchOptions()
        self._headers = {name: resolve_env(value, f"header {name}")
                         for name, value in self.options.headers.items()}
        self._storage_options = {
            protocol: _resolve_options(values, f"storage option {protocol}")
            for protocol, values in self.options.storage_options.items()
        }
        self._guard = _Guard(NetworkPolicy(self.options.block_private_networks,
                                           self.options.allowed_hosts))
        self._slots = _HostSlots(self.options.max_connections_per_host)
        self._session = self._new_session()
        self._filesystems: dict[str, Any] = {}
        self._lock = threading.Lock()

    def _new_session(self) -> requests.Session:
        session = requests.Session()
        session.trust_env = False
        session.verify = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or True
        session.cookies.set_policy(http.cookiejar.DefaultCookiePolicy(allowed_domains=[]))
        session.headers["User-Agent"] = USER_AGENT
        per_host = min(self.options.max_connections_per_host, self.options.concurrency)
        adapter = _GuardedAdapter(
            self._guard, pool_connections=max(16, 2 * self.options.concurrency),
            pool_maxsize=per_host, max_retries=0,
        )
        session.mount("http://", adapter)
        session.mount("https://", adapter)
        return session

    # -- dispatch -------------------------------------------------------------
    def fetch(self, source: str) -> bytes:
        """Return the bytes behind ``source`` or raise :class:`SourceError`.

        Parameters
        ----------
        source : str
            An ``http(s)://`` URL, a local path, a ``file://`` or ``data:`` URI,
            or a storage URL whose protocol is in ``storage_protocols``.
        """
        deadline = time.monotonic() + self.options.timeout
        source = source.strip() if source else ""
        if not source:
            raise SourceError("missing", "empty source")
        if source[:5].lower() == "data:":
            return self._read_data_uri(source)
        try:
            parts = urlsplit(source)
        except ValueError as exc:
            raise SourceError("invalid_source", str(exc)) from None
        scheme = parts.scheme.lower()
        if scheme in ("http", "https"):
            return self._fetch_http(source, deadline)
        if scheme == "file":
            if parts.netloc not in ("", "localhost"):
                raise SourceError("unsupported_scheme", "file:// URIs on another host are not read")
            return self._read_local(unquote(parts.path))
        if scheme == "" or (len(scheme) == 1 and os.name == "nt"):  # a path, or a drive letter
            return self._read_local(source)
        if scheme in self.options.storage_protocols:
            return self._read_storage(source, scheme, deadline)
        raise SourceError(
            "unsupported_scheme",
            f"{scheme}: is not read; accepted: http, https, file, data, local paths"
            + (f", {', '.join(self.options.storage_protocols)} (storageProtocols)"
               if self.options.storage_protocols else ""),
        )

    # -- http -----------------------------------------------------------------
    def _fetch_http(self, url: str, deadline: float) -> bytes:
        origin = _origin(url)
        headers = dict(self._headers)
        visited = {url}
        for _ in range(self.options.max_redirects + 1):
            body, location = self._with_retries(url, headers, deadline)
            if location is None:
                assert body is not None
                return body
            target = urljoin(url, location)
            scheme = urlsplit(target).scheme.lower()
            if scheme not in ("http", "https"):
                raise SourceError("blocked", f"redirect to a {scheme or 'relative'}: URL refused")
            if target in visited:
                raise SourceError("too_many_redirects", "redirect loop")
            visited.add(target)
            if _origin(target) != origin:
                headers = {k: v for k, v in headers.items() if k.lower() not in SENSITIVE_HEADERS}
            url = target
        raise SourceError("too_many_redirects", f"more than {self.options.max_redirects} redirects")

    def _with_retries(self, url: str, headers: dict[str, str],
                      deadline: float) -> tuple[bytes | None, str | None]:
        for attempt in itertools.count():
            try:
                return self._exchange(url, headers, deadline)
            except _Retry as retry:
                if attempt >= self.options.max_retries:
                    raise retry.error from None
                if retry.retry_after is not None:
                    wait = min(retry.retry_after, self.options.max_retry_wait)
                else:
                    ceiling = min(self.options.max_retry_wait, _BACKOFF_BASE * 2 ** attempt)
                    wait = ceiling / 2 + random.uniform(0, ceiling / 2)  # "equal jitter"
                if time.monotonic() + wait >= deadline:
                    raise retry.error from None
                time.sleep(wait)
        raise AssertionError("unreachable")  # itertools.count() never ends

    def _exchange(self, url: str, headers: dict[str, str],
                  deadline: float) -> tuple[bytes | None, str | None]:
        """One request: (body, None) on 2xx, (None, location) on a redirect."""
        host = _host_of(url)
        self._slots.acquire(host, deadline)
        self._guard.local.deadline = deadline
        try:
            response = self._send(url, headers, deadline)
            try:
                status = response.status_code
                if status in _REDIRECT_STATUSES:
                    location = response.headers.get("Location")
                    if not location:
                        raise SourceError("bad_response", f"HTTP {status} redirect without a Location")
                    return None, location
                if status == 429 or 500 <= status <= 599:
                    raise _Retry(SourceError(f"http_{status}", _phrase(status)),
                                 _retry_after(response.headers.get("Retry-After")))
                if not 200 <= status <= 299:
                    raise SourceError(f"http_{status}", _phrase(status))
                return self._read_body(response, deadline), None
            finally:
                response.close()
        finally:
            self._guard.disarm()
            self._slots.release(host)

    def _send(self, url: str, headers: dict[str, str], deadline: float) -> requests.Response:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise SourceError("timeout", f"no response within {self.options.timeout:g}s")
        connect = min(self.options.connect_timeout, remaining)
        try:
            return self._session.get(url, headers=headers, stream=True, allow_redirects=False,
                                     timeout=(connect, remaining))
        except requests.exceptions.ConnectTimeout:
            error = SourceError("timeout", f"no connection within {connect:.3g}s")
            if time.monotonic() >= deadline:
                raise error from None
            raise _Retry(error) from None
        except requests.exceptions.ReadTimeout:
            raise SourceError("timeout", f"no response within {self.options.timeout:g}s") from None
        except requests.exceptions.SSLError as exc:
            raise SourceError("connection", f"TLS failed: {_connection_detail(exc)}") from None
        except requests.exceptions.ConnectionError as exc:
            if time.monotonic() >= deadline:
                raise SourceError("timeout", f"no response within {self.options.timeout:g}s") from None
            raise _Retry(SourceError("connection", _connection_detail(exc))) from None
        except (requests.exceptions.InvalidURL, requests.exceptions.InvalidSchema,
                requests.exceptions.MissingSchema, requests.exceptions.InvalidHeader) as exc:
            raise SourceError("invalid_source", type(exc).__name__) from None

    def _read_body(self, response: requests.Response, deadline: float) -> bytes:
        limit = self.options.max_bytes
        declared = response.headers.get("Content-Length", "")
        if declared.isdigit() and int(declared) > limit:
            raise SourceError("too_large", f"Content-Length {declared} > maxBytes {limit}")
        parts: list[bytes] = []
        size = 0
        raw = response.raw
        while True:
            if time.monotonic() >= deadline:
                raise SourceError("timeout", f"body not complete within {self.options.timeout:g}s")
            try:
                # read1: at most one socket read per call, so the deadline is checked
                # between reads; gzip/deflate are decoded here, bounded to _CHUNK output.
                chunk = raw.read1(_CHUNK, decode_content=True)
            except urllib3.exceptions.ReadTimeoutError:
                raise SourceError("timeout", f"body not complete within {self.options.timeout:g}s") from None
            except urllib3.exceptions.DecodeError:
                raise SourceError("bad_response", "body does not match its Content-Encoding") from None
            except (urllib3.exceptions.HTTPError, OSError) as exc:
                if time.monotonic() >= deadline:
                    raise SourceError("timeout", f"body not complete within {self.options.timeout:g}s") from None
                raise _Retry(SourceError("connection", _connection_detail(exc))) from None
            if not chunk:
                return b"".join(parts)
            size += len(chunk)
            if size > limit:
                raise SourceError("too_large", f"body exceeds maxBytes {limit}")
            parts.append(chunk)

    # -- local files ------------------------------------------------------------
    def _read_local(self, path: str) -> bytes:
        if not self.options.allow_local_files:
            raise SourceError("local_files_disabled", "set allowLocalFiles=True to read local paths")
        if "\0" in path:
            raise SourceError("invalid_source", "NUL character in a local path")
        # O_NONBLOCK: opening a FIFO must not wait for a writer; checking the type on
        # the open descriptor (not the path) leaves no window to swap the file.
        flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0) | getattr(os, "O_BINARY", 0)
        try:
            fd = os.open(path, flags)
        except OSError as exc:
            raise _file_error(path, exc) or SourceError("io_error", f"{path}: {os.strerror(exc.errno or 0)}") \
                from None
        try:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode):
                raise SourceError("not_a_file", f"{path} is a {_file_kind(info.st_mode)}")
            if info.st_size > self.options.max_bytes:
                raise SourceError("too_large", f"{info.st_size} bytes > maxBytes {self.options.max_bytes}")
            parts: list[bytes] = []
            size = 0
            while True:
                chunk = os.read(fd, 1024 * 1024)
                if not chunk:
                    return b"".join(parts)
                size += len(chunk)
                if size > self.options.max_bytes:  # the file grew after fstat
                    raise SourceError("too_large", f"more than maxBytes {self.options.max_bytes}")
                parts.append(chunk)
        except OSError as exc:
            raise SourceError("io_error", f"{path}: {os.strerror(exc.errno or 0)}") from None
        finally:
            os.close(fd)

    # -- data: URIs ---------------------------------------------------------------
    def _read_data_uri(self, source: str) -> bytes:
        header, comma, payload = source[5:].partition(",")
        if not comma:
            raise SourceError("invalid_source", "data: URI without a comma")
        limit = self.options.max_bytes
        if header.lower().endswith(";base64"):
            text = re.sub(r"\s+", "", unquote(payload) if "%" in payload else payload)
            if len(text) // 4 * 3 > limit + 2:
                raise SourceError("too_large", f"data: URI payload exceeds maxBytes {limit}")
            try:
                data = base64.b64decode(text, validate=True)
            except (binascii.Error, ValueError):
                raise SourceError("invalid_source", "invalid base64 in data: URI") from None
        else:
            data = unquote_to_bytes(payload)
        if len(data) > limit:
            raise SourceError("too_large", f"data: URI payload exceeds maxBytes {limit}")
        return data

    # -- fsspec storage -------------------------------------------------------------
    def _filesystem(self, protocol: str) -> Any:
        with self._lock:
            fs = self._filesystems.get(protocol)
        if fs is not None:
            return fs
        try:
            import fsspec
        except ImportError:
            raise SourceError("unsupported_scheme",
                              f"{protocol}: needs fsspec: pip install 'sparkimg_ml[cloud]'") from None
        try:
            implementation = fsspec.get_filesystem_class(protocol)
            # Options given for an alias (s3 for s3a, gs for gcs, abfs for az) apply too.
            aliases = implementation.protocol
            names = [protocol] + ([aliases] if isinstance(aliases, str) else list(aliases))
            options: dict[str, Any] = next(
                (self._storage_options[n] for n in names if n in self._storage_options), {})
            fs = fsspec.filesystem(protocol, **options)
        except ImportError as exc:
            raise SourceError("unsupported_scheme", f"{protocol}: {exc}") from None
        except ValueError:
            raise SourceError("unsupported_scheme", f"{protocol}: is not an fsspec protocol") from None
        with self._lock:
            return self._filesystems.setdefault(protocol, fs)

    def _read_storage(self, source: str, protocol: str, deadline: float) -> bytes:
        if "::" in source:  # chained URLs could reach local files or other protocols
            raise SourceError("unsupported_scheme", "chained fsspec URLs (::) are not read")
        fs = self._filesystem(protocol)
        path = fs._strip_protocol(source)
        abandoned = threading.Event()
        try:
            return _run_with_timeout(lambda: self._read_object(fs, path, abandoned),
                                     deadline - time.monotonic())
        except concurrent.futures.TimeoutError:
            abandoned.set()  # the reading thread stops at its next chunk
            raise SourceError("timeout", f"storage read not complete within {self.options.timeout:g}s") from None

    def _read_object(self, fs: Any, path: str, abandoned: threading.Event) -> bytes:
        limit = self.options.max_bytes
        try:
            with fs.open(path, "rb") as handle:
                size = getattr(handle, "size", None)
                if isinstance(size, int) and size > limit:
                    raise SourceError("too_large", f"{size} bytes > maxBytes {limit}")
                parts: list[bytes] = []
                total = 0
                while not abandoned.is_set():
                    chunk = handle.read(min(4 * 1024 * 1024, limit + 1 - total))
                    if not chunk:
                        return b"".join(parts)
                    total += len(chunk)
                    if total > limit:
                        raise SourceError("too_large", f"more than maxBytes {limit}")
                    parts.append(chunk)
                raise SourceError("timeout", "storage read abandoned at the deadline")
        except OSError as exc:
            raise _file_error(path, exc) or SourceError(
                "storage", f"{type(exc).__name__}: {_connection_detail(exc)}") from None
        except ValueError:  # back-ends refuse paths that name no object (s3fs: a bare bucket)
            raise SourceError("invalid_source", f"{path} is not an object path") from None

    # -- lifecycle --------------------------------------------------------------------
    def close(self) -> None:
        """Close pooled connections and stop the watchdog thread."""
        self._session.close()
        self._guard.watchdog.close()

    def __enter__(self) -> Fetcher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# --------------------------------------------------------------------------- helpers

def _host_of(url: str) -> str:
    """The lower-case host of ``url``; ``SourceError("invalid_source")`` if it has none or a bad port."""
    try:
        parts = urlsplit(url)
        if parts.port == 0:
            raise ValueError("Port 0 is not valid")
    except ValueError as exc:
        raise SourceError("invalid_source", str(exc)) from None
    if not parts.hostname:
        raise SourceError("invalid_source", "URL without a host")
    return parts.hostname.lower()


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    try:
        port = parts.port
    except ValueError:
        port = None
    return scheme, (parts.hostname or "").lower(), port or {"http": 80, "https": 443}.get(scheme)


def _phrase(status: int) -> str:
    # The standard phrase, never the server's own text (which it controls).
    try:
        return http.HTTPStatus(status).phrase
    except ValueError:
        return ""


def _retry_after(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds or HTTP date), or None."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _file_error(path: str, exc: OSError) -> SourceError | None:
    """The reason for a missing, directory or forbidden path (local or storage), else None."""
    if isinstance(exc, (FileNotFoundError, NotADirectoryError)):
        return SourceError("not_found", path)
    if isinstance(exc, IsADirectoryError):
        return SourceError("not_a_file", f"{path} is a directory")
    if isinstance(exc, PermissionError):
        return SourceError("permission_denied", path)
    return None


def _file_kind(mode: int) -> str:
    for test, name in ((stat.S_ISDIR, "directory"), (stat.S_ISFIFO, "FIFO"), (stat.S_ISCHR, "character device"),
                       (stat.S_ISBLK, "block device"), (stat.S_ISSOCK, "socket")):
        if test(mode):
            return name
    return "special file"


def _connection_detail(exc: BaseException) -> str:
    """A short cause for a failed exchange, never the exception text (it quotes the URL)."""
    pending: list[BaseException] = [exc]
    seen: set = set()
    innermost = exc
    while pending:
        current = pending.pop(0)
        if id(current) in seen:
            continue
        seen.add(id(current))
        innermost = current
        if isinstance(current, urllib3.exceptions.NameResolutionError):
            return "could not resolve host"
        if isinstance(current, (http.client.IncompleteRead, urllib3.exceptions.IncompleteRead)):
            return "body shorter than its Content-Length"
        if isinstance(current, http.client.RemoteDisconnected):
            return "server closed the connection without a response"
        if isinstance(current, OSError) and current.errno:
            return os.strerror(current.errno).lower()
        reason = getattr(current, "reason", None)
        links = [reason, current.__cause__, current.__context__, *current.args]
        pending.extend(link for link in links if isinstance(link, BaseException))
    return type(innermost).__name__
