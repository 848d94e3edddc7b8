"""executionProviders in Spark: a missing provider fails at transform time, and the Params persist."""

from __future__ import annotations

import pytest
from onnx_models import tiny_cnn

from sparkimg_ml import ImageEmbedder
from sparkimg_ml.model.providers import ProviderError

CUDA, CPU = "CUDAExecutionProvider", "CPUExecutionProvider"


def test_a_missing_provider_fails_at_transform_and_the_params_round_trip(spark, tmp_path):
    model = str(tiny_cnn(tmp_path / "tiny.onnx"))
    frame = spark.createDataFrame([(0, "/nowhere.png")], "id int, path string")
    embedder = ImageEmbedder(inputCol="path", modelUri=model, executionProviders=[CUDA, CPU],
                             providerOptions={CUDA: {"gpu_mem_limit": 2147483648, "cudnn_conv_use_max_workspace": "1"}})
    with pytest.raises(ProviderError, match=r"\['CUDAExecutionProvider'\] are not available.*onnxruntime-gpu"):
        embedder.transform(frame)
    embedder.setProviderFallback(True)
    embedder.write().overwrite().save(str(tmp_path / "stage"))
    loaded = ImageEmbedder.load(str(tmp_path / "stage"))
    assert loaded.getExecutionProviders() == [CUDA, CPU]
    assert loaded.getProviderOptions() == {CUDA: {"gpu_mem_limit": 2147483648, "cudnn_conv_use_max_workspace": "1"}}
    assert loaded.getProviderFallback() is True
    assert ImageEmbedder().getExecutionProviders() == [CPU] and ImageEmbedder().getProviderOptions() == {}
