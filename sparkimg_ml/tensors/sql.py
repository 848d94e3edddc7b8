"""Tensor algebra as Spark SQL expressions: what :class:`~sparkimg_ml.TensorReshaper` runs in the JVM.

:class:`SparkOps` implements :class:`~sparkimg_ml.tensors.gather.ArrayOps` with
``transform``/``sequence``/``element_at``/``slice``/``flatten``, so the gather
of :mod:`.gather` becomes one expression per output column and no row crosses
into Python. :func:`pixel_values` reads uint8 tensor bytes as normalised floats.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from pyspark.ml.functions import array_to_vector
from pyspark.ml.linalg import VectorUDT
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql.types import ArrayType, BinaryType, DataType, DoubleType, FloatType

from .gather import nest, permute, product
from .info import TensorInfo, normalisation

#: A dimension: a size known when the plan is built, or one computed per row.
Dim = int | Column

#: Spark element types of float tensors, by dtype name.
FLOAT_TYPES = {"float32": FloatType(), "float64": DoubleType()}


class SparkOps:
    """:class:`ArrayOps` as Spark SQL expressions on ``array`` columns of ``frame``.

    With ``element_type`` (e.g. ``"float"``), every value read is cast to it.

    :meth:`stored` adds a scratch column to ``frame`` (named ``<prefix><n>``) and
    returns it. Lambdas then read columns, never another lambda's variable:
    before 4.3, Spark canonicalises a lambda that reads an enclosing lambda's
    variable into a dangling reference, and a Python UDF over such an expression
    (``predict_batch_udf`` over a tensor) is left unextracted and fails with
    "Cannot evaluate expression". A scratch column is also computed once per row,
    where an expression read inside a lambda would be recomputed for each element.
    """

    def __init__(self, frame: DataFrame, prefix: str, element_type: str | None = None) -> None:
        self.frame = frame
        self.prefix = prefix
        self.element_type = element_type
        self.scratch: list[str] = []

    def stored(self, array: Column) -> Column:
        name = f"{self.prefix}{len(self.scratch)}"
        self.frame = self.frame.withColumn(name, array)
        self.scratch.append(name)
        return F.col(name)

    def finish(self, output: str, value: Column) -> DataFrame:
        """``frame`` with ``value`` as column ``output`` and without the scratch columns."""
        return self.frame.withColumn(output, value).drop(*self.scratch)

    def _values(self, array: Column) -> Column:
        return array.cast(f"array<{self.element_type}>") if self.element_type else array

    def tabulate(self, count: Dim, fill: Callable[[Column], Column]) -> Column:
        return F.transform(F.sequence(F.lit(0), F.lit(count - 1)), fill)

    def at(self, array: Column, index: Dim) -> Column:
        value = F.element_at(array, index + 1)
        return value.cast(self.element_type) if self.element_type else value

    def take(self, array: Column, start: Dim, length: Dim) -> Column:
        return self._values(F.slice(array, start + 1, length))

    def whole(self, array: Column) -> Column:
        return self._values(array)

    def flatten(self, nested: Column) -> Column:
        return F.flatten(nested)

    def quotient(self, value: Dim, divisor: Dim) -> Column:
        # Exact: the double quotient of two ints below 2**31 never rounds up to the next integer.
        return (F.lit(value) / divisor).cast("int")

    def chunks(self, array: Column, length: Dim | None = None, count: Dim | None = None) -> Column:
        if (length is None) == (count is None):
            raise ValueError("chunks takes exactly one of length and count")
        # ``array`` must be a column of the frame, not an expression: the lambda reads it
        # once per part, and an expression would be recomputed for each (see :meth:`stored`).
        size = F.size(array)
        part = length if length is not None else self.quotient(size, count)  # type: ignore[arg-type]
        parts = count if count is not None else self.quotient(size, part)
        cut = F.transform(F.sequence(F.lit(0), F.lit(parts - 1)), lambda i: F.slice(array, i * part + 1, part))
        return F.when(array.isNotNull(), cut)


def leaf_dtype(name: str, data_type: DataType) -> tuple[int, str | None]:
    """Nesting depth (0 for a Vector or bytes) and element dtype name (None for a Vector) of the input."""
    if isinstance(data_type, VectorUDT):
        return 0, None
    if isinstance(data_type, BinaryType):
        return 0, "uint8"
    depth, leaf = 0, data_type
    while isinstance(leaf, ArrayType):
        depth, leaf = depth + 1, leaf.elementType
    for dtype, spark_type in FLOAT_TYPES.items():
        if depth and leaf == spark_type:
            return depth, dtype
    raise TypeError(
        f"TensorReshaper: input column {name!r} has type {data_type.simpleString()}; expected a "
        "Vector, array<float>, array<double>, nested arrays of float/double or binary (uint8 "
        "tensors, one byte per value). Cast integer arrays "
        f"first, e.g. F.col({name!r}).cast('array<float>')."
    )


def pixel_values(data: Column, name: str, in_tensor: dict[str, Any]) -> Column:
    """A ``binary`` column of uint8 pixels as ``array<float>``, normalised as its metadata records.

    ``value = pixel * gain[c] + bias[c]`` in float32 for the pixel's channel ``c``, with
    ``gain``/``bias`` from :func:`sparkimg_ml.tensors.normalisation`: the very numbers
    :meth:`~sparkimg_ml.tensors.TensorInfo.to_float32` and the featurizer give. Without a
    recorded tensor entry the bytes are read as plain values 0..255.

    Spark SQL cannot cast binary to an array, so the bytes are read in the JVM as
    Latin-1 text (one character per byte, code point = byte value), split into
    characters and turned back into numbers by ``ascii``.
    """
    if in_tensor.get("dtype", "uint8") != "uint8":
        raise ValueError(
            f"TensorReshaper: column {name!r} is binary but its metadata records tensor dtype "
            f"{in_tensor.get('dtype')!r}; binary tensor columns hold uint8 values (one byte each). "
            "Fix the metadata, e.g. df.withMetadata(col, {'tensor': {..., 'dtype': 'uint8'}})."
        )
    pixel: Callable[[Column, Column], Column]
    if not in_tensor:
        def pixel(char: Column, index: Column) -> Column:
            return F.ascii(char).cast("float")
    else:
        info = TensorInfo.from_metadata(in_tensor)
        gain, bias = normalisation(info.scale, info.mean, info.std)
        axis = info.channel_axis if info.channel_axis is not None else len(info.shape) - 1
        channels, stride = info.shape[axis], product(info.shape[axis + 1:])
        if len(gain) not in (1, channels):
            raise ValueError(
                f"TensorReshaper: the metadata of column {name!r} records {len(gain)} mean/std values "
                f"for {channels} channels; give one per channel or a single one for all."
            )

        def coefficient(values: np.ndarray, index: Column) -> Column:
            if len(values) == 1:
                return F.lit(float(values[0])).cast("float")
            channel = ((index / stride).cast("int") if stride > 1 else index) % channels
            return F.element_at(F.array(*[F.lit(float(v)) for v in values]).cast("array<float>"), channel + 1)

        def pixel(char: Column, index: Column) -> Column:
            # float * float and float + float: the float32 arithmetic of TensorInfo.to_float32.
            value = F.ascii(char).cast("float") * coefficient(gain, index)
            return value if bias is None else value + coefficient(bias, index)

    characters = F.split(F.decode(data, "ISO-8859-1"), "")
    return (F.when(data.isNull(), F.lit(None))
            .when(F.length(data) == 0, F.array().cast("array<float>"))
            .otherwise(F.transform(characters, pixel)))


def fits(size: Column, shape: list[int]) -> Column:
    """Whether a row of ``size`` values fits ``shape`` (a -1 takes any positive multiple)."""
    known = product([s for s in shape if s != -1])
    return (size > 0) & (size % known == 0) if -1 in shape else size == known


def scratch_prefix(dataset: DataFrame, uid: str) -> str:
    """A prefix for scratch column names that no column of ``dataset`` starts with."""
    prefix = f"__{uid}_scratch"
    while any(column.startswith(prefix) for column in dataset.columns):
        prefix += "_"
    return prefix


def reshape_column(
    ops: SparkOps, flat: Column, name: str, shape: list[int], axes: list[int], output_type: str, fail: bool,
) -> Column:
    """The output column: ``flat`` (a column of ``ops.frame``) reshaped, transposed, in ``output_type`` form.

    Rows that do not fit raise (``fail``) or become null; null rows stay null.
    Nested outputs store their levels in scratch columns of ``ops.frame``.
    """
    known = product([s for s in shape if s != -1])
    need = f"a positive multiple of {known} values" if -1 in shape else f"{known}"
    message_head = f"TensorReshaper: a row of column {name!r} has "
    message_tail = (
        f" values but shape {shape} needs {need}. Fix the data, or set handleInvalid='skip' "
        "(drop such rows) or 'keep' (null output)."
    )
    count = F.size(flat)
    dims: list[Dim] = [ops.quotient(count, known) if s == -1 else s for s in shape]
    tensor = permute(ops, flat, dims, axes)
    if output_type == "vector":
        tensor = array_to_vector(tensor)
    invalid = (
        F.raise_error(F.concat(F.lit(message_head), count.cast("string"), F.lit(message_tail)))
        if fail else F.lit(None)
    )
    result = F.when(flat.isNull(), F.lit(None)).when(fits(count, shape), tensor).otherwise(invalid)
    if output_type == "nested" and len(shape) > 1:
        result = nest(ops, ops.stored(result), [None if shape[axis] == -1 else shape[axis] for axis in axes])
    return result
