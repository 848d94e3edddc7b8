"""Pixel modes: colour profiles, transparency, and the working mode an image is resized in."""

from __future__ import annotations

import functools
import io
from typing import Any

import numpy as np
from PIL import Image

from ..errors import SourceError
from .spec import ImageSpec, _luma

# Pixel modes whose values are not 8-bit: mapped to float on the 8-bit scale.
_WIDE_MODES = frozenset(("I", "I;16", "I;16L", "I;16B", "I;16N", "F"))
# Modes an embedded ICC profile is converted from (with colorProfile="srgb"), and the mode they become.
_PROFILED_MODES = {"RGB": "RGB", "RGBA": "RGB", "CMYK": "RGB", "L": "RGB", "LA": "RGB"}
_ALPHA_MODES = frozenset(("LA", "PA", "RGBA", "RGBa"))
_EIGHT_BIT_MODES = frozenset(("1", "L", "P", "RGB", "RGBX", "CMYK", "YCbCr", "LAB", "HSV")) | _ALPHA_MODES


class _FloatPlanes:
    """A 16/32-bit or float image as mode ``F`` planes on the 8-bit scale, resized plane by plane.

    Pillow resamples only single-band float images, so a wide gray image keeps one
    plane, or one per output channel once transparent pixels show ``background``.
    ``alpha`` (0 or 255) is kept for RGBA output and, as Pillow does for RGBA,
    colours are resized premultiplied by it. Resized values are clamped to
    [0, 255]: bicubic and lanczos overshoot at edges, and 8-bit results are
    clamped the same way by Pillow.
    """

    def __init__(self, planes: list[Image.Image], alpha: Image.Image | None = None) -> None:
        self.planes = planes
        self.alpha = alpha
        self.size = planes[0].size

    def resize(self, size: tuple[int, int], resample: Image.Resampling,
               box: tuple[float, float, float, float], reducing_gap: float | None = None) -> np.ndarray:
        def resized(plane: Image.Image) -> np.ndarray:
            return np.clip(np.asarray(plane.resize(size, resample, box=box, reducing_gap=reducing_gap)), 0.0, 255.0)

        if self.alpha is None:
            values = [resized(plane) for plane in self.planes]
        elif resample == Image.Resampling.NEAREST:
            values = [resized(plane) for plane in (*self.planes, self.alpha)]
        else:
            weight = np.asarray(self.alpha) / np.float32(255.0)
            alpha = resized(self.alpha)
            covered = alpha > 0
            values = []
            for plane in self.planes:
                premultiplied = resized(Image.fromarray(np.asarray(plane) * weight, "F"))
                values.append(np.where(covered, premultiplied * np.float32(255.0) / np.where(covered, alpha, 1), 0))
            values.append(alpha)
        pixels = values[0] if len(values) == 1 else np.stack(values, axis=2)
        return np.clip(pixels, 0.0, 255.0).astype(np.float32, copy=False)  # unpremultiplied colours too


def _wide_to_float(image: Image.Image, spec: ImageSpec) -> _FloatPlanes:
    """A 16/32-bit or float gray image as float planes on the 8-bit scale [0, 255], precision kept.

    16-bit values map by 1/257 (65535 -> 255), 32-bit integers are read as
    16-bit values (clipped to [0, 65535]), floats as intensities in [0, 1]
    (clipped; NaN becomes 0) so every output is finite. Pixels equal to a PNG
    transparency key are composited onto ``background`` (or get alpha 0 for RGBA).
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
    key = image.info.get("transparency")
    if not isinstance(key, int) or image.mode == "F":
        return _FloatPlanes([Image.fromarray(pixels, "F")])
    transparent = values == key
    if spec.color_mode == "RGBA":
        alpha = np.where(transparent, np.float32(0.0), np.float32(255.0)).astype(np.float32)
        return _FloatPlanes([Image.fromarray(pixels, "F")] * 3, Image.fromarray(alpha, "F"))
    shown = [_luma(spec.background)] if spec.color_mode == "L" else list(spec.background)
    return _FloatPlanes([Image.fromarray(np.where(transparent, np.float32(value), pixels), "F") for value in shown])


def _composite(image: Image.Image, background: tuple[int, int, int]) -> Image.Image:
    """Blend onto an opaque ``background``, weighting each pixel by its alpha."""
    rgba = image if image.mode == "RGBA" else image.convert("RGBA")
    base = Image.new("RGB", rgba.size, background)
    base.paste(rgba, (0, 0), rgba)
    return base


@functools.lru_cache(maxsize=16)  # profiles are small; a site rarely serves more than a few
def _srgb_transform(icc_profile: bytes, mode: str) -> Any:
    """A cached LittleCMS transform from an embedded profile to sRGB, or None when the profile is unusable.

    ``NOCACHE`` turns off LittleCMS's one-pixel cache, which is not safe when
    threads share a transform; it does not change any result.
    """
    from PIL import ImageCms

    try:
        source = ImageCms.ImageCmsProfile(io.BytesIO(icc_profile))
        return ImageCms.buildTransform(source, ImageCms.createProfile("sRGB"), mode, _PROFILED_MODES[mode],
                                       flags=ImageCms.Flags.NOCACHE)
    except (ImageCms.PyCMSError, OSError, ValueError, TypeError):
        return None


def _to_srgb(image: Image.Image) -> Image.Image:
    """Convert an image with an embedded ICC profile to sRGB (as browsers do); others are returned as they are.

    Alpha is kept as it is. A profile LittleCMS cannot use, or one that does not
    fit the image's colour space, is ignored, as browsers ignore it.
    """
    profile = image.info.get("icc_profile")
    if not profile:
        return image
    if image.mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
    if image.mode not in _PROFILED_MODES:
        return image  # 16-bit, 32-bit and float pixels, and 1-bit: values as stored
    alpha = image.getchannel("A") if image.mode in ("RGBA", "LA") else None
    color = image.convert(image.mode[:-1]) if alpha is not None else image
    transform = _srgb_transform(bytes(profile), color.mode)
    if transform is None:
        return image
    converted = transform.apply(color)
    if alpha is not None:
        converted.putalpha(alpha)
    return converted


def _to_working_mode(image: Image.Image, spec: ImageSpec) -> Image.Image | _FloatPlanes:
    """Convert to ``L``, ``RGB`` or ``RGBA`` (8-bit) or float planes (wide gray), per ``spec.color_mode``."""
    if spec.color_profile == "srgb":
        image = _to_srgb(image)
    mode = image.mode
    if mode in _WIDE_MODES:
        return _wide_to_float(image, spec)
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
