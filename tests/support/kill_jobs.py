"""Spark jobs during which a Python worker or a whole worker node is SIGKILLed, for test_killed_workers.py.

Usage: ``python kill_jobs.py {local,standalone} SCRATCH OUT``. Writes ``OUT/report.json``
and one pickle of output rows per job (``OUT/<job>.pickle``).

Every job reads the same frame: ``ROWS`` URLs of a loopback :class:`FaultServer`
(seeded noise images of assorted sizes, each answered after ``ROW_DELAY`` so a task
lasts a second or two, and a few rows that fail: a 404 and a non-image), in
``PARTITIONS`` slices, through an :class:`ImageUrlFeaturizer` and an
:class:`ImageEmbedder` (``handleInvalid="keep"``, reasons in their error columns).
The output rows are stored as raw bytes, so the test compares them bit for bit.

``local`` (``local[2,4]``: two task slots, four attempts per task)
    ``clean``; ``worker_killed``: a Python worker busy in a task (it holds a connection
    to the image server) is SIGKILLed by its PID; ``after``: the next job of the same
    session. After each job the live Python workers' thread counts are recorded, and
    every onnxruntime session the workers make is logged with its PID.
``standalone`` (a master and two workers on 127.0.0.1 and 127.0.0.2, one 1-core executor
on each, speculation on with aggressive settings)
    ``clean``; ``speculated``: the first request of one row's URL takes ``SLOW_FIRST_S``,
    so that task's first attempt stalls and Spark launches a copy on the other host (the
    script then waits until the losing attempt's Python worker stops reading);
    ``node_killed``: a worker JVM, its executor JVM and their Python processes are all
    SIGKILLed by their PIDs while that executor runs a task.

Processes are found among this process's descendants and killed by PID only.
"""

from __future__ import annotations

import json
import os
import pickle
import signal
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil

ROWS = 240
PARTITIONS = 6
#: Seconds the server waits before each image: a task of 40 rows lasts a second or two.
ROW_DELAY = 0.05
CONCURRENCY = 4
#: Rows whose image cannot be read: (id -> route).
BAD_ROWS = {17: "/status/404", 101: "/wrong-type/text", 202: "/status/404"}
#: The row whose first request stalls in the ``speculated`` job: the first row of the last partition, whose
#: task starts last, when the other executor is about to be free for a copy. Below the 30 s fetch timeout.
SLOW_ROW = ROWS - ROWS // PARTITIONS + 1
SLOW_FIRST_S = 12.0
#: How long a killer looks for its victim before giving up (the job fails the test then).
KILL_DEADLINE_S = 60.0


def row_url(server: Any, row: int, slow_first: float = 0.0) -> str:
    if row in BAD_ROWS:
        return server.url(BAD_ROWS[row])
    url = server.url(f"/noise/{row}?size={6 + row % 31}&delay={ROW_DELAY}")
    return url + (f"&first-delay={slow_first}" if slow_first else "")


# -- processes ---------------------------------------------------------------------------------
def _cmdline(process: psutil.Process) -> list[str]:
    try:
        return process.cmdline()
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return []


def python_workers(root: psutil.Process) -> list[psutil.Process]:
    """Spark's Python workers below ``root``: the children ``pyspark.daemon`` forks (or, without the
    daemon, ``pyspark.worker`` processes). The daemon itself is never one."""
    workers = []
    for process in root.children(recursive=True):
        line = " ".join(_cmdline(process))
        if "pyspark.worker" in line and "pyspark.daemon" not in line:
            workers.append(process)
        elif "pyspark.daemon" in line:
            try:
                parent = process.parent()
            except psutil.NoSuchProcess:
                continue
            if parent is not None and "pyspark.daemon" in " ".join(_cmdline(parent)):
                workers.append(process)
    return workers


def fetching_from(process: psutil.Process, port: int) -> bool:
    """True when ``process`` has an open connection to the image server: it is inside a task."""
    try:
        return any(c.status == psutil.CONN_ESTABLISHED and c.raddr and c.raddr.port == port
                   for c in process.net_connections(kind="tcp"))
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return False


def wait_until_no_worker_fetches(root: psutil.Process, port: int, limit: float) -> float:
    """Seconds until no Python worker below ``root`` holds a connection to the image server.

    A task Spark kills (the losing attempt of a speculated task) closes its channel to
    its Python worker, which notices only when it next writes: until then it finishes
    the read in progress. Waiting for that keeps a busy worker of the next job from
    being mistaken for it.
    """
    start = time.monotonic()
    while any(fetching_from(w, port) for w in python_workers(root)):
        if time.monotonic() - start > limit:
            raise TimeoutError(f"Python workers still read from the image server {limit:.0f} s after their job")
        time.sleep(0.1)
    return time.monotonic() - start


