"""Bytes -> normalised float32 pixels, with no Spark import.

The functions here are the single definition of the featurizer's image
semantics: the Spark UDF and the serving helpers both call them, so features
computed in a plain Python process are bit-identical to the Spark output.

The pipeline for one image is

1. **identify** the bytes by content (never by file name) among
   :data:`ACCEPTED_FORMATS`; refuse anything larger than ``max_pixels`` from
   the header alone, before any pixel is decoded;
2. **decode** the first frame, at a reduced size (JPEG DCT scaling) when the
   target is much smaller than the source and ``reduced_decode`` is on; a
   truncated or corrupt file is an error, never a partial image;
3. **orient** it upright from its EXIF ``Orientation`` tag (``exif_transpose``);
4. **convert** it to ``color_mode``: palette and transparency are expanded,
   alpha is composited onto ``background`` (unless the output keeps alpha),
   CMYK/YCbCr/LAB/HSV become RGB, 1-bit becomes 0/255 and 16-bit, 32-bit and
   float pixels are mapped to the 8-bit range *without* rounding or clipping
   away their precision;
5. **resize** to ``(height, width)`` by ``resize_mode`` (``stretch``, ``crop``
   or ``pad``) with ``interpolation``;
6. **normalise** each value as ``(pixel * scale - mean[c]) / std[c]`` where
   ``pixel`` is on the 8-bit scale [0, 255], and write it in ``layout`` order
   straight into the caller's buffer.

Every per-image problem raises :class:`~sparkimg_ml.errors.SourceError` with a
reason code from :data:`~sparkimg_ml.errors.REASON_CODES`; nothing here touches
Pillow's global settings, so the functions are safe to call from many threads.
"""

from __future__ import annotations

import io
import math
import struct
from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import Any, cast

import numpy as np
from PIL import ExifTags, Image, UnidentifiedImageError

from . import _png
from .errors import SourceError
from .tensors import normalisation

# Registering every plugin up front keeps ``Image.open`` from importing plugins
# lazily (which mutates Pillow's registry) while several threads decode.
Image.init()

#: Formats decoded, identified by content. MPO is the multi-picture JPEG many
#: phone cameras write. Everything else (EPS, PDF, SVG, PSD, ICO, HEIC, ...) is
#: refused with the ``unsupported_format`` or ``decode`` reason.
ACCEPTED_FORMATS: tuple[str, ...] = ("JPEG", "MPO", "PNG", "GIF", "WEBP", "TIFF", "BMP")
# The plugins to try when opening (Pillow's JPEG opener also returns MPO files);
# a format whose plugin this Pillow build lacks is simply never identified.
_OPENERS = tuple(name for name in ACCEPTED_FORMATS if name in Image.OPEN)

COLOR_MODES: tuple[str, ...] = ("RGB", "BGR", "L", "RGBA")
RESIZE_MODES: tuple[str, ...] = ("stretch", "crop", "pad")
INTERPOLATIONS: tuple[str, ...] = ("nearest", "bilinear", "bicubic", "lanczos", "box", "hamming")
LAYOUTS: tuple[str, ...] = ("HWC", "CHW")

#: Default pixel limit: Pillow's own decompression-bomb threshold (about 89.5 MP).
DEFAULT_MAX_PIXELS = 89_478_485

#: With ``reduced_decode``, a JPEG is decoded at 1/2, 1/4 or 1/8 size only while the
#: decoded image keeps at least this many pixels per output pixel along each axis,
#: so the final resize still averages several decoded pixels into each output one.
#: Measured against a full decode (tests/test_image_ops.py): at most 12/255 per value
#: on photographs and 20/255 on adversarial patterns (zone plates, text, noise), with
#: a mean under 1/255 per image.
REDUCED_DECODE_MARGIN = 3
#: Filters whose result is a smooth average, which a reduced decode barely moves.
#: ``nearest`` picks single source pixels and ``box`` averages exact pixel footprints:
#: decoding 8x8 blocks as one pixel would change their meaning, so they always decode
#: at full size.
_REDUCIBLE_FILTERS = frozenset(("bilinear", "bicubic", "lanczos", "hamming"))

#: Per-channel ImageNet statistics of pixels in [0, 1], in RGB order.
IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)
PRESETS: tuple[str, ...] = ("imagenet",)

