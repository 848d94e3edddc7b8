"""Batch plumbing between Spark and the pure image/fetch layers.

Only the image column crosses into Python. Each Spark task gets one thread pool
and one :class:`~sparkimg_ml.fetch.Fetcher` (pooled keep-alive connections);
rows arrive as Arrow batches, every *unique* source of a batch is fetched and
decoded on the pool with a bounded look-ahead window, and results leave as
Arrow ``struct<features, error: string>`` batches whose size is capped in bytes,
so memory stays bounded whatever the image size.

``features`` leaves in ``VectorUDT``'s own storage layout (a dense vector:
``type=1`` and ``values: list<double>``) when the UDF is an ``arrow_udf``, so the
JVM takes the column as a ``Vector`` without a per-element conversion; the
``pandas_udf`` fallback returns ``array<float>`` for ``array_to_vector``.

This module knows Spark's batch shapes but no Params: the stage passes a
:class:`FeaturizeTask` of plain values.
"""

from __future__ import annotations

import collections
import dataclasses
import os
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Callable, Deque, Dict, Iterable, Iterator, List, Optional, Tuple, Union

import numpy as np
import pandas as pd
import pyarrow as pa

from .errors import SourceError, redact_source
from .fetch import Fetcher, FetchOptions
from .image_ops import ImageSpec, preprocess_bytes, preprocess_spark_struct

#: What the image column holds.
SOURCE, BINARY, IMAGE_STRUCT = "source", "binary", "image_struct"
INPUT_KINDS = (SOURCE, BINARY, IMAGE_STRUCT)

#: Fields of ``spark.read.format("image")``'s struct that we read.
IMAGE_STRUCT_FIELDS = ("height", "width", "nChannels", "mode", "data")

#: How the features leave a batch: as ``VectorUDT`` storage or as ``array<float>``.
VECTOR, ARRAY = "vector", "array"
FEATURE_FORMATS = (VECTOR, ARRAY)

#: Arrow layout of ``pyspark.ml.linalg.VectorUDT().sqlType()``.
VECTOR_STORAGE_TYPE = pa.struct([
    pa.field("type", pa.int8(), nullable=False), ("size", pa.int32()),
    ("indices", pa.list_(pa.int32())), ("values", pa.list_(pa.float64())),
])
_DENSE = 1

#: Upper bound of one output Arrow batch; keeps 224x224 and larger outputs from
#: materialising a whole 10,000-row input batch at once.
OUTPUT_BATCH_BYTES = 32 * 1024 * 1024
MAX_OUTPUT_BATCH_ROWS = 4096

Result = Union[np.ndarray, SourceError]


class ImageFeaturizationError(RuntimeError):
    """Raised with ``handleInvalid="error"``; names the row's source and the reason."""


