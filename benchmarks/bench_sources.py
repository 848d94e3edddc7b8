"""Reading a folder of image files, and spreading a one-file URL list, measured side by side.

``python -m benchmarks.bench_sources --files 100000`` runs two comparisons in one
local Spark session (``--master``, default ``local[2]``), each repeated
``--repeats`` times with the order alternated so background load hits both:

1. ``read_images``: a folder of ``--files`` small PNGs (made once under
   ``--root``) featurized at 8x8 from the path-only listing (the featurizer
   reads each file) and from ``with_bytes=True`` (Spark's ``binaryFile`` reads
   the bytes, which travel to Python through Arrow). The job writes to Spark's
   ``noop`` sink, so only reading and featurizing are timed.
2. ``spread``: a one-file CSV of ``--urls`` URLs served by a loopback server
   that waits ``--latency-ms`` (20) before each answer, featurized as read (one
   partition: one task fetches everything) and after :func:`sparkimg_ml.spread`.

It prints one JSON object: the median seconds of each variant and the ratios.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from PIL import Image


def make_files(root: Path, count: int) -> Path:
    """``count`` distinct 16x16 PNGs under ``root/images/<bucket>/`` (reused when already there)."""
    folder = root / f"images-{count}"
    stamp = folder / ".complete"
    if stamp.exists():
        return folder
    import io

    for index in range(count):
        bucket = folder / f"{index // 1000:03d}"
        if index % 1000 == 0:
            bucket.mkdir(parents=True, exist_ok=True)
        image = Image.new("RGB", (16, 16), (index % 251, (index // 251) % 251, (index * 7) % 251))
        buffer = io.BytesIO()
        image.save(buffer, format="PNG", compress_level=1)
        (bucket / f"{index:06d}.png").write_bytes(buffer.getvalue())
    stamp.write_text("ok")
    return folder


def timed(job: Callable[[], Any]) -> float:
    started = time.perf_counter()
    job()
    return time.perf_counter() - started


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=100_000)
    parser.add_argument("--urls", type=int, default=2_000)
    parser.add_argument("--latency-ms", type=float, default=20.0)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--master", default="local[2]")
    parser.add_argument("--root", type=Path, default=Path(tempfile.gettempdir()) / "sparkimg-bench-sources")
    parser.add_argument("--skip", choices=("read", "spread"), action="append", default=[])
    args = parser.parse_args(argv)

    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    from pyspark.sql import SparkSession

    from sparkimg_ml import ImageUrlFeaturizer, read_images, spread

    from .server import serve_in_subprocess

    args.root.mkdir(parents=True, exist_ok=True)
    folder = make_files(args.root, args.files) if "read" not in args.skip else None
    spark = (SparkSession.builder.master(args.master).appName("bench_sources")
             .config("spark.ui.enabled", "false").config("spark.ui.showConsoleProgress", "false")
             .config("spark.driver.memory", "3g").getOrCreate())
    spark.sparkContext.setLogLevel("ERROR")
    result: dict[str, Any] = {"master": args.master, "cores": spark.sparkContext.defaultParallelism}
    try:
        if folder is not None:
            def featurize(with_bytes: bool) -> None:
                table = read_images(spark, str(folder), with_bytes=with_bytes)
                stage = ImageUrlFeaturizer(inputCol="content" if with_bytes else "path", imageSize=8,
                                           handleInvalid="keep", errorCol="error")
                stage.transform(table).write.format("noop").mode("overwrite").save()

            assert read_images(spark, str(folder)).count() == args.files
            times: dict[str, list[float]] = {"path_only": [], "with_bytes": []}
            for repeat in range(args.repeats):
                order = [False, True] if repeat % 2 == 0 else [True, False]
                for with_bytes in order:
                    times["with_bytes" if with_bytes else "path_only"].append(timed(lambda with_bytes=with_bytes: featurize(with_bytes)))
            medians = {name: statistics.median(values) for name, values in times.items()}
            result["read_images"] = {
                "files": args.files, "seconds": times, "median_s": medians,
                "with_bytes_over_path_only": medians["with_bytes"] / medians["path_only"]}
        if "spread" not in args.skip:
            site = args.root / "site"
            site.mkdir(exist_ok=True)
            Image.new("RGB", (16, 16), (10, 20, 30)).save(site / "a.png")
            with serve_in_subprocess(site, args.latency_ms) as (base_url, _):
                csv = args.root / f"urls-{args.urls}.csv"
                csv.write_text("url\n" + "".join(f"{base_url}/a.png?n={i}\n" for i in range(args.urls)))
                table = spark.read.option("header", "true").csv(str(csv))

                def fetch(spread_it: bool) -> None:
                    source = spread(table) if spread_it else table
                    stage = ImageUrlFeaturizer(inputCol="url", imageSize=8, handleInvalid="keep", errorCol="error",
                                               blockPrivateNetworks=False)
                    stage.transform(source).write.format("noop").mode("overwrite").save()

                spread_times: dict[str, list[float]] = {"one_partition": [], "spread": []}
                for repeat in range(args.repeats):
                    order = [False, True] if repeat % 2 == 0 else [True, False]
                    for spread_it in order:
                        spread_times["spread" if spread_it else "one_partition"].append(
                            timed(lambda spread_it=spread_it: fetch(spread_it)))
                medians = {name: statistics.median(values) for name, values in spread_times.items()}
                result["spread"] = {
                    "urls": args.urls, "latency_ms": args.latency_ms, "input_partitions": table.rdd.getNumPartitions(),
                    "spread_partitions": spread(table).rdd.getNumPartitions(), "seconds": spread_times,
                    "median_s": medians, "speed_up": medians["one_partition"] / medians["spread"]}
    finally:
        spark.stop()
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
