"""Loopback HTTP file server that waits a fixed time before answering each request.

It stands in for a remote image host: HTTP/1.1 with keep-alive, one thread per
connection (many concurrent clients), a listen backlog deep enough for bursts,
and Nagle's algorithm off so a header write followed by a body write is not held
back by delayed ACKs (which would add ~40 ms to keep-alive requests by itself).
It binds 127.0.0.1 only.

Run it in its own process (``python -m benchmarks.server --root DIR
--latency-ms 30`` prints the port) so that its CPU time and GIL stay out of the
measured process tree; :func:`serve_in_subprocess` does that.
"""

from __future__ import annotations

import argparse
import contextlib
import http.server
import mimetypes
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Self
from urllib.parse import unquote, urlsplit


class LatencyHandler(http.server.BaseHTTPRequestHandler):
    """Serves files under the server's ``root``; sleeps ``latency_s`` before every answer."""

    protocol_version = "HTTP/1.1"  # keep-alive
    disable_nagle_algorithm = True
    server: LatencyServer

    def do_GET(self) -> None:
        time.sleep(self.server.latency_s)
        relative = unquote(urlsplit(self.path).path).lstrip("/")
        target = (self.server.root / relative).resolve()
        if self.server.root not in target.parents or not target.is_file():
            self.send_error(404, "Not Found")
            return
        data = target.read_bytes()
        self.send_response(200)
        self.send_header("Content-Type", mimetypes.guess_type(target.name)[0] or "application/octet-stream")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: object) -> None:
        pass  # one line per request would dominate the benchmark's output


class LatencyServer(http.server.ThreadingHTTPServer):
    """``ThreadingHTTPServer`` over ``root`` on 127.0.0.1 with a per-request delay.

    Examples
    --------
    >>> import tempfile, urllib.request
    >>> root = Path(tempfile.mkdtemp()); _ = (root / "a.txt").write_bytes(b"hi")
    >>> with LatencyServer(root, latency_s=0.01) as server:
    ...     urllib.request.urlopen(server.base_url + "/a.txt").read()
    b'hi'
    """

    daemon_threads = True
    request_queue_size = 1024  # the default backlog of 5 drops connection bursts

    def __init__(self, root: Path, latency_s: float = 0.0, port: int = 0) -> None:
        self.root = Path(root).resolve()
        self.latency_s = float(latency_s)
        super().__init__(("127.0.0.1", port), LatencyHandler)
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def __enter__(self) -> Self:
        self._thread = threading.Thread(target=self.serve_forever, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()
        self.server_close()


@contextlib.contextmanager
def serve_in_subprocess(root: Path, latency_ms: float) -> Iterator[tuple[str, int]]:
    """Run a :class:`LatencyServer` in a child process; yields ``(base_url, pid)``."""
    process = subprocess.Popen(
        [sys.executable, "-m", "benchmarks.server", "--root", str(root), "--latency-ms", str(latency_ms)],
        stdout=subprocess.PIPE, text=True, cwd=Path(__file__).resolve().parent.parent,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline().strip()
        if not line.isdigit():
            raise RuntimeError(f"benchmark HTTP server did not start (said {line!r})")
        yield f"http://127.0.0.1:{line}", process.pid
    finally:
        process.terminate()
        process.wait(timeout=10)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", required=True, type=Path, help="directory to serve")
    parser.add_argument("--latency-ms", type=float, default=0.0, help="delay before each answer")
    parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (0: any free port)")
    args = parser.parse_args(argv)
    server = LatencyServer(args.root, args.latency_ms / 1000.0, args.port)
    print(server.server_address[1], flush=True)
    try:
        server.serve_forever()
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
