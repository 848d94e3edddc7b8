"""The ``outputFormat`` Param: how a stage stores each row's image tensor."""

from __future__ import annotations

from typing import Any

import numpy as np
from pyspark.ml.param import Param, Params

from . import _converters as conv
from .image_ops import ImageSpec

#: ``vector``: MLlib dense ``Vector`` (float32 values widened to double, as MLlib
#: stores them); ``array``: ``array<float>``; ``uint8``: ``binary``, one byte per
#: value, the pixels before ``scale``/``mean``/``std``.
OUTPUT_FORMATS: tuple[str, ...] = ("vector", "array", "uint8")


class HasOutputFormat(Params):
    """Mixin: the ``outputFormat`` Param, and the column metadata and dtype it implies.

    Examples
    --------
    >>> class Stage(HasOutputFormat):
    ...     pass
    >>> stage = Stage().setOutputFormat("uint8")
    >>> stage._output_dtype()
    dtype('uint8')
    >>> meta = stage._tensor_metadata(ImageSpec(2, 2))
    >>> meta["tensor"]["dtype"], "ml_attr" in meta
    ('uint8', False)
    """

    outputFormat: Param[str] = Param(
        Params._dummy(), "outputFormat",
        "how each row's tensor is stored: 'vector' (MLlib dense Vector, normalised values), 'array' "
        "(array<float>, normalised values) or 'uint8' (binary, one byte per value: the pixels after "
        "decode, orientation, colour conversion and resize, before scale/mean/std, which the column "
        "metadata records).",
        typeConverter=conv.one_of("outputFormat", OUTPUT_FORMATS, case_insensitive=True),
    )

    def __init__(self) -> None:
        super().__init__()
        self._setDefault(outputFormat="vector")

    def getOutputFormat(self) -> str:
        """Gets the value of outputFormat or its default value."""
        return self.getOrDefault(self.outputFormat)

    def setOutputFormat(self, value: str) -> Any:
        """Sets the value of :py:attr:`outputFormat`."""
        return self._set(outputFormat=value)

    def _output_dtype(self) -> np.dtype:
        """Element type of the values :meth:`preprocess` returns: uint8 or float32."""
        return np.dtype(np.uint8 if self.getOutputFormat() == "uint8" else np.float32)

    def _tensor_metadata(self, spec: ImageSpec) -> dict[str, Any]:
        """Column metadata of the output: the ``tensor`` entry, plus ``ml_attr`` for a Vector."""
        tensor = spec.metadata()
        output_format = self.getOutputFormat()
        if output_format == "uint8":
            tensor["dtype"] = "uint8"
        if output_format == "vector":
            return {"ml_attr": {"num_attrs": spec.size}, "tensor": tensor}
        return {"tensor": tensor}
