"""``TensorReshaper``: flat vectors and arrays <-> shaped tensor columns, entirely in the JVM.

Spark has no tensor type. A tensor column here is a flat ``Vector``, a flat
``array<float|double>`` or nested arrays (one level per dimension), plus a
``tensor`` entry in the column metadata that records its shape, layout and
element type. ``TensorReshaper`` moves between these forms with Spark SQL
higher-order functions (``transform`` over ``sequence``, ``element_at``,
``slice``, ``flatten``) and ``vector_to_array`` / ``array_to_vector``, so no
row ever crosses into Python.
"""

from __future__ import annotations

from functools import reduce
from operator import mul
from typing import Any, Callable, Dict, List, Optional, Protocol, Sequence, Tuple, Union

import numpy as np
from pyspark import keyword_only
from pyspark.ml import Transformer
from pyspark.ml.functions import array_to_vector, vector_to_array
from pyspark.ml.linalg import VectorUDT
from pyspark.ml.param import Param, Params, TypeConverters
from pyspark.ml.param.shared import HasHandleInvalid, HasInputCol, HasOutputCol
from pyspark.ml.util import DefaultParamsReadable
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql.types import ArrayType, BinaryType, DataType, DoubleType, FloatType

from . import _converters as conv
from ._invalid_params import HANDLE_INVALID_OPTIONS
from ._persistence import StageWritable
from .tensors import TensorInfo, normalisation

OUTPUT_TYPES = ("nested", "array", "vector")
#: Key of the tensor description in column metadata (shared with ImageUrlFeaturizer).
TENSOR_METADATA_KEY = "tensor"

_DTYPES = {"float32": FloatType(), "float64": DoubleType()}


def _is_int(value: Any) -> bool:
    return TypeConverters._is_integer(value) and not isinstance(value, bool)


def _int_list(name: str, value: Any) -> List[int]:
    if isinstance(value, (str, bytes)) or not TypeConverters._can_convert_to_list(value):
        raise TypeError(f"{name} must be a list of integers, got {type(value).__name__}: {value!r}")
    items = list(value)
    if not items or not all(_is_int(v) for v in items):
        raise ValueError(f"{name} must be a non-empty list of integers; got {value!r}.")
    return [int(v) for v in items]


def shape_list(value: Any) -> List[int]:
    """Converter for ``shape``: positive sizes, at most one ``-1`` (inferred, as in numpy).

    Examples
    --------
    >>> shape_list((32, 32, 3))
    [32, 32, 3]
    >>> shape_list([-1, 32, -1])
    Traceback (most recent call last):
    ...
    ValueError: shape may contain at most one -1 (the inferred size); got [-1, 32, -1].
    """
    sizes = _int_list("shape", value)
    if any(size < 1 and size != -1 for size in sizes):
        raise ValueError(f"shape sizes must be positive integers or -1; got {sizes}.")
    if sizes.count(-1) > 1:
        raise ValueError(f"shape may contain at most one -1 (the inferred size); got {sizes}.")
    return sizes


def axes_list(value: Any) -> List[int]:
    """Converter for ``axes``: a permutation of ``0 .. n-1`` (numpy ``transpose`` order).

    Examples
    --------
    >>> axes_list([2, 0, 1])
    [2, 0, 1]
    >>> axes_list([0, 0, 1])
    Traceback (most recent call last):
    ...
    ValueError: axes must be a permutation of 0..2 (each axis exactly once); got [0, 0, 1].
    """
    axes = _int_list("axes", value)
    if sorted(axes) != list(range(len(axes))):
        raise ValueError(
            f"axes must be a permutation of 0..{len(axes) - 1} (each axis exactly once); got {axes}."
        )
    return axes


# -- the gather: pure index arithmetic over a few array primitives ------------------------------

Dim = Union[int, Column]


