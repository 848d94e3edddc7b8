"""A loopback HTTP server with one route per network fault, for the fetching tests.

Every route is bounded in time and size on the server side too, so a client
that misbehaves cannot keep a server thread busy for long.

Routes (``GET``):

==============================  =====================================================
``/image.png``                  a small PNG (``Content-Type: image/png``)
``/status/<code>``              that status with a short body
``/retry-after/<code>/<secs>``  that status with ``Retry-After: <secs>``
``/flaky/<n>/<key>``            503 for the first ``n`` requests of ``key``, then the PNG
``/redirect/<n>``               a chain of ``n`` redirects ending at the PNG
``/loop/a``, ``/loop/b``        redirect to each other
``/redirect-to?url=U``          302 to ``U`` (any scheme or host)
``/slow?delay=S&group=G``       waits ``S`` seconds before answering with the PNG; the server
                                records the peak number of concurrent requests of group ``G``
``/noise/<seed>``               a PNG of ``size`` x ``size`` (default 16) noise seeded by ``seed``,
                                after ``delay`` seconds (default 0), plus ``first-delay`` seconds on
                                the first request of that exact URL (path and query), which
                                :meth:`FaultServer.hits` counts as ``noise:<path?query>``
``/drip?seconds=S``             announces ``S`` bytes and sends one per second
``/drip-headers``               sends its status line and headers one byte per second
``/reset``                      announces 100 kB, sends 1 kB, then resets the connection
``/short``                      announces 100 kB, sends 1 kB, then closes cleanly
``/endless``                    a body with no length that never ends (capped at 60 s)
``/gzip-bomb?size=N``           ``Content-Encoding: gzip`` expanding to ``N`` zero bytes (1 GiB),
                                compressed on the fly, never held in memory
``/gzip-image``                 the PNG, gzip-encoded
``/wrong-type/image``           the PNG labelled ``text/html``
``/wrong-type/text``            text labelled ``image/png``
``/chunked``                    the PNG in several ``Transfer-Encoding: chunked`` chunks
``/echo-headers``               the request headers as a JSON object
``/set-cookie``                 the PNG with a ``Set-Cookie`` header
``/drip-body?form=F&rate=R``    a valid PNG (``size`` pixels square, default 8) sent at ``R`` bytes per
                                second in body form ``F``: ``length`` (Content-Length), ``chunked``,
                                ``gzip`` (gzip-encoded, Content-Length), ``deflate`` (deflate-encoded,
                                chunked), ``close`` (no length, ends at close), ``length-close``
                                (Content-Length and ``Connection: close``), ``continue`` (a
                                ``100 Continue`` first, then ``length``), ``early-close`` (announces
                                1000 bytes more than it sends, then closes); ``fail=KEY`` answers
                                the first request of ``KEY`` with 503
==============================  =====================================================
"""

from __future__ import annotations

import collections
import contextlib
import functools
import gzip
import http.server
import io
import json
import socket
import ssl
import struct
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from urllib.parse import parse_qs, urlsplit

import numpy as np
from PIL import Image

_SERVER_LIMIT_SECONDS = 60.0


def make_png(size: int = 8, color: tuple = (200, 30, 60)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (size, size), color).save(buffer, "PNG")
    return buffer.getvalue()


PNG = make_png()


