"""The model core without Spark: reading, checksum, per-process session cache, input/output checks."""

from __future__ import annotations

import hashlib
import os
import threading
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
from onnx_models import not_an_image_model, tiny_cnn, with_external_data

from sparkimg_ml.model.onnx import (
    ModelError,
    ModelInput,
    clear_model_cache,
    load_model,
    model_loads,
    run_batches,
)


@pytest.fixture()
def cnn(tmp_path: Path) -> Path:
    clear_model_cache()
    return tiny_cnn(tmp_path / "tiny.onnx")


@pytest.mark.claim("Each Python worker reads the ONNX model once")
def test_model_is_read_once_per_process_and_the_session_reused(cnn):
    uri = str(cnn)
    first = load_model(uri)
    again = load_model(uri)
    pinned = load_model(uri, hashlib.sha256(cnn.read_bytes()).hexdigest())
    assert first is again is pinned
    assert model_loads(uri) == 1
    assert first.sha256 == hashlib.sha256(cnn.read_bytes()).hexdigest()


@pytest.mark.claim("Each Python worker reads the ONNX model once")
def test_concurrent_first_loads_read_the_model_once(cnn):
    uri = cnn.as_uri()  # file://
    models = []
    threads = [threading.Thread(target=lambda: models.append(load_model(uri))) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len({id(m) for m in models}) == 1 and model_loads(uri) == 1


def test_model_is_read_over_http(static_dir, http_server):
    clear_model_cache()
    tiny_cnn(static_dir / "http_tiny.onnx")
    model = load_model(f"{http_server}/http_tiny.onnx")
    assert [o.name for o in model.outputs] == ["logits", "features", "conv"]


@pytest.mark.claim("ImageEmbedder's embeddings equal onnxruntime's on the featurizer's preprocessing")
def test_batched_inference_equals_onnxruntime_directly(cnn):
    images = np.random.default_rng(1).random((10, 3, 8, 8), dtype=np.float32)
    model = load_model(str(cnn))
    ours = run_batches(model, images, "features", batch_size=3)
    (direct,) = ort.InferenceSession(str(cnn)).run(["features"], {"pixels": images})
    np.testing.assert_allclose(ours, direct, atol=1e-6)
    assert ours.shape == (10, 4) and ours.dtype == np.float32


@pytest.mark.claim("A saved ImageEmbedder stores the model's URI and checksum, not its bytes; a wrong checksum names both digests")
def test_checksum_mismatch_names_the_model_and_both_digests(cnn):
    wrong = "0" * 64
    with pytest.raises(ModelError) as error:
        load_model(str(cnn), wrong)
    message = str(error.value)
    assert str(cnn) in message and wrong in message
    assert hashlib.sha256(cnn.read_bytes()).hexdigest() in message


def test_unreadable_model_names_the_model_and_what_was_expected(tmp_path):
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"this is not a protobuf" * 10)
    with pytest.raises(ModelError, match=r"onnxruntime cannot load the model .*garbage\.onnx.*ONNX model file"):
        load_model(str(garbage))
    with pytest.raises(ModelError, match=r"cannot read the model .*absent\.onnx: not_found"):
        load_model(str(tmp_path / "absent.onnx"))


def test_model_with_external_weights_says_how_to_save_it_as_one_file(cnn, tmp_path):
    path = with_external_data(cnn, tmp_path / "external.onnx")
    assert (tmp_path / "external.onnx.data").exists()
    with pytest.raises(ModelError, match=r"external\.onnx keeps its weights in a separate external-data file.*"
                                         r"external_data=False"):
        load_model(str(path))


def test_model_whose_input_is_not_an_image_is_refused(tmp_path):
    path = not_an_image_model(tmp_path / "linear.onnx")
    with pytest.raises(ModelError) as error:
        load_model(str(path))
    message = str(error.value)
    assert str(path) in message and "'vector'" in message and "[N, 10]" in message
    assert "float32 image tensor of rank 4" in message


def test_unknown_output_lists_the_outputs(cnn):
    model = load_model(str(cnn))
    with pytest.raises(ModelError) as error:
        model.output("penultimate")
    message = str(error.value)
    assert str(cnn) in message and "'penultimate'" in message
    assert "'logits' [N, 2]" in message and "'features' [N, 4]" in message


@pytest.mark.parametrize(("shape", "layout", "size"), [
    ((None, 3, 224, 224), "NCHW", [224, 224]),
    ((None, 224, 224, 3), "NHWC", [224, 224]),
    ((1, 1, 28, 28), "NCHW", [28, 28]),
    ((None, 3, None, None), "NCHW", None),
    ((None, None, None, None), None, None),
    ((None, 3, 3, 3), None, None),
])
def test_input_layout_and_size_are_read_from_fixed_dimensions(shape, layout, size):
    model_input = ModelInput("x", shape, "tensor(float)")
    assert model_input.layout == layout and model_input.image_size == size


def test_input_check_says_both_shapes():
    model_input = ModelInput("x", (None, 3, 224, 224), "tensor(float)")
    assert model_input.check("NCHW", 224, 224, 3) is None
    problem = model_input.check("NCHW", 128, 128, 3)
    assert problem is not None and "[N, 3, 224, 224]" in problem and "[N, 3, 128, 128]" in problem
    assert "[N, 224, 224, 1]" in (model_input.check("NHWC", 224, 224, 1) or "")


def test_sessions_get_the_task_share_of_cores_unless_threads_are_set():
    from sparkimg_ml.engine.embed import _task_threads
    from sparkimg_ml.model.onnx import default_threads

    assert _task_threads(3) == 3
    assert _task_threads(0) == 1  # no Spark task here: one CPU, as spark.task.cpus defaults to
    assert default_threads(None) == 0  # a process of its own: onnxruntime's choice
    assert default_threads(64) == os.cpu_count()
