"""Storage URLs (``s3://``, ``gs://``, ``abfs://``, ...) read through fsspec, which is imported on first use.

A storage back-end may raise anything (botocore's ``NoCredentialsError``, an
auth library's error, a bug); every exception it raises becomes a per-row
``SourceError``: ``not_found``/``permission_denied``/``not_a_file`` where the
cause is known, else ``storage: <Class>: <message>`` with credentials removed
from the message.
"""

from __future__ import annotations

import threading
from typing import Any

from ..errors import SourceError
from .backends import filesystem_class, missing_dependency
from .deadline import BLOCKING_CALLS, CallTimeout
from .local import file_error
from .secrets import redact_secrets, secret_values


class StorageReader:
    """Reads objects through one cached fsspec file system per protocol; thread-safe.

    ``storage_options`` are the fsspec options per protocol with their ``env:NAME``
    references already resolved.
    """

    def __init__(self, max_bytes: int, timeout: float, storage_options: dict[str, dict[str, Any]]) -> None:
        self.max_bytes = max_bytes
        self.timeout = timeout
        self._storage_options = storage_options
        self._secrets = secret_values(storage_options)
        self._filesystems: dict[str, Any] = {}
        self._lock = threading.Lock()

    def filesystem(self, protocol: str) -> Any:
        with self._lock:
            fs = self._filesystems.get(protocol)
        if fs is not None:
            return fs
        implementation = filesystem_class(protocol)  # missing_dependency when its package is not installed
        try:
            # Options given for an alias (s3 for s3a, gs for gcs, abfs for az) apply too.
            aliases = implementation.protocol
            names = [protocol] + ([aliases] if isinstance(aliases, str) else list(aliases))
            options: dict[str, Any] = next(
                (self._storage_options[n] for n in names if n in self._storage_options), {})
            fs = implementation(**options)  # what fsspec.filesystem(protocol) does, for abfss:// too
        except ImportError as exc:  # a back-end importing more when it starts (e.g. webhdfs: requests)
            raise missing_dependency(protocol, exc) from None
        except Exception as exc:  # noqa: BLE001 - a back-end failing to start fails this row, not the job
            raise self._backend_error(exc) from None
        with self._lock:
            return self._filesystems.setdefault(protocol, fs)

    def read(self, source: str, protocol: str, deadline: float) -> bytes:
        if "::" in source:  # chained URLs could reach local files or other protocols
            raise SourceError("unsupported_scheme", "chained fsspec URLs (::) are not read")
        abandoned = threading.Event()
        try:
            # Creating the file system is bounded too: some back-ends reach the network for credentials.
            return BLOCKING_CALLS.run(lambda: self._read_object(protocol, source, abandoned), deadline,
                                      "storage read")
        except CallTimeout as exc:
            abandoned.set()  # the reading thread stops at its next chunk
            raise SourceError("timeout", f"{exc} (timeout {self.timeout:g}s)") from None

    def _read_object(self, protocol: str, source: str, abandoned: threading.Event) -> bytes:
        fs = self.filesystem(protocol)
        try:
            path = fs._strip_protocol(source)
        except Exception as exc:  # noqa: BLE001
            raise self._backend_error(exc) from None
        limit = self.max_bytes
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
        except SourceError:
            raise
        except OSError as exc:
            raise file_error(path, exc) or self._backend_error(exc) from None
        except ValueError:  # back-ends refuse paths that name no object (s3fs: a bare bucket)
            raise SourceError("invalid_source", f"{path} is not an object path") from None
        except Exception as exc:  # noqa: BLE001 - e.g. NoCredentialsError: this row fails, not the job
            raise self._backend_error(exc) from None

    def _backend_error(self, exc: Exception) -> SourceError:
        """``storage: <Class>: <message>``, credentials removed from the message."""
        message = redact_secrets(str(exc), self._secrets)
        return SourceError("storage", f"{type(exc).__name__}: {message}" if message else type(exc).__name__)