class ArrayOps(Protocol):
    """The array primitives the gather is written in (Spark SQL functions in production).

    Every value of a gather's result is read through ``at``, ``take`` or ``whole``,
    so an implementation may convert element types there.
    """

    def tabulate(self, count: Any, fill: Callable[[Any], Any]) -> Any:
        """``[fill(i) for i in range(count)]``."""

    def at(self, array: Any, index: Any) -> Any:
        """``array[index]`` (0-based)."""

    def take(self, array: Any, start: Any, length: Any) -> Any:
        """``array[start:start + length]``."""

    def whole(self, array: Any) -> Any:
        """``array`` itself."""

    def flatten(self, nested: Any) -> Any:
        """Concatenate an array of arrays."""

    def quotient(self, value: Any, divisor: Any) -> Any:
        """Integer division of non-negative ``value`` by positive ``divisor``."""

    def chunks(self, array: Any, length: Optional[Any] = None, count: Optional[Any] = None) -> Any:
        """``array`` cut into consecutive parts of ``length`` items, or into ``count`` equal parts.

        A null array stays null. ``array`` is read once per part, so it should be a
        value returned by :meth:`stored`.
        """

    def stored(self, array: Any) -> Any:
        """``array`` computed once, to be read many times (by ``chunks`` or a gather)."""


class _SparkOps:
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

    def __init__(self, frame: DataFrame, prefix: str, element_type: Optional[str] = None) -> None:
        self.frame = frame
        self.prefix = prefix
        self.element_type = element_type
        self.scratch: List[str] = []

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

    def chunks(self, array: Column, length: Optional[Dim] = None, count: Optional[Dim] = None) -> Column:
        if (length is None) == (count is None):
            raise ValueError("chunks takes exactly one of length and count")
        # ``array`` must be a column of the frame, not an expression: the lambda reads it
        # once per part, and an expression would be recomputed for each (see _Scratch).
        size = F.size(array)
        part = length if length is not None else self.quotient(size, count)  # type: ignore[arg-type]
        parts = count if count is not None else self.quotient(size, part)
        cut = F.transform(F.sequence(F.lit(0), F.lit(parts - 1)), lambda i: F.slice(array, i * part + 1, part))
        return F.when(array.isNotNull(), cut)


def permute(ops: ArrayOps, flat: Any, shape: Sequence[Any], axes: Sequence[int]) -> Any:
    """The values of ``flat.reshape(shape).transpose(axes)`` in row-major order, with one ``tabulate``.

    ``flat`` holds exactly ``prod(shape)`` values in row-major order. Output position
    ``k`` is written in the mixed radix of the output dimensions; digit ``t`` walks
    input axis ``axes[t]`` with that axis's row-major stride. When the last input
    axis stays last, whole rows are sliced instead of single values read.

    Examples
    --------
    >>> permute(ListOps(), list(range(6)), [2, 3], [1, 0])
    [0, 3, 1, 4, 2, 5]
    """
    rank = len(shape)
    if list(axes) == list(range(rank)):
        return ops.whole(flat)
    strides: List[Any] = [reduce(mul, shape[axis + 1:], 1) for axis in range(rank)]
    dims = [shape[axis] for axis in axes]
    steps = [strides[axis] for axis in axes]
    contiguous = axes[-1] == rank - 1
    digits = rank - 1 if contiguous else rank

    def source(position: Any) -> Any:
        """Index in ``flat`` of the value (or row) at ``position`` among the first ``digits`` dims."""
        offset: Any = 0
        for t in range(digits):
            inner = reduce(mul, dims[t + 1:digits], 1)
            digit = position if t == 0 else position % (inner * dims[t])
            if t < digits - 1:
                digit = ops.quotient(digit, inner)
            offset = offset + digit * steps[t]
        return offset

    count = reduce(mul, dims[:digits], 1)
    if contiguous:
        return ops.flatten(ops.tabulate(count, lambda r: ops.take(flat, source(r), dims[-1])))
    return ops.tabulate(count, lambda k: ops.at(flat, source(k)))


def nest(ops: ArrayOps, flat: Any, dims: Sequence[Optional[int]]) -> Any:
    """Row-major ``flat`` as nested arrays of ``dims``, built from the innermost level outwards.

    Each level cuts the previous, stored one into consecutive parts, so no level
    runs inside another's loop or reads another lambda's variable (see
    :class:`_SparkOps`). One entry of ``dims`` may be None (inferred per row); its
    level is then cut by count.

    Examples
    --------
    >>> nest(ListOps(), list(range(12)), [2, 3, 2])
    [[[0, 1], [2, 3], [4, 5]], [[6, 7], [8, 9], [10, 11]]]
    """
    nested = flat
    for level in range(len(dims) - 1, 0, -1):
        if level < len(dims) - 1:
            nested = ops.stored(nested)
        inner = dims[level]
        if inner is not None:
            nested = ops.chunks(nested, length=inner)
        else:  # this level's size is the inferred one, so the outer sizes are all known
            nested = ops.chunks(nested, count=_product([d for d in dims[:level] if d is not None]))
    return nested


