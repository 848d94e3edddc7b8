"""The pure fetching layer against a loopback fault-injection server, local files and data: URIs."""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import importlib
import io
import json
import os
import pickle
import resource
import socket
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from ipaddress import ip_address
from pathlib import Path
from typing import ClassVar
from urllib.parse import quote

import fsspec
import pyarrow as pa
import pytest
from fault_server import PNG, FaultServer, tls_fault_server
from fsspec.implementations.memory import MemoryFileSystem
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sparkimg_ml import REASON_CODES
from sparkimg_ml._version import __version__
from sparkimg_ml.errors import SourceError
from sparkimg_ml.fetch import Fetcher, FetchOptions, NetworkPolicy, parse_host_rule
from sparkimg_ml.fetch import fetcher as fetcher_module
from sparkimg_ml.fetch import local as local_reader
from sparkimg_ml.fetch.deadline import BlockingCalls, CallTimeout
from sparkimg_ml.fetch.http import _HostSlots
from sparkimg_ml.params.fetch import (
    HasFetchParams,
    convert_headers,
    convert_storage_options,
)


@pytest.fixture(scope="module")
def server() -> Iterator[FaultServer]:
    with FaultServer() as running:
        yield running


def fetcher(**options: object) -> Fetcher:
    """A fetcher with short test limits unless overridden."""
    defaults: dict = {"timeout": 2.0, "max_retries": 2, "max_retry_wait": 0.5}
    defaults.update(options)
    return Fetcher(FetchOptions(**defaults))


def failure(fetch: Fetcher, source: str) -> SourceError:
    with pytest.raises(SourceError) as caught:
        fetch.fetch(source)
    assert caught.value.code.split("_")[0] in {c.split("_")[0] for c in REASON_CODES}
    return caught.value


# --------------------------------------------------------------------------- options


def test_fetch_options_are_picklable_hashable_and_json_native():
    options = FetchOptions(headers={"X-Team": "vision"}, allowed_hosts=["*.example.com"],
                           storage_options={"s3": {"anon": True}})
    assert pickle.loads(pickle.dumps(options)) == options
    assert hash(options) == hash(FetchOptions(headers={"X-Team": "vision"}, allowed_hosts=["*.example.com"],
                                              storage_options={"s3": {"anon": True}}))
    assert json.loads(json.dumps(options.__dict__)) == options.__dict__


def test_fetch_options_copy_their_containers():
    headers = {"X-Team": "vision"}
    options = FetchOptions(headers=headers)
    headers["X-Team"] = "changed"
    assert options.headers == {"X-Team": "vision"}


@pytest.mark.parametrize("bad, error, pattern", [
    ({"timeout": 0}, ValueError, "^timeout must be > 0; got 0"),
    ({"concurrency": 0}, ValueError, "^concurrency must be >= 1; got 0"),
    ({"max_retries": -1}, ValueError, "^max_retries must be >= 0; got -1"),
    ({"max_bytes": True}, TypeError, "^max_bytes must be a number, got True"),
    ({"connect_timeout": float("inf")}, ValueError, "^connect_timeout must be > 0; got inf"),
    ({"allowed_hosts": ["http://x"]}, ValueError, "^allowedHosts entry 'http://x' is not a host name"),
])
def test_fetch_options_reject_bad_values(bad, error, pattern):
    with pytest.raises(error, match=pattern):
        FetchOptions(**bad)


# --------------------------------------------------------------------------- network policy


@pytest.mark.parametrize("address", [
    "169.254.169.254", "169.254.0.1", "fe80::1", "fd00:ec2::254", "100.100.100.200", "0.0.0.0",
    "::ffff:169.254.169.254", "64:ff9b::a9fe:a9fe", "224.0.0.1", "192.0.0.192",
])
@pytest.mark.claim("Link-local and cloud-metadata addresses and host names are always refused, redirects included")
def test_policy_refuses_link_local_and_metadata_addresses_by_default(address):
    with pytest.raises(SourceError, match="^blocked: .*link-local or metadata"):
        NetworkPolicy().permitted("host", [ip_address(address)])


@pytest.mark.parametrize("address", ["127.0.0.1", "::1", "10.1.2.3", "192.168.1.10", "93.184.216.34"])
def test_policy_allows_loopback_private_and_public_addresses_by_default(address):
    assert NetworkPolicy().permitted("host", [ip_address(address)]) == [ip_address(address)]


@pytest.mark.parametrize("address", ["127.0.0.1", "::1", "10.1.2.3", "172.20.0.1", "192.168.1.10", "fd12::1",
                                     "::ffff:10.0.0.1"])
def test_policy_block_private_networks_refuses_private_and_loopback(address):
    with pytest.raises(SourceError, match="blockPrivateNetworks"):
        NetworkPolicy(block_private_networks=True).permitted("host", [ip_address(address)])
    assert NetworkPolicy(block_private_networks=True).permitted("h", [ip_address("93.184.216.34")])


def test_policy_keeps_only_permitted_addresses_of_a_mixed_host():
    addresses = [ip_address("169.254.169.254"), ip_address("93.184.216.34")]
    assert NetworkPolicy().permitted("mixed", addresses) == [ip_address("93.184.216.34")]


def test_policy_allowed_hosts_match_names_wildcards_and_networks():
    policy = NetworkPolicy(allowed_hosts=["images.example.com", "*.cdn.example", "203.0.113.0/24"])
    public = [ip_address("93.184.216.34")]
    assert policy.permitted("images.example.com", public)
    assert policy.permitted("a.b.cdn.example", public)
    assert policy.permitted("anything", [ip_address("203.0.113.9")])
    for host in ("example.com", "cdn.example", "images.example.com.evil.test"):
        with pytest.raises(SourceError, match="not in allowedHosts"):
            policy.permitted(host, public)


@pytest.mark.claim("Link-local and cloud-metadata addresses and host names are always refused, redirects included")
def test_policy_allow_list_never_unblocks_metadata_addresses():
    policy = NetworkPolicy(allowed_hosts=["169.254.0.0/16", "metadata.internal"])
    with pytest.raises(SourceError, match="metadata"):
        policy.permitted("metadata.internal", [ip_address("169.254.169.254")])


