"""The embedder's per-batch function: decoded images through an ONNX model, embeddings out as Arrow.

Per Spark task: the images are fetched and decoded by the shared decode loop
(:func:`~sparkimg_ml.engine.decode.decoded_blocks`) into uint8 pixels, normalised
once in float32 right before inference (:class:`~sparkimg_ml.tensors.TensorInfo`,
the featurizer's coefficients), and run through the process's cached
``InferenceSession``. Inference of one block runs on its own thread while the
decode loop fetches and decodes the next (onnxruntime releases the GIL). Rows
whose image failed never reach the model: they leave as nulls with their reason.

This module knows Spark's batch shapes but no Params: the stage passes an
:class:`EmbedTask` of plain values.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

from ..model.onnx import LoadedModel, default_threads, load_model, run_batches
from ..model.providers import DEFAULT_PROVIDERS, with_device
from ..schema import UINT8
from ..tensors import TensorInfo
from .arrow import features_array, output_arrow_type, source_info_arrays
from .decode import DecodedBlock, DecodeTask, decoded_blocks


@dataclass(frozen=True)
class EmbedTask:
    """Everything a Python worker needs to embed images, as plain picklable values."""

    #: How images are read; its ``features_format`` is the embeddings' Arrow format
    #: (:data:`VECTOR` or :data:`ARRAY`), its ``spec`` the model's input.
    images: DecodeTask
    model_uri: str
    #: The digest the driver read: every worker must load the very same bytes.
    model_sha256: str
    output_node: str
    #: Values per image after flattening.
    output_size: int
    batch_size: int
    #: 0: the CPUs Spark gives the task (``spark.task.cpus``).
    intra_op_threads: int = 0
    #: onnxruntime execution providers, in order of preference.
    providers: tuple[str, ...] = DEFAULT_PROVIDERS
    #: Options per provider name (JSON values); the task's GPU is added as ``device_id``.
    provider_options: Mapping[str, Mapping[str, Any]] = dataclasses.field(default_factory=dict)
    #: Drop providers missing on the worker (with a warning) instead of failing.
    provider_fallback: bool = False


def _task_threads(configured: int) -> int:
    if configured > 0:
        return configured
    from pyspark import TaskContext

    context = TaskContext.get()
    return default_threads(context.cpus() if context is not None else 1)


def task_gpu() -> int | None:
    """The GPU Spark assigned to the running task (its first ``gpu`` address), or None.

    None outside a Spark task and when GPUs are not scheduled
    (``spark.task.resource.gpu.amount`` unset). Addresses are the ordinals the
    discovery script reports (``nvidia-smi`` indices), which is what CUDA's
    ``device_id`` takes.
    """
    from pyspark import TaskContext

    context = TaskContext.get()
    if context is None:
        return None
    gpus = context.resources().get("gpu")
    if gpus is None or not gpus.addresses:
        return None
    address = gpus.addresses[0]
    try:
        return int(address)
    except ValueError:
        raise ValueError(
            f"ImageEmbedder: Spark assigned this task the GPU address {address!r}, which is not a device "
            "ordinal; the GPU discovery script must report CUDA indices such as \"0\", \"1\"."
        ) from None


def task_provider_options(task: EmbedTask, device_id: int | None) -> list:
    """One options dict per provider of ``task``, with ``device_id`` for the GPU providers."""
    options: dict[str, Mapping[str, Any]] = {name: dict(value) for name, value in task.provider_options.items()}
    return with_device(task.providers, options, device_id)


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
    """Turn Arrow batches of the image column into ``struct<features, error[, source_*]>`` embedding batches.

    A plain function of Arrow arrays (runs without Spark in tests and profiles).
    """
    model = load_model(task.model_uri, task.model_sha256, task.images.fetch, _task_threads(task.intra_op_threads),
                       providers=task.providers, provider_options=task_provider_options(task, task_gpu()),
                       fallback=task.provider_fallback)
    tensor = TensorInfo.from_metadata({**task.images.spec.metadata(), "dtype": "uint8"})
    decode = dataclasses.replace(task.images, features_format=UINT8, stage_name="ImageEmbedder")
    fields = list(output_arrow_type(task.output_size, task.images.features_format, task.images.source_info))
    inference = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sparkimg_ml-inference")
    pending: tuple[Future, DecodedBlock] | None = None

    def finish(running: tuple[Future, DecodedBlock]) -> pa.StructArray:
        future, decoded = running
        return pa.StructArray.from_arrays(
            [features_array(future.result(), decoded.failed, task.images.features_format),
             pa.array(decoded.reasons, type=pa.string()),
             *(source_info_arrays(decoded.infos) if decoded.infos is not None else [])],
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
