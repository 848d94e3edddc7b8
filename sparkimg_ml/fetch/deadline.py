"""Deadlines: running blocking calls that have none of their own, and cutting HTTP exchanges that overrun."""

from __future__ import annotations

import concurrent.futures
import heapq
import itertools
import socket
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    from .http import _GuardedConnection

T = TypeVar("T")


def run_with_timeout(fn: Callable[[], T], timeout: float) -> T:
    """Run ``fn`` on a daemon thread and wait at most ``timeout`` seconds for it.

    For blocking calls with no deadline of their own (DNS resolution, storage
    back-ends): on time-out the call is abandoned and finishes or fails in the
    background within its back-end's own limits. Raises
    ``concurrent.futures.TimeoutError``; exceptions of ``fn`` are re-raised here.
    """
    future: concurrent.futures.Future = concurrent.futures.Future()

    def run() -> None:
        try:
            result = fn()
        except BaseException as exc:  # noqa: BLE001 - handed to the waiting caller, which re-raises it
            future.set_exception(exc)
        else:
            future.set_result(result)

    threading.Thread(target=run, name="sparkimg_ml-deadline", daemon=True).start()
    return future.result(timeout=max(timeout, 0.0))


class Watchdog:
    """Shuts down the socket of any HTTP exchange that outlives its deadline.

    Socket time-outs bound each read, but a server can answer every read with
    one byte; shutting the socket makes the blocked read return at once.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._heap: list[tuple[float, int]] = []
        self._active: dict[int, _GuardedConnection] = {}
        self._ids = itertools.count(1)
        self._thread: threading.Thread | None = None
        self._closed = False

    def watch(self, deadline: float, conn: _GuardedConnection) -> int:
        with self._cond:
            token = next(self._ids)
            self._active[token] = conn
            conn.watch_token = token
            heapq.heappush(self._heap, (deadline, token))
            if self._thread is None and not self._closed:
                self._thread = threading.Thread(target=self._run, name="sparkimg_ml-watchdog", daemon=True)
                self._thread.start()
            self._cond.notify()
        return token

    def unwatch(self, token: int) -> None:
        with self._cond:
            self._active.pop(token, None)
            if len(self._heap) > 64 + 4 * len(self._active):  # drop finished entries in bulk
                self._heap = [entry for entry in self._heap if entry[1] in self._active]
                heapq.heapify(self._heap)

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify()
        if self._thread is not None:
            self._thread.join()

    def _run(self) -> None:
        with self._cond:
            while not self._closed:
                while self._heap and self._heap[0][1] not in self._active:
                    heapq.heappop(self._heap)
                if not self._heap:
                    self._cond.wait()
                    continue
                deadline, token = self._heap[0]
                delay = deadline - time.monotonic()
                if delay > 0:
                    self._cond.wait(delay)
                    continue
                heapq.heappop(self._heap)
                conn = self._active.pop(token)
                # The connection may already serve another exchange (pooled): leave it then.
                sock = conn.sock
                if conn.watch_token == token and sock is not None:
                    try:
                        # socket.socket.shutdown, not SSLSocket.shutdown: the reading
                        # thread still owns the TLS object; only the descriptor is cut.
                        socket.socket.shutdown(sock, socket.SHUT_RDWR)
                    except OSError:
                        pass  # already closed by its owner