_METADATA_URLS = [
    "http://metadata.google.internal/computeMetadata/v1/instance/service-accounts/default/token",
    "http://METADATA.Google.Internal./computeMetadata/v1/", "http://metadata.goog/computeMetadata/v1/",
    "http://metadata/computeMetadata/v1/", "https://metadata.google.internal:8443/x",
    "http://sub.metadata.google.internal/x", "http://metadata.azure.com/metadata/instance",
    "http://instance-data/latest/meta-data/", "http://instance-data.ec2.internal/latest/api/token",
    "http://instance-data.eu-west-1.compute.internal/latest/meta-data/",
    "http://metadata.tencentyun.com/latest/meta-data/", "http://api.metadata.cloud.ibm.com/metadata/v1/instance",
    "http://metadata.platformequinix.com/metadata", "http://metadata.packet.net/metadata",
]


@pytest.fixture
def no_dns(monkeypatch: pytest.MonkeyPatch) -> list[tuple]:
    """Replaces the resolver with one that records the names it is asked and answers none.

    IP literals, which urllib3 also passes through ``getaddrinfo``, still work (they need no query).
    """
    calls: list[tuple] = []
    real_getaddrinfo = socket.getaddrinfo

    def resolver(host: str, *args: object, **kwargs: object) -> list:
        try:
            ip_address(host)
        except ValueError:
            calls.append((host, *args))
            raise socket.gaierror(socket.EAI_NONAME, "resolver called") from None
        return real_getaddrinfo(host, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(socket, "getaddrinfo", resolver)
    return calls


@pytest.mark.claim("Link-local and cloud-metadata addresses and host names are always refused, redirects included")
@pytest.mark.parametrize("url", _METADATA_URLS)
@pytest.mark.parametrize("allowed_hosts", [[], ["*.internal", "metadata", "*.goog", "*.com", "*.net",
                                                "instance-data", "203.0.113.0/24"]])
def test_fetch_refuses_cloud_metadata_host_names_before_any_dns_query(url, allowed_hosts, no_dns):
    with fetcher(allowed_hosts=allowed_hosts) as fetch:
        error = failure(fetch, url)
    assert error.code == "blocked" and error.detail.endswith(", a cloud metadata host name")
    assert no_dns == []


def test_fetch_refuses_a_redirect_to_a_metadata_host_name_before_any_dns_query(server, no_dns):
    hop = server.url("/redirect-to?url=" + quote("http://metadata.google.internal/computeMetadata/v1/", safe=""))
    with fetcher() as fetch:
        assert failure(fetch, hop).reason == "blocked: metadata.google.internal, a cloud metadata host name"
    assert no_dns == []


@pytest.mark.parametrize("host", ["metadata.example.com", "mymetadata.goog.example", "instance-data.example.org",
                                  "metadata-google-internal.example"])
def test_metadata_name_check_leaves_other_names_to_the_resolver(host, no_dns):
    with fetcher(max_retries=0) as fetch:
        assert failure(fetch, f"http://{host}/a.png").reason == "connection: could not resolve host"
    assert [call[0] for call in no_dns] == [host]


@pytest.mark.parametrize("rule", ["http://example.com", "example.com/path", "exa mple.com", "*", "a.*.com"])
def test_parse_host_rule_rejects_what_is_not_a_host(rule):
    with pytest.raises(ValueError, match="allowedHosts entry"):
        parse_host_rule(rule)


# --------------------------------------------------------------------------- HTTP


@pytest.mark.claim("Fetches of a batch run concurrently over pooled keep-alive connections; identical sources are fetched once")
def test_fetch_returns_body_and_reuses_one_keep_alive_connection(server):
    with fetcher() as fetch:
        before = server.connections
        bodies = [fetch.fetch(server.url("/image.png")) for _ in range(10)]
        assert bodies == [PNG] * 10
        assert server.connections - before == 1


@pytest.mark.parametrize("code", [403, 404, 410])
def test_fetch_reports_4xx_without_retrying(server, code):
    path = f"/status/{code}"
    before = server.hits(path)
    with fetcher(max_retries=3) as fetch:
        error = failure(fetch, server.url(path))
    assert error.code == f"http_{code}"
    assert server.hits(path) - before == 1
    assert f"status {code}" not in error.reason  # never the response body


def test_fetch_retries_500_then_reports_it(server):
    path = "/status/500"
    before = server.hits(path)
    with fetcher(max_retries=2, max_retry_wait=0.05) as fetch:
        error = failure(fetch, server.url(path))
    assert error.reason == "http_500: Internal Server Error"
    assert server.hits(path) - before == 3


@pytest.mark.claim("5xx and 429 are retried, Retry-After honoured within the row's deadline")
def test_fetch_retries_503_twice_then_succeeds(server):
    key = uuid.uuid4().hex
    with fetcher(max_retries=2) as fetch:
        assert fetch.fetch(server.url(f"/flaky/2/{key}")) == PNG
    assert server.hits(f"flaky:{key}") == 3


def test_fetch_gives_up_on_flaky_source_when_retries_run_out(server):
    key = uuid.uuid4().hex
    with fetcher(max_retries=1) as fetch:
        assert failure(fetch, server.url(f"/flaky/2/{key}")).code == "http_503"
    assert server.hits(f"flaky:{key}") == 2


@pytest.mark.claim("5xx and 429 are retried, Retry-After honoured within the row's deadline")
@pytest.mark.parametrize("code", [429, 503])
def test_fetch_honours_retry_after(server, code):
    path = f"/retry-after/{code}/1"
    before = server.hits(path)
    start = time.monotonic()
    with fetcher(max_retries=1, max_retry_wait=5.0, timeout=3.0) as fetch:
        assert failure(fetch, server.url(path)).code == f"http_{code}"
    assert time.monotonic() - start >= 0.95  # waited the server's second
    assert server.hits(path) - before == 2


def test_fetch_caps_a_long_retry_after(server):
    path = "/retry-after/503/3600"
    before = server.hits(path)
    start = time.monotonic()
    with fetcher(max_retries=2, max_retry_wait=0.1, timeout=5.0) as fetch:
        assert failure(fetch, server.url(path)).code == "http_503"
    assert time.monotonic() - start < 2.0
    assert server.hits(path) - before == 3


@pytest.mark.claim("5xx and 429 are retried, Retry-After honoured within the row's deadline")
def test_fetch_stops_retrying_when_the_wait_would_pass_the_deadline(server):
    path = "/retry-after/503/5"
    before = server.hits(path)
    start = time.monotonic()
    with fetcher(max_retries=3, max_retry_wait=10.0, timeout=1.0) as fetch:
        assert failure(fetch, server.url(path)).code == "http_503"
    assert time.monotonic() - start < 0.5
    assert server.hits(path) - before == 1


def test_fetch_follows_a_redirect_chain(server):
    with fetcher(max_redirects=3) as fetch:
        assert fetch.fetch(server.url("/redirect/3")) == PNG


def test_fetch_fails_past_max_redirects(server):
    with fetcher(max_redirects=2) as fetch:
        assert failure(fetch, server.url("/redirect/3")).reason == "too_many_redirects: more than 2 redirects"


def test_fetch_detects_a_redirect_loop(server):
    with fetcher(max_redirects=10) as fetch:
        assert failure(fetch, server.url("/loop/a")).reason == "too_many_redirects: redirect loop"


@pytest.mark.parametrize("target", ["file:///etc/passwd", "ftp://127.0.0.1/x", "data:text/plain,hi"])
def test_fetch_refuses_a_redirect_to_another_scheme(server, target):
    with fetcher() as fetch:
        error = failure(fetch, server.url("/redirect-to?url=" + quote(target, safe="")))
    assert error.code == "blocked"
    assert "passwd" not in error.reason


@pytest.mark.claim("Link-local and cloud-metadata addresses and host names are always refused, redirects included")
def test_fetch_refuses_a_redirect_to_the_metadata_address(server):
    with fetcher() as fetch:
        error = failure(fetch, server.url("/redirect-to?url=" + quote("http://169.254.169.254/latest/", safe="")))
    assert error.reason == "blocked: 169.254.169.254, a link-local or metadata address"


def test_fetch_refuses_a_redirect_to_a_host_outside_the_allow_list(server):
    listed = f"http://localhost:{server.port}"
    with fetcher(allowed_hosts=["localhost"]) as fetch:
        assert fetch.fetch(f"{listed}/image.png") == PNG
        hop = f"{listed}/redirect-to?url=" + quote(server.url("/image.png"), safe="")
        assert failure(fetch, hop).reason == "blocked: 127.0.0.1, not in allowedHosts"


def test_fetch_resolves_host_names_and_checks_the_resolved_address(server):
    url = f"http://localhost:{server.port}/image.png"
    with fetcher() as fetch:
        assert fetch.fetch(url) == PNG
    with fetcher(block_private_networks=True) as fetch:
        assert failure(fetch, url).reason.startswith("blocked: localhost resolves to ")


@pytest.mark.claim("Every read (HTTP, local, storage) is bounded by the per-row deadline; at most 32 abandoned reads")
@pytest.mark.parametrize("path, seconds", [("/slow?delay=5", 1.0), ("/drip?seconds=20", 1.0),
                                           ("/drip-headers", 1.0)])
def test_fetch_times_out_within_the_deadline(server, path, seconds):
    start = time.monotonic()
    with fetcher(timeout=seconds) as fetch:
        assert failure(fetch, server.url(path)).code == "timeout"
    assert time.monotonic() - start < seconds + 0.5


@pytest.mark.parametrize("path, detail", [("/reset", "connection reset by peer"),
                                          ("/short", "body shorter than its Content-Length")])
def test_fetch_reports_broken_bodies_as_connection_errors_after_retrying(server, path, detail):
    before = server.hits(path)
    with fetcher(max_retries=1, max_retry_wait=0.05) as fetch:
        assert failure(fetch, server.url(path)).reason == f"connection: {detail}"
    assert server.hits(path) - before == 2


def test_fetch_reports_refused_connections():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with fetcher(max_retries=1, max_retry_wait=0.05) as fetch:
        assert failure(fetch, f"http://127.0.0.1:{port}/x.png").reason == "connection: connection refused"


@pytest.mark.claim("maxBytes caps bodies, gzip bodies counted decoded")
def test_fetch_refuses_a_declared_length_over_max_bytes_without_reading(server):
    with fetcher(max_bytes=50) as fetch:
        assert failure(fetch, server.url("/image.png")).reason == f"too_large: Content-Length {len(PNG)} > maxBytes 50"


@pytest.mark.claim("maxBytes caps bodies, gzip bodies counted decoded")
def test_fetch_stops_an_endless_body_at_max_bytes(server):
    start = time.monotonic()
    with fetcher(max_bytes=1 << 20) as fetch:
        assert failure(fetch, server.url("/endless")).reason == "too_large: body exceeds maxBytes 1048576"
    assert time.monotonic() - start < 2.0


@pytest.mark.claim("maxBytes caps bodies, gzip bodies counted decoded")
def test_fetch_counts_decoded_bytes_of_a_gzip_bomb(server):
    peak_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    with fetcher(max_bytes=8 << 20, timeout=10.0) as fetch:
        assert failure(fetch, server.url("/gzip-bomb")).reason == "too_large: body exceeds maxBytes 8388608"
    growth_mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak_before) / 1024
    assert growth_mib < 256  # the 1 GiB body was never held


