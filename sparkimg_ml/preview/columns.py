"""Spark column helpers of the previews: quoting, checks, and values as text or floats."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..errors import missing_column

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame


def column(name: str) -> Column:
    """``F.col`` of a name that may hold dots or backticks."""
    from pyspark.sql import functions as F

    return F.col("`" + name.replace("`", "``") + "`")


def require_column(df: DataFrame, name: str, role: str, who: str) -> None:
    """Raise the one missing-column error when ``name`` is not a column of ``df``."""
    if not isinstance(name, str) or name not in df.columns:
        raise missing_column(who, role, name, df.columns)


def vector_values(name: str, dtype: str = "float64") -> Column:
    """A Vector column's values as an array (null rows stay null)."""
    from pyspark.ml.functions import vector_to_array
    from pyspark.sql import functions as F

    value = column(name)
    # vector_to_array fails on null: failed rows stay null.
    return F.when(value.isNotNull(), vector_to_array(value, dtype))


def as_text(df: DataFrame, name: str) -> Column:
    """Column ``name`` as text (a Vector as its values)."""
    from pyspark.ml.linalg import VectorUDT

    vector = isinstance(df.schema[name].dataType, VectorUDT)
    return (vector_values(name) if vector else column(name)).cast("string")
