"""Column checks and plan helpers shared by the stages that read an image column.

``ImageUrlFeaturizer`` and ``ImageEmbedder`` accept the same inputs and write the
same kind of outputs; these functions give both the same checks and messages,
with the stage's name in front.
"""

from __future__ import annotations

from typing import Optional, Sequence

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql.types import BinaryType, StringType, StructType

from ._udf import BINARY, IMAGE_STRUCT, IMAGE_STRUCT_FIELDS, SOURCE


def image_input_kind(dataset: DataFrame, stage: str, input_col: Optional[str], hint: str = "") -> str:
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
        raise ValueError(
            f"{stage}: input column {input_col!r} does not exist. Available columns: "
            f"{', '.join(dataset.columns[:20])}{' ...' if len(dataset.columns) > 20 else ''}."
        )
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
        raise ValueError(f"{stage}: outputCol and errorCol must differ; both are {outputs[0]!r}.")
    for name in outputs:
        if name in dataset.columns:
            raise ValueError(
                f"{stage}: output column {name!r} already exists. Choose another outputCol/errorCol or drop "
                "the column first."
            )


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
