"""What ``sourceInfoCol`` costs: the featurizer with and without it, measured side by side in one run.

``python -m benchmarks.bench_source_info --rows 4000`` makes ``--rows`` distinct JPEG
photos (``--width`` x ``--height`` crops of scikit-learn's sample photos, made once
under ``--root``, shared with :mod:`benchmarks.bench_incremental`) and a wide table
(``id``, the path column, ``--extra-columns`` doubles). In one local Spark session it
writes, for each workload, ``--repeats`` times, alternating which goes first:

* ``features``: only ``id`` and the features (and, with the option, the source facts)
  to Parquet: Spark prunes the other columns;
* ``wide``: the whole table with the new columns to Parquet.

``off`` is ``ImageUrlFeaturizer(...)``, ``on`` the same stage with
``sourceInfoCol="source"``. It checks every row's facts against
:func:`sparkimg_ml.image.source_info` of the file's bytes for a sample, and prints one
JSON object with the median seconds and ``on / off`` per workload (the target is
at most 1.05). It also times, in this process on the same files, ``source_info``
against ``preprocess_bytes`` per image: the share of the work the facts add.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from .bench_incremental import make_photos


def _per_image_share(folder: Path, size: int, sample: int) -> dict[str, float]:
    """Median milliseconds of ``source_info`` and of ``preprocess_bytes`` per image, and their ratio."""
    from sparkimg_ml.image import ImageSpec, preprocess_bytes, source_info

    spec = ImageSpec(size, size)
    payloads = [path.read_bytes() for path in sorted(folder.glob("*.jpg"))[:sample]]
    timings: dict[str, list[float]] = {"source_info": [], "preprocess_bytes": []}
    for data in payloads:
        started = time.perf_counter()
        source_info(data)
        timings["source_info"].append(time.perf_counter() - started)
        started = time.perf_counter()
        preprocess_bytes(data, spec)
        timings["preprocess_bytes"].append(time.perf_counter() - started)
    medians = {f"{name}_ms": 1000 * statistics.median(values) for name, values in timings.items()}
    medians["source_info_over_preprocess"] = medians["source_info_ms"] / medians["preprocess_bytes_ms"]
    return medians


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=4000)
    parser.add_argument("--width", type=int, default=1024)
    parser.add_argument("--height", type=int, default=768)
    parser.add_argument("--size", type=int, default=32, help="the featurizer's imageSize")
    parser.add_argument("--extra-columns", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--master", default="local[2]")
    parser.add_argument("--root", type=Path, default=Path(tempfile.gettempdir()) / "sparkimg-bench-incremental")
    args = parser.parse_args(argv)

    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    from pyspark.sql import SparkSession
    from pyspark.sql import functions as F

    from sparkimg_ml import ImageUrlFeaturizer
    from sparkimg_ml.image import source_info

    args.root.mkdir(parents=True, exist_ok=True)
    folder = make_photos(args.root, args.rows, args.width, args.height)
    spark = (SparkSession.builder.master(args.master).appName("bench_source_info")
             .config("spark.ui.enabled", "false").config("spark.ui.showConsoleProgress", "false")
             .config("spark.driver.memory", "3g").getOrCreate())
    spark.sparkContext.setLogLevel("ERROR")
    scratch = args.root / "source-info-runs"
    extras = [(F.col("id") * (i + 1) % 997).cast("double").alias(f"col_{i:03d}") for i in range(args.extra_columns)]
    table = (spark.range(args.rows).withColumn("path", F.format_string(f"{folder}/%06d.jpg", F.col("id")))
             .select("id", "path", *extras))
    stages = {"off": ImageUrlFeaturizer(inputCol="path", imageSize=args.size, handleInvalid="keep", errorCol="error")}
    stages["on"] = stages["off"].copy().setSourceInfoCol("source")

    def output(variant: str, workload: str):
        frame = stages[variant].transform(table)
        if workload == "features":
            frame = frame.select("id", "features", *(["source"] if variant == "on" else []))
        return frame

    seconds: dict[str, dict[str, list[float]]] = {w: {"off": [], "on": []} for w in ("features", "wide")}
    try:
        output("on", "features").write.mode("overwrite").parquet(str(scratch / "warm-up"))  # workers, JIT
        for repeat in range(args.repeats):
            for workload in seconds:
                for variant in (("off", "on") if repeat % 2 == 0 else ("on", "off")):
                    started = time.perf_counter()
                    output(variant, workload).write.mode("overwrite").parquet(str(scratch / f"{workload}-{variant}"))
                    seconds[workload][variant].append(time.perf_counter() - started)
        written = spark.read.parquet(str(scratch / "wide-on"))
        assert written.count() == args.rows and written.where("source IS NULL OR error IS NOT NULL").count() == 0
        for row in written.orderBy("id").limit(20).collect():
            assert row["source"].asDict() == dataclasses.asdict(source_info(Path(row["path"]).read_bytes())), row["path"]
    finally:
        spark.stop()
    result: dict[str, Any] = {"rows": args.rows, "image": f"{args.width}x{args.height} JPEG", "imageSize": args.size,
                              "extra_columns": args.extra_columns, "master": args.master, "repeats": args.repeats}
    for workload, variants in seconds.items():
        medians = {variant: statistics.median(values) for variant, values in variants.items()}
        result[workload] = {"seconds": variants, "median_seconds": medians, "on_over_off": medians["on"] / medians["off"]}
    result["per_image"] = _per_image_share(folder, args.size, sample=min(args.rows, 200))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
