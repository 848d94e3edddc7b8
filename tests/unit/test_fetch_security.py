"""The fetching safety claims of the README ("Fetching sources", "Safety" and "Reads that hang"), one test each.

Every server is on 127.0.0.1. Host names that must resolve to other addresses go
through a controlled resolver (``socket.getaddrinfo``, which the fetch layer's
guarded connections call), and connections meant for a "public" address are
handed to a loopback server, so nothing leaves the machine.
"""

from __future__ import annotations

import contextlib
import json
import netrc
import os
import socket
import time
import traceback
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import quote

import certifi
import pytest
import trustme
import urllib3.util.connection
from crawl_server import CrawlServer
from fault_server import PNG, FaultServer, tls_fault_server

from sparkimg_ml.errors import SourceError
from sparkimg_ml.fetch import Fetcher, FetchOptions
from sparkimg_ml.fetch import deadline as deadline_module
from sparkimg_ml.fetch import fetcher as fetcher_module
from sparkimg_ml.fetch import local as local_reader
from sparkimg_ml.fetch.deadline import MAX_ABANDONED_CALLS, BlockingCalls

#: A TEST-NET-3 address (RFC 5737): public as far as the network policy is concerned.
PUBLIC = "203.0.113.7"


@pytest.fixture(scope="module")
def server() -> Iterator[FaultServer]:
    with FaultServer() as running:
        yield running


@pytest.fixture(scope="module")
def crawl() -> Iterator[CrawlServer]:
    with CrawlServer() as running:
        yield running


@pytest.fixture(scope="module")
def tls() -> Iterator[tuple[FaultServer, str]]:
    """An HTTPS fault server whose certificate a test CA signed, and a PEM bundle file holding that CA."""
    with tls_fault_server() as served:
        yield served


def fetcher(**options: object) -> Fetcher:
    defaults: dict = {"timeout": 2.0, "max_retries": 0}
    defaults.update(options)
    return Fetcher(FetchOptions(**defaults))


def failure(fetch: Fetcher, source: str) -> SourceError:
    with pytest.raises(SourceError) as caught:
        fetch.fetch(source)
    return caught.value


# --------------------------------------------------------------------------- DNS rebinding
# Claim: "Host names are resolved once, and the connection is made to the address that was
# checked, so DNS rebinding cannot slip past the check."


class _RebindingResolver:
    """Answers ``answers[0]`` for the first query of ``name``, ``answers[1]`` for every later one.

    IP literals (which urllib3 passes through ``getaddrinfo`` when it connects) are
    answered by the real resolver; every connection's destination is recorded.
    """

    def __init__(self, name: str, answers: list[list[str]], server: FaultServer) -> None:
        self.name = name
        self.answers = answers
        self.server = server
        self.queries: list[str] = []
        self.connects: list[str] = []
        self._getaddrinfo = socket.getaddrinfo
        self._create_connection = urllib3.util.connection.create_connection

    def getaddrinfo(self, host: str, port: object, *args: object, **kwargs: object) -> list:
        if host != self.name:
            return self._getaddrinfo(host, port, *args, **kwargs)  # type: ignore[arg-type]
        self.queries.append(host)
        answer = self.answers[min(len(self.queries), len(self.answers)) - 1]
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, port)) for a in answer]

    def create_connection(self, address: tuple[str, int], *args: object, **kwargs: object) -> socket.socket:
        self.connects.append(address[0])
        if address[0] == PUBLIC:  # the "public" host is played by the loopback server
            address = ("127.0.0.1", self.server.port)
        return self._create_connection(address, *args, **kwargs)  # type: ignore[arg-type]


@pytest.fixture
def rebinding(monkeypatch: pytest.MonkeyPatch, server: FaultServer) -> Callable[[list[list[str]]], _RebindingResolver]:
    def install(answers: list[list[str]]) -> _RebindingResolver:
        resolver = _RebindingResolver(f"rebind-{uuid.uuid4().hex[:8]}.example", answers, server)
        monkeypatch.setattr(socket, "getaddrinfo", resolver.getaddrinfo)
        monkeypatch.setattr(urllib3.util.connection, "create_connection", resolver.create_connection)
        return resolver
    return install


def test_a_name_rebound_to_loopback_after_the_check_is_connected_to_the_checked_address(rebinding, server):
    resolver = rebinding([[PUBLIC], ["127.0.0.1"]])
    url = f"http://{resolver.name}:{server.port}/image.png"
    with fetcher(block_private_networks=True) as fetch:
        assert fetch.fetch(url) == PNG
    # One query per connection, and the socket went to the address that query returned and the
    # policy checked: a second lookup at connect time would have reached 127.0.0.1.
    assert resolver.queries == [resolver.name]
    assert resolver.connects == [PUBLIC]


