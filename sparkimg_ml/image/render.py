"""Geometry, resizing and the normalised (or raw uint8) output written into a buffer."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import cast

import numpy as np
from PIL import Image

from ..tensors.info import normalisation
from .color import _to_working_mode
from .decode import _FLIPS, _SWAPS_AXES, _TRANSPOSE
from .spec import _REDUCIBLE_FILTERS, ImageSpec, _luma

#: With ``reduced_decode``, a JPEG is decoded at 1/2, 1/4 or 1/8 size only while the
#: decoded image keeps at least this many pixels per output pixel along each axis,
#: so the final resize still averages several decoded pixels into each output one.
#: Measured against a full decode (tests/unit/test_image_ops.py): at most 12/255 per value
#: on photographs and 20/255 on adversarial patterns (zone plates, text, noise), with
#: a mean under 1/255 per image.
REDUCED_DECODE_MARGIN = 3
_FILTERS = {
    "nearest": Image.Resampling.NEAREST,
    "bilinear": Image.Resampling.BILINEAR,
    "bicubic": Image.Resampling.BICUBIC,
    "lanczos": Image.Resampling.LANCZOS,
    "box": Image.Resampling.BOX,
    "hamming": Image.Resampling.HAMMING,
}


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
    working = _to_working_mode(image, spec)
    width, height = upright_size or working.size
    placement = _placement(width, height, spec)
    box = placement.box
    if reduction != 1.0:
        flip_x, flip_y = _FLIPS.get(orientation, (False, False))
        shift_x = working.size[0] - width / reduction if flip_x else 0.0
        shift_y = working.size[1] - height / reduction if flip_y else 0.0
        left, top, right, bottom = (v / reduction for v in box)
        box = (left + shift_x, top + shift_y, right + shift_x, bottom + shift_y)
    # A box-average ``reduce`` first, as Pillow does it: ``None`` (off) is Pillow's plain resize.
    gap = spec.reducing_gap if spec.reducing_gap and spec.interpolation in _REDUCIBLE_FILTERS else None
    resized = working.resize(placement.size, _FILTERS[spec.interpolation], box=box, reducing_gap=gap)
    buffer = _output_buffer(spec, out)
    _write(np.asarray(resized), placement, spec, buffer)
    return buffer