@dataclass(frozen=True)
class FeaturizeTask:
    """Everything a Python worker needs, as plain picklable values."""

    spec: ImageSpec
    fetch: FetchOptions
    input_kind: str
    handle_invalid: str
    input_col: str
    #: :data:`VECTOR` (``arrow_udf``) or :data:`ARRAY` (``pandas_udf`` fallback).
    features_format: str = VECTOR

    def rows_per_output_batch(self) -> int:
        row_bytes = (8 if self.features_format == VECTOR else 4) * self.spec.size
        return max(1, min(MAX_OUTPUT_BATCH_ROWS, OUTPUT_BATCH_BYTES // row_bytes))


def output_arrow_type(size: int, features_format: str = VECTOR) -> pa.DataType:
    features = VECTOR_STORAGE_TYPE if features_format == VECTOR else pa.list_(pa.float32(), size)
    return pa.struct([("features", features), ("error", pa.string())])


def _features_array(block: np.ndarray, failed: np.ndarray, features_format: str) -> pa.Array:
    """One output batch's features: rows of ``block``, null where ``failed``."""
    rows, size = block.shape
    mask = pa.array(failed) if failed.any() else None
    if features_format == ARRAY:
        return pa.FixedSizeListArray.from_arrays(pa.array(block.reshape(-1)), size, mask=mask)
    # float32 -> float64 is exact: the Vector holds the very values preprocess() returns.
    offsets = pa.array(np.arange(0, (rows + 1) * size, size, dtype=np.int32))
    values = pa.ListArray.from_arrays(offsets, pa.array(block.reshape(-1), type=pa.float64()))
    return pa.StructArray.from_arrays(
        [pa.array(np.full(rows, _DENSE, np.int8)), pa.nulls(rows, pa.int32()),
         pa.nulls(rows, pa.list_(pa.int32())), values],
        fields=list(VECTOR_STORAGE_TYPE), mask=mask,
    )


def _decode_slots() -> int:
    # Decoding is CPU bound and holds a full-size image in memory: cap it near the
    # core count while the (I/O bound) fetches use every pool thread.
    return max(2, os.cpu_count() or 2)


class _RowProcessor:
    """Fetches and decodes one row; shared by the pool threads of one task."""

    def __init__(self, task: FeaturizeTask, fetcher: Optional[Fetcher]) -> None:
        self.task = task
        self.fetcher = fetcher
        self._decode_gate = threading.BoundedSemaphore(_decode_slots())

    def __call__(self, item: Any) -> Result:
        try:
            if item is None:
                raise SourceError("missing", "null source")
            kind = self.task.input_kind
            if kind == IMAGE_STRUCT:
                height, width, n_channels, mode, data = item
                with self._decode_gate:
                    return preprocess_spark_struct(height, width, n_channels, mode, data, self.task.spec)
            if kind == SOURCE:
                assert self.fetcher is not None
                data = self.fetcher.fetch(item)
            else:
                data = item
                if len(data) == 0:
                    raise SourceError("missing", "empty bytes")
            with self._decode_gate:
                return preprocess_bytes(data, self.task.spec)
        except SourceError as error:
            return error


def _ordered_map(pool: ThreadPoolExecutor, fn: Callable[[Any], Result], items: Iterable[Any],
                 window: int) -> Iterator[Result]:
    """``map`` over ``items`` in order, keeping at most ``window`` calls in flight."""
    pending: Deque[Future] = collections.deque()
    try:
        for item in items:
            pending.append(pool.submit(fn, item))
            if len(pending) >= window:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
    finally:
        for future in pending:
            future.cancel()


def _row_items(batch: pa.Array, kind: str) -> Tuple[List[Any], List[Any]]:
    """(work items, de-duplication keys) for one Arrow batch of the image column."""
    if isinstance(batch, pa.ChunkedArray):
        batch = batch.combine_chunks()
    if kind == IMAGE_STRUCT:
        columns = [batch.field(name).to_pylist() for name in IMAGE_STRUCT_FIELDS]
        valid = batch.is_valid().to_pylist()
        items: List[Any] = [
            tuple(values) if ok and values[-1] is not None else None
            for ok, values in zip(valid, zip(*columns))
        ]
        return items, [None] * len(items)  # decoded pixels: nothing to fetch twice
    values = batch.to_pylist()
    if kind == SOURCE:
        values = [None if v is None or not v.strip() else v for v in values]
        return values, values
    return values, [None] * len(values)


def _describe(item: Any, kind: str, origin: Optional[str]) -> str:
    if kind == IMAGE_STRUCT:
        return redact_source(origin) if origin else "<image struct>"
    return redact_source(item)


def featurize_batches(batches: Iterable[pa.Array], task: FeaturizeTask) -> Iterator[pa.StructArray]:
    """Turn Arrow batches of the image column into ``struct<features, error>`` batches.

    This is the whole per-task job: it runs in Spark's Python worker but is a plain
    function of Arrow arrays, so it can be tested and profiled without Spark.

    Examples
    --------
    >>> from sparkimg_ml.image_ops import ImageSpec
    >>> from sparkimg_ml.fetch import FetchOptions
    >>> task = FeaturizeTask(ImageSpec(2, 2), FetchOptions(), SOURCE, "keep", "url")
    >>> out = next(featurize_batches([pa.array([None, "/no/such.png"])], task))
    >>> out.field("error").to_pylist()
    ['missing: null source', 'not_found: /no/such.png']
    """
    kind = task.input_kind
    size = task.spec.size
    chunk_rows = task.rows_per_output_batch()
    concurrency = task.fetch.concurrency
    fetcher = Fetcher(task.fetch) if kind == SOURCE else None
    processor = _RowProcessor(task, fetcher)
    arrow_type = output_arrow_type(size, task.features_format)
    pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="sparkimg_ml")
    try:
        for batch in batches:
            items, keys = _row_items(batch, kind)
            origins = (batch.field("origin").to_pylist()
                       if kind == IMAGE_STRUCT and "origin" in {f.name for f in batch.type}
                       else None)
            # Identical sources in one batch are fetched and decoded once.
            remaining = collections.Counter(k for k in keys if k is not None)
            unique_items = []
            seen: set = set()
            for item, key in zip(items, keys):
                if key is None or key not in seen:
                    unique_items.append(item)
                    if key is not None:
                        seen.add(key)
            results = _ordered_map(pool, processor, unique_items, window=4 * concurrency)
            shared: Dict[Any, Result] = {}
            for start in range(0, len(items), chunk_rows):
                stop = min(start + chunk_rows, len(items))
                block = np.zeros((stop - start, size), dtype=np.float32)
                failed = np.zeros(stop - start, dtype=bool)
                reasons: List[Optional[str]] = [None] * (stop - start)
                for row in range(start, stop):
                    key = keys[row]
                    if key is not None and key in shared:
                        result = shared[key]
                    else:
                        result = next(results)
                    if key is not None:
                        remaining[key] -= 1
                        if remaining[key] > 0:
                            shared[key] = result
                        else:
                            shared.pop(key, None)
                    if isinstance(result, SourceError):
                        if task.handle_invalid == "error":
                            where = _describe(items[row], kind, origins[row] if origins else None)
                            raise ImageFeaturizationError(
                                f"ImageUrlFeaturizer could not read the image of row with "
                                f"{task.input_col}={where}: {result.reason}. Set handleInvalid='keep' "
                                f"(null vector, reason in errorCol) or 'skip' (drop the row) to go on "
                                f"past bad images."
                            )
                        failed[row - start] = True
                        reasons[row - start] = result.reason
                    else:
                        block[row - start] = result
                yield pa.StructArray.from_arrays(
                    [_features_array(block, failed, task.features_format), pa.array(reasons, type=pa.string())],
                    fields=list(arrow_type),
                )
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        if fetcher is not None:
            fetcher.close()


def _vector_results_supported() -> bool:
    """Whether ``arrow_udf`` may return ``VectorUDT`` (inside a struct): measured on Spark 4.3."""
    import pyspark

    major, minor = (int(part) for part in pyspark.__version__.split(".")[:2])
    return (major, minor) >= (4, 3)


def make_spark_udf(task: FeaturizeTask, use_arrow_udf: Optional[bool] = None) -> Tuple[Any, str]:
    """The vectorised UDF for ``task`` and the format of its ``features`` field.

    ``arrow_udf`` when Spark has it, returning ``struct<features: vector, error: string>``
    (``array<float>`` features on Spark 4.1/4.2); else a ``pandas_udf`` returning
    ``struct<features: array<float>, error: string>``. Array features still need
    ``array_to_vector``.
    """
    from pyspark.sql import functions as F
    from pyspark.sql.types import ArrayType, DataType, FloatType, StringType, StructField, StructType

    if use_arrow_udf is None:
        use_arrow_udf = hasattr(F, "arrow_udf")
    features_format = VECTOR if use_arrow_udf and _vector_results_supported() else ARRAY
    task = dataclasses.replace(task, features_format=features_format)
    if features_format == VECTOR:
        from pyspark.ml.linalg import VectorUDT

        features_type: DataType = VectorUDT()
    else:
        features_type = ArrayType(FloatType(), containsNull=False)
    return_type = StructType([
        StructField("features", features_type, nullable=True),
        StructField("error", StringType(), nullable=True),
    ])

    # The closures capture only ``task`` (plain values), never the stage itself.
    if use_arrow_udf:
        def featurize_arrow(batches: Iterator[pa.Array]) -> Iterator[pa.Array]:
            return featurize_batches(batches, task)

        return F.arrow_udf(featurize_arrow, return_type), features_format  # type: ignore[call-overload]

    def featurize_pandas(series_batches: Iterator[pd.Series]) -> Iterator[pd.DataFrame]:
        def to_arrow(series: Union[pd.Series, pd.DataFrame]) -> pa.Array:
            if isinstance(series, pd.DataFrame):  # struct columns arrive as DataFrames
                return pa.array(series.to_dict("records"))
            values = [None if not isinstance(v, (str, bytes, bytearray)) else v for v in series.to_list()]
            return pa.array(values, type=pa.string() if task.input_kind == SOURCE else pa.binary())

        for out in featurize_batches(map(to_arrow, series_batches), task):
            features = out.field("features")
            frame = pd.DataFrame({
                "features": [None if v is None else np.asarray(v, dtype=np.float32)
                             for v in features.to_numpy(zero_copy_only=False)],
                "error": out.field("error").to_pylist(),
            })
            yield frame

    return F.pandas_udf(featurize_pandas, return_type), features_format  # type: ignore[call-overload]