def gather(ops: ArrayOps, flat: Any, shape: Sequence[Any], axes: Sequence[int], nested: bool) -> Any:
    """``flat.reshape(shape).transpose(axes)`` as nested arrays, or flattened (row-major).

    Examples
    --------
    >>> gather(ListOps(), list(range(6)), [2, 3], [1, 0], nested=True)
    [[0, 3], [1, 4], [2, 5]]
    >>> gather(ListOps(), list(range(6)), [2, 3], [1, 0], nested=False)
    [0, 3, 1, 4, 2, 5]
    """
    values = permute(ops, flat, shape, axes)
    if not nested or len(shape) < 2:
        return values
    return nest(ops, ops.stored(values), [shape[axis] for axis in axes])


class ListOps:
    """:class:`ArrayOps` on Python lists: the gather's arithmetic, checkable without Spark.

    Examples
    --------
    >>> ListOps().chunks([1, 2, 3, 4, 5, 6], count=2)
    [[1, 2, 3], [4, 5, 6]]
    """

    def tabulate(self, count: int, fill: Callable[[int], Any]) -> List[Any]:
        return [fill(i) for i in range(count)]

    def at(self, array: List[Any], index: int) -> Any:
        return array[index]

    def take(self, array: List[Any], start: int, length: int) -> List[Any]:
        return array[start:start + length]

    def whole(self, array: List[Any]) -> List[Any]:
        return array

    def flatten(self, nested: List[List[Any]]) -> List[Any]:
        return [value for part in nested for value in part]

    def quotient(self, value: int, divisor: int) -> int:
        return value // divisor

    def stored(self, array: List[Any]) -> List[Any]:
        return array

    def chunks(self, array: Optional[List[Any]], length: Optional[int] = None,
               count: Optional[int] = None) -> Optional[List[List[Any]]]:
        if array is None:
            return None
        part = length if length is not None else len(array) // (count or 1)
        return [array[i:i + part] for i in range(0, len(array), part)]


# -- the stage -------------------------------------------------------------------------------------

_SHAPE_HELP = "set shape, e.g. shape=[32, 32, 3], or use -1 for one inferred size, e.g. shape=[-1, 3]"


def _product(sizes: Sequence[int]) -> int:
    return reduce(mul, sizes, 1)


def _leaf_dtype(name: str, data_type: DataType) -> Tuple[int, Optional[str]]:
    """Nesting depth (0 for a Vector or bytes) and element dtype name (None for a Vector) of the input."""
    if isinstance(data_type, VectorUDT):
        return 0, None
    if isinstance(data_type, BinaryType):
        return 0, "uint8"
    depth, leaf = 0, data_type
    while isinstance(leaf, ArrayType):
        depth, leaf = depth + 1, leaf.elementType
    for dtype, spark_type in _DTYPES.items():
        if depth and leaf == spark_type:
            return depth, dtype
    raise TypeError(
        f"TensorReshaper: input column {name!r} has type {data_type.simpleString()}; expected a "
        "Vector, array<float>, array<double>, nested arrays of float/double or binary (uint8 "
        "tensors, one byte per value). Cast integer arrays "
        f"first, e.g. F.col({name!r}).cast('array<float>')."
    )


def _recorded_shape(metadata: Dict[str, Any]) -> Tuple[Optional[List[int]], Optional[int], str]:
    """Shape and total size recorded in column metadata, and where they were found.

    A recorded shape may hold one -1 (written for rows whose size is inferred); the
    total size is then unknown.
    """
    tensor = metadata.get(TENSOR_METADATA_KEY) or {}
    shape = tensor.get("shape")
    if isinstance(shape, list) and shape and all(_is_int(s) and (s > 0 or s == -1) for s in shape) \
            and shape.count(-1) <= 1:
        size = None if -1 in shape else _product(shape)
        return list(shape), size, f"tensor shape {shape} in its metadata"
    num_attrs: Any = (metadata.get("ml_attr") or {}).get("num_attrs")
    if _is_int(num_attrs) and num_attrs > 0:
        return None, int(num_attrs), f"ml_attr.num_attrs = {num_attrs} in its metadata"
    return None, None, ""