_CHANNELS = {"RGB": 3, "BGR": 3, "L": 1, "RGBA": 4}
_FILTERS = {
    "nearest": Image.Resampling.NEAREST,
    "bilinear": Image.Resampling.BILINEAR,
    "bicubic": Image.Resampling.BICUBIC,
    "lanczos": Image.Resampling.LANCZOS,
    "box": Image.Resampling.BOX,
    "hamming": Image.Resampling.HAMMING,
}
_TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
_SWAPS_AXES = frozenset((5, 6, 7, 8))
# Which upright axes (x, y) run against the stored ones after each transpose.
_FLIPS = {2: (True, False), 3: (True, True), 4: (False, True), 5: (False, False),
          6: (True, False), 7: (True, True), 8: (False, True)}
# Pixel modes whose values are not 8-bit: mapped to float on the 8-bit scale.
_WIDE_MODES = frozenset(("I", "I;16", "I;16L", "I;16B", "I;16N", "F"))
_ALPHA_MODES = frozenset(("LA", "PA", "RGBA", "RGBa"))
_EIGHT_BIT_MODES = frozenset(("1", "L", "P", "RGB", "RGBX", "CMYK", "YCbCr", "LAB", "HSV")) | _ALPHA_MODES
# Everything Pillow raises for malformed, truncated or hostile image data.
_DECODE_ERRORS = (OSError, SyntaxError, EOFError, ValueError, struct.error, IndexError)
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
        if not (math.isfinite(self.scale) and self.scale > 0):
            raise ValueError(f"scale must be a finite number > 0; got {self.scale!r}.")
        if not (isinstance(self.max_pixels, (int, np.integer)) and self.max_pixels >= 1):
            raise ValueError(f"max_pixels must be an integer >= 1; got {self.max_pixels!r}.")
        set_ = object.__setattr__  # frozen: normalise fields once, here
        set_(self, "height", int(self.height))
        set_(self, "width", int(self.width))
        set_(self, "scale", float(self.scale))
        set_(self, "max_pixels", int(self.max_pixels))
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
            "maxPixels": self.max_pixels,
        }

    def replace(self, **changes: Any) -> ImageSpec:
        """A copy with some fields changed (validated like a new spec)."""
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        values.update(changes)
        return ImageSpec(**values)


# --------------------------------------------------------------------------- identification

def _describe_unidentified(head: bytes, length: int) -> SourceError:
    """Name what the bytes (``head`` = the first KiB) are when no accepted format claims them.

    No content is echoed: the detail only names a kind of document or format.
    """
    if not length:
        return SourceError("decode", "empty input (0 bytes)")
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if text.startswith(b"%pdf-"):
        return SourceError("unsupported_format", "PDF documents are not accepted")
    if text.startswith(b"%!ps") or head.startswith(b"\xc5\xd0\xd3\xc6"):
        return SourceError("unsupported_format", "EPS/PostScript is not accepted")
    if b"<svg" in text and text.startswith((b"<?xml", b"<svg", b"<!--", b"<!doctype svg")):
        return SourceError("unsupported_format", "SVG (vector graphics) is not accepted")
    if text.startswith((b"<!doctype html", b"<html", b"<head", b"<body")) or b"<html" in text:
        return SourceError("decode", "the bytes are an HTML document, not an image")
    if head[4:8] == b"ftyp":
        return SourceError("unsupported_format", f"ISO media ({head[8:12].decode('latin-1')!r}, e.g. HEIC/AVIF) "
                                                 "is not accepted")
    for magic, name in ((b"8BPS", "PSD"), (b"\x00\x00\x01\x00", "ICO"), (b"\xff\x4f\xff\x51", "JPEG 2000"),
                        (b"\x00\x00\x00\x0cjP  ", "JPEG 2000"), (b"\xff\x0a", "JPEG XL"),
                        (b"\x00\x00\x00\x0cJXL ", "JPEG XL"), (b"qoif", "QOI"), (b"DDS ", "DDS")):
        if head.startswith(magic):
            return SourceError("unsupported_format", f"{name} is not accepted")
    return SourceError("decode", f"not an image in an accepted format ({', '.join(ACCEPTED_FORMATS)}); "
                                 f"{length} bytes")


def _too_many(width: int, height: int, spec: ImageSpec) -> SourceError:
    return SourceError("too_many_pixels", f"{width}x{height} = {width * height} pixels > maxPixels "
                                          f"{spec.max_pixels}")