def test_fetch_decodes_gzip_bodies_and_checks_their_decoded_size(server):
    with fetcher() as fetch:
        assert fetch.fetch(server.url("/gzip-image")) == PNG
    with fetcher(max_bytes=1 << 20) as fetch:
        assert failure(fetch, server.url(f"/gzip-bomb?size={2 << 20}")).code == "too_large"
    with fetcher(max_bytes=3 << 20) as fetch:
        assert fetch.fetch(server.url(f"/gzip-bomb?size={2 << 20}")) == bytes(2 << 20)


@pytest.mark.parametrize("path, body", [("/wrong-type/image", PNG),
                                        ("/wrong-type/text", b"<html>this is not an image</html>"),
                                        ("/chunked", PNG)])
def test_fetch_returns_bodies_whatever_their_content_type_or_framing(server, path, body):
    with fetcher() as fetch:
        assert fetch.fetch(server.url(path)) == body


def test_fetch_sends_the_default_user_agent(server):
    with fetcher() as fetch:
        echoed = json.loads(fetch.fetch(server.url("/echo-headers")))
    assert echoed["User-Agent"] == f"sparkimg_ml/{__version__}"
    assert "Cookie" not in echoed and "Authorization" not in echoed


def test_fetch_asks_for_any_type_and_the_encodings_it_decodes(server):
    with fetcher() as fetch:
        echoed = json.loads(fetch.fetch(server.url("/echo-headers")))
    assert echoed["Accept"] == "*/*" and "gzip" in echoed["Accept-Encoding"]


