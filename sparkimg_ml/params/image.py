"""Params that define the image semantics shared by every stage that reads images."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any, TypedDict, TypeVar

from pyspark.ml.param import Param, Params

from ..image import (
    COLOR_MODES,
    COLOR_PROFILES,
    DECODERS,
    INTERPOLATIONS,
    LAYOUTS,
    MIN_REDUCING_GAP,
    PRESETS,
    RESIZE_MODES,
    ImageSpec,
)
from . import converters as conv


def _camel_case(field_name: str) -> str:
    head, *rest = field_name.split("_")
    return head + "".join(part.title() for part in rest)


def _image_param_defaults() -> dict[str, Any]:
    """Every image Param's default, by name (JSON-native), read from :class:`ImageSpec`'s own defaults."""
    fields = {field.name: field.default for field in dataclasses.fields(ImageSpec)}
    defaults: dict[str, Any] = {"imageSize": [fields.pop("height"), fields.pop("width")]}
    for name, value in fields.items():
        defaults[_camel_case(name)] = list(value) if isinstance(value, tuple) else value
    return defaults


#: Every image Param's default, by name (JSON-native values).
IMAGE_PARAM_DEFAULTS: dict[str, Any] = _image_param_defaults()


class ImageParamValues(TypedDict, total=False):
    """The image Params as constructor keywords (for type checkers)."""

    imageSize: Sequence[int] | int
    colorMode: str
    scale: float
    resizeMode: str
    interpolation: str
    padColor: Sequence[int]
    background: Sequence[int]
    mean: Sequence[float] | str
    std: Sequence[float] | str
    layout: str
    exifTranspose: bool
    reducedDecode: bool
    maxPixels: int
    colorProfile: str
    reducingGap: float
    decoder: str


P = TypeVar("P", bound="HasImageParams")


class HasImageParams(Params):
    """Mixin: decoding, resizing and normalisation Params, and the :class:`ImageSpec` they define.

    Examples
    --------
    >>> class Stage(HasImageParams):
    ...     pass
    >>> stage = Stage().setResizeMode("pad").setMean("imagenet").setStd("imagenet")
    >>> spec = stage._image_spec()
    >>> spec.resize_mode, [round(v, 3) for v in spec.mean]
    ('pad', [0.485, 0.456, 0.406])
    """

    imageSize: Param[list] = Param(
        Params._dummy(), "imageSize",
        "output [height, width] in pixels (one number: a square).",
        typeConverter=conv.image_size("imageSize"),
    )
    colorMode: Param[str] = Param(
        Params._dummy(), "colorMode",
        f"output channels and their order: one of {', '.join(COLOR_MODES)}. Without RGBA, transparent "
        "pixels are composited onto `background`.",
        typeConverter=conv.one_of("colorMode", COLOR_MODES),
    )
    scale: Param[float] = Param(
        Params._dummy(), "scale",
        "multiplier applied to pixel values on the 8-bit scale [0, 255] (1/255 maps them to [0, 1]; "
        "16-bit images are mapped to that scale first, so they span [0, 1] too).",
        typeConverter=conv.positive_float("scale"),
    )
    resizeMode: Param[str] = Param(
        Params._dummy(), "resizeMode",
        "how the image fits imageSize: 'stretch' (ignore the aspect ratio), 'crop' (scale to cover, "
        "cut the centre) or 'pad' (scale to fit, letterbox with padColor).",
        typeConverter=conv.one_of("resizeMode", RESIZE_MODES, case_insensitive=True),
    )
    interpolation: Param[str] = Param(
        Params._dummy(), "interpolation",
        f"resampling filter: one of {', '.join(INTERPOLATIONS)}.",
        typeConverter=conv.one_of("interpolation", INTERPOLATIONS, case_insensitive=True),
    )
    padColor: Param[list] = Param(
        Params._dummy(), "padColor",
        "[R, G, B] (0-255) of the borders added by resizeMode='pad'.",
        typeConverter=conv.rgb_color("padColor"),
    )
    background: Param[list] = Param(
        Params._dummy(), "background",
        "[R, G, B] (0-255) that shows through transparent pixels (alpha is composited onto it "
        "unless colorMode is RGBA).",
        typeConverter=conv.rgb_color("background"),
    )
    mean: Param[list | str] = Param(
        Params._dummy(), "mean",
        "per-channel value subtracted after scaling, in output channel order: one number for all "
        "channels, one per channel, or 'imagenet' (ImageNet's mean for pixels in [0, 1], adapted to "
        "scale and colorMode).",
        typeConverter=conv.float_list_or_preset("mean", PRESETS, (1, 3, 4)),
    )
    std: Param[list | str] = Param(
        Params._dummy(), "std",
        "per-channel divisor (> 0) applied after subtracting mean: one number, one per channel, "
        "or 'imagenet'.",
        typeConverter=conv.float_list_or_preset("std", PRESETS, (1, 3, 4), positive=True),
    )
    layout: Param[str] = Param(
        Params._dummy(), "layout",
        "order of the flat output: 'HWC' (pixel by pixel) or 'CHW' (channel planes).",
        typeConverter=conv.one_of("layout", LAYOUTS, case_insensitive=True),
    )
    exifTranspose: Param[bool] = Param(
        Params._dummy(), "exifTranspose",
        "rotate/flip images upright by their EXIF Orientation tag.",
        typeConverter=conv.boolean("exifTranspose"),
    )
    reducedDecode: Param[bool] = Param(
        Params._dummy(), "reducedDecode",
        "decode JPEGs at 1/2, 1/4 or 1/8 size when imageSize is much smaller than the image (much "
        "faster; values move slightly). False decodes at full size.",
        typeConverter=conv.boolean("reducedDecode"),
    )
    maxPixels: Param[int] = Param(
        Params._dummy(), "maxPixels",
        "refuse images with more pixels than this (by their header, before decoding) with reason "
        "'too_many_pixels'.",
        typeConverter=conv.positive_int("maxPixels"),
    )

    colorProfile: Param[str] = Param(
        Params._dummy(), "colorProfile",
        "embedded ICC colour profiles: 'ignore' (take pixel values as stored, like most training code) "
        "or 'srgb' (convert 8-bit images that carry a profile to sRGB with LittleCMS, as browsers show them).",
        typeConverter=conv.one_of("colorProfile", COLOR_PROFILES, case_insensitive=True),
    )

    reducingGap: Param[float] = Param(
        Params._dummy(), "reducingGap",
        "0 (off) resizes the whole image with `interpolation`, as Pillow does; a number >= 2 first "
        "shrinks it by an integer factor with a box average while it stays at least that many times "
        "imageSize, then resizes the rest (Pillow's reducing_gap: faster for every format, values move "
        "slightly; smooth filters only).",
        typeConverter=conv.off_or_at_least("reducingGap", MIN_REDUCING_GAP),
    )

    decoder: Param[str] = Param(
        Params._dummy(), "decoder",
        "'pillow' (decode and resize every image with Pillow) or 'auto' (OpenCV, from the [opencv] extra, "
        "decodes plain JPEGs at reduced size and shrinks them with an area average: less CPU, values move "
        "within a documented bound; every other image still goes to Pillow).",
        typeConverter=conv.one_of("decoder", DECODERS, case_insensitive=True),
    )

    def __init__(self) -> None:
        super().__init__()
        self._setDefault(**IMAGE_PARAM_DEFAULTS)

    def getImageSize(self) -> list:
        """Gets the value of imageSize or its default value."""
        return self.getOrDefault(self.imageSize)

    def setImageSize(self: P, value: list) -> P:
        """Sets the value of :py:attr:`imageSize`."""
        return self._set(imageSize=value)

    def getColorMode(self) -> str:
        """Gets the value of colorMode or its default value."""
        return self.getOrDefault(self.colorMode)

    def setColorMode(self: P, value: str) -> P:
        """Sets the value of :py:attr:`colorMode`."""
        return self._set(colorMode=value)

    def getScale(self) -> float:
        """Gets the value of scale or its default value."""
        return self.getOrDefault(self.scale)

    def setScale(self: P, value: float) -> P:
        """Sets the value of :py:attr:`scale`."""
        return self._set(scale=value)

    def getResizeMode(self) -> str:
        """Gets the value of resizeMode or its default value."""
        return self.getOrDefault(self.resizeMode)

    def setResizeMode(self: P, value: str) -> P:
        """Sets the value of :py:attr:`resizeMode`."""
        return self._set(resizeMode=value)

    def getInterpolation(self) -> str:
        """Gets the value of interpolation or its default value."""
        return self.getOrDefault(self.interpolation)

    def setInterpolation(self: P, value: str) -> P:
        """Sets the value of :py:attr:`interpolation`."""
        return self._set(interpolation=value)

    def getPadColor(self) -> list:
        """Gets the value of padColor or its default value."""
        return self.getOrDefault(self.padColor)

    def setPadColor(self: P, value: list) -> P:
        """Sets the value of :py:attr:`padColor`."""
        return self._set(padColor=value)

    def getBackground(self) -> list:
        """Gets the value of background or its default value."""
        return self.getOrDefault(self.background)

    def setBackground(self: P, value: list) -> P:
        """Sets the value of :py:attr:`background`."""
        return self._set(background=value)

    def getMean(self) -> list | str:
        """Gets the value of mean or its default value."""
        return self.getOrDefault(self.mean)

    def setMean(self: P, value: list | str) -> P:
        """Sets the value of :py:attr:`mean`."""
        return self._set(mean=value)

    def getStd(self) -> list | str:
        """Gets the value of std or its default value."""
        return self.getOrDefault(self.std)

    def setStd(self: P, value: list | str) -> P:
        """Sets the value of :py:attr:`std`."""
        return self._set(std=value)

    def getLayout(self) -> str:
        """Gets the value of layout or its default value."""
        return self.getOrDefault(self.layout)

    def setLayout(self: P, value: str) -> P:
        """Sets the value of :py:attr:`layout`."""
        return self._set(layout=value)

    def getExifTranspose(self) -> bool:
        """Gets the value of exifTranspose or its default value."""
        return self.getOrDefault(self.exifTranspose)

    def setExifTranspose(self: P, value: bool) -> P:
        """Sets the value of :py:attr:`exifTranspose`."""
        return self._set(exifTranspose=value)

    def getReducedDecode(self) -> bool:
        """Gets the value of reducedDecode or its default value."""
        return self.getOrDefault(self.reducedDecode)

    def setReducedDecode(self: P, value: bool) -> P:
        """Sets the value of :py:attr:`reducedDecode`."""
        return self._set(reducedDecode=value)

    def getMaxPixels(self) -> int:
        """Gets the value of maxPixels or its default value."""
        return self.getOrDefault(self.maxPixels)

    def setMaxPixels(self: P, value: int) -> P:
        """Sets the value of :py:attr:`maxPixels`."""
        return self._set(maxPixels=value)

    def getColorProfile(self) -> str:
        """Gets the value of colorProfile or its default value."""
        return self.getOrDefault(self.colorProfile)

    def setColorProfile(self: P, value: str) -> P:
        """Sets the value of :py:attr:`colorProfile`."""
        return self._set(colorProfile=value)

    def getReducingGap(self) -> float:
        """Gets the value of reducingGap or its default value."""
        return self.getOrDefault(self.reducingGap)

    def setReducingGap(self: P, value: float) -> P:
        """Sets the value of :py:attr:`reducingGap`.

        Parameters
        ----------
        value : float
            ``0`` (off, the default) or a number ``>= 2``: the source is first
            box-reduced by an integer factor while it stays at least ``value``
            times ``imageSize``, then resampled with ``interpolation``.

        Examples
        --------
        >>> class Stage(HasImageParams):
        ...     pass
        >>> Stage().setReducingGap(3)._image_spec().reducing_gap
        3.0
        """
        return self._set(reducingGap=value)

    def getDecoder(self) -> str:
        """Gets the value of decoder or its default value."""
        return self.getOrDefault(self.decoder)

    def setDecoder(self: P, value: str) -> P:
        """Sets the value of :py:attr:`decoder`.

        Parameters
        ----------
        value : {"pillow", "auto"}
            ``"pillow"`` (the default) decodes every image with Pillow;
            ``"auto"`` lets OpenCV decode and shrink plain JPEGs (it needs
            ``pip install 'sparkimg_ml[opencv]'``).

        Examples
        --------
        >>> class Stage(HasImageParams):
        ...     pass
        >>> Stage().setDecoder("AUTO")._image_spec().decoder
        'auto'
        """
        return self._set(decoder=value)

    def _image_spec(self) -> ImageSpec:
        """The plain-Python description of this stage's image semantics.

        Raises ``ValueError`` when Params disagree, e.g. three ``mean`` values
        with ``colorMode="L"``.
        """
        height, width = self.getImageSize()
        mean, std = self.getMean(), self.getStd()
        return ImageSpec(
            height=height,
            width=width,
            color_mode=self.getColorMode(),
            scale=self.getScale(),
            resize_mode=self.getResizeMode(),
            interpolation=self.getInterpolation(),
            pad_color=tuple(self.getPadColor()),
            background=tuple(self.getBackground()),
            mean=mean if isinstance(mean, str) else tuple(mean),
            std=std if isinstance(std, str) else tuple(std),
            layout=self.getLayout(),
            exif_transpose=self.getExifTranspose(),
            reduced_decode=self.getReducedDecode(),
            max_pixels=self.getMaxPixels(),
            color_profile=self.getColorProfile(),
            reducing_gap=self.getReducingGap(),
            decoder=self.getDecoder(),
        )
