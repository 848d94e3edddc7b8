"""Deadlines: running blocking calls that have none of their own, and cutting HTTP exchanges that overrun.

A thread blocked in a system call (a read on a hung network mount, a DNS query,
a storage client waiting on its socket) cannot be interrupted from Python, so
such calls run on a thread of their own that the caller stops waiting for at
its deadline (:class:`BlockingCalls`). HTTP exchanges need no extra thread: the
:class:`Watchdog` shuts their socket at the deadline, which ends any read.
"""

from __future__ import annotations

import heapq
import itertools
import os
import socket
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from .http import _GuardedConnection

T = TypeVar("T")


#: Blocking calls abandoned at their deadline that may still be running in one
#: process before new ones are refused (see :class:`BlockingCalls`).
MAX_ABANDONED_CALLS = 32


class CallTimeout(TimeoutError):
    """A :meth:`BlockingCalls.run` call was not done by its deadline, or not started (too many abandoned)."""


class _Call:
    """One blocking call handed to a :class:`BlockingCalls` thread, and its outcome."""

    __slots__ = ("fn", "done", "result", "error", "abandoned")

    def __init__(self, fn: Callable[[], Any]) -> None:
        self.fn = fn
        self.done = threading.Event()
        self.result: Any = None
        self.error: BaseException | None = None
        self.abandoned = False


class _Runner:
    """A daemon thread that runs one call after another; it ends after ``idle_seconds`` without work."""

    __slots__ = ("call", "wake")

    def __init__(self, call: _Call) -> None:
        self.call: _Call | None = call
        self.wake = threading.Event()


class BlockingCalls:
    """Runs calls that have no deadline of their own (file reads, storage back-ends, DNS) under one.

    Each call runs on a reusable daemon thread while the caller waits at most
    until its deadline. A call still running then is *abandoned*: the caller
    gets :class:`CallTimeout` and the thread finishes (or stays blocked,
    e.g. on a hung network mount) in the background. At most
    ``max_abandoned`` abandoned calls may be outstanding: past that, new calls
    fail at once instead of tying up yet another thread, until some of the
    abandoned ones return. Daemon threads never hold up the interpreter's exit.

    Examples
    --------
    >>> calls = BlockingCalls(max_abandoned=2)
    >>> calls.run(lambda: 6 * 7, time.monotonic() + 1.0, "answer")
    42
    >>> calls.run(lambda: time.sleep(1), time.monotonic() + 0.05, "nap")
    Traceback (most recent call last):
    ...
    sparkimg_ml.fetch.deadline.CallTimeout: nap not complete by the deadline
    """

    def __init__(self, max_abandoned: int = MAX_ABANDONED_CALLS, idle_seconds: float = 30.0) -> None:
        self.max_abandoned = max_abandoned
        self.idle_seconds = idle_seconds
        self._lock = threading.Lock()
        self._idle: list[_Runner] = []
        self._abandoned = 0

    @property
    def abandoned(self) -> int:
        """Abandoned calls still running."""
        return self._abandoned

    def forget_threads(self) -> None:
        """Start afresh in a forked child: the parent's threads, idle or blocked, do not exist there."""
        self._lock = threading.Lock()
        self._idle = []
        self._abandoned = 0

    def run(self, fn: Callable[[], T], deadline: float, what: str) -> T:
        """``fn()``, or :class:`CallTimeout` naming ``what`` if it is not done by ``deadline``.

        Exceptions raised by ``fn`` are raised here.
        """
        if deadline <= time.monotonic():  # nothing to wait for: do not leave a thread behind
            raise CallTimeout(f"{what} not started: the deadline has passed")
        call = _Call(fn)
        with self._lock:
            if self._abandoned >= self.max_abandoned:
                raise CallTimeout(
                    f"{what} not started: {self._abandoned} earlier reads are still blocked past their "
                    "deadline (an unresponsive file system or storage back-end?)")
            runner = self._idle.pop() if self._idle else None
            if runner is not None:
                runner.call = call
                runner.wake.set()
        if runner is None:
            runner = _Runner(call)
            threading.Thread(target=self._serve, args=(runner,), name="sparkimg_ml-blocking", daemon=True).start()
        if not call.done.wait(min(max(deadline - time.monotonic(), 0.0), threading.TIMEOUT_MAX)):
            with self._lock:
                if not call.done.is_set():
                    call.abandoned = True
                    self._abandoned += 1
            if call.abandoned:
                raise CallTimeout(f"{what} not complete by the deadline")
        if call.error is not None:
            raise call.error
        return call.result

    def _serve(self, runner: _Runner) -> None:
        while True:
            call = runner.call
            assert call is not None
            try:
                call.result = call.fn()
            except BaseException as exc:  # noqa: BLE001 - handed to the waiting caller, which re-raises it
                call.error = exc
            with self._lock:
                call.done.set()
                if call.abandoned:
                    self._abandoned -= 1
                runner.call = None
                runner.wake.clear()
                self._idle.append(runner)
            if not runner.wake.wait(self.idle_seconds):
                with self._lock:
                    if runner.call is None:  # not handed a call meanwhile
                        self._idle.remove(runner)
                        return


#: The process's blocking-call threads: abandoned calls are a resource of the
#: process, so every fetcher shares one cap.
BLOCKING_CALLS = BlockingCalls()
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=BLOCKING_CALLS.forget_threads)


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
            elif self._heap[0][1] == token:
                # The watchdog sleeps until the earliest deadline; wake it only when that changed
                # (deadlines mostly grow, so most requests cost it no wake-up).
                self._cond.notify()
        return token

    def unwatch(self, token: int) -> None:
        with self._cond:
            conn = self._active.pop(token, None)
            if conn is not None and conn.watch_token == token:
                conn.watch_sock = None  # the exchange is over: hold no reference to its socket
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
                # ``watch_sock``, not ``conn.sock``: http.client clears the latter when it hands
                # the socket to a response that will close the connection.
                sock = conn.watch_sock
                if conn.watch_token == token and sock is not None:
                    try:
                        # socket.socket.shutdown, not SSLSocket.shutdown: the reading
                        # thread still owns the TLS object; only the descriptor is cut.
                        socket.socket.shutdown(sock, socket.SHUT_RDWR)
                    except OSError:
                        pass  # already closed by its owner
