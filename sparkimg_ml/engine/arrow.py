"""Arrow types of the image UDFs' results, and numpy blocks wrapped as Arrow without copying.

A UDF result is ``struct<features, error: string>``; ``features`` is a dense
``Vector`` in ``VectorUDT``'s own storage layout (``type=1`` and
``values: list<double>``), an ``array<float>`` or a ``binary`` (one byte per
value), as :data:`~sparkimg_ml.schema.VECTOR`, :data:`~sparkimg_ml.schema.ARRAY`
or :data:`~sparkimg_ml.schema.UINT8` say. With ``sourceInfoCol`` the struct also
has one flat field per :data:`~sparkimg_ml.image.SOURCE_INFO_FIELDS` entry
(``source_width``, ...): flat because Spark before 4.1 cannot take a struct
nested in a pandas UDF's struct result; the stage assembles them on the JVM side.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa

from ..image import SOURCE_INFO_FIELDS, SourceInfo
from ..schema import ARRAY, LONG, SOURCE_INFO_PREFIX, UINT8, VECTOR

#: Element type of the decoded blocks for each format. A Vector's float64 values
#: are written directly (each one exactly the float32 value ``preprocess`` returns),
#: which saves a widening pass over the block.
BLOCK_DTYPES: dict[str, np.dtype] = {VECTOR: np.dtype(np.float64), ARRAY: np.dtype(np.float32), UINT8: np.dtype(np.uint8)}

#: Arrow layout of ``pyspark.ml.linalg.VectorUDT().sqlType()``.
VECTOR_STORAGE_TYPE = pa.struct([
    pa.field("type", pa.int8(), nullable=False), ("size", pa.int32()),
    ("indices", pa.list_(pa.int32())), ("values", pa.list_(pa.float64())),
])
_DENSE = 1
_ARROW_TYPES = {"int": pa.int32(), "bigint": pa.int64(), "string": pa.string()}


def output_arrow_type(size: int, features_format: str = VECTOR, source_info: bool = False) -> pa.DataType:
    if features_format == VECTOR:
        features: pa.DataType = VECTOR_STORAGE_TYPE
    elif features_format == UINT8:
        features = pa.binary()
    elif features_format == LONG:
        features = pa.int64()
    else:
        features = pa.list_(pa.float32(), size)
    info = [(SOURCE_INFO_PREFIX + name, _ARROW_TYPES[sql]) for name, sql in SOURCE_INFO_FIELDS] if source_info else []
    return pa.struct([("features", features), ("error", pa.string()), *info])


def source_info_arrays(infos: list[SourceInfo | None]) -> list[pa.Array]:
    """One Arrow array per source-info field (null where a row has no info), in the result struct's order.

    Examples
    --------
    >>> widths, *_, hashes = source_info_arrays([SourceInfo(width=4, sha256="ab"), None])
    >>> widths.to_pylist(), hashes.to_pylist()
    ([4, None], ['ab', None])
    """
    columns = list(zip(*(info.as_tuple() if info is not None else (None,) * len(SOURCE_INFO_FIELDS)
                         for info in infos))) or [()] * len(SOURCE_INFO_FIELDS)
    return [pa.array(values, type=_ARROW_TYPES[sql]) for values, (_, sql) in zip(columns, SOURCE_INFO_FIELDS)]


def _validity(failed: np.ndarray) -> pa.Buffer | None:
    """Arrow validity bitmap (None when every row is valid)."""
    if not failed.any():
        return None
    return pa.array(~failed).buffers()[1]


def features_array(block: np.ndarray, failed: np.ndarray, features_format: str) -> pa.Array:
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


def result_struct_type(features_format: str, source_info: bool = False) -> Any:
    """Spark type of a UDF result: ``struct<features: vector | array<float> | binary | long, error: string>``.

    With ``source_info``, followed by the flat ``source_*`` fields.
    """
    from pyspark.sql.types import (
        ArrayType,
        BinaryType,
        DataType,
        FloatType,
        IntegerType,
        LongType,
        StringType,
        StructField,
        StructType,
    )

    if features_format == VECTOR:
        from pyspark.ml.linalg import VectorUDT

        features_type: DataType = VectorUDT()
    elif features_format == UINT8:
        features_type = BinaryType()
    elif features_format == LONG:
        features_type = LongType()
    else:
        features_type = ArrayType(FloatType(), containsNull=False)
    sql_types = {"int": IntegerType(), "bigint": LongType(), "string": StringType()}
    info = [StructField(SOURCE_INFO_PREFIX + name, sql_types[sql], nullable=True)
            for name, sql in SOURCE_INFO_FIELDS] if source_info else []
    return StructType([
        StructField("features", features_type, nullable=True),
        StructField("error", StringType(), nullable=True),
        *info,
    ])
