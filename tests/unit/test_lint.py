"""The code follows the project's ruff rules (pyproject.toml): style, bugs, sorted imports, modern syntax."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_ruff_finds_nothing_with_the_project_rules():
    # What `make lint` runs; the rules, the target Python and the first-party packages are in pyproject.toml.
    result = subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache", "sparkimg_ml", "tests",
                             "benchmarks", ".ci"], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]


def test_the_rules_include_import_sorting_and_pyupgrade():
    import tomllib

    lint = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["ruff"]["lint"]
    assert {"E", "F", "W", "B", "I", "UP"} <= set(lint["select"])
