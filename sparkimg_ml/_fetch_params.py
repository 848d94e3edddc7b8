"""Params that bound how :class:`ImageUrlFeaturizer` reads its sources."""

from __future__ import annotations

from pyspark.ml.param import Param, Params, TypeConverters

from . import _converters as conv
from .fetch import FetchOptions


class HasFetchParams(Params):
    """Mixin: concurrency, time and size limits, and the :class:`FetchOptions` they define."""

    concurrency: "Param[int]" = Param(
        Params._dummy(), "concurrency",
        "images fetched and decoded at once per Spark task (threads).",
        typeConverter=conv.positive_int("concurrency"),
    )
    timeout: "Param[float]" = Param(
        Params._dummy(), "timeout",
        "seconds allowed for one source, all retries included.",
        typeConverter=conv.positive_float("timeout"),
    )
    maxBytes: "Param[int]" = Param(
        Params._dummy(), "maxBytes",
        "largest accepted encoded image in bytes; larger ones fail with reason too_large.",
        typeConverter=conv.positive_int("maxBytes"),
    )
    allowLocalFiles: "Param[bool]" = Param(
        Params._dummy(), "allowLocalFiles",
        "whether local paths and file:// URIs may be read.",
        typeConverter=TypeConverters.toBoolean,
    )

    def __init__(self) -> None:
        super().__init__()
        defaults = FetchOptions()
        self._setDefault(
            concurrency=16, timeout=defaults.timeout, maxBytes=defaults.max_bytes,
            allowLocalFiles=defaults.allow_local_files,
        )

    def getConcurrency(self) -> int:
        """Gets the value of concurrency or its default value."""
        return self.getOrDefault(self.concurrency)

    def setConcurrency(self, value: int) -> "HasFetchParams":
        """Sets the value of :py:attr:`concurrency`."""
        return self._set(concurrency=value)

    def getTimeout(self) -> float:
        """Gets the value of timeout or its default value."""
        return self.getOrDefault(self.timeout)

    def setTimeout(self, value: float) -> "HasFetchParams":
        """Sets the value of :py:attr:`timeout`."""
        return self._set(timeout=value)

    def getMaxBytes(self) -> int:
        """Gets the value of maxBytes or its default value."""
        return self.getOrDefault(self.maxBytes)

    def setMaxBytes(self, value: int) -> "HasFetchParams":
        """Sets the value of :py:attr:`maxBytes`."""
        return self._set(maxBytes=value)

    def getAllowLocalFiles(self) -> bool:
        """Gets the value of allowLocalFiles or its default value."""
        return self.getOrDefault(self.allowLocalFiles)

    def setAllowLocalFiles(self, value: bool) -> "HasFetchParams":
        """Sets the value of :py:attr:`allowLocalFiles`."""
        return self._set(allowLocalFiles=value)

    def _fetch_options(self) -> FetchOptions:
        """The plain-Python description of this stage's fetching limits."""
        return FetchOptions(
            timeout=self.getTimeout(), max_bytes=self.getMaxBytes(),
            allow_local_files=self.getAllowLocalFiles(),
        )
