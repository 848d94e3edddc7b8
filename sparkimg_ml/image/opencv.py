"""``decoder="auto"``: plain JPEGs decoded and shrunk by OpenCV, everything else by Pillow.

OpenCV (``opencv-python-headless``, the ``[opencv]`` extra) decodes a JPEG at 1/2,
1/4 or 1/8 size inside libjpeg-turbo (``IMREAD_REDUCED_COLOR_*``) and shrinks it
with an area average (``INTER_AREA``); measured with ``python -m
benchmarks.bench_decode`` (docs/guides/decoding.md) that costs less CPU than
Pillow's draft decode plus bicubic resize, at a bounded distance from an exact
full-size Pillow decode (:data:`MAX_ABS_DELTA_PHOTOS`, :data:`MAX_ABS_DELTA_PATTERNS`,
:data:`MAX_MEAN_DELTA`, :data:`MAX_MEAN_DELTA_PATTERNS`).

``decoder="auto"`` needs OpenCV: without it :func:`require` raises ``ImportError``
naming the extra (on the driver when a stage transforms, and in every process
that decodes), so the values never depend silently on what is installed.

Only the plain cases take this path (:func:`preprocess_opencv` returns None for
everything else, and the caller decodes with Pillow as with ``decoder="pillow"``):

* the spec: ``decoder="auto"``, ``reducedDecode`` on (values may move), a smooth
  filter (bilinear, bicubic, lanczos, hamming), ``resizeMode`` ``stretch`` or
  ``pad`` (``crop``'s fractional box has no OpenCV equivalent), ``colorMode``
  ``RGB`` or ``BGR`` (OpenCV's gray conversion is not Pillow's), ``reducingGap``
  0, and an output no larger than the image on either axis (a shrink: an area
  average is then a true low-pass filter);
* the image: a JPEG (not MPO) in Pillow mode RGB or L (so no CMYK/YCCK), baseline
  or progressive, whose data ends with the EOI marker (a truncated file goes to
  Pillow and gets Pillow's ``decode`` reason), without an ICC profile when
  ``colorProfile="srgb"``.

PNGs stay on the Pillow path (libspng with the ``[fast]`` extra): measured on the
benchmark corpus, OpenCV's PNG decode plus area resize cost more CPU than libspng
plus Pillow's resize (docs/guides/decoding.md), and PNG has no reduced-size decode.

EXIF orientation stays ours: OpenCV is told to ignore it
(``IMREAD_IGNORE_ORIENTATION``), the shrink runs in stored orientation (an area
average commutes with flips and transposes) and the small result is turned
upright with the same transposes as the Pillow path. Any OpenCV failure (None
from ``imdecode``, an unexpected shape) also falls back to Pillow, so reason codes
are those of ``decoder="pillow"``.

OpenCV's own thread pool is set to one thread (``cv2.setNumThreads(1)``) the
first time this path runs: callers decode one image per thread already.
"""

from __future__ import annotations

import functools
import math
from typing import Any

import numpy as np
from PIL import Image

from .decode import _orientation
from .render import _output_buffer, _placement, _write
from .spec import ImageSpec

#: A JPEG is decoded at 1/2, 1/4 or 1/8 size only while the decoded image keeps at
#: least this many pixels per output pixel along each axis (chosen by measurement:
#: benchmarks/bench_decode.py, docs/guides/decoding.md).
OPENCV_DECODE_MARGIN = 2

#: Documented distance from an exact full-size Pillow decode + resize, on the 0..255
#: scale, measured and tested (tests/unit/test_opencv_decode.py): the largest change of
#: any value on photographs and on adversarial patterns (zone plates, text, noise,
#: stripes), and the largest mean change of one image (photographs; patterns).
MAX_ABS_DELTA_PHOTOS = 96
MAX_ABS_DELTA_PATTERNS = 96
MAX_MEAN_DELTA = 5.0
MAX_MEAN_DELTA_PATTERNS = 8.0

_SOI, _EOI = b"\xff\xd8\xff", b"\xff\xd9"
# Numpy view of each EXIF orientation's transpose, on an (h, w[, c]) array: Pillow's ``_TRANSPOSE``.
_ORIENT = {
    2: lambda a: a[:, ::-1],
    3: lambda a: a[::-1, ::-1],
    4: lambda a: a[::-1],
    5: lambda a: a.swapaxes(0, 1),
    6: lambda a: a.swapaxes(0, 1)[:, ::-1],
    7: lambda a: a.swapaxes(0, 1)[::-1, ::-1],
    8: lambda a: a.swapaxes(0, 1)[::-1],
}
_SWAPS_AXES = frozenset((5, 6, 7, 8))


@functools.lru_cache(maxsize=1)
def _cv2() -> Any | None:
    """The ``cv2`` module (one OpenCV thread), or None when OpenCV is not installed."""
    try:
        import cv2
    except ImportError:
        return None
    cv2.setNumThreads(1)
    return cv2


#: What to run when ``decoder="auto"`` finds no OpenCV.
INSTALL_HINT = "pip install 'sparkimg_ml[opencv]'"


def available() -> bool:
    """Whether OpenCV is installed, i.e. ``decoder="auto"`` can be used (``pip install 'sparkimg_ml[opencv]'``)."""
    return _cv2() is not None


