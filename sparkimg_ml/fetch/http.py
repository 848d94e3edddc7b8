"""HTTP transport: pooled keep-alive connections, guarded connects, retries and hand-followed redirects.

* urllib3 is used directly: one :class:`urllib3.PoolManager` per fetcher,
  shared by all its threads. Its pools are thread-safe, so keep-alive
  connections outlive the caller's threads and are reused by whichever thread
  asks next; a pool holds as many connections as the per-host cap allows. A
  URL is parsed once per hop, and nothing a server sends is kept between
  requests: no cookies are stored or sent (a cookie set by one row's server
  must not travel with another row).
* Redirects are followed by hand, so each hop's scheme, host and address is
  checked again, and ``Authorization``/``Cookie``/``Proxy-Authorization`` are
  dropped once a redirect leaves the first origin. User-info in a URL
  (``http://user:password@host/``) becomes that hop's Basic ``Authorization``.
* The address check runs inside the connection's own socket creation: the host
  name is resolved once, the resolved addresses are checked against the
  network policy, and the socket connects to a checked address (TLS still
  verifies the certificate for the host name). There is therefore no window for
  DNS rebinding between the check and the connect. Proxy variables and
  ``.netrc`` are never read: a proxy would connect to addresses we never saw
  and ``.netrc`` would attach credentials to any host. Certificates are
  verified against ``REQUESTS_CA_BUNDLE`` or ``CURL_CA_BUNDLE`` when set, else
  certifi's bundle.
* The per-row deadline bounds everything: the wait for a per-host connection
  slot, DNS resolution, connecting, every socket read, retries and back-off.
  Every body form is read in bounded reads with the deadline checked between
  them, and a watchdog shuts the socket of an exchange that outlives its
  deadline (the socket itself, also once http.client has handed it from the
  connection to a response that will close it), so even a server that drips
  its headers or body one byte at a time cannot hold a thread past the deadline.
* Crawl etiquette (:mod:`.polite`): requests to one host are spaced by
  ``max_requests_per_second_per_host``, conditional requests carry a previous
  copy's validators (a ``304`` is ``not_modified``), and with
  ``respect_opt_out`` an ``X-Robots-Tag: noai``/``noimageai`` answer is
  ``opted_out`` before its body is read.
"""

from __future__ import annotations

import base64
import email.utils
import http
import http.client
import ipaddress
import itertools
import math
import os
import random
import socket
import ssl
import threading
import time
from collections.abc import Callable
from typing import Any, NamedTuple
from urllib.parse import unquote, urljoin, urlsplit

import certifi
import urllib3
import urllib3.exceptions
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.response import BaseHTTPResponse
from urllib3.util import Timeout, make_headers, parse_url

from .._version import __version__
from ..errors import SourceError
from .deadline import BLOCKING_CALLS, CallTimeout, Watchdog
from .options import FetchOptions
from .policy import IPAddress, NetworkPolicy
from .polite import Fetched, HostRateLimit, Validators, agent_token, opt_out_directive
from .secrets import SENSITIVE_HEADERS

#: The default ``User-Agent`` header.
USER_AGENT = f"sparkimg_ml/{__version__}"

#: Headers every request carries unless the ``headers`` option replaces them.
DEFAULT_HEADERS = {
    "User-Agent": USER_AGENT,
    # What urllib3 can decode here: gzip and deflate, plus br/zstd when their packages are installed.
    "Accept-Encoding": make_headers(accept_encoding=True)["accept-encoding"],
    "Accept": "*/*",
}

_REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
# A 304 answers a request carrying one of these (sent from validators or configured as headers).
_CONDITIONAL_HEADERS = frozenset({"if-none-match", "if-modified-since"})
_DEFAULT_PORTS = {"http": 80, "https": 443}
# Largest read from a body of unknown size or encoded (urllib3 bounds decoded output to it).
_CHUNK = 256 * 1024
# First back-off wait in seconds; it doubles per retry, capped by max_retry_wait.
_BACKOFF_BASE = 0.25


class _Retry(Exception):
    """A failure worth retrying: carries the reason and the server's ``Retry-After``."""

    def __init__(self, error: SourceError, retry_after: float | None = None) -> None:
        super().__init__(error.reason)
        self.error = error
        self.retry_after = retry_after