@pytest.mark.claim("Cookies are never kept or sent")
def test_fetch_never_keeps_or_sends_cookies(server):
    with fetcher() as fetch:
        assert fetch.fetch(server.url("/set-cookie")) == PNG
        echoed = json.loads(fetch.fetch(server.url("/echo-headers")))
    assert "Cookie" not in echoed


def test_fetch_sends_url_user_info_as_basic_auth_to_that_origin_only(server):
    with_user = f"http://user:p%40ss@127.0.0.1:{server.port}"
    other = f"http://localhost:{server.port}/echo-headers"
    with fetcher() as fetch:
        echoed = json.loads(fetch.fetch(with_user + "/echo-headers"))
        redirected = json.loads(fetch.fetch(with_user + "/redirect-to?url=" + quote(other, safe="")))
    assert echoed["Authorization"] == "Basic " + base64.b64encode(b"user:p@ss").decode()
    assert "Authorization" not in redirected


def test_fetch_sends_configured_headers_and_resolves_env_references(server, monkeypatch):
    monkeypatch.setenv("SPARKIMG_TEST_TOKEN", "Bearer s3cret")
    with fetcher(headers={"User-Agent": "probe/1", "Authorization": "env:SPARKIMG_TEST_TOKEN"}) as fetch:
        echoed = json.loads(fetch.fetch(server.url("/echo-headers")))
    assert echoed["User-Agent"] == "probe/1"
    assert echoed["Authorization"] == "Bearer s3cret"


def test_fetch_refuses_to_start_when_an_env_reference_is_unset(monkeypatch):
    monkeypatch.delenv("SPARKIMG_TEST_UNSET", raising=False)
    with pytest.raises(ValueError, match="SPARKIMG_TEST_UNSET"):
        Fetcher(FetchOptions(headers={"Authorization": "env:SPARKIMG_TEST_UNSET"}))


@pytest.mark.claim("Credentials are kept on same-origin redirects and dropped across origins")
def test_fetch_keeps_credentials_on_same_origin_redirects_and_drops_them_across_origins(server):
    secrets = {"Authorization": "Bearer abc", "Cookie": "session=1", "X-Team": "vision"}
    same = server.url("/redirect-to?url=" + quote("/echo-headers", safe=""))
    other = server.url("/redirect-to?url=" + quote(f"http://localhost:{server.port}/echo-headers", safe=""))
    with fetcher(headers=secrets) as fetch:
        kept = json.loads(fetch.fetch(same))
        dropped = json.loads(fetch.fetch(other))
    assert kept["Authorization"] == "Bearer abc" and kept["Cookie"] == "session=1"
    assert "Authorization" not in dropped and "Cookie" not in dropped
    assert dropped["X-Team"] == "vision"


@pytest.fixture(scope="module")
def tls_server() -> Iterator[tuple[FaultServer, str]]:
    """An HTTPS fault server whose certificate (for 127.0.0.1 and localhost) a test CA signed; and that CA's file."""
    with tls_fault_server() as served:
        yield served


def test_fetch_verifies_tls_certificates_against_the_configured_bundle(tls_server, monkeypatch):
    server, ca_file = tls_server
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    with fetcher(max_retries=0) as fetch:  # certifi's bundle does not know the test CA
        assert failure(fetch, server.url("/image.png")).reason == (
            "connection: TLS failed: certificate verify failed: unable to get local issuer certificate")
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", ca_file)
    with fetcher() as fetch:
        assert fetch.fetch(server.url("/image.png")) == PNG
        assert fetch.fetch(f"https://localhost:{server.port}/image.png") == PNG  # host names are verified too
        assert failure(fetch, server.url("/status/404")).code == "http_404"


def test_fetch_checks_the_address_of_tls_hosts_too(tls_server, monkeypatch):
    server, ca_file = tls_server
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", ca_file)
    with fetcher(block_private_networks=True) as fetch:
        assert failure(fetch, f"https://localhost:{server.port}/image.png").reason.startswith(
            "blocked: localhost resolves to ")


def test_fetch_caps_connections_per_host(server):
    group = uuid.uuid4().hex
    with fetcher(max_connections_per_host=2, concurrency=6, timeout=5.0) as fetch, \
            ThreadPoolExecutor(6) as pool:
        bodies = list(pool.map(fetch.fetch, [server.url(f"/slow?delay=0.3&group={group}&n={i}")
                                             for i in range(6)]))
    assert bodies == [PNG] * 6
    assert server.peak_busy(group) == 2


@pytest.mark.claim("Fetches of a batch run concurrently over pooled keep-alive connections; identical sources are fetched once")
def test_fetch_runs_requests_concurrently_across_threads(server):
    group = uuid.uuid4().hex
    with fetcher(max_connections_per_host=8, concurrency=6, timeout=5.0) as fetch, \
            ThreadPoolExecutor(6) as pool:
        barrier = threading.Barrier(6)

        def fetch_after_barrier(i: int) -> bytes:
            barrier.wait()
            return fetch.fetch(server.url(f"/slow?delay=0.5&group={group}&n={i}"))

        bodies = list(pool.map(fetch_after_barrier, range(6)))
    assert bodies == [PNG] * 6
    assert server.peak_busy(group) == 6


