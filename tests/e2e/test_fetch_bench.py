"""``benchmarks.bench_fetch`` end to end on a tiny corpus: it runs, checks bodies and reports both variants."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from repo_paths import REPO_ROOT


def test_bench_fetch_reports_cpu_per_image_of_local_and_http_reads(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.bench_fetch", "--images", "8", "--repeats", "1", "--concurrency", "4",
         "--cache-dir", str(tmp_path)],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=300, check=False,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    result = json.loads(done.stderr.strip().splitlines()[-1])
    assert result["images"] == 8 and result["repeats"] == 1
    for variant in ("local", "http"):
        assert result[variant]["cpu_ms_per_image"] > 0 and result[variant]["images_per_s"] > 0
    # The printed table and summary must report the measured numbers, not others.
    local, http = result["local"]["cpu_ms_per_image"], result["http"]["cpu_ms_per_image"]
    assert f"| local | {local:.3f} |" in done.stdout and f"| http | {http:.3f} |" in done.stdout
    assert f"HTTP - local: {http - local:+.3f} CPU ms/img; HTTP / local: {http / local:.2f}x" in done.stdout
    # The corpus it fetched is the one on disk: 8 images whose mean size it reports.
    images = [path for path in tmp_path.rglob("*") if path.is_file() and path.parent.name == "images"]
    assert len(images) == 8
    assert result["mean_file_kb"] == sum(path.stat().st_size for path in images) / 8 / 1024
