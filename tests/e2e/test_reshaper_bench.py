"""The TensorReshaper benchmark runs end to end on a few rows (its timings mean nothing here)."""

from __future__ import annotations

import subprocess
import sys

from repo_paths import REPO_ROOT


def test_reshaper_benchmark_checks_every_contender_against_numpy_and_reports_ratios():
    # A separate process: the benchmark builds and stops its own Spark session.
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.bench_reshaper", "--rows", "300", "--repeats", "1",
         "--partitions", "2", "--driver-memory", "1g"],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    table = [line for line in done.stdout.splitlines() if line.startswith("| ")]
    assert [line.split(" | ")[0][2:] for line in table[1:]] == [
        "TensorReshaper", "Python UDF (Arrow)", "Python UDF (pickle)", "pass-through"]
    assert table[1].endswith("| 1.0x | 1.0x |")
