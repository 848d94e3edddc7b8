"""``TensorDataset``: the files of :func:`sparkimg_ml.training.write_tensors` as a PyTorch ``IterableDataset``.

Imported by ``sparkimg_ml.training`` only when ``TensorDataset`` is asked for, so
that the rest of the package works without torch.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import torch
import torch.distributed
from torch.utils.data import IterableDataset, get_worker_info

from .files import TensorFiles

Batch = torch.Tensor | tuple[Any, ...]


class TensorDataset(IterableDataset):
    """Batches ``(x, y)`` from the files of :func:`~sparkimg_ml.training.write_tensors`, read with pyarrow.

    ``x`` is a float32 tensor ``[batch, *shape]`` (the shape recorded in the files),
    normalised exactly as the featurizer's float output (``uint8`` files are
    normalised here with their recorded ``scale``/``mean``/``std``); ``y`` holds the
    labels (int64 class ids or float32 targets). Files without labels yield ``x`` alone.

    Every row is read exactly once per epoch across all ranks and DataLoader
    workers: the rows are cut into ``world_size * num_workers`` contiguous ranges
    of equal size (within one row), one per worker of each rank, and each worker
    reads only the row groups of its range. Ranks may get one batch more or less
    than others; with ``DistributedDataParallel`` wrap the loop in
    ``torch.distributed.algorithms.join.Join([model])``.

    Parameters
    ----------
    path : str
        Directory written by ``write_tensors`` (local path or a pyarrow filesystem URI).
    batch_size : int
        Rows per batch; each worker's last batch of an epoch may be smaller.
        Use ``DataLoader(dataset, batch_size=None)``: the dataset batches itself.
    rank, world_size : int, optional
        This process's share. Default: ``torch.distributed``'s rank and world size when
        a process group is initialised, else the whole data set.
    shuffle_buffer : int
        0 (default) reads rows in file order. ``n > 0`` shuffles the row groups each
        epoch and draws rows at random from a buffer of ``n`` rows per worker.
    seed : int
        Seed of the shuffling; with :meth:`set_epoch`, every epoch has its own order,
        the same in every process.
    transform : callable, optional
        Applied to each row before batching and normalisation, for training
        augmentation (e.g. ``torchvision.transforms.v2`` random crops and flips). It
        gets one row as a torch tensor of the recorded shape and layout (uint8 pixels
        for ``uint8`` files, normalised float32 values otherwise) and returns a tensor
        of the same dtype; every row must come out with the same shape. ``uint8``
        rows are normalised after it with the recorded ``scale``/``mean``/``std``
        (:meth:`~sparkimg_ml.tensors.TensorInfo.normalise_pixels`), so a crop may
        change the height and width but not the channels. torchvision expects
        channels first: write the tensors with ``layout="CHW"``, larger than the
        training crop. Random draws use torch's generator (each DataLoader worker
        has its own seed).
    extra_cols : sequence of str
        Columns written with ``write_tensors(..., extra_cols=...)`` (e.g. an id) to
        yield with each batch, as a last element: ``(x, y, extras)`` (``(x, extras)``
        without labels), ``extras`` a dict of tensors (lists for strings), so
        predictions can be joined back to their rows.

    Examples
    --------
    >>> from torch.utils.data import DataLoader
    >>> data = TensorDataset("/shared/digits", batch_size=64, shuffle_buffer=2048)   # doctest: +SKIP
    >>> for epoch in range(10):                                                      # doctest: +SKIP
    ...     data.set_epoch(epoch)
    ...     for x, y in DataLoader(data, batch_size=None, num_workers=2):
    ...         loss = torch.nn.functional.cross_entropy(model(x), y)
    >>> from torchvision.transforms import v2                                       # doctest: +SKIP
    >>> augmented = TensorDataset("/shared/photos_40x40", batch_size=64, shuffle_buffer=2048,   # doctest: +SKIP
    ...                           transform=v2.Compose([v2.RandomCrop(32), v2.RandomHorizontalFlip()]))
    """

    def __init__(self, path: str, batch_size: int = 64, rank: int | None = None,
                 world_size: int | None = None, shuffle_buffer: int = 0, seed: int = 0,
                 transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
                 extra_cols: Sequence[str] = ()) -> None:
        super().__init__()
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"TensorDataset: batch_size must be a positive int; got {batch_size!r}.")
        if not isinstance(shuffle_buffer, int) or shuffle_buffer < 0:
            raise ValueError(f"TensorDataset: shuffle_buffer must be an int >= 0 (0 = no shuffling); "
                             f"got {shuffle_buffer!r}.")
        if (rank is None) != (world_size is None):
            raise ValueError("TensorDataset: give both rank and world_size, or neither (to take them from "
                             "torch.distributed).")
        if world_size is not None and not (isinstance(world_size, int) and isinstance(rank, int)
                                           and 0 <= rank < world_size):
            raise ValueError(f"TensorDataset: need 0 <= rank < world_size; got rank={rank!r}, "
                             f"world_size={world_size!r}.")
        if transform is not None and not callable(transform):
            raise TypeError(f"TensorDataset: transform must be a callable taking and returning one row's tensor; "
                            f"got {type(transform).__name__}.")
        self.transform = transform
        self.files = TensorFiles(path)
        self.extra_cols = self.files._checked_extra_cols(extra_cols)
        self.batch_size = batch_size
        self.shuffle_buffer = shuffle_buffer
        self.seed = seed
        self.epoch = 0
        self.rank, self.world_size = rank, world_size
        if rank is None and _process_group_ready():
            self.rank, self.world_size = torch.distributed.get_rank(), torch.distributed.get_world_size()

    @property
    def shape(self) -> tuple[int, ...]:
        """Shape of one ``x`` row, from the files' metadata."""
        return self.files.info.shape

    @property
    def num_rows(self) -> int:
        """Rows in all files (all ranks together)."""
        return self.files.num_rows

    def set_epoch(self, epoch: int) -> None:
        """Choose the epoch whose shuffled order the next iteration uses (like ``DistributedSampler``)."""
        self.epoch = int(epoch)

    def distribution(self) -> tuple[int, int]:
        """``(rank, world_size)`` this dataset reads for."""
        if self.rank is not None and self.world_size is not None:
            return self.rank, self.world_size
        if _process_group_ready():
            return torch.distributed.get_rank(), torch.distributed.get_world_size()
        return 0, 1

    def __getstate__(self) -> dict[str, Any]:
        # DataLoader workers started with "spawn" have no process group: fix the rank while we know it.
        state = self.__dict__.copy()
        state["rank"], state["world_size"] = self.distribution()
        return state

    def __iter__(self) -> Iterator[Batch]:
        rank, world_size = self.distribution()
        worker = get_worker_info()
        worker_id, num_workers = (worker.id, worker.num_workers) if worker is not None else (0, 1)
        info = self.files.info
        batches = self.files.batches(
            batch_size=self.batch_size, shard=rank * num_workers + worker_id, num_shards=world_size * num_workers,
            shuffle_buffer=self.shuffle_buffer, seed=self.seed, epoch=self.epoch, extra_cols=self.extra_cols,
        )
        for values, labels, *extras in batches:
            x = _tensor(info.to_float32(values)) if self.transform is None else self._transformed(values)
            out: tuple[Any, ...] = (x,) if labels is None else (x, _tensor(labels))
            if extras:
                out += ({name: _tensor(column) if column.dtype != object else column.tolist()
                         for name, column in extras[0].items()},)
            yield out[0] if len(out) == 1 else out

    def _transformed(self, values: np.ndarray) -> torch.Tensor:
        """``transform`` applied to each row of a batch, then (uint8 rows) normalised."""
        info = self.files.info
        stored = torch.from_numpy(np.array(values).reshape(-1, *info.shape))  # a copy: transforms may write
        dtype = torch.uint8 if info.dtype == "uint8" else torch.float32
        if dtype == torch.float32:
            stored = stored.float()
        transform = self.transform
        assert transform is not None
        rows: list[torch.Tensor] = []
        for row in stored:
            out = transform(row)
            if not isinstance(out, torch.Tensor) or out.dtype != dtype:
                found = out.dtype if isinstance(out, torch.Tensor) else type(out).__name__
                raise TypeError(f"TensorDataset: transform must return a {dtype} tensor for these {info.dtype} "
                                f"files (normalisation follows from their metadata); it returned {found}.")
            if rows and out.shape != rows[0].shape:
                raise ValueError(f"TensorDataset: transform returned rows of shapes {list(rows[0].shape)} and "
                                 f"{list(out.shape)}; every row of a batch must have the same shape.")
            rows.append(out)
        batch = torch.stack(rows)
        if dtype == torch.float32:
            return batch
        return torch.from_numpy(info.normalise_pixels(batch.numpy()))


def _tensor(array: np.ndarray) -> torch.Tensor:
    # Arrays may be views of pyarrow's read-only buffers; torch wants memory it may write.
    return torch.from_numpy(array if array.flags.writeable and array.flags.c_contiguous else array.copy())


def _process_group_ready() -> bool:
    return torch.distributed.is_available() and torch.distributed.is_initialized()
