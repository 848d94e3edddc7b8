"""Tensor columns to deep-learning training data: Parquet files and a PyTorch dataset over them.

:mod:`.writer` (Spark side), :mod:`.files` (pyarrow reader, no Spark, no torch),
:mod:`.dataset` (the torch dataset, imported only when asked for).

``write_tensors`` (Spark side) writes a tensor column -- a ``Vector``, a flat or
nested ``array<float>`` or a ``uint8`` ``binary`` column, as written by
``ImageUrlFeaturizer`` and ``TensorReshaper`` -- plus an optional label to
Parquet: one ``tensor`` column of fixed-size flat values (``array<float>``, or
``binary`` with one byte per value for ``uint8`` tensors) and one ``label``
column. The column's ``tensor`` metadata (shape, layout, channel order, dtype,
scale/mean/std) is stored in the Parquet footer, inside the Spark schema that
Spark keeps there, so the files describe themselves. Rows with a null tensor
(failed images) or a null label are dropped and counted.

``TensorDataset`` (training side, needs the ``torch`` extra) streams those files
with pyarrow, one row group at a time, and yields ``(x, y)`` batches: ``x`` is a
float32 ``[batch, *shape]`` tensor, normalised with
:meth:`sparkimg_ml.tensors.TensorInfo.to_float32` (so ``uint8`` files give the
same numbers as the featurizer's float output), ``y`` the labels. Rows are
split across distributed ranks and DataLoader workers so that every row is seen
exactly once per epoch. :class:`TensorFiles` is the same reader without torch,
yielding numpy arrays.

Examples
--------
On the Spark driver::

    summary = write_tensors(features, "/shared/digits", "pixels", label_col="label", mode="overwrite")
    summary.rows, summary.null_tensors          # (1797, 0)

In each training process::

    data = TensorDataset("/shared/digits", batch_size=64, shuffle_buffer=4096, seed=0)
    for x, y in torch.utils.data.DataLoader(data, batch_size=None, num_workers=2):
        ...                                     # x: float32 [64, *shape], y: int64 [64]
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .files import TensorFiles
from .writer import TensorWriteSummary, write_tensors

if TYPE_CHECKING:  # imported lazily below at run time (torch); visible to type checkers and the API docs
    from .dataset import TensorDataset


def __getattr__(name: str) -> Any:
    # TensorDataset subclasses torch's IterableDataset: import torch only when it is asked for.
    if name == "TensorDataset":
        try:
            from .dataset import TensorDataset
        except ModuleNotFoundError as error:
            if error.name != "torch":
                raise
            raise ImportError("TensorDataset needs PyTorch: pip install 'sparkimg_ml[torch]'") from None
        return TensorDataset
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["write_tensors", "TensorWriteSummary", "TensorFiles", "TensorDataset"]
