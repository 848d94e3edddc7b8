"""``benchmarks.bench_duplicates`` end to end at a tiny size: quality per transformation and method, and timing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from repo_paths import REPO_ROOT


@pytest.mark.torch
def test_bench_duplicates_reports_recall_and_precision_per_transformation_and_the_timing(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.bench_duplicates", "--originals", "4", "--rows", "300",
         "--copy-every", "8"],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=600, check=False,
        env={**os.environ, "TMPDIR": str(tmp_path)},
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    result = json.loads(done.stdout[done.stdout.index("{"):])
    quality = result["quality"]
    assert quality["rows"] == 4 * 8
    for method in ("hash", "embedding"):
        per = quality[method]["per_transformation"]
        assert set(per) == {"crop_10pct", "jpeg_q50", "jpeg_q95", "resize_half", "rotate_3deg", "flip", "color_jitter"}
        assert all(0 <= entry["recall"] <= 1 for entry in per.values())
    # A JPEG re-encode at quality 95 barely moves a perceptual hash: every copy is found.
    assert quality["hash"]["per_transformation"]["jpeg_q95"]["recall"] == 1.0
    scale = result["scale"]
    assert scale["rows"] == 300 and scale["clusters_rows"] == 300 and scale["planted_found"] == 1.0
