"""Shared fixtures: one local[2] SparkSession and a loopback HTTP server per test session."""

from __future__ import annotations

import functools
import http.server
import os
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

# Spark's Python workers must run the interpreter that runs the tests (the venv).
os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")


#: Which Spark the session fixture gives: "local" (default, classic local[2]), "connect" (a Spark
#: Connect server started here) or "standalone" (a master and two workers started here). The
#: compatibility runs (.ci/compat_matrix.py) set it; the package is shipped to the last two.
SPARK_KIND = os.environ.get("SPARKIMG_TEST_SPARK", "local")


def _builder():
    from pyspark.sql import SparkSession

    return SparkSession.builder.appName("sparkimg_ml-tests")


def _classic_session(master: str, **conf: str):
    builder = (
        _builder().master(master)
        .config("spark.driver.memory", "3g")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.shuffle.partitions", "4")
        .config("spark.driver.bindAddress", "127.0.0.1")
        .config("spark.driver.host", "127.0.0.1")
    )
    for key, value in conf.items():
        builder = builder.config(key, value)
    session = builder.getOrCreate()
    session.sparkContext.setLogLevel("ERROR")
    return session


@pytest.fixture(scope="session")
def spark(tmp_path_factory):
    if SPARK_KIND == "local":
        session = _classic_session("local[2]")
        yield session
        session.stop()
        return
    import spark_services

    from sparkimg_ml.deploy import ship

    scratch = tmp_path_factory.mktemp(f"spark-{SPARK_KIND}")
    if SPARK_KIND == "connect":
        with spark_services.connect_server(scratch) as url:
            os.environ["SPARKIMG_TEST_SPARK_URL"] = url  # for tests that load models in a new process
            session = _builder().remote(url).getOrCreate()
            ship(session)
            yield session
            session.stop()
    elif SPARK_KIND == "standalone":
        with spark_services.standalone_cluster(scratch) as url:
            os.environ["SPARKIMG_TEST_SPARK_URL"] = url
            session = _classic_session(url, **{
                "spark.executor.memory": "1g", "spark.executor.cores": "1", "spark.cores.max": "2",
                "spark.driver.memory": "2g"})
            ship(session)
            yield session
            session.stop()
    else:
        raise ValueError(f"SPARKIMG_TEST_SPARK={SPARK_KIND!r}; expected local, connect or standalone")


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


@pytest.fixture
def force_pandas_udf(monkeypatch):
    """``force_pandas_udf("sparkimg_ml.featurizer")``: that stage builds its UDF as on Spark < 4.1 (a pandas_udf)."""
    from sparkimg_ml.engine import udf

    def force(module: str) -> None:
        monkeypatch.setattr(f"{module}.udf_output_format",
                            lambda wanted, use_arrow_udf=None: udf.udf_output_format(wanted, use_arrow_udf=False))
        monkeypatch.setattr(f"{module}.make_image_udf",
                            lambda run, fmt, kind, use_arrow_udf=None, **options:
                            udf.make_image_udf(run, fmt, kind, False, **options))

    return force
