"""The decode loop: Arrow batches of an image column in, numpy blocks of pixels out.

Only the image column crosses into Python. Each Spark task gets one thread pool
and one :class:`~sparkimg_ml.fetch.Fetcher` (pooled keep-alive connections);
rows arrive as Arrow batches, every *unique* source of a batch is fetched and
decoded on the pool with a bounded look-ahead window, straight into a row of a
preallocated block whose size is capped in bytes, so memory stays bounded
whatever the image size.

:func:`decoded_blocks` is what every image stage's per-batch function builds on
(:mod:`.featurize` packs the blocks into Arrow; :mod:`.embed` runs a model on
them). It knows Spark's batch shapes but no Params: a stage passes a
:class:`DecodeTask` of plain values.
"""

from __future__ import annotations

import collections
import os
import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

from ..errors import RowFailure, SourceError, redact_source
from ..fetch import Fetcher, FetchOptions
from ..image import ImageSpec, SourceInfo, preprocess_bytes, preprocess_spark_struct, source_info
from ..image.info import struct_source_info
from ..schema import IMAGE_STRUCT, IMAGE_STRUCT_FIELDS, SOURCE, UINT8, VECTOR  # noqa: F401 - UINT8 for the doctest
from .arrow import BLOCK_DTYPES

#: Upper bound of one decoded block (and output Arrow batch); keeps 224x224 and
#: larger outputs from materialising a whole 10,000-row input batch at once.
OUTPUT_BATCH_BYTES = 32 * 1024 * 1024
MAX_OUTPUT_BATCH_ROWS = 4096


class ImageFeaturizationError(RuntimeError):
    """Raised with ``handleInvalid="error"``; names the row's source and the reason."""