def require(decoder: str) -> None:
    """Raise ``ImportError`` naming the extra when ``decoder`` is ``"auto"`` and OpenCV is missing.

    Examples
    --------
    >>> require("pillow")  # Pillow needs nothing more
    """
    if decoder == "auto" and not available():
        raise ImportError(f"decoder='auto' decodes JPEGs with OpenCV, which is not installed here: {INSTALL_HINT} "
                          "(opencv-python-headless), or set decoder='pillow'.")


def version() -> str | None:
    """OpenCV's version, or None when it is not installed."""
    cv2 = _cv2()
    return None if cv2 is None else str(cv2.__version__)


def spec_eligible(spec: ImageSpec) -> bool:
    """Whether ``spec`` lets plain images take the OpenCV path (see the module doc): :attr:`ImageSpec.opencv_eligible`.

    Examples
    --------
    >>> spec_eligible(ImageSpec(decoder="auto")), spec_eligible(ImageSpec(decoder="auto", resize_mode="crop"))
    (True, False)
    """
    return spec.opencv_eligible


def looks_like_jpeg(data: bytes | bytearray | memoryview) -> bool:
    r"""Whether ``data`` starts like a JPEG and ends with its EOI marker (cheap: two slices).

    Examples
    --------
    >>> looks_like_jpeg(b"\xff\xd8\xff\xe0...\xff\xd9"), looks_like_jpeg(b"\xff\xd8\xff\xe0...")
    (True, False)
    """
    return bytes(data[:3]) == _SOI and bytes(data[-2:]) == _EOI


def plain_jpeg(image: Image.Image, data: bytes | bytearray | memoryview, spec: ImageSpec) -> bool:
    """Whether ``image`` (opened from ``data``, not decoded) is a JPEG OpenCV may decode (see the module doc)."""
    return (image.format == "JPEG" and bool(getattr(image, "tile", None)) and image.mode in ("RGB", "L")
            and looks_like_jpeg(data)
            and not (spec.color_profile == "srgb" and image.info.get("icc_profile")))


def preprocess_opencv(image: Image.Image, data: bytes | bytearray | memoryview, spec: ImageSpec,
                      out: np.ndarray | None = None) -> np.ndarray | None:
    """``spec.size`` values for a plain JPEG through OpenCV, or None to decode it with Pillow.

    ``image`` is the Pillow image opened (not decoded) from ``data``: its header
    tells the format, mode, size, ICC profile and EXIF orientation.

    Examples
    --------
    >>> import io
    >>> buffer = io.BytesIO()
    >>> Image.new("RGB", (64, 48), (255, 0, 51)).save(buffer, "JPEG", quality=100, subsampling=0)
    >>> with Image.open(io.BytesIO(buffer.getvalue())) as image:
    ...     values = preprocess_opencv(image, buffer.getvalue(), ImageSpec(1, 2, scale=1.0, decoder="auto"))
    >>> values is None if not available() else bool(np.abs(values - [255, 0, 51, 255, 0, 51]).max() <= 2)
    True
    """
    cv2 = _cv2()
    if cv2 is None or not spec_eligible(spec):
        return None
    if not plain_jpeg(image, data, spec):
        return None
    orientation = _orientation(image) if spec.exif_transpose else 1
    raw_w, raw_h = image.size
    upright_w, upright_h = (raw_h, raw_w) if orientation in _SWAPS_AXES else (raw_w, raw_h)
    placement = _placement(upright_w, upright_h, spec)
    size_w, size_h = placement.size  # the whole upright source lands on this many output pixels
    if size_w > upright_w or size_h > upright_h:
        return None  # an enlargement: Pillow's filter, not an area average
    # Output pixels along the stored axes.
    stored_w, stored_h = (size_h, size_w) if orientation in _SWAPS_AXES else (size_w, size_h)
    factor = 1
    for candidate in (8, 4, 2):
        if (math.ceil(raw_w / candidate) >= OPENCV_DECODE_MARGIN * stored_w
                and math.ceil(raw_h / candidate) >= OPENCV_DECODE_MARGIN * stored_h):
            factor = candidate
            break
    gray = image.mode == "L"
    if gray:
        flags = {1: cv2.IMREAD_GRAYSCALE, 2: cv2.IMREAD_REDUCED_GRAYSCALE_2, 4: cv2.IMREAD_REDUCED_GRAYSCALE_4,
                 8: cv2.IMREAD_REDUCED_GRAYSCALE_8}[factor]
    else:
        flags = {1: cv2.IMREAD_COLOR, 2: cv2.IMREAD_REDUCED_COLOR_2, 4: cv2.IMREAD_REDUCED_COLOR_4,
                 8: cv2.IMREAD_REDUCED_COLOR_8}[factor]
    try:
        decoded = cv2.imdecode(np.frombuffer(data, np.uint8), flags | cv2.IMREAD_IGNORE_ORIENTATION)
    except cv2.error:
        return None
    expected = (math.ceil(raw_h / factor), math.ceil(raw_w / factor))
    if (decoded is None or decoded.dtype != np.uint8 or decoded.shape[:2] != expected
            or decoded.ndim != (2 if gray else 3) or (not gray and decoded.shape[2] != 3)):
        return None
    small = cv2.resize(decoded, (stored_w, stored_h), interpolation=cv2.INTER_AREA)
    if not gray:
        small = small[:, :, ::-1]  # OpenCV's BGR to RGB (a view)
    if orientation in _ORIENT:
        small = _ORIENT[orientation](small)
    buffer = _output_buffer(spec, out)
    _write(small, placement, spec, buffer)
    return buffer
