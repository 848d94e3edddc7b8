"""Params that bound how image stages read their sources (the fetching layer's options)."""

from __future__ import annotations

import re
from typing import Any, TypedDict, TypeVar

from pyspark.ml.param import Param, Params

from ..fetch import (
    ENV_PREFIX,
    FetchOptions,
    is_secret_header,
    is_secret_option,
    parse_host_rule,
)
from . import converters as conv


class FetchParamValues(TypedDict, total=False):
    """The fetch Params as constructor keywords (for type checkers)."""

    concurrency: int
    timeout: float
    connectTimeout: float
    maxBytes: int
    allowLocalFiles: bool
    maxConnectionsPerHost: int
    maxRetries: int
    maxRetryWait: float
    maxRedirects: int
    headers: dict[str, str] | None
    blockPrivateNetworks: bool
    allowedHosts: list[str] | None
    storageProtocols: list[str] | None
    storageOptions: dict[str, dict[str, Any]] | None
    maxRequestsPerSecondPerHost: float
    respectOptOut: bool


F = TypeVar("F", bound="HasFetchParams")

# RFC 9110 token characters: what a header name may contain.
_HEADER_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_PROTOCOL = re.compile(r"[a-z][a-z0-9+.\-]*")


def _check_env_reference(value: str, what: str) -> None:
    if value.startswith(ENV_PREFIX) and not _ENV_NAME.fullmatch(value[len(ENV_PREFIX):]):
        raise ValueError(f"{what}: {value!r} is not a valid env:NAME reference (NAME: letters, digits, _).")


def convert_headers(value: Any) -> dict[str, str]:
    """Validate the ``headers`` Param: names are tokens, credentials are ``env:NAME`` references.

    A literal value for a credential header (``Authorization``, ``Cookie``,
    ``Proxy-Authorization``, or a name containing ``token``, ``secret``,
    ``api-key``, ``password`` or ``signature``) is refused, so a secret can never
    be written to disk when the stage is saved.

    Examples
    --------
    >>> convert_headers({"Authorization": "env:IMAGE_TOKEN", "X-Team": "vision"})
    {'Authorization': 'env:IMAGE_TOKEN', 'X-Team': 'vision'}
    >>> convert_headers({"Authorization": "Bearer abc"})
    Traceback (most recent call last):
    ...
    ValueError: headers: a literal value for 'Authorization' is refused because it would be saved with the stage; pass 'env:NAME' to read it from the environment variable NAME on the executors.
    """
    if not isinstance(value, dict):
        raise TypeError(f"headers must be a dict of header name to value, got {type(value).__name__}: {value!r}")
    headers: dict[str, str] = {}
    for name, text in value.items():
        if not isinstance(name, str) or not isinstance(text, str):
            raise TypeError(f"headers must map strings to strings; got {name!r}: {text!r}")
        if not _HEADER_NAME.fullmatch(name):
            raise ValueError(f"headers: {name!r} is not a valid header name.")
        if any(c in text for c in "\r\n\0"):
            raise ValueError(f"headers: the value of {name!r} must not contain line breaks or NUL.")
        if name.lower() == "host":
            raise ValueError("headers: 'Host' is set from each URL and cannot be overridden.")
        _check_env_reference(text, f"headers[{name!r}]")
        if is_secret_header(name) and not text.startswith(ENV_PREFIX):
            raise ValueError(
                f"headers: a literal value for {name!r} is refused because it would be saved with the "
                "stage; pass 'env:NAME' to read it from the environment variable NAME on the executors."
            )
        headers[name] = text
    return headers


def _check_storage_option(path: list[str], value: Any) -> None:
    where = "storageOptions." + ".".join(path)
    if len(path) < 2:
        raise TypeError(f"{where}: storageOptions maps a protocol to its options, e.g. "
                         "{'s3': {'endpoint_url': 'http://127.0.0.1:9000'}}.")
    if isinstance(value, str):
        _check_env_reference(value, where)
        if is_secret_option(path[-1], value) and not value.startswith(ENV_PREFIX):
            raise ValueError(
                f"{where}: a literal credential is refused because it would be saved with the stage; "
                "pass 'env:NAME' to read it from the environment variable NAME on the executors."
            )


_storage_options_converter = conv.json_object("storageOptions", _check_storage_option)


