"""Bytes -> normalised float32 pixels, with no Spark import.

The functions here are the single definition of the featurizer's image
semantics: the Spark UDF and the serving helpers both call them, so features
computed in a plain Python process are bit-identical to the Spark output.

The pipeline for one image is

1. **identify** the bytes by content (never by file name) among
   :data:`ACCEPTED_FORMATS` (naming any other format in the refusal); refuse
   anything larger than ``max_pixels`` from the header alone, before any pixel
   is decoded;
2. **decode** the first frame, at a reduced size (JPEG DCT scaling) when the
   target is much smaller than the source and ``reduced_decode`` is on; a
   truncated or corrupt file is an error, never a partial image;
3. **orient** it upright from its EXIF ``Orientation`` tag (``exif_transpose``),
   undoing the turn Pillow's TIFF decoder applies itself when that is off;
4. **convert** embedded ICC profiles to sRGB when ``color_profile="srgb"``, then
   **convert** it to ``color_mode``: palette and transparency are expanded,
   alpha is composited onto ``background`` (unless the output keeps alpha),
   CMYK/YCbCr/LAB/HSV become RGB, 1-bit becomes 0/255 and 16-bit, 32-bit and
   float pixels are mapped to the 8-bit range *without* rounding or clipping
   away their precision;
5. **resize** to ``(height, width)`` by ``resize_mode`` (``stretch``, ``crop``
   or ``pad``) with ``interpolation`` (after a box-average reduction when
   ``reducing_gap`` is set), clamped to the nominal range for every bit depth;
6. **normalise** each value as ``(pixel * scale - mean[c]) / std[c]`` where
   ``pixel`` is on the 8-bit scale [0, 255], and write it in ``layout`` order
   straight into the caller's buffer.

The modules follow the steps: :mod:`.spec` (:class:`ImageSpec`), :mod:`.decode`
(identification, refusals, size guard, orientation tags), :mod:`.png` (the
libspng fast path for plain PNGs), :mod:`.opencv` (``decoder="auto"``: plain
JPEGs decoded and shrunk by OpenCV), :mod:`.color` (colour profiles, transparency,
the working mode), :mod:`.render` (geometry, resizing, the output buffer) and
:mod:`.preprocess` (the public entry points); :mod:`.info` reads the facts of a
source (size, format, mode, orientation, length, SHA-256) from its header for
``sourceInfoCol``. This package exports only public
names; tests and tools reach a module's private helpers through that module.

Every per-image problem raises :class:`~sparkimg_ml.errors.SourceError` with a
reason code from :data:`~sparkimg_ml.errors.REASON_CODES`; nothing here touches
Pillow's global settings (limits are read, never changed), so the functions are
safe to call from many threads. The one change to Pillow's state is
registering pillow-heif's plugin, once, when the first HEIF image arrives.
"""

from __future__ import annotations

from .decode import ACCEPTED_FORMATS
from .info import SOURCE_INFO_FIELDS, SourceInfo, source_info
from .preprocess import preprocess_bytes, preprocess_pil, preprocess_spark_struct
from .render import OUTPUT_DTYPES, REDUCED_DECODE_MARGIN
from .spec import (
    COLOR_MODES,
    COLOR_PROFILES,
    DECODERS,
    DEFAULT_MAX_PIXELS,
    IMAGENET_MEAN,
    IMAGENET_STD,
    INTERPOLATIONS,
    LAYOUTS,
    MIN_REDUCING_GAP,
    PRESETS,
    RESIZE_MODES,
    ImageSpec,
)

__all__ = [
    "ACCEPTED_FORMATS",
    "COLOR_MODES",
    "COLOR_PROFILES",
    "DECODERS",
    "DEFAULT_MAX_PIXELS",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "INTERPOLATIONS",
    "ImageSpec",
    "LAYOUTS",
    "MIN_REDUCING_GAP",
    "OUTPUT_DTYPES",
    "PRESETS",
    "REDUCED_DECODE_MARGIN",
    "RESIZE_MODES",
    "SOURCE_INFO_FIELDS",
    "SourceInfo",
    "preprocess_bytes",
    "preprocess_pil",
    "preprocess_spark_struct",
    "source_info",
]
