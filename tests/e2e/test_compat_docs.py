"""The compatibility guide says exactly what the matrix runs: docs, surfaces and ``compat`` markers agree."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.claim("pyspark 3.5 LTS to 4.3, classic and Spark Connect, local and clusters (the compatibility matrix)")
def test_compatibility_guide_lists_every_compat_test_under_its_surface_and_is_current():
    env = dict(os.environ, PYTHONPATH=str(REPO))
    result = subprocess.run([sys.executable, str(REPO / ".ci" / "compat_matrix.py"), "--check-docs"],
                            cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-5000:]
