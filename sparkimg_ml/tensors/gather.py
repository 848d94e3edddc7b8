"""Reshape and transpose as index arithmetic over a few array primitives.

The arithmetic is written once against :class:`ArrayOps`; :class:`ListOps`
runs it on Python lists (checkable without Spark, in doctests), and
:class:`~sparkimg_ml.tensors.sql.SparkOps` builds the same computation as Spark
SQL expressions for :class:`~sparkimg_ml.TensorReshaper`.

This module imports nothing of Spark.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import reduce
from operator import mul
from typing import Any, Protocol


def product(sizes: Sequence[int]) -> int:
    """The number of values a shape holds.

    Examples
    --------
    >>> product([2, 3, 4])
    24
    """
    return reduce(mul, sizes, 1)


class ArrayOps(Protocol):
    """The array primitives the gather is written in (Spark SQL functions in production).

    Every value of a gather's result is read through ``at``, ``take`` or ``whole``,
    so an implementation may convert element types there.
    """

    def tabulate(self, count: Any, fill: Callable[[Any], Any]) -> Any:
        """``[fill(i) for i in range(count)]``."""

    def at(self, array: Any, index: Any) -> Any:
        """``array[index]`` (0-based)."""

    def take(self, array: Any, start: Any, length: Any) -> Any:
        """``array[start:start + length]``."""

    def whole(self, array: Any) -> Any:
        """``array`` itself."""

    def flatten(self, nested: Any) -> Any:
        """Concatenate an array of arrays."""

    def quotient(self, value: Any, divisor: Any) -> Any:
        """Integer division of non-negative ``value`` by positive ``divisor``."""

    def chunks(self, array: Any, length: Any | None = None, count: Any | None = None) -> Any:
        """``array`` cut into consecutive parts of ``length`` items, or into ``count`` equal parts.

        A null array stays null. ``array`` is read once per part, so it should be a
        value returned by :meth:`stored`.
        """

    def stored(self, array: Any) -> Any:
        """``array`` computed once, to be read many times (by ``chunks`` or a gather)."""


def permute(ops: ArrayOps, flat: Any, shape: Sequence[Any], axes: Sequence[int]) -> Any:
    """The values of ``flat.reshape(shape).transpose(axes)`` in row-major order, with one ``tabulate``.

    ``flat`` holds exactly ``prod(shape)`` values in row-major order. Output position
    ``k`` is written in the mixed radix of the output dimensions; digit ``t`` walks
    input axis ``axes[t]`` with that axis's row-major stride. When the last input
    axis stays last, whole rows are sliced instead of single values read.

    Examples
    --------
    >>> permute(ListOps(), list(range(6)), [2, 3], [1, 0])
    [0, 3, 1, 4, 2, 5]
    """
    rank = len(shape)
    if list(axes) == list(range(rank)):
        return ops.whole(flat)
    strides: list[Any] = [reduce(mul, shape[axis + 1:], 1) for axis in range(rank)]
    dims = [shape[axis] for axis in axes]
    steps = [strides[axis] for axis in axes]
    contiguous = axes[-1] == rank - 1
    digits = rank - 1 if contiguous else rank

    def source(position: Any) -> Any:
        """Index in ``flat`` of the value (or row) at ``position`` among the first ``digits`` dims."""
        offset: Any = 0
        for t in range(digits):
            inner = reduce(mul, dims[t + 1:digits], 1)
            digit = position if t == 0 else position % (inner * dims[t])
            if t < digits - 1:
                digit = ops.quotient(digit, inner)
            offset = offset + digit * steps[t]
        return offset

    count = reduce(mul, dims[:digits], 1)
    if contiguous:
        return ops.flatten(ops.tabulate(count, lambda r: ops.take(flat, source(r), dims[-1])))
    return ops.tabulate(count, lambda k: ops.at(flat, source(k)))


def nest(ops: ArrayOps, flat: Any, dims: Sequence[int | None]) -> Any:
    """Row-major ``flat`` as nested arrays of ``dims``, built from the innermost level outwards.

    Each level cuts the previous, stored one into consecutive parts, so no level
    runs inside another's loop or reads another lambda's variable (see
    :class:`~sparkimg_ml.tensors.sql.SparkOps`). One entry of ``dims`` may be None (inferred per row); its
    level is then cut by count.

    Examples
    --------
    >>> nest(ListOps(), list(range(12)), [2, 3, 2])
    [[[0, 1], [2, 3], [4, 5]], [[6, 7], [8, 9], [10, 11]]]
    """
    nested = flat
    for level in range(len(dims) - 1, 0, -1):
        if level < len(dims) - 1:
            nested = ops.stored(nested)
        inner = dims[level]
        if inner is not None:
            nested = ops.chunks(nested, length=inner)
        else:  # this level's size is the inferred one, so the outer sizes are all known
            nested = ops.chunks(nested, count=product([d for d in dims[:level] if d is not None]))
    return nested


def gather(ops: ArrayOps, flat: Any, shape: Sequence[Any], axes: Sequence[int], nested: bool) -> Any:
    """``flat.reshape(shape).transpose(axes)`` as nested arrays, or flattened (row-major).

    Examples
    --------
    >>> gather(ListOps(), list(range(6)), [2, 3], [1, 0], nested=True)
    [[0, 3], [1, 4], [2, 5]]
    >>> gather(ListOps(), list(range(6)), [2, 3], [1, 0], nested=False)
    [0, 3, 1, 4, 2, 5]
    """
    values = permute(ops, flat, shape, axes)
    if not nested or len(shape) < 2:
        return values
    return nest(ops, ops.stored(values), [shape[axis] for axis in axes])


class ListOps:
    """:class:`ArrayOps` on Python lists: the gather's arithmetic, checkable without Spark.

    Examples
    --------
    >>> ListOps().chunks([1, 2, 3, 4, 5, 6], count=2)
    [[1, 2, 3], [4, 5, 6]]
    """

    def tabulate(self, count: int, fill: Callable[[int], Any]) -> list[Any]:
        return [fill(i) for i in range(count)]

    def at(self, array: list[Any], index: int) -> Any:
        return array[index]

    def take(self, array: list[Any], start: int, length: int) -> list[Any]:
        return array[start:start + length]

    def whole(self, array: list[Any]) -> list[Any]:
        return array

    def flatten(self, nested: list[list[Any]]) -> list[Any]:
        return [value for part in nested for value in part]

    def quotient(self, value: int, divisor: int) -> int:
        return value // divisor

    def stored(self, array: list[Any]) -> list[Any]:
        return array

    def chunks(self, array: list[Any] | None, length: int | None = None,
               count: int | None = None) -> list[list[Any]] | None:
        if array is None:
            return None
        part = length if length is not None else len(array) // (count or 1)
        return [array[i:i + part] for i in range(0, len(array), part)]
