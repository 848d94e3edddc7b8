"""Real Spark services for the compatibility runs: a Spark Connect server and a standalone cluster.

Both run from the pyspark pip package of the interpreter running the tests, on
127.0.0.1 only, with their logs, pid files and work directories in a scratch
directory. ``SPARK_HOME`` points at a directory of symlinks into the pyspark
package, so nothing is written into site-packages. Every process is stopped by
its PID, and ``PYTHONPATH`` is removed from their environment: their Python
workers can import ``sparkimg_ml`` only if the tests ship it.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

START_TIMEOUT_S = 240


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def scratch_spark_home(scratch: Path) -> Path:
    """A SPARK_HOME of symlinks into the pyspark package (work and log dirs then land in ``scratch``)."""
    import pyspark

    package = Path(pyspark.__file__).resolve().parent
    home = scratch / "sparkhome"
    home.mkdir(parents=True, exist_ok=True)
    for name in ("bin", "sbin", "jars", "python"):
        if (package / name).exists() and not (home / name).exists():
            (home / name).symlink_to(package / name)
    return home


def service_env(home: Path, scratch: Path) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    env.update(
        SPARK_HOME=str(home), SPARK_LOCAL_IP="127.0.0.1", PYSPARK_PYTHON=sys.executable,
        SPARK_LOG_DIR=str(scratch / "logs"), SPARK_PID_DIR=str(scratch / "pids"),
        SPARK_DAEMON_MEMORY="512m",
    )
    return env


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _log_tail(log: Path) -> str:
    return log.read_text(errors="replace")[-3000:] if log.exists() else "(no log)"


def _wait_for_port(port: int, pid: int, log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if not _alive(pid):
            raise RuntimeError(f"process {pid} exited before listening on {port}; {log}:\n{_log_tail(log)}")
        with socket.socket() as probe:
            probe.settimeout(1)
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.5)
    raise TimeoutError(f"nothing listened on 127.0.0.1:{port} after {START_TIMEOUT_S} s; see {log}")


def _stop(processes: list[subprocess.Popen]) -> None:
    for process in processes:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    for process in processes:
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def _launch(command: list[str], env: dict[str, str], cwd: Path, log: Path) -> subprocess.Popen:
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        # spark-class execs java: the PID is the JVM's.
        return subprocess.Popen(command, env=env, cwd=cwd, stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL)


@contextmanager
def connect_server(scratch: Path) -> Iterator[str]:
    """A Spark Connect server (``local[2]``) from ``sbin/start-connect-server.sh``; yields its ``sc://`` URL.

    The script daemonizes and writes the server JVM's PID to ``SPARK_PID_DIR``; the
    server is stopped by that PID.
    """
    home = scratch_spark_home(scratch)
    env = service_env(home, scratch)
    port = free_port()
    command = [
        str(home / "sbin" / "start-connect-server.sh"), "--master", "local[2]", "--driver-memory", "2g",
        "--conf", "spark.connect.grpc.binding.address=127.0.0.1",
        "--conf", f"spark.connect.grpc.binding.port={port}",
        "--conf", "spark.ui.enabled=false", "--conf", "spark.driver.bindAddress=127.0.0.1",
        "--conf", "spark.sql.shuffle.partitions=4",
    ]
    work = scratch / "connect-cwd"  # the workers' cwd: not the repository, whose package they must not see
    work.mkdir(parents=True, exist_ok=True)
    subprocess.run(command, env=env, cwd=work, check=True, timeout=120, stdin=subprocess.DEVNULL,
                   stdout=subprocess.DEVNULL)
    pid_files = list((scratch / "pids").glob("*SparkConnectServer*.pid"))
    if len(pid_files) != 1:
        raise RuntimeError(f"expected one Spark Connect pid file in {scratch / 'pids'}, found {pid_files}")
    pid = int(pid_files[0].read_text().strip())
    logs = list((scratch / "logs").glob("*SparkConnectServer*.out"))
    try:
        _wait_for_port(port, pid, logs[0] if logs else scratch / "logs")
        yield f"sc://127.0.0.1:{port}"
    finally:
        _stop_pid(pid)
        pid_files[0].unlink(missing_ok=True)


def _stop_pid(pid: int) -> None:
    if not _alive(pid):
        return
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 30
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    if _alive(pid):
        os.kill(pid, signal.SIGKILL)


def _alive_workers(ui_port: int) -> int:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{ui_port}/json/", timeout=5) as response:
            return int(json.load(response).get("aliveworkers", 0))
    except OSError:
        return 0


@dataclass(frozen=True)
class Cluster:
    """A running standalone cluster: its ``spark://`` URL and the PID of each worker JVM."""

    url: str
    worker_pids: tuple[int, ...]


@contextmanager
def standalone_cluster(scratch: Path, workers: int = 2) -> Iterator[str]:
    """A standalone master and ``workers`` workers; yields the ``spark://`` URL.

    Each worker offers 2 cores, so a second application (a model loaded in a new process)
    finds executors while the tests' own application holds one core per worker.
    """
    with standalone_processes(scratch, ["127.0.0.1"] * workers) as cluster:
        yield cluster.url


@contextmanager
def standalone_processes(scratch: Path, hosts: Sequence[str]) -> Iterator[Cluster]:
    """A standalone master on 127.0.0.1 and one worker (2 cores) per entry of ``hosts``, on that address.

    Workers on different loopback addresses (127.0.0.1, 127.0.0.2) are different hosts to
    Spark's scheduler, which launches a speculative copy of a task only on a host where
    that task has no attempt yet. Yields the URL and the worker JVMs' PIDs (their
    executors are child processes of theirs).
    """
    home = scratch_spark_home(scratch)
    env = service_env(home, scratch)
    env["SPARK_MASTER_OPTS"] = "-Dspark.master.rest.enabled=false"
    port, ui_port = free_port(), free_port()
    spark_class = str(home / "bin" / "spark-class")
    processes = [_launch(
        [spark_class, "org.apache.spark.deploy.master.Master", "--host", "127.0.0.1", "--port", str(port),
         "--webui-port", str(ui_port)], env, scratch, scratch / "logs" / "master.log")]
    url = f"spark://127.0.0.1:{port}"
    try:
        _wait_for_port(port, processes[0].pid, scratch / "logs" / "master.log")
        for index, host in enumerate(hosts):
            work_dir = scratch / f"worker{index}"
            work_dir.mkdir(parents=True, exist_ok=True)
            processes.append(_launch(
                [spark_class, "org.apache.spark.deploy.worker.Worker", "--host", host, "--cores", "2",
                 "--memory", "2g", "--work-dir", str(work_dir), "--webui-port", str(free_port()), url],
                {**env, "SPARK_LOCAL_IP": host}, work_dir, scratch / "logs" / f"worker{index}.log"))
        deadline = time.monotonic() + START_TIMEOUT_S
        while _alive_workers(ui_port) < len(hosts):
            for process in processes:
                if process.poll() is not None:
                    raise RuntimeError(f"a cluster process exited with {process.returncode}; logs in "
                                       f"{scratch / 'logs'}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"{len(hosts)} workers did not register within {START_TIMEOUT_S} s")
            time.sleep(1)
        yield Cluster(url, tuple(process.pid for process in processes[1:]))
    finally:
        _stop(processes[:0:-1] + processes[:1])  # workers first, then the master
