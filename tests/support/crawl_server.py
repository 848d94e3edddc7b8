"""A loopback HTTP server that records every request, for the polite-fetching and secret-leak tests.

Every request's arrival time (``time.monotonic()``), path and headers are kept
(:attr:`CrawlServer.requests`), so a test can measure the request rate a
client keeps and see which headers it sent.

Routes (``GET``):

==================================  ================================================================
``/image.png``                      a small PNG
``/validated``                      the PNG with ``ETag: "v1"`` and a fixed ``Last-Modified``;
                                    ``304 Not Modified`` when ``If-None-Match`` names ``"v1"`` (or
                                    ``*``), or, without ``If-None-Match``, when ``If-Modified-Since``
                                    is not earlier than ``Last-Modified``; ``?tag=V`` adds
                                    ``X-Robots-Tag: V`` to either answer
``/robots?tag=V``                   the PNG with ``X-Robots-Tag: V`` (the parameter may repeat: one
                                    header per value)
``/echo-status/<code>``             that status; the body and an ``X-Echo`` header repeat the request
                                    headers (a server that leaks what it was sent)
``/redirect-to?url=U``              302 to ``U``
==================================  ================================================================
"""

from __future__ import annotations

import email.utils
import http.server
import json
import threading
import time
from typing import NamedTuple
from urllib.parse import parse_qs, urlsplit

from fault_server import PNG

#: The ``Last-Modified`` of ``/validated``.
LAST_MODIFIED = "Wed, 21 Oct 2015 07:28:00 GMT"
#: The ``ETag`` of ``/validated``.
ETAG = '"v1"'


class Request(NamedTuple):
    at: float
    path: str
    headers: dict[str, str]


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server: _Server

    def log_message(self, format: str, *args: object) -> None:
        pass

    def _send(self, status: int, body: bytes, headers: list[tuple[str, str]] | None = None) -> None:
        self.send_response(status)
        for name, value in headers or []:
            self.send_header(name, value)
        if status != 304:
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if status != 304:
            self.wfile.write(body)

    def do_GET(self) -> None:
        parts = urlsplit(self.path)
        query = parse_qs(parts.query)
        headers = dict(self.headers.items())
        self.server.record(Request(time.monotonic(), parts.path, headers))
        segments = [s for s in parts.path.split("/") if s]
        if parts.path == "/image.png":
            self._send(200, PNG, [("Content-Type", "image/png")])
        elif parts.path == "/validated":
            validators = [("ETag", ETAG), ("Last-Modified", LAST_MODIFIED)]
            validators += [("X-Robots-Tag", v) for v in query.get("tag", [])]
            if _not_modified(self.headers.get("If-None-Match"), self.headers.get("If-Modified-Since")):
                self._send(304, b"", validators)
            else:
                self._send(200, PNG, [("Content-Type", "image/png"), *validators])
        elif parts.path == "/robots":
            self._send(200, PNG, [("Content-Type", "image/png")] + [("X-Robots-Tag", v) for v in query.get("tag", [])])
        elif segments[:1] == ["echo-status"]:
            echoed = json.dumps(headers)
            self._send(int(segments[1]), echoed.encode(), [("Content-Type", "application/json"),
                                                           ("X-Echo", echoed.replace("\n", " "))])
        elif parts.path == "/redirect-to":
            self._send(302, b"", [("Location", query["url"][0])])
        else:
            self._send(404, b"no such route", [("Content-Type", "text/plain")])


def _not_modified(if_none_match: str | None, if_modified_since: str | None) -> bool:
    """RFC 9110 13.2.2: If-None-Match decides when present, else If-Modified-Since."""
    if if_none_match is not None:
        tags = [tag.strip() for tag in if_none_match.split(",")]
        return "*" in tags or ETAG in tags or f"W/{ETAG}" in tags
    if if_modified_since is not None:
        try:
            since = email.utils.parsedate_to_datetime(if_modified_since)
        except (TypeError, ValueError):
            return False
        return since >= email.utils.parsedate_to_datetime(LAST_MODIFIED)
    return False


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.lock = threading.Lock()
        self.requests: list[Request] = []

    def record(self, request: Request) -> None:
        with self.lock:
            self.requests.append(request)


class CrawlServer:
    """Runs the routes above on ``127.0.0.1`` on a free port; use as a context manager."""

    def __init__(self) -> None:
        self._server = _Server()
        self.port = self._server.server_address[1]
        self.base = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)

    def url(self, path: str) -> str:
        return self.base + path

    @property
    def requests(self) -> list[Request]:
        """Every request received so far, in arrival order."""
        with self._server.lock:
            return list(self._server.requests)

    def requests_to(self, path: str) -> list[Request]:
        return [r for r in self.requests if r.path == path]

    def __enter__(self) -> CrawlServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
