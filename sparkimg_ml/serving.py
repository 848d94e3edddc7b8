"""Featurize images in a plain Python process, bit-identical to the Spark output.

A model trained on features made in Spark must be served with features made the
same way; these functions call exactly the code the Spark UDF calls, with no
Spark session.
"""

from __future__ import annotations

from typing import Any, List, Union

import numpy as np

from .fetch import Fetcher, FetchOptions
from .image_ops import ImageSpec, preprocess_bytes

ImageInput = Union[str, bytes, bytearray, memoryview]


def preprocess_with(images: Union[ImageInput, List[ImageInput]], spec: ImageSpec,
                    options: FetchOptions) -> np.ndarray:
    """Features for one image (shape ``(size,)``) or a list (shape ``(n, size)``).

    Raises :class:`~sparkimg_ml.SourceError` for an image that cannot be read.
    """
    many = isinstance(images, (list, tuple))
    items: List[ImageInput] = list(images) if isinstance(images, (list, tuple)) else [images]
    for item in items:
        if not isinstance(item, (str, bytes, bytearray, memoryview)):
            raise TypeError(f"expected a URL/path string or encoded image bytes, got {type(item).__name__}")
    block = np.empty((len(items), spec.size), dtype=np.float32)
    # Only sources that need reading open a Fetcher (threads, connection pool, env: headers).
    fetcher = Fetcher(options) if any(isinstance(item, str) for item in items) else None
    try:
        for row, item in enumerate(items):
            if isinstance(item, str):
                assert fetcher is not None
                preprocess_bytes(fetcher.fetch(item), spec, out=block[row])
            else:
                preprocess_bytes(bytes(item), spec, out=block[row])
    finally:
        if fetcher is not None:
            fetcher.close()
    return block if many else block[0]


def preprocess(images: Union[ImageInput, List[ImageInput]], **params: Any) -> np.ndarray:
    """Featurize with :class:`~sparkimg_ml.ImageUrlFeaturizer` Params, without Spark.

    ``params`` are the featurizer's Params by name (``imageSize``, ``colorMode``,
    ``scale``, ...); unnamed ones take the featurizer's defaults. To reuse a
    fitted pipeline's settings, call ``featurizer.preprocess(images)`` on the
    stage instead.

    Examples
    --------
    >>> import io
    >>> from PIL import Image
    >>> buffer = io.BytesIO()
    >>> Image.new("RGB", (8, 8), (255, 0, 0)).save(buffer, "PNG")
    >>> vector = preprocess(buffer.getvalue(), imageSize=[2, 2])
    >>> vector.shape, vector[:3].tolist()
    ((12,), [1.0, 0.0, 0.0])
    """
    from .featurizer import ImageUrlFeaturizer  # the stage's converters validate the Params

    return ImageUrlFeaturizer(**params).preprocess(images)
