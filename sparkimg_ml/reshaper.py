"""``TensorReshaper``: flat vectors and arrays <-> shaped tensor columns, entirely in the JVM.

Spark has no tensor type. A tensor column here is a flat ``Vector``, a flat
``array<float|double>`` or nested arrays (one level per dimension), plus a
``tensor`` entry in the column metadata that records its shape, layout and
element type. ``TensorReshaper`` moves between these forms with Spark SQL
higher-order functions and ``vector_to_array`` / ``array_to_vector``
(:mod:`sparkimg_ml.tensors.sql`, over the index arithmetic of
:mod:`sparkimg_ml.tensors.gather`), so no row ever crosses into Python.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, TypedDict

from pyspark.ml import Transformer
from pyspark.ml.functions import vector_to_array
from pyspark.ml.param import Param, Params
from pyspark.ml.param.shared import HasHandleInvalid
from pyspark.ml.util import DefaultParamsReadable
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from .errors import missing_column
from .params import converters as conv
from .params.output import RenamedOutputType
from .params.persistence import StageWritable
from .params.stage import HasColumns
from .schema import (
    FINGERPRINT_KEY,
    HANDLE_INVALID_OPTIONS,
    NESTED,
    RESHAPER_OUTPUT_COL,
    RESHAPER_OUTPUT_FORMATS,
    TENSOR_KEY,
    VECTOR,
)
from .tensors.metadata import output_metadata, recorded_shape, resolve_shape
from .tensors.sql import (
    FLOAT_TYPES,
    SparkOps,
    fits,
    leaf_dtype,
    pixel_values,
    reshape_column,
    scratch_prefix,
)

if TYPE_CHECKING:
    from typing_extensions import Unpack


class ReshaperParamValues(TypedDict, total=False):
    """Every Param of :class:`TensorReshaper` as a constructor keyword (for type checkers)."""

    inputCol: str
    outputCol: str
    shape: list[int] | None
    axes: list[int] | None
    outputFormat: str
    handleInvalid: str


class TensorReshaper(
    Transformer, HasColumns, HasHandleInvalid, RenamedOutputType, DefaultParamsReadable, StageWritable,
):
    """Reshape and transpose tensor columns, or flatten them back into MLlib vectors.

    Every row of ``inputCol`` -- a ``Vector``, a flat ``array<float|double>`` or
    nested arrays -- is read as its values in row-major order, and the output is
    the numpy expression ``values.reshape(shape).transpose(axes)`` written as

    * ``outputFormat="nested"`` (default): nested arrays, one level per dimension;
    * ``outputFormat="array"``: the same tensor flattened again (row-major), the
      form ``pyspark.ml.functions.predict_batch_udf`` reads with
      ``input_tensor_shapes``;
    * ``outputFormat="vector"``: the same flat values as a dense ``Vector``, ready
      for PCA, StandardScaler or MultilayerPerceptronClassifier.

    ``shape`` defaults to the input's recorded shape (``metadata["tensor"]["shape"]``,
    as written by :class:`~sparkimg_ml.ImageUrlFeaturizer` and by this stage), so after
    the featurizer ``TensorReshaper(inputCol="features", axes=[2, 0, 1])`` yields
    CHW tensors, and ``TensorReshaper(inputCol="tensor", outputCol="flat",
    outputFormat="vector")`` goes back to a flat vector of a tensor column in its
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
    ...                         outputFormat="vector")
    >>> to_hwc.transform(tensors).head().flat
    DenseVector([0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0, 11.0])
    """

    shape: Param[list[int]] = Param(
        Params._dummy(), "shape",
        "shape the row-major values of each row are reshaped to, e.g. [32, 32, 3]; at most one -1 "
        "(inferred). Unset: the input's metadata['tensor']['shape'].",
        typeConverter=conv.shape_list,
    )
    axes: Param[list[int]] = Param(
        Params._dummy(), "axes",
        "optional permutation applied after reshaping, with numpy transpose semantics: output axis "
        "i is input axis axes[i], e.g. [2, 0, 1] turns HWC into CHW. Unset: no transpose.",
        typeConverter=conv.axes_list,
    )
    outputFormat: Param[str] = Param(
        Params._dummy(), "outputFormat",
        "form of the output column: 'nested' (arrays nested one level per dimension), 'array' "
        "(flat array in row-major order of the output shape) or 'vector' (flat dense Vector).",
        typeConverter=conv.one_of("outputFormat", RESHAPER_OUTPUT_FORMATS),
    )
    handleInvalid: Param[str] = Param(
        Params._dummy(), "handleInvalid",
        "how to handle rows whose number of values does not fit shape: 'error' (fail the job, "
        "naming the expected and found sizes), 'skip' (drop the row) or 'keep' (null output). "
        "Null input rows give null output in every mode.",
        typeConverter=conv.one_of("handleInvalid", HANDLE_INVALID_OPTIONS),
    )

    def __init__(self, **params: Unpack[ReshaperParamValues]) -> None:
        super().__init__()
        self._setDefault(outputCol=RESHAPER_OUTPUT_COL, outputFormat=NESTED, handleInvalid="error")
        self.setParams(**params)

    def _check_params(self) -> None:
        shape, axes = self.getShape(), self.getAxes()
        if shape is not None and axes is not None and len(shape) != len(axes):
            raise ValueError(
                f"TensorReshaper: axes {axes} has {len(axes)} entries but shape {shape} has "
                f"{len(shape)} dimensions; axes must be a permutation of 0..{len(shape) - 1}."
            )

    def getShape(self) -> list[int] | None:
        """Gets the value of shape, or None when it comes from the input's metadata."""
        return self.getOrDefault(self.shape) if self.isDefined(self.shape) else None

    def setShape(self, value: list[int]) -> TensorReshaper:
        """Sets the value of :py:attr:`shape`."""
        return self._set(shape=value)

    def getAxes(self) -> list[int] | None:
        """Gets the value of axes, or None when no transpose is applied."""
        return self.getOrDefault(self.axes) if self.isDefined(self.axes) else None

    def setAxes(self, value: list[int]) -> TensorReshaper:
        """Sets the value of :py:attr:`axes`."""
        return self._set(axes=value)

    def setHandleInvalid(self, value: str) -> TensorReshaper:
        """Sets the value of :py:attr:`handleInvalid`."""
        return self._set(handleInvalid=value)

    # -- transform --------------------------------------------------------------------------------
    def _transform(self, dataset: DataFrame) -> DataFrame:
        if not self.isDefined(self.inputCol):
            raise ValueError("TensorReshaper: inputCol is not set. Pass inputCol='<vector or array column>'.")
        name, out_name = self.getInputCol(), self.getOutputCol()
        if name not in dataset.columns:
            raise missing_column("TensorReshaper", "input column", name, dataset.columns)
        if out_name in dataset.columns:
            raise ValueError(
                f"TensorReshaper: output column {out_name!r} already exists. Choose another "
                "outputCol or drop the column first."
            )
        field = dataset.schema[name]
        depth, array_dtype = leaf_dtype(name, field.dataType)
        in_tensor = dict(field.metadata.get(TENSOR_KEY) or {})
        in_shape, in_size, size_source = recorded_shape(field.metadata)
        shape, axes = resolve_shape(name, self.getShape(), self.getAxes(), in_shape, in_size, size_source)
        output_type, handle_invalid = self.getOutputFormat(), self.getHandleInvalid()

        narrow = False
        if array_dtype == "uint8":
            # Raw pixels: decoded and normalised as the metadata records, the featurizer's float32 values.
            dtype, flat = "float32", pixel_values(F.col(name), name, in_tensor)
        elif array_dtype is None:
            # A Vector stores doubles, but its metadata may say they are float32 values (the
            # featurizer's); float arrays then hold them exactly at half the size.
            recorded = in_tensor.get("dtype")
            dtype = recorded if isinstance(recorded, str) and recorded in FLOAT_TYPES else "float64"
            # vector_to_array(..., "float32") converts markedly slower than the float64 default,
            # so the values are narrowed one by one as the gather reads them instead.
            narrow = dtype == "float32" and output_type != VECTOR
            # vector_to_array (like array_to_vector) fails on null rows instead of passing them on.
            flat = F.when(F.col(name).isNotNull(), vector_to_array(F.col(name)))
        else:
            dtype, flat = array_dtype, F.col(name)
            for _ in range(depth - 1):
                flat = F.flatten(flat)

        ops = SparkOps(dataset, scratch_prefix(dataset, self.uid), "float" if narrow else None)
        if array_dtype is None or array_dtype == "uint8" or depth > 1:
            flat = ops.stored(flat)  # converted once per row, then read by the gather
        if handle_invalid == "skip":
            ops.frame = ops.frame.filter(flat.isNull() | fits(F.size(flat), shape))
        result = reshape_column(ops, flat, name, shape, axes, output_type, fail=handle_invalid == "error")
        metadata = output_metadata(in_tensor, in_shape, shape, axes, dtype, output_type)
        if FINGERPRINT_KEY in field.metadata:
            # Rearranged, not recomputed: the values still come from the preprocessing the fingerprint names.
            metadata[FINGERPRINT_KEY] = field.metadata[FINGERPRINT_KEY]
        # withMetadata (not alias(metadata=)) keeps the metadata on Spark Connect too.
        return ops.finish(out_name, result).withMetadata(out_name, metadata)