def test_fetch_is_thread_safe_over_mixed_sources(server):
    sources = [server.url("/image.png"), server.url("/status/404"), server.url("/redirect/2"),
               server.url("/gzip-image"), server.url("/chunked")] * 20
    expected = [PNG, "http_404", PNG, PNG, PNG] * 20

    def outcome(fetch: Fetcher, source: str):
        try:
            return fetch.fetch(source)
        except SourceError as error:
            return error.code

    with fetcher(concurrency=16) as fetch, ThreadPoolExecutor(16) as pool:
        assert list(pool.map(lambda s: outcome(fetch, s), sources)) == expected


def test_waiting_for_a_host_slot_counts_against_the_deadline():
    slots = _HostSlots(limit=1)
    slots.acquire("busy.example", time.monotonic() + 5)
    start = time.monotonic()
    with pytest.raises(SourceError, match="^timeout: no free connection to busy.example"):
        slots.acquire("busy.example", time.monotonic() + 0.3)
    assert 0.25 < time.monotonic() - start < 1.0
    slots.acquire("other.example", time.monotonic() + 0.1)  # the cap is per host
    slots.release("busy.example")
    slots.acquire("busy.example", time.monotonic() + 0.1)


@pytest.mark.parametrize("source, code", [
    ("http:///image.png", "invalid_source"), ("http://127.0.0.1:99999/x", "invalid_source"),
    ("http://[::1/x", "invalid_source"), ("ftp://127.0.0.1/x.png", "unsupported_scheme"),
    ("gopher://x/y", "unsupported_scheme"), ("   ", "missing"),
])
def test_fetch_rejects_malformed_and_unsupported_sources(source, code):
    with fetcher() as fetch:
        assert failure(fetch, source).code == code


def test_fetch_closes_and_can_be_used_as_a_context_manager(server):
    fetch = fetcher()
    assert fetch.fetch(server.url("/image.png")) == PNG
    fetch.close()
    assert not any(t.name == "sparkimg_ml-watchdog" and t.is_alive() and t is fetch._http._guard.watchdog._thread
                   for t in threading.enumerate())


# --------------------------------------------------------------------------- local files


def test_fetch_reads_local_paths_and_file_uris(tmp_path):
    image = tmp_path / "a b.png"
    image.write_bytes(PNG)
    with fetcher() as fetch:
        assert fetch.fetch(str(image)) == PNG
        assert fetch.fetch(image.as_uri()) == PNG
        assert fetch.fetch(f"file://localhost{quote(str(image))}") == PNG


def test_fetch_refuses_non_regular_local_files(tmp_path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    start = time.monotonic()
    with fetcher() as fetch:
        assert failure(fetch, str(fifo)).reason == f"not_a_file: {fifo} is a FIFO"
        assert failure(fetch, str(tmp_path)).reason == f"not_a_file: {tmp_path} is a directory"
        assert failure(fetch, "/dev/zero").reason == "not_a_file: /dev/zero is a character device"
    assert time.monotonic() - start < 1.0  # opening the FIFO did not wait for a writer


def test_fetch_reports_missing_and_oversized_local_files(tmp_path):
    big = tmp_path / "big.bin"
    big.write_bytes(bytes(2000))
    with fetcher(max_bytes=1000) as fetch:
        assert failure(fetch, str(tmp_path / "nope.png")).reason == f"not_found: {tmp_path / 'nope.png'}"
        assert failure(fetch, str(big)).reason == "too_large: 2000 bytes > maxBytes 1000"


def test_fetch_can_turn_local_files_off(tmp_path):
    image = tmp_path / "a.png"
    image.write_bytes(PNG)
    with fetcher(allow_local_files=False) as fetch:
        assert failure(fetch, str(image)).code == "local_files_disabled"
        assert failure(fetch, image.as_uri()).code == "local_files_disabled"


def test_fetch_refuses_file_uris_on_other_hosts():
    with fetcher() as fetch:
        assert failure(fetch, "file://server/share/a.png").code == "unsupported_scheme"


@pytest.fixture
def hung_fifos(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[], Path]]:
    """Makes FIFOs nobody writes to, opened the way a hung network mount behaves: the open blocks.

    The local reader opens with ``O_NONBLOCK`` so that a real FIFO is refused at once; a
    blocking open stands in for a file system that never answers. At the end every FIFO
    gets a writer, so the reader threads left blocked return.
    """
    monkeypatch.setattr(local_reader, "_OPEN_FLAGS", os.O_RDONLY)
    made: list[Path] = []

    def make() -> Path:
        path = tmp_path / f"hung-{len(made)}"
        os.mkfifo(path)
        made.append(path)
        return path

    yield make
    for path in made:
        with contextlib.suppress(OSError):
            os.close(os.open(path, os.O_WRONLY | os.O_NONBLOCK))  # no reader left: ENXIO


def _wait_for(condition: Callable[[], bool], seconds: float = 5.0) -> None:
    stop = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < stop, "condition not reached"
        time.sleep(0.01)


@pytest.mark.claim("Every read (HTTP, local, storage) is bounded by the per-row deadline; at most 32 abandoned reads")
def test_fetch_bounds_a_hung_local_read_by_the_deadline(hung_fifos):
    fifo = hung_fifos()
    start = time.monotonic()
    with fetcher(timeout=0.5) as fetch:
        error = failure(fetch, str(fifo))
    elapsed = time.monotonic() - start
    assert error.reason == f"timeout: {fifo}: local read not complete by the deadline (timeout 0.5s)"
    assert 0.45 < elapsed < 1.0


