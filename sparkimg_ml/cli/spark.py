"""Starting Spark for a command: a local or cluster master, or a Spark Connect server (``--remote sc://...``)."""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .options import UsageError

#: The driver JVM's logging configuration: errors only.
LOG_CONFIG = Path(__file__).resolve().parent.parent / "cli_log4j2.properties"
DRIVER_JAVA_OPTIONS = "spark.driver.extraJavaOptions"


def add_spark_options(parser: argparse.ArgumentParser, master_default: str = "local[*]") -> None:
    """``--master``, ``--remote`` and ``--conf``."""
    group = parser.add_argument_group("Spark")
    where = group.add_mutually_exclusive_group()
    where.add_argument("--master", default=None, help=f"Spark master (default: {master_default})")
    where.add_argument("--remote", metavar="sc://HOST:PORT",
                       help="a Spark Connect server to run on instead of a master (needs pyspark[connect])")
    group.add_argument("--conf", action="append", default=[], metavar="KEY=VALUE",
                       help="a Spark configuration value; repeatable")
    parser.set_defaults(master_default=master_default)


def parse_confs(items: Sequence[str]) -> dict[str, str]:
    """``["k=v", ...]`` -> ``{"k": "v"}``; a malformed item is a :class:`UsageError`.

    Examples
    --------
    >>> parse_confs(["spark.driver.memory=8g", "spark.x=a=b"])
    {'spark.driver.memory': '8g', 'spark.x': 'a=b'}
    """
    settings: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"--conf expects KEY=VALUE, got {item!r}")
        settings[key.strip()] = value
    return settings


def check_remote(remote: str) -> None:
    """Refuse a ``--remote`` that cannot work, before anything starts."""
    if not remote.startswith("sc://"):
        raise UsageError(f"--remote expects a Spark Connect URL sc://HOST:PORT, got {remote!r}")
    missing = [name for name in ("grpc", "google.protobuf") if importlib.util.find_spec(name.split(".")[0]) is None]
    if missing:
        raise UsageError("--remote needs Spark Connect's client libraries (grpcio, protobuf): "
                         "pip install 'pyspark[connect]'")


def start_session(args: argparse.Namespace, app_name: str, progress: bool) -> Any:
    """A SparkSession as the command line describes it.

    With a local master, Spark's Python workers run this interpreter (which has
    this package) and the driver JVM logs fatal errors only, unless the user
    brings a logging configuration or asks for ``-v``. With ``--remote`` the
    server owns its logging and workers: only ``--conf`` values are passed.
    """
    from pyspark.sql import SparkSession

    # pyspark warns about pandas 3 on every start; the command's output is its summary.
    warnings.filterwarnings("ignore", message="PySpark does not yet fully support pandas", category=FutureWarning)
    confs = parse_confs(args.conf)
    if args.remote:
        builder = SparkSession.builder.remote(args.remote).appName(app_name)
        for key, value in confs.items():
            builder = builder.config(key, value)
        return builder.getOrCreate()
    master = args.master or args.master_default
    if master.startswith("local"):
        # Local workers run PYSPARK_PYTHON (else `python3` on PATH), which may not have this
        # package; this interpreter does.
        os.environ["PYSPARK_PYTHON"] = sys.executable
        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    settings = {"spark.ui.enabled": "false", "spark.ui.showConsoleProgress": "true" if progress else "false"}
    settings.update(confs)
    java_options = settings.get(DRIVER_JAVA_OPTIONS, "")
    # Spark's start-up lines and the JVM stack traces of a failed task would bury the command's own
    # one-line messages, unless the user brings a logging configuration or asks for them (-v).
    quiet_jvm = "log4j2.configurationFile" not in java_options and not getattr(args, "verbose", False)
    if quiet_jvm:
        settings[DRIVER_JAVA_OPTIONS] = f"-Dlog4j2.configurationFile={LOG_CONFIG.as_uri()} {java_options}".strip()
    builder = SparkSession.builder.master(master).appName(app_name)
    for key, value in settings.items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    if quiet_jvm:
        spark.sparkContext.setLogLevel("FATAL")
    return spark

