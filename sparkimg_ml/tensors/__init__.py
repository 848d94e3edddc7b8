"""Tensor columns: what their metadata says, how to get values back, and the reshaper's algebra.

* :mod:`.info` -- :class:`TensorInfo` (the ``tensor`` metadata entry and its
  conversions), :func:`normalisation`, :func:`flat_values`; no Spark.
* :mod:`.gather` -- reshape/transpose as index arithmetic over a few array
  primitives; no Spark (checked on Python lists).
* :mod:`.sql` -- the same primitives as Spark SQL expressions, and the reading of
  uint8 tensor bytes in the JVM (what :class:`~sparkimg_ml.TensorReshaper` runs).
* :mod:`.metadata` -- shapes recorded in column metadata and the reshaper's output metadata.

Importing this package does not import Spark.
"""

from __future__ import annotations

from ..schema import TENSOR_KEY
from .info import DTYPES, TensorInfo, flat_values, normalisation

__all__ = ["DTYPES", "TENSOR_KEY", "TensorInfo", "flat_values", "normalisation"]
