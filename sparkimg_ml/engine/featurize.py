"""The featurizer's per-batch function: decoded blocks packed into Arrow ``struct<features, error[, source_*]>``."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import pyarrow as pa

from .arrow import features_array, output_arrow_type, source_info_arrays
from .decode import DecodeTask, decoded_blocks


def featurize_batches(batches: Iterable[pa.Array], task: DecodeTask) -> Iterator[pa.StructArray]:
    """Turn Arrow batches of the image column into ``struct<features, error>`` batches.

    This is the whole per-task job: :func:`decoded_blocks`, then each block wrapped
    as Arrow without copying its values.

    Examples
    --------
    >>> from sparkimg_ml.image import ImageSpec
    >>> from sparkimg_ml.fetch import FetchOptions
    >>> task = DecodeTask(ImageSpec(2, 2), FetchOptions(), "source", "keep", "url")
    >>> out = next(featurize_batches([pa.array([None, "/no/such.png"])], task))
    >>> out.field("error").to_pylist()
    ['missing: null source', 'not_found: /no/such.png']
    """
    fields = list(output_arrow_type(task.spec.size, task.features_format, task.source_info))
    for decoded in decoded_blocks(batches, task):
        yield pa.StructArray.from_arrays(
            [features_array(decoded.block, decoded.failed, task.features_format),
             pa.array(decoded.reasons, type=pa.string()),
             *(source_info_arrays(decoded.infos) if decoded.infos is not None else [])],
            fields=fields,
        )
