"""Run ImageEmbedder on a local-cluster whose worker has fake GPUs (Spark's GPU resource scheduling).

Usage: ``python gpu_embed_job.py SCRATCH MODEL IMAGES_JSON OUT_JSON``. The worker's
GPUs come from a discovery script written here that reports the addresses in
``FAKE_GPUS``; each task asks for one. The executors log every onnxruntime
session they make (``SPARKIMG_ML_SESSION_LOG``) to ``SCRATCH/sessions.jsonl``;
the embeddings are written to OUT_JSON by row id.
"""

from __future__ import annotations

import json
import os
import stat
import sys
from pathlib import Path

import spark_services
from repo_paths import REPO_ROOT

#: The fake GPU addresses the discovery script reports (not 0: a default device id would not pass).
FAKE_GPUS = ["3", "5"]


def main(scratch: Path, model: str, images: list, out: Path) -> None:
    script = scratch / "discover_gpus.sh"
    script.write_text("#!/bin/sh\necho '" + json.dumps({"name": "gpu", "addresses": FAKE_GPUS}) + "'\n")
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    os.environ["SPARK_HOME"] = str(spark_services.scratch_spark_home(scratch))
    os.environ["PYSPARK_PYTHON"] = sys.executable
    log = scratch / "sessions.jsonl"

    from pyspark.sql import SparkSession

    from sparkimg_ml import ImageEmbedder

    spark = (
        SparkSession.builder.master("local-cluster[1,2,1024]").appName("sparkimg_ml-gpu-scheduling")
        .config("spark.ui.enabled", "false").config("spark.ui.showConsoleProgress", "false")
        .config("spark.driver.bindAddress", "127.0.0.1").config("spark.driver.host", "127.0.0.1")
        .config("spark.worker.resource.gpu.amount", str(len(FAKE_GPUS)))
        .config("spark.worker.resource.gpu.discoveryScript", str(script))
        .config("spark.executor.resource.gpu.amount", str(len(FAKE_GPUS)))
        .config("spark.task.resource.gpu.amount", "1")
        .config("spark.executorEnv.PYTHONPATH", str(REPO_ROOT))
        .config("spark.executorEnv.SPARKIMG_ML_SESSION_LOG", str(log))
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel("ERROR")
    try:
        frame = spark.createDataFrame(list(enumerate(images)), "id int, path string").repartition(4, "id")
        embedder = ImageEmbedder(
            inputCol="path", modelUri=model, outputNode="features", outputFormat="array",
            executionProviders=["CUDAExecutionProvider", "CPUExecutionProvider"],
            providerOptions={"CUDAExecutionProvider": {"arena_extend_strategy": "kSameAsRequested"}},
            providerFallback=True,
        )
        rows = embedder.transform(frame).select("id", "embedding").collect()
        out.write_text(json.dumps({"embeddings": {str(r["id"]): list(r["embedding"]) for r in rows},
                                   "fake_gpus": FAKE_GPUS}))
    finally:
        spark.stop()


if __name__ == "__main__":
    main(Path(sys.argv[1]), sys.argv[2], json.loads(Path(sys.argv[3]).read_text()), Path(sys.argv[4]))
