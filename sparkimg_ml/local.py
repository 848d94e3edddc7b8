"""The no-Spark path: featurize images in a plain Python process, bit-identical to the Spark output.

A model trained on features made in Spark must be served with features made the
same way; these functions call exactly the code the Spark UDF calls, with no
Spark session.

This module sits below the stages: it knows their Params through the mixins
(:mod:`sparkimg_ml.params`), never the stage classes, so a stage may import it
and it imports no stage.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .fetch import Fetcher, FetchOptions
from .image import ImageSpec, preprocess_bytes
from .params.fetch import HasFetchParams
from .params.image import HasImageParams
from .params.output import HasOutputFormat
from .schema import FINGERPRINT_KEY

ImageInput = str | bytes | bytearray | memoryview

#: The featurizer's Params that name columns or handle bad rows: they do not
#: change a value, so :func:`preprocess` accepts and ignores them.
COLUMN_PARAMS = frozenset(("inputCol", "outputCol", "errorCol", "handleInvalid"))


def preprocess_with(images: ImageInput | list[ImageInput], spec: ImageSpec,
                    options: FetchOptions, dtype: Any = np.float32) -> np.ndarray:
    """Values for one image (shape ``(size,)``) or a list (shape ``(n, size)``).

    ``dtype`` float32 gives the normalised values; uint8 the pixels before
    ``scale``/``mean``/``std`` (the ``outputFormat="uint8"`` column).
    Raises :class:`~sparkimg_ml.SourceError` for an image that cannot be read.
    """
    many = isinstance(images, (list, tuple))
    items: list[ImageInput] = list(images) if isinstance(images, (list, tuple)) else [images]
    for item in items:
        if not isinstance(item, (str, bytes, bytearray, memoryview)):
            raise TypeError(f"expected a URL/path string or encoded image bytes, got {type(item).__name__}")
    block = np.empty((len(items), spec.size), dtype=dtype)
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


class _PreprocessParams(HasImageParams, HasFetchParams, HasOutputFormat):
    """The featurizer's value-defining Params, validated by the same converters."""


def _holder(params: dict[str, Any]) -> _PreprocessParams:
    """The featurizer's value-defining Params set from ``params`` (column Params and ``None`` ignored)."""
    holder = _PreprocessParams()
    for name, value in params.items():
        if name in COLUMN_PARAMS or value is None:
            continue
        if not holder.hasParam(name):
            raise TypeError(
                f"preprocess() got an unknown Param {name!r}; it takes the ImageUrlFeaturizer Params "
                f"that define values: {', '.join(sorted(p.name for p in holder.params))}."
            )
        holder._set(**{name: value})
    return holder


def preprocess_fingerprint(**params: Any) -> dict[str, Any]:
    """The preprocessing fingerprint of :func:`preprocess` with ``params``: ``{"digest", "components"}``.

    Equal to ``ImageUrlFeaturizer(**params).fingerprint()`` and to the ``fingerprint``
    entry of that stage's output column metadata, so a serving process can check it
    computes the features a model was trained on.

    Examples
    --------
    >>> from sparkimg_ml import ImageUrlFeaturizer
    >>> here = preprocess_fingerprint(imageSize=[32, 32], mean="imagenet")
    >>> here == ImageUrlFeaturizer(inputCol="url", imageSize=[32, 32], mean="imagenet").fingerprint()
    True
    """
    holder = _holder(params)
    return holder._tensor_metadata(holder._image_spec())[FINGERPRINT_KEY]


def preprocess(images: ImageInput | list[ImageInput], **params: Any) -> np.ndarray:
    """Featurize with :class:`~sparkimg_ml.ImageUrlFeaturizer` Params, without Spark.

    ``params`` are the featurizer's Params by name (``imageSize``, ``colorMode``,
    ``scale``, ``outputFormat``, ...); unnamed ones take the featurizer's
    defaults, and the column Params (``inputCol``, ``outputCol``, ``errorCol``,
    ``handleInvalid``) are ignored. Returns float32 values, or uint8 pixels with
    ``outputFormat="uint8"``. To reuse a fitted pipeline's settings, call
    ``featurizer.preprocess(images)`` on the stage instead.

    Examples
    --------
    >>> import io
    >>> from PIL import Image
    >>> buffer = io.BytesIO()
    >>> Image.new("RGB", (8, 8), (255, 0, 0)).save(buffer, "PNG")
    >>> vector = preprocess(buffer.getvalue(), imageSize=[2, 2])
    >>> vector.shape, vector[:3].tolist()
    ((12,), [1.0, 0.0, 0.0])
    >>> preprocess(buffer.getvalue(), imageSize=[2, 2], outputFormat="uint8")[:3].tolist()
    [255, 0, 0]
    """
    holder = _holder(params)
    return preprocess_with(images, holder._image_spec(), holder._fetch_options(), holder._output_dtype())
