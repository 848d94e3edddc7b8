"""Wall time, CPU time of the whole process tree, and peak RSS of Spark's Python workers.

CPU time is what stays meaningful on a shared, noisy machine: other people's
processes slow our wall clock down but do not add to our CPU seconds. The tree
is this (driver) Python process and all its descendants: the Spark JVM, the
Python worker daemons and their forked workers. Processes named in ``exclude``
(the loopback HTTP servers, which stand in for remote hosts) and their
descendants are left out.

Each process's own ``user + system`` time is followed through the measurement
(read every ``interval_s``, the process table re-scanned every
:data:`RESCAN_S`), and the result is the sum of what every process spent
between start and stop, using the last reading of processes that ended on the
way. The ``children_*`` times of the parents are *not* used: Spark's worker
daemon ignores ``SIGCHLD``, so the kernel reaps its workers without adding
their time to anyone, and Spark kills workers that sit idle for a minute -
a before/after difference would silently lose them. A process that starts and
ends between two scans is missed; none of Spark's do.

Peak RSS is read from one *pool* of Python workers at a time. Spark starts one
worker daemon per distinct set of worker environment variables, so the
benchmark gives each (scenario, contender) its own value of :data:`POOL_ENV`:
every contender then runs in workers of its own, and memory that an earlier
contender's (reused, idle) workers still hold is not charged to the next one.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Self

import psutil

#: Environment variable whose value names the Python worker pool of a Spark job.
POOL_ENV = "SPARKIMG_BENCH_POOL"

#: Seconds between scans of the process table for new processes (~3 ms each).
RESCAN_S = 0.25

#: CPU is reported per role: this Python process, the JVM, and the JVM's Python workers.
ROLES = ("driver", "jvm", "workers")


class ProcessTree:
    """The benchmark's processes, split by role; ``jvm_pid`` is the Spark driver JVM (or None)."""

    def __init__(self, jvm_pid: int | None = None, exclude: Iterable[int] = ()) -> None:
        self.root = psutil.Process(os.getpid())
        self.jvm_pid = jvm_pid
        self.exclude: set[int] = set(exclude)
        #: Worker pool whose RSS counts (None: every Python worker).
        self.pool: str | None = None
        self._pool_of: dict[int, str | None] = {}

    def _in_pool(self, proc: psutil.Process) -> bool:
        if self.pool is None:
            return True
        if proc.pid not in self._pool_of:
            try:
                self._pool_of[proc.pid] = proc.environ().get(POOL_ENV)
            except psutil.Error:
                return False
        return self._pool_of[proc.pid] == self.pool

    def members(self) -> dict[str, list[psutil.Process]]:
        """The live processes of the tree by role (one scan of the process table)."""
        members: dict[str, list[psutil.Process]] = {role: [self.root] if role == "driver" else []
                                                    for role in ROLES}
        descendants = self.root.children(recursive=True)
        parents: dict[int, int] = {}
        for proc in descendants:
            try:
                parents[proc.pid] = proc.ppid()
            except psutil.Error:
                continue
        for proc in descendants:
            role, pid = "driver", proc.pid
            while pid in parents:  # walk up to the root, noting what we pass
                if pid in self.exclude:
                    role = "excluded"
                    break
                if pid == self.jvm_pid:
                    role = "jvm" if proc.pid == pid else "workers"
                    break
                pid = parents[pid]
            if role != "excluded" and proc.pid in parents:
                members[role].append(proc)
        return members

    def rss_bytes(self, members: dict[str, list[psutil.Process]] | None = None) -> dict[str, int]:
        """Current resident memory per role (sum over the role's processes; workers of ``pool`` only)."""
        totals = {role: 0 for role in ROLES}
        for role, procs in (members or self.members()).items():
            for proc in procs:
                if role == "workers" and not self._in_pool(proc):
                    continue
                try:
                    totals[role] += proc.memory_info().rss
                except psutil.Error:
                    continue
        return totals


@dataclass
class Sample:
    """One measured run."""

    wall_s: float = 0.0
    cpu_s: dict[str, float] = field(default_factory=dict)
    peak_rss: dict[str, int] = field(default_factory=dict)

    @property
    def cpu_total_s(self) -> float:
        return sum(self.cpu_s.values())


def _own_cpu(proc: psutil.Process) -> float | None:
    try:
        times = proc.cpu_times()
    except psutil.Error:  # ended (or became a zombie) since it was listed
        return None
    return times.user + times.system


class _Sampler(threading.Thread):
    """Follows the tree during one measurement: CPU of every process and peak RSS per role."""

    def __init__(self, tree: ProcessTree, interval_s: float) -> None:
        super().__init__(daemon=True, name="bench-sampler")
        self.tree = tree
        self.interval_s = interval_s
        self.peak = {role: 0 for role in ROLES}
        self._procs: dict[int, tuple[psutil.Process, str]] = {}
        self._first: dict[int, float] = {}
        self._last: dict[int, float] = {}
        self._members: dict[str, list[psutil.Process]] = {}
        self._stop_event = threading.Event()
        self._scan(at_start=True)

    def _scan(self, at_start: bool = False) -> None:
        self._members = self.tree.members()
        for role, procs in self._members.items():
            for proc in procs:
                if proc.pid in self._procs:
                    continue
                cpu = _own_cpu(proc)
                if cpu is None:
                    continue
                self._procs[proc.pid] = (proc, role)
                # A process found after the start was born during the measurement.
                self._first[proc.pid] = cpu if at_start else 0.0
                self._last[proc.pid] = cpu

    def _read(self) -> None:
        for pid, (proc, _) in self._procs.items():
            cpu = _own_cpu(proc)
            if cpu is not None:
                self._last[pid] = cpu
        for role, value in self.tree.rss_bytes(self._members).items():
            self.peak[role] = max(self.peak[role], value)

    def run(self) -> None:
        scanned = time.monotonic()
        while not self._stop_event.wait(self.interval_s):
            if time.monotonic() - scanned >= RESCAN_S:
                self._scan()
                scanned = time.monotonic()
            self._read()

    def finish(self) -> tuple[dict[str, float], dict[str, int]]:
        """Stop; CPU seconds per role spent since the start, and peak RSS per role."""
        self._stop_event.set()
        self.join()
        self._scan()
        self._read()
        cpu = {role: 0.0 for role in ROLES}
        for pid, (_, role) in self._procs.items():
            cpu[role] += max(0.0, self._last[pid] - self._first[pid])
        return cpu, self.peak


class Measurement:
    """Context manager filling a :class:`Sample` with wall time, CPU seconds and peak RSS.

    Examples
    --------
    >>> with Measurement(ProcessTree()) as m:
    ...     _ = sum(range(100_000))
    >>> m.sample.wall_s > 0 and m.sample.cpu_total_s >= 0 and m.sample.peak_rss["driver"] > 0
    True
    """

    def __init__(self, tree: ProcessTree, interval_s: float = 0.05) -> None:
        self.tree = tree
        self.interval_s = interval_s
        self.sample = Sample()

    def __enter__(self) -> Self:
        self._sampler = _Sampler(self.tree, self.interval_s)
        self._sampler.start()
        self._t0 = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.sample.wall_s = time.perf_counter() - self._t0
        self.sample.cpu_s, self.sample.peak_rss = self._sampler.finish()
