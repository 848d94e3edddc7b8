"""Reading the Parquet tensor files that :func:`sparkimg_ml.training.write_tensors` writes.

No Spark and no torch: :class:`TensorFiles` yields numpy batches, sharded and
optionally shuffled; ``TensorDataset`` (torch) and serving code build on it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import (
    TYPE_CHECKING,
    Any,
)

import numpy as np

from ..tensors import TensorInfo

if TYPE_CHECKING:
    import pyarrow

#: Column names inside the written files (``write_tensors``' extra columns keep their own names).
TENSOR_COLUMN = "tensor"
LABEL_COLUMN = "label"
#: The label and extra columns of a run of rows, by column name.
Side = dict[str, np.ndarray]
#: Metadata key (next to ``tensor``) describing the file format.
FORMAT_KEY = "sparkimg_ml"
FORMAT_VERSION = 1
#: Key of the footer entry where Spark stores its schema, column metadata included.
SPARK_SCHEMA_KEY = b"org.apache.spark.sql.parquet.row.metadata"
#: Default Parquet row group size: small enough for a reader to hold a few in memory,
#: large enough that row groups are read in long sequential runs.

@dataclass(frozen=True)
class _RowGroup:
    file: str
    index: int
    rows: int


class TensorFiles:
    """The Parquet files written by :func:`write_tensors`, read with pyarrow (no Spark, no torch).

    Examples
    --------
    >>> files = TensorFiles("/shared/digits")                       # doctest: +SKIP
    >>> files.info.shape, files.num_rows, files.label_dtype          # doctest: +SKIP
    ((1, 16, 16), 1797, 'int64')
    >>> x, y = next(files.batches(batch_size=32))                  # doctest: +SKIP
    """

    def __init__(self, path: str) -> None:
        import pyarrow.parquet as pq

        self.path = path
        filesystem, root = _filesystem(path)
        self._filesystem = filesystem
        names = _data_files(filesystem, root)
        if not names:
            raise FileNotFoundError(f"TensorFiles: no Parquet files under {path!r}; write them with write_tensors.")
        metadata: Mapping[str, Any] | None = None
        groups: list[_RowGroup] = []
        for name in names:
            with filesystem.open_input_file(name) as handle:
                parquet = pq.ParquetFile(handle)
                file_metadata = _tensor_column_metadata(parquet.schema_arrow.metadata or {}, name)
                if metadata is None:
                    metadata = file_metadata
                elif file_metadata != metadata:
                    raise ValueError(
                        f"TensorFiles: {name} records different tensor metadata than the other files under "
                        f"{path!r} ({file_metadata} != {metadata}); write tensors of one kind per directory.")
                groups.extend(_RowGroup(name, i, parquet.metadata.row_group(i).num_rows)
                              for i in range(parquet.num_row_groups))
        assert metadata is not None
        self.metadata: dict[str, Any] = dict(metadata)
        self.info = TensorInfo.from_metadata(self.metadata)
        label = self.metadata[FORMAT_KEY].get("label")
        #: ``"int64"`` or ``"float32"``, or None when the files hold no labels.
        self.label_dtype: str | None = label["dtype"] if label else None
        #: The columns ``write_tensors(..., extra_cols=...)`` wrote next to the tensor (e.g. an id).
        self.extra_cols: tuple[str, ...] = tuple(self.metadata[FORMAT_KEY].get("extra") or ())
        self.row_groups: tuple[_RowGroup, ...] = tuple(g for g in groups if g.rows > 0)

    @property
    def num_rows(self) -> int:
        """Rows in all files."""
        return sum(group.rows for group in self.row_groups)

    def shard_rows(self, shard: int, num_shards: int) -> int:
        """Rows that shard ``shard`` of ``num_shards`` reads in one epoch."""
        return (self.num_rows * (shard + 1)) // num_shards - (self.num_rows * shard) // num_shards

    def batches(self, batch_size: int = 64, shard: int = 0, num_shards: int = 1, shuffle_buffer: int = 0,
                seed: int = 0, epoch: int = 0, extra_cols: Sequence[str] = ()) -> Iterator[tuple[Any, ...]]:
        """Yield ``(values, labels)`` for one epoch of one shard; ``values`` as stored, ``(n, size)``.

        With ``extra_cols`` (some of :attr:`extra_cols`) each batch is ``(values, labels,
        extras)``, ``extras`` a dict of numpy arrays (pyarrow's ``to_numpy``: strings as
        objects) that follow the rows through sharding and shuffling.

        The row groups, in file order or (with ``shuffle_buffer``) permuted by
        ``(seed, epoch)``, form one sequence of rows that is cut into ``num_shards``
        contiguous ranges of equal size (within one row): shard ``shard`` reads only
        the row groups overlapping its range. With ``shuffle_buffer > 0`` the rows
        of a shard pass through a buffer of that many rows, from which each output
        row is drawn at random. The last batch may be smaller.
        """
        if not 0 <= shard < num_shards:
            raise ValueError(f"shard must be in [0, {num_shards}); got {shard}.")
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1; got {batch_size}.")
        extras = self._checked_extra_cols(extra_cols)
        order = list(self.row_groups)
        if shuffle_buffer > 0:
            order = [order[i] for i in np.random.default_rng([seed, epoch]).permutation(len(order))]
        pieces = _shard_pieces(order, shard, num_shards)
        rng = np.random.default_rng([seed, epoch, shard, num_shards])
        pending: list[tuple[np.ndarray, Side]] = []
        pending_rows = 0

        def batch(values: np.ndarray, side: Side) -> tuple[Any, ...]:
            labels = side.get(LABEL_COLUMN)
            return (values, labels, {name: side[name] for name in extras}) if extras else (values, labels)

        for values, side in self._shuffled(self._read(pieces, extras), shuffle_buffer, rng):
            pending.append((values, side))
            pending_rows += len(values)
            if pending_rows < batch_size:
                continue
            block, block_side = _concatenate(pending)
            cut = pending_rows - pending_rows % batch_size
            for start in range(0, cut, batch_size):
                yield batch(block[start:start + batch_size], _slice(block_side, start, start + batch_size))
            pending = [(block[cut:], _slice(block_side, cut, pending_rows))] if cut < pending_rows else []
            pending_rows -= cut
        if pending_rows:
            yield batch(*_concatenate(pending))

    def _checked_extra_cols(self, extra_cols: Sequence[str]) -> tuple[str, ...]:
        wanted = (extra_cols,) if isinstance(extra_cols, str) else tuple(extra_cols)
        unknown = [name for name in wanted if name not in self.extra_cols]
        if unknown:
            written = ", ".join(map(repr, self.extra_cols)) or "none"
            raise ValueError(f"TensorFiles: {self.path!r} has no extra column {', '.join(map(repr, unknown))} "
                             f"(extra columns written: {written}); write them with "
                             "write_tensors(..., extra_cols=[...]).")
        return wanted

    def _read(self, pieces: Sequence[tuple[_RowGroup, int, int]],
              extras: Sequence[str] = ()) -> Iterator[tuple[np.ndarray, Side]]:
        import pyarrow.parquet as pq

        side_columns = ([LABEL_COLUMN] if self.label_dtype else []) + list(extras)
        columns = [TENSOR_COLUMN] + side_columns
        open_files: dict[str, Any] = {}
        try:
            for group, start, stop in pieces:
                if group.file not in open_files:
                    open_files[group.file] = pq.ParquetFile(self._filesystem.open_input_file(group.file))
                # One or two columns: Arrow's CPU pool gains nothing here, and its threads, started in a
                # training process, are still alive at interpreter exit, where Arrow's teardown can abort
                # the process ("terminate called without an active exception") after training succeeded.
                group_table = open_files[group.file].read_row_group(group.index, columns=columns, use_threads=False)
                table = group_table.slice(start, stop - start)
                values = self._values(table.column(TENSOR_COLUMN).combine_chunks(), group.file)
                side = {name: table.column(name).to_numpy() for name in side_columns}
                if self.label_dtype:
                    side[LABEL_COLUMN] = side[LABEL_COLUMN].astype(self.label_dtype, copy=False)
                yield values, side
        finally:
            for parquet in open_files.values():
                parquet.close()

    def _values(self, array: pyarrow.Array, file: str) -> np.ndarray:
        """A ``(rows, size)`` numpy view of one column chunk, after checking every row has ``size`` values."""
        import pyarrow as pa
        import pyarrow.compute as pc

        size, rows = self.info.size, len(array)
        if array.null_count:
            raise ValueError(f"TensorFiles: {file} has {array.null_count} null tensors; write_tensors drops them, "
                             "so this file was written by something else.")
        if pa.types.is_binary(array.type) or pa.types.is_large_binary(array.type):
            lengths = pc.binary_length(array)
            offset_type = np.int64 if pa.types.is_large_binary(array.type) else np.int32
            offsets = np.frombuffer(array.buffers()[1], dtype=offset_type)[array.offset:array.offset + rows + 1]
            flat = np.frombuffer(array.buffers()[2], dtype=np.uint8)[offsets[0]:offsets[-1]]
        else:
            lengths = pc.list_value_length(array)
            flat = array.flatten().to_numpy(zero_copy_only=False)
        if rows and pc.min_max(lengths).as_py() != {"min": size, "max": size}:
            raise ValueError(f"TensorFiles: {file} has rows whose number of values is not {size} "
                             f"(shape {list(self.info.shape)}).")
        return flat.reshape(rows, size)

    @staticmethod
    def _shuffled(chunks: Iterator[tuple[np.ndarray, Side]], buffer_rows: int,
                  rng: np.random.Generator) -> Iterator[tuple[np.ndarray, Side]]:
        """Pass rows through a buffer of ``buffer_rows``: each row leaving it is a uniform draw from it."""
        if buffer_rows <= 0:
            yield from chunks
            return
        pool: list[tuple[np.ndarray, Side]] = []
        pool_rows = 0
        for values, side in chunks:
            pool.append((values, side))
            pool_rows += len(values)
            if pool_rows <= buffer_rows:
                continue
            block, block_side = _concatenate(pool)
            order = rng.permutation(pool_rows)
            leaving, staying = order[:pool_rows - buffer_rows], order[pool_rows - buffer_rows:]
            yield block[leaving], _take(block_side, leaving)
            pool, pool_rows = [(block[staying], _take(block_side, staying))], buffer_rows
        if pool_rows:
            block, block_side = _concatenate(pool)
            order = rng.permutation(pool_rows)
            yield block[order], _take(block_side, order)


def _shard_pieces(order: Sequence[_RowGroup], shard: int, num_shards: int) -> list[tuple[_RowGroup, int, int]]:
    """``(row group, first row, end row)`` of the shard's contiguous range of the row sequence."""
    total = sum(group.rows for group in order)
    low, high = total * shard // num_shards, total * (shard + 1) // num_shards
    pieces, position = [], 0
    for group in order:
        start, stop = max(low - position, 0), min(high - position, group.rows)
        if start < stop:
            pieces.append((group, start, stop))
        position += group.rows
    return pieces