def _open(data: bytes | bytearray | memoryview, spec: ImageSpec) -> Image.Image:
    """Identify ``data`` among the accepted formats and check its size from the header."""
    try:
        image = Image.open(io.BytesIO(data), formats=_OPENERS)
    except UnidentifiedImageError:
        raise _describe_unidentified(bytes(data[:1024]), len(data)) from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        # Pillow's own guard (its warning too, when warnings are errors) fires inside
        # ``open`` for sizes beyond its global limit: same reason as ours.
        raise SourceError("too_many_pixels", str(exc)) from None
    except _DECODE_ERRORS as exc:
        raise SourceError("decode", f"corrupt or truncated data: {exc}") from None
    if image.width * image.height > spec.max_pixels:
        image.close()
        raise _too_many(image.width, image.height, spec)
    return image


# --------------------------------------------------------------------------- geometry

def _orientation(image: Image.Image) -> int:
    """The EXIF orientation (1 when absent or unreadable: a broken EXIF block must not lose the pixels)."""
    try:
        value = image.getexif().get(ExifTags.Base.Orientation, 1)
    except _DECODE_ERRORS:
        return 1
    return value if isinstance(value, int) and value in _TRANSPOSE else 1


@dataclass(frozen=True)
class _Placement:
    """Where the source lands in the output: resize ``box`` (source pixels) to ``size`` at ``offset``."""

    box: tuple[float, float, float, float]
    size: tuple[int, int]
    offset: tuple[int, int]


def _placement(width: int, height: int, spec: ImageSpec) -> _Placement:
    """The resize for an upright ``width x height`` source; matches Pillow's ``ImageOps`` geometry.

    ``crop`` is ``ImageOps.fit`` (centred, no bleed) and ``pad`` is
    ``ImageOps.pad`` (centred), except that a side never shrinks below one
    pixel, so extreme strips still show up.
    """
    out_w, out_h = spec.width, spec.height
    full = (0.0, 0.0, float(width), float(height))
    if spec.resize_mode == "stretch":
        return _Placement(full, (out_w, out_h), (0, 0))
    source_ratio = width / height
    output_ratio = out_w / out_h
    if spec.resize_mode == "crop":
        if source_ratio == output_ratio:
            crop_w, crop_h = float(width), float(height)
        elif source_ratio >= output_ratio:
            crop_w, crop_h = output_ratio * height, float(height)
        else:
            crop_w, crop_h = float(width), width / output_ratio
        left, top = (width - crop_w) * 0.5, (height - crop_h) * 0.5
        return _Placement((left, top, left + crop_w, top + crop_h), (out_w, out_h), (0, 0))
    size_w, size_h = out_w, out_h
    if source_ratio > output_ratio:
        size_h = max(1, round(height / width * out_w))
    elif source_ratio < output_ratio:
        size_w = max(1, round(width / height * out_h))
    offset = (round((out_w - size_w) * 0.5), round((out_h - size_h) * 0.5))
    return _Placement(full, (size_w, size_h), offset)


