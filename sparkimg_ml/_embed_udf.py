"""Batch plumbing of :class:`~sparkimg_ml.ImageEmbedder`: Arrow batches of images in, embeddings out.

Per Spark task: the images are fetched and decoded by the featurizer's own decode
loop (:func:`~sparkimg_ml._udf.decoded_blocks`) into uint8 pixels, normalised once
in float32 right before inference (:class:`~sparkimg_ml.tensors.TensorInfo`, the
featurizer's coefficients), and run through the process's cached
``InferenceSession``. Inference of one block runs on its own thread while the
decode loop fetches and decodes the next (onnxruntime releases the GIL). Rows
whose image failed never reach the model: they leave as nulls with their reason.

This module knows Spark's batch shapes but no Params: the stage passes an
:class:`EmbedTask` of plain values.
"""

from __future__ import annotations

import dataclasses
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Iterable, Iterator, Optional, Tuple, Union

import numpy as np
import pandas as pd
import pyarrow as pa

from ._udf import (
    ARRAY,
    SOURCE,
    UINT8,
    VECTOR,
    DecodedBlock,
    FeaturizeTask,
    _features_array,
    _vector_results_supported,
    decoded_blocks,
    output_arrow_type,
    result_struct_type,
)
from .inference import LoadedModel, default_threads, load_model, run_batches
from .tensors import TensorInfo


@dataclass(frozen=True)
class EmbedTask:
    """Everything a Python worker needs to embed images, as plain picklable values."""

    #: How images are read; its ``features_format`` is the embeddings' Arrow format
    #: (:data:`VECTOR` or :data:`ARRAY`), its ``spec`` the model's input.
    images: FeaturizeTask
    model_uri: str
    #: The digest the driver read: every worker must load the very same bytes.
    model_sha256: str
    output_node: str
    #: Values per image after flattening.
    output_size: int
    batch_size: int
    #: 0: the CPUs Spark gives the task (``spark.task.cpus``).
    intra_op_threads: int = 0


def _task_threads(configured: int) -> int:
    if configured > 0:
        return configured
    from pyspark import TaskContext

    context = TaskContext.get()
    return default_threads(context.cpus() if context is not None else 1)


def _embed_block(model: LoadedModel, decoded: DecodedBlock, tensor: TensorInfo,
                 task: EmbedTask) -> np.ndarray:
    """``(rows, output_size)`` embeddings of one decoded block; zeros where the row failed.

    The element type is the one its Arrow format packs without a copy (float64 for a
    Vector: exact, every value is the model's float32 result).
    """
    rows = len(decoded.failed)
    embeddings = np.zeros((rows, task.output_size), dtype=task.images.block_dtype)
    good = ~decoded.failed
    if good.any():
        pixels = decoded.block if good.all() else decoded.block[good]
        images = tensor.to_float32(pixels.reshape(len(pixels), -1))
        embeddings[good] = run_batches(model, images, task.output_node, task.batch_size)
    return embeddings


def embed_batches(batches: Iterable[pa.Array], task: EmbedTask) -> Iterator[pa.StructArray]:
    """Turn Arrow batches of the image column into ``struct<features, error>`` embedding batches.

    A plain function of Arrow arrays (runs without Spark in tests and profiles).
    """
    model = load_model(task.model_uri, task.model_sha256, task.images.fetch, _task_threads(task.intra_op_threads))
    tensor = TensorInfo.from_metadata({**task.images.spec.metadata(), "dtype": "uint8"})
    decode = dataclasses.replace(task.images, features_format=UINT8, stage_name="ImageEmbedder")
    fields = list(output_arrow_type(task.output_size, task.images.features_format))
    inference = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sparkimg_ml-inference")
    pending: Optional[Tuple[Future, DecodedBlock]] = None

    def finish(running: Tuple[Future, DecodedBlock]) -> pa.StructArray:
        future, decoded = running
        return pa.StructArray.from_arrays(
            [_features_array(future.result(), decoded.failed, task.images.features_format),
             pa.array(decoded.reasons, type=pa.string())],
            fields=fields,
        )

    try:
        for decoded in decoded_blocks(batches, decode):
            # Submit this block, then hand back the previous one: the decode loop reads
            # and decodes the next block while this one is in the model.
            running = (inference.submit(_embed_block, model, decoded, tensor, task), decoded)
            if pending is not None:
                yield finish(pending)
            pending = running
        if pending is not None:
            yield finish(pending)
    finally:
        inference.shutdown(wait=True, cancel_futures=True)


def make_embed_udf(task: EmbedTask, use_arrow_udf: Optional[bool] = None) -> Tuple[Any, str]:
    """The vectorised UDF for ``task`` and the format of its ``features`` field.

    ``features`` is ``VectorUDT`` when ``task.images.features_format`` is
    :data:`VECTOR` and Spark's ``arrow_udf`` can return one (4.3+), else
    ``array<float>`` (which the stage turns into a Vector when asked for one).
    """
    from pyspark.sql import functions as F

    if use_arrow_udf is None:
        use_arrow_udf = hasattr(F, "arrow_udf")
    wants_vector = task.images.features_format == VECTOR
    features_format = VECTOR if wants_vector and use_arrow_udf and _vector_results_supported() else ARRAY
    task = dataclasses.replace(task, images=dataclasses.replace(task.images, features_format=features_format))
    return_type = result_struct_type(features_format)

    # The closures capture only ``task`` (plain values), never the stage itself.
    if use_arrow_udf:
        def embed_arrow(batches: Iterator[pa.Array]) -> Iterator[pa.Array]:
            return embed_batches(batches, task)

        return F.arrow_udf(embed_arrow, return_type), features_format  # type: ignore[call-overload]

    def embed_pandas(series_batches: Iterator[Union[pd.Series, pd.DataFrame]]) -> Iterator[pd.DataFrame]:
        def to_arrow(series: Union[pd.Series, pd.DataFrame]) -> pa.Array:
            if isinstance(series, pd.DataFrame):  # struct columns arrive as DataFrames
                return pa.array(series.to_dict("records"))
            values = [v if isinstance(v, (str, bytes, bytearray)) else None for v in series.to_list()]
            return pa.array(values, type=pa.string() if task.images.input_kind == SOURCE else pa.binary())

        for out in embed_batches(map(to_arrow, series_batches), task):
            features = out.field("features")
            yield pd.DataFrame({
                "features": [None if v is None else np.asarray(v, dtype=np.float32)
                             for v in features.to_numpy(zero_copy_only=False)],
                "error": out.field("error").to_pylist(),
            })

    return F.pandas_udf(embed_pandas, return_type), features_format  # type: ignore[call-overload]
