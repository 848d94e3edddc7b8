"""Execution providers without Spark: names, device ids, missing providers, and one session per device."""

from __future__ import annotations

import json
import logging

import numpy as np
import onnxruntime as ort
import pytest
from onnx_models import tiny_cnn

from sparkimg_ml import ImageEmbedder
from sparkimg_ml.model.onnx import (
    SESSION_LOG_ENV,
    clear_model_cache,
    load_model,
    model_loads,
)
from sparkimg_ml.model.providers import (
    ProviderError,
    check_provider_name,
    usable_providers,
    with_device,
)

CUDA, CPU = "CUDAExecutionProvider", "CPUExecutionProvider"


def test_every_provider_onnxruntime_knows_is_accepted_and_others_are_not():
    for name in ort.get_all_providers():
        assert check_provider_name(name) == name
    with pytest.raises(ValueError, match=r"unknown provider 'tensorrt' \(did you mean 'TensorrtExecutionProvider'\?\)"):
        check_provider_name("tensorrt")
    with pytest.raises(ValueError, match=r"unknown provider 'GPU'; the names are onnxruntime.get_all_providers"):
        ImageEmbedder(executionProviders=["GPU"])
    with pytest.raises(TypeError, match="executionProviders must be a list of strings"):
        ImageEmbedder(executionProviders=CUDA)


def test_the_task_gpu_becomes_the_device_id_of_gpu_providers_only():
    options = with_device(["TensorrtExecutionProvider", CUDA, CPU],
                          {CUDA: {"gpu_mem_limit": 1024}}, device_id=2)
    assert options == [{"device_id": 2}, {"gpu_mem_limit": 1024, "device_id": 2}, {}]
    explicit = with_device([CUDA], {CUDA: {"device_id": 0}}, device_id=2)
    assert explicit == [{"device_id": 0}]
    assert with_device([CUDA, CPU], {}, device_id=None) == [{}, {}]


def test_a_missing_provider_names_onnxruntime_gpu_or_falls_back_with_a_warning(caplog):
    with pytest.raises(ProviderError, match=r"\['CUDAExecutionProvider'\] are not available in this onnxruntime "
                                            r"\(it has \['CPUExecutionProvider'\]\).*pip install onnxruntime-gpu"
                                            r".*providerFallback=True"):
        usable_providers([CUDA, CPU], [{"device_id": 1}, {}], available=[CPU])
    with caplog.at_level(logging.WARNING, logger="sparkimg_ml.model"):
        kept = usable_providers([CUDA], [{"device_id": 1}], available=[CPU], fallback=True, where="m.onnx")
    assert kept == ([CPU], [{}])
    assert "falling back to ['CPUExecutionProvider'] for the model m.onnx" in caplog.text
    assert usable_providers([CUDA, CPU], [{"device_id": 1}, {}], available=[CUDA, CPU]) == \
        ([CUDA, CPU], [{"device_id": 1}, {}])


def test_sessions_are_cached_per_device_and_log_what_they_were_asked_for(tmp_path, monkeypatch):
    model = tiny_cnn(tmp_path / "tiny.onnx")
    log = tmp_path / "sessions.jsonl"
    monkeypatch.setenv(SESSION_LOG_ENV, str(log))
    clear_model_cache()
    uri = str(model)
    before = model_loads(uri)
    first = load_model(uri, providers=[CUDA, CPU], provider_options=[{"device_id": 1}, {}], fallback=True)
    again = load_model(uri, providers=[CUDA, CPU], provider_options=[{"device_id": 1}, {}], fallback=True)
    other = load_model(uri, providers=[CUDA, CPU], provider_options=[{"device_id": 2}, {}], fallback=True)
    assert first is again and other is not first
    assert model_loads(uri) - before == 2
    records = [json.loads(line) for line in log.read_text().splitlines()]
    assert [r["requested_options"][0] for r in records] == [{"device_id": 1}, {"device_id": 2}]
    assert all(r["providers"] == [CPU] and r["requested_providers"] == [CUDA, CPU] for r in records)
    batch = np.random.default_rng(0).random((2, 3, 8, 8), dtype=np.float32)
    (expected,) = ort.InferenceSession(uri).run(["features"], {"pixels": batch})
    np.testing.assert_array_equal(first.run(batch, "features"), expected)
    with pytest.raises(ProviderError, match="not available in this onnxruntime"):
        load_model(uri, providers=[CUDA, CPU], provider_options=[{"device_id": 3}, {}])


def test_embed_checks_providers_and_their_options(tmp_path):
    model = str(tiny_cnn(tmp_path / "tiny.onnx"))
    image = tmp_path / "a.png"
    from PIL import Image
    Image.fromarray(np.full((9, 9, 3), 100, np.uint8)).save(image)
    cpu = ImageEmbedder(modelUri=model, outputNode="features").embed(str(image))
    fallback = ImageEmbedder(modelUri=model, outputNode="features", executionProviders=[CUDA, CPU],
                             providerFallback=True).embed(str(image))
    np.testing.assert_array_equal(cpu, fallback)
    with pytest.raises(ProviderError, match="pip install onnxruntime-gpu"):
        ImageEmbedder(modelUri=model, executionProviders=[CUDA, CPU]).embed(str(image))
    with pytest.raises(ValueError, match=r"providerOptions has options for 'CUDAExecutionProvider', which is not "
                                         r"in executionProviders \['CPUExecutionProvider'\]"):
        ImageEmbedder(modelUri=model, providerOptions={CUDA: {"device_id": 0}}).embed(str(image))
    with pytest.raises(ValueError, match=r"providerOptions\['CPUExecutionProvider'\] must be a dict"):
        ImageEmbedder(modelUri=model, providerOptions={CPU: 4}).embed(str(image))
    with pytest.raises(ValueError, match="executionProviders is empty"):
        ImageEmbedder(modelUri=model, executionProviders=[]).embed(str(image))