class TensorReshaper(
    Transformer, HasInputCol, HasOutputCol, HasHandleInvalid,
    DefaultParamsReadable, StageWritable,
):
    """Reshape and transpose tensor columns, or flatten them back into MLlib vectors.

    Every row of ``inputCol`` -- a ``Vector``, a flat ``array<float|double>`` or
    nested arrays -- is read as its values in row-major order, and the output is
    the numpy expression ``values.reshape(shape).transpose(axes)`` written as

    * ``outputType="nested"`` (default): nested arrays, one level per dimension;
    * ``outputType="array"``: the same tensor flattened again (row-major), the
      form ``pyspark.ml.functions.predict_batch_udf`` reads with
      ``input_tensor_shapes``;
    * ``outputType="vector"``: the same flat values as a dense ``Vector``, ready
      for PCA, StandardScaler or MultilayerPerceptronClassifier.

    ``shape`` defaults to the input's recorded shape (``metadata["tensor"]["shape"]``,
    as written by :class:`~sparkimg_ml.ImageUrlFeaturizer` and by this stage), so after
    the featurizer ``TensorReshaper(inputCol="features", axes=[2, 0, 1])`` yields
    CHW tensors, and ``TensorReshaper(inputCol="tensor", outputCol="flat",
    outputType="vector")`` goes back to a flat vector of a tensor column in its
    own layout. The output metadata records the output shape, the permuted
    layout letters when the input layout is known and the reshape keeps its
    dimensions (``HWC`` + ``axes=[2, 0, 1]`` -> ``CHW``), the element dtype, every
    other key of the input's ``tensor`` entry (``channelOrder``, ``scale``, ...)
    and, for vectors, ``ml_attr.num_attrs``.

    Element types are kept: arrays of float stay float and arrays of double stay
    double; a Vector becomes float arrays when its metadata says ``dtype`` is
    ``float32`` (lossless) and double arrays otherwise.

    Rows whose number of values does not fit ``shape`` follow ``handleInvalid``;
    null rows stay null. A configuration that can never fit -- a shape whose
    size differs from the size recorded in the input's metadata, ``axes`` of
    another rank than ``shape`` -- fails when ``transform`` is called.

    Examples
    --------
    >>> from pyspark.sql import SparkSession
    >>> from pyspark.ml.functions import array_to_vector
    >>> spark = SparkSession.builder.getOrCreate()
    >>> df = spark.createDataFrame([([float(v) for v in range(12)],)], "values array<double>")
    >>> df = df.select(array_to_vector("values").alias("features"))
    >>> to_chw = TensorReshaper(inputCol="features", outputCol="tensor", shape=[2, 2, 3],
    ...                         axes=[2, 0, 1])
    >>> tensors = to_chw.transform(df)
    >>> tensors.head().tensor
    [[[0.0, 3.0], [6.0, 9.0]], [[1.0, 4.0], [7.0, 10.0]], [[2.0, 5.0], [8.0, 11.0]]]
    >>> tensors.schema["tensor"].metadata["tensor"]
    {'shape': [3, 2, 2], 'dtype': 'float64'}
    >>> to_hwc = TensorReshaper(inputCol="tensor", outputCol="flat", axes=[1, 2, 0],
    ...                         outputType="vector")
    >>> to_hwc.transform(tensors).head().flat
    DenseVector([0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0, 11.0])
    """

    shape: "Param[List[int]]" = Param(
        Params._dummy(), "shape",
        "shape the row-major values of each row are reshaped to, e.g. [32, 32, 3]; at most one -1 "
        "(inferred). Unset: the input's metadata['tensor']['shape'].",
        typeConverter=shape_list,
    )
    axes: "Param[List[int]]" = Param(
        Params._dummy(), "axes",
        "optional permutation applied after reshaping, with numpy transpose semantics: output axis "
        "i is input axis axes[i], e.g. [2, 0, 1] turns HWC into CHW. Unset: no transpose.",
        typeConverter=axes_list,
    )
    outputType: "Param[str]" = Param(
        Params._dummy(), "outputType",
        "form of the output column: 'nested' (arrays nested one level per dimension), 'array' "
        "(flat array in row-major order of the output shape) or 'vector' (flat dense Vector).",
        typeConverter=conv.one_of("outputType", OUTPUT_TYPES),
    )
    handleInvalid: "Param[str]" = Param(
        Params._dummy(), "handleInvalid",
        "how to handle rows whose number of values does not fit shape: 'error' (fail the job, "
        "naming the expected and found sizes), 'skip' (drop the row) or 'keep' (null output). "
        "Null input rows give null output in every mode.",
        typeConverter=conv.one_of("handleInvalid", HANDLE_INVALID_OPTIONS),
    )

    _input_kwargs: Dict[str, Any]

    @keyword_only
    def __init__(
        self, *,
        inputCol: Optional[str] = None,
        outputCol: str = "tensor",
        shape: Optional[List[int]] = None,
        axes: Optional[List[int]] = None,
        outputType: str = "nested",
        handleInvalid: str = "error",
    ) -> None:
        super().__init__()
        self._setDefault(outputCol="tensor", outputType="nested", handleInvalid="error")
        self.setParams(**self._input_kwargs)

    @keyword_only
    def setParams(
        self, *,
        inputCol: Optional[str] = None,
        outputCol: str = "tensor",
        shape: Optional[List[int]] = None,
        axes: Optional[List[int]] = None,
        outputType: str = "nested",
        handleInvalid: str = "error",
    ) -> "TensorReshaper":
        """Sets params for this stage; unnamed params keep their values, ``None`` unsets one.

        Raises ``ValueError`` (and changes nothing) when ``shape`` and ``axes`` are
        both set but have different lengths.
        """
        kwargs = self._input_kwargs
        before = dict(self._paramMap)
        for name, value in kwargs.items():
            if value is None:
                self.clear(getattr(self, name))
        self._set(**{name: value for name, value in kwargs.items() if value is not None})
        shape_, axes_ = self.getShape(), self.getAxes()
        if shape_ is not None and axes_ is not None and len(shape_) != len(axes_):
            self._paramMap = before
            raise ValueError(
                f"TensorReshaper: axes {axes_} has {len(axes_)} entries but shape {shape_} has "
                f"{len(shape_)} dimensions; axes must be a permutation of 0..{len(shape_) - 1}."
            )
        return self

    def setInputCol(self, value: str) -> "TensorReshaper":
        """Sets the value of :py:attr:`inputCol`."""
        return self._set(inputCol=value)

    def setOutputCol(self, value: str) -> "TensorReshaper":
        """Sets the value of :py:attr:`outputCol`."""
        return self._set(outputCol=value)

    def getShape(self) -> Optional[List[int]]:
        """Gets the value of shape, or None when it comes from the input's metadata."""
        return self.getOrDefault(self.shape) if self.isDefined(self.shape) else None

    def setShape(self, value: List[int]) -> "TensorReshaper":
        """Sets the value of :py:attr:`shape`."""
        return self._set(shape=value)

    def getAxes(self) -> Optional[List[int]]:
        """Gets the value of axes, or None when no transpose is applied."""
        return self.getOrDefault(self.axes) if self.isDefined(self.axes) else None

    def setAxes(self, value: List[int]) -> "TensorReshaper":
        """Sets the value of :py:attr:`axes`."""
        return self._set(axes=value)

    def getOutputType(self) -> str:
        """Gets the value of outputType or its default value."""
        return self.getOrDefault(self.outputType)

    def setOutputType(self, value: str) -> "TensorReshaper":
        """Sets the value of :py:attr:`outputType`."""
        return self._set(outputType=value)

    def setHandleInvalid(self, value: str) -> "TensorReshaper":
        """Sets the value of :py:attr:`handleInvalid`."""
        return self._set(handleInvalid=value)

    # -- transform --------------------------------------------------------------------------------
    def _transform(self, dataset: DataFrame) -> DataFrame:
        if not self.isDefined(self.inputCol):
            raise ValueError("TensorReshaper: inputCol is not set. Pass inputCol='<vector or array column>'.")
        name, out_name = self.getInputCol(), self.getOutputCol()
        if name not in dataset.columns:
            raise ValueError(
                f"TensorReshaper: input column {name!r} does not exist. Available columns: "
                f"{', '.join(dataset.columns[:20])}{' ...' if len(dataset.columns) > 20 else ''}."
            )
        if out_name in dataset.columns:
            raise ValueError(
                f"TensorReshaper: output column {out_name!r} already exists. Choose another "
                "outputCol or drop the column first."
            )
        field = dataset.schema[name]
        depth, array_dtype = _leaf_dtype(name, field.dataType)
        in_tensor = dict(field.metadata.get(TENSOR_METADATA_KEY) or {})
        in_shape, in_size, size_source = _recorded_shape(field.metadata)
        shape, axes = resolve_shape(name, self.getShape(), self.getAxes(), in_shape, in_size, size_source)
        output_type, handle_invalid = self.getOutputType(), self.getHandleInvalid()

        narrow = False
        if array_dtype == "uint8":
            # Raw pixels: decoded and normalised as the metadata records, the featurizer's float32 values.
            dtype, flat = "float32", _pixel_values(F.col(name), name, in_tensor)
        elif array_dtype is None:
            # A Vector stores doubles, but its metadata may say they are float32 values (the
            # featurizer's); float arrays then hold them exactly at half the size.
            recorded = in_tensor.get("dtype")
            dtype = recorded if isinstance(recorded, str) and recorded in _DTYPES else "float64"
            # vector_to_array(..., "float32") converts markedly slower than the float64 default,
            # so the values are narrowed one by one as the gather reads them instead.
            narrow = dtype == "float32" and output_type != "vector"
            # vector_to_array (like array_to_vector) fails on null rows instead of passing them on.
            flat = F.when(F.col(name).isNotNull(), vector_to_array(F.col(name)))
        else:
            dtype, flat = array_dtype, F.col(name)
            for _ in range(depth - 1):
                flat = F.flatten(flat)

        ops = _SparkOps(dataset, _scratch_prefix(dataset, self.uid), "float" if narrow else None)
        if array_dtype is None or array_dtype == "uint8" or depth > 1:
            flat = ops.stored(flat)  # converted once per row, then read by the gather
        if handle_invalid == "skip":
            ops.frame = ops.frame.filter(flat.isNull() | _fits(F.size(flat), shape))
        result = _reshape_column(ops, flat, name, shape, axes, output_type, fail=handle_invalid == "error")
        metadata = output_metadata(in_tensor, in_shape, shape, axes, dtype, output_type)
        # withMetadata (not alias(metadata=)) keeps the metadata on Spark Connect too.
        return ops.finish(out_name, result).withMetadata(out_name, metadata)


