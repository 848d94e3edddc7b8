"""The public entry points: encoded bytes, a Pillow image or a Spark image struct to features."""

from __future__ import annotations

import numpy as np
from PIL import Image

from ..errors import SourceError
from . import opencv, png
from .decode import (
    _DECODE_ERRORS,
    _SWAPS_AXES,
    _UNDO,
    _open,
    _orientation,
    _rgb16_keyed_png,
    _too_many,
    _with_rgb16_key_alpha,
)
from .render import _draft, _render
from .spec import _REDUCIBLE_FILTERS, ImageSpec


def preprocess_pil(image: Image.Image, spec: ImageSpec, out: np.ndarray | None = None) -> np.ndarray:
    """Orient, convert, resize and normalise a Pillow image to ``spec.size`` float32 values.

    An image straight from ``Image.open`` (not yet loaded) is decoded here, by
    the same steps as :func:`preprocess_bytes` (including a reduced-size JPEG
    decode, which changes ``image`` in place); its result is then identical to
    ``preprocess_bytes`` on the same bytes. ``spec.decoder`` is not used here:
    Pillow has decoded or opened the image already (``decoder="auto"`` applies
    to encoded bytes, in :func:`preprocess_bytes`).

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
    # Pillow's TIFF decoder turns the image upright itself; knowing the tag beforehand lets us undo it.
    pending_tiff_orientation = _orientation(image) if image.format == "TIFF" and getattr(image, "tile", None) else 1
    rgb16_keyed_source = _rgb16_keyed_png(image)
    try:
        image.load()
        if rgb16_keyed_source is not None:
            image = _with_rgb16_key_alpha(image, rgb16_keyed_source)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise SourceError("too_many_pixels", str(exc)) from None
    except _DECODE_ERRORS as exc:
        raise SourceError("decode", f"corrupt or truncated {image.format or 'image'} data: {exc}") from None
    if not pending_jpeg and (spec.exif_transpose or pending_tiff_orientation != 1):
        orientation = _orientation(image)
        if pending_tiff_orientation != 1 and orientation == 1:  # the decoder applied it
            orientation = 1 if spec.exif_transpose else _UNDO[pending_tiff_orientation]
        elif not spec.exif_transpose:
            orientation = 1
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
        ``decode`` when the bytes are not an image or are truncated/corrupt,
        ``unsupported_format`` for recognised but refused formats, named (TGA,
        PDF, HEIC without the ``[heif]`` extra, ...), ``too_many_pixels`` above
        ``max_pixels``.
    ImportError
        ``decoder="auto"`` without OpenCV (the ``[opencv]`` extra): a setup
        problem, not a bad image.

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
    auto = spec.decoder == "auto"
    if auto:
        opencv.require(spec.decoder)
    plain_png = png.decode_plain_png(data, spec.max_pixels, color_managed=spec.color_profile == "srgb")
    if plain_png is not None:  # the same pixels Pillow would decode, sooner
        return _render(plain_png, 1, spec, out)
    with _open(data, spec) as image:
        if auto and opencv.spec_eligible(spec):
            fast = opencv.preprocess_opencv(image, data, spec, out)
            if fast is not None:  # a plain JPEG, decoded and shrunk by OpenCV
                return fast
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