def describe(process: psutil.Process) -> dict[str, Any]:
    line = " ".join(_cmdline(process))
    role = ("worker JVM" if "deploy.worker.Worker" in line else
            "executor JVM" if "CoarseGrainedExecutorBackend" in line else
            "Python worker" if "pyspark" in line else line[:80])
    return {"pid": process.pid, "role": role}


class Killer(threading.Thread):
    """Polls for victims while a job runs; SIGKILLs the first ones found, by PID, and records it.

    ``find`` returns the processes to kill (empty while there are none yet). The kill
    waits until the server has answered ``min_hits`` requests of this job, so it lands
    mid-job, after tasks have started.
    """

    def __init__(self, sc: Any, find: Callable[[], list[psutil.Process]], hits: Callable[[], int],
                 min_hits: int = 4) -> None:
        super().__init__(daemon=True)
        self.sc, self.find, self.hits, self.min_hits = sc, find, hits, min_hits
        self.record: dict[str, Any] = {}
        self.done = threading.Event()

    def run(self) -> None:
        deadline = time.monotonic() + KILL_DEADLINE_S
        while not self.done.is_set() and time.monotonic() < deadline:
            if self.hits() >= self.min_hits:
                victims = self.find()
                if victims:
                    active = list(self.sc.statusTracker().getActiveJobsIds())
                    hits = self.hits()
                    killed = []
                    described = [describe(victim) for victim in victims]
                    for victim in described:
                        try:
                            os.kill(victim["pid"], signal.SIGKILL)
                            killed.append(victim)
                        except ProcessLookupError:
                            pass
                    if killed:
                        self.record = {"killed": killed, "at": time.time(), "active_jobs": active,
                                       "hits_at_kill": hits}
                        return
            time.sleep(0.05)


# -- jobs --------------------------------------------------------------------------------------
def stages(sc: Any, group: str) -> list[dict[str, int]]:
    tracker = sc.statusTracker()
    out = []
    for job in tracker.getJobIdsForGroup(group):
        info = tracker.getJobInfo(job)
        for stage_id in (info.stageIds if info else []):
            stage = tracker.getStageInfo(stage_id)
            if stage is not None:
                out.append({"stage": stage_id, "attempt": stage.currentAttemptId, "tasks": stage.numTasks,
                            "completed": stage.numCompletedTasks, "failed": stage.numFailedTasks})
    return out


def run_job(spark: Any, name: str, rows: list[tuple], model: str, out: Path, hits: Callable[[], int],
            killer: Killer | None = None) -> dict[str, Any]:
    from sparkimg_ml import ImageEmbedder, ImageUrlFeaturizer

    sc = spark.sparkContext
    frame = sc.parallelize(rows, PARTITIONS).toDF("id int, url string")
    featurizer = ImageUrlFeaturizer(inputCol="url", outputCol="features", errorCol="error", handleInvalid="keep",
                                    imageSize=[8, 8], concurrency=CONCURRENCY, maxRetries=0)
    embedder = ImageEmbedder(inputCol="url", modelUri=model, outputNode="conv", outputCol="embedding",
                             errorCol="embedding_error", handleInvalid="keep", batchSize=7,
                             concurrency=CONCURRENCY, maxRetries=0)
    result = embedder.transform(featurizer.transform(frame)).select(
        "id", "features", "error", "embedding", "embedding_error")
    sc.setJobGroup(name, name)
    hits_before = hits()
    started = time.time()
    if killer is not None:
        killer.start()
    try:
        collected = result.collect()
    finally:
        if killer is not None:
            killer.done.set()
            killer.join()
    ended = time.time()
    stored = [(r["id"],
               None if r["features"] is None else r["features"].toArray().tobytes(), r["error"],
               None if r["embedding"] is None else r["embedding"].toArray().tobytes(), r["embedding_error"])
              for r in collected]
    (out / f"{name}.pickle").write_bytes(pickle.dumps(stored))
    return {"started": started, "ended": ended, "stages": stages(sc, name), "image_requests": hits() - hits_before,
            "executors": len(sc.statusTracker().getExecutorInfos()) - 1,
            "kill": killer.record if killer is not None else None}


def worker_threads(root: psutil.Process) -> dict[str, int]:
    """Thread count of each live Python worker (between jobs: every worker is idle)."""
    counts = {}
    for process in python_workers(root):
        try:
            counts[str(process.pid)] = process.num_threads()
        except psutil.NoSuchProcess:
            pass
    return counts


def _session(builder: Any) -> Any:
    spark = (builder.appName("sparkimg_ml-killed-workers")
             .config("spark.ui.enabled", "false").config("spark.ui.showConsoleProgress", "false")
             .config("spark.driver.bindAddress", "127.0.0.1").config("spark.driver.host", "127.0.0.1")
             .config("spark.driver.memory", "1g").getOrCreate())
    spark.sparkContext.setLogLevel("ERROR")
    return spark


