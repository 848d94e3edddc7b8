"""Crawl etiquette: a per-host request rate, conditional re-fetches, and ``X-Robots-Tag`` opt-outs.

* :class:`HostRateLimit` spaces the requests one fetcher starts to one host
  (``maxRequestsPerSecondPerHost``); a request whose turn would come after its
  row's deadline fails with ``timeout`` at once instead of sleeping.
* :class:`Validators` are the ``ETag`` / ``Last-Modified`` of a copy fetched
  before; given back to :meth:`~sparkimg_ml.fetch.Fetcher.fetch_with_validators`,
  they are sent as ``If-None-Match`` / ``If-Modified-Since`` and an unchanged
  image fails with ``not_modified`` (nothing is downloaded).
* :func:`opt_out_directive` reads the ``X-Robots-Tag`` directives that ask not
  to use an image for AI training (``noai``, ``noimageai``), honoured when
  ``respectOptOut`` is on (reason ``opted_out``).
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterable
from typing import NamedTuple

from ..errors import SourceError

#: ``X-Robots-Tag`` directives that opt an image out of AI use (honoured with ``respectOptOut``).
OPT_OUT_DIRECTIVES = frozenset({"noai", "noimageai"})

#: Directives whose value contains a colon, so that ``name: value`` is not read as ``agent: directives``.
_DIRECTIVES_WITH_VALUES = frozenset({"unavailable_after", "max-snippet", "max-image-preview", "max-video-preview"})
_AGENT = re.compile(r"[A-Za-z0-9_.\-]+")
# Forget hosts whose next turn has passed once this many are remembered.
_PRUNE_AT = 4096


class HostRateLimit:
    """At most ``rate`` request starts per second to each host: a token bucket holding one token per host.

    Thread-safe. Each caller reserves the next free start time of its host, then
    sleeps until it; a start time later than the caller's deadline is not
    reserved and fails with ``SourceError("timeout")`` without sleeping.

    Examples
    --------
    >>> limit = HostRateLimit(4.0)
    >>> start = time.monotonic()
    >>> for _ in range(3):
    ...     limit.wait("images.example.com", start + 5)
    >>> 0.45 < time.monotonic() - start < 2.0  # the 2nd and 3rd request waited 1/4 s each
    True
    >>> limit.wait("images.example.com", time.monotonic() + 0.05)
    Traceback (most recent call last):
    ...
    sparkimg_ml.errors.SourceError: timeout: the next request to images.example.com allowed by maxRequestsPerSecondPerHost=4 starts after the deadline
    """

    def __init__(self, rate: float) -> None:
        if not rate > 0:
            raise ValueError(f"rate must be > 0; got {rate}.")
        self.rate = rate
        self.interval = 1.0 / rate
        self._lock = threading.Lock()
        self._next: dict[str, float] = {}

    def wait(self, host: str, deadline: float) -> None:
        """Return when a request to ``host`` may start; ``SourceError("timeout")`` if not before ``deadline``."""
        with self._lock:
            now = time.monotonic()
            start = max(now, self._next.get(host, now))
            if start >= deadline:
                raise SourceError("timeout", f"the next request to {host} allowed by "
                                             f"maxRequestsPerSecondPerHost={self.rate:g} starts after the deadline")
            if len(self._next) >= _PRUNE_AT:
                self._next = {h: t for h, t in self._next.items() if t > now}
            self._next[host] = start + self.interval
        if start > now:
            time.sleep(start - now)


class Validators(NamedTuple):
    """The ``ETag`` and ``Last-Modified`` a server sent with a copy of a source (either may be None).

    Examples
    --------
    >>> Validators('"abc"', "Wed, 21 Oct 2015 07:28:00 GMT").request_headers()
    {'If-None-Match': '"abc"', 'If-Modified-Since': 'Wed, 21 Oct 2015 07:28:00 GMT'}
    >>> Validators().request_headers()
    {}
    >>> Validators(etag='"a"\\r\\nX-Evil: 1').request_headers()
    Traceback (most recent call last):
    ...
    ValueError: Validators.etag must not contain control characters; got '"a"\\r\\nX-Evil: 1'.
    """

    etag: str | None = None
    last_modified: str | None = None

    def request_headers(self) -> dict[str, str]:
        """The conditional request headers these validators make (``ValueError`` for an unusable value)."""
        headers = {}
        for name, value, header in (("etag", self.etag, "If-None-Match"),
                                    ("last_modified", self.last_modified, "If-Modified-Since")):
            if value is None or value == "":
                continue
            if not isinstance(value, str):
                raise TypeError(f"Validators.{name} must be a string or None; got {type(value).__name__}.")
            if any(ord(c) < 32 or ord(c) == 127 for c in value):
                raise ValueError(f"Validators.{name} must not contain control characters; got {value!r}.")
            headers[header] = value.strip()
        return headers


class Fetched(NamedTuple):
    """A source's bytes and the validators its server sent with them (empty for non-HTTP sources)."""

    body: bytes
    validators: Validators


def agent_token(user_agent: str) -> str:
    """The robots token of a ``User-Agent``: its first product name, lower-cased.

    Examples
    --------
    >>> agent_token("my-crawler/1.0 (+https://example.com/bot)"), agent_token("sparkimg_ml/0.3.0")
    ('my-crawler', 'sparkimg_ml')
    """
    return user_agent.strip().split("/", 1)[0].split(" ", 1)[0].lower()


def opt_out_directive(values: Iterable[str], agent: str) -> str | None:
    """The first opt-out directive of ``X-Robots-Tag`` header ``values`` that applies to ``agent``, or None.

    Each header value is a comma-separated list of directives, optionally prefixed
    by ``<agent>:`` to address one crawler only (as in ``googlebot: noindex``).

    Examples
    --------
    >>> opt_out_directive(["noindex, NoImageAI"], "sparkimg_ml")
    'noimageai'
    >>> opt_out_directive(["otherbot: noai", "unavailable_after: 25 Jun 2010 15:00:00 PST"], "sparkimg_ml") is None
    True
    >>> opt_out_directive(["my-crawler: noai"], "my-crawler")
    'noai'
    """
    for value in values:
        head, colon, rest = value.partition(":")
        target = None
        directives = value
        if colon and _AGENT.fullmatch(head.strip()) and head.strip().lower() not in _DIRECTIVES_WITH_VALUES:
            target, directives = head.strip().lower(), rest
        if target is not None and target != agent:
            continue
        for directive in directives.split(","):
            name = directive.strip().lower()
            if name in OPT_OUT_DIRECTIVES:
                return name
    return None