def resolve_shape(
    name: str,
    shape: Optional[List[int]],
    axes: Optional[List[int]],
    in_shape: Optional[List[int]],
    in_size: Optional[int],
    size_source: str = "",
) -> Tuple[List[int], List[int]]:
    """The shape and axes to apply to column ``name``, checked against what its metadata records.

    ``shape`` falls back to the recorded ``in_shape``; a -1 is resolved when the
    total size ``in_size`` is known and kept (inferred per row) otherwise.

    Examples
    --------
    >>> resolve_shape("features", [-1, 3], None, [32, 32, 3], 3072)
    ([1024, 3], [0, 1])
    >>> resolve_shape("features", [4, 4, 3], None, [32, 32, 3], 3072, "its metadata")
    Traceback (most recent call last):
    ...
    ValueError: TensorReshaper: shape [4, 4, 3] holds 48 values but column 'features' holds 3072 \
(its metadata); set shape, e.g. shape=[32, 32, 3], or use -1 for one inferred size, e.g. shape=[-1, 3].
    """
    if shape is None and in_shape is None:
        raise ValueError(
            f"TensorReshaper: shape is not set and column {name!r} has no tensor shape in its "
            f"metadata (metadata['tensor']['shape']); {_SHAPE_HELP}."
        )
    resolved = list(shape if shape is not None else in_shape or [])
    known = _product([size for size in resolved if size != -1])
    if in_size is not None and -1 in resolved:
        if in_size % known:
            raise ValueError(
                f"TensorReshaper: shape {resolved} cannot hold the {in_size} values of column "
                f"{name!r} ({size_source}): {in_size} is not a multiple of {known}."
            )
        resolved[resolved.index(-1)] = in_size // known
    elif in_size is not None and known != in_size:
        raise ValueError(
            f"TensorReshaper: shape {resolved} holds {known} values but column {name!r} holds "
            f"{in_size} ({size_source}); {_SHAPE_HELP}."
        )
    order = list(axes) if axes is not None else list(range(len(resolved)))
    if len(order) != len(resolved):
        raise ValueError(
            f"TensorReshaper: axes {order} has {len(order)} entries but shape {resolved} has "
            f"{len(resolved)} dimensions; axes must be a permutation of 0..{len(resolved) - 1}."
        )
    return resolved, order


