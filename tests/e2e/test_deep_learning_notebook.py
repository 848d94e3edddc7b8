"""The deep-learning notebook runs top to bottom: TorchDistributor training, ONNX export, scoring.

The notebook is executed once; the tests then check what it printed, that it shows what its committed
outputs show, and, independently, the files it wrote (the Parquet tensors, the exported ONNX network,
the saved PipelineModel).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys

import nbformat
import numpy as np
import pytest
from notebook_runner import differences, printed, run
from repo_paths import REPO_ROOT, SUPPORT

NOTEBOOK = REPO_ROOT / "notebooks" / "deep_learning.ipynb"
SCORER = SUPPORT / "score_saved_pipeline.py"


@pytest.fixture(scope="module")
def notebook_run(tmp_path_factory):
    """``(executed notebook, output directory)`` of one run of the notebook in a fresh directory."""
    workdir = tmp_path_factory.mktemp("deep_learning")
    return run(NOTEBOOK, workdir), workdir / "deep_learning_output"


@pytest.fixture(scope="module")
def executed(notebook_run):
    """``(printed text, output directory)`` of that run."""
    notebook, output = notebook_run
    return printed(notebook), output


def test_fresh_run_shows_what_the_committed_outputs_show(notebook_run):
    found = differences(nbformat.read(NOTEBOOK, as_version=4), notebook_run[0])
    assert not found, "the stored outputs are stale; run `make notebooks`:\n" + "\n".join(found)


@pytest.mark.claim("write_tensors + TensorDataset train a CNN with TorchDistributor (0.98 held-out accuracy on digits)")
def test_cnn_trained_with_torch_distributor_reaches_098_held_out_accuracy(executed):
    printed, _ = executed
    assert float(re.search(r"held-out accuracy: ([0-9.]+)", printed).group(1)) >= 0.98
    assert float(re.search(r"time per epoch: ([0-9.]+) s", printed).group(1)) > 0
    rows_on_rank_0 = int(re.search(r"(\d+) rows on rank 0", printed).group(1))
    train_rows = int(re.search(r"train', rows=(\d+), dropped=(\d+)", printed).group(1))
    assert rows_on_rank_0 in (train_rows // 2, (train_rows + 1) // 2)  # the other rank read the rest


def test_failed_images_are_dropped_and_counted_before_training(executed):
    printed, _ = executed
    dropped = [int(n) for n in re.findall(r"null_tensors=(\d+)", printed)]
    assert sum(dropped) == 6  # the table's six broken URLs, whichever split they fell in


def test_exported_onnx_network_classifies_the_spark_tensors(executed):
    import onnxruntime

    from sparkimg_ml.training import TensorDataset

    printed, output = executed
    assert "ONNX predictions equal torch's: True" in printed
    session = onnxruntime.InferenceSession(str(output / "digits_cnn.onnx"))
    correct = seen = 0
    for x, y in TensorDataset(str(output / "test"), batch_size=100):  # batches of a new size: dynamic batch axis
        scores = session.run(None, {"image": x.numpy()})[0]
        correct += int((scores.argmax(1) == y.numpy()).sum())
        seen += len(y)
    assert seen > 300 and correct / seen >= 0.98
    assert np.isfinite(scores).all()


@pytest.mark.claim("Saved PipelineModels load in a new process and predict identically")
def test_scoring_pipeline_from_urls_reloads_in_a_new_process_with_identical_predictions(executed, tmp_path):
    printed, output = executed
    accuracy = float(re.search(r"pipeline held-out accuracy: ([0-9.]+)", printed).group(1))
    assert accuracy >= 0.98
    assert "reloaded pipeline gives identical predictions: True" in printed
    assert "ImageEmbedder.embed equals onnxruntime on preprocess output: True" in printed

    in_notebook = {}
    for part in (output / "pipeline_predictions").glob("part-*.json"):
        for line in part.read_text().splitlines():
            row = json.loads(line)
            if row.get("prediction") is not None:  # failed images (null scores) are not compared
                in_notebook[str(row["id"])] = row["prediction"]
    assert len(in_notebook) > 300
    ids, result = tmp_path / "ids.json", tmp_path / "predictions.json"
    ids.write_text(json.dumps([int(i) for i in in_notebook]))
    subprocess.run([sys.executable, str(SCORER), str(output / "digits_cnn_pipeline"), str(ids), str(result)],
                   check=True, timeout=600, capture_output=True)
    in_new_process = json.loads(result.read_text())
    assert in_new_process == in_notebook
