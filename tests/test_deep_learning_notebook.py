"""The deep-learning notebook runs top to bottom: TorchDistributor training, ONNX export, scoring.

The notebook is executed once; the tests then check what it printed and, independently,
the files it wrote (the Parquet tensors and the exported ONNX network).
"""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import numpy as np
import pytest
from nbclient import NotebookClient

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "deep_learning.ipynb"


@pytest.fixture(scope="module")
def executed(tmp_path_factory):
    """``(printed text, output directory)`` of one run of the notebook in a fresh directory."""
    workdir = tmp_path_factory.mktemp("deep_learning")
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    NotebookClient(notebook, timeout=900, kernel_name="python3",
                   resources={"metadata": {"path": str(workdir)}}).execute()
    printed = "".join(
        output.get("text", "") for cell in notebook.cells if cell.cell_type == "code"
        for output in cell.get("outputs", [])
    )
    return printed, workdir / "deep_learning_output"


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
