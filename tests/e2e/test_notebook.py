"""The quickstart notebook runs top to bottom, so it never rots."""

from __future__ import annotations

import re

from notebook_runner import execute
from repo_paths import REPO_ROOT

NOTEBOOK = REPO_ROOT / "notebooks" / "quickstart.ipynb"


def test_quickstart_notebook_executes_and_reaches_good_accuracy(tmp_path):
    outputs = execute(NOTEBOOK, tmp_path)
    accuracy = float(re.search(r"held-out accuracy: ([0-9.]+)", outputs).group(1))
    assert accuracy >= 0.85
    assert "identical to Spark: True" in outputs
