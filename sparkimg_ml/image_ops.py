"""Bytes -> normalised float32 pixels, with no Spark import.

The functions here are the single definition of the featurizer's image
semantics: the Spark UDF and the serving helpers both call them, so features
computed in a plain Python process are bit-identical to the Spark output.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from typing import Optional

import numpy as np
from PIL import Image

from .errors import SourceError

COLOR_MODES = ("RGB", "L")
_CHANNELS = {"RGB": 3, "L": 1}


@dataclass(frozen=True)
class ImageSpec:
    """How one image becomes a flat float32 feature vector.

    Examples
    --------
    >>> spec = ImageSpec(height=32, width=32)
    >>> spec.shape, spec.size
    ((32, 32, 3), 3072)
    """

    height: int = 32
    width: int = 32
    color_mode: str = "RGB"
    scale: float = 1.0 / 255.0

    def __post_init__(self) -> None:
        if self.height < 1 or self.width < 1:
            raise ValueError(f"image size must be positive, got {self.height}x{self.width}")
        if self.color_mode not in COLOR_MODES:
            raise ValueError(f"color_mode must be one of {COLOR_MODES}, got {self.color_mode!r}")

    @property
    def channels(self) -> int:
        return _CHANNELS[self.color_mode]

    @property
    def shape(self) -> tuple[int, int, int]:
        return (self.height, self.width, self.channels)

    @property
    def size(self) -> int:
        return self.height * self.width * self.channels

    def metadata(self) -> dict:
        """The ``tensor`` entry of the output column's metadata (JSON-native)."""
        return {
            "shape": list(self.shape),
            "layout": "HWC",
            "channelOrder": self.color_mode,
            "dtype": "float32",
            "scale": self.scale,
        }


def preprocess_pil(image: Image.Image, spec: ImageSpec, out: Optional[np.ndarray] = None) -> np.ndarray:
    """Convert, resize and normalise an open Pillow image to ``spec.size`` float32 values."""
    image = image.convert(spec.color_mode)
    image = image.resize((spec.width, spec.height), Image.Resampling.BICUBIC)
    pixels = np.asarray(image, dtype=np.float32).reshape(-1)
    if out is None:
        out = np.empty(spec.size, dtype=np.float32)
    np.multiply(pixels, np.float32(spec.scale), out=out)
    return out


def preprocess_bytes(data: bytes, spec: ImageSpec, out: Optional[np.ndarray] = None) -> np.ndarray:
    """Decode encoded image bytes and return ``spec.size`` float32 values (HWC order).

    Raises
    ------
    SourceError
        ``decode`` when the bytes are not a readable image.
    """
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.load()
            return preprocess_pil(image, spec, out)
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        raise SourceError("decode", str(exc)) from None


def preprocess_spark_struct(
    height: int, width: int, n_channels: int, mode: int, data: bytes, spec: ImageSpec,
    out: Optional[np.ndarray] = None,
) -> np.ndarray:
    """Features for one row of Spark's image struct (BGR or BGRA or gray, uint8, HWC)."""
    if n_channels not in (1, 3, 4) or height < 1 or width < 1 or len(data) != height * width * n_channels:
        raise SourceError("bad_struct", f"{height}x{width}x{n_channels} with {len(data)} bytes (mode {mode})")
    pixels = np.frombuffer(data, dtype=np.uint8).reshape(height, width, n_channels)
    if n_channels == 1:
        image = Image.fromarray(pixels[:, :, 0], "L")
    elif n_channels == 3:
        image = Image.fromarray(np.ascontiguousarray(pixels[:, :, ::-1]), "RGB")
    else:
        image = Image.fromarray(np.ascontiguousarray(pixels[:, :, [2, 1, 0, 3]]), "RGBA")
    return preprocess_pil(image, spec, out)
