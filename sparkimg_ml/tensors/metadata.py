"""Tensor shapes in column metadata: what a column records, what a reshape needs, what it writes.

This module imports nothing of Spark.
"""

from __future__ import annotations

import numbers
from typing import Any

from ..schema import ML_ATTR_KEY, TENSOR_KEY, VECTOR
from .gather import product

_SHAPE_HELP = "set shape, e.g. shape=[32, 32, 3], or use -1 for one inferred size, e.g. shape=[-1, 3]"


def _is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def recorded_shape(metadata: dict[str, Any]) -> tuple[list[int] | None, int | None, str]:
    """Shape and total size recorded in column metadata, and where they were found.

    A recorded shape may hold one -1 (written for rows whose size is inferred); the
    total size is then unknown.
    """
    tensor = metadata.get(TENSOR_KEY) or {}
    shape = tensor.get("shape")
    if isinstance(shape, list) and shape and all(_is_int(s) and (s > 0 or s == -1) for s in shape) \
            and shape.count(-1) <= 1:
        size = None if -1 in shape else product(shape)
        return list(shape), size, f"tensor shape {shape} in its metadata"
    num_attrs: Any = (metadata.get(ML_ATTR_KEY) or {}).get("num_attrs")
    if _is_int(num_attrs) and num_attrs > 0:
        return None, int(num_attrs), f"ml_attr.num_attrs = {num_attrs} in its metadata"
    return None, None, ""


def resolve_shape(
    name: str,
    shape: list[int] | None,
    axes: list[int] | None,
    in_shape: list[int] | None,
    in_size: int | None,
    size_source: str = "",
) -> tuple[list[int], list[int]]:
    """The shape and axes to apply to column ``name``, checked against what its metadata records.

    ``shape`` falls back to the recorded ``in_shape``; a -1 is resolved when the
    total size ``in_size`` is known and kept (inferred per row) otherwise.

    Examples
    --------
    >>> resolve_shape("features", [-1, 3], None, [32, 32, 3], 3072)
    ([1024, 3], [0, 1])
    >>> resolve_shape("features", [4, 4, 3], None, [32, 32, 3], 3072, "its metadata")
    Traceback (most recent call last):
    ...
    ValueError: TensorReshaper: shape [4, 4, 3] holds 48 values but column 'features' holds 3072 \
(its metadata); set shape, e.g. shape=[32, 32, 3], or use -1 for one inferred size, e.g. shape=[-1, 3].
    """
    if shape is None and in_shape is None:
        raise ValueError(
            f"TensorReshaper: shape is not set and column {name!r} has no tensor shape in its "
            f"metadata (metadata['tensor']['shape']); {_SHAPE_HELP}."
        )
    resolved = list(shape if shape is not None else in_shape or [])
    known = product([size for size in resolved if size != -1])
    if in_size is not None and -1 in resolved:
        if in_size % known:
            raise ValueError(
                f"TensorReshaper: shape {resolved} cannot hold the {in_size} values of column "
                f"{name!r} ({size_source}): {in_size} is not a multiple of {known}."
            )
        resolved[resolved.index(-1)] = in_size // known
    elif in_size is not None and known != in_size:
        raise ValueError(
            f"TensorReshaper: shape {resolved} holds {known} values but column {name!r} holds "
            f"{in_size} ({size_source}); {_SHAPE_HELP}."
        )
    order = list(axes) if axes is not None else list(range(len(resolved)))
    if len(order) != len(resolved):
        raise ValueError(
            f"TensorReshaper: axes {order} has {len(order)} entries but shape {resolved} has "
            f"{len(resolved)} dimensions; axes must be a permutation of 0..{len(resolved) - 1}."
        )
    return resolved, order


def output_metadata(
    in_tensor: dict[str, Any],
    in_shape: list[int] | None,
    shape: list[int],
    axes: list[int],
    dtype: str,
    output_type: str,
) -> dict[str, Any]:
    """Column metadata of the output: the input's ``tensor`` entry with shape, layout and dtype updated.

    The layout letters are permuted only when ``shape`` keeps the recorded
    dimensions; any other reshape makes the layout unknown, so it is dropped.

    Examples
    --------
    >>> recorded = {"shape": [32, 32, 3], "layout": "HWC", "channelOrder": "RGB", "dtype": "float32"}
    >>> output_metadata(recorded, [32, 32, 3], [32, 32, 3], [2, 0, 1], "float32", "nested")
    {'tensor': {'shape': [3, 32, 32], 'layout': 'CHW', 'channelOrder': 'RGB', 'dtype': 'float32'}}
    >>> output_metadata(recorded, [32, 32, 3], [1024, 3], [0, 1], "float32", "vector")
    {'tensor': {'shape': [1024, 3], 'channelOrder': 'RGB', 'dtype': 'float32'}, 'ml_attr': {'num_attrs': 3072}}
    """
    tensor: dict[str, Any] = {"shape": [shape[axis] for axis in axes]}
    layout = in_tensor.get("layout")
    if isinstance(layout, str) and shape == in_shape and len(layout) == len(shape):
        tensor["layout"] = "".join(layout[axis] for axis in axes)
    tensor.update((key, value) for key, value in in_tensor.items() if key not in ("shape", "layout", "dtype"))
    tensor["dtype"] = dtype
    metadata: dict[str, Any] = {TENSOR_KEY: tensor}
    if output_type == VECTOR and -1 not in shape:
        metadata[ML_ATTR_KEY] = {"num_attrs": product(shape)}
    return metadata
