"""Shared fixtures: one local[2] SparkSession and a loopback HTTP server per test session."""

from __future__ import annotations

import functools
import http.server
import os
import sys
import threading
from pathlib import Path
from typing import Iterator

import pytest

# Spark's Python workers must run the interpreter that runs the tests (the venv).
os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")


@pytest.fixture(scope="session")
def spark():
    from pyspark.sql import SparkSession

    session = (
        SparkSession.builder.master("local[2]")
        .appName("sparkimg_ml-tests")
        .config("spark.driver.memory", "3g")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.shuffle.partitions", "4")
        .config("spark.driver.bindAddress", "127.0.0.1")
        .getOrCreate()
    )
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # keep test output clean
        pass


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # the default backlog of 5 drops SYNs under 16 concurrent fetches


@pytest.fixture(scope="session")
def static_dir(tmp_path_factory) -> Path:
    """A directory served by :func:`http_server`; tests write files into it."""
    return tmp_path_factory.mktemp("www")


@pytest.fixture(scope="session")
def http_server(static_dir: Path) -> Iterator[str]:
    """Base URL (``http://127.0.0.1:PORT``) of a threaded loopback server over ``static_dir``."""
    handler = functools.partial(_QuietHandler, directory=str(static_dir))
    server = _Server(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