@pytest.mark.claim("Every read (HTTP, local, storage) is bounded by the per-row deadline; at most 32 abandoned reads")
def test_abandoned_reads_are_capped_and_new_ones_fail_fast_until_they_return(hung_fifos, tmp_path, monkeypatch):
    calls = BlockingCalls(max_abandoned=2)
    monkeypatch.setattr(fetcher_module, "BLOCKING_CALLS", calls)
    fifos = [hung_fifos() for _ in range(3)]
    image = tmp_path / "a.png"
    image.write_bytes(PNG)
    with fetcher(timeout=0.6) as fetch:
        for fifo in fifos[:2]:
            assert failure(fetch, str(fifo)).reason.endswith("local read not complete by the deadline (timeout 0.6s)")
        assert calls.abandoned == 2
        start = time.monotonic()
        refused = failure(fetch, str(fifos[2]))
        assert time.monotonic() - start < 0.3  # well before the 0.6 s deadline
        assert refused.reason == (f"timeout: {fifos[2]}: local read not started: 2 earlier reads are still blocked "
                                  "past their deadline (an unresponsive file system or storage back-end?) "
                                  "(timeout 0.6s)")
        assert failure(fetch, str(image)).code == "timeout"  # every local read is refused while the cap holds
        for fifo in fifos[:2]:  # the file system answers again
            os.close(os.open(fifo, os.O_WRONLY))
        _wait_for(lambda: calls.abandoned == 0)
        assert fetch.fetch(str(image)) == PNG


def test_blocking_calls_reuse_their_threads():
    def runners() -> set:
        return {t for t in threading.enumerate() if t.name == "sparkimg_ml-blocking"}

    # Earlier tests' runners (the process-wide BlockingCalls keeps idle ones for a while) are not ours.
    before = runners()
    calls = BlockingCalls()
    with ThreadPoolExecutor(4) as pool:
        assert sum(pool.map(lambda i: calls.run(lambda: i, time.monotonic() + 5, "add"), range(400))) == 79800
    assert len(runners() - before) <= 8  # at most a few per caller thread, not one per call


@pytest.mark.skipif(not hasattr(os, "fork"), reason="fork is POSIX only")
def test_local_reads_work_in_a_forked_child_of_a_process_that_read_before(tmp_path):
    image = tmp_path / "a.png"
    image.write_bytes(PNG)
    with fetcher() as fetch:
        assert fetch.fetch(str(image)) == PNG  # leaves an idle helper thread, which a child does not inherit
    pid = os.fork()
    if pid == 0:  # the child: exit 0 only if the read works there
        code = 1
        try:
            with fetcher(timeout=2.0) as fetch:
                code = 0 if fetch.fetch(str(image)) == PNG else 1
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0


def test_blocking_calls_start_nothing_past_the_deadline():
    calls = BlockingCalls()
    started = []
    with pytest.raises(CallTimeout, match="^resolve not started: the deadline has passed$"):
        calls.run(lambda: started.append(1), time.monotonic() - 0.1, "resolve")
    assert started == [] and calls.abandoned == 0


def test_blocking_calls_hand_back_the_call_exception():
    with pytest.raises(ZeroDivisionError):
        BlockingCalls().run(lambda: 1 / 0, time.monotonic() + 5, "divide")


# --------------------------------------------------------------------------- data: URIs


def test_fetch_decodes_base64_and_percent_encoded_data_uris():
    encoded = base64.b64encode(PNG).decode()
    with fetcher() as fetch:
        assert fetch.fetch(f"data:image/png;base64,{encoded}") == PNG
        assert fetch.fetch(f"data:image/png;base64,{encoded[:20]}\n{encoded[20:]}") == PNG
        assert fetch.fetch("data:,a%20b") == b"a b"


@pytest.mark.parametrize("source, reason", [
    ("data:image/png;base64,@@@@", "invalid_source: invalid base64 in data: URI"),
    ("data:image/png;base64", "invalid_source: data: URI without a comma"),
    ("data:;base64," + base64.b64encode(bytes(300)).decode(), "too_large: data: URI payload exceeds maxBytes 100"),
    ("data:," + "a" * 101, "too_large: data: URI payload exceeds maxBytes 100"),
])
def test_fetch_reports_bad_and_oversized_data_uris(source, reason):
    with fetcher(max_bytes=100) as fetch:
        assert failure(fetch, source).reason == reason


# --------------------------------------------------------------------------- fsspec (in memory)


@pytest.fixture
def memory_image() -> Iterator[str]:
    fs = MemoryFileSystem()
    path = f"/sparkimg-{uuid.uuid4().hex}/a.png"
    fs.pipe(path, PNG)
    yield f"memory://{path}"
    fs.rm(path)


def test_fetch_reads_listed_fsspec_protocols_only(memory_image):
    with fetcher() as fetch:
        assert failure(fetch, memory_image).code == "unsupported_scheme"
    with fetcher(storage_protocols=["memory"]) as fetch:
        assert fetch.fetch(memory_image) == PNG
        assert failure(fetch, memory_image + ".missing").code == "not_found"
    with fetcher(storage_protocols=["memory"], max_bytes=10) as fetch:
        assert failure(fetch, memory_image).reason == f"too_large: {len(PNG)} bytes > maxBytes 10"


def test_fetch_refuses_chained_fsspec_urls(memory_image, tmp_path):
    with fetcher(storage_protocols=["memory", "zip"]) as fetch:
        assert failure(fetch, f"zip://a.png::file://{tmp_path}/x.zip").code == "unsupported_scheme"


def test_fetch_names_the_missing_storage_package(monkeypatch):
    monkeypatch.setitem(sys.modules, "fsspec", None)  # import fsspec now raises ImportError
    with fetcher() as fetch:
        assert failure(fetch, "s3://bucket/a.png").reason == (
            "missing_dependency: s3:// needs s3fs (pip install 'sparkimg_ml[s3]')")


def test_fetch_names_a_missing_fsspec_backend(monkeypatch):
    registry = importlib.import_module("fsspec.registry")  # `fsspec.registry` is a mapping, not the module

    monkeypatch.setitem(sys.modules, "gcsfs", None)  # as if gcsfs were not installed
    for protocol in ("gs", "gcs"):
        monkeypatch.delitem(registry._registry, protocol, raising=False)
    with fetcher() as fetch:
        error = failure(fetch, "gs://bucket/a.png")
    assert error.reason == "missing_dependency: gs:// needs gcsfs (pip install 'sparkimg_ml[gcs]')"


