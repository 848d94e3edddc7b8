"""The one factory of image UDFs: a per-batch function of Arrow arrays becomes a Spark UDF.

Every image stage has a per-batch function ``run(batches) -> batches`` (Arrow
arrays of the image column in, ``struct<features, error>`` Arrow arrays out:
:func:`~sparkimg_ml.engine.featurize.featurize_batches`,
:func:`~sparkimg_ml.engine.embed.embed_batches`). :func:`make_image_udf` wraps it
as ``arrow_udf`` (Spark >= 4.1) or, on older Sparks, as a ``pandas_udf`` that
converts each pandas batch to Arrow and back. :func:`udf_output_format` says
which output form the UDF can return, so the stage knows whether it still has to
build the Vector on the JVM side.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, Union

import numpy as np
import pandas as pd
import pyarrow as pa

from ..schema import ARRAY, LONG, SOURCE, UINT8, VECTOR
from .arrow import result_struct_type

#: A stage's per-batch function: Arrow arrays of the image column in, ``struct<features, error>`` out.
BatchFunction = Callable[[Iterator[pa.Array]], Iterator[pa.StructArray]]


def arrow_udf_available() -> bool:
    """Whether this pyspark has ``arrow_udf`` (4.1 and later)."""
    from pyspark.sql import functions as F

    return hasattr(F, "arrow_udf")


def _vector_results_supported() -> bool:
    """Whether ``arrow_udf`` may return ``VectorUDT`` (inside a struct): measured on Spark 4.3."""
    import pyspark

    major, minor = (int(part) for part in pyspark.__version__.split(".")[:2])
    return (major, minor) >= (4, 3)


def udf_output_format(wanted: str, use_arrow_udf: bool | None = None) -> str:
    """The form the UDF returns for ``wanted``: a Vector only where Spark lets a UDF return one, else ``array``.

    Examples
    --------
    >>> udf_output_format("vector", use_arrow_udf=False), udf_output_format("uint8", use_arrow_udf=False)
    ('array', 'uint8')
    """
    if use_arrow_udf is None:
        use_arrow_udf = arrow_udf_available()
    if wanted == VECTOR and not (use_arrow_udf and _vector_results_supported()):
        return ARRAY
    return wanted


def make_image_udf(run: BatchFunction, output_format: str, input_kind: str,
                   use_arrow_udf: bool | None = None, source_info: bool = False) -> Any:
    """A vectorised UDF over the image column that runs ``run`` on its batches.

    ``output_format`` must be what :func:`udf_output_format` returned (the form
    ``run`` produces). ``run`` must hold only plain values (a module-level
    function, or a ``functools.partial`` of one over a task dataclass): it is
    pickled to every executor, so it must never capture a stage. ``source_info``
    says that ``run``'s results carry the flat ``source_*`` fields too.
    """
    from pyspark.sql import functions as F

    if use_arrow_udf is None:
        use_arrow_udf = arrow_udf_available()
    return_type = result_struct_type(output_format, source_info)
    if use_arrow_udf:
        def run_arrow(batches: Iterator[pa.Array]) -> Iterator[pa.Array]:
            return run(batches)

        return F.arrow_udf(run_arrow, return_type)  # type: ignore[call-overload]

    string_input = input_kind == SOURCE

    def to_arrow(series: pd.Series | pd.DataFrame) -> pa.Array:
        if isinstance(series, pd.DataFrame):  # struct columns arrive as DataFrames
            return pa.array(series.to_dict("records"))
        # pandas 3 gives NaN for a null string: anything not text or bytes is a null source.
        values = [v if isinstance(v, (str, bytes, bytearray)) else None for v in series.to_list()]
        return pa.array(values, type=pa.string() if string_input else pa.binary())

    # pyspark reads the UDF kind from these hints and understands typing.Union, not X | Y.
    def run_pandas(series_batches: Iterator[Union[pd.Series, pd.DataFrame]]) -> Iterator[pd.DataFrame]:  # noqa: UP007
        for out in run(map(to_arrow, series_batches)):
            features = out.field("features")
            if output_format in (UINT8, LONG):
                values: list[Any] = features.to_pylist()
            else:
                values = [None if v is None else np.asarray(v, dtype=np.float32)
                          for v in features.to_numpy(zero_copy_only=False)]
            # object columns: a list of ints with a None would become floats
            others = {name: pd.Series(out.field(name).to_pylist(), dtype=object)
                      for name in (field.name for field in out.type) if name != "features"}
            yield pd.DataFrame({"features": values, **others})

    return F.pandas_udf(run_pandas, return_type)  # type: ignore[call-overload]
