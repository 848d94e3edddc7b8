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

from pyspark import keyword_only
from pyspark.ml import Transformer
from pyspark.ml.functions import array_to_vector, vector_to_array
from pyspark.ml.linalg import VectorUDT
from pyspark.ml.param import Param, Params, TypeConverters
from pyspark.ml.param.shared import HasHandleInvalid, HasInputCol, HasOutputCol
from pyspark.ml.util import DefaultParamsReadable, DefaultParamsWritable
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql.types import ArrayType, DataType, DoubleType, FloatType

from . import _converters as conv

OUTPUT_TYPES = ("nested", "array", "vector")
HANDLE_INVALID_OPTIONS = ("error", "skip", "keep")
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


# -- the gather: pure index arithmetic over four array primitives ---------------------------------

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


class _SparkOps:
    """:class:`ArrayOps` as Spark SQL expressions on ``array`` columns.

    With ``element_type`` (e.g. ``"float"``), every value read is cast to it.
    """

    def __init__(self, element_type: Optional[str] = None) -> None:
        self.element_type = element_type

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


def gather(ops: ArrayOps, flat: Any, shape: Sequence[Any], axes: Sequence[int], nested: bool) -> Any:
    """``flat.reshape(shape).transpose(axes)`` as nested arrays, or flattened again.

    ``flat`` holds exactly ``prod(shape)`` values in row-major order. The result is
    built level by level: output level ``t`` walks input axis ``axes[t]`` with that
    axis's row-major stride, so the expression grows with the rank, not with the
    number of elements. When the last input axis stays last, the innermost level
    is one contiguous slice instead of one lookup per element.

    Examples
    --------
    >>> class ListOps:
    ...     def tabulate(self, count, fill): return [fill(i) for i in range(count)]
    ...     def at(self, array, index): return array[index]
    ...     def take(self, array, start, length): return array[start:start + length]
    ...     def whole(self, array): return array
    ...     def flatten(self, nested): return [v for part in nested for v in part]
    >>> gather(ListOps(), list(range(6)), [2, 3], [1, 0], nested=True)
    [[0, 3], [1, 4], [2, 5]]
    >>> gather(ListOps(), list(range(6)), [2, 3], [1, 0], nested=False)
    [0, 3, 1, 4, 2, 5]
    """
    rank = len(shape)
    if list(axes) == list(range(rank)) and (not nested or rank == 1):
        return ops.whole(flat)
    strides: List[Any] = [reduce(mul, shape[axis + 1:], 1) for axis in range(rank)]
    dims = [shape[axis] for axis in axes]
    steps = [strides[axis] for axis in axes]
    contiguous = axes[-1] == rank - 1
    levels = rank - 1 if contiguous else rank

    def build(level: int, offset: Any) -> Any:
        if level == levels:
            return ops.take(flat, offset, dims[-1]) if contiguous else ops.at(flat, offset)
        return ops.tabulate(dims[level], lambda i: build(level + 1, offset + i * steps[level]))

    tensor = build(0, 0)
    if not nested:
        for _ in range(rank - 1):
            tensor = ops.flatten(tensor)
    return tensor


# -- the stage -------------------------------------------------------------------------------------

_SHAPE_HELP = "set shape, e.g. shape=[32, 32, 3], or use -1 for one inferred size, e.g. shape=[-1, 3]"


def _product(sizes: Sequence[int]) -> int:
    return reduce(mul, sizes, 1)


def _leaf_dtype(name: str, data_type: DataType) -> Tuple[int, Optional[str]]:
    """Nesting depth (0 for a Vector) and element dtype name (None for a Vector) of the input."""
    if isinstance(data_type, VectorUDT):
        return 0, None
    depth, leaf = 0, data_type
    while isinstance(leaf, ArrayType):
        depth, leaf = depth + 1, leaf.elementType
    for dtype, spark_type in _DTYPES.items():
        if depth and leaf == spark_type:
            return depth, dtype
    raise TypeError(
        f"TensorReshaper: input column {name!r} has type {data_type.simpleString()}; expected a "
        "Vector, array<float>, array<double> or nested arrays of float/double. Cast integer arrays "
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
    DefaultParamsReadable, DefaultParamsWritable,
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
        if array_dtype is None:
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

        if handle_invalid == "skip":
            dataset = dataset.filter(F.col(name).isNull() | _fits(F.size(flat), shape))
        result = _reshape_column(flat, name, shape, axes, output_type, fail=handle_invalid == "error",
                                 element_type="float" if narrow else None)
        metadata = output_metadata(in_tensor, in_shape, shape, axes, dtype, output_type)
        # withMetadata (not alias(metadata=)) keeps the metadata on Spark Connect too.
        return dataset.withColumn(out_name, result).withMetadata(out_name, metadata)


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


def _fits(size: Column, shape: List[int]) -> Column:
    """Whether a row of ``size`` values fits ``shape`` (a -1 takes any positive multiple)."""
    known = _product([s for s in shape if s != -1])
    return (size > 0) & (size % known == 0) if -1 in shape else size == known


def _reshape_column(
    flat: Column, name: str, shape: List[int], axes: List[int], output_type: str, fail: bool,
    element_type: Optional[str] = None,
) -> Column:
    """The output column: ``flat`` reshaped, transposed and put in ``output_type`` form.

    Rows that do not fit raise (``fail``) or become null; null rows stay null. With
    ``element_type``, the values are cast to it.
    """
    ops = _SparkOps(element_type)
    known = _product([s for s in shape if s != -1])
    need = f"a positive multiple of {known} values" if -1 in shape else f"{known}"
    message_head = f"TensorReshaper: a row of column {name!r} has "
    message_tail = (
        f" values but shape {shape} needs {need}. Fix the data, or set handleInvalid='skip' "
        "(drop such rows) or 'keep' (null output)."
    )

    def reshape(values: Column) -> Column:
        size = F.size(values)
        dims: List[Dim] = [(size / known).cast("int") if s == -1 else s for s in shape]
        tensor = gather(ops, values, dims, axes, nested=output_type == "nested")
        if output_type == "vector":
            tensor = array_to_vector(tensor)
        invalid = (
            F.raise_error(F.concat(F.lit(message_head), size.cast("string"), F.lit(message_tail)))
            if fail else F.lit(None)
        )
        return F.when(values.isNull(), F.lit(None)).when(_fits(size, shape), tensor).otherwise(invalid)

    # Binding the flat values to a lambda variable converts each row once: referenced directly
    # inside the innermost lambda, vector_to_array / flatten would run once per element.
    return F.transform(F.array(flat), reshape)[0]