class _Guard:
    """Per-fetcher state the connection classes consult: policy, deadline, watchdog."""

    def __init__(self, policy: NetworkPolicy) -> None:
        self.policy = policy
        self.watchdog = Watchdog()
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
            infos = BLOCKING_CALLS.run(lambda: socket.getaddrinfo(host, conn.port, type=socket.SOCK_STREAM),
                                       time.monotonic() + limit, f"resolving {host}")
        except CallTimeout as exc:
            raise urllib3.exceptions.ConnectTimeoutError(conn, str(exc)) from None
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
        refusal = self.policy.name_refusal(host)
        if refusal:
            raise SourceError("blocked", f"{host}, {refusal}")
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
    # The socket of the exchange being watched. ``conn.sock`` is not enough: when the
    # response will close the connection (``Connection: close``, HTTP/1.0), http.client
    # hands the socket to the response and sets ``conn.sock`` to None before the body is read.
    watch_sock: socket.socket | None = None

    def _new_conn(self) -> socket.socket:
        return self.guard.new_socket(self, super()._new_conn)

    def request(self, *args: Any, **kwargs: Any) -> None:  # type: ignore[override]
        self.guard.arm(self)
        super().request(*args, **kwargs)
        self.watch_sock = self.sock


class _GuardedHTTPSConnection(_GuardedConnection, HTTPSConnection):
    """The same guard over TLS (the MRO puts HTTPSConnection under the guard's overrides)."""


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


class _Target(NamedTuple):
    """One hop's URL, parsed once: where to connect, what to ask for, and with which credentials."""

    url: str
    scheme: str
    host: str
    port: int
    request_uri: str
    basic_auth: str | None

    @classmethod
    def parse(cls, url: str) -> _Target:
        """``SourceError("invalid_source")`` for a URL without a host or with a bad port.

        Examples
        --------
        >>> _Target.parse("http://u:p%40ss@Images.Example.com./a b.png?w=1").request_uri
        '/a%20b.png?w=1'
        >>> _Target.parse("https://images.example.com/a.png")[1:5]
        ('https', 'images.example.com', 443, '/a.png')
        """
        try:
            parts = parse_url(url)
        except urllib3.exceptions.LocationParseError:
            # Its message quotes the URL, which may carry credentials.
            raise SourceError("invalid_source", "not a valid URL (host or port)") from None
        if not parts.host:
            raise SourceError("invalid_source", "URL without a host")
        if parts.port == 0:
            raise SourceError("invalid_source", "port 0 is not valid")
        scheme = (parts.scheme or "").lower()
        basic_auth = None
        if parts.auth:
            user, _, password = parts.auth.partition(":")
            token = base64.b64encode(f"{unquote(user)}:{unquote(password)}".encode()).decode("ascii")
            basic_auth = f"Basic {token}"
        return cls(url, scheme, parts.host.rstrip("."), parts.port or _DEFAULT_PORTS[scheme],
                   parts.request_uri, basic_auth)

    @property
    def origin(self) -> tuple[str, str, int]:
        return self.scheme, self.host, self.port


class _Answer(NamedTuple):
    """One exchange's outcome: a body and its validators, or a redirect's location."""

    body: bytes | None
    location: str | None
    validators: Validators = Validators()


