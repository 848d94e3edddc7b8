"""``write_tensors``: a tensor column (and labels) to self-describing Parquet files, on Spark."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..errors import missing_column
from ..schema import TENSOR_KEY
from ..tensors import TensorInfo
from .files import FORMAT_KEY, FORMAT_VERSION, LABEL_COLUMN, TENSOR_COLUMN

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame

DEFAULT_ROW_GROUP_BYTES = 16 * 1024 * 1024
WRITE_MODES = ("error", "errorifexists", "overwrite", "append")


@dataclass(frozen=True)
class TensorWriteSummary:
    """What :func:`write_tensors` wrote: rows kept, and rows dropped by cause.

    ``null_tensors`` and ``null_labels`` may overlap (a row with both null is
    counted in each); ``dropped`` counts each dropped row once.
    """

    path: str
    rows: int
    dropped: int
    null_tensors: int
    null_labels: int


def write_tensors(df: DataFrame, path: str, tensor_col: str, label_col: str | None = None,
                  mode: str = "error", *, row_group_bytes: int = DEFAULT_ROW_GROUP_BYTES,
                  extra_cols: Sequence[str] = ()) -> TensorWriteSummary:
    """Write a tensor column (and a label) to Parquet for :class:`TensorDataset`; return the counts.

    Parameters
    ----------
    df : DataFrame
        Any DataFrame; only ``tensor_col`` and ``label_col`` are written (other
        columns are not computed unless Spark needs them).
    path : str
        Output directory, as for ``DataFrameWriter.parquet`` (local, ``s3a://``, ...).
        Training processes read it with pyarrow, so they must see the same storage.
    tensor_col : str
        A column with ``tensor`` metadata (``ImageUrlFeaturizer``, ``TensorReshaper``):
        a ``Vector``, a flat or nested float array, or a ``uint8`` ``binary`` column.
        Float tensors are written as ``array<float>``, ``uint8`` tensors as ``binary``.
    label_col : str, optional
        A numeric column: integers are written as ``long``, fractions as ``float``.
    mode : str
        ``"error"`` (default; fails if ``path`` exists), ``"overwrite"`` or ``"append"``
        (appended rows must have the same tensor metadata).
    row_group_bytes : int
        Target Parquet row group size; the dataset reads one row group at a time.
    extra_cols : sequence of str
        Other columns to write as they are (e.g. an id, to join predictions back);
        ``TensorDataset(..., extra_cols=...)`` and ``TensorFiles.batches`` give them
        with each batch. ``tensor`` and ``label`` are reserved names.

    Returns
    -------
    TensorWriteSummary
        Rows written and rows dropped for a null tensor or label, counted in the
        same pass as the write (the input is computed once).

    Raises
    ------
    ValueError
        For a missing column, a column without tensor metadata, an unknown ``mode``,
        or (failing the Spark job) a row whose number of values differs from the shape.
    TypeError
        For a column type that holds no tensor, or a non-numeric label.

    Examples
    --------
    >>> import tempfile
    >>> from pyspark.sql import SparkSession
    >>> spark = SparkSession.builder.getOrCreate()
    >>> meta = {"tensor": {"shape": [2, 2, 1], "layout": "HWC", "dtype": "float32", "scale": 1 / 255}}
    >>> df = spark.createDataFrame([([0.0, 0.1, 0.2, 0.3], 1), (None, 0)],
    ...                            "pixels array<float>, label int").withMetadata("pixels", meta)
    >>> summary = write_tensors(df, tempfile.mkdtemp() + "/t", "pixels", label_col="label")
    >>> summary.rows, summary.null_tensors
    (1, 1)
    """
    from pyspark.sql import Observation
    from pyspark.sql import functions as F

    if mode not in WRITE_MODES:
        raise ValueError(f"write_tensors: mode must be one of {', '.join(map(repr, WRITE_MODES))}; got {mode!r}.")
    if not isinstance(row_group_bytes, int) or row_group_bytes < 1024:
        raise ValueError(f"write_tensors: row_group_bytes must be an int of at least 1024; got {row_group_bytes!r}.")
    field = _field(df, tensor_col, "tensor_col")
    try:
        info = TensorInfo.from_metadata(field.metadata)
    except ValueError as error:
        raise ValueError(f"write_tensors: tensor column {tensor_col!r}: {error} Set it with "
                         f"df.withMetadata({tensor_col!r}, {{'tensor': {{'shape': [...], ...}}}}).") from error
    tensor, stored_dtype = _flat_tensor_column(F.col(tensor_col), field.dataType, info, tensor_col)
    extras = _checked_extra_cols(df, extra_cols)

    tensor_metadata = dict(field.metadata.get(TENSOR_KEY, field.metadata))
    tensor_metadata["dtype"] = stored_dtype
    file_format: dict[str, Any] = {"version": FORMAT_VERSION, "label": None}
    if extras:
        file_format["extra"] = extras
    columns = [tensor]
    null_label = F.lit(False)
    if label_col is not None:
        label_field = _field(df, label_col, "label_col")
        label, label_dtype = _label_column(F.col(label_col), label_field.dataType, label_col)
        file_format["label"] = {"dtype": label_dtype, "source": label_col}
        columns.append(label.alias(LABEL_COLUMN))
        null_label = F.col(LABEL_COLUMN).isNull()
    metadata = {TENSOR_KEY: tensor_metadata, FORMAT_KEY: file_format}
    selected = df.select(columns[0].alias(TENSOR_COLUMN, metadata=metadata), *columns[1:], *extras)

    null_tensor = F.col(TENSOR_COLUMN).isNull()
    counts = Observation(f"write_tensors_{uuid.uuid4().hex}")  # a name of its own, should calls overlap
    observed = selected.observe(
        counts,
        F.count(F.lit(1)).alias("total"),
        F.count(F.when(null_tensor, True)).alias("null_tensors"),
        F.count(F.when(null_label, True)).alias("null_labels"),
        F.count(F.when(null_tensor | null_label, True)).alias("dropped"),
    )
    kept = observed.where(~null_tensor & ~null_label)
    # Parquet measures a row group only every 100+ rows, which for image rows can be far past the
    # target: cap the rows per group from the row size too (Parquet >= 1.13 reads this option).
    rows_per_group = max(1, row_group_bytes // (info.size * (1 if stored_dtype == "uint8" else 4)))
    (kept.write.mode(mode).option("parquet.block.size", row_group_bytes)
     .option("parquet.block.row.count.limit", rows_per_group).parquet(path))
    metrics = counts.get
    return TensorWriteSummary(
        path=path, rows=int(metrics["total"]) - int(metrics["dropped"]), dropped=int(metrics["dropped"]),
        null_tensors=int(metrics["null_tensors"]), null_labels=int(metrics["null_labels"]),
    )


def _checked_extra_cols(df: DataFrame, extra_cols: Sequence[str]) -> list[str]:
    names = [extra_cols] if isinstance(extra_cols, str) else list(extra_cols)
    for name in names:
        _field(df, name, "extra_cols")
        if name in (TENSOR_COLUMN, LABEL_COLUMN):
            raise ValueError(f"write_tensors: extra_cols may not name {name!r}, the files' own column of that "
                             f"name; rename it first (df.withColumnRenamed({name!r}, ...)).")
    if len(set(names)) != len(names):
        raise ValueError(f"write_tensors: extra_cols names a column twice: {names}.")
    return names


def _field(df: DataFrame, name: str, argument: str) -> Any:
    if name not in df.columns:
        raise missing_column("write_tensors", argument, name, df.columns)
    return df.schema[name]


def _flat_tensor_column(column: Column, data_type: Any, info: TensorInfo, name: str) -> tuple[Column, str]:
    """The column as flat values checked against the shape, and the dtype it is stored with."""
    from pyspark.ml.functions import vector_to_array
    from pyspark.ml.linalg import VectorUDT
    from pyspark.sql import functions as F
    from pyspark.sql.types import ArrayType, BinaryType, DoubleType, FloatType

    found = data_type.simpleString()
    if isinstance(data_type, BinaryType):
        if info.dtype != "uint8":
            raise TypeError(f"write_tensors: tensor column {name!r} is binary but its metadata says dtype "
                            f"{info.dtype!r}; binary tensor columns hold uint8 values (outputFormat='uint8').")
        return _checked(column, F.length(column), info, name), "uint8"
    if info.dtype == "uint8":
        raise TypeError(f"write_tensors: tensor column {name!r} has type {found} but its metadata says dtype "
                        "'uint8', which is stored as binary (one byte per value).")
    if isinstance(data_type, VectorUDT):
        flat = F.when(column.isNotNull(), vector_to_array(column, dtype="float32"))  # it fails on null
        return _checked(flat, F.size(flat), info, name), "float32"
    depth, element = 0, data_type
    while isinstance(element, ArrayType):
        depth, element = depth + 1, element.elementType
    if depth == 0 or not isinstance(element, (FloatType, DoubleType)):
        raise TypeError(f"write_tensors: tensor column {name!r} has type {found}; expected a Vector, a flat or "
                        "nested array of float/double, or binary (uint8 tensors).")
    if depth not in (1, len(info.shape)):
        raise ValueError(f"write_tensors: tensor column {name!r} is nested {depth} deep but its metadata shape "
                         f"{list(info.shape)} has {len(info.shape)} dimensions.")
    flat = column
    for _ in range(depth - 1):
        flat = F.flatten(flat)
    flat = flat.cast("array<float>")
    return _checked(flat, F.size(flat), info, name), "float32"


def _checked(values: Column, size: Column, info: TensorInfo, name: str) -> Column:
    """``values``, failing the job for a non-null row whose size is not the shape's."""
    from pyspark.sql import functions as F

    message = F.concat(
        F.lit(f"write_tensors: a row of tensor column {name!r} has "), size.cast("string"),
        F.lit(f" values; its metadata shape {list(info.shape)} needs {info.size}."),
    )
    return F.when(values.isNotNull() & (size != info.size), F.raise_error(message)).otherwise(values)


def _label_column(column: Column, data_type: Any, name: str) -> tuple[Column, str]:
    from pyspark.sql.types import BooleanType, FractionalType, IntegralType

    if isinstance(data_type, (IntegralType, BooleanType)):
        return column.cast("long"), "int64"
    if isinstance(data_type, FractionalType):
        return column.cast("float"), "float32"
    raise TypeError(f"write_tensors: label column {name!r} has type {data_type.simpleString()}; expected a "
                    "number (integer class ids or float targets).")