@functools.cache
def drip_image(size: int) -> bytes:
    """A PNG of ``size`` x ``size`` seeded noise (it hardly compresses: its length grows with ``size``)."""
    pixels = np.random.default_rng(size).integers(0, 256, (size, size, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "PNG")
    return buffer.getvalue()


@functools.cache
def noise_image(seed: int, size: int = 16) -> bytes:
    """A PNG of ``size`` x ``size`` noise from ``seed``: a different image per seed."""
    pixels = np.random.default_rng([seed, size]).integers(0, 256, (size, size, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "PNG")
    return buffer.getvalue()


class _FaultHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, chunked transfer
    disable_nagle_algorithm = True  # headers and body go out as separate writes
    server: _Server

    def log_message(self, format: str, *args: object) -> None:  # keep test output clean
        pass

    def handle(self) -> None:
        try:
            super().handle()
        except (TimeoutError, ConnectionError, ssl.SSLError):
            pass  # the client gave up (deadline, size cap): expected for these routes

    # -- helpers ------------------------------------------------------------------
    def _send(self, status: int, body: bytes, content_type: str = "image/png",
              headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def _redirect(self, location: str, status: int = 302) -> None:
        self._send(status, b"", "text/plain", {"Location": location})

    def _stream_until(self, produce: Callable[[], bytes], content_type: str,
                      headers: dict[str, str] | None = None) -> None:
        """A close-delimited body from ``produce`` until it returns b"" or the time cap."""
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Connection", "close")
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.close_connection = True
        stop = time.monotonic() + _SERVER_LIMIT_SECONDS
        while time.monotonic() < stop:
            data = produce()
            if not data:
                break
            self.wfile.write(data)

    # -- routes ---------------------------------------------------------------------
    def do_GET(self) -> None:
        parts = urlsplit(self.path)
        path = parts.path
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        segments = [s for s in path.split("/") if s]
        self.server.count(path)

        if path == "/image.png":
            self._send(200, PNG)
        elif segments[:1] == ["status"]:
            code = int(segments[1])
            self._send(code, f"status {code}".encode(), "text/plain")
        elif segments[:1] == ["retry-after"]:
            code, seconds = int(segments[1]), segments[2]
            self._send(code, b"try later", "text/plain", {"Retry-After": seconds})
        elif segments[:1] == ["flaky"]:
            failures, key = int(segments[1]), segments[2]
            if self.server.count(f"flaky:{key}") <= failures:
                self._send(503, b"busy", "text/plain")
            else:
                self._send(200, PNG)
        elif segments[:1] == ["redirect"]:
            left = int(segments[1])
            self._redirect(f"/redirect/{left - 1}" if left > 1 else "/image.png")
        elif path == "/loop/a":
            self._redirect("/loop/b")
        elif path == "/loop/b":
            self._redirect("/loop/a")
        elif path == "/redirect-to":
            self._redirect(query["url"], int(query.get("code", "302")))
        elif path == "/slow":
            with self.server.in_flight(query.get("group", "")):
                time.sleep(min(float(query.get("delay", "3")), _SERVER_LIMIT_SECONDS))
            self._send(200, PNG)
        elif segments[:1] == ["noise"]:
            first = self.server.count(f"noise:{self.path}") == 1
            delay = float(query.get("delay", "0")) + (float(query.get("first-delay", "0")) if first else 0.0)
            time.sleep(min(delay, _SERVER_LIMIT_SECONDS))
            self._send(200, noise_image(int(segments[1]), int(query.get("size", "16"))))
        elif path == "/drip":
            seconds = min(int(query.get("seconds", "10")), int(_SERVER_LIMIT_SECONDS))
            self.send_response(200)
            self.send_header("Content-Type", "image/png")
            self.send_header("Content-Length", str(seconds))
            self.end_headers()
            for _ in range(seconds):
                self.wfile.write(b"x")
                self.wfile.flush()
                time.sleep(1.0)
        elif path == "/drip-headers":
            head = b"HTTP/1.1 200 OK\r\nContent-Type: image/png\r\nX-Padding: " + b"p" * 200
            for byte in head[: int(_SERVER_LIMIT_SECONDS)]:
                self.wfile.write(bytes([byte]))
                self.wfile.flush()
                time.sleep(1.0)
            self.close_connection = True
        elif path in ("/reset", "/short"):
            self.send_response(200)
            self.send_header("Content-Type", "image/png")
            self.send_header("Content-Length", "100000")
            self.end_headers()
            self.wfile.write(PNG[:1000].ljust(1000, b"\0"))
            self.wfile.flush()
            self.close_connection = True
            if path == "/reset":
                # SO_LINGER with a zero timeout turns close() into a TCP RST; the socket is
                # closed here, before socketserver's own shutdown() could send a FIN first.
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                self.rfile.close()
                self.connection.close()
        elif path == "/endless":
            block = b"\0" * 65536
            self._stream_until(lambda: block, "image/png")
        elif path == "/gzip-bomb":
            self._gzip_bomb(int(query.get("size", str(1 << 30))))
        elif path == "/gzip-image":
            self._send(200, gzip.compress(PNG), "image/png", {"Content-Encoding": "gzip"})
        elif path == "/wrong-type/image":
            self._send(200, PNG, "text/html; charset=utf-8")
        elif path == "/wrong-type/text":
            self._send(200, b"<html>this is not an image</html>", "image/png")
        elif path == "/chunked":
            self.send_response(200)
            self.send_header("Content-Type", "image/png")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for start in range(0, len(PNG), 17):
                piece = PNG[start:start + 17]
                self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
            self.wfile.write(b"0\r\n\r\n")
        elif path == "/echo-headers":
            body = json.dumps({k: v for k, v in self.headers.items()}).encode()
            self._send(200, body, "application/json")
        elif path == "/set-cookie":
            self._send(200, PNG, headers={"Set-Cookie": "session=from-the-server; Path=/"})
        elif path == "/drip-body":
            if "fail" in query and self.server.count(f"fail:{query['fail']}") == 1:
                self._send(503, b"busy", "text/plain")
            else:
                self._drip_body(query.get("form", "length"), float(query.get("rate", "1")),
                                drip_image(int(query.get("size", "8"))))
        else:
            self._send(404, b"no such route", "text/plain")

    def _drip_body(self, form: str, rate: float, image: bytes) -> None:
        """``image`` in body form ``form``, paced at ``rate`` bytes per second (see the route table)."""
        if form == "gzip":
            body = gzip.compress(image)
        elif form == "deflate":
            body = zlib.compress(image)
        else:
            body = image
        chunked = form in ("chunked", "deflate")
        if form == "continue":
            self.wfile.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        self.send_response(200)
        self.send_header("Content-Type", "image/png")
        if form in ("gzip", "deflate"):
            self.send_header("Content-Encoding", form)
        if chunked:
            self.send_header("Transfer-Encoding", "chunked")
        elif form == "close":
            self.send_header("Connection", "close")
        else:
            self.send_header("Content-Length", str(len(body) + (1000 if form == "early-close" else 0)))
            if form == "length-close":
                self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.flush()
        # Slow rates send one byte at a time; fast ones a slice every 50 ms.
        step = 1 if rate < 20 else max(1, int(rate / 20))
        pause = step / rate
        stop = time.monotonic() + _SERVER_LIMIT_SECONDS
        for start in range(0, len(body), step):
            if time.monotonic() > stop:
                break
            piece = body[start:start + step]
            self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece) if chunked else piece)
            self.wfile.flush()
            time.sleep(pause)
        if chunked:
            self.wfile.write(b"0\r\n\r\n")
        if form in ("close", "early-close", "length-close"):
            self.close_connection = True

    def _gzip_bomb(self, size: int) -> None:
        compressor = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)  # gzip framing
        block = bytes(1 << 20)
        left = [size]

        def produce() -> bytes:
            while left[0] > 0:
                step = min(left[0], len(block))
                left[0] -= step
                out = compressor.compress(block[:step])
                if out:
                    return out
            if left[0] == 0:
                left[0] = -1
                return compressor.flush()
            return b""

        self._stream_until(produce, "image/png", {"Content-Encoding": "gzip"})


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # the default listen backlog (5) drops bursts of concurrent connects

    def __init__(self, tls: ssl.SSLContext | None = None) -> None:
        super().__init__(("127.0.0.1", 0), _FaultHandler)
        self.tls = tls
        self.hits: collections.Counter = collections.Counter()
        self._hits_lock = threading.Lock()
        self.connections = 0
        self.busy: collections.Counter = collections.Counter()
        self.peak_busy: collections.Counter = collections.Counter()

    def get_request(self):  # type: ignore[no-untyped-def]
        sock, address = super().get_request()
        with self._hits_lock:
            self.connections += 1
        if self.tls is not None:  # a failed handshake raises OSError, which the server loop ignores
            sock = self.tls.wrap_socket(sock, server_side=True)
        return sock, address

    def count(self, key: str) -> int:
        with self._hits_lock:
            self.hits[key] += 1
            return self.hits[key]

    @contextlib.contextmanager
    def in_flight(self, group: str) -> Iterator[None]:
        """Track how many ``/slow`` requests of ``group`` are being served at once."""
        with self._hits_lock:
            self.busy[group] += 1
            self.peak_busy[group] = max(self.peak_busy[group], self.busy[group])
        try:
            yield
        finally:
            with self._hits_lock:
                self.busy[group] -= 1