def _draft(image: Image.Image, orientation: int, spec: ImageSpec) -> float:
    """Ask a JPEG decoder for a reduced size; returns the reduction factor (1 when none)."""
    raw_w, raw_h = image.size
    upright = (raw_h, raw_w) if orientation in _SWAPS_AXES else (raw_w, raw_h)
    placement = _placement(upright[0], upright[1], spec)
    left, top, right, bottom = placement.box
    # Decoded pixels needed per source pixel along each (upright) axis.
    need_x = placement.size[0] * REDUCED_DECODE_MARGIN / (right - left)
    need_y = placement.size[1] * REDUCED_DECODE_MARGIN / (bottom - top)
    if orientation in _SWAPS_AXES:
        need_x, need_y = need_y, need_x
    request = (max(1, math.ceil(raw_w * need_x)), max(1, math.ceil(raw_h * need_y)))
    if min(raw_w // request[0], raw_h // request[1]) < 2:
        return 1.0
    result = image.draft(None, request)
    if result is None:
        return 1.0
    # Pillow reports the full image's extent in decoded pixels: (0, 0, raw_w / s, raw_h / s).
    return raw_w / result[1][2]


# --------------------------------------------------------------------------- pixels

def _wide_to_float(image: Image.Image) -> Image.Image:
    """A 16/32-bit or float gray image as mode ``F`` on the 8-bit scale [0, 255], precision kept.

    16-bit values map by 1/257 (65535 -> 255), 32-bit integers are read as
    16-bit values (clipped to [0, 65535]), floats as intensities in [0, 1]
    (clipped; NaN becomes 0) so every output is finite.
    """
    values = np.asarray(image)
    if image.mode == "F":
        pixels = np.nan_to_num(values.astype(np.float32), nan=0.0, posinf=1.0, neginf=0.0)
        np.clip(pixels, 0.0, 1.0, out=pixels)
        pixels *= np.float32(255.0)
    elif image.mode == "I":
        pixels = np.clip(values, 0, 65535).astype(np.float32)
        pixels /= np.float32(257.0)
    else:
        pixels = values.astype(np.float32)
        pixels /= np.float32(257.0)
    return Image.fromarray(pixels, "F")


def _composite(image: Image.Image, background: tuple[int, int, int]) -> Image.Image:
    """Blend onto an opaque ``background``, weighting each pixel by its alpha."""
    rgba = image if image.mode == "RGBA" else image.convert("RGBA")
    base = Image.new("RGB", rgba.size, background)
    base.paste(rgba, (0, 0), rgba)
    return base


def _to_working_mode(image: Image.Image, spec: ImageSpec) -> Image.Image:
    """Convert to ``L``, ``RGB`` or ``RGBA`` (8-bit) or ``F`` (wide gray), per ``spec.color_mode``."""
    mode = image.mode
    if mode in _WIDE_MODES:
        return _wide_to_float(image)
    if mode not in _EIGHT_BIT_MODES:
        raise SourceError("unsupported_format", f"pixel mode {mode!r} is not supported")
    target = "RGB" if spec.color_mode == "BGR" else spec.color_mode
    if target == "RGBA":
        return image if mode == "RGBA" else image.convert("RGBA")
    if mode in _ALPHA_MODES or "transparency" in image.info:
        composed = _composite(image, spec.background)
        return composed if target == "RGB" else composed.convert("L")
    if mode == target:
        return image
    if target == "L" and mode == "LAB":
        return image.convert("RGB").convert("L")
    return image.convert(target)


def _fill_values(spec: ImageSpec) -> np.ndarray:
    """``pad_color`` in output channels, on the 8-bit scale."""
    red, green, blue = spec.pad_color
    by_mode = {
        "RGB": [red, green, blue], "BGR": [blue, green, red],
        "L": [_luma(spec.pad_color)], "RGBA": [red, green, blue, 255],
    }
    return np.asarray(by_mode[spec.color_mode], dtype=np.float32)


def _coefficients(spec: ImageSpec) -> tuple[np.ndarray, np.ndarray | None]:
    """Per-channel ``a, b`` with ``value = pixel * a + b`` (``b`` None when zero)."""
    # ``__post_init__`` has resolved presets: mean and std are tuples of floats here.
    return normalisation(spec.scale, cast("tuple[float, ...]", spec.mean), cast("tuple[float, ...]", spec.std))


#: Element types an output buffer may have: float32 (normalised values), float64
#: (the same float32 values, widened as they are written: a ``Vector``'s storage)
#: or uint8 (pixels before normalisation).
OUTPUT_DTYPES: tuple[np.dtype, ...] = (np.dtype(np.float32), np.dtype(np.float64), np.dtype(np.uint8))


def _output_buffer(spec: ImageSpec, out: np.ndarray | None) -> np.ndarray:
    if out is None:
        return np.empty(spec.size, dtype=np.float32)
    if out.dtype not in OUTPUT_DTYPES or out.shape != (spec.size,) or not out.flags.c_contiguous:
        raise ValueError(
            f"out must be a C-contiguous float32, float64 or uint8 array of shape ({spec.size},); "
            f"got {out.dtype} {out.shape}"
        )
    return out


def _to_uint8(pixels: np.ndarray) -> np.ndarray:
    """8-bit pixels as they are; high-bit-depth (float, 8-bit scale) ones rounded and clipped to [0, 255]."""
    if pixels.dtype == np.uint8:
        return pixels
    return np.clip(np.rint(pixels), 0, 255).astype(np.uint8)


def _write(pixels: np.ndarray, placement: _Placement, spec: ImageSpec, out: np.ndarray) -> None:
    """Write ``pixels`` (h, w[, k], 8-bit scale) into ``out`` in the spec's layout and channel order.

    A float ``out`` receives ``pixel * gain + bias`` computed in float32 (a float64
    ``out`` holds exactly those float32 values); a uint8 ``out`` receives the
    pixels themselves, so ``tensors.TensorInfo.to_float32`` on it gives the float
    output bit for bit.
    """
    if pixels.ndim == 2:
        pixels = pixels[:, :, None]  # gray: broadcast over the output channels
    if spec.color_mode == "BGR":
        pixels = pixels[:, :, ::-1]
    elif spec.color_mode == "RGBA" and pixels.shape[2] == 1:
        opaque = np.full(pixels.shape[:2] + (1,), 255, dtype=pixels.dtype)
        pixels = np.concatenate([np.broadcast_to(pixels, pixels.shape[:2] + (3,)), opaque], axis=2)
    grid = out.reshape(spec.height, spec.width, spec.channels)
    if spec.layout == "CHW":
        grid = out.reshape(spec.channels, spec.height, spec.width).transpose(1, 2, 0)
    x, y = placement.offset
    w, h = placement.size
    gain, bias = (None, None) if out.dtype == np.uint8 else _coefficients(spec)
    if (w, h) != (spec.width, spec.height):
        fill = _fill_values(spec)
        if gain is not None:
            fill = fill * gain + (0 if bias is None else bias)
        grid[...] = fill
        grid = grid[y:y + h, x:x + w]
    if gain is None:
        grid[...] = _to_uint8(pixels)
        return
    # dtype=float32: the arithmetic is float32 whatever ``out`` holds (see above).
    np.multiply(pixels, gain, out=grid, dtype=np.float32)
    if bias is not None:
        np.add(grid, bias, out=grid, dtype=np.float32)


def _render(image: Image.Image, orientation: int, spec: ImageSpec, out: np.ndarray | None,
            upright_size: tuple[int, int] | None = None, reduction: float = 1.0) -> np.ndarray:
    """Orient, convert, resize and normalise a decoded image into ``out``.

    ``upright_size`` is the full-resolution size when the image was decoded
    ``reduction`` times smaller: geometry is planned on the full size and its
    coordinates divided by the reduction. The source then spans ``size /
    reduction`` decoded pixels, the last stored row/column covering a partial
    block; where orientation flips an axis that partial pixel comes first, so
    the box shifts by the fraction it leaves uncovered.
    """
    if orientation in _TRANSPOSE:
        image = image.transpose(_TRANSPOSE[orientation])
    image = _to_working_mode(image, spec)
    width, height = upright_size or image.size
    placement = _placement(width, height, spec)
    box = placement.box
    if reduction != 1.0:
        flip_x, flip_y = _FLIPS.get(orientation, (False, False))
        shift_x = image.width - width / reduction if flip_x else 0.0
        shift_y = image.height - height / reduction if flip_y else 0.0
        left, top, right, bottom = (v / reduction for v in box)
        box = (left + shift_x, top + shift_y, right + shift_x, bottom + shift_y)
    resized = image.resize(placement.size, _FILTERS[spec.interpolation], box=box)
    buffer = _output_buffer(spec, out)
    _write(np.asarray(resized), placement, spec, buffer)
    return buffer


# --------------------------------------------------------------------------- public API

def preprocess_pil(image: Image.Image, spec: ImageSpec, out: np.ndarray | None = None) -> np.ndarray:
    """Orient, convert, resize and normalise a Pillow image to ``spec.size`` float32 values.

    An image straight from ``Image.open`` (not yet loaded) is decoded here, by
    the same steps as :func:`preprocess_bytes` (including a reduced-size JPEG
    decode, which changes ``image`` in place); its result is then identical to
    ``preprocess_bytes`` on the same bytes.

    Raises
    ------
    SourceError
        ``too_many_pixels``, ``decode`` (truncated/corrupt data) or
        ``unsupported_format`` (a pixel mode with no RGB meaning).

    Examples
    --------
    >>> from PIL import Image
    >>> spec = ImageSpec(1, 2, color_mode="BGR", scale=1.0)
    >>> preprocess_pil(Image.new("RGB", (4, 2), (255, 0, 51)), spec).tolist()
    [51.0, 0.0, 255.0, 51.0, 0.0, 255.0]
    """
    if image.width * image.height > spec.max_pixels:
        raise _too_many(image.width, image.height, spec)
    if image.width < 1 or image.height < 1:
        raise SourceError("decode", f"empty image ({image.width}x{image.height})")
    # An ``ImageFile`` still holding its tile list has not been decoded yet.
    pending_jpeg = bool(getattr(image, "tile", None)) and image.format in ("JPEG", "MPO")
    upright_size: tuple[int, int] | None = None
    reduction = 1.0
    orientation = 1
    if pending_jpeg and spec.exif_transpose:
        orientation = _orientation(image)  # JPEG EXIF is parsed with the header: no decode needed
    if pending_jpeg and spec.reduced_decode and spec.interpolation in _REDUCIBLE_FILTERS:
        width, height = image.size
        upright_size = (height, width) if orientation in _SWAPS_AXES else (width, height)
        reduction = _draft(image, orientation, spec)
    try:
        image.load()
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise SourceError("too_many_pixels", str(exc)) from None
    except _DECODE_ERRORS as exc:
        raise SourceError("decode", f"corrupt or truncated {image.format or 'image'} data: {exc}") from None
    if spec.exif_transpose and not pending_jpeg:
        orientation = _orientation(image)
    return _render(image, orientation, spec, out, upright_size, reduction)


def preprocess_bytes(data: bytes | bytearray | memoryview, spec: ImageSpec,
                     out: np.ndarray | None = None) -> np.ndarray:
    """Decode encoded image bytes and return ``spec.size`` float32 values.

    ``out``, when given, must be a C-contiguous array of length ``spec.size``
    (e.g. one row of a preallocated block); it is filled and returned. A
    float32 or float64 ``out`` gets the normalised values (float64 holding the
    very float32 values), a uint8 ``out`` the pixels before ``scale``/``mean``/
    ``std`` (high-bit-depth sources rounded to 8 bits).

    Raises
    ------
    SourceError
        ``decode`` when the bytes are not an image in an accepted format or are
        truncated/corrupt, ``unsupported_format`` for recognised but refused
        formats (EPS, PDF, SVG, ...), ``too_many_pixels`` above ``max_pixels``.

    Examples
    --------
    >>> import io
    >>> from PIL import Image
    >>> buffer = io.BytesIO()
    >>> Image.new("RGBA", (8, 8), (255, 0, 0, 0)).save(buffer, "PNG")
    >>> preprocess_bytes(buffer.getvalue(), ImageSpec(1, 1, background=(0, 0, 255))).tolist()
    [0.0, 0.0, 1.0]
    >>> preprocess_bytes(buffer.getvalue(), ImageSpec(1, 1, background=(0, 0, 255)),
    ...                  out=np.empty(3, np.uint8)).tolist()
    [0, 0, 255]
    >>> preprocess_bytes(b"<!DOCTYPE html><html></html>", ImageSpec())
    Traceback (most recent call last):
    ...
    sparkimg_ml.errors.SourceError: decode: the bytes are an HTML document, not an image
    """
    plain_png = _png.decode_plain_png(data, spec.max_pixels)
    if plain_png is not None:  # the same pixels Pillow would decode, sooner
        return _render(plain_png, 1, spec, out)
    with _open(data, spec) as image:
        return preprocess_pil(image, spec, out)


def preprocess_spark_struct(
    height: int, width: int, n_channels: int, mode: int, data: bytes | None, spec: ImageSpec,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """Features for one row of Spark's image struct (BGR, BGRA or gray uint8 HWC; modes 16, 24, 0).

    The struct is already decoded by Spark, so EXIF orientation and reduced
    decoding do not apply; everything else follows ``spec`` exactly as for
    encoded bytes, so a PNG that Spark decodes correctly gives the same features
    both ways.

    Examples
    --------
    >>> preprocess_spark_struct(1, 1, 3, 16, bytes([0, 0, 255]), ImageSpec(1, 1)).tolist()
    [1.0, 0.0, 0.0]
    """
    if n_channels == -1 and not data:
        raise SourceError("decode", "Spark's image source could not decode this file (invalid image row)")
    expected_mode = {1: 0, 3: 16, 4: 24}.get(n_channels)
    if (expected_mode is None or mode != expected_mode or height < 1 or width < 1 or data is None
            or len(data) != height * width * n_channels):
        raise SourceError(
            "bad_struct", f"{height}x{width}x{n_channels} (mode {mode}) with {0 if data is None else len(data)} bytes"
        )
    if height * width > spec.max_pixels:
        raise _too_many(width, height, spec)
    pil_mode, raw_mode = {1: ("L", "L"), 3: ("RGB", "BGR"), 4: ("RGBA", "BGRA")}[n_channels]
    image = Image.frombuffer(pil_mode, (width, height), data, "raw", raw_mode, 0, 1)
    return _render(image, 1, spec, out)