def convert_storage_options(value: Any) -> dict[str, dict[str, Any]]:
    """Validate ``storageOptions``: ``{protocol: {option: JSON value}}``, credentials as ``env:NAME``.

    Examples
    --------
    >>> convert_storage_options({"s3": {"endpoint_url": "http://127.0.0.1:9000", "secret": "env:S3_SECRET"}})
    {'s3': {'endpoint_url': 'http://127.0.0.1:9000', 'secret': 'env:S3_SECRET'}}
    >>> convert_storage_options({"s3": {"secret": "hunter2"}})
    Traceback (most recent call last):
    ...
    ValueError: storageOptions.s3.secret: a literal credential is refused because it would be saved with the stage; pass 'env:NAME' to read it from the environment variable NAME on the executors.
    """
    options = _storage_options_converter(value)
    for protocol, per_protocol in options.items():
        if not isinstance(per_protocol, dict):
            raise TypeError(f"storageOptions.{protocol} must be a dict of fsspec options; got {per_protocol!r}.")
    return options


def _check_protocol(protocol: str) -> None:
    if not _PROTOCOL.fullmatch(protocol):
        raise ValueError(f"storageProtocols: {protocol!r} is not a lower-case protocol name such as 's3'.")
    if protocol in ("http", "https", "file", "data", "local"):
        raise ValueError(f"storageProtocols: {protocol!r} is read natively and cannot be routed to fsspec.")


