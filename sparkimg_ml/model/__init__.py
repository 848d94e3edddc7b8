"""Models without Spark: reading, checking and running ONNX image models (:mod:`.onnx`).

onnxruntime is imported only when a model is loaded (the ``[onnx]`` extra).
"""

from __future__ import annotations

from .onnx import ModelError

__all__ = ["ModelError"]
