"""Batch plumbing between Spark and the pure image/fetch layers.

Only the image column crosses into Python. Each Spark task gets one thread pool
and one :class:`~sparkimg_ml.fetch.Fetcher` (pooled keep-alive connections);
rows arrive as Arrow batches, every *unique* source of a batch is fetched and
decoded on the pool with a bounded look-ahead window, straight into a row of a
preallocated block whose size is capped in bytes, so memory stays bounded
whatever the image size.

Two layers:

* :func:`decoded_blocks` is the decode loop: Arrow batches in, numpy blocks
  (plus a failed mask and reasons) out. Any consumer of decoded images builds
  on it (the featurizer packs the blocks into Arrow; a model stage can run
  inference on them).
* :func:`featurize_batches` packs those blocks into Arrow
  ``struct<features, error: string>`` batches without copying the values:
  ``features`` leaves in ``VectorUDT``'s own storage layout (a dense vector:
  ``type=1`` and ``values: list<double>``), as ``array<float>`` or as
  ``binary`` (one byte per value).

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

#: How the features leave a batch: as ``VectorUDT`` storage (float64 values),
#: as ``array<float>``, or as ``binary`` holding the uint8 pixels before
#: normalisation.
VECTOR, ARRAY, UINT8 = "vector", "array", "uint8"
FEATURE_FORMATS = (VECTOR, ARRAY, UINT8)
#: Element type of the decoded blocks for each format. A Vector's float64 values
#: are written directly (each one exactly the float32 value ``preprocess`` returns),
#: which saves a widening pass over the block.
BLOCK_DTYPES: Dict[str, np.dtype] = {VECTOR: np.dtype(np.float64), ARRAY: np.dtype(np.float32), UINT8: np.dtype(np.uint8)}

#: Arrow layout of ``pyspark.ml.linalg.VectorUDT().sqlType()``.
VECTOR_STORAGE_TYPE = pa.struct([
    pa.field("type", pa.int8(), nullable=False), ("size", pa.int32()),
    ("indices", pa.list_(pa.int32())), ("values", pa.list_(pa.float64())),
])
_DENSE = 1

#: Upper bound of one decoded block (and output Arrow batch); keeps 224x224 and
#: larger outputs from materialising a whole 10,000-row input batch at once.
OUTPUT_BATCH_BYTES = 32 * 1024 * 1024
MAX_OUTPUT_BATCH_ROWS = 4096


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
    #: One of :data:`FEATURE_FORMATS`; also sets the dtype of the decoded blocks.
    features_format: str = VECTOR
    #: Named in the ``handleInvalid="error"`` message.
    stage_name: str = "ImageUrlFeaturizer"

    @property
    def block_dtype(self) -> np.dtype:
        """Element type of :func:`decoded_blocks`' blocks: float64, float32 or uint8."""
        return BLOCK_DTYPES[self.features_format]

    def rows_per_output_batch(self) -> int:
        row_bytes = self.block_dtype.itemsize * self.spec.size
        return max(1, min(MAX_OUTPUT_BATCH_ROWS, OUTPUT_BATCH_BYTES // row_bytes))


@dataclass
class DecodedBlock:
    """Consecutive rows of one input batch, decoded.

    Attributes
    ----------
    block : numpy.ndarray
        ``(rows, spec.size)`` array of the task's :attr:`FeaturizeTask.block_dtype`:
        normalised values (float) or pixels before normalisation (uint8), flat in
        the spec's layout. Rows that failed are all zeros.
    failed : numpy.ndarray
        ``(rows,)`` bool, True where the row's image could not be read.
    reasons : list of str or None
        The reason code of each failed row (``"http_404: Not Found"``), None for good rows.
    """

    block: np.ndarray
    failed: np.ndarray
    reasons: List[Optional[str]]


def output_arrow_type(size: int, features_format: str = VECTOR) -> pa.DataType:
    if features_format == VECTOR:
        features: pa.DataType = VECTOR_STORAGE_TYPE
    elif features_format == UINT8:
        features = pa.binary()
    else:
        features = pa.list_(pa.float32(), size)
    return pa.struct([("features", features), ("error", pa.string())])


def _validity(failed: np.ndarray) -> Optional[pa.Buffer]:
    """Arrow validity bitmap (None when every row is valid)."""
    if not failed.any():
        return None
    return pa.array(~failed).buffers()[1]


def _features_array(block: np.ndarray, failed: np.ndarray, features_format: str) -> pa.Array:
    """One output batch's features, sharing ``block``'s memory; null where ``failed``."""
    rows, size = block.shape
    values = pa.py_buffer(np.ascontiguousarray(block))
    validity = _validity(failed)
    null_count = int(failed.sum())
    if features_format == UINT8:
        offsets = pa.py_buffer(np.arange(0, (rows + 1) * size, size, dtype=np.int32))
        return pa.Array.from_buffers(pa.binary(), rows, [validity, offsets, values], null_count)
    if features_format == ARRAY:
        flat = pa.Array.from_buffers(pa.float32(), rows * size, [None, values])
        return pa.FixedSizeListArray.from_arrays(flat, size, mask=pa.array(failed) if null_count else None)
    flat = pa.Array.from_buffers(pa.float64(), rows * size, [None, values])
    offsets_array = pa.array(np.arange(0, (rows + 1) * size, size, dtype=np.int32))
    return pa.StructArray.from_arrays(
        [pa.array(np.full(rows, _DENSE, np.int8)), pa.nulls(rows, pa.int32()),
         pa.nulls(rows, pa.list_(pa.int32())), pa.ListArray.from_arrays(offsets_array, flat)],
        fields=list(VECTOR_STORAGE_TYPE), mask=pa.array(failed) if null_count else None,
    )


def _decode_slots() -> int:
    # Decoding is CPU bound and holds a full-size image in memory: cap it near the
    # core count while the (I/O bound) fetches use every pool thread.
    return max(2, os.cpu_count() or 2)


class _RowDecoder:
    """Fetches one row and decodes it into its output row; shared by the pool threads of one task."""

    def __init__(self, task: FeaturizeTask, fetcher: Optional[Fetcher]) -> None:
        self.task = task
        self.fetcher = fetcher
        self._decode_gate = threading.BoundedSemaphore(_decode_slots())

    def __call__(self, work: Tuple[Any, np.ndarray]) -> Optional[SourceError]:
        item, out = work
        try:
            if item is None:
                raise SourceError("missing", "null source")
            kind = self.task.input_kind
            if kind == IMAGE_STRUCT:
                height, width, n_channels, mode, data = item
                with self._decode_gate:
                    preprocess_spark_struct(height, width, n_channels, mode, data, self.task.spec, out=out)
                return None
            if kind == SOURCE:
                assert self.fetcher is not None
                data = self.fetcher.fetch(item)
            else:
                data = item
                if len(data) == 0:
                    raise SourceError("missing", "empty bytes")
            with self._decode_gate:
                preprocess_bytes(data, self.task.spec, out=out)
            return None
        except SourceError as error:
            return error


def _ordered_map(pool: ThreadPoolExecutor, fn: Callable[[Any], Any], items: Iterable[Any],
                 window: int) -> Iterator[Any]:
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


def _batch_blocks(batch: pa.Array, task: FeaturizeTask, decoder: _RowDecoder,
                  pool: ThreadPoolExecutor) -> Iterator[DecodedBlock]:
    """Decode one Arrow batch into consecutive blocks of at most ``rows_per_output_batch`` rows."""
    kind = task.input_kind
    items, keys = _row_items(batch, kind)
    origins = (batch.field("origin").to_pylist()
               if kind == IMAGE_STRUCT and "origin" in {f.name for f in batch.type} else None)
    rows = len(items)
    block_rows = task.rows_per_output_batch()
    # Identical sources in one batch are fetched and decoded once: a later row copies
    # the values of the first row with its source (``source_row``), which is kept
    # until its last copy (``last_copy``).
    first_row: Dict[Any, int] = {}
    source_row = [row if key is None else first_row.setdefault(key, row) for row, key in enumerate(keys)]
    last_copy = {source: row for row, source in enumerate(source_row) if source != row}
    kept: Dict[int, Tuple[np.ndarray, Optional[SourceError]]] = {}

    blocks: Dict[int, np.ndarray] = {}

    def block_of(index: int) -> np.ndarray:
        # Allocated on first use, by the look-ahead of the submissions or by the consumer.
        if index not in blocks:
            count = min(block_rows, rows - index * block_rows)
            blocks[index] = np.zeros((count, task.spec.size), dtype=task.block_dtype)
        return blocks[index]

    def work() -> Iterator[Tuple[Any, np.ndarray]]:
        # Runs on the consuming thread (inside ``next(results)``), so ``blocks`` needs no lock.
        for row in range(rows):
            if source_row[row] == row:
                index, offset = divmod(row, block_rows)
                yield items[row], block_of(index)[offset]

    results = _ordered_map(pool, decoder, work(), window=4 * task.fetch.concurrency)
    for index, start in enumerate(range(0, rows, block_rows)):
        block = block_of(index)
        failed = np.zeros(len(block), dtype=bool)
        reasons: List[Optional[str]] = [None] * len(block)
        for offset, row in enumerate(range(start, start + len(block))):
            source = source_row[row]
            if source == row:
                error = next(results)
                if source in last_copy:
                    kept[source] = (block[offset], error)
            else:
                values, error = kept[source]
                block[offset] = values
                if last_copy[source] == row:
                    del kept[source]
            if error is None:
                continue
            if task.handle_invalid == "error":
                where = _describe(items[row], kind, origins[row] if origins else None)
                raise ImageFeaturizationError(
                    f"{task.stage_name} could not read the image of row with {task.input_col}={where}: "
                    f"{error.reason}. Set handleInvalid='keep' (null output, reason in errorCol) or "
                    f"'skip' (drop the row) to go on past bad images."
                )
            block[offset] = 0  # a failed decode may have written part of the row
            failed[offset] = True
            reasons[offset] = error.reason
        del blocks[index]
        yield DecodedBlock(block, failed, reasons)


def decoded_blocks(batches: Iterable[pa.Array], task: FeaturizeTask) -> Iterator[DecodedBlock]:
    """Fetch and decode every row of ``batches`` (Arrow arrays of the image column) into numpy blocks.

    The blocks follow the input rows in order: each input batch is cut into
    consecutive :class:`DecodedBlock` s of at most ``task.rows_per_output_batch()``
    rows (never spanning two input batches), so concatenating them gives one row
    per input row. Values are ``task.block_dtype``: for normalised float32 values
    use ``features_format=ARRAY``, for raw uint8 pixels (normalise them later with
    :class:`sparkimg_ml.tensors.TensorInfo` or :func:`sparkimg_ml.tensors.normalisation`)
    ``features_format=UINT8``. A row that cannot be read raises
    :class:`ImageFeaturizationError` under ``handle_invalid="error"``; otherwise it
    is marked in ``failed`` with its reason.

    Plain function of Arrow arrays: runs in Spark's Python worker, and in tests or
    a profiler without Spark. One thread pool and one Fetcher serve all batches.

    Examples
    --------
    >>> from sparkimg_ml.image_ops import ImageSpec
    >>> from sparkimg_ml.fetch import FetchOptions
    >>> task = FeaturizeTask(ImageSpec(2, 2), FetchOptions(), SOURCE, "keep", "url", features_format=UINT8)
    >>> [decoded] = decoded_blocks([pa.array([None, "/no/such.png"])], task)
    >>> decoded.block.shape, decoded.block.dtype, decoded.failed.tolist()
    ((2, 12), dtype('uint8'), [True, True])
    >>> decoded.reasons
    ['missing: null source', 'not_found: /no/such.png']
    """
    fetcher = Fetcher(task.fetch) if task.input_kind == SOURCE else None
    decoder = _RowDecoder(task, fetcher)
    pool = ThreadPoolExecutor(max_workers=task.fetch.concurrency, thread_name_prefix="sparkimg_ml")
    try:
        for batch in batches:
            yield from _batch_blocks(batch, task, decoder, pool)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        if fetcher is not None:
            fetcher.close()


def featurize_batches(batches: Iterable[pa.Array], task: FeaturizeTask) -> Iterator[pa.StructArray]:
    """Turn Arrow batches of the image column into ``struct<features, error>`` batches.

    This is the whole per-task job: :func:`decoded_blocks`, then each block wrapped
    as Arrow without copying its values.

    Examples
    --------
    >>> from sparkimg_ml.image_ops import ImageSpec
    >>> from sparkimg_ml.fetch import FetchOptions
    >>> task = FeaturizeTask(ImageSpec(2, 2), FetchOptions(), SOURCE, "keep", "url")
    >>> out = next(featurize_batches([pa.array([None, "/no/such.png"])], task))
    >>> out.field("error").to_pylist()
    ['missing: null source', 'not_found: /no/such.png']
    """
    fields = list(output_arrow_type(task.spec.size, task.features_format))
    for decoded in decoded_blocks(batches, task):
        yield pa.StructArray.from_arrays(
            [_features_array(decoded.block, decoded.failed, task.features_format),
             pa.array(decoded.reasons, type=pa.string())],
            fields=fields,
        )


def _vector_results_supported() -> bool:
    """Whether ``arrow_udf`` may return ``VectorUDT`` (inside a struct): measured on Spark 4.3."""
    import pyspark

    major, minor = (int(part) for part in pyspark.__version__.split(".")[:2])
    return (major, minor) >= (4, 3)


def result_struct_type(features_format: str) -> Any:
    """Spark type of a UDF result: ``struct<features: vector | array<float> | binary, error: string>``."""
    from pyspark.sql.types import ArrayType, BinaryType, DataType, FloatType, StringType, StructField, StructType

    if features_format == VECTOR:
        from pyspark.ml.linalg import VectorUDT

        features_type: DataType = VectorUDT()
    elif features_format == UINT8:
        features_type = BinaryType()
    else:
        features_type = ArrayType(FloatType(), containsNull=False)
    return StructType([
        StructField("features", features_type, nullable=True),
        StructField("error", StringType(), nullable=True),
    ])


def make_spark_udf(task: FeaturizeTask, use_arrow_udf: Optional[bool] = None) -> Tuple[Any, str]:
    """The vectorised UDF for ``task`` and the format of its ``features`` field.

    ``task.features_format`` is the format asked for. ``arrow_udf`` (Spark >= 4.1)
    returns ``struct<features, error: string>`` with ``features`` a ``vector``
    (Spark >= 4.3), ``array<float>`` or ``binary``; older Sparks get a
    ``pandas_udf`` with the same struct. Where a Vector cannot be returned the
    features come back as ``array<float>`` (the returned format says so) and still
    need ``array_to_vector``.
    """
    from pyspark.sql import functions as F

    if use_arrow_udf is None:
        use_arrow_udf = hasattr(F, "arrow_udf")
    features_format = task.features_format
    if features_format == VECTOR and not (use_arrow_udf and _vector_results_supported()):
        features_format = ARRAY
    task = dataclasses.replace(task, features_format=features_format)
    return_type = result_struct_type(features_format)

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

        as_bytes = task.features_format == UINT8
        for decoded in decoded_blocks(map(to_arrow, series_batches), task):
            features = [None if bad else (row.tobytes() if as_bytes else row)
                        for row, bad in zip(decoded.block, decoded.failed)]
            yield pd.DataFrame({"features": features, "error": decoded.reasons})

    return F.pandas_udf(featurize_pandas, return_type), features_format  # type: ignore[call-overload]
