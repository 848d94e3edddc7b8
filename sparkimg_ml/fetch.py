"""Source -> bytes: http(s), local paths and ``file://`` URIs, with no Spark import."""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

import requests

from .errors import SourceError


@dataclass(frozen=True)
class FetchOptions:
    """Network and file-system limits for reading image sources."""

    timeout: float = 30.0
    max_bytes: int = 50 * 1024 * 1024
    allow_local_files: bool = True


class Fetcher:
    """Reads sources to bytes; thread-safe, one pooled HTTP session per instance.

    Examples
    --------
    >>> with Fetcher(FetchOptions()) as fetcher:
    ...     fetcher.fetch("/no/such/file.png")
    Traceback (most recent call last):
    ...
    sparkimg_ml.errors.SourceError: not_found: /no/such/file.png
    """

    def __init__(self, options: FetchOptions) -> None:
        self.options = options
        self._local = threading.local()

    def _session(self) -> requests.Session:
        session = getattr(self._local, "session", None)
        if session is None:
            session = self._local.session = requests.Session()
        return session

    def fetch(self, source: str) -> bytes:
        """Return the bytes behind ``source`` or raise :class:`SourceError`."""
        if not source or not source.strip():
            raise SourceError("missing", "empty source")
        scheme = urlsplit(source).scheme.lower()
        if scheme in ("http", "https"):
            return self._fetch_http(source)
        if scheme == "file":
            return self._read_local(unquote(urlsplit(source).path))
        if scheme == "" or len(scheme) == 1:  # plain path (or a Windows drive letter)
            return self._read_local(source)
        raise SourceError("unsupported_scheme", f"{scheme}://")

    def _fetch_http(self, url: str) -> bytes:
        try:
            response = self._session().get(url, timeout=self.options.timeout)
        except requests.Timeout:
            raise SourceError("timeout", f"no answer within {self.options.timeout:g}s") from None
        except requests.RequestException as exc:
            raise SourceError("connection", type(exc).__name__) from None
        if response.status_code >= 400:
            raise SourceError(f"http_{response.status_code}", response.reason or "")
        return response.content

    def _read_local(self, path: str) -> bytes:
        if not self.options.allow_local_files:
            raise SourceError("local_files_disabled", "set allowLocalFiles=True to read local paths")
        try:
            with open(path, "rb") as handle:
                return handle.read(self.options.max_bytes + 1)
        except FileNotFoundError:
            raise SourceError("not_found", path) from None
        except IsADirectoryError:
            raise SourceError("not_a_file", path) from None
        except OSError as exc:
            raise SourceError("not_found", f"{path} ({os.strerror(exc.errno or 0)})") from None

    def close(self) -> None:
        session = getattr(self._local, "session", None)
        if session is not None:
            session.close()

    def __enter__(self) -> "Fetcher":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
