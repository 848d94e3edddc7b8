"""``benchmarks.bench_source_info`` end to end on a tiny corpus: both workloads, with and without the facts."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from repo_paths import REPO_ROOT


def test_bench_source_info_times_both_workloads_with_and_without_the_facts(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.bench_source_info", "--rows", "24", "--width", "64", "--height", "48",
         "--size", "8", "--extra-columns", "3", "--repeats", "1", "--root", str(tmp_path)],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=600, check=False,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    result = json.loads(done.stdout[done.stdout.index("{"):])
    assert result["rows"] == 24 and result["image"] == "64x48 JPEG"
    for workload in ("features", "wide"):
        medians = result[workload]["median_seconds"]
        assert min(medians.values()) > 0
        assert result[workload]["on_over_off"] == medians["on"] / medians["off"]
    share = result["per_image"]
    assert share["source_info_over_preprocess"] == share["source_info_ms"] / share["preprocess_bytes_ms"]
