"""Per-row failure reasons shared by the fetching and image layers.

Every problem with one row's image is raised as :class:`SourceError` carrying a
short, stable ``code`` from :data:`REASON_CODES` and a one-line ``detail``.
``str(error)`` is the reason string written to ``errorCol``, e.g.
``"http_404: Not Found"``.  Details never contain response bodies, header
values or credentials.

This module imports neither pyspark nor pandas.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import NamedTuple
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

#: Reason codes written to ``errorCol`` (the part before ``": "``), with their meaning.
REASON_CODES: dict[str, str] = {
    "missing": "the source is null or empty",
    "http_4xx": "the server answered with a 4xx status (the code names it, e.g. http_404)",
    "http_5xx": "the server answered with a 5xx status after all retries (e.g. http_503)",
    "timeout": "connecting or reading (HTTP, local file, storage) took longer than the configured timeout or "
               "deadline, or too many earlier reads are still blocked past theirs",
    "connection": "the connection failed (refused, reset, DNS failure, body shorter than announced)",
    "too_large": "the body is larger than maxBytes",
    "too_many_redirects": "more redirects than allowed, or a redirect loop",
    "blocked": "the address or host is refused by the network policy",
    "unsupported_scheme": "the source's scheme is not one the featurizer reads",
    "missing_dependency": "the package that reads the source's storage protocol is not installed where the row "
                          "was read; the detail names it and the extra to install (e.g. missing_dependency: "
                          "gs:// needs gcsfs (pip install 'sparkimg_ml[gcs]'))",
    "not_found": "a local or storage path does not exist",
    "not_a_file": "a local path is a directory, FIFO, device or other non-regular file",
    "local_files_disabled": "the source is a local path but local-file reading is turned off",
    "storage": "a storage (fsspec) backend raised an error, as 'storage: <Class>: <message>' with "
               "credentials removed (e.g. storage: NoCredentialsError: Unable to locate credentials)",
    "decode": "the bytes are not an image in an accepted format, or are truncated/corrupt",
    "unsupported_format": "the image format is recognised but not accepted; the detail names it (e.g. TGA, "
                          "PDF, or HEIC without the [heif] extra)",
    "too_many_pixels": "the image has more pixels than maxPixels (decompression-bomb guard)",
    "bad_struct": "a Spark image struct whose fields are inconsistent",
    "invalid_source": "the source is not a well-formed URL or data: URI (no host, bad port, bad base64)",
    "bad_response": "the server's response is malformed (redirect without Location, body not matching "
                    "its Content-Encoding)",
    "permission_denied": "a local or storage path exists but may not be read",
    "io_error": "reading a local file failed with an operating-system error",
    "bad_tensor": "a tensor value does not fit its column's recorded shape or element type (previews of "
                  "tensor columns)",
    "not_modified": "a conditional re-fetch (Fetcher.fetch_with_validators) found the copy named by the previous "
                    "ETag/Last-Modified current (HTTP 304): nothing was downloaded, the earlier result still holds",
    "opted_out": "with respectOptOut, the server marked the image X-Robots-Tag noai or noimageai (the detail "
                 "names the directive): its owner asks that it not be used for AI",
}


class SourceError(Exception):
    """One row's image could not be turned into features.

    Parameters
    ----------
    code : str
        Stable machine-readable reason, e.g. ``"http_404"`` or ``"decode"``.
    detail : str
        Short human-readable explanation (no secrets, no response bodies).

    Examples
    --------
    >>> str(SourceError("http_404", "Not Found"))
    'http_404: Not Found'
    """

    def __init__(self, code: str, detail: str = "") -> None:
        self.code = code
        self.detail = " ".join(str(detail).split())[:300]
        super().__init__(self.reason)

    @property
    def reason(self) -> str:
        """The ``errorCol`` string: ``"code: detail"`` (or just the code)."""
        return f"{self.code}: {self.detail}" if self.detail else self.code

    def __reduce__(self):  # keep code/detail when pickled across processes
        return (SourceError, (self.code, self.detail))


class MissingDependencyError(ImportError):
    """A package the input needs is not installed (``handleInvalid="error"``, raised on the driver).

    Examples
    --------
    >>> issubclass(MissingDependencyError, ImportError)
    True
    """


_SECRET_QUERY_KEY = re.compile(
    r"(sig|signature|token|key|secret|password|passwd|pwd|auth|credential|session|x-amz-|x-goog-)",
    re.IGNORECASE,
)


def redact_source(source: object, max_length: int = 300) -> str:
    """Describe a source for an error message without leaking credentials.

    User-info (``user:password@``) is removed from URLs and the values of
    query parameters that look like secrets (signatures, tokens, keys) are
    replaced by ``***``. Bytes sources are described by their length.

    Examples
    --------
    >>> redact_source("https://u:p@example.com/a.png?X-Amz-Signature=abc&w=3")
    'https://example.com/a.png?X-Amz-Signature=%2A%2A%2A&w=3'
    >>> redact_source(b"\\x89PNG")
    '<4 bytes>'
    """
    if source is None:
        return "<null>"
    if isinstance(source, (bytes, bytearray, memoryview)):
        return f"<{len(source)} bytes>"
    text = str(source)
    if text.startswith("data:"):
        return text[: min(max_length, 40)] + ("..." if len(text) > 40 else "")
    try:
        parts = urlsplit(text)
    except ValueError:
        return text[:max_length]
    netloc = parts.netloc.rsplit("@", 1)[-1]
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        query = urlencode([(k, "***" if _SECRET_QUERY_KEY.search(k) else v) for k, v in pairs])
    if netloc != parts.netloc or query != parts.query:
        text = urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))
    return text if len(text) <= max_length else text[: max_length - 3] + "..."


def missing_column(who: str, role: str, name: object, columns: Sequence[str]) -> ValueError:
    """The error for a column that is not in a DataFrame, listing (up to 20 of) those that are.

    Every stage and helper reports a missing column with this one message.

    Examples
    --------
    >>> str(missing_column("TensorReshaper", "input column", "feats", ["id", "features"]))
    "TensorReshaper: input column 'feats' does not exist. Available columns: id, features."
    """
    shown = ", ".join(columns[:20]) + (" ..." if len(columns) > 20 else "")
    return ValueError(f"{who}: {role} {name!r} does not exist. Available columns: {shown}.")


class RowFailure(NamedTuple):
    """One row's failure as ``handleInvalid="error"`` reports it: which stage, which row, which reason."""

    stage: str
    column: str
    source: str
    #: ``"code: detail"``, as written to ``errorCol`` in ``keep`` mode.
    reason: str

    @property
    def code(self) -> str:
        """The reason code (a key of :data:`REASON_CODES`)."""
        return self.reason.split(":", 1)[0].strip()

    def message(self) -> str:
        """The error message a failing job carries (parsed back by :func:`find_row_failure`)."""
        return (f"{self.stage} could not read the image of row with {self.column}={self.source}: {self.reason}. "
                "Set handleInvalid='keep' (null output, reason in errorCol) or 'skip' (drop the row) to go on "
                "past bad images.")


_ROW_FAILURE = re.compile(
    r"(?P<stage>[A-Za-z]\w*) could not read the image of row with (?P<column>[^=\n]+)=(?P<source>[^\n]*?): "
    r"(?P<reason>[a-z][a-z0-9_]*(?::[^\n]*?)?)\. Set handleInvalid="
)


def find_row_failure(text: str) -> RowFailure | None:
    """The :class:`RowFailure` inside an error's text (e.g. a Spark job failure wrapping it), or None.

    Examples
    --------
    >>> failure = RowFailure("ImageUrlFeaturizer", "url", "http://h/a.png", "http_404: Not Found")
    >>> found = find_row_failure("Job aborted: PythonException: " + failure.message() + " at ...")
    >>> found == failure, found.code
    (True, 'http_404')
    """
    match = _ROW_FAILURE.search(text)
    return RowFailure(**match.groupdict()) if match else None
