"""Fetch options: the limits and policies one :class:`~sparkimg_ml.fetch.Fetcher` applies."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

from .policy import parse_host_rule

#: fsspec protocols read by default: object stores and Hadoop file systems. Other
#: fsspec protocols (ftp, sftp, ssh, github, memory, zip, ...) would reach hosts or
#: files outside the network and local-file policies, so they must be listed explicitly.
DEFAULT_STORAGE_PROTOCOLS = ["s3", "s3a", "gs", "gcs", "abfs", "abfss", "az", "adl", "hdfs", "webhdfs"]


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
        back-off wait and redirect included; local and storage reads are bounded
        by it too.
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
    max_requests_per_second_per_host : float
        Requests one fetcher starts to one host per second (every retry and
        redirect hop counts); ``0`` turns the limit off. A row that would have to
        wait past its deadline for its turn fails with ``timeout`` at once.
    respect_opt_out : bool
        Refuse images served with ``X-Robots-Tag: noai`` or ``noimageai`` (reason
        ``opted_out``).

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
    max_requests_per_second_per_host: float = 0.0
    respect_opt_out: bool = False

    def __post_init__(self) -> None:
        for name in ("concurrency", "max_bytes", "max_connections_per_host"):
            _check_number(name, getattr(self, name), minimum=1)
        for name in ("max_retries", "max_redirects"):
            _check_number(name, getattr(self, name), minimum=0)
        for name in ("timeout", "connect_timeout"):
            _check_number(name, getattr(self, name), minimum=0, strict=True)
        _check_number("max_retry_wait", self.max_retry_wait, minimum=0)
        _check_number("max_requests_per_second_per_host", self.max_requests_per_second_per_host, minimum=0)
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
