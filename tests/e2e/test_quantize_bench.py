"""``benchmarks.bench_quantize`` end to end at a tiny size: speed ratios and agreement are reported."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from repo_paths import REPO_ROOT


@pytest.mark.torch
def test_bench_quantize_reports_speed_ratios_and_agreement(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.bench_quantize", "--images", "70", "--width", "64", "--height", "48",
         "--size", "32", "--channels", "8", "--repeats", "1", "--epochs", "2", "--root", str(tmp_path)],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=600, check=False,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    result = json.loads(done.stdout[done.stdout.index("{"):])
    speed = result["speed"]
    assert speed["images"] == 70 and speed["int8_mb"] < speed["float32_mb"]
    for kind in ("embed", "inference"):
        per_image = speed[kind]["ms_per_image"]
        assert speed[kind]["float32_over_int8"] == per_image["float32"] / per_image["int8"]
    assert result["agreement"]["held_out"] == 200 and 0 <= result["agreement"]["top1_agreement"] <= 1
