"""Each Spark task's onnxruntime session is made for the GPU Spark assigned it.

A local-cluster whose worker reports fake GPUs through a discovery script (Spark's
own GPU resource scheduling) runs ImageEmbedder with the CUDA provider first;
onnxruntime here is the CPU build, so the embedder falls back to CPU
(``providerFallback=True``) and the embeddings must equal onnxruntime's. The
executors log every session they make: the device id each asked for must be
one of the fake GPUs, and the CPU-only sessions must carry none.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import onnxruntime as ort
from onnx_models import tiny_cnn
from PIL import Image
from repo_paths import REPO_ROOT, SUPPORT

from sparkimg_ml import preprocess


def test_each_task_session_asks_for_the_gpu_spark_assigned(tmp_path):
    rng = np.random.default_rng(11)
    images = []
    for index in range(8):
        path = tmp_path / f"img_{index}.png"
        Image.fromarray(rng.integers(0, 256, (10 + index, 12, 3), dtype=np.uint8)).save(path)
        images.append(str(path))
    model = tiny_cnn(tmp_path / "tiny.onnx")
    (tmp_path / "images.json").write_text(json.dumps(images))
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO_ROOT), str(SUPPORT)])}
    env.pop("SPARKIMG_ML_SESSION_LOG", None)
    job = subprocess.run(
        [sys.executable, str(SUPPORT / "gpu_embed_job.py"), str(scratch), str(model),
         str(tmp_path / "images.json"), str(tmp_path / "out.json")],
        env=env, capture_output=True, text=True, timeout=300,
    )
    assert job.returncode == 0, job.stderr[-3000:]
    result = json.loads((tmp_path / "out.json").read_text())

    pixels = preprocess(images, imageSize=[8, 8], layout="CHW")
    (expected,) = ort.InferenceSession(str(model)).run(["features"], {"pixels": pixels.reshape(-1, 3, 8, 8)})
    assert sorted(result["embeddings"]) == sorted(str(i) for i in range(8))
    for row, vector in enumerate(expected):
        np.testing.assert_allclose(result["embeddings"][str(row)], vector, atol=1e-6)

    records = [json.loads(line) for line in (scratch / "sessions.jsonl").read_text().splitlines()]
    assert records, "the executors made no session"
    fake = {int(a) for a in result["fake_gpus"]}
    for record in records:
        assert record["requested_providers"] == ["CUDAExecutionProvider", "CPUExecutionProvider"]
        cuda, cpu = record["requested_options"]
        assert cuda["device_id"] in fake, record
        assert cuda["arena_extend_strategy"] == "kSameAsRequested"
        assert cpu == {}
        assert record["providers"] == ["CPUExecutionProvider"]  # this onnxruntime has no CUDA: fallback
    # One session per Python worker and device: the cache is keyed by the device.
    per_worker_device = [(r["pid"], r["requested_options"][0]["device_id"]) for r in records]
    assert len(per_worker_device) == len(set(per_worker_device))
