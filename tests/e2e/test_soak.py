"""The soak benchmark (benchmarks/soak.py) at a size CI can afford: its checks hold and it fails when they do not.

12,000 rows take about 2-3 minutes on a loaded 2-core machine (about 100 rows/s
there, plus Spark's start-up); see docs/guides/soak.md for why this size and
for the full-size figures.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

from repo_paths import REPO_ROOT as ROOT

sys.path.insert(0, str(ROOT))
from benchmarks import soak

ROWS = 12_000


def test_expected_counts_follow_the_broken_row_rule():
    # 1 % broken, a third of it each kind: ids 0, 100 and 200 of every 300.
    assert soak.expected_counts(ROWS) == {"http_404": 40, "decode": 40, "connection": 40, "ok": 11_880}
    assert soak.expected_counts(601) == {"http_404": 3, "decode": 2, "connection": 2, "ok": 594}


def _deciles(rss: list[float], seconds: list[float]) -> list:
    return [soak.Decile(i + 1, 1000, t, worker_rss_mb=m) for i, (m, t) in enumerate(zip(rss, seconds))]


def test_the_steady_checks_pass_flat_runs_and_fail_a_leak_or_an_unsteady_decile():
    flat = soak.steady_checks(_deciles([400] + [500] * 9, [9.0] + [2.0] * 9), 0.10)
    assert all(ok for ok, _ in flat.values()), flat
    leak = soak.steady_checks(_deciles([400, 500] + [550] * 7 + [601], [2.0] * 10), 0.10)
    assert leak["worker RSS flat"] == (False, "last decile 601 MB, second 500 MB (limit 1.2x)")
    slow = soak.steady_checks(_deciles([500] * 10, [2.0] * 9 + [2.5]), 0.10)
    assert not slow["throughput steady"][0] and "worst 20.0% off (limit 10%)" in slow["throughput steady"][1]
    assert slow["worker RSS flat"][0]


def test_soak_keeps_every_row_once_with_exact_reasons_and_flat_workers(tmp_path):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    # Throughput steadiness is the full run's figure (``python -m benchmarks.soak``, 10 %): deciles
    # of 1,200 rows last 2 to 10 s, and on a shared CI machine one busy neighbour moved them from
    # 85 to 676 rows/s. Here the bound only catches a stalled decile (under 10 % of the median).
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks.soak", "--rows", str(ROWS), "--json", "--tolerance", "0.9",
         "--workdir", str(tmp_path / "soak")],
        capture_output=True, text=True, timeout=900, cwd=ROOT, env=env)
    assert result.returncode == 0, result.stderr[-4000:]
    report = json.loads(result.stdout)
    assert report["passed"] and all(ok for ok, _ in report["checks"].values()), report["checks"]
    assert report["counts"] == {"http_404": ROWS // 300, "decode": ROWS // 300, "connection": ROWS // 300,
                                "ok": ROWS - 3 * (ROWS // 300)}
    assert [d["rows"] for d in report["deciles"]] == [ROWS // 10] * 10
    assert all(d["workers"] >= 1 and d["worker_rss_mb"] > 0 and d["worker_fds"] > 0 for d in report["deciles"])
    # The output is a Parquet table holding every row.
    import pyarrow.parquet as pq

    table = pq.read_table(tmp_path / "soak" / "out.parquet", columns=["id", "error"])
    assert sorted(table.column("id").to_pylist()) == list(range(ROWS))
