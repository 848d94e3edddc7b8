"""TensorReshaper against a Python UDF doing the same reshape, side by side in one Spark session.

    python -m benchmarks.bench_reshaper              # 100k rows x 3072 floats
    python -m benchmarks.bench_reshaper --rows 2000  # quick run

The input is what ``ImageUrlFeaturizer`` produces for 32x32 RGB images: a dense
``Vector`` of 3072 values with ``tensor`` metadata (shape [32, 32, 3], HWC,
float32). It is generated in the JVM and cached once, so no contender pays for
it. Each contender turns it into CHW tensors (``--output-type`` picks nested
arrays, flat arrays or vectors); the sink is ``df.write.format("noop")``, which
evaluates every row and writes nothing. Contenders run interleaved, repeat by
repeat, so background load hits them alike:

* ``TensorReshaper`` -- Spark SQL higher-order functions, no Python in the plan;
* ``Python UDF (Arrow)`` -- ``F.udf`` as users write it (Arrow-optimised by default in Spark 4);
* ``Python UDF (pickle)`` -- the same function with ``useArrow=False``;
* ``pass-through`` -- the cached input written as is: the floor every contender pays.

Before timing, every contender's first rows are checked against numpy's
``reshape(32, 32, 3).transpose(2, 0, 1)``. Reported per contender: best and median
wall time, best CPU time of the whole process tree (driver, JVM and Python
workers; other users' load does not add to it), and the ratio of each Python UDF
to TensorReshaper.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import psutil

HEIGHT, WIDTH, CHANNELS = 32, 32, 3
SIZE = HEIGHT * WIDTH * CHANNELS
AXES = [2, 0, 1]
CONTENDERS = ("TensorReshaper", "Python UDF (Arrow)", "Python UDF (pickle)", "pass-through")


def _tree_cpu_seconds() -> float:
    """User + system CPU of this process and all its descendants (the JVM and its Python workers)."""
    total = 0.0
    root = psutil.Process(os.getpid())
    for proc in [root, *root.children(recursive=True)]:
        try:
            times = proc.cpu_times()
        except psutil.Error:  # a worker that just exited; its parent's children_* counters hold it
            continue
        total += times.user + times.system + times.children_user + times.children_system
    return total


def _session(partitions: int, driver_memory: str) -> Any:
    from pyspark.sql import SparkSession

    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    spark = (
        SparkSession.builder.master("local[2]").appName("bench_reshaper")
        .config("spark.driver.memory", driver_memory)
        .config("spark.driver.bindAddress", "127.0.0.1")
        .config("spark.ui.enabled", "false").config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.shuffle.partitions", str(partitions))
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel("ERROR")
    return spark


def _source(spark: Any, rows: int, partitions: int, input_format: str = "vector") -> Any:
    """``rows`` featurizer-like tensors: pixel ``(31 * id + i) % 256`` at position i, HWC.

    ``vector``: a Vector of ``pixel / 255`` (the featurizer's default output); ``uint8``: the
    raw pixels as bytes with the same normalisation in the metadata, so both give the same values.
    """
    from pyspark.ml.functions import array_to_vector
    from pyspark.sql import functions as F

    positions = F.sequence(F.lit(0), F.lit(SIZE - 1))
    tensor = {"shape": [HEIGHT, WIDTH, CHANNELS], "layout": "HWC", "channelOrder": "RGB", "scale": 1 / 255}
    frame = spark.range(rows, numPartitions=partitions)
    if input_format == "uint8":
        # char(n) is the character of code point n (0..255); ISO-8859-1 encodes it as byte n.
        text = F.array_join(F.transform(positions, lambda i: F.call_function("char", (F.col("id") * 31 + i) % 256)), "")
        return (frame.select("id", F.encode(text, "ISO-8859-1").alias("features"))
                .withMetadata("features", {"tensor": dict(tensor, dtype="uint8")}))
    pixels = F.transform(positions, lambda i: (((F.col("id") * 31 + i) % 256) / 255.0).cast("float"))
    metadata = {"ml_attr": {"num_attrs": SIZE}, "tensor": dict(tensor, dtype="float32")}
    return (frame.select("id", array_to_vector(pixels).alias("features"))
            .withMetadata("features", metadata))


def _contenders(source: Any, output_type: str) -> dict[str, Any]:
    from pyspark.ml.linalg import DenseVector, VectorUDT
    from pyspark.sql import functions as F
    from pyspark.sql.types import ArrayType, FloatType

    from sparkimg_ml.reshaper import TensorReshaper

    # Defined here, not at module level, so the function is pickled by value and the
    # Python workers need not import this script.
    def to_chw(vector: Any) -> Any:
        values = (np.frombuffer(vector, dtype=np.uint8) * np.float32(1 / 255) if isinstance(vector, (bytes, bytearray))
                  else np.asarray(vector.toArray(), dtype=np.float32))
        tensor = values.reshape(HEIGHT, WIDTH, CHANNELS).transpose(AXES)
        if output_type == "nested":
            return tensor.tolist()
        flat = np.ascontiguousarray(tensor).ravel()
        return DenseVector(flat.astype(np.float64)) if output_type == "vector" else flat.tolist()

    return_type = {"nested": ArrayType(ArrayType(ArrayType(FloatType()))), "array": ArrayType(FloatType()),
                   "vector": VectorUDT()}[output_type]
    reshaper = TensorReshaper(inputCol="features", outputCol="tensor", axes=AXES, outputFormat=output_type)
    return {
        "TensorReshaper": reshaper.transform(source).select("id", "tensor"),
        "Python UDF (Arrow)": source.select("id", F.udf(to_chw, return_type, useArrow=True)("features")
                                            .alias("tensor")),
        "Python UDF (pickle)": source.select("id", F.udf(to_chw, return_type, useArrow=False)("features")
                                             .alias("tensor")),
        "pass-through": source.select("id", F.col("features").alias("tensor")),
    }


def _check(name: str, frame: Any, output_type: str, input_format: str = "vector") -> None:
    """The first rows of a contender equal numpy's reshape + transpose of the same input."""
    if name == "pass-through":
        return
    for row in frame.where("id < 3").collect():
        pixels = np.asarray([(31 * row.id + i) % 256 for i in range(SIZE)])
        expected = (pixels.astype(np.float32) * np.float32(1 / 255) if input_format == "uint8"
                    else (pixels / 255.0).astype(np.float32))
        expected = expected.reshape(HEIGHT, WIDTH, CHANNELS).transpose(AXES)
        got = row.tensor.toArray() if output_type == "vector" else np.asarray(row.tensor)
        if not np.array_equal(got.astype(np.float32), expected if output_type == "nested" else expected.ravel()):
            raise AssertionError(f"{name} differs from numpy on row {row.id}")


def _measure(frame: Any) -> dict[str, float]:
    """Wall and process-tree CPU seconds of evaluating every row of ``frame`` into the noop sink."""
    cpu, wall = _tree_cpu_seconds(), time.perf_counter()
    frame.write.format("noop").mode("overwrite").save()
    return {"wall": time.perf_counter() - wall, "cpu": _tree_cpu_seconds() - cpu}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--rows", type=int, default=100_000, help="rows of 3072 floats (default 100000)")
    parser.add_argument("--repeats", type=int, default=2, help="timed runs per contender (default 2)")
    parser.add_argument("--partitions", type=int, default=4, help="partitions of the input (default 4)")
    parser.add_argument("--output-type", choices=["nested", "array", "vector"], default="nested",
                        help="TensorReshaper outputType and the UDF's matching result (default nested)")
    parser.add_argument("--driver-memory", default="6g", help="spark.driver.memory (default 6g)")
    parser.add_argument("--input", choices=["vector", "uint8"], default="vector",
                        help="input tensor column: featurizer Vector or uint8 bytes (default vector)")
    args = parser.parse_args(argv)

    spark = _session(args.partitions, args.driver_memory)
    try:
        source = _source(spark, args.rows, args.partitions, args.input).cache()
        started = time.perf_counter()
        source.count()
        print(f"input: {args.rows} rows x {SIZE} values ({args.input}, HWC), cached in "
              f"{time.perf_counter() - started:.1f} s; output: CHW {args.output_type}")
        frames = _contenders(source, args.output_type)
        for name, frame in frames.items():
            _check(name, frame, args.output_type, args.input)
        samples: dict[str, list[dict[str, float]]] = {name: [] for name in frames}
        for repeat in range(args.repeats):
            for name, frame in frames.items():
                sample = _measure(frame)
                samples[name].append(sample)
                print(f"  repeat {repeat + 1}: {name:<20} wall {sample['wall']:7.2f} s  cpu {sample['cpu']:7.2f} s",
                      flush=True)
    finally:
        spark.stop()

    best = {name: {key: min(s[key] for s in runs) for key in ("wall", "cpu")} for name, runs in samples.items()}
    print("\n| contender | best wall (s) | median wall (s) | best CPU (s) | wall vs TensorReshaper "
          "| CPU vs TensorReshaper |\n|---|---|---|---|---|---|")
    for name, runs in samples.items():
        median = statistics.median(s["wall"] for s in runs)
        print(f"| {name} | {best[name]['wall']:.2f} | {median:.2f} | {best[name]['cpu']:.2f} "
              f"| {best[name]['wall'] / best['TensorReshaper']['wall']:.1f}x "
              f"| {best[name]['cpu'] / best['TensorReshaper']['cpu']:.1f}x |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