def output_metadata(
    in_tensor: Dict[str, Any],
    in_shape: Optional[List[int]],
    shape: List[int],
    axes: List[int],
    dtype: str,
    output_type: str,
) -> Dict[str, Any]:
    """Column metadata of the output: the input's ``tensor`` entry with shape, layout and dtype updated.

    The layout letters are permuted only when ``shape`` keeps the recorded
    dimensions; any other reshape makes the layout unknown, so it is dropped.

    Examples
    --------
    >>> recorded = {"shape": [32, 32, 3], "layout": "HWC", "channelOrder": "RGB", "dtype": "float32"}
    >>> output_metadata(recorded, [32, 32, 3], [32, 32, 3], [2, 0, 1], "float32", "nested")
    {'tensor': {'shape': [3, 32, 32], 'layout': 'CHW', 'channelOrder': 'RGB', 'dtype': 'float32'}}
    >>> output_metadata(recorded, [32, 32, 3], [1024, 3], [0, 1], "float32", "vector")
    {'tensor': {'shape': [1024, 3], 'channelOrder': 'RGB', 'dtype': 'float32'}, 'ml_attr': {'num_attrs': 3072}}
    """
    tensor: Dict[str, Any] = {"shape": [shape[axis] for axis in axes]}
    layout = in_tensor.get("layout")
    if isinstance(layout, str) and shape == in_shape and len(layout) == len(shape):
        tensor["layout"] = "".join(layout[axis] for axis in axes)
    tensor.update((key, value) for key, value in in_tensor.items() if key not in ("shape", "layout", "dtype"))
    tensor["dtype"] = dtype
    metadata: Dict[str, Any] = {TENSOR_METADATA_KEY: tensor}
    if output_type == "vector" and -1 not in shape:
        metadata["ml_attr"] = {"num_attrs": _product(shape)}
    return metadata