def local(scratch: Path, out: Path, model: str) -> dict[str, Any]:
    from fault_server import FaultServer
    from pyspark.sql import SparkSession

    report: dict[str, Any] = {"jobs": {}, "threads": {}}
    me = psutil.Process()
    # The Python workers are forked from a daemon the JVM starts with this environment.
    os.environ["SPARKIMG_ML_SESSION_LOG"] = str(scratch / "sessions.jsonl")
    with FaultServer() as server:
        rows = [(i, row_url(server, i)) for i in range(ROWS)]
        noise_hits = lambda: sum(server.hits(f"/noise/{i}") for i in range(ROWS))  # noqa: E731
        spark = _session(SparkSession.builder.master("local[2,4]"))
        try:
            jobs = report["jobs"]
            jobs["clean"] = run_job(spark, "clean", rows, model, out, noise_hits)
            report["threads"]["clean"] = worker_threads(me)
            base = noise_hits()

            def busy_worker() -> list[psutil.Process]:
                return [w for w in python_workers(me) if fetching_from(w, server.port)][:1]

            killer = Killer(spark.sparkContext, busy_worker, lambda: noise_hits() - base)
            jobs["worker_killed"] = run_job(spark, "worker_killed", rows, model, out, noise_hits, killer)
            report["threads"]["worker_killed"] = worker_threads(me)
            jobs["after"] = run_job(spark, "after", rows, model, out, noise_hits)
            report["threads"]["after"] = worker_threads(me)
        finally:
            spark.stop()
    log = scratch / "sessions.jsonl"
    report["sessions"] = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
    return report


def standalone(scratch: Path, out: Path, model: str) -> dict[str, Any]:
    import spark_services
    from fault_server import FaultServer
    from pyspark.sql import SparkSession
    from repo_paths import REPO_ROOT

    report: dict[str, Any] = {"jobs": {}}
    os.environ["SPARK_HOME"] = str(spark_services.scratch_spark_home(scratch))
    with FaultServer() as server, spark_services.standalone_processes(
            scratch, ["127.0.0.1", "127.0.0.2"]) as cluster:
        noise_hits = lambda: sum(server.hits(f"/noise/{i}") for i in range(ROWS))  # noqa: E731
        builder = (SparkSession.builder.master(cluster.url)
                   .config("spark.executor.cores", "1").config("spark.cores.max", "2")
                   .config("spark.executor.memory", "1g")
                   .config("spark.executorEnv.PYTHONPATH", str(REPO_ROOT))
                   .config("spark.speculation", "true").config("spark.speculation.multiplier", "1")
                   .config("spark.speculation.quantile", "0.1").config("spark.speculation.interval", "100ms")
                   .config("spark.speculation.minTaskRuntime", "100ms"))
        spark = _session(builder)
        try:
            sc = spark.sparkContext
            deadline = time.monotonic() + 120
            while len(sc.statusTracker().getExecutorInfos()) < 3:  # the driver and two executors
                if time.monotonic() > deadline:
                    raise TimeoutError("the two executors did not register within 120 s")
                time.sleep(0.2)
            jobs = report["jobs"]
            rows = [(i, row_url(server, i)) for i in range(ROWS)]
            jobs["clean"] = run_job(spark, "clean", rows, model, out, noise_hits)
            slow = [(i, row_url(server, i, SLOW_FIRST_S if i == SLOW_ROW else 0.0)) for i in range(ROWS)]
            jobs["speculated"] = run_job(spark, "speculated", slow, model, out, noise_hits)
            jobs["speculated"]["slow_row_requests"] = server.hits(
                "noise:" + slow[SLOW_ROW][1][len(server.base):])
            jobs["speculated"]["loser_seconds"] = wait_until_no_worker_fetches(
                psutil.Process(), server.port, SLOW_FIRST_S + 30)
            base = noise_hits()

            def busy_node() -> list[psutil.Process]:
                for pid in cluster.worker_pids:
                    try:
                        node = psutil.Process(pid)
                        if any(fetching_from(w, server.port) for w in python_workers(node)):
                            # The whole node at once: the worker, its executor and their Python processes.
                            return [node, *node.children(recursive=True)]
                    except psutil.NoSuchProcess:
                        continue
                return []

            killer = Killer(sc, busy_node, lambda: noise_hits() - base)
            jobs["node_killed"] = run_job(spark, "node_killed", rows, model, out, noise_hits, killer)
        finally:
            spark.stop()
    return report


def main(kind: str, scratch: Path, out: Path) -> None:
    from onnx_models import tiny_cnn

    model = str(tiny_cnn(scratch / "tiny.onnx"))
    report = {"local": local, "standalone": standalone}[kind](scratch, out, model)
    (out / "report.json").write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main(sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3]))
