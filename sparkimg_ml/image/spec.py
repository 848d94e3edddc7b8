"""The output description: :class:`ImageSpec`, its choices and the normalisation presets."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import Any

import numpy as np
from PIL import features

COLOR_MODES: tuple[str, ...] = ("RGB", "BGR", "L", "RGBA")
RESIZE_MODES: tuple[str, ...] = ("stretch", "crop", "pad")
INTERPOLATIONS: tuple[str, ...] = ("nearest", "bilinear", "bicubic", "lanczos", "box", "hamming")
LAYOUTS: tuple[str, ...] = ("HWC", "CHW")
COLOR_PROFILES: tuple[str, ...] = ("ignore", "srgb")
#: ``pillow`` decodes everything with Pillow; ``auto`` lets OpenCV (the ``[opencv]`` extra)
#: decode and shrink plain JPEGs (:mod:`.opencv`).
DECODERS: tuple[str, ...] = ("pillow", "auto")

#: The smallest ``reducing_gap`` other than 0 (off): the documented error bound is measured there,
#: and a larger gap leaves more of the resize to the filter, so it moves values less.
MIN_REDUCING_GAP = 2.0

#: Default pixel limit: Pillow's own decompression-bomb threshold (about 89.5 MP).
DEFAULT_MAX_PIXELS = 89_478_485

#: Per-channel ImageNet statistics of pixels in [0, 1], in RGB order.
IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)
PRESETS: tuple[str, ...] = ("imagenet",)

_CHANNELS = {"RGB": 3, "BGR": 3, "L": 1, "RGBA": 4}
#: Filters whose result is a smooth average, which a reduced decode barely moves (so
#: ``reducing_gap`` and ``decoder="auto"`` apply to them only). ``nearest`` picks single
#: source pixels and ``box`` averages exact pixel footprints: decoding 8x8 blocks as one
#: pixel would change their meaning, so they always decode at full size.
_REDUCIBLE_FILTERS = frozenset(("bilinear", "bicubic", "lanczos", "hamming"))
# Pillow's luma weights (ITU-R 601-2 in 16-bit fixed point), as in ``convert("L")``.
_LUMA = (19595, 38470, 7471)


def _luma(rgb: Sequence[int]) -> int:
    return (rgb[0] * _LUMA[0] + rgb[1] * _LUMA[1] + rgb[2] * _LUMA[2] + 0x8000) >> 16


def _resolve_stats(name: str, value: Any, preset: Sequence[float], neutral: float,
                   color_mode: str, scale: float) -> tuple[float, ...]:
    channels = _CHANNELS[color_mode]
    if isinstance(value, str):
        if value.lower() != "imagenet":
            raise ValueError(f"{name} must be a list of numbers or one of {PRESETS}; got {value!r}.")
        # The preset is defined for pixels in [0, 1]; express it in units of pixel * scale.
        unit = 255.0 * scale
        if color_mode == "L":
            values: list[float] = [sum(preset) / 3.0 * unit]
        else:
            values = [v * unit for v in preset]
            if color_mode == "BGR":
                values.reverse()
            if color_mode == "RGBA":
                values.append(neutral)
        return tuple(values)
    try:
        values = [float(v) for v in value]
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a list of numbers or one of {PRESETS}; got {value!r}.") from None
    if len(values) == 1:
        values = values * channels
    if len(values) != channels:
        counts = "1 value" if channels == 1 else f"1 or {channels} values"
        raise ValueError(f"{name} needs {counts} for colorMode {color_mode!r}; got {len(values)}: {values}.")
    if not all(math.isfinite(v) for v in values):
        raise ValueError(f"{name} values must be finite; got {values}.")
    return tuple(values)


def _check_color(name: str, value: Any) -> tuple[int, int, int]:
    items = tuple(value)
    if len(items) != 3 or not all(isinstance(v, (int, np.integer)) and 0 <= v <= 255 for v in items):
        raise ValueError(f"{name} must be 3 integers in [0, 255] (R, G, B); got {value!r}.")
    return (int(items[0]), int(items[1]), int(items[2]))


@dataclass(frozen=True)
class ImageSpec:
    """How one image becomes a flat float32 feature vector.

    Parameters
    ----------
    height, width : int
        Output size in pixels.
    color_mode : {"RGB", "BGR", "L", "RGBA"}
        Output channels and their order.
    scale : float
        Multiplier applied to pixel values on the 8-bit scale [0, 255].
    resize_mode : {"stretch", "crop", "pad"}
        ``stretch`` ignores the aspect ratio; ``crop`` scales to cover the
        output and cuts the centre; ``pad`` scales to fit inside and letterboxes
        with ``pad_color``.
    interpolation : {"nearest", "bilinear", "bicubic", "lanczos", "box", "hamming"}
        Pillow resampling filter.
    pad_color, background : tuple of 3 ints
        RGB colour of ``pad`` borders, and of what shows through transparent
        pixels (alpha is composited onto it unless ``color_mode`` is RGBA).
    mean, std : sequence of float or "imagenet"
        Per-channel normalisation ``(pixel * scale - mean) / std``, in output
        channel order, one value for all channels or one per channel. The
        ``"imagenet"`` preset is ImageNet's statistics for pixels in [0, 1],
        converted to the units of ``pixel * scale`` and to ``color_mode``
        (reversed for BGR, averaged for L, neutral for alpha). Stored resolved.
    layout : {"HWC", "CHW"}
        Order of the flat output.
    exif_transpose : bool
        Rotate/flip by the EXIF ``Orientation`` tag so the image is upright.
    reduced_decode : bool
        Let JPEGs decode at 1/2, 1/4 or 1/8 size when the output is much
        smaller (see :data:`REDUCED_DECODE_MARGIN`); off reproduces a full-size
        decode exactly.
    max_pixels : int
        Images with more pixels (by their header) are refused with
        ``too_many_pixels`` before decoding.
    color_profile : {"ignore", "srgb"}
        ``ignore`` takes pixel values as stored, whatever ICC profile the file
        embeds (what most training code does); ``srgb`` converts 8-bit images
        with an embedded profile to sRGB with LittleCMS, as browsers show them.
    reducing_gap : float
        ``0`` (off) resamples the whole source with ``interpolation``, as
        Pillow's ``resize`` does. A value ``>= 2`` (:data:`MIN_REDUCING_GAP`)
        first shrinks the (possibly reduced-decoded) source by an integer factor
        with a box average while it stays at least ``reducing_gap`` times the
        output size, then resamples the rest: Pillow's ``resize(...,
        reducing_gap=...)``. Faster for every format, PNG included; values move
        slightly (bounds in the README, "Fast JPEG decoding"). Like
        ``reduced_decode`` it applies only to bilinear, bicubic, lanczos and
        hamming.
    decoder : {"pillow", "auto"}
        ``pillow`` decodes and resizes every image with Pillow. ``auto`` lets
        OpenCV (the ``[opencv]`` extra, required then) decode plain JPEGs at
        reduced size and shrink them with an area average, which costs less
        CPU and moves values within a documented bound
        (docs/guides/decoding.md); every other image goes to Pillow as with
        ``pillow``.

    Examples
    --------
    >>> spec = ImageSpec(height=32, width=32)
    >>> spec.shape, spec.size
    ((32, 32, 3), 3072)
    >>> ImageSpec(2, 3, color_mode="BGR", layout="CHW", mean="imagenet").shape
    (3, 2, 3)
    >>> [round(m, 3) for m in ImageSpec(color_mode="BGR", mean="imagenet").mean]
    [0.406, 0.456, 0.485]
    """

    height: int = 32
    width: int = 32
    color_mode: str = "RGB"
    scale: float = 1.0 / 255.0
    resize_mode: str = "stretch"
    interpolation: str = "bicubic"
    pad_color: tuple[int, int, int] = (0, 0, 0)
    background: tuple[int, int, int] = (255, 255, 255)
    mean: str | tuple[float, ...] = (0.0,)
    std: str | tuple[float, ...] = (1.0,)
    layout: str = "HWC"
    exif_transpose: bool = True
    reduced_decode: bool = True
    max_pixels: int = DEFAULT_MAX_PIXELS
    color_profile: str = "ignore"
    reducing_gap: float = 0.0
    decoder: str = "pillow"

    def __post_init__(self) -> None:
        def choice(name: str, options: tuple[str, ...]) -> None:
            if getattr(self, name) not in options:
                raise ValueError(f"{name} must be one of {options}; got {getattr(self, name)!r}.")

        if not (isinstance(self.height, (int, np.integer)) and isinstance(self.width, (int, np.integer))) \
                or self.height < 1 or self.width < 1:
            raise ValueError(f"image size must be positive integers, got {self.height!r}x{self.width!r}")
        choice("color_mode", COLOR_MODES)
        choice("resize_mode", RESIZE_MODES)
        choice("interpolation", INTERPOLATIONS)
        choice("layout", LAYOUTS)
        choice("color_profile", COLOR_PROFILES)
        choice("decoder", DECODERS)
        if self.color_profile == "srgb" and not features.check("littlecms2"):
            raise ValueError("color_profile 'srgb' needs Pillow built with LittleCMS (the PyPI wheels are); "
                             "this Pillow has no PIL.ImageCms support. Use 'ignore' or reinstall Pillow.")
        if not (math.isfinite(self.scale) and self.scale > 0):
            raise ValueError(f"scale must be a finite number > 0; got {self.scale!r}.")
        if not (isinstance(self.max_pixels, (int, np.integer)) and self.max_pixels >= 1):
            raise ValueError(f"max_pixels must be an integer >= 1; got {self.max_pixels!r}.")
        if isinstance(self.reducing_gap, bool) or not isinstance(self.reducing_gap, (int, float, np.integer, np.floating)) \
                or not (self.reducing_gap == 0 or MIN_REDUCING_GAP <= self.reducing_gap < math.inf):
            raise ValueError(f"reducing_gap must be 0 (off) or a finite number >= {MIN_REDUCING_GAP}; "
                             f"got {self.reducing_gap!r}.")
        set_ = object.__setattr__  # frozen: normalise fields once, here
        set_(self, "height", int(self.height))
        set_(self, "width", int(self.width))
        set_(self, "scale", float(self.scale))
        set_(self, "max_pixels", int(self.max_pixels))
        set_(self, "reducing_gap", float(self.reducing_gap))
        set_(self, "exif_transpose", bool(self.exif_transpose))
        set_(self, "reduced_decode", bool(self.reduced_decode))
        set_(self, "pad_color", _check_color("pad_color", self.pad_color))
        set_(self, "background", _check_color("background", self.background))
        set_(self, "mean", _resolve_stats("mean", self.mean, IMAGENET_MEAN, 0.0, self.color_mode, self.scale))
        std = _resolve_stats("std", self.std, IMAGENET_STD, 1.0, self.color_mode, self.scale)
        if not all(s > 0 for s in std):
            raise ValueError(f"std values must be > 0; got {list(std)}.")
        set_(self, "std", std)

    @property
    def opencv_eligible(self) -> bool:
        """Whether plain JPEGs may go through OpenCV under this spec (``decoder="auto"``; see :mod:`.opencv`).

        Examples
        --------
        >>> ImageSpec(decoder="auto").opencv_eligible, ImageSpec(decoder="auto", resize_mode="crop").opencv_eligible
        (True, False)
        """
        return (self.decoder == "auto" and self.reduced_decode and self.interpolation in _REDUCIBLE_FILTERS
                and self.resize_mode in ("stretch", "pad") and self.color_mode in ("RGB", "BGR")
                and not self.reducing_gap)

    @property
    def channels(self) -> int:
        """Number of output channels (1, 3 or 4)."""
        return _CHANNELS[self.color_mode]

    @property
    def shape(self) -> tuple[int, int, int]:
        """Output tensor shape in ``layout`` order."""
        if self.layout == "CHW":
            return (self.channels, self.height, self.width)
        return (self.height, self.width, self.channels)

    @property
    def size(self) -> int:
        """Length of the flat output."""
        return self.height * self.width * self.channels

    def metadata(self) -> dict:
        """The ``tensor`` entry of the output column's metadata (JSON-native).

        Examples
        --------
        >>> meta = ImageSpec(4, 6, layout="CHW").metadata()
        >>> meta["shape"], meta["layout"], meta["channelOrder"], meta["resizeMode"]
        ([3, 4, 6], 'CHW', 'RGB', 'stretch')
        """
        return {
            "shape": list(self.shape),
            "layout": self.layout,
            "channelOrder": self.color_mode,
            "dtype": "float32",
            "imageSize": [self.height, self.width],
            "channels": self.channels,
            "scale": self.scale,
            "mean": list(self.mean),
            "std": list(self.std),
            "resizeMode": self.resize_mode,
            "interpolation": self.interpolation,
            "padColor": list(self.pad_color),
            "background": list(self.background),
            "exifTranspose": self.exif_transpose,
            "reducedDecode": self.reduced_decode,
            "reducingGap": self.reducing_gap,
            "maxPixels": self.max_pixels,
            "colorProfile": self.color_profile,
            "decoder": self.decoder,
            "decoders": ["opencv", "pillow"] if self.opencv_eligible else ["pillow"],
        }

    def replace(self, **changes: Any) -> ImageSpec:
        """A copy with some fields changed (validated like a new spec)."""
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        values.update(changes)
        return ImageSpec(**values)