def test_a_rebound_name_is_resolved_again_only_for_a_new_connection_and_then_checked(rebinding, server):
    resolver = rebinding([[PUBLIC], ["127.0.0.1"]])
    url = f"http://{resolver.name}:{server.port}/image.png"
    with fetcher(block_private_networks=True) as first:
        assert first.fetch(url) == PNG
    with fetcher(block_private_networks=True) as second:  # a new pool: a new connection, a new query
        assert failure(second, url).reason == (
            f"blocked: {resolver.name} resolves to 127.0.0.1, a private or loopback address (blockPrivateNetworks)")
    assert resolver.queries == [resolver.name, resolver.name]
    assert resolver.connects == [PUBLIC]  # nothing was ever connected to the private answer


def test_private_answers_mixed_with_public_ones_are_never_connected_to(rebinding, server):
    resolver = rebinding([["127.0.0.1", "10.1.2.3", PUBLIC]])
    with fetcher(block_private_networks=True) as fetch:
        assert fetch.fetch(f"http://{resolver.name}:{server.port}/image.png") == PNG
    assert resolver.connects == [PUBLIC]


def test_a_rebound_metadata_address_is_refused_even_without_block_private_networks(rebinding, server):
    resolver = rebinding([["169.254.169.254"]])
    with fetcher() as fetch:
        assert failure(fetch, f"http://{resolver.name}:{server.port}/latest/meta-data/").reason == (
            f"blocked: {resolver.name} resolves to 169.254.169.254, a link-local or metadata address")
    assert resolver.connects == []


# --------------------------------------------------------------------------- proxies and .netrc
# Claim: "Proxy variables and `.netrc` are ignored."

_PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy")


@pytest.fixture
def proxy(monkeypatch: pytest.MonkeyPatch) -> Iterator[FaultServer]:
    """A loopback server named by every proxy variable (and no ``NO_PROXY``); it counts connections."""
    with FaultServer() as running:
        for name in _PROXY_VARIABLES:
            monkeypatch.setenv(name, running.base)
        monkeypatch.delenv("NO_PROXY", raising=False)
        monkeypatch.delenv("no_proxy", raising=False)
        yield running


def test_the_proxy_environment_is_effective_for_a_client_that_honours_it(proxy, server):
    # The control: the standard library's client does go through the recording proxy. A new opener reads
    # the proxy variables now (urlopen's shared opener keeps those of its first use in the process).
    with urllib.request.build_opener().open(server.url("/image.png"), timeout=5) as response:
        assert response.read() == PNG
    assert proxy.connections == 1 and proxy.hits("/image.png") == 1


def test_proxy_variables_are_ignored_for_http(proxy, server):
    before = server.hits("/image.png")
    with fetcher() as fetch:
        assert fetch.fetch(server.url("/image.png")) == PNG
        assert fetch.fetch(f"http://localhost:{server.port}/image.png") == PNG
    assert proxy.connections == 0
    assert server.hits("/image.png") == before + 2


def test_proxy_variables_are_ignored_for_https(proxy, tls, monkeypatch):
    secure, ca_file = tls
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", ca_file)
    with fetcher() as fetch:
        assert fetch.fetch(secure.url("/image.png")) == PNG
    assert proxy.connections == 0


def test_netrc_credentials_are_never_sent(tmp_path, monkeypatch, server):
    home = tmp_path / "home"
    home.mkdir()
    rc = home / ".netrc"
    rc.write_text(f"machine 127.0.0.1 login alice password netrc-secret-{uuid.uuid4().hex}\n"
                  "machine localhost login alice password netrc-secret\n")
    rc.chmod(0o600)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("NETRC", str(rc))
    # The control: a client that reads .netrc finds credentials for this host.
    assert netrc.netrc().authenticators("127.0.0.1") is not None
    with fetcher() as fetch:
        for url in (server.url("/echo-headers"), f"http://localhost:{server.port}/echo-headers"):
            sent = json.loads(fetch.fetch(url))
            assert not {name.lower() for name in sent} & {"authorization", "proxy-authorization"}, sent


# --------------------------------------------------------------------------- header values never in reasons
# Claim: "A reason never contains a response body or a header value."