class FaultServer:
    """Runs the fault routes on ``127.0.0.1`` on a free port; use as a context manager.

    With ``tls`` (a server-side context holding a certificate) it speaks HTTPS.
    """

    def __init__(self, tls: ssl.SSLContext | None = None) -> None:
        self._server = _Server(tls)
        self.port = self._server.server_address[1]
        self.base = f"{'https' if tls else 'http'}://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)

    def url(self, path: str) -> str:
        return self.base + path

    def hits(self, key: str) -> int:
        """How many requests reached ``key`` (a path, or ``flaky:<key>``)."""
        with self._server._hits_lock:
            return self._server.hits[key]

    @property
    def connections(self) -> int:
        """TCP connections accepted so far."""
        return self._server.connections

    def peak_busy(self, group: str) -> int:
        """Most ``/slow?group=<group>`` requests served at once."""
        with self._server._hits_lock:
            return self._server.peak_busy[group]

    def __enter__(self) -> FaultServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()


@contextlib.contextmanager
def tls_fault_server() -> Iterator[tuple[FaultServer, str]]:
    """An HTTPS fault server whose certificate (for 127.0.0.1 and localhost) a test CA signed, and that CA's
    PEM file (trustme is in the test extra)."""
    import trustme

    authority = trustme.CA()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    authority.issue_cert("127.0.0.1", "localhost").configure_cert(context)
    with FaultServer(tls=context) as running, authority.cert_pem.tempfile() as ca_file:
        yield running, ca_file