class HasFetchParams(Params):
    """Mixin: how sources are fetched (concurrency, limits, retries, network policy, headers, storage).

    ``_fetch_options()`` turns the Params into the plain :class:`FetchOptions`
    that is shipped to the executors.

    Examples
    --------
    >>> class Stage(HasFetchParams):
    ...     pass
    >>> stage = Stage().setMaxRetries(1).setAllowedHosts(["*.example.com"])
    >>> options = stage._fetch_options()
    >>> options.max_retries, options.allowed_hosts, options.timeout
    (1, ['*.example.com'], 30.0)
    """

    concurrency: Param[int] = Param(
        Params._dummy(), "concurrency",
        "images fetched and decoded at once per Spark task (threads).",
        typeConverter=conv.positive_int("concurrency"),
    )
    timeout: Param[float] = Param(
        Params._dummy(), "timeout",
        "seconds allowed for one source from start to last byte, retries, back-off and redirects "
        "included, for HTTP, local and storage reads alike; past it the row fails with reason timeout.",
        typeConverter=conv.positive_float("timeout"),
    )
    connectTimeout: Param[float] = Param(
        Params._dummy(), "connectTimeout",
        "seconds allowed to resolve and connect to a host (within timeout); retried while time remains.",
        typeConverter=conv.positive_float("connectTimeout"),
    )
    maxBytes: Param[int] = Param(
        Params._dummy(), "maxBytes",
        "largest accepted encoded image in bytes (decoded bytes for gzip/deflate responses); larger "
        "ones fail with reason too_large.",
        typeConverter=conv.positive_int("maxBytes"),
    )
    allowLocalFiles: Param[bool] = Param(
        Params._dummy(), "allowLocalFiles",
        "whether local paths and file:// URIs may be read.",
        typeConverter=conv.boolean("allowLocalFiles"),
    )
    maxConnectionsPerHost: Param[int] = Param(
        Params._dummy(), "maxConnectionsPerHost",
        "connections one Spark task opens to one host at once, so a slow host cannot take every thread.",
        typeConverter=conv.positive_int("maxConnectionsPerHost"),
    )
    maxRetries: Param[int] = Param(
        Params._dummy(), "maxRetries",
        "retries after a connection error, HTTP 429 or 5xx (exponential back-off with jitter, "
        "Retry-After honoured); other 4xx are never retried.",
        typeConverter=conv.positive_int("maxRetries", allow_zero=True),
    )
    maxRetryWait: Param[float] = Param(
        Params._dummy(), "maxRetryWait",
        "longest wait in seconds before one retry, capping both back-off and Retry-After.",
        typeConverter=conv.positive_float("maxRetryWait", allow_zero=True),
    )
    maxRedirects: Param[int] = Param(
        Params._dummy(), "maxRedirects",
        "redirects followed per source before failing with reason too_many_redirects.",
        typeConverter=conv.positive_int("maxRedirects", allow_zero=True),
    )
    headers: Param[dict[str, str]] = Param(
        Params._dummy(), "headers",
        "extra HTTP request headers, e.g. {'User-Agent': 'my-crawler/1.0'}. A value 'env:NAME' is read "
        "from the environment variable NAME on the executors; credential headers (Authorization, "
        "Cookie, *token*, *api-key*, ...) accept only env:NAME, so no secret is saved with the stage. "
        "Authorization, Proxy-Authorization and Cookie are dropped when a redirect leaves the first origin.",
        typeConverter=convert_headers,
    )
    blockPrivateNetworks: Param[bool] = Param(
        Params._dummy(), "blockPrivateNetworks",
        "also refuse private (10/8, 172.16/12, 192.168/16, 100.64/10, fc00::/7) and loopback "
        "addresses. Link-local and cloud-metadata addresses are always refused.",
        typeConverter=conv.boolean("blockPrivateNetworks"),
    )
    allowedHosts: Param[list[str]] = Param(
        Params._dummy(), "allowedHosts",
        "when not empty, only these hosts are fetched over HTTP: names ('images.example.com'), "
        "sub-domain patterns ('*.example.com'), IP addresses or networks ('203.0.113.0/24').",
        typeConverter=conv.string_list("allowedHosts", parse_host_rule),
    )
    storageProtocols: Param[list[str]] = Param(
        Params._dummy(), "storageProtocols",
        "fsspec protocols that may be read (needs the [cloud] extra), e.g. ['s3', 'gs', 'abfs', 'hdfs'].",
        typeConverter=conv.string_list("storageProtocols", _check_protocol),
    )
    storageOptions: Param[dict[str, dict[str, Any]]] = Param(
        Params._dummy(), "storageOptions",
        "fsspec options per protocol, e.g. {'s3': {'endpoint_url': 'http://127.0.0.1:9000'}}; "
        "credentials only as 'env:NAME' (read on the executors) or from the back-end's own "
        "configuration (environment, instance role).",
        typeConverter=convert_storage_options,
    )
    maxRequestsPerSecondPerHost: Param[float] = Param(
        Params._dummy(), "maxRequestsPerSecondPerHost",
        "requests one Spark task starts to one host per second (retries and redirect hops count), "
        "0 for no limit; a row whose turn would come after its timeout fails with reason timeout at once.",
        typeConverter=conv.positive_float("maxRequestsPerSecondPerHost", allow_zero=True),
    )
    respectOptOut: Param[bool] = Param(
        Params._dummy(), "respectOptOut",
        "refuse images served with X-Robots-Tag noai or noimageai (reason opted_out).",
        typeConverter=conv.boolean("respectOptOut"),
    )

    def __init__(self) -> None:
        super().__init__()
        defaults = FetchOptions()
        self._setDefault(
            concurrency=defaults.concurrency, timeout=defaults.timeout,
            connectTimeout=defaults.connect_timeout, maxBytes=defaults.max_bytes,
            allowLocalFiles=defaults.allow_local_files,
            maxConnectionsPerHost=defaults.max_connections_per_host,
            maxRetries=defaults.max_retries, maxRetryWait=defaults.max_retry_wait,
            maxRedirects=defaults.max_redirects, headers=defaults.headers,
            blockPrivateNetworks=defaults.block_private_networks,
            allowedHosts=defaults.allowed_hosts, storageProtocols=defaults.storage_protocols,
            storageOptions=defaults.storage_options,
        )
        self._setDefault(maxRequestsPerSecondPerHost=defaults.max_requests_per_second_per_host,
                         respectOptOut=defaults.respect_opt_out)

    def getConcurrency(self) -> int:
        """Gets the value of concurrency or its default value."""
        return self.getOrDefault(self.concurrency)

    def setConcurrency(self: F, value: int) -> F:
        """Sets the value of :py:attr:`concurrency`."""
        return self._set(concurrency=value)

    def getTimeout(self) -> float:
        """Gets the value of timeout or its default value."""
        return self.getOrDefault(self.timeout)

    def setTimeout(self: F, value: float) -> F:
        """Sets the value of :py:attr:`timeout`."""
        return self._set(timeout=value)

    def getConnectTimeout(self) -> float:
        """Gets the value of connectTimeout or its default value."""
        return self.getOrDefault(self.connectTimeout)

    def setConnectTimeout(self: F, value: float) -> F:
        """Sets the value of :py:attr:`connectTimeout`."""
        return self._set(connectTimeout=value)

    def getMaxBytes(self) -> int:
        """Gets the value of maxBytes or its default value."""
        return self.getOrDefault(self.maxBytes)

    def setMaxBytes(self: F, value: int) -> F:
        """Sets the value of :py:attr:`maxBytes`."""
        return self._set(maxBytes=value)

    def getAllowLocalFiles(self) -> bool:
        """Gets the value of allowLocalFiles or its default value."""
        return self.getOrDefault(self.allowLocalFiles)

    def setAllowLocalFiles(self: F, value: bool) -> F:
        """Sets the value of :py:attr:`allowLocalFiles`."""
        return self._set(allowLocalFiles=value)

    def getMaxConnectionsPerHost(self) -> int:
        """Gets the value of maxConnectionsPerHost or its default value."""
        return self.getOrDefault(self.maxConnectionsPerHost)

    def setMaxConnectionsPerHost(self: F, value: int) -> F:
        """Sets the value of :py:attr:`maxConnectionsPerHost`."""
        return self._set(maxConnectionsPerHost=value)

    def getMaxRetries(self) -> int:
        """Gets the value of maxRetries or its default value."""
        return self.getOrDefault(self.maxRetries)

    def setMaxRetries(self: F, value: int) -> F:
        """Sets the value of :py:attr:`maxRetries`."""
        return self._set(maxRetries=value)

    def getMaxRetryWait(self) -> float:
        """Gets the value of maxRetryWait or its default value."""
        return self.getOrDefault(self.maxRetryWait)

    def setMaxRetryWait(self: F, value: float) -> F:
        """Sets the value of :py:attr:`maxRetryWait`."""
        return self._set(maxRetryWait=value)

    def getMaxRedirects(self) -> int:
        """Gets the value of maxRedirects or its default value."""
        return self.getOrDefault(self.maxRedirects)

    def setMaxRedirects(self: F, value: int) -> F:
        """Sets the value of :py:attr:`maxRedirects`."""
        return self._set(maxRedirects=value)

    def getHeaders(self) -> dict[str, str]:
        """Gets the value of headers or its default value."""
        return self.getOrDefault(self.headers)

    def setHeaders(self: F, value: dict[str, str]) -> F:
        """Sets the value of :py:attr:`headers`."""
        return self._set(headers=value)

    def getBlockPrivateNetworks(self) -> bool:
        """Gets the value of blockPrivateNetworks or its default value."""
        return self.getOrDefault(self.blockPrivateNetworks)

    def setBlockPrivateNetworks(self: F, value: bool) -> F:
        """Sets the value of :py:attr:`blockPrivateNetworks`."""
        return self._set(blockPrivateNetworks=value)

    def getAllowedHosts(self) -> list[str]:
        """Gets the value of allowedHosts or its default value."""
        return self.getOrDefault(self.allowedHosts)

    def setAllowedHosts(self: F, value: list[str]) -> F:
        """Sets the value of :py:attr:`allowedHosts`."""
        return self._set(allowedHosts=value)

    def getStorageProtocols(self) -> list[str]:
        """Gets the value of storageProtocols or its default value."""
        return self.getOrDefault(self.storageProtocols)

    def setStorageProtocols(self: F, value: list[str]) -> F:
        """Sets the value of :py:attr:`storageProtocols`."""
        return self._set(storageProtocols=value)

    def getStorageOptions(self) -> dict[str, dict[str, Any]]:
        """Gets the value of storageOptions or its default value."""
        return self.getOrDefault(self.storageOptions)

    def setStorageOptions(self: F, value: dict[str, dict[str, Any]]) -> F:
        """Sets the value of :py:attr:`storageOptions`."""
        return self._set(storageOptions=value)

    def getMaxRequestsPerSecondPerHost(self) -> float:
        """Gets the value of maxRequestsPerSecondPerHost or its default value."""
        return self.getOrDefault(self.maxRequestsPerSecondPerHost)

    def setMaxRequestsPerSecondPerHost(self: F, value: float) -> F:
        """Sets the value of :py:attr:`maxRequestsPerSecondPerHost`."""
        return self._set(maxRequestsPerSecondPerHost=value)

    def getRespectOptOut(self) -> bool:
        """Gets the value of respectOptOut or its default value."""
        return self.getOrDefault(self.respectOptOut)

    def setRespectOptOut(self: F, value: bool) -> F:
        """Sets the value of :py:attr:`respectOptOut`."""
        return self._set(respectOptOut=value)

    def _fetch_options(self) -> FetchOptions:
        """The plain-Python description of this stage's fetching limits (``env:`` values unresolved)."""
        return FetchOptions(
            concurrency=self.getConcurrency(), timeout=self.getTimeout(),
            connect_timeout=self.getConnectTimeout(), max_bytes=self.getMaxBytes(),
            allow_local_files=self.getAllowLocalFiles(),
            max_connections_per_host=self.getMaxConnectionsPerHost(),
            max_retries=self.getMaxRetries(), max_retry_wait=self.getMaxRetryWait(),
            max_redirects=self.getMaxRedirects(), headers=self.getHeaders(),
            block_private_networks=self.getBlockPrivateNetworks(),
            allowed_hosts=self.getAllowedHosts(), storage_protocols=self.getStorageProtocols(),
            storage_options=self.getStorageOptions(),
            max_requests_per_second_per_host=self.getMaxRequestsPerSecondPerHost(),
            respect_opt_out=self.getRespectOptOut(),
        )