def _concatenate(parts: Sequence[tuple[np.ndarray, Side]]) -> tuple[np.ndarray, Side]:
    if len(parts) == 1:
        return parts[0]
    values = np.concatenate([p[0] for p in parts])
    return values, {name: np.concatenate([p[1][name] for p in parts]) for name in parts[0][1]}


def _slice(side: Side, start: int, stop: int) -> Side:
    return {name: column[start:stop] for name, column in side.items()}


def _take(side: Side, index: np.ndarray) -> Side:
    return {name: column[index] for name, column in side.items()}


def _filesystem(path: str) -> tuple[Any, str]:
    """A pyarrow filesystem and the directory path in it (local paths, ``file://`` and pyarrow's URIs)."""
    import pyarrow.fs

    if "://" not in path:
        return pyarrow.fs.LocalFileSystem(), os.path.abspath(path)
    return pyarrow.fs.FileSystem.from_uri(path.replace("s3a://", "s3://", 1))


def _data_files(filesystem: Any, root: str) -> list[str]:
    import pyarrow.fs

    selector = pyarrow.fs.FileSelector(root, recursive=True, allow_not_found=True)
    return sorted(
        info.path for info in filesystem.get_file_info(selector)
        if info.type == pyarrow.fs.FileType.File and info.path.endswith(".parquet")
        and not any(part.startswith(("_", ".")) for part in info.path[len(root):].split("/") if part)
    )


def _tensor_column_metadata(footer: Mapping[bytes, bytes], name: str) -> Mapping[str, Any]:
    """The ``tensor`` column's metadata from the Spark schema in a Parquet footer."""
    schema = json.loads(footer[SPARK_SCHEMA_KEY]) if SPARK_SCHEMA_KEY in footer else {}
    for field in schema.get("fields", []):
        if field.get("name") == TENSOR_COLUMN and FORMAT_KEY in field.get("metadata", {}):
            return field["metadata"]
    raise ValueError(f"TensorFiles: {name} was not written by write_tensors (its footer has no "
                     f"'{TENSOR_COLUMN}' column with tensor metadata).")
