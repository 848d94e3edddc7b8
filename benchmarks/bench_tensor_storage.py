"""What a 224x224x3 tensor costs to leave a Python worker, by column type: ``python -m benchmarks.bench_tensor_storage``.

One ``arrow_udf`` returns the same prepared pixels (no decoding: only the transport is
measured) as ``binary`` (the featurizer's ``outputFormat="uint8"``), ``array<tinyint>``,
``array<float>`` and a ``Vector``, into the ``noop`` sink, interleaved repeat by repeat.
Reported: CPU ms per row of the whole process tree (driver, JVM, Python workers), median
of ``--repeats``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from collections.abc import Callable, Iterator, Sequence

import numpy as np
import pyarrow as pa

from .measure import Measurement, ProcessTree
from .run import jvm_pid, log, start_spark

SIZE = 224 * 224 * 3
#: Rows per output batch, as the featurizer's byte cap gives for 224x224 Vectors.
CHUNK = 32
_PIXELS: list[np.ndarray] = []


def _block(rows: int) -> np.ndarray:
    """``rows`` (<= CHUNK) rows of pixels, made once per worker so that only the transport is timed."""
    if not _PIXELS:
        _PIXELS.append(np.random.default_rng(0).integers(0, 256, (CHUNK, SIZE), dtype=np.uint8))
    return _PIXELS[0][:rows]


def as_binary(ids: pa.Array) -> pa.Array:
    block = _block(len(ids))
    offsets = pa.py_buffer(np.arange(0, (len(ids) + 1) * SIZE, SIZE, dtype=np.int32))
    return pa.Array.from_buffers(pa.binary(), len(ids), [None, offsets, pa.py_buffer(block)])


def as_tinyint(ids: pa.Array) -> pa.Array:
    flat = pa.array(_block(len(ids)).reshape(-1).view(np.int8))  # Spark's tinyint is signed
    return pa.FixedSizeListArray.from_arrays(flat, SIZE)


def as_float(ids: pa.Array) -> pa.Array:
    flat = pa.array(_block(len(ids)).reshape(-1).astype(np.float32))
    return pa.FixedSizeListArray.from_arrays(flat, SIZE)


def as_vector(ids: pa.Array) -> pa.Array:
    from sparkimg_ml.engine.arrow import features_array as _features_array

    block = _block(len(ids)).astype(np.float64)
    return _features_array(block, np.zeros(len(ids), bool), "vector")


def _udf_of(make: Callable[[pa.Array], pa.Array]) -> Callable[[Iterator[pa.Array]], Iterator[pa.Array]]:
    def batches(it: Iterator[pa.Array]) -> Iterator[pa.Array]:
        for ids in it:
            for start in range(0, len(ids), CHUNK):
                yield make(ids[start:start + CHUNK])

    return batches


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_tensor_storage", description=__doc__)
    parser.add_argument("--rows", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    spark = start_spark("sparkimg_ml-tensor-storage")
    from pyspark.ml.linalg import VectorUDT
    from pyspark.sql import functions as F
    from pyspark.sql.types import ArrayType, BinaryType, ByteType, FloatType

    kinds = {"binary": (as_binary, BinaryType()), "array<tinyint>": (as_tinyint, ArrayType(ByteType(), False)),
             "array<float>": (as_float, ArrayType(FloatType(), False)), "vector": (as_vector, VectorUDT())}
    try:
        tree = ProcessTree(jvm_pid=jvm_pid(spark))
        base = spark.range(args.rows, numPartitions=2)
        frames = {}
        for name, (make, data_type) in kinds.items():
            frames[name] = base.select(F.arrow_udf(_udf_of(make), data_type)("id").alias("tensor"))  # type: ignore[call-overload]
            frames[name].write.format("noop").mode("overwrite").save()  # warm-up
        cpu: dict[str, list[float]] = {name: [] for name in kinds}
        for repeat in range(args.repeats):
            for name, frame in frames.items():
                with Measurement(tree) as measurement:
                    frame.write.format("noop").mode("overwrite").save()
                cpu[name].append(1000 * measurement.sample.cpu_total_s / args.rows)
                log(f"  {name} run {repeat + 1}: {cpu[name][-1]:.2f} CPU ms/row")
    finally:
        spark.stop()
    binary = statistics.median(cpu["binary"])
    print(f"| column type | CPU ms per 224x224x3 row (median of {args.repeats}) | vs binary |\n|---|---:|---:|")
    for name, values in cpu.items():
        median = statistics.median(values)
        print(f"| {name} | {median:.2f} | {median / binary:.1f}x |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
