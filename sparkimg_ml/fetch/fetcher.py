"""The :class:`Fetcher`: one entry point that sends each source to the reader of its kind."""

from __future__ import annotations

import os
import time
from urllib.parse import unquote, urlsplit

from ..errors import SourceError
from .data_uri import read_data_uri
from .deadline import BLOCKING_CALLS, CallTimeout
from .http import HttpClient
from .local import read_local
from .options import FetchOptions
from .polite import Fetched, Validators
from .secrets import resolve_env, resolve_options
from .storage import StorageReader


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
        headers = {name: resolve_env(value, f"header {name}") for name, value in self.options.headers.items()}
        storage_options = {
            protocol: resolve_options(values, f"storage option {protocol}")
            for protocol, values in self.options.storage_options.items()
        }
        self._http = HttpClient(self.options, headers)
        self._storage = StorageReader(self.options.max_bytes, self.options.timeout, storage_options)

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
            return read_data_uri(source, self.options.max_bytes)
        try:
            parts = urlsplit(source)
        except ValueError as exc:
            raise SourceError("invalid_source", str(exc)) from None
        scheme = parts.scheme.lower()
        if scheme in ("http", "https"):
            return self._http.fetch(source, deadline)
        if scheme == "file":
            if parts.netloc not in ("", "localhost"):
                raise SourceError("unsupported_scheme", "file:// URIs on another host are not read")
            return self._read_local(unquote(parts.path), deadline)
        if scheme == "" or (len(scheme) == 1 and os.name == "nt"):  # a path, or a drive letter
            return self._read_local(source, deadline)
        if scheme in self.options.storage_protocols:
            return self._storage.read(source, scheme, deadline)
        raise SourceError(
            "unsupported_scheme",
            f"{scheme}: is not read; accepted: http, https, file, data, local paths"
            + (f", {', '.join(self.options.storage_protocols)} (storageProtocols)"
               if self.options.storage_protocols else ""),
        )

    def fetch_with_validators(self, source: str, previous: Validators | None = None) -> Fetched:
        """The bytes behind ``source`` and the validators its server sent; a conditional re-fetch with ``previous``.

        For ``http(s)://`` sources, ``previous.etag`` is sent as ``If-None-Match``
        and ``previous.last_modified`` as ``If-Modified-Since`` (on every redirect
        hop); a server answering ``304 Not Modified`` makes this raise
        ``SourceError("not_modified")``, so nothing is downloaded again. Other
        sources are read as by :meth:`fetch`, ``previous`` is not consulted and the
        validators returned are empty.

        Parameters
        ----------
        source : str
            As for :meth:`fetch`.
        previous : Validators, optional
            The ``ETag`` / ``Last-Modified`` returned with an earlier copy.

        Returns
        -------
        Fetched
            ``(body, validators)``: keep ``validators`` to re-fetch conditionally next time.

        Raises
        ------
        ValueError
            When a validator holds control characters (it could not be sent as a header).

        Examples
        --------
        >>> with Fetcher() as fetcher:
        ...     fetcher.fetch_with_validators("data:text/plain;base64,aGVsbG8=", Validators('"v1"'))
        Fetched(body=b'hello', validators=Validators(etag=None, last_modified=None))
        """
        if previous is not None:
            previous.request_headers()  # a bad validator is the caller's mistake, whatever the source
        text = source.strip() if source else ""
        try:
            scheme = urlsplit(text).scheme.lower()
        except ValueError:
            scheme = ""
        if scheme in ("http", "https"):
            return self._http.fetch_validated(text, time.monotonic() + self.options.timeout, previous)
        return Fetched(self.fetch(source), Validators())

    def _read_local(self, path: str, deadline: float) -> bytes:
        if not self.options.allow_local_files:
            raise SourceError("local_files_disabled", "set allowLocalFiles=True to read local paths")
        # On a thread of its own: a read from a hung network mount blocks in the kernel.
        try:
            return BLOCKING_CALLS.run(lambda: read_local(path, self.options.max_bytes), deadline, "local read")
        except CallTimeout as exc:
            raise SourceError("timeout", f"{path}: {exc} (timeout {self.options.timeout:g}s)") from None

    def close(self) -> None:
        """Close pooled connections and stop the watchdog thread."""
        self._http.close()

    def __enter__(self) -> Fetcher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