class HttpClient:
    """Fetches ``http(s)://`` URLs for one :class:`~sparkimg_ml.fetch.Fetcher`; thread-safe.

    ``headers`` are the configured request headers with their ``env:NAME``
    references already resolved; they replace defaults of the same name.
    """

    def __init__(self, options: FetchOptions, headers: dict[str, str]) -> None:
        self.options = options
        configured = {name.lower() for name in headers}
        self._headers = {name: value for name, value in DEFAULT_HEADERS.items() if name.lower() not in configured}
        self._headers.update(headers)
        self._guard = _Guard(NetworkPolicy(options.block_private_networks, options.allowed_hosts))
        self._slots = _HostSlots(options.max_connections_per_host)
        self._rates = (HostRateLimit(options.max_requests_per_second_per_host)
                       if options.max_requests_per_second_per_host > 0 else None)
        agents = [v for k, v in self._headers.items() if k.lower() == "user-agent"]
        self._agent = agent_token(agents[-1] if agents else USER_AGENT)
        self._pools = self._new_pool_manager()

    def _new_pool_manager(self) -> urllib3.PoolManager:
        per_host = min(self.options.max_connections_per_host, self.options.concurrency)
        pools = urllib3.PoolManager(
            num_pools=max(16, 2 * self.options.concurrency), maxsize=per_host, retries=False,
            cert_reqs="CERT_REQUIRED",
            ca_certs=os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or certifi.where(),
        )
        plain = type("GuardedConnection", (_GuardedConnection,), {"guard": self._guard})
        tls = type("GuardedHTTPSConnection", (_GuardedHTTPSConnection,), {"guard": self._guard})
        pools.pool_classes_by_scheme = {
            "http": type("GuardedPool", (HTTPConnectionPool,), {"ConnectionCls": plain}),
            "https": type("GuardedHTTPSPool", (HTTPSConnectionPool,), {"ConnectionCls": tls}),
        }
        return pools

    def fetch(self, url: str, deadline: float) -> bytes:
        """The body of ``url``, following redirects and retrying within ``deadline`` (a monotonic time)."""
        return self.fetch_validated(url, deadline).body

    def fetch_validated(self, url: str, deadline: float, previous: Validators | None = None) -> Fetched:
        """:meth:`fetch`, sending ``previous`` validators (on every hop) and returning the new ones.

        An unchanged source (HTTP 304) raises ``SourceError("not_modified")``.
        """
        target = _Target.parse(url)
        origin = target.origin
        headers = self._headers
        if previous is not None:
            headers = {**headers, **previous.request_headers()}
        visited = {url}
        for _ in range(self.options.max_redirects + 1):
            body, location, validators = self._with_retries(target, headers, deadline)
            if location is None:
                assert body is not None
                return Fetched(body, validators)
            next_url = urljoin(target.url, location)
            scheme = urlsplit(next_url).scheme.lower()
            if scheme not in ("http", "https"):
                raise SourceError("blocked", f"redirect to a {scheme or 'relative'}: URL refused")
            if next_url in visited:
                raise SourceError("too_many_redirects", "redirect loop")
            visited.add(next_url)
            target = _Target.parse(next_url)
            if target.origin != origin:
                headers = {k: v for k, v in headers.items() if k.lower() not in SENSITIVE_HEADERS}
        raise SourceError("too_many_redirects", f"more than {self.options.max_redirects} redirects")

    def _with_retries(self, target: _Target, headers: dict[str, str], deadline: float) -> _Answer:
        for attempt in itertools.count():
            try:
                return self._exchange(target, headers, deadline)
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

    def _exchange(self, target: _Target, headers: dict[str, str], deadline: float) -> _Answer:
        """One request: (body, None, validators) on 2xx, (None, location) on a redirect."""
        if target.basic_auth:
            headers = {**headers, "Authorization": target.basic_auth}
        self._slots.acquire(target.host, deadline)
        self._guard.local.deadline = deadline
        try:
            if self._rates is not None:  # holding the slot: the request starts right after its turn
                self._rates.wait(target.host, deadline)
            response = self._send(target, headers, deadline)
            try:
                status = response.status
                if status in _REDIRECT_STATUSES:
                    location = response.headers.get("Location")
                    if not location:
                        raise SourceError("bad_response", f"HTTP {status} redirect without a Location")
                    return _Answer(None, location)
                if status == 304 and any(k.lower() in _CONDITIONAL_HEADERS for k in headers):
                    self._check_opt_out(response)  # an owner who opted out since the last copy is heard
                    raise SourceError("not_modified", "HTTP 304: the copy the validators name is current")
                if status == 429 or 500 <= status <= 599:
                    raise _Retry(SourceError(f"http_{status}", _phrase(status)),
                                 _retry_after(response.headers.get("Retry-After")))
                if not 200 <= status <= 299:
                    raise SourceError(f"http_{status}", _phrase(status))
                self._check_opt_out(response)
                validators = Validators(response.headers.get("ETag"), response.headers.get("Last-Modified"))
                return _Answer(self._read_body(response, deadline), None, validators)
            finally:
                # A body read to its end has already handed the connection back to the
                # pool; otherwise the connection is closed, never reused mid-response.
                response.close()
        finally:
            self._guard.disarm()
            self._slots.release(target.host)

    def _check_opt_out(self, response: BaseHTTPResponse) -> None:
        """``SourceError("opted_out")`` when ``respect_opt_out`` is on and the response opts out of AI use."""
        if self.options.respect_opt_out:
            directive = opt_out_directive(response.headers.getlist("X-Robots-Tag"), self._agent)
            if directive is not None:
                raise SourceError("opted_out", f"X-Robots-Tag {directive}")

    def _send(self, target: _Target, headers: dict[str, str], deadline: float) -> BaseHTTPResponse:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise SourceError("timeout", f"no response within {self.options.timeout:g}s")
        connect = min(self.options.connect_timeout, remaining)
        try:
            pool = self._pools.connection_from_host(target.host, target.port, target.scheme)
            return pool.urlopen("GET", target.request_uri, headers=headers, retries=False, redirect=False,
                                assert_same_host=False, timeout=Timeout(connect=connect, read=remaining),
                                preload_content=False)
        except urllib3.exceptions.NewConnectionError as exc:  # before ConnectTimeoutError: a subclass of it
            if time.monotonic() >= deadline:
                raise SourceError("timeout", f"no response within {self.options.timeout:g}s") from None
            raise _Retry(SourceError("connection", _connection_detail(exc))) from None
        except urllib3.exceptions.ConnectTimeoutError:
            error = SourceError("timeout", f"no connection within {connect:.3g}s")
            if time.monotonic() >= deadline:
                raise error from None
            raise _Retry(error) from None
        except urllib3.exceptions.ReadTimeoutError:
            raise SourceError("timeout", f"no response within {self.options.timeout:g}s") from None
        except urllib3.exceptions.SSLError as exc:
            raise SourceError("connection", f"TLS failed: {_connection_detail(exc)}") from None
        except urllib3.exceptions.LocationValueError:
            raise SourceError("invalid_source", "not a valid URL (host or port)") from None
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            if time.monotonic() >= deadline:
                raise SourceError("timeout", f"no response within {self.options.timeout:g}s") from None
            raise _Retry(SourceError("connection", _connection_detail(exc))) from None
        except ValueError as exc:  # http.client refuses a malformed request line or header
            raise SourceError("invalid_source", type(exc).__name__) from None

    def _read_body(self, response: BaseHTTPResponse, deadline: float) -> bytes:
        limit = self.options.max_bytes
        declared = response.headers.get("Content-Length", "")
        if declared.isdigit() and int(declared) > limit:
            raise SourceError("too_large", f"Content-Length {declared} > maxBytes {limit}")
        # Every body form (known length, chunked, close-delimited, encoded) is read the same
        # way, in bounded reads against the deadline; the watchdog ends a read blocked at it.
        # A known-length body cut short raises IncompleteRead.
        parts: list[bytes] = []
        size = 0
        while True:
            if time.monotonic() >= deadline:
                raise SourceError("timeout", f"body not complete within {self.options.timeout:g}s")
            # read1: at most one socket read per call, so the deadline is checked between
            # reads, and a gzip/deflate body is decoded at most _CHUNK bytes at a time.
            chunk = self._read(response, _CHUNK, deadline)
            if not chunk:
                if time.monotonic() >= deadline:
                    # The watchdog's shutdown also looks like the end of a close-delimited body.
                    raise SourceError("timeout", f"body not complete within {self.options.timeout:g}s")
                return b"".join(parts)
            size += len(chunk)
            if size > limit:
                raise SourceError("too_large", f"body exceeds maxBytes {limit}")
            parts.append(chunk)

    def _read(self, response: BaseHTTPResponse, amount: int, deadline: float) -> bytes:
        """What one socket read of the body gives (at most ``amount`` bytes, decoded)."""
        try:
            return response.read1(amount)
        except urllib3.exceptions.ReadTimeoutError:
            raise SourceError("timeout", f"body not complete within {self.options.timeout:g}s") from None
        except urllib3.exceptions.DecodeError:
            raise SourceError("bad_response", "body does not match its Content-Encoding") from None
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            if time.monotonic() >= deadline:
                raise SourceError("timeout", f"body not complete within {self.options.timeout:g}s") from None
            raise _Retry(SourceError("connection", _connection_detail(exc))) from None

    def close(self) -> None:
        """Close pooled connections and stop the watchdog thread."""
        self._pools.clear()
        self._guard.watchdog.close()


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
        if isinstance(current, ssl.SSLCertVerificationError):  # its errno is OpenSSL's, not the OS's
            return f"certificate verify failed: {current.verify_message}"
        if isinstance(current, ssl.SSLError):
            return (current.reason or "TLS error").lower().replace("_", " ")
        if isinstance(current, OSError) and current.errno:
            return os.strerror(current.errno).lower()
        reason = getattr(current, "reason", None)
        links = [reason, current.__cause__, current.__context__, *current.args]
        pending.extend(link for link in links if isinstance(link, BaseException))
    return type(innermost).__name__
