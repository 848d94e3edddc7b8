"""SIGKILLed Python workers and worker nodes, and speculative copies: every row once, bit for bit.

Each scenario runs in its own process (``tests/support/kill_jobs.py``, which has the
details): a session whose tasks may be retried, a loopback image server whose answers
take a moment so tasks last a few seconds, and the same 240-row frame (three rows that
fail, kept with their reasons) through ImageUrlFeaturizer and ImageEmbedder, first
cleanly, then while something is killed. Processes are found among the job's own
descendants and killed by PID; the scripts stop everything they start.

* ``local[2,4]``: a Python worker busy in a task is SIGKILLed; Spark retries the task.
* a standalone master and two workers on different loopback hosts, speculation on
  (multiplier 1, quantile 0.1, every 100 ms): one task's first attempt stalls on one
  image, and a copy runs on the other host; then a whole node (worker JVM, executor JVM,
  Python processes) is SIGKILLed mid-job and the job finishes on the other.
"""

from __future__ import annotations

import json
import os
import pickle
import signal
import subprocess
import sys
import time
from pathlib import Path

import kill_jobs
import pytest
from repo_paths import REPO_ROOT, SUPPORT

pytestmark = pytest.mark.claim(
    "A SIGKILLed Python worker or worker node, and speculative copies, leave the output bit-identical to a "
    "clean run, every row once")


TIMEOUT_S = 400
#: Image requests of a job that reads every good row once with each stage.
MINIMUM_REQUESTS = 2 * (kill_jobs.ROWS - len(kill_jobs.BAD_ROWS))


def _run(kind: str, tmp_path: Path) -> tuple:
    scratch, out = tmp_path / "scratch", tmp_path / "out"
    scratch.mkdir()
    out.mkdir()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO_ROOT), str(SUPPORT)]),
           "PYSPARK_PYTHON": sys.executable, "SPARK_LOCAL_IP": "127.0.0.1"}
    env.pop("SPARKIMG_ML_SESSION_LOG", None)
    started = time.monotonic()
    # Its own session: on a timeout the whole group (driver, JVMs, Python workers) is killed by its id.
    job = subprocess.Popen([sys.executable, str(SUPPORT / "kill_jobs.py"), kind, str(scratch), str(out)],
                           env=env, cwd=scratch, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                           start_new_session=True)
    try:
        _, stderr = job.communicate(timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        os.killpg(job.pid, signal.SIGKILL)
        _, stderr = job.communicate()
        pytest.fail(f"kill_jobs.py {kind} did not finish within {TIMEOUT_S} s:\n{stderr[-4000:]}")
    assert job.returncode == 0, f"kill_jobs.py {kind} failed:\n{stderr[-4000:]}"
    report = json.loads((out / "report.json").read_text())
    report["seconds"] = time.monotonic() - started
    rows = {name: sorted(pickle.loads((out / f"{name}.pickle").read_bytes())) for name in report["jobs"]}
    return report, rows


@pytest.fixture(scope="module")
def local_run(tmp_path_factory):
    return _run("local", tmp_path_factory.mktemp("killed-local"))


@pytest.fixture(scope="module")
def standalone_run(tmp_path_factory):
    return _run("standalone", tmp_path_factory.mktemp("killed-standalone"))


def _assert_same_rows(rows: dict, name: str) -> None:
    clean, other = rows["clean"], rows[name]
    ids = [row[0] for row in other]
    assert ids == list(range(kill_jobs.ROWS)), f"{name}: rows missing or repeated"
    assert len(clean) == kill_jobs.ROWS
    # Rows are (id, features bytes, error, embedding bytes, embedding error): equal means bit for bit.
    different = [row[0] for row, want in zip(other, clean) if row != want]
    assert not different, f"{name}: rows {different[:10]} differ from the clean run"
    failed = {row[0]: (row[2], row[4]) for row in clean if row[1] is None}
    assert set(failed) == set(kill_jobs.BAD_ROWS) and all(a and b for a, b in failed.values()), failed


def _assert_killed_mid_job(job: dict, name: str) -> dict:
    kill = job["kill"]
    assert kill, f"{name}: no process was found to kill while the job ran (see kill_jobs.Killer)"
    assert kill["active_jobs"], f"{name}: the kill came when no job was running"
    assert job["started"] < kill["at"] < job["ended"]
    assert kill["hits_at_kill"] >= 4  # tasks had started fetching
    return kill


def test_a_killed_python_worker_is_retried_and_the_output_equals_a_clean_run(local_run):
    report, rows = local_run
    job = report["jobs"]["worker_killed"]
    kill = _assert_killed_mid_job(job, "worker_killed")
    assert [k["role"] for k in kill["killed"]] == ["Python worker"]
    # The task whose worker died failed once and was retried.
    assert sum(stage["failed"] for stage in job["stages"]) >= 1, job["stages"]
    assert all(stage["completed"] == stage["tasks"] for stage in job["stages"])
    assert sum(stage["failed"] for stage in report["jobs"]["clean"]["stages"]) == 0
    assert job["image_requests"] > MINIMUM_REQUESTS, "the retried task did not read its rows again"
    _assert_same_rows(rows, "worker_killed")


def test_the_next_job_after_a_kill_starts_clean(local_run):
    report, rows = local_run
    _assert_same_rows(rows, "after")
    killed = {k["pid"] for k in report["jobs"]["worker_killed"]["kill"]["killed"]}
    threads = report["threads"]
    assert not killed & {int(pid) for pid in threads["after"]}
    # Each process read the model once, whatever died around it: a worker's cache lives and dies with it.
    sessions = [record["pid"] for record in report["sessions"]]
    assert sessions and len(sessions) == len(set(sessions)), sessions
    # The per-task thread pools are shut down with their task: idle workers, some of which ran tasks in
    # all three jobs, have no more threads after the third than after the first, and fewer than one
    # task's fetch pool (CONCURRENCY threads) on top of the main thread and the model's.
    assert threads["clean"] and threads["after"]
    assert set(threads["clean"]) & set(threads["after"]), "no worker was reused across the jobs"
    assert max(threads["after"].values()) <= max(threads["clean"].values()), threads
    assert max(threads["after"].values()) < kill_jobs.CONCURRENCY + 2, threads


def test_speculative_copies_give_the_same_rows(standalone_run):
    report, rows = standalone_run
    job = report["jobs"]["speculated"]
    # The stalled row's URL was requested by the first attempt (featurizer and embedder) and again by a copy.
    assert job["slow_row_requests"] >= 3, (
        f"no speculative copy fetched the stalled row (job took {job['ended'] - job['started']:.1f} s)")
    _assert_same_rows(rows, "speculated")
    # Spark killed the losing attempt; its Python worker finished the read in progress, then went away.
    assert job["loser_seconds"] < kill_jobs.SLOW_FIRST_S + 5


def test_a_killed_worker_node_is_replaced_and_the_output_equals_a_clean_run(standalone_run):
    report, rows = standalone_run
    job = report["jobs"]["node_killed"]
    kill = _assert_killed_mid_job(job, "node_killed")
    roles = [k["role"] for k in kill["killed"]]
    assert {"worker JVM", "executor JVM", "Python worker"} <= set(roles), roles
    assert report["jobs"]["clean"]["executors"] == 2  # the job had both nodes before one died
    assert job["image_requests"] > MINIMUM_REQUESTS, "no task of the dead node was run again"
    _assert_same_rows(rows, "node_killed")
