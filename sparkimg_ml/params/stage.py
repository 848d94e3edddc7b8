"""What every stage that reads an image column shares: column checks, and the one ``_transform`` tail.

``ImageUrlFeaturizer`` and ``ImageEmbedder`` (and every later image stage)
accept the same inputs and write the same kind of outputs. They differ only in
the per-batch function their UDF runs; this module gives them the same column
checks and messages (with the stage's name in front) and the same handling of
bad rows, output form and metadata (:func:`add_image_output`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeVar

from pyspark.ml.functions import array_to_vector
from pyspark.ml.param.shared import HasInputCol, HasOutputCol
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql.types import BinaryType, StringType, StructType

from ..errors import missing_column
from ..fetch.backends import BACKEND_CHECK_ROWS, absent_backends, check_backends
from ..image import SOURCE_INFO_FIELDS, opencv
from ..schema import BINARY, IMAGE_STRUCT, IMAGE_STRUCT_FIELDS, SOURCE, SOURCE_INFO_PREFIX, VECTOR

C = TypeVar("C", bound="HasColumns")


class HasColumns(HasInputCol, HasOutputCol):
    """Mixin: ``inputCol`` and ``outputCol`` with setters that return the stage."""

    def setInputCol(self: C, value: str) -> C:
        """Sets the value of :py:attr:`inputCol`."""
        return self._set(inputCol=value)

    def setOutputCol(self: C, value: str) -> C:
        """Sets the value of :py:attr:`outputCol`."""
        return self._set(outputCol=value)


def image_input_kind(dataset: DataFrame, stage: str, input_col: str | None, hint: str = "") -> str:
    """What the image column holds (:data:`SOURCE`, :data:`BINARY` or :data:`IMAGE_STRUCT`).

    Raises ``ValueError`` when the column is unset or missing and ``TypeError`` for a
    column of another type, each saying what to pass instead (``hint`` is appended).
    """
    if input_col is None:
        raise ValueError(
            f"{stage}: inputCol is not set. Pass inputCol='<column with image URLs, paths, bytes or "
            "image structs>'."
        )
    if input_col not in dataset.columns:
        raise missing_column(stage, "input column", input_col, dataset.columns)
    data_type = dataset.schema[input_col].dataType
    if isinstance(data_type, StringType):
        return SOURCE
    if isinstance(data_type, BinaryType):
        return BINARY
    if isinstance(data_type, StructType) and set(IMAGE_STRUCT_FIELDS) <= set(data_type.names):
        return IMAGE_STRUCT
    raise TypeError(
        f"{stage}: input column {input_col!r} has type {data_type.simpleString()}; expected string (URL "
        "or path), binary (encoded image bytes) or the image struct of spark.read.format('image')."
        + (f" {hint}" if hint else "")
    )


def check_output_columns(dataset: DataFrame, stage: str, outputs: Sequence[str]) -> None:
    """Refuse output columns that collide with each other or with existing columns."""
    if len(set(outputs)) != len(outputs):
        repeated = next(name for name in outputs if outputs.count(name) > 1)
        raise ValueError(f"{stage}: the output columns (outputCol, errorCol, sourceInfoCol) must differ; "
                         f"{repeated!r} is named twice.")
    for name in outputs:
        if name in dataset.columns:
            raise ValueError(
                f"{stage}: output column {name!r} already exists. Choose another outputCol/errorCol/sourceInfoCol "
                "or drop the column first."
            )


def checked_image_input(stage: Any, dataset: DataFrame, hint: str = "") -> str:
    """The kind of an image stage's input column in ``dataset``, once its input and output columns are checked.

    The first step of every image stage's ``_transform``: the input column must
    exist and hold images (``hint`` is added to the error otherwise), and the
    output and error columns must not exist yet.
    """
    name = type(stage).__name__
    input_col = stage.getInputCol() if stage.isDefined(stage.inputCol) else None
    kind = image_input_kind(dataset, name, input_col, hint=hint)
    extra_outputs = [stage.getErrorCol(), getattr(stage, "getSourceInfoCol", lambda: None)()]
    check_output_columns(dataset, name, [stage.getOutputCol()] + [col for col in extra_outputs if col])
    return kind


def keeps_every_row(image: Column, kind: str) -> Column:
    """A filter condition that is true on every row, null images included.

    Spark 4.3 feeds an Arrow UDF straight from a columnar child (a Parquet scan, a
    cached table) when ``spark.sql.execution.arrow.pythonUDF.columnarInput.enabled``
    is on, its default. That path cannot return a ``VectorUDT``
    (``UNSUPPORTED_DATATYPE``) and, whatever the output type, turns every output
    row back into columns, which costs about 2 CPU ms per 224x224 float image. A
    row-based Filter between the scan and the UDF keeps the UDF on the row path. The
    optimizer cannot prove the condition true, so it keeps the Filter; it reads only
    the length of the image column.
    """
    measured = image.getField("data") if kind == IMAGE_STRUCT else image
    return F.coalesce(F.length(measured), F.lit(0)) >= 0


def check_storage_backends(dataset: DataFrame, stage: str, input_col: str, kind: str, handle_invalid: str,
                           storage_protocols: Sequence[str]) -> None:
    """With ``handleInvalid="error"``, fail here on the driver when the first sources need a storage
    back-end that is not installed (``gs://`` without gcsfs), instead of in the first task.

    Streaming inputs cannot be sampled, and other modes record the reason per row
    (``missing_dependency``), so only a batch ``error`` job is checked, and only when
    a storage package is absent here (found without importing): an environment with
    every back-end starts no extra job.
    """
    if handle_invalid != "error" or kind != SOURCE or dataset.isStreaming \
            or not absent_backends(storage_protocols):
        return
    first = [row[0] for row in dataset.select(input_col).limit(BACKEND_CHECK_ROWS).collect()]
    check_backends(stage, input_col, first, storage_protocols)


def check_decoder(stage: str, decoder: str) -> None:
    """``decoder="auto"`` without OpenCV fails here, on the driver, before any job (``ImportError``
    naming the ``[opencv]`` extra); the executors check again before their first image.

    Examples
    --------
    >>> check_decoder("ImageUrlFeaturizer", "pillow")
    """
    try:
        opencv.require(decoder)
    except ImportError as error:
        raise ImportError(f"{stage}: {error}") from None


def add_image_output(
    dataset: DataFrame,
    *,
    uid: str,
    input_col: str,
    kind: str,
    udf: Any,
    udf_format: str,
    output_format: str,
    handle_invalid: str,
    output_col: str,
    error_col: str | None,
    metadata: dict[str, Any],
    source_info_col: str | None = None,
) -> DataFrame:
    """``dataset`` with the image UDF's output (and reasons) added: the tail of every image stage's ``_transform``.

    ``udf`` returns ``struct<features, error>`` with ``features`` in ``udf_format``;
    ``output_format`` is the form asked for (a Vector is built on the JVM side with
    ``array_to_vector`` when the UDF could not return one). Rows whose image failed
    are dropped (``skip``) or kept with a null output and their reason (``keep``);
    ``error`` rows never get here (the UDF raised). Every other column passes through.
    With ``source_info_col``, the UDF's flat ``source_*`` fields become one struct
    column (null where nothing was read).
    """
    result_col = f"__sparkimg_ml_{uid}"
    frame = dataset.filter(keeps_every_row(F.col(input_col), kind))
    frame = frame.withColumn(result_col, udf(F.col(input_col)))
    if handle_invalid == "skip":
        frame = frame.filter(F.col(result_col).getField("error").isNull())
    output = F.col(result_col).getField("features")
    if output_format == VECTOR and udf_format != VECTOR:
        # array_to_vector fails on null arrays: failed rows stay null vectors.
        output = F.when(output.isNotNull(), array_to_vector(output))
    # withMetadata (not alias(metadata=)) keeps the metadata on Spark Connect too.
    frame = frame.withColumn(output_col, output).withMetadata(output_col, metadata)
    if error_col:
        frame = frame.withColumn(error_col, F.col(result_col).getField("error"))
    if source_info_col:
        fields = {name: F.col(result_col).getField(SOURCE_INFO_PREFIX + name) for name, _ in SOURCE_INFO_FIELDS}
        frame = frame.withColumn(source_info_col, F.when(fields["bytes"].isNotNull() | fields["width"].isNotNull(),
                                                         F.struct(*[value.alias(name) for name, value in fields.items()])))
    return frame.drop(result_col)
