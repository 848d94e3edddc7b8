"""Small ONNX image models built in the suite with ``onnx.helper`` (no torch needed).

* :func:`tiny_cnn` — random-weight conv net with three outputs (logits, a pooled
  feature vector, the raw conv map), for parity and error tests;
* :func:`digits_cnn` — a conv feature extractor whose filters are fitted on
  scikit-learn's digits (principal components of 3x3 patches, PCANet style), for
  a real ``ImageEmbedder -> LogisticRegression`` classifier;
* :func:`not_an_image_model` — a model whose input is a flat vector.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17


def _save(graph: onnx.GraphProto, path: Path) -> Path:
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = 8  # readable by every onnxruntime the [onnx] extra allows
    onnx.checker.check_model(model)
    path.write_bytes(model.SerializeToString())
    return path


def _image_input(name: str, shape: Sequence[int | None]) -> onnx.ValueInfoProto:
    dims = ["N" if d is None else d for d in shape]
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, dims)


def tiny_cnn(path: Path, channels: int = 3, size: int | None = 8, layout: str = "NCHW",
             seed: int = 0) -> Path:
    """Conv(3x3, 4 filters) -> ReLU -> outputs ``logits`` [N, 2], ``features`` [N, 4], ``conv`` [N, 4, H, W].

    ``size=None`` leaves height and width free; ``layout="NHWC"`` adds a transpose
    in front so the model takes channels-last images.
    """
    rng = np.random.default_rng(seed)
    weights = rng.normal(0, 0.5, (4, channels, 3, 3)).astype(np.float32)
    bias = rng.normal(0, 0.1, 4).astype(np.float32)
    dense = rng.normal(0, 0.5, (4, 2)).astype(np.float32)
    dense_bias = rng.normal(0, 0.1, 2).astype(np.float32)
    nodes = []
    image = "pixels"
    if layout == "NHWC":
        nodes.append(helper.make_node("Transpose", ["pixels"], ["pixels_nchw"], perm=[0, 3, 1, 2]))
        image = "pixels_nchw"
        input_shape = [None, size, size, channels]
    else:
        input_shape = [None, channels, size, size]
    nodes += [
        helper.make_node("Conv", [image, "w", "b"], ["conv_raw"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["conv_raw"], ["conv"]),
        helper.make_node("GlobalAveragePool", ["conv"], ["pooled"]),
        helper.make_node("Flatten", ["pooled"], ["features"]),
        helper.make_node("Gemm", ["features", "dense", "dense_bias"], ["logits"]),
    ]
    graph = helper.make_graph(
        nodes, "tiny_cnn", [_image_input("pixels", input_shape)],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 2]),
         helper.make_tensor_value_info("features", TensorProto.FLOAT, ["N", 4]),
         helper.make_tensor_value_info("conv", TensorProto.FLOAT, ["N", 4, size or "H", size or "W"])],
        initializer=[numpy_helper.from_array(weights, "w"), numpy_helper.from_array(bias, "b"),
                     numpy_helper.from_array(dense, "dense"), numpy_helper.from_array(dense_bias, "dense_bias")],
    )
    return _save(graph, path)


def digits_filters(images: np.ndarray, count: int = 8) -> np.ndarray:
    """``2 * count`` 3x3 filters fitted on ``images`` (n, 8, 8) in [0, 1]: top principal components of
    the 3x3 patches, with their negatives (so ReLU keeps both signs of each component)."""
    padded = np.pad(images, ((0, 0), (1, 1), (1, 1)))
    patches = np.stack([padded[:, y:y + 3, x:x + 3] for y in range(8) for x in range(8)], axis=1)
    patches = patches.reshape(-1, 9)
    patches = patches - patches.mean(axis=0)
    _, _, components = np.linalg.svd(patches, full_matrices=False)
    top = components[:count].reshape(count, 1, 3, 3)
    return np.concatenate([top, -top]).astype(np.float32)


def digits_cnn(path: Path, filters: np.ndarray) -> Path:
    """Conv(fitted 3x3 filters) -> ReLU -> 2x2 average pool on [N, 1, 8, 8] digits.

    Outputs ``features`` [N, 16 * 4 * 4] (the embedding) and ``global`` [N, 16]
    (global average pool: a smaller, weaker embedding for a grid search).
    """
    nodes = [
        helper.make_node("Conv", ["digit", "filters"], ["conv_raw"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["conv_raw"], ["conv"]),
        helper.make_node("AveragePool", ["conv"], ["pooled"], kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Flatten", ["pooled"], ["features"]),
        helper.make_node("GlobalAveragePool", ["conv"], ["global_map"]),
        helper.make_node("Flatten", ["global_map"], ["global"]),
    ]
    count = filters.shape[0]
    graph = helper.make_graph(
        nodes, "digits_cnn", [_image_input("digit", [None, 1, 8, 8])],
        [helper.make_tensor_value_info("features", TensorProto.FLOAT, ["N", count * 16]),
         helper.make_tensor_value_info("global", TensorProto.FLOAT, ["N", count])],
        initializer=[numpy_helper.from_array(filters, "filters")],
    )
    return _save(graph, path)


def not_an_image_model(path: Path) -> Path:
    """A linear model over a flat [N, 10] vector: not an image tensor."""
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["vector", "w"], ["score"])], "linear",
        [helper.make_tensor_value_info("vector", TensorProto.FLOAT, ["N", 10])],
        [helper.make_tensor_value_info("score", TensorProto.FLOAT, ["N", 1])],
        initializer=[numpy_helper.from_array(np.ones((10, 1), np.float32), "w")],
    )
    return _save(graph, path)


def with_external_data(source: Path, path: Path) -> Path:
    """``source`` re-saved with its weights in a separate ``<name>.data`` file (torch.onnx.export's default)."""
    model = onnx.load(str(source))
    onnx.save_model(model, str(path), save_as_external_data=True, all_tensors_to_one_file=True,
                    location=path.name + ".data", size_threshold=0)
    return path