@pytest.fixture
def secrets(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    values = {"SPARKIMG_TEST_TOKEN": f"tok-{uuid.uuid4().hex}", "SPARKIMG_TEST_KEY": f"key-{uuid.uuid4().hex}",
              "SPARKIMG_TEST_COOKIE": f"ck-{uuid.uuid4().hex}"}
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    return values


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_no_header_value_or_response_body_appears_in_any_reason_or_traceback(secrets, crawl, server, tls,
                                                                             monkeypatch):
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)
    plain = f"plain-{uuid.uuid4().hex}"
    password = f"pw-{uuid.uuid4().hex}"
    headers = {"Authorization": "env:SPARKIMG_TEST_TOKEN", "X-Api-Key": "env:SPARKIMG_TEST_KEY",
               "Cookie": "env:SPARKIMG_TEST_COOKIE", "Proxy-Authorization": "env:SPARKIMG_TEST_TOKEN",
               "X-Team": plain}
    forbidden = [*secrets.values(), plain, password]
    tls_server, _ = tls
    sources = {
        "http_403": crawl.url("/echo-status/403"),  # the body and a header echo every request header
        "http_500": crawl.url("/echo-status/500"),
        "bad_response": crawl.url("/echo-status/302"),  # a redirect without Location
        "too_many_redirects": server.url("/loop/a"),
        "timeout": server.url("/slow?delay=3"),
        "connection": f"http://127.0.0.1:{_closed_port()}/x.png",
        "blocked": server.url("/redirect-to?url=" + quote("http://169.254.169.254/latest/", safe="")),
        "too_large": crawl.url("/image.png"),
        "invalid_source": f"http://user:{password}@[::1/x.png",
        "http_401": crawl.url("/echo-status/401").replace("http://", f"http://user:{password}@"),
    }
    seen = {}
    with fetcher(headers=headers, timeout=0.8, max_bytes=len(PNG) - 1, max_retries=1,
                 max_retry_wait=0.05) as fetch:
        for code, source in sources.items():
            error = failure(fetch, source)
            seen[code] = error.code
            text = "".join(traceback.format_exception(type(error), error, error.__traceback__))
            for value in forbidden:
                assert value not in str(error) and value not in repr(error) and value not in text, (code, error)
        tls_error = failure(fetch, tls_server.url("/image.png"))
        assert tls_error.reason.startswith("connection: TLS failed")
        assert not any(value in str(tls_error) for value in forbidden)
    assert seen == {code: code for code in sources}
    # The server was sent the values (so there was something to leak) and echoed them back.
    echoed = crawl.requests_to("/echo-status/403")[-1].headers
    assert echoed["Authorization"] == secrets["SPARKIMG_TEST_TOKEN"] and echoed["X-Team"] == plain


# --------------------------------------------------------------------------- credentials on redirects
# Claim: "`Authorization`, `Cookie` and `Proxy-Authorization` are dropped when a redirect leaves the
# first origin; user-info in a URL is sent as Basic authorization to that URL's host only."


@pytest.mark.parametrize("elsewhere", ["another host", "another port"])
def test_credential_headers_are_dropped_when_a_redirect_leaves_the_first_origin(server, crawl, elsewhere):
    credentials = {"Authorization": "Bearer first-origin", "Cookie": "session=first-origin",
                   "Proxy-Authorization": "Basic Zmlyc3Q6b3JpZ2lu"}
    target = (f"http://localhost:{server.port}/echo-headers" if elsewhere == "another host"
              else crawl.url("/echo-status/200"))  # both answer with the request headers as JSON
    with fetcher(headers={**credentials, "X-Team": "vision"}) as fetch:
        same = json.loads(fetch.fetch(server.url("/redirect-to?url=" + quote("/echo-headers", safe=""))))
        crossed = json.loads(fetch.fetch(server.url("/redirect-to?url=" + quote(target, safe=""))))
    assert {name: same[name] for name in credentials} == credentials
    assert not {name.lower() for name in crossed} & {"authorization", "cookie", "proxy-authorization"}, crossed
    assert crossed["X-Team"] == "vision"


def test_a_redirect_back_to_the_first_origin_does_not_get_the_credentials_back(server, crawl):
    back = server.url("/echo-headers")
    hop = crawl.url("/redirect-to?url=" + quote(back, safe=""))
    with fetcher(headers={"Authorization": "Bearer first-origin", "Proxy-Authorization": "Basic eA=="}) as fetch:
        sent = json.loads(fetch.fetch(server.url("/redirect-to?url=" + quote(hop, safe=""))))
    assert "Authorization" not in sent and "Proxy-Authorization" not in sent


# --------------------------------------------------------------------------- certificate bundles
# Claim: "TLS certificates are verified against `REQUESTS_CA_BUNDLE` or `CURL_CA_BUNDLE` when set,
# else certifi's bundle."


@pytest.fixture
def no_bundle_variables(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "SSL_CERT_FILE", "SSL_CERT_DIR"):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


