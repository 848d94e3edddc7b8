"""The hasher's per-batch function: decoded gray blocks hashed into Arrow ``struct<features, error>``."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from ..image.hashing import bits_to_int64, hash_bits
from ..schema import LONG, UINT8
from .arrow import BLOCK_DTYPES, features_array, output_arrow_type
from .decode import DecodeTask, decoded_blocks


@dataclass(frozen=True)
class HashTask:
    """Everything a Python worker needs to hash an image column, as plain picklable values.

    ``decode`` must ask for gray uint8 pixels of the hash's working size
    (:func:`~sparkimg_ml.image.hashing.hash_image_size`); ``output_format`` is
    what the UDF returns: ``long``, ``vector`` or ``array`` (0/1 values).
    """

    decode: DecodeTask
    hash_type: str
    hash_size: int
    output_format: str = LONG

    def __post_init__(self) -> None:
        if self.decode.features_format != UINT8:
            raise ValueError("HashTask needs a DecodeTask with features_format='uint8' (gray pixels).")


def hash_block(pixels: np.ndarray, hash_type: str, hash_size: int, output_format: str) -> np.ndarray:
    """Gray pixel rows hashed into ``output_format``: int64 ``(n,)`` for ``long``, else 0/1 floats ``(n, bits)``.

    Examples
    --------
    >>> hash_block(np.array([[0, 9, 0, 9]], np.uint8), "ahash", 2, "long").tolist()
    [5]
    >>> hash_block(np.array([[0, 9, 0, 9]], np.uint8), "ahash", 2, "vector").tolist()
    [[0.0, 1.0, 0.0, 1.0]]
    """
    bits = hash_bits(pixels, hash_type, hash_size)
    if output_format == LONG:
        return bits_to_int64(bits)
    return bits.astype(BLOCK_DTYPES[output_format])


def hash_batches(batches: Iterable[pa.Array], task: HashTask) -> Iterator[pa.StructArray]:
    """Turn Arrow batches of the image column into ``struct<features, error>`` batches of hashes.

    :func:`~sparkimg_ml.engine.decode.decoded_blocks` decodes every row to gray
    pixels; each block is hashed at once. Failed rows get a null hash and their reason.

    Examples
    --------
    >>> from sparkimg_ml.image import ImageSpec
    >>> from sparkimg_ml.fetch import FetchOptions
    >>> decode = DecodeTask(ImageSpec(32, 32, color_mode="L", interpolation="lanczos"), FetchOptions(),
    ...                     "source", "keep", "url", features_format="uint8")
    >>> out = next(hash_batches([pa.array([None])], HashTask(decode, "phash", 8)))
    >>> out.field("features").to_pylist(), out.field("error").to_pylist()
    ([None], ['missing: null source'])
    """
    bits = task.hash_size * task.hash_size
    fields = list(output_arrow_type(bits, task.output_format))
    for decoded in decoded_blocks(batches, task.decode):
        hashed = hash_block(decoded.block, task.hash_type, task.hash_size, task.output_format)
        if task.output_format == LONG:
            features: pa.Array = pa.array(hashed, type=pa.int64(),
                                          mask=decoded.failed if decoded.failed.any() else None)
        else:
            hashed[decoded.failed] = 0
            features = features_array(hashed, decoded.failed, task.output_format)
        yield pa.StructArray.from_arrays(
            [features, pa.array(decoded.reasons, type=pa.string())], fields=fields,
        )