def _pixel_values(data: Column, name: str, in_tensor: Dict[str, Any]) -> Column:
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
        channels, stride = info.shape[axis], _product(info.shape[axis + 1:])
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


def _fits(size: Column, shape: List[int]) -> Column:
    """Whether a row of ``size`` values fits ``shape`` (a -1 takes any positive multiple)."""
    known = _product([s for s in shape if s != -1])
    return (size > 0) & (size % known == 0) if -1 in shape else size == known


def _scratch_prefix(dataset: DataFrame, uid: str) -> str:
    """A prefix for scratch column names that no column of ``dataset`` starts with."""
    prefix = f"__{uid}_scratch"
    while any(column.startswith(prefix) for column in dataset.columns):
        prefix += "_"
    return prefix


def _reshape_column(
    ops: _SparkOps, flat: Column, name: str, shape: List[int], axes: List[int], output_type: str, fail: bool,
) -> Column:
    """The output column: ``flat`` (a column of ``ops.frame``) reshaped, transposed, in ``output_type`` form.

    Rows that do not fit raise (``fail``) or become null; null rows stay null.
    Nested outputs store their levels in scratch columns of ``ops.frame``.
    """
    known = _product([s for s in shape if s != -1])
    need = f"a positive multiple of {known} values" if -1 in shape else f"{known}"
    message_head = f"TensorReshaper: a row of column {name!r} has "
    message_tail = (
        f" values but shape {shape} needs {need}. Fix the data, or set handleInvalid='skip' "
        "(drop such rows) or 'keep' (null output)."
    )
    count = F.size(flat)
    dims: List[Dim] = [ops.quotient(count, known) if s == -1 else s for s in shape]
    tensor = permute(ops, flat, dims, axes)
    if output_type == "vector":
        tensor = array_to_vector(tensor)
    invalid = (
        F.raise_error(F.concat(F.lit(message_head), count.cast("string"), F.lit(message_tail)))
        if fail else F.lit(None)
    )
    result = F.when(flat.isNull(), F.lit(None)).when(_fits(count, shape), tensor).otherwise(invalid)
    if output_type == "nested" and len(shape) > 1:
        result = nest(ops, ops.stored(result), [None if shape[axis] == -1 else shape[axis] for axis in axes])
    return result