@pytest.mark.parametrize("variable", ["REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"])
def test_a_ca_bundle_variable_makes_a_private_ca_trusted(tls, no_bundle_variables, variable, tmp_path):
    secure, ca_file = tls
    bundle = tmp_path / "bundle.pem"  # a bundle file holding the test CA among others
    bundle.write_text(Path(ca_file).read_text() + "\n" + Path(certifi.where()).read_text())
    with fetcher() as fetch:
        assert failure(fetch, secure.url("/image.png")).reason == (
            "connection: TLS failed: certificate verify failed: unable to get local issuer certificate")
    no_bundle_variables.setenv(variable, str(bundle))
    with fetcher() as fetch:
        assert fetch.fetch(secure.url("/image.png")) == PNG


def test_requests_ca_bundle_takes_precedence_over_curl_ca_bundle(tls, no_bundle_variables, tmp_path):
    secure, ca_file = tls
    other = trustme.CA().cert_pem.bytes().decode()
    wrong = tmp_path / "other-ca.pem"
    wrong.write_text(other)
    no_bundle_variables.setenv("REQUESTS_CA_BUNDLE", str(wrong))
    no_bundle_variables.setenv("CURL_CA_BUNDLE", ca_file)
    with fetcher() as fetch:
        assert failure(fetch, secure.url("/image.png")).reason.startswith("connection: TLS failed: certificate verify")
    no_bundle_variables.setenv("REQUESTS_CA_BUNDLE", ca_file)
    no_bundle_variables.setenv("CURL_CA_BUNDLE", str(wrong))
    with fetcher() as fetch:
        assert fetch.fetch(secure.url("/image.png")) == PNG


def test_ssl_cert_file_alone_is_not_consulted_certifis_bundle_is(tls, no_bundle_variables):
    # As documented (and as requests does): without REQUESTS_CA_BUNDLE/CURL_CA_BUNDLE the bundle is certifi's,
    # whatever OpenSSL's SSL_CERT_FILE says.
    secure, ca_file = tls
    no_bundle_variables.setenv("SSL_CERT_FILE", ca_file)
    with fetcher() as fetch:
        assert failure(fetch, secure.url("/image.png")).reason.startswith("connection: TLS failed: certificate verify")


# --------------------------------------------------------------------------- abandoned reads
# Claim: "At most 32 abandoned reads may be outstanding per Python process: beyond that, new reads fail
# at once with `timeout: ... not started: 32 earlier reads are still blocked past their deadline ...`"


@pytest.fixture
def hung_paths(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[list[Path]]:
    """FIFOs nobody writes to, opened so that the open blocks (a hung network mount); released at the end."""
    monkeypatch.setattr(local_reader, "_OPEN_FLAGS", os.O_RDONLY)
    paths = []
    for index in range(MAX_ABANDONED_CALLS + 1):
        path = tmp_path / f"hung-{index}"
        os.mkfifo(path)
        paths.append(path)
    yield paths
    for path in paths:
        with contextlib.suppress(OSError):
            os.close(os.open(path, os.O_WRONLY | os.O_NONBLOCK))


def test_the_process_wide_cap_is_32_abandoned_reads(hung_paths, monkeypatch, tmp_path):
    assert MAX_ABANDONED_CALLS == 32
    assert fetcher_module.BLOCKING_CALLS is deadline_module.BLOCKING_CALLS
    assert deadline_module.BLOCKING_CALLS.max_abandoned == 32
    calls = BlockingCalls()  # the defaults the process-wide instance has, without touching its count
    monkeypatch.setattr(fetcher_module, "BLOCKING_CALLS", calls)
    image = tmp_path / "a.png"
    image.write_bytes(PNG)
    with fetcher(timeout=1.0, concurrency=MAX_ABANDONED_CALLS) as fetch:
        with ThreadPoolExecutor(MAX_ABANDONED_CALLS) as pool:
            errors = list(pool.map(lambda path: failure(fetch, str(path)), hung_paths[:MAX_ABANDONED_CALLS]))
        assert {e.detail.split(": ", 1)[1] for e in errors} == {"local read not complete by the deadline (timeout 1s)"}
        assert calls.abandoned == 32
        start = time.monotonic()
        refused = failure(fetch, str(hung_paths[32]))
        assert time.monotonic() - start < 0.5  # at once, not at the 1 s deadline
        assert refused.reason == (f"timeout: {hung_paths[32]}: local read not started: 32 earlier reads are still "
                                  "blocked past their deadline (an unresponsive file system or storage back-end?) "
                                  "(timeout 1s)")
        for path in hung_paths[:2]:  # two reads return: two slots free again
            os.close(os.open(path, os.O_WRONLY))
        deadline = time.monotonic() + 5
        while calls.abandoned > 30:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        assert fetch.fetch(str(image)) == PNG
