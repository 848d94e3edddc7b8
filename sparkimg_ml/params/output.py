"""The ``outputFormat`` Param: how a stage stores each row's output (one name in every stage)."""

from __future__ import annotations

import warnings
from typing import Any, TypeVar

import numpy as np
from pyspark.ml.param import Param, Params

from ..image import ImageSpec
from ..image.fingerprint import make_fingerprint
from ..schema import (
    FEATURIZER_OUTPUT_FORMATS,
    FINGERPRINT_KEY,
    LEGACY_OUTPUT_FORMAT_PARAM,
    ML_ATTR_KEY,
    TENSOR_KEY,
    UINT8,
    VECTOR,
)
from . import converters as conv
from .keywords import KeywordParams

OF = TypeVar("OF", bound="OutputFormatAccessors")


class OutputFormatAccessors(Params):
    """Getter and setter of a stage's ``outputFormat`` Param (each stage declares the Param with its forms)."""

    outputFormat: Param[str]

    def getOutputFormat(self) -> str:
        """Gets the value of outputFormat or its default value."""
        return self.getOrDefault(self.outputFormat)

    def setOutputFormat(self: OF, value: str) -> OF:
        """Sets the value of :py:attr:`outputFormat`."""
        return self._set(outputFormat=value)


class RenamedOutputType(KeywordParams, OutputFormatAccessors):
    """Mixin of the stages whose ``outputFormat`` was called ``outputType`` before 0.3.0.

    Saved stages, grids and code that use the old name keep working; the old
    accessors warn.

    Examples
    --------
    >>> import warnings
    >>> from sparkimg_ml import TensorReshaper
    >>> with warnings.catch_warnings():
    ...     warnings.simplefilter("ignore", DeprecationWarning)
    ...     TensorReshaper(outputType="vector").getOutputFormat()
    'vector'
    """

    _legacy_params = {LEGACY_OUTPUT_FORMAT_PARAM: "outputFormat"}

    @property
    def outputType(self) -> Param[str]:
        """The ``outputFormat`` Param under its pre-0.3.0 name (a grid saved by a ``CrossValidator`` looks it up)."""
        return self.outputFormat

    def getOutputType(self) -> str:
        """Deprecated: use :meth:`getOutputFormat`."""
        warnings.warn("getOutputType() is now getOutputFormat()", DeprecationWarning, stacklevel=2)
        return self.getOutputFormat()

    def setOutputType(self: OF, value: str) -> OF:
        """Deprecated: use :meth:`setOutputFormat`."""
        warnings.warn("setOutputType() is now setOutputFormat()", DeprecationWarning, stacklevel=2)
        return self.setOutputFormat(value)


class HasOutputFormat(OutputFormatAccessors):
    """Mixin: the image tensor's ``outputFormat`` Param, and the column metadata and dtype it implies.

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
        typeConverter=conv.one_of("outputFormat", FEATURIZER_OUTPUT_FORMATS, case_insensitive=True),
    )

    def __init__(self) -> None:
        super().__init__()
        self._setDefault(outputFormat=VECTOR)

    def _output_dtype(self) -> np.dtype:
        """Element type of the values :meth:`preprocess` returns: uint8 or float32."""
        return np.dtype(np.uint8 if self.getOutputFormat() == UINT8 else np.float32)

    def _tensor_metadata(self, spec: ImageSpec) -> dict[str, Any]:
        """Column metadata of the output: the ``tensor`` entry and the ``fingerprint``, plus ``ml_attr`` for a Vector."""
        tensor = spec.metadata()
        output_format = self.getOutputFormat()
        if output_format == UINT8:
            tensor["dtype"] = "uint8"
        # ImageUrlFeaturizer's values (preprocess() computes the same ones, so reports the same fingerprint).
        metadata = {TENSOR_KEY: tensor, FINGERPRINT_KEY: make_fingerprint("ImageUrlFeaturizer", image=tensor)}
        if output_format == VECTOR:
            metadata[ML_ATTR_KEY] = {"num_attrs": spec.size}
        return metadata
