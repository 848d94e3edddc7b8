"""int8 copies of ONNX image models: ONNX Runtime's static quantization on prepared inputs.

:func:`quantize_model` quantizes a float32 model (QDQ format, int8 weights per
output channel, uint8 activations whose ranges come from calibration inputs) and
keeps the source model's ``metadata_props``, so a model written by
:func:`~sparkimg_ml.export_onnx` still carries its preprocessing. It takes the
calibration inputs already prepared; :func:`sparkimg_ml.quantize_onnx` prepares
them from images with an ``ImageEmbedder``'s preprocessing. onnxruntime and onnx
(the ``[quantize]`` extra) are imported on use.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from typing import Any

import numpy as np

#: Calibration methods of ONNX Runtime's static quantization, by the names this module takes.
CALIBRATION_METHODS = ("minmax", "entropy", "percentile")


def quantize_model(source: str | os.PathLike, target: str | os.PathLike, inputs: np.ndarray, *,
                   method: str = "minmax", per_channel: bool = True, batch_size: int = 16) -> str:
    """Write an int8 copy of the float32 ONNX model ``source`` to ``target``; return ``target``.

    ``inputs`` are prepared model inputs ``(n, *input shape)`` whose activation
    ranges set the quantization; ``method`` is ``"minmax"``, ``"entropy"`` or
    ``"percentile"``; ``per_channel`` gives each output channel its own weight scale.
    """
    import onnx
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    if method not in CALIBRATION_METHODS:
        raise ValueError(f"quantize_onnx: method must be one of {', '.join(map(repr, CALIBRATION_METHODS))}; "
                         f"got {method!r}.")
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"quantize_onnx: batch_size must be a positive int; got {batch_size!r}.")
    if len(inputs) == 0:
        raise ValueError("quantize_onnx: no calibration images; give a few hundred typical inputs.")
    source_path, target_path = os.fspath(source), os.fspath(target)
    model = onnx.load(source_path)
    reader = _BatchReader(model.graph.input[0].name, np.asarray(inputs, dtype=np.float32), batch_size)
    with tempfile.TemporaryDirectory(prefix="sparkimg_ml-quantize-") as scratch:
        prepared = os.path.join(scratch, "prepared.onnx")
        quant_pre_process(source_path, prepared)  # shape inference and graph clean-up, as ONNX Runtime advises
        quantize_static(
            prepared, target_path, reader, quant_format=QuantFormat.QDQ, per_channel=per_channel,
            activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
            calibrate_method={"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy,
                              "percentile": CalibrationMethod.Percentile}[method],
        )
    quantized = onnx.load(target_path)
    props = {entry.key: entry.value for entry in model.metadata_props}
    props.update({entry.key: entry.value for entry in quantized.metadata_props})
    del quantized.metadata_props[:]
    for key, value in props.items():
        quantized.metadata_props.add(key=key, value=value)
    onnx.save(quantized, target_path, save_as_external_data=False)
    return target_path


class _BatchReader:
    """ONNX Runtime's ``CalibrationDataReader`` protocol over one array of prepared inputs."""

    def __init__(self, input_name: str, inputs: np.ndarray, batch_size: int) -> None:
        self._batches: Iterator[dict[str, Any]] = iter(
            [{input_name: inputs[start:start + batch_size]} for start in range(0, len(inputs), batch_size)])

    def get_next(self) -> dict[str, Any] | None:
        return next(self._batches, None)
