"""A re-run with 1 % new rows through a FeatureCache, against the first run, measured side by side.

``python -m benchmarks.bench_incremental --rows 20000`` makes ``--rows`` distinct
JPEG photos (``--width`` x ``--height`` crops of scikit-learn's sample photos, made
once under ``--root``) and a wide table (``id``, the image column, ``--extra-columns``
doubles). In one local Spark session (``--master``, default ``local[2]``), for each
source kind (``--sources``: ``local`` paths and/or ``http`` URLs served by a loopback
server that waits ``--latency-ms`` before each answer) it times, each written in
full (every column) to Parquet:

1. ``plain``: ``stage.transform(table)``, no cache;
2. ``first``: ``FeatureCache.transform(stage, table)`` on an empty cache;
3. ``rerun``: the same on the table grown by ``--new-fraction`` (1 %) new rows;
4. ``copy``: reading the re-run's output and writing it again: the floor of any
   re-run that returns the whole table (it reads and writes every column of every row).

It checks that the re-run computed exactly the new rows and returned every row,
and prints one JSON object with the seconds and the ratios ``rerun / first`` (the
cost of a re-run), ``rerun / copy`` (how close a re-run comes to that floor) and
``first / plain`` (what keeping the cache costs the first run).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image


def make_photos(root: Path, count: int, width: int, height: int) -> Path:
    """``count`` distinct JPEG crops of the sample photos under ``root`` (reused when already there)."""
    from sklearn.datasets import load_sample_images

    folder = root / f"photos-{count}-{width}x{height}"
    stamp = folder / ".complete"
    if stamp.exists():
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    photos = [Image.fromarray(a).resize((width * 2, height * 2)) for a in load_sample_images().images]
    rng = np.random.default_rng(7)
    for index in range(count):
        photo = photos[index % len(photos)]
        left, top = int(rng.integers(0, width)), int(rng.integers(0, height))
        buffer = io.BytesIO()
        photo.crop((left, top, left + width, top + height)).save(buffer, "JPEG", quality=85)
        (folder / f"{index:06d}.jpg").write_bytes(buffer.getvalue())
    stamp.write_text("ok")
    return folder


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=20_000, help="rows (distinct images) of the first run")
    parser.add_argument("--new-fraction", type=float, default=0.01, help="new rows of the re-run, as a fraction")
    parser.add_argument("--width", type=int, default=1024)
    parser.add_argument("--height", type=int, default=768)
    parser.add_argument("--size", type=int, default=32, help="the featurizer's imageSize")
    parser.add_argument("--extra-columns", type=int, default=50)
    parser.add_argument("--sources", default="local,http", help="comma-separated: local, http")
    parser.add_argument("--latency-ms", type=float, default=20.0, help="the HTTP server's delay per answer")
    parser.add_argument("--master", default="local[2]")
    parser.add_argument("--root", type=Path, default=Path(tempfile.gettempdir()) / "sparkimg-bench-incremental")
    args = parser.parse_args(argv)

    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    from pyspark.sql import SparkSession
    from pyspark.sql import functions as F

    from sparkimg_ml import FeatureCache, ImageUrlFeaturizer

    from .server import serve_in_subprocess

    new_rows = max(1, round(args.rows * args.new_fraction))
    total = args.rows + new_rows
    args.root.mkdir(parents=True, exist_ok=True)
    folder = make_photos(args.root, total, args.width, args.height)
    spark = (SparkSession.builder.master(args.master).appName("bench_incremental")
             .config("spark.ui.enabled", "false").config("spark.ui.showConsoleProgress", "false")
             .config("spark.driver.memory", "3g").getOrCreate())
    spark.sparkContext.setLogLevel("ERROR")
    result: dict[str, Any] = {"rows": args.rows, "new_rows": new_rows, "image": f"{args.width}x{args.height} JPEG",
                              "imageSize": args.size, "extra_columns": args.extra_columns, "master": args.master}
    scratch = args.root / "runs"

    def table(base: str, rows: int):
        frame = spark.range(rows).withColumn("source", F.format_string(f"{base}/%06d.jpg", F.col("id")))
        extras = [(F.col("id") * (i + 1) % 997).cast("double").alias(f"col_{i:03d}") for i in range(args.extra_columns)]
        return frame.select("id", "source", *extras)

    def timed_write(frame, name: str) -> float:
        started = time.perf_counter()
        frame.write.mode("overwrite").parquet(str(scratch / name))
        return time.perf_counter() - started

    try:
        for kind in args.sources.split(","):
            shutil.rmtree(scratch, ignore_errors=True)
            with serve_in_subprocess(folder, args.latency_ms) if kind == "http" else contextlib.nullcontext((str(folder), None)) as (base, _):
                stage = ImageUrlFeaturizer(inputCol="source", outputCol="features", imageSize=args.size,
                                           handleInvalid="keep", errorCol="error", blockPrivateNetworks=False)
                cache = FeatureCache(str(scratch / "cache"))
                seconds = {"plain": timed_write(stage.transform(table(base, args.rows)), "plain")}
                # The transform call does the fetching and records the cache; the write then joins and writes.
                in_call: dict[str, float] = {}
                started = time.perf_counter()
                first = cache.transform(stage, table(base, args.rows))
                in_call["first"] = time.perf_counter() - started
                seconds["first"] = in_call["first"] + timed_write(first, "first")
                assert cache.last_run is not None and cache.last_run.computed == args.rows, cache.last_run
                started = time.perf_counter()
                rerun = cache.transform(stage, table(base, total))
                in_call["rerun"] = time.perf_counter() - started
                seconds["rerun"] = in_call["rerun"] + timed_write(rerun, "rerun")
                assert cache.last_run.computed == new_rows, cache.last_run
                written = spark.read.parquet(str(scratch / "rerun"))
                assert written.count() == total and written.where("features IS NULL").count() == 0
                seconds["copy"] = timed_write(spark.read.parquet(str(scratch / "rerun")), "copy")
                result[kind] = {
                    "latency_ms": args.latency_ms if kind == "http" else None, "seconds": seconds,
                    "seconds_in_transform_call": in_call,
                    "rerun_over_first": seconds["rerun"] / seconds["first"],
                    "rerun_over_copy": seconds["rerun"] / seconds["copy"],
                    "first_over_plain": seconds["first"] / seconds["plain"]}
    finally:
        spark.stop()
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
