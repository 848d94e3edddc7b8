"""quantize_onnx: an int8 copy of a trained digits CNN agrees with the float model and keeps its preprocessing."""

from __future__ import annotations

import sys

import numpy as np
import onnx
import pytest
from repo_paths import REPO_ROOT

from sparkimg_ml import ImageEmbedder, quantize_onnx

if str(REPO_ROOT) not in sys.path:  # ``benchmarks`` is a top-level directory of the checkout
    sys.path.insert(0, str(REPO_ROOT))

from benchmarks.bench_quantize import train_digits_cnn  # noqa: E402

pytestmark = pytest.mark.torch


@pytest.fixture(scope="module")
def digits_cnn(tmp_path_factory):
    """``(float model path, digit PNG paths)``: a CNN trained on 16x16 gray digits but the first 200."""
    model, paths, _ = train_digits_cnn(tmp_path_factory.mktemp("quantize"), epochs=20)
    return model, paths


def test_int8_model_agrees_with_the_float_model_and_keeps_its_preprocessing(digits_cnn, tmp_path):
    path, images = digits_cnn
    quantized = quantize_onnx(path, tmp_path / "digits-int8.onnx", images[200:400])
    graph = onnx.load(quantized)
    assert {"QuantizeLinear", "DequantizeLinear"} <= {node.op_type for node in graph.graph.node}
    carried = {p.key: p.value for p in onnx.load(path).metadata_props}
    assert carried.items() <= {p.key: p.value for p in graph.metadata_props}.items() and carried
    held_out = images[:200] + images[400:]
    exact, fast = ImageEmbedder(modelUri=path).embed(held_out), ImageEmbedder(modelUri=quantized).embed(held_out)
    agreement = (exact.argmax(1) == fast.argmax(1)).mean()
    cosine = (exact * fast).sum(1) / np.linalg.norm(exact, axis=1) / np.linalg.norm(fast, axis=1)
    assert agreement >= 0.99, agreement
    assert np.median(cosine) >= 0.99 and np.percentile(cosine, 1) >= 0.95, (np.median(cosine), cosine.min())
    assert not np.array_equal(exact, fast)  # int8 arithmetic: close, not equal


def test_prepared_arrays_calibrate_too_and_mistakes_are_explained(digits_cnn, tmp_path):
    path, images = digits_cnn
    prepared = ImageEmbedder(modelUri=path).model_inputs(images[:64])
    assert prepared.shape == (64, 1, 16, 16) and prepared.dtype == np.float32
    out = quantize_onnx(path, tmp_path / "from-array.onnx", prepared, method="percentile", per_channel=False)
    assert ImageEmbedder(modelUri=out).embed(images[:3]).shape == (3, 10)
    with pytest.raises(ValueError, match="method must be one of 'minmax', 'entropy', 'percentile'"):
        quantize_onnx(path, tmp_path / "x.onnx", prepared, method="kl")
    with pytest.raises(ValueError, match="no calibration images"):
        quantize_onnx(path, tmp_path / "x.onnx", [])
    with pytest.raises(FileNotFoundError, match="no model file"):
        quantize_onnx(tmp_path / "absent.onnx", tmp_path / "x.onnx", prepared)
