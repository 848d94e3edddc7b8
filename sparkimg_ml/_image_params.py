"""Params that define the image semantics of :class:`ImageUrlFeaturizer`."""

from __future__ import annotations

from pyspark.ml.param import Param, Params

from . import _converters as conv
from .image_ops import COLOR_MODES, ImageSpec


class HasImageParams(Params):
    """Mixin: decoding, resizing and normalisation Params, and the :class:`ImageSpec` they define."""

    imageSize: "Param[list]" = Param(
        Params._dummy(), "imageSize",
        "output [height, width] in pixels.",
        typeConverter=conv.int_list("imageSize", 2),
    )
    colorMode: "Param[str]" = Param(
        Params._dummy(), "colorMode",
        f"output channels: one of {', '.join(COLOR_MODES)}.",
        typeConverter=conv.one_of("colorMode", COLOR_MODES),
    )
    scale: "Param[float]" = Param(
        Params._dummy(), "scale",
        "multiplier applied to 8-bit pixel values (1/255 maps them to [0, 1]).",
        typeConverter=conv.positive_float("scale"),
    )

    def __init__(self) -> None:
        super().__init__()
        self._setDefault(imageSize=[32, 32], colorMode="RGB", scale=1.0 / 255.0)

    def getImageSize(self) -> list:
        """Gets the value of imageSize or its default value."""
        return self.getOrDefault(self.imageSize)

    def setImageSize(self, value: list) -> "HasImageParams":
        """Sets the value of :py:attr:`imageSize`."""
        return self._set(imageSize=value)

    def getColorMode(self) -> str:
        """Gets the value of colorMode or its default value."""
        return self.getOrDefault(self.colorMode)

    def setColorMode(self, value: str) -> "HasImageParams":
        """Sets the value of :py:attr:`colorMode`."""
        return self._set(colorMode=value)

    def getScale(self) -> float:
        """Gets the value of scale or its default value."""
        return self.getOrDefault(self.scale)

    def setScale(self, value: float) -> "HasImageParams":
        """Sets the value of :py:attr:`scale`."""
        return self._set(scale=value)

    def _image_spec(self) -> ImageSpec:
        """The plain-Python description of this stage's image semantics."""
        height, width = self.getImageSize()
        return ImageSpec(height=height, width=width, color_mode=self.getColorMode(), scale=self.getScale())