class _StallingFileSystem(MemoryFileSystem):
    """A storage back-end whose reads hang, like an unresponsive object store."""

    protocol = "stalling"

    def _open(self, path, mode="rb", **kwargs):  # type: ignore[no-untyped-def]
        time.sleep(5)
        return super()._open(path, mode, **kwargs)


@pytest.mark.claim("Every read (HTTP, local, storage) is bounded by the per-row deadline; at most 32 abandoned reads")
def test_fetch_bounds_a_hanging_storage_read_by_the_deadline():
    fsspec.register_implementation("stalling", _StallingFileSystem, clobber=True)
    start = time.monotonic()
    with fetcher(storage_protocols=["stalling"], timeout=0.5) as fetch:
        assert failure(fetch, "stalling://x/a.png").code == "timeout"
    assert time.monotonic() - start < 1.5


class _BackendBug(Exception):
    """Not an OSError: what an auth library or a buggy back-end raises."""


class _FailingFileSystem(MemoryFileSystem):
    """A storage back-end whose reads raise an arbitrary exception quoting credentials."""

    protocol = "failing"

    def __init__(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        self.secret = kwargs.pop("secret", "")
        super().__init__(*args, **kwargs)

    def _open(self, path, mode="rb", **kwargs):  # type: ignore[no-untyped-def]
        raise _BackendBug("refused https://admin:hunter22@store.example/a.png?X-Amz-Signature=abcdef "
                          f"with key AKIAIOSFODNN7EXAMPLE, secret {self.secret}, Authorization: Bearer eyJabc")


class _BrokenFileSystem(MemoryFileSystem):
    """A storage back-end that cannot even be created."""

    protocol = "broken"

    def __init__(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        raise RuntimeError("no session: token=tok-123 expired")


def test_fetch_turns_any_storage_backend_exception_into_a_redacted_storage_reason(monkeypatch):
    fsspec.register_implementation("failing", _FailingFileSystem, clobber=True)
    fsspec.register_implementation("broken", _BrokenFileSystem, clobber=True)
    monkeypatch.setenv("SPARKIMG_TEST_STORE_SECRET", "sesame-" + uuid.uuid4().hex)
    options = {"failing": {"secret": "env:SPARKIMG_TEST_STORE_SECRET", "skip_instance_cache": True}}
    with fetcher(storage_protocols=["failing", "broken"], storage_options=options) as fetch:
        failing = failure(fetch, "failing://bucket/a.png")
        broken = failure(fetch, "broken://bucket/a.png")
    assert failing.reason == (
        "storage: _BackendBug: refused https://store.example/a.png?X-Amz-Signature=*** with key ***, "
        "secret ***, Authorization: Bearer ***")
    assert broken.reason == "storage: RuntimeError: no session: token=*** expired"
    assert os.environ["SPARKIMG_TEST_STORE_SECRET"] not in failing.reason


def test_a_failing_storage_backend_fails_the_row_not_the_task():
    from sparkimg_ml import schema
    from sparkimg_ml.engine import decode, featurize
    from sparkimg_ml.image import ImageSpec

    fsspec.register_implementation("failing", _FailingFileSystem, clobber=True)
    MemoryFileSystem().pipe("/ok/a.png", PNG)
    options = FetchOptions(storage_protocols=["failing", "memory"])
    task = decode.DecodeTask(ImageSpec(2, 2), options, schema.SOURCE, "keep", "url")
    batch = next(featurize.featurize_batches([pa.array(["failing://bucket/a.png", "memory:///ok/a.png"])], task))
    errors = batch.field("error").to_pylist()
    assert errors[0].startswith("storage: _BackendBug: refused https://store.example/") and errors[1] is None
    erroring = dataclasses.replace(task, handle_invalid="error")
    with pytest.raises(decode.ImageFeaturizationError, match=r"url=failing://bucket/a.png: storage: _BackendBug: "):
        next(featurize.featurize_batches([pa.array(["failing://bucket/a.png"])], erroring))


class _SlowStartFileSystem(MemoryFileSystem):
    """A storage back-end that hangs while it is created (e.g. fetching credentials)."""

    protocol = "slowstart"

    def __init__(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        time.sleep(3)
        super().__init__(*args, **kwargs)


class _DrippingFileSystem(MemoryFileSystem):
    """A storage back-end that returns one byte per read, each after 0.1 s."""

    protocol = "dripping"

    def _open(self, path, mode="rb", **kwargs):  # type: ignore[no-untyped-def]
        class Dripping(io.BytesIO):
            size = None

            def read(self, size=-1):  # type: ignore[no-untyped-def]
                time.sleep(0.1)
                return super().read(1)

        return Dripping(bytes(1000))


@pytest.mark.parametrize("protocol", ["slowstart", "dripping"])
def test_fetch_bounds_slow_storage_back_ends_by_the_deadline(protocol):
    fsspec.register_implementation("slowstart", _SlowStartFileSystem, clobber=True)
    fsspec.register_implementation("dripping", _DrippingFileSystem, clobber=True)
    start = time.monotonic()
    with fetcher(storage_protocols=[protocol], storage_options={protocol: {"skip_instance_cache": True}},
                 timeout=0.5) as fetch:
        assert failure(fetch, f"{protocol}://x/a.png").reason == (
            "timeout: storage read not complete by the deadline (timeout 0.5s)")
    assert 0.45 < time.monotonic() - start < 1.0


# --------------------------------------------------------------------------- Params


class _Stage(HasFetchParams):
    pass


def test_fetch_params_default_to_fetch_options_defaults():
    assert _Stage()._fetch_options() == FetchOptions()


def test_fetch_params_build_the_options_shipped_to_executors():
    stage = (_Stage().setConcurrency(4).setTimeout(3).setConnectTimeout(1).setMaxBytes(10)
             .setAllowLocalFiles(False).setMaxConnectionsPerHost(2).setMaxRetries(0).setMaxRetryWait(0.5)
             .setMaxRedirects(1).setHeaders({"Authorization": "env:TOKEN"}).setBlockPrivateNetworks(True)
             .setAllowedHosts(["*.example.com"]).setStorageProtocols(["s3"])
             .setStorageOptions({"s3": {"endpoint_url": "http://127.0.0.1:9000"}}))
    assert stage._fetch_options() == FetchOptions(
        concurrency=4, timeout=3.0, connect_timeout=1.0, max_bytes=10, allow_local_files=False,
        max_connections_per_host=2, max_retries=0, max_retry_wait=0.5, max_redirects=1,
        headers={"Authorization": "env:TOKEN"}, block_private_networks=True, allowed_hosts=["*.example.com"],
        storage_protocols=["s3"], storage_options={"s3": {"endpoint_url": "http://127.0.0.1:9000"}},
    )
    values = {p.name: stage.getOrDefault(p) for p in stage.params}
    assert json.loads(json.dumps(values)) == values  # JSON-native, as DefaultParamsWriter needs


@pytest.mark.parametrize("headers", [{"Authorization": "Bearer abc"}, {"cookie": "a=1"},
                                     {"Proxy-Authorization": "Basic eA=="}, {"X-Api-Key": "k"},
                                     {"X-Auth-Token": "t"}])
@pytest.mark.claim("Saved stages hold env references for headers and storage options, never literal secrets")
def test_headers_param_refuses_literal_credentials(headers):
    with pytest.raises(ValueError, match="env:NAME"):
        _Stage().setHeaders(headers)


@pytest.mark.parametrize("headers, error, pattern", [
    ({"Bad Name": "x"}, ValueError, "'Bad Name' is not a valid header name"),
    ({"X-A": "a\r\nInjected: 1"}, ValueError, "value of 'X-A' must not contain line breaks"),
    ({"Host": "evil"}, ValueError, "'Host' is set from each URL and cannot be overridden"),
    ({"X-A": 1}, TypeError, "headers must map strings to strings; got 'X-A': 1"),
    (["X-A"], TypeError, "headers must be a dict of header name to value, got list"),
    ({"Authorization": "env:1BAD"}, ValueError, "'env:1BAD' is not a valid env:NAME reference"),
])
def test_headers_param_rejects_malformed_headers(headers, error, pattern):
    with pytest.raises(error, match=pattern):
        convert_headers(headers)


def test_storage_options_param_refuses_literal_credentials_but_takes_env_references():
    for key in ("key", "secret", "token", "account_key", "sas_token", "client_secret", "password"):
        with pytest.raises(ValueError, match="env:NAME"):
            convert_storage_options({"s3": {key: "literal"}})
        assert convert_storage_options({"s3": {key: "env:CRED"}}) == {"s3": {key: "env:CRED"}}
    assert convert_storage_options({"gs": {"token": "anon"}}) == {"gs": {"token": "anon"}}
    with pytest.raises(ValueError, match="env:NAME"):
        convert_storage_options({"abfs": {"credentials": {"client_secret": "x"}}})
    with pytest.raises(TypeError, match=r"storageOptions\.s3: storageOptions maps a protocol to its options"):
        convert_storage_options({"s3": "not a dict"})


class _RecordingFileSystem(MemoryFileSystem):
    """A storage back-end that remembers the options it was created with."""

    protocol = "recording"
    created_with: ClassVar[list] = []

    def __init__(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        type(self).created_with.append(kwargs)
        super().__init__(*args)

    @classmethod
    def _strip_protocol(cls, path):  # type: ignore[no-untyped-def]
        return super()._strip_protocol(path.replace("recording://", "memory://", 1))


def test_storage_options_env_references_are_resolved_on_the_executor(monkeypatch):
    fsspec.register_implementation("recording", _RecordingFileSystem, clobber=True)
    monkeypatch.setenv("SPARKIMG_TEST_SECRET", "resolved-" + uuid.uuid4().hex)
    MemoryFileSystem().pipe("/recorded/a.png", PNG)
    options = {"recording": {"secret": "env:SPARKIMG_TEST_SECRET", "region": "eu"}}
    with fetcher(storage_protocols=["recording"], storage_options=options) as fetch:
        assert fetch.fetch("recording:///recorded/a.png") == PNG
    assert _RecordingFileSystem.created_with[-1] == {"secret": os.environ["SPARKIMG_TEST_SECRET"], "region": "eu"}


@pytest.mark.parametrize("setter, value, pattern", [
    ("setAllowedHosts", ["http://x"], "allowedHosts entry 'http://x' is not a host name"),
    ("setStorageProtocols", ["HTTP"], "'HTTP' is not a lower-case protocol name"),
    ("setStorageProtocols", ["http"], "'http' is read natively and cannot be routed to fsspec"),
    ("setMaxRetries", -1, "^maxRetries must be >= 0; got -1"),
    ("setConnectTimeout", 0, "^connectTimeout must be > 0; got 0"),
    ("setMaxConnectionsPerHost", 0, "^maxConnectionsPerHost must be > 0; got 0"),
])
def test_fetch_params_reject_bad_values(setter, value, pattern):
    with pytest.raises(ValueError, match=pattern):
        getattr(_Stage(), setter)(value)


# --------------------------------------------------------------------------- robustness

_URL_CHARS = st.characters(codec="utf-8", exclude_categories=("Cs",))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(path=st.text(_URL_CHARS, max_size=30), netloc=st.text(_URL_CHARS, max_size=25),
       scheme=st.sampled_from(["http", "https", "HTTP", "file", "data", "s3", "x-y", ""]))
def test_fetch_raises_only_source_errors_for_arbitrary_sources(server, path, netloc, scheme):
    # Names other than localhost are refused before any DNS query; no request leaves the machine.
    with fetcher(allowed_hosts=["localhost"], timeout=1.0, max_retries=0, storage_protocols=[]) as guarded, \
            fetcher(timeout=1.0, max_retries=0) as loopback:
        for fetch, source in ((loopback, server.url("/fuzz/" + path)), (guarded, f"{scheme}://{netloc}/{path}"),
                              (guarded, f"{scheme}:{netloc}{path}")):
            try:
                fetch.fetch(source)
            except SourceError as error:
                assert error.code in REASON_CODES or error.code.startswith("http_")