@dataclass(frozen=True)
class DecodeTask:
    """Everything a Python worker needs, as plain picklable values."""

    spec: ImageSpec
    fetch: FetchOptions
    input_kind: str
    handle_invalid: str
    input_col: str
    #: ``vector``, ``array`` or ``uint8`` (:mod:`sparkimg_ml.schema`): sets the dtype of the decoded blocks.
    features_format: str = VECTOR
    #: Named in the ``handleInvalid="error"`` message.
    stage_name: str = "ImageUrlFeaturizer"
    #: Also read each row's :class:`~sparkimg_ml.image.SourceInfo` (``sourceInfoCol``).
    source_info: bool = False

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
        ``(rows, spec.size)`` array of the task's :attr:`DecodeTask.block_dtype`:
        normalised values (float) or pixels before normalisation (uint8), flat in
        the spec's layout. Rows that failed are all zeros.
    failed : numpy.ndarray
        ``(rows,)`` bool, True where the row's image could not be read.
    reasons : list of str or None
        The reason code of each failed row (``"http_404: Not Found"``), None for good rows.
    infos : list of SourceInfo or None, or None
        With ``DecodeTask.source_info``: each row's source facts, None where nothing was
        read (a failed fetch, a null source); a row that failed to decode still has its
        length and hash. None when the task did not ask for them.
    """

    block: np.ndarray
    failed: np.ndarray
    reasons: list[str | None]
    infos: list[SourceInfo | None] | None = None


def _decode_slots() -> int:
    # Decoding is CPU bound and holds a full-size image in memory: cap it near the
    # core count while the (I/O bound) fetches use every pool thread.
    return max(2, os.cpu_count() or 2)


class _RowDecoder:
    """Fetches one row and decodes it into its output row; shared by the pool threads of one task."""

    def __init__(self, task: DecodeTask, fetcher: Fetcher | None) -> None:
        self.task = task
        self.fetcher = fetcher
        self._decode_gate = threading.BoundedSemaphore(_decode_slots())

    def __call__(self, work: tuple[Any, np.ndarray]) -> tuple[SourceError | None, SourceInfo | None]:
        """Decode one row into ``out``: ``(error or None, source facts or None)``."""
        item, out = work
        info = None
        try:
            if item is None:
                raise SourceError("missing", "null source")
            kind = self.task.input_kind
            if kind == IMAGE_STRUCT:
                height, width, n_channels, mode, data = item
                if self.task.source_info:
                    info = struct_source_info(height, width, n_channels)
                with self._decode_gate:
                    preprocess_spark_struct(height, width, n_channels, mode, data, self.task.spec, out=out)
                return None, info
            if kind == SOURCE:
                assert self.fetcher is not None
                data = self.fetcher.fetch(item)
            else:
                data = item
                if len(data) == 0:
                    raise SourceError("missing", "empty bytes")
            if self.task.source_info:
                info = source_info(data)
            with self._decode_gate:
                preprocess_bytes(data, self.task.spec, out=out)
            return None, info
        except SourceError as error:
            return error, info


def _ordered_map(pool: ThreadPoolExecutor, fn: Callable[[Any], Any], items: Iterable[Any],
                 window: int) -> Iterator[Any]:
    """``map`` over ``items`` in order, keeping at most ``window`` calls in flight."""
    pending: collections.deque[Future] = collections.deque()
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


def _row_items(batch: pa.Array, kind: str) -> tuple[list[Any], list[Any]]:
    """(work items, de-duplication keys) for one Arrow batch of the image column."""
    if isinstance(batch, pa.ChunkedArray):
        batch = batch.combine_chunks()
    if kind == IMAGE_STRUCT:
        columns = [batch.field(name).to_pylist() for name in IMAGE_STRUCT_FIELDS]
        valid = batch.is_valid().to_pylist()
        items: list[Any] = [
            tuple(values) if ok and values[-1] is not None else None
            for ok, values in zip(valid, zip(*columns))
        ]
        return items, [None] * len(items)  # decoded pixels: nothing to fetch twice
    values = batch.to_pylist()
    if kind == SOURCE:
        values = [None if v is None or not v.strip() else v for v in values]
        return values, values
    return values, [None] * len(values)


def _describe(item: Any, kind: str, origin: str | None) -> str:
    if kind == IMAGE_STRUCT:
        return redact_source(origin) if origin else "<image struct>"
    return redact_source(item)


def _batch_blocks(batch: pa.Array, task: DecodeTask, decoder: _RowDecoder,
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
    first_row: dict[Any, int] = {}
    source_row = [row if key is None else first_row.setdefault(key, row) for row, key in enumerate(keys)]
    last_copy = {source: row for row, source in enumerate(source_row) if source != row}
    kept: dict[int, tuple[np.ndarray, SourceError | None, SourceInfo | None]] = {}

    blocks: dict[int, np.ndarray] = {}

    def block_of(index: int) -> np.ndarray:
        # Allocated on first use, by the look-ahead of the submissions or by the consumer.
        if index not in blocks:
            count = min(block_rows, rows - index * block_rows)
            blocks[index] = np.zeros((count, task.spec.size), dtype=task.block_dtype)
        return blocks[index]

    def work() -> Iterator[tuple[Any, np.ndarray]]:
        # Runs on the consuming thread (inside ``next(results)``), so ``blocks`` needs no lock.
        for row in range(rows):
            if source_row[row] == row:
                index, offset = divmod(row, block_rows)
                yield items[row], block_of(index)[offset]

    results = _ordered_map(pool, decoder, work(), window=4 * task.fetch.concurrency)
    for index, start in enumerate(range(0, rows, block_rows)):
        block = block_of(index)
        failed = np.zeros(len(block), dtype=bool)
        reasons: list[str | None] = [None] * len(block)
        infos: list[SourceInfo | None] | None = [None] * len(block) if task.source_info else None
        for offset, row in enumerate(range(start, start + len(block))):
            source = source_row[row]
            if source == row:
                error, info = next(results)
                if source in last_copy:
                    kept[source] = (block[offset], error, info)
            else:
                values, error, info = kept[source]
                block[offset] = values
                if last_copy[source] == row:
                    del kept[source]
            if infos is not None:
                infos[offset] = info
            if error is None:
                continue
            if task.handle_invalid == "error":
                where = _describe(items[row], kind, origins[row] if origins else None)
                raise ImageFeaturizationError(
                    RowFailure(task.stage_name, task.input_col, where, error.reason).message())
            block[offset] = 0  # a failed decode may have written part of the row
            failed[offset] = True
            reasons[offset] = error.reason
        del blocks[index]
        yield DecodedBlock(block, failed, reasons, infos)


def decoded_blocks(batches: Iterable[pa.Array], task: DecodeTask) -> Iterator[DecodedBlock]:
    """Fetch and decode every row of ``batches`` (Arrow arrays of the image column) into numpy blocks.

    The blocks follow the input rows in order: each input batch is cut into
    consecutive :class:`DecodedBlock` s of at most ``task.rows_per_output_batch()``
    rows (never spanning two input batches), so concatenating them gives one row
    per input row. Values are ``task.block_dtype``: for normalised float32 values
    use ``features_format="array"``, for raw uint8 pixels (normalise them later with
    :class:`sparkimg_ml.tensors.TensorInfo` or :func:`sparkimg_ml.tensors.normalisation`)
    ``features_format="uint8"``. A row that cannot be read raises
    :class:`ImageFeaturizationError` under ``handle_invalid="error"``; otherwise it
    is marked in ``failed`` with its reason.

    Plain function of Arrow arrays: runs in Spark's Python worker, and in tests or
    a profiler without Spark. One thread pool and one Fetcher serve all batches.

    Examples
    --------
    >>> from sparkimg_ml.image import ImageSpec
    >>> from sparkimg_ml.fetch import FetchOptions
    >>> task = DecodeTask(ImageSpec(2, 2), FetchOptions(), SOURCE, "keep", "url", features_format=UINT8)
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
