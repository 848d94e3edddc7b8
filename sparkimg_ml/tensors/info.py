"""Tensor columns without Spark: what their metadata says, and how to get values back.

Every tensor column the library writes carries a ``tensor`` entry in its column
metadata (``shape``, ``layout``, ``channelOrder``, ``dtype``, ``scale``, ``mean``,
``std``, ...). The values of one row are stored flat, in ``layout`` order, as

* ``dtype="float32"`` (a ``Vector`` or ``array<float>``): already normalised,
  ``value = pixel * gain + bias``;
* ``dtype="uint8"`` (``binary``, one byte per value): the pixels before
  normalisation, which a consumer applies with :meth:`TensorInfo.to_float32`.

``gain = float32(scale / std)`` and ``bias = float32(-mean / std)`` per channel,
applied in float32 exactly as the featurizer applies them, so a ``uint8`` tensor
turned into floats here is bit-identical to the featurizer's float output for
the same image (8-bit sources; high-bit-depth images are rounded to 8 bits).

Examples
--------
>>> info = TensorInfo.from_metadata({"tensor": {"shape": [1, 2, 3], "layout": "HWC",
...     "channelOrder": "RGB", "dtype": "uint8", "scale": 1 / 255, "mean": [0.0], "std": [1.0]}})
>>> info.to_float32(bytes([0, 51, 255, 255, 0, 0])).astype(float).round(2).tolist()
[[[0.0, 0.2, 1.0], [1.0, 0.0, 0.0]]]
>>> info.to_image(bytes([0, 51, 255, 255, 0, 0])).tolist()
[[[0, 51, 255], [255, 0, 0]]]
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..schema import TENSOR_KEY

#: Element types a tensor column may hold.
DTYPES = ("float32", "float64", "uint8")


def normalisation(scale: float, mean: Sequence[float], std: Sequence[float]) -> tuple[np.ndarray, np.ndarray | None]:
    """Per-channel ``gain, bias`` (float32) with ``value = pixel * gain + bias``; ``bias`` is None when zero.

    Examples
    --------
    >>> gain, bias = normalisation(1 / 255, [0.0], [1.0])
    >>> gain.dtype, bias is None
    (dtype('float32'), True)
    """
    std_ = np.asarray(std, dtype=np.float64)
    mean_ = np.asarray(mean, dtype=np.float64)
    gain = (scale / std_).astype(np.float32)
    if not mean_.any():
        return gain, None
    return gain, (-mean_ / std_).astype(np.float32)


def flat_values(value: Any) -> np.ndarray:
    """One cell of a tensor column as a flat numpy array (``bytes`` -> uint8, Vector/list -> float).

    Examples
    --------
    >>> flat_values(b"\\x01\\x02").tolist(), flat_values([[1.0], [2.0]]).tolist()
    ([1, 2], [1.0, 2.0])
    """
    if isinstance(value, (bytes, bytearray, memoryview)):
        return np.frombuffer(value, dtype=np.uint8)
    if hasattr(value, "toArray"):  # pyspark.ml.linalg.DenseVector / SparseVector
        return np.asarray(value.toArray())
    return np.asarray(value).reshape(-1)


@dataclass(frozen=True)
class TensorInfo:
    """The ``tensor`` entry of a column's metadata, with the conversions it implies."""

    shape: tuple[int, ...]
    layout: str | None = None
    channel_order: str = "RGB"
    dtype: str = "float32"
    scale: float = 1.0 / 255.0
    mean: tuple[float, ...] = (0.0,)
    std: tuple[float, ...] = (1.0,)

    @classmethod
    def from_metadata(cls, metadata: Mapping[str, Any]) -> TensorInfo:
        """Read column metadata (with a ``tensor`` key) or the ``tensor`` entry itself.

        Raises ``ValueError`` naming what is missing when no shape is recorded.
        """
        tensor = metadata.get(TENSOR_KEY, metadata) if isinstance(metadata, Mapping) else {}
        shape = tensor.get("shape") if isinstance(tensor, Mapping) else None
        if not shape or not all(isinstance(d, int) and d > 0 for d in shape):
            raise ValueError(
                "the column metadata records no tensor shape (metadata['tensor']['shape']); it must come "
                "from ImageUrlFeaturizer or TensorReshaper, or be given explicitly."
            )
        dtype = str(tensor.get("dtype", "float32"))
        if dtype not in DTYPES:
            raise ValueError(f"unknown tensor dtype {dtype!r} in the column metadata; expected one of {DTYPES}.")
        layout = tensor.get("layout")
        return cls(
            shape=tuple(int(d) for d in shape),
            layout=str(layout) if isinstance(layout, str) and len(layout) == len(shape) else None,
            channel_order=str(tensor.get("channelOrder", "RGB")),
            dtype=dtype,
            scale=float(tensor.get("scale", 1.0 / 255.0)),
            mean=tuple(float(v) for v in tensor.get("mean", (0.0,))),
            std=tuple(float(v) for v in tensor.get("std", (1.0,))),
        )

    @property
    def size(self) -> int:
        """Number of values in one tensor."""
        return int(np.prod(self.shape))

    @property
    def channel_axis(self) -> int | None:
        """Index of the channel axis in ``shape``, or None when the layout is unknown."""
        return self.layout.index("C") if self.layout and "C" in self.layout else None

    def to_float32(self, values: Any) -> np.ndarray:
        """One tensor (a cell) or a ``(n, size)`` block as float32 shaped ``shape`` (or ``(n, *shape)``).

        ``uint8`` values are normalised with the recorded ``scale``/``mean``/``std``;
        float values are already normalised and are only cast and shaped.
        """
        array = values if isinstance(values, np.ndarray) else flat_values(values)
        batch = array.ndim == 2 or (array.ndim == 1 and array.size != self.size and array.size % self.size == 0)
        shaped = array.reshape((-1,) + self.shape)
        if self.dtype != "uint8":
            result = shaped.astype(np.float32, copy=False)
        else:
            result = self.normalise_pixels(shaped)
        return result if batch else result[0]

    def normalise_pixels(self, pixels: np.ndarray) -> np.ndarray:
        """A batch ``(n, *dims)`` of uint8 pixels in this tensor's layout as normalised float32.

        The spatial sizes may differ from ``shape`` (a crop taken for training
        augmentation); the channel axis must keep its length. Each value is
        ``pixel * gain + bias`` with the per-channel coefficients of
        :func:`normalisation`, the featurizer's own arithmetic.

        Examples
        --------
        >>> info = TensorInfo(shape=(2, 4, 4), layout="CHW", dtype="uint8", scale=1 / 255, mean=(0.0,), std=(1.0,))
        >>> info.normalise_pixels(np.full((1, 2, 3, 3), 255, np.uint8)).shape   # a 3x3 crop of 4x4 tensors
        (1, 2, 3, 3)
        """
        axis = self.channel_axis if self.channel_axis is not None else len(self.shape) - 1
        if pixels.ndim != len(self.shape) + 1 or pixels.shape[axis + 1] != self.shape[axis]:
            raise ValueError(f"expected a batch of {len(self.shape)}-d tensors ({self.layout or 'channels last'}) "
                             f"with {self.shape[axis]} channels; got shape {list(pixels.shape)}.")
        gain, bias = normalisation(self.scale, self.mean, self.std)
        coefficient_shape = self._channel_broadcast(pixels.ndim, True)
        result = np.multiply(pixels, gain.reshape(coefficient_shape), dtype=np.float32)
        if bias is not None:
            result += bias.reshape(coefficient_shape)
        return result

    def _channel_broadcast(self, ndim: int, batch: bool) -> tuple[int, ...]:
        axis = self.channel_axis
        if axis is None:
            return (1,) * (ndim - 1) + (-1,)
        axis += 1 if batch else 0
        return tuple(-1 if i == axis else 1 for i in range(ndim))

    def to_image(self, values: Any) -> np.ndarray:
        """One tensor back to displayable uint8 pixels ``(H, W, C)`` in RGB(A) or gray order.

        Undoes the normalisation (``pixel = (value - bias) / gain``), the layout and
        a BGR channel order, so a preview shows what the model was given.
        """
        if self.dtype == "uint8":
            pixels = flat_values(values).reshape(self.shape).astype(np.float32)
        else:
            tensor = self.to_float32(values)
            gain, bias = normalisation(self.scale, self.mean, self.std)
            shape = self._channel_broadcast(tensor.ndim, False)
            pixels = (tensor - (0 if bias is None else bias.reshape(shape))) / gain.reshape(shape)
        axis = self.channel_axis
        if axis is None:
            if len(self.shape) == 2:
                pixels = pixels[:, :, None]
            elif len(self.shape) != 3:
                raise ValueError(f"cannot show a tensor of shape {list(self.shape)} with no recorded layout")
            else:
                axis = 2
        if axis is not None and axis != 2:
            pixels = np.moveaxis(pixels, axis, 2)
        if self.channel_order == "BGR":
            pixels = pixels[:, :, ::-1]
        return np.clip(np.rint(pixels), 0, 255).astype(np.uint8)
