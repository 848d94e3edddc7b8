"""``benchmarks.bench_incremental`` end to end on a tiny corpus: the re-run computes the new rows only."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from repo_paths import REPO_ROOT


def test_bench_incremental_times_plain_first_and_rerun_for_local_files_and_http(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.bench_incremental", "--rows", "60", "--new-fraction", "0.05",
         "--width", "64", "--height", "48", "--size", "8", "--extra-columns", "3", "--latency-ms", "1",
         "--root", str(tmp_path)],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=600, check=False,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    result = json.loads(done.stdout[done.stdout.index("{"):])
    assert result["rows"] == 60 and result["new_rows"] == 3 and result["image"] == "64x48 JPEG"
    for kind in ("local", "http"):
        seconds = result[kind]["seconds"]
        assert set(seconds) == {"plain", "first", "rerun", "copy"} and min(seconds.values()) > 0
        assert result[kind]["rerun_over_first"] == seconds["rerun"] / seconds["first"]
    # The photos it made: one per row of the grown table, distinct.
    photos = sorted((tmp_path / "photos-63-64x48").glob("*.jpg"))
    assert len(photos) == 63 and len({p.read_bytes() for p in photos}) == 63
