"""The quickstart notebook runs top to bottom, so it never rots."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from notebook_runner import execute

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "quickstart.ipynb"


@pytest.mark.claim("The quickstart notebook runs end to end and reaches the accuracy the README shows")
def test_quickstart_notebook_executes_and_reaches_good_accuracy(tmp_path):
    outputs = execute(NOTEBOOK, tmp_path)
    accuracy = float(re.search(r"held-out accuracy: ([0-9.]+)", outputs).group(1))
    assert accuracy >= 0.93  # 0.945 to 0.951 measured (README, the notebook's saved output)
    assert "identical to Spark: True" in outputs
