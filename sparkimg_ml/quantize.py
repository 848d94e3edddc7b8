"""``quantize_onnx``: an int8 copy of an ONNX image model, calibrated on images an ``ImageEmbedder`` prepares.

The images are prepared by the stage that will run the model (its size, layout,
mean and std), so the activation ranges are measured on what the model will see;
the quantization itself is :func:`sparkimg_ml.model.quantize.quantize_model`.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np

from .embedder import ImageEmbedder
from .local import ImageInput
from .model.quantize import CALIBRATION_METHODS, quantize_model

__all__ = ["CALIBRATION_METHODS", "quantize_onnx"]


def quantize_onnx(source: str | os.PathLike, target: str | os.PathLike,
                  calibration_images: Sequence[ImageInput] | np.ndarray, *,
                  embedder: ImageEmbedder | None = None, method: str = "minmax", per_channel: bool = True,
                  batch_size: int = 16) -> str:
    """Write an int8 copy of the ONNX image model ``source`` to ``target``, calibrated on images.

    ONNX Runtime's static quantization: QDQ format, int8 weights (one scale per
    output channel by default), uint8 activations whose ranges are measured on the
    calibration images. The copy keeps the source's metadata, so a model written by
    :func:`~sparkimg_ml.export_onnx` still carries its preprocessing.

    Parameters
    ----------
    source, target : str or path-like
        The float32 model (a local file) and where to write the quantized one.
    calibration_images : list of URLs, paths or bytes, or numpy.ndarray
        Typical inputs (a few hundred from the training distribution): sources are
        prepared by ``embedder``'s preprocessing; an array is taken as already
        prepared model inputs ``(n, *input shape)`` (:meth:`ImageEmbedder.model_inputs`).
    embedder : ImageEmbedder, optional
        The stage whose preprocessing feeds the model (default:
        ``ImageEmbedder(modelUri=source)``, i.e. the preprocessing the model carries).
    method : str
        How activation ranges are chosen: ``"minmax"`` (default), ``"entropy"`` or ``"percentile"``.
    per_channel : bool
        One weight scale per output channel (more accurate; default) or per tensor.
    batch_size : int
        Images per calibration batch.

    Returns
    -------
    str
        ``target``.

    Examples
    --------
    >>> quantize_onnx("resnet.onnx", "resnet-int8.onnx", calibration_paths[:300])  # doctest: +SKIP
    'resnet-int8.onnx'
    >>> ImageEmbedder(inputCol="url", modelUri="resnet-int8.onnx").transform(df)  # doctest: +SKIP
    """
    source_path = os.fspath(source)
    if not os.path.isfile(source_path):
        raise FileNotFoundError(f"quantize_onnx: no model file at {source_path!r} (quantization needs a local file).")
    if isinstance(calibration_images, np.ndarray):
        inputs = calibration_images
    else:
        stage = embedder if embedder is not None else ImageEmbedder(modelUri=source_path)
        images = list(calibration_images)
        inputs = stage.model_inputs(images) if images else np.zeros((0,), np.float32)
    return quantize_model(source_path, target, inputs, method=method, per_channel=per_channel,
                          batch_size=batch_size)
